# Device entry point: MicroPython runs main.py after boot. The board module (board.py, copied
# from boards/<name>/) holds every hardware fact; the firmware itself never names a pin.
import board

safe_boot = getattr(board, "safe_boot", None)
if safe_boot is not None and safe_boot():
    # the board's safe-boot button was held: stay in the REPL so mpremote can reach the board
    print("smgw: safe boot, firmware not started")
else:
    from smgwfw.app import run

    try:
        run(board)
    finally:  # also after a crash: hand the port back to the REPL
        release = getattr(board, "release", None)
        if release is not None:
            release()
