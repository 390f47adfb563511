"""The CC1101 receiver (smgwfw.cc1101) against FakeChip, our own test double of the chip: a
register file, status registers, command strobes and a 64-byte RX FIFO fed from "the air" behind
a fake SPI bus. Checked: the register set-up (868.95 MHz, 100 kcps 2-FSK, sync 0x543D), the
infinite/fixed packet length switch for frames longer than 255 bytes, the FIFO rules of the
errata, T1 (3-of-6) and C1 frames A and B with their DLL CRCs, and every way a frame can go
wrong (overflow, coding error, bad header, CRC error, stall, overrun)."""

import pytest

from smgwfw import cc1101 as cc
from smgwfw.radio import ConfigError
from test_wmbus import N21, N21_A, V6_B, build_a, encode_ref

IDLE, RX, OVERFLOW = 0, 1, 6
PKTLEN, PKTCTRL0 = 0x06, 0x08


class FakeChip:
    """What the driver reaches through SPI. Time moves when the driver reads its clock
    (chip.ticks) or finishes a FIFO read: each step `rate` more bytes of the frame on the air
    reach the FIFO. In fixed-length mode the packet ends when the byte counter (8 bits, counting
    since the sync word) reaches PKTLEN; in infinite mode the chip goes on receiving noise."""

    def __init__(self, version=0x14, rate=16):
        self.regs = bytearray(0x2F)
        self.version = version
        self.rssi = 0x10
        self.rate = rate
        self.fifo = bytearray()
        self.air = bytearray()
        self.state = IDLE
        self.in_packet = False
        self.count = 0
        self.strobes = []
        self.transactions = 0
        self.errata = 0
        self.underflow = 0
        self.missed = 0
        self.ended = 0  # packets ended by PKTLEN
        self.t = 0
        self.hdr = None
        self.fifo_read = False
        self.during = None  # called at every transaction end (to fire "interrupts")

    # --- the pins and the bus ---
    def select(self, v):
        if v == 0:
            self.hdr = None
            self.fifo_read = False
            return
        self.transactions += 1
        if self.fifo_read:
            if not self.fifo and self.in_packet and self.state == RX:
                self.errata += 1  # FIFO read empty while the packet still arrives
            self.advance()
        if self.during is not None:
            self.during()

    def write(self, buf):
        for b in buf:
            self.byte(b)

    def readinto(self, buf, out=0):
        for i in range(len(buf)):
            buf[i] = self.byte(out)

    def write_readinto(self, w, r):
        for i, b in enumerate(w):
            r[i] = self.byte(b)

    def status(self):
        return (self.state << 4) | min(len(self.fifo), 15)

    def byte(self, b):
        if self.hdr is None:
            self.hdr = b
            self.addr = b & 0x3F
            self.burst = bool(b & 0x40)
            self.read = bool(b & 0x80)
            if 0x30 <= self.addr <= 0x3D and not self.burst:
                self.strobe(self.addr)
            return self.status()
        a = self.addr
        if a == 0x3F:
            assert self.read and self.burst
            self.fifo_read = True
            if not self.fifo:
                self.underflow += 1
                return 0
            return self.fifo.pop(0)
        if a >= 0x30:
            assert self.read and self.burst, "status registers need the burst bit"
            return {0x30: 0x00, 0x31: self.version, 0x34: self.rssi, 0x35: self.state,
                    0x3B: len(self.fifo) | (0x80 if self.state == OVERFLOW else 0)}.get(a, 0)
        if self.read:
            v = self.regs[a]
        else:
            self.regs[a] = b
            v = self.status()
        if self.burst:
            self.addr += 1
        return v

    def strobe(self, s):
        self.strobes.append(s)
        if s == 0x30:  # SRES
            self.regs = bytearray(0x2F)
            self.state = IDLE
            self.fifo.clear()
            self.in_packet = False
        elif s == 0x34:  # SRX
            self.state = RX
        elif s == 0x36:  # SIDLE
            self.state = IDLE
            self.in_packet = False
        elif s == 0x3A:  # SFRX
            assert self.state in (IDLE, OVERFLOW)
            self.fifo.clear()
            self.state = IDLE

    # --- the air ---
    def transmit(self, chips):
        # a frame after the sync word: the chip takes it only while in RX and not in a packet
        if self.state != RX or self.in_packet:
            self.missed += 1
            return
        self.air = bytearray(chips)
        self.in_packet = True
        self.count = 0
        self.advance()

    def ticks(self):
        self.t += 1
        self.advance()
        return self.t

    def _end_reached(self):
        if self.regs[PKTCTRL0] & 3 != 0 or self.count == 0:
            return False
        return self.count % 256 == (self.regs[PKTLEN] or 256) % 256

    def advance(self):
        for _ in range(self.rate):
            if not self.in_packet or self.state != RX:
                return
            if self._end_reached():
                self.in_packet = False
                self.state = IDLE  # MCSM1: RXOFF_MODE = IDLE
                self.ended += 1
                return
            if len(self.fifo) >= 64:
                self.state = OVERFLOW
                self.in_packet = False
                return
            self.fifo.append(self.air.pop(0) if self.air else 0x55)
            self.count += 1
            if self._end_reached():  # the packet ends with its last byte
                self.in_packet = False
                self.state = IDLE
                self.ended += 1
                return


class Pin:
    IRQ_RISING = 1

    def __init__(self, chip=None, kind=None):
        self.chip, self.kind = chip, kind
        self.handler = None

    def value(self, v=None):
        if self.kind == "cs":
            self.chip.select(v)
        elif self.kind == "gdo2":
            return 1 if self.chip.in_packet else 0

    def irq(self, handler=None, trigger=None):
        self.handler = handler

    def fire(self):
        if self.handler:
            self.handler(self)


def make(rate=16, version=0x14, irq=False, gdo2=False):
    chip = FakeChip(version, rate)
    g0 = Pin(chip, "gdo0") if irq else None
    g2 = Pin(chip, "gdo2") if gdo2 else None
    r = cc.CC1101(chip, Pin(chip, "cs"), g0, g2, ticks_ms=chip.ticks, sleep_us=lambda us: None)
    return chip, r


def t1(tel):
    return encode_ref(build_a(tel))


def tel(l, seed=0):
    import random

    rng = random.Random(seed)
    return bytes([l, 0x44]) + bytes(rng.randrange(256) for _ in range(l - 1))


# ------------------------------------------------------------------------------ set-up

def test_reset_writes_the_register_set_and_starts_rx_in_infinite_mode():
    chip, r = make()
    r.start_recv()
    want = bytearray(cc.CONFIG)
    assert chip.regs == want  # PKTCTRL0 0x02 (infinite) is part of the set
    assert chip.strobes[0] == 0x30 and chip.strobes[-3:] == [0x36, 0x3A, 0x34]
    assert chip.state == RX
    freq = int.from_bytes(chip.regs[0x0D:0x10], "big") * 26e6 / 2 ** 16
    assert abs(freq - 868.95e6) < 1e3
    assert chip.regs[0x04:0x06] == b"\x54\x3d"
    m4, m3, m2 = chip.regs[0x10], chip.regs[0x11], chip.regs[0x12]
    rate = (256 + m3) * 2 ** (m4 & 15) / 2 ** 28 * 26e6
    assert 97e3 < rate < 105e3  # 100 kcps within the bit synchroniser's range
    assert (m2 >> 4) & 7 == 0 and not m2 & 8  # 2-FSK, no Manchester
    assert m2 & 7 in (2, 6)  # 16 of 16 sync bits
    assert chip.regs[0x08] & 3 == 2 and chip.regs[0x07] & 3 == 0  # infinite, no address check


@pytest.mark.parametrize("version", [0x00, 0xFF])
def test_no_chip_is_an_oserror(version):
    chip, r = make(version=version)
    with pytest.raises(OSError, match="CC1101"):
        r.start_recv()


def test_modes():
    chip, r = make()
    r.set_mode("C1")
    r.set_mode("T1")
    with pytest.raises(ConfigError, match="S1"):
        r.set_mode("S1")


# ------------------------------------------------------------------------------ frames

def test_t1_100_byte_telegram():
    chip, r = make()
    r.start_recv()
    chip.rssi = 0xCC
    t = tel(99, 1)  # L = 99: 100 bytes from the L-field
    chip.transmit(t1(t))
    p = r.poll_recv()
    assert p.data == t and p.crc_ok and p.mode == "T1" and p.frame == "A"
    assert p.rssi_dbm == -100 and p.tick_ms > 0
    assert chip.ended == 1 and chip.errata == 0 and chip.underflow == 0
    assert chip.regs[PKTLEN] == len(t1(t)) and chip.state == RX  # restarted
    assert r.poll_recv() is None and r.counters["telegrams"] == 1


def test_published_vectors_in_c1_frame_a_and_b():
    chip, r = make()
    r.start_recv()
    chip.transmit(b"\x54\xcd" + N21_A)
    p = r.poll_recv()
    assert (p.data, p.crc_ok, p.mode, p.frame) == (N21, True, "C1", "A")
    chip.transmit(b"\x54\x3d" + V6_B)
    p = r.poll_recv()
    assert p.crc_ok and p.frame == "B" and p.mode == "C1" and len(p.data) == 191
    assert p.data[0] == 190 and chip.errata == 0


@pytest.mark.parametrize("rate", [1, 7, 12, 16])  # 12.5 bytes per ms is the real rate
def test_long_t1_frame_switches_to_fixed_length_at_the_right_time(rate):
    # L = 255: 290 bytes on air, 435 chip bytes; PKTLEN = 435 mod 256 = 179. The switch must
    # come after the chip's counter passed 179 once, or the chip would stop there.
    chip, r = make(rate=rate)
    r.start_recv()
    t = tel(255, 2)
    chip.transmit(t1(t))
    p = r.poll_recv()
    assert p is not None and p.data == t and p.crc_ok
    assert chip.regs[PKTLEN] == 435 % 256 and chip.ended == 1 and chip.errata == 0


def test_every_length_t1_and_c1():
    chip, r = make(rate=13)
    r.start_recv()
    for l in range(9, 256, 7):
        t = tel(l, l)
        chip.transmit(t1(t))
        assert r.poll_recv().data == t, l
        chip.transmit(b"\x54\xcd" + build_a(t))
        assert r.poll_recv().data == t, l
    assert chip.errata == 0 and r.counters["telegrams"] == 2 * len(range(9, 256, 7))


def test_crc_error_is_delivered_marked():
    chip, r = make()
    r.start_recv()
    bad = bytearray(build_a(tel(50)))
    bad[20] ^= 1
    chip.transmit(encode_ref(bytes(bad)))
    p = r.poll_recv()
    assert p.crc_ok is False and r.counters["crc_errors"] == 1


def test_overflow_restarts_and_the_next_frame_is_received():
    chip, r = make(rate=80)  # more than the FIFO holds between two looks
    r.start_recv()
    chip.transmit(t1(tel(60)))
    assert r.poll_recv() is None and r.counters["overflows"] == 1 and chip.state == RX
    chip.rate = 16
    chip.transmit(t1(tel(60)))
    assert r.poll_recv().data == tel(60)


def test_coding_errors_bad_headers_and_stalls():
    chip, r = make()
    r.start_recv()
    chip.transmit(b"\xff\xff\xff" + bytes(40))  # not 3-of-6
    assert r.poll_recv() is None and r.counters["coding_errors"] == 1 and chip.state == RX
    chip.transmit(b"\x54\x99\x20" + bytes(40))  # C mode, neither format
    assert r.poll_recv() is None and r.counters["bad_header"] == 1
    chip.transmit(encode_ref(b"\x05\x44") + bytes(40))  # L = 5: impossible
    assert r.poll_recv() is None and r.counters["bad_header"] == 2
    chips = bytearray(t1(tel(80)))
    chips[60] = 0xFF  # a coding error inside the frame: decoded after the frame is in
    chip.transmit(bytes(chips))
    assert r.poll_recv() is None and r.counters["coding_errors"] == 2
    # the air goes quiet in the middle of a frame (infinite mode would go on with noise:
    # emulate a chip that stops delivering)
    chip.transmit(t1(tel(200)))
    chip.air.clear()
    chip.rate = 0
    assert r.poll_recv() is None and r.counters["timeouts"] == 1 and chip.state == RX
    chip.rate = 16
    chip.transmit(t1(tel(30)))
    assert r.poll_recv().data == tel(30)


def test_the_interrupt_drains_and_a_second_frame_before_decoding_is_an_overrun():
    chip, r = make(irq=True)
    r.start_recv()
    g0 = r.gdo0
    assert g0.handler is not None
    chip.transmit(t1(tel(40, 1)))
    g0.fire()  # the frame is taken in by the interrupt alone
    chip.transmit(t1(tel(40, 2)))
    g0.fire()
    assert r.counters["overruns"] == 1
    assert r.poll_recv().data == tel(40, 1)
    assert r.poll_recv() is None
    r.standby()
    assert g0.handler is None and chip.state == IDLE
    chip.transmit(t1(tel(40, 3)))
    assert r.poll_recv() is None and chip.missed == 1


def test_an_interrupt_during_poll_recv_waits_for_it():
    chip, r = make(irq=True)
    r.start_recv()
    fired = []

    def during():
        if len(fired) < 50:
            fired.append(1)
            r.gdo0.fire()  # _service() is busy: returns at once

    chip.transmit(t1(tel(120)))
    chip.during = during
    p = r.poll_recv()
    assert p.data == tel(120) and fired and chip.errata == 0


def test_gdo2_low_means_no_spi_traffic_while_waiting():
    chip, r = make(gdo2=True)
    r.start_recv()
    n = chip.transactions
    for _ in range(10):
        assert r.poll_recv() is None
    assert chip.transactions == n
    chip.transmit(t1(tel(20)))
    assert r.poll_recv().data == tel(20)
