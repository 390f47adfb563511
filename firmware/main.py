# Device entry point: MicroPython runs main.py after boot. The board module (board.py, copied
# from boards/<name>/) holds every hardware fact; the firmware itself never names a pin.
import board
from smgwfw.app import run

run(board)
