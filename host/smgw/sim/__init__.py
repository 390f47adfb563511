"""The simulated board: a pty bridge standing in for the USB-UART cable, and the launcher that
runs the real firmware under CPython with boards/sim/board.py as its hardware."""
