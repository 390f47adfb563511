# TI CC1101 sub-GHz transceiver as a wireless M-Bus T1/C1 receiver over SPI. The chip only finds
# the sync word and hands over raw bytes; the firmware does the rest (smgwfw.wmbus): 3-out-of-6
# decoding (T1), telling frame format A from B (C1), checking and removing the DLL CRCs.
# docs/radio.md has the register table with the reasons for each value.
#
#   r = CC1101(spi, cs, gdo0=None, gdo2=None)
#       spi   machine.SPI (mode 0, <= 6.5 MHz for bursts): write(buf), readinto(buf, byte),
#             write_readinto(wbuf, rbuf)
#       cs    output pin (CSn, active low), value(v)
#       gdo0  input pin on GDO0 (RX FIFO at/above the threshold, or end of packet), or None.
#             With a machine.Pin that has irq(), start_recv() drains the FIFO from its (soft)
#             interrupt, so a frame is taken in however long the main loop sleeps.
#       gdo2  input pin on GDO2 (high from the sync word to the end of the packet), or None;
#             lets poll_recv() skip the SPI traffic while nothing is being received.
#   r.start_recv(); p = r.poll_recv(now_ms)   (smgwfw.radio)
#
# One receiver setting serves T1 and C1: both are 100 kcps 2-FSK on 868.95 MHz behind the same
# 16-bit sync 0x543D (the last preamble chips and the T/C sync, meter-protocols.md §1.1). The
# first byte after it tells them apart: C1 sends 0x54 then 0xCD (format A) or 0x3D (format B);
# 0x54 cannot begin a 3-of-6 stream (010101 is not a code word). So set_mode("T1") and
# set_mode("C1") both receive both, and each packet says which one it was. S1 (868.3 MHz,
# Manchester) is not supported: set_mode("S1") raises ConfigError.
#
# Packet length (datasheet §15.4 "Packet length > 255", TI AN SWRA234): reception starts in
# infinite-length mode. Once the first three bytes are in, the driver knows the frame's length
# (from the L-field), writes PKTLEN = length mod 256 and switches to fixed-length mode as soon as
# fewer than 256 bytes are still to come, so the chip stops at the frame's last byte. The FIFO
# (64 bytes, threshold 32) is drained while the frame arrives; the last byte in the FIFO is left
# there until the whole frame is in (CC1101 errata SWRZ020, "RX FIFO": reading the FIFO empty
# while bytes still arrive can return a byte twice), and RXBYTES is read until two reads agree
# (errata: SPI read synchronisation). A FIFO overflow, a 3-of-6 coding error or an impossible
# L-field in the header, or a frame that takes longer than its air time plus a margin restart
# the receiver (counted). 100 kcps fill the FIFO in 5 ms, so without the GDO0 interrupt
# poll_recv() must be called at least that often while a frame arrives: once it has seen a
# frame begin, it keeps draining until the frame is in (at most about 40 ms, the longest T1
# frame's air time) rather than lose it.
#
# A completed frame's chips go to a second buffer and the receiver restarts at once; poll_recv()
# decodes and checks them. A frame completed while the previous one is still undecoded is lost
# (counted in "overruns"). Buffers (two of 436 bytes, one of 290) are allocated once.
import time

from smgwfw import wmbus
from smgwfw.radio import Radio, RxPacket, rssi_dbm

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


# SPI header bits (datasheet §10)
_READ = const(0x80)
_BURST = const(0x40)
# command strobes (datasheet table 42)
_SRES = const(0x30)
_SRX = const(0x34)
_SIDLE = const(0x36)
_SFRX = const(0x3A)
_SNOP = const(0x3D)
# registers
_PKTLEN = const(0x06)
_PKTCTRL0 = const(0x08)
_PARTNUM = const(0x30)
_VERSION = const(0x31)
_RSSI = const(0x34)
_RXBYTES = const(0x3B)
_FIFO = const(0x3F)
_INFINITE = const(0x02)  # PKTCTRL0: LENGTH_CONFIG = 2, no CRC, no whitening, FIFO mode
_FIXED = const(0x00)  # PKTCTRL0: LENGTH_CONFIG = 0

# The configuration registers 0x00..0x2E, written in one burst (26 MHz crystal). After TI's
# application note SWRA234 (wireless M-Bus on CC1101, T and C mode); docs/radio.md explains
# every value.
CONFIG = bytes((
    0x06,  # 00 IOCFG2   GDO2: asserts at sync word, de-asserts at end of packet
    0x2E,  # 01 IOCFG1   GDO1: high impedance (it is SO while CSn is low)
    0x00,  # 02 IOCFG0   GDO0: RX FIFO at or above threshold, or end of packet
    0x07,  # 03 FIFOTHR  RX FIFO threshold 32 bytes
    0x54,  # 04 SYNC1    sync word 0x543D: preamble tail + T/C sync (meter-protocols §1.1)
    0x3D,  # 05 SYNC0
    0xFF,  # 06 PKTLEN   set per frame
    0x00,  # 07 PKTCTRL1 no status bytes appended, no address check
    0x02,  # 08 PKTCTRL0 infinite length to start with, no hardware CRC, no whitening
    0x00,  # 09 ADDR
    0x00,  # 0A CHANNR
    0x08,  # 0B FSCTRL1  IF 203 kHz
    0x00,  # 0C FSCTRL0
    0x21,  # 0D FREQ2    868.950 MHz = 0x216BD1 * 26 MHz / 2**16
    0x6B,  # 0E FREQ1
    0xD1,  # 0F FREQ0
    0x5C,  # 10 MDMCFG4  RX filter 325 kHz; DRATE_E 12
    0x04,  # 11 MDMCFG3  DRATE_M 4: 103.15 kBaud (100 kcps, the chip tracks +-12.5 %)
    0x06,  # 12 MDMCFG2  2-FSK, no Manchester, 16/16 sync bits and carrier sense
    0x22,  # 13 MDMCFG1  no FEC, 4 preamble bytes (TX only), CHANSPC_E 2
    0xF8,  # 14 MDMCFG0  channel spacing 200 kHz
    0x44,  # 15 DEVIATN  38 kHz
    0x07,  # 16 MCSM2
    0x00,  # 17 MCSM1    after a packet: IDLE (the driver restarts RX itself)
    0x18,  # 18 MCSM0    calibrate on IDLE -> RX
    0x2E,  # 19 FOCCFG   frequency offset compensation
    0xBF,  # 1A BSCFG    bit synchronisation, data rate offset +-12.5 %
    0x43,  # 1B AGCCTRL2
    0x09,  # 1C AGCCTRL1
    0xB5,  # 1D AGCCTRL0
    0x87,  # 1E WOREVT1  (reset values: wake-on-radio unused)
    0x6B,  # 1F WOREVT0
    0xFB,  # 20 WORCTRL
    0xB6,  # 21 FREND1
    0x10,  # 22 FREND0
    0xEA,  # 23 FSCAL3
    0x2A,  # 24 FSCAL2
    0x00,  # 25 FSCAL1
    0x1F,  # 26 FSCAL0
    0x41,  # 27 RCCTRL1
    0x00,  # 28 RCCTRL0
    0x59,  # 29 FSTEST
    0x7F,  # 2A PTEST
    0x3F,  # 2B AGCTEST
    0x81,  # 2C TEST2
    0x35,  # 2D TEST1
    0x09,  # 2E TEST0
))

COUNTERS = ("frames", "overflows", "coding_errors", "bad_header", "timeouts", "crc_errors",
            "overruns")

CHIP_MAX = const(436)  # T1 with L = 255: 290 bytes on air, 435 chip bytes (+1 spare)
DEC_MAX = const(290)
_MARGIN_MS = const(10)
_SPINS = const(20000)  # RXBYTES reads per drain at most, should the clock stand still

# receiver states
_IDLE = const(0)
_WAIT = const(1)  # RX on, waiting for a frame's first three bytes
_RECV = const(2)  # inside a frame of _total bytes, _got of them read

_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def _tdiff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


try:
    _sleep_us = time.sleep_us
except AttributeError:  # CPython

    def _sleep_us(us):
        time.sleep(us / 1000000)


class CC1101(Radio):
    MODULE = "cc1101"
    SUPPORTED = ("T1", "C1")

    def __init__(self, spi, cs, gdo0=None, gdo2=None, ticks_ms=None, sleep_us=None,
                 use_irq=True):
        super().__init__(ticks_ms, COUNTERS)
        self.spi = spi
        self.cs = cs
        self.gdo0 = gdo0
        self.gdo2 = gdo2
        self.use_irq = use_irq
        self._sleep = sleep_us or _sleep_us
        self._w1 = bytearray(1)
        self._r1 = bytearray(1)
        self._w2 = bytearray(2)
        self._r2 = bytearray(2)
        self._a = bytearray(CHIP_MAX)  # the frame being received
        self._b = bytearray(CHIP_MAX)  # the last completed frame, until poll_recv decodes it
        self._dec = bytearray(DEC_MAX)  # poll_recv's decoded frame
        self._hd = bytearray(2)  # the header's L and C (also from the interrupt)
        self._state = _IDLE
        self._configured = False
        self._busy = False
        self._irq_on = False
        # the frame being received
        self._total = 0
        self._got = 0
        self._n = 0
        self._kind = "T1"
        self._fmt = "A"
        self._fixed = False
        self._t0 = 0
        self._rssi = 0
        self._max_ms = 0
        # the completed frame
        self._done = False
        self._d_n = 0
        self._d_kind = "T1"
        self._d_fmt = "A"
        self._d_t0 = 0
        self._d_rssi = 0
        cs.value(1)

    # ------------------------------------------------------------------ SPI (datasheet §10)
    def _strobe(self, cmd):
        self._w1[0] = cmd
        self.cs.value(0)
        self.spi.write_readinto(self._w1, self._r1)
        self.cs.value(1)
        return self._r1[0]  # the chip status byte

    def _xfer(self, hdr, v):
        w = self._w2
        w[0] = hdr
        w[1] = v
        self.cs.value(0)
        self.spi.write_readinto(w, self._r2)
        self.cs.value(1)
        return self._r2[1]

    def write_reg(self, addr, v):
        self._xfer(addr, v)

    def read_reg(self, addr):
        # status registers (0x30..0x3D) are read with the burst bit set
        return self._xfer(addr | (_READ | _BURST if addr >= 0x30 else _READ), 0)

    def _write_burst(self, addr, data):
        self._w1[0] = addr | _BURST
        self.cs.value(0)
        self.spi.write(self._w1)
        self.spi.write(data)
        self.cs.value(1)

    def _read_fifo(self, buf, start, n):
        self._w1[0] = _FIFO | _READ | _BURST
        self.cs.value(0)
        self.spi.write(self._w1)
        self.spi.readinto(memoryview(buf)[start:start + n], 0)
        self.cs.value(1)

    def _rxbytes(self):
        # errata: read until two reads agree
        a = self.read_reg(_RXBYTES)
        for _ in range(4):
            b = self.read_reg(_RXBYTES)
            if a == b:
                break
            a = b
        return a

    # ------------------------------------------------------------------ set-up
    def reset(self):
        # SRES, wait until the crystal runs (CHIP_RDYn, bit 7 of the status byte, low), check
        # that a CC1101 answers, write the configuration. OSError when no chip answers.
        self._strobe(_SRES)
        self._sleep(1000)
        for _ in range(100):
            if not self._strobe(_SNOP) & 0x80:
                break
            self._sleep(100)
        part = self.read_reg(_PARTNUM)
        ver = self.read_reg(_VERSION)
        if part != 0x00 or ver == 0x00 or ver == 0xFF:
            raise OSError("CC1101 not answering (PARTNUM 0x%02x, VERSION 0x%02x)" % (part, ver))
        self._write_burst(0x00, CONFIG)
        self._configured = True

    def start_recv(self, now_ms=None):
        if not self._configured:
            self.reset()
        self._restart()
        g = self.gdo0
        if self.use_irq and g is not None and not self._irq_on and hasattr(g, "irq"):
            g.irq(self._irq, g.IRQ_RISING)
            self._irq_on = True

    def standby(self):
        if self._irq_on:
            self.gdo0.irq(None)
            self._irq_on = False
        self._state = _IDLE
        self._strobe(_SIDLE)

    def _restart(self):
        self._strobe(_SIDLE)
        self._strobe(_SFRX)
        self.write_reg(_PKTCTRL0, _INFINITE)
        self._strobe(_SRX)
        self._state = _WAIT

    # ------------------------------------------------------------------ receiving
    def _irq(self, pin):
        self._service()

    def _service(self):
        # drains the FIFO; from poll_recv() and from the GDO0 interrupt, never both at once
        if self._busy or self._state == _IDLE:
            return
        if self._state == _WAIT and self.gdo2 is not None and not self.gdo2.value():
            return  # no sync word: the FIFO is empty
        self._busy = True
        try:
            self._drain()
        finally:
            self._busy = False

    def _drain(self):
        t_start = self._ticks()
        for _ in range(_SPINS):
            nb = self._rxbytes()
            if nb & 0x80:
                self.counters["overflows"] += 1
                self._restart()
                return
            if self._state == _WAIT:
                if nb == 0:
                    return  # nothing began
                if nb > 3:  # the header, and one byte left in the FIFO (errata)
                    if not self._header():
                        self._restart()
                        return
                elif _tdiff(self._ticks(), t_start) > _MARGIN_MS:
                    break  # four bytes take 0.32 ms
                continue
            left = self._total - self._got
            take = left if nb >= left else nb - 1
            if take > 0:
                self._read_fifo(self._a, self._got, take)
                self._got += take
                if not self._fixed and self._total - self._got < 256:
                    self.write_reg(_PKTCTRL0, _FIXED)
                    self._fixed = True
                if self._got == self._total:
                    self._complete()
                    return
            elif _tdiff(self._ticks(), self._t0) > self._max_ms:
                break
        self.counters["timeouts"] += 1
        self._restart()

    def _header(self):
        # The first three bytes: the frame's kind and length. False for an impossible start.
        a = self._a
        self._read_fifo(a, 0, 3)
        self._got = 3
        self._t0 = self._ticks() & _MASK
        self._rssi = self.read_reg(_RSSI)
        if a[0] == 0x54:
            # C mode: 0x54 0xCD = format A, 0x54 0x3D = format B, then the L-field
            if a[1] == 0xCD:
                self._fmt = "A"
                n = wmbus.frame_a_len(a[2])
            elif a[1] == 0x3D:
                self._fmt = "B"
                n = wmbus.frame_b_len(a[2])
            else:
                n = 0
            if n == 0:
                self.counters["bad_header"] += 1
                return False
            self._kind = "C1"
            total = n + 2
        else:
            # T mode: three chip bytes are L and C in 3-of-6
            if wmbus.decode_3of6(a, 2, self._hd) is None:
                self.counters["coding_errors"] += 1
                return False
            n = wmbus.frame_a_len(self._hd[0])
            if n == 0:
                self.counters["bad_header"] += 1
                return False
            self._kind = "T1"
            self._fmt = "A"
            total = (3 * n + 1) // 2
        self._n = n
        self._total = total
        self.write_reg(_PKTLEN, total & 0xFF)
        self._fixed = False
        if total - 3 < 256:
            self.write_reg(_PKTCTRL0, _FIXED)
            self._fixed = True
        self._max_ms = (total * 8 + 99) // 100 + _MARGIN_MS  # 100 kbit/s air time + margin
        self._state = _RECV
        return True

    def _complete(self):
        self.counters["frames"] += 1
        if self._done:
            self.counters["overruns"] += 1
        else:
            self._a, self._b = self._b, self._a
            self._done = True
            self._d_n = self._n
            self._d_kind = self._kind
            self._d_fmt = self._fmt
            self._d_t0 = self._t0
            self._d_rssi = self._rssi
        self._restart()

    def poll_recv(self, now_ms=None):
        if self._state != _IDLE:
            self._service()
        if not self._done:
            return None
        b = self._b
        n = self._d_n
        if self._d_kind == "T1":
            if wmbus.decode_3of6(b, n, self._dec) is None:
                self._done = False
                self.counters["coding_errors"] += 1
                return None
            data, ok = wmbus.frame_a_check(self._dec)
        elif self._d_fmt == "A":
            data, ok = wmbus.frame_a_check(b, 2)
        else:
            data, ok = wmbus.frame_b_check(b, 2)
        self._done = False
        if data is None:
            self.counters["bad_header"] += 1
            return None
        if not ok:
            self.counters["crc_errors"] += 1
        self.counters["telegrams"] += 1
        return RxPacket(data, rssi_dbm(self._d_rssi), self._d_kind, self._d_fmt, ok,
                        self._d_t0)
