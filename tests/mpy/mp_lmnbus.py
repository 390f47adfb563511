# Differential test: the firmware's LMN bus timing (smgwfw.lmnbus with smgwfw.lmn's HDLC
# detector) under MicroPython and CPython must print the same transcript: requests, answers in
# and out of windows, a late answer not cut, a corrupted one reported, a full queue, a stuck UART.
from smgwfw import lmnbus
from smgwfw.crc16 import x25
from smgwfw.lmn import CHECK_NAMES, HdlcDetector


def hdlc(dest, src, control, info=b""):
    n = 7 + (len(info) + 2 if info else 0)
    head = bytes([0xA0 | (n >> 8), n & 0xFF, (dest << 1) | 1, (src << 1) | 1, control])
    body = head
    if info:
        h = x25(head)
        body = head + bytes([h & 0xFF, h >> 8]) + info
    f = x25(body)
    return b"\x7e" + body + bytes([f & 0xFF, f >> 8]) + b"\x7e"


class Line:
    baud = 115200

    def __init__(self):
        self.t = 0
        self.arrivals = []
        self.refuse = False

    def read(self):
        due = b""
        keep = []
        for t, d in self.arrivals:
            if t <= self.t:
                due += d
            else:
                keep.append((t, d))
        self.arrivals = keep
        return due or None

    def send(self, data):
        if self.refuse:
            return 0
        self.t += 1
        print("sent", self.t, len(data), data[4])
        return len(data)


def emit(kind, rid, a, b, c):
    if kind == lmnbus.RX:
        print("rx", rid, len(a), CHECK_NAMES[b], c)
    else:
        print("done", rid, a, b)


line = Line()
bus = lmnbus.BusMaster(line, HdlcDetector(max_frame=1040, silence_ms=5), lambda: line.t, emit,
                       line.baud)


def run(ms):
    for _ in range(ms):
        line.t += 1
        bus.step(line.t)


bus.request(1, hdlc(0x10, 0x01, 0x11), 30)
bus.request(2, hdlc(0x11, 0x01, 0x11), 30)
run(3)
line.arrivals.append((line.t + 3, hdlc(0x01, 0x10, 0x11)))
run(40)
line.arrivals.append((line.t + 2, hdlc(0x01, 0x11, 0x30, b"\x02" + bytes(range(200)))))
run(40)
line.arrivals.append((line.t + 5, hdlc(0x01, 0x12, 0x11)))
run(20)
bus.request(3, hdlc(0x7F, 0x01, 0x13, b"\x01\x04\x00\x05\x00\x01"), 20)
run(2)
late = hdlc(0x01, 0x7E, 0x13, b"\x02\x00\x01\x02\xab\xcd")
line.arrivals.append((line.t + 18, late[:5]))
line.arrivals.append((line.t + 22, late[5:]))
run(40)
bus.request(4, hdlc(0x10, 0x01, 0x11), 20)
run(2)
bad = bytearray(hdlc(0x01, 0x10, 0x32, b"\x02hello"))
bad[-4] ^= 0xFF
line.arrivals.append((line.t + 2, bytes(bad)))
run(40)
for i in range(lmnbus.QUEUE_LEN + 1):
    print("queued", i, bus.request(10 + i, hdlc(0x10, 0x01, 0x11), 5))
line.refuse = True
run(20)
print(sorted(bus.counters.items()))
print("OK")
