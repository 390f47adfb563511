# Differential test: the wireless M-Bus receive path (smgwfw.wmbus, smgwfw.amb8465,
# smgwfw.cc1101) under MicroPython and CPython must print the same transcript: CRC and 3-of-6
# vectors, frame A/B checks of the published vectors, duplicate marking, the AMB8465 parser on a
# damaged stream split three ways, the AMB8465 start-up against a fake module, and the CC1101
# receiving T1 and C1 frames from a fake chip (a small copy of tests/firmware/test_cc1101.py's).
from smgwfw import amb8465 as amb
from smgwfw import cc1101 as cc
from smgwfw import wmbus as w
from smgwfw.radio import rssi_dbm


def h(b):
    return "-" if b is None else ("" if len(b) == 0 else bytes(b).hex())


N21_A = bytes.fromhex(
    "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD"
    "013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A")
SONTEX_A = bytes.fromhex(
    "3444EE4D813929271608811D7A51000000046D1912A62B036E0000005170426CE1F1436E00000002FF2C0000"
    "0259D6D0D4090265FC0902FD66A00044C4")
V6_B = bytes.fromhex(
    "C244C5140443054300048C200E900F002C25895E02003B0877D31DA840B17A0E009007100F8FAD4C4E6140"
    "0DA4F3B1F7E273CC4C5C07F93CD20B237345DB39F9A98F8415E1C4B7A25C86E4C22D05C3352FA7E2E56270"
    "31F14643063F1DC8FE2C32459B6F02E4234B447B18E4BFDA8C4DA9B1EDE6CF29D0B2122A3E8B9DEEBEE3E6"
    "DBE6617B4E709EC6B595179CB01C2C0BDE6723A345B708652880C114A58DA07C73AD9EB8ACB17FA0A88F19"
    "BC84CB1FC56672DE8A9603FD0C05010002FD0B2111F60B")

# ---------------------------------------------------------------- CRC, 3-of-6, lengths
print("crc", hex(w.crc_en13757(b"123456789")), hex(w.crc_en13757(bytes.fromhex("01FD1F01"))),
      hex(w.crc_en13757(bytes.fromhex("EE449ACE010000802307"))),
      hex(w.crc_en13757(SONTEX_A, 0, 10)))
every = bytes(range(256))
chips = w.encode_3of6(every)
print("3of6", h(w.encode_3of6(b"\x2e\x44")), len(chips), w.decode_3of6(chips, 256) == every)
odd = [b for b in range(256) if w.decode_3of6(w.encode_3of6(bytes([b])), 1) != bytes([b])]
print("3of6 odd failures", len(odd))
bad = 0
for sym in range(64):
    v = (sym << 18) | (0x16 << 12) | (0x16 << 6) | 0x16
    if w.decode_3of6(bytes([v >> 16, (v >> 8) & 255, v & 255]), 2) is None:
        bad += 1
print("3of6 invalid symbols", bad)
print("3of6 short", w.decode_3of6(b"\x3b\x27", 2))
x = 0
for l in range(0, 260):
    x = (x * 31 + w.frame_a_len(l) * 7 + w.frame_b_len(l) * 3 + w.t1_chip_len(l)) & 0xFFFFFF
print("lengths", x, w.frame_a_len(0x2E), w.t1_chip_len(255), w.frame_b_len(0xC2))

# ---------------------------------------------------------------- frames A and B
tel, ok = w.frame_a_check(N21_A)
print("N21 A", ok, h(tel))
tel, ok = w.frame_a_check(SONTEX_A)
print("Sontex A", ok, h(tel))
tel, ok = w.frame_b_check(V6_B)
print("V6 B", ok, len(tel), tel[0], h(tel[120:140]))
for pos in (0, 11, 28, 54):
    b = bytearray(N21_A)
    b[pos] ^= 1
    print("damaged A", pos, w.frame_a_check(b)[1])
for pos in (126, 194):
    b = bytearray(V6_B)
    b[pos] ^= 1
    print("damaged B", pos, w.frame_b_check(b)[1])
print("short", w.frame_a_check(N21_A[:40]), w.frame_b_check(V6_B[:100]))

# ---------------------------------------------------------------- duplicates
d = w.Dedup(1000, 3)
seq = [(b"a", 0), (b"a", 400), (bytearray(b"a"), 1000), (b"a", 1001), (b"b", 1002),
       (b"c", 1003), (b"d", 1004), (b"a", 1005), (b"x", 0x3FFFFFF0), (b"x", 5)]
print("dedup", [d.check(v, t) for v, t in seq], d.dups)
print("rssi", [rssi_dbm(r) for r in (0, 1, 8, 0x7F, 0x80, 0xCC, 0xFE, 0xFF)])

# ---------------------------------------------------------------- AMB8465 parser
FR = [amb.frame(3, bytes([20, 0x44]) + bytes(range(19)) + b"\x08"), amb.frame(0x84, b"\x00"),
      amb.frame(0x8A, b"\x45\x01\x01"), amb.frame(3, bytes([60, 0x44]) + bytes(59) + b"\xcc")]
badcs = bytearray(FR[0])
badcs[5] ^= 1
stream = (b"junk\x00" + FR[0] + bytes(badcs) + b"\xff\x77\x01" + FR[1] + b"\xff\x03\xf0" + FR[2]
          + FR[3] + b"\xff\x03")
print("frames", [h(f) for f in FR[1:3]])


def parse(chunks, timeout_at=None):
    p = amb.Parser(100)
    out = []
    i = 0
    k = 0
    while i < len(stream):
        end = i + chunks[k % len(chunks)]
        if end > len(stream):
            end = len(stream)
        k += 1
        while i < end:
            i = p.feed(stream, i, end, 0)
            while p.ready:
                out.append("%02x:%d" % (p.cmd(), len(p.payload())))
                p.consume()
    p.poll(101)
    while p.ready:
        out.append("%02x:%d" % (p.cmd(), len(p.payload())))
        p.consume()
    return out, sorted(p.counters.items()), p.held()


whole = parse([len(stream)])
print("parse whole", whole)
print("parse bytes same", parse([1]) == whole)
print("parse chunks same", parse([7, 1, 30, 2]) == whole)


# ---------------------------------------------------------------- AMB8465 driver
class Module:
    def __init__(self, cmd_out, rssi_on):
        self.params = {5: cmd_out, 0x45: rssi_on}
        self.flash = {5: cmd_out, 0x45: rssi_on}
        self.out = bytearray()
        self.head = 0
        self.log = []

    def readinto(self, buf):
        n = len(self.out) - self.head
        if n <= 0:
            return None
        if n > len(buf):
            n = len(buf)
        buf[0:n] = self.out[self.head:self.head + n]
        self.head += n
        return n

    def write(self, data):
        cmd = data[1]
        pl = bytes(data[3:len(data) - 1])
        self.log.append(h(data))
        if cmd == 0x0A:
            self.out += amb.frame(0x8A, pl + bytes([self.params[pl[0]]]))
        elif cmd == 0x09:
            self.flash[pl[0]] = pl[2]
            self.out += amb.frame(0x89, b"\x00")
        elif cmd == 0x05:
            self.params = dict(self.flash)
            self.out += amb.frame(0x85, b"\x00")
        elif cmd == 0x04:
            self.out += amb.frame(0x84, b"\x00")
        return len(data)


clock = [0]
mod = Module(0, 0)
r = amb.Amb8465(mod, ticks_ms=lambda: clock[0])
r.start_recv()
got = []
for step in range(200):
    clock[0] += 5
    if step == 150:
        for i in range(5):
            mod.out += amb.frame(3, bytes([30, 0x44, i]) + bytes(28) + bytes([0x10 + i]))
        mod.out += b"\x00garbage\xff"
        mod.out += amb.frame(3, bytes([12, 0x44]) + bytes(11) + b"\xf0")
    while True:
        p = r.poll_recv(clock[0])
        if p is None:
            break
        got.append((p.data[2], len(p.data), p.rssi_dbm, p.mode, p.frame, p.crc_ok, p.tick_ms))
print("amb log", mod.log)
print("amb packets", got)
print("amb counters", sorted(r.counters.items()))


# ---------------------------------------------------------------- CC1101
class Chip:
    def __init__(self):
        self.regs = bytearray(0x2F)
        self.fifo = bytearray(64)
        self.fn = 0
        self.air = b""
        self.ai = 0
        self.state = 0
        self.inp = False
        self.count = 0
        self.rate = 12
        self.hdr = -1
        self.errata = 0
        self.fifo_read = False
        self.t = 0
        self.ended = 0

    def sel(self, v):
        if v == 0:
            self.hdr = -1
            self.fifo_read = False
        elif self.fifo_read:
            if self.fn == 0 and self.inp:
                self.errata += 1
            self.adv()

    def write(self, buf):
        for b in buf:
            self.byte(b)

    def readinto(self, buf, out=0):
        for i in range(len(buf)):
            buf[i] = self.byte(out)

    def write_readinto(self, wb, rb):
        for i in range(len(wb)):
            rb[i] = self.byte(wb[i])

    def byte(self, b):
        if self.hdr < 0:
            self.hdr = b
            self.addr = b & 0x3F
            self.burst = b & 0x40
            self.rd = b & 0x80
            if 0x30 <= self.addr <= 0x3D and not self.burst:
                s = self.addr
                if s == 0x30:
                    self.regs = bytearray(0x2F)
                elif s == 0x34:
                    self.state = 1
                elif s == 0x36:
                    self.state = 0
                    self.inp = False
                elif s == 0x3A:
                    self.fn = 0
            return self.state << 4
        a = self.addr
        if a == 0x3F:
            self.fifo_read = True
            v = self.fifo[0]
            self.fifo[0:self.fn - 1] = self.fifo[1:self.fn]
            self.fn -= 1
            return v
        if a >= 0x30:
            if a == 0x31:
                return 0x14
            if a == 0x34:
                return 0xCC
            if a == 0x3B:
                return self.fn | (0x80 if self.state == 6 else 0)
            return 0
        if self.rd:
            v = self.regs[a]
        else:
            self.regs[a] = b
            v = 0
        if self.burst:
            self.addr += 1
        return v

    def end(self):
        if self.regs[8] & 3 or self.count == 0:
            return False
        return self.count % 256 == (self.regs[6] or 256) % 256

    def adv(self):
        for _ in range(self.rate):
            if not self.inp or self.state != 1:
                return
            if self.fn >= 64:
                self.state = 6
                self.inp = False
                return
            if self.ai < len(self.air):
                self.fifo[self.fn] = self.air[self.ai]
                self.ai += 1
            else:
                self.fifo[self.fn] = 0x55
            self.fn += 1
            self.count += 1
            if self.end():
                self.inp = False
                self.state = 0
                self.ended += 1
                return

    def send(self, chips):
        self.air = chips
        self.ai = 0
        self.inp = True
        self.count = 0
        self.adv()

    def ticks(self):
        self.t += 1
        self.adv()
        return self.t


class Cs:
    def __init__(self, chip):
        self.chip = chip

    def value(self, v):
        self.chip.sel(v)


def a_frame(tel):
    out = bytearray(tel[:10])
    c = w.crc_en13757(out)
    out += bytes([c >> 8, c & 255])
    for i in range(10, len(tel), 16):
        blk = tel[i:i + 16]
        c = w.crc_en13757(blk)
        out += blk + bytes([c >> 8, c & 255])
    return bytes(out)


chip = Chip()
r = cc.CC1101(chip, Cs(chip), ticks_ms=chip.ticks, sleep_us=lambda us: None)
r.start_recv()
print("cc regs", h(chip.regs) == h(cc.CONFIG), chip.state)
t100 = bytes([99, 0x44]) + bytes([(i * 7) & 255 for i in range(98)])
t255 = bytes([255, 0x44]) + bytes([(i * 13) & 255 for i in range(254)])
for name, air in (("T1 100", w.encode_3of6(a_frame(t100))), ("C1 A", b"\x54\xcd" + N21_A),
                  ("C1 B", b"\x54\x3d" + V6_B), ("T1 long", w.encode_3of6(a_frame(t255))),
                  ("T1 junk", b"\xff\xff\xff" + bytes(30))):
    chip.send(air)
    p = r.poll_recv()
    if p is None:
        print("cc", name, None)
    else:
        print("cc", name, len(p.data), h(p.data[:12]), p.rssi_dbm, p.mode, p.frame, p.crc_ok,
              chip.regs[6])
print("cc counters", sorted(r.counters.items()), "errata", chip.errata, "ended", chip.ended)
print("OK")
