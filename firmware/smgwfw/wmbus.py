# Wireless M-Bus PHY/DLL helpers (EN 13757-4), sans-I/O: what a raw transceiver's driver
# (smgwfw.cc1101) does with the bytes it took from the chip, and what the tests check against.
# Facts: shared/design/meter-protocols.md §1.1-§1.4; docs/radio.md.
#
#   decode_3of6(src, n, dst=None)  n bytes from the T-mode chips in src (1.5 chip bytes per
#                                  byte, high nibble first) -> dst (a new bytearray(n) when None),
#                                  or None when a 6-bit group is not one of the 16 codes
#   encode_3of6(data)              the inverse (tests, simulators): bytes, the last nibble pair
#                                  of an odd count padded with the postamble bits 0101
#   crc_en13757(data, start=0, end=-1)  CRC-16 EN 13757: polynomial 0x3D65, init 0, no
#                                  reflection, xorout 0xFFFF; check("123456789") = 0xC2B7
#   frame_a_len(l) / frame_b_len(l)     bytes on air (CRCs included) for L-field l; 0 if impossible
#   t1_chip_len(l)                 bytes of 3-of-6 chips for a T1 frame with L-field l
#   frame_a_check(buf, start=0)    -> (telegram without CRCs, ok)   format A at buf[start:]
#   frame_b_check(buf, start=0)    -> (telegram without CRCs, ok)   format B, L rebuilt
#   Dedup(window_ms, size)         .check(data, now_ms) -> True for a repeated copy
#
# The telegram handed on always starts with its L-field and carries no DLL CRCs; for format B the
# L-field is rewritten to count the bytes that remain (len - 1), so that later layers treat A and
# B alike (as rtl-wmbus and wmbusmeters do). A telegram whose CRCs fail is still returned, with
# ok False: the caller forwards it marked, or drops it; only a frame shorter than its L-field
# says (or an impossible L) gives (None, False).
#
# Memory: tables built at import (two 64-entry 3-of-6 decode tables, 256 bytes) and
# the CRC table (array('H'), 512 bytes) built at the first CRC. Per telegram: the returned bytes
# and one bytearray of the same size (frame_*_check); decode_3of6 writes into dst.
from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)

# nibble -> 6-bit symbol (meter-protocols.md §1.2): each symbol has exactly three 1-bits
CODES = b"\x16\x0d\x0e\x0b\x1c\x19\x1a\x13\x2c\x25\x26\x23\x34\x31\x32\x29"


def _decode_tables():
    # 6-bit symbol -> nibble << 4 (first symbol of a byte) and -> nibble (second); 0x100 marks
    # the 48 symbols that are no code word, so one OR of the two lookups is the byte, or > 255
    hi = array("H", bytes(128))
    lo = array("H", bytes(128))
    for i in range(64):
        hi[i] = 0x100
        lo[i] = 0x100
    for nib in range(16):
        hi[CODES[nib]] = nib << 4
        lo[CODES[nib]] = nib
    return hi, lo


_HI, _LO = _decode_tables()


def decode_3of6(src, n, dst=None):
    # Three chip bytes carry four symbols = two data bytes; an odd n ends with 1.5 chip bytes.
    # src may be bytes, bytearray or memoryview; it needs (3 * n + 1) // 2 bytes.
    if n < 0 or len(src) < (3 * n + 1) // 2:
        return None
    if dst is None:
        dst = bytearray(n)
    hi = _HI
    lo = _LO
    j = 0
    for i in range(0, (n >> 1) * 3, 3):
        v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2]
        x = hi[v >> 18] | lo[(v >> 12) & 63]
        y = hi[(v >> 6) & 63] | lo[v & 63]
        if (x | y) > 255:
            return None
        dst[j] = x
        dst[j + 1] = y
        j += 2
    if n & 1:
        i = (n >> 1) * 3
        v = (src[i] << 8) | src[i + 1]
        x = hi[v >> 10] | lo[(v >> 4) & 63]
        if x > 255:
            return None
        dst[j] = x
    return dst


def encode_3of6(data):
    # 12 chips per byte, packed MSB first; an odd count leaves 4 chips, filled with 0101
    # (rtl-wmbus's postamble after an odd byte count, meter-protocols.md §1.2)
    n = len(data)
    out = bytearray((3 * n + 1) // 2)
    acc = 0
    bits = 0
    k = 0
    for b in data:
        acc = (acc << 12) | (CODES[b >> 4] << 6) | CODES[b & 15]
        bits += 12
        while bits >= 8:
            bits -= 8
            out[k] = (acc >> bits) & 0xFF
            k += 1
        acc &= (1 << bits) - 1
    if bits:
        out[k] = ((acc << (8 - bits)) | (0x5 if bits == 4 else 0)) & 0xFF
    return bytes(out)


# ------------------------------------------------------------------------------------ CRC

_crc_t = None


def _crc_table():
    global _crc_t
    t = array("H", bytes(512))
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x3D65) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        t[i] = c
    _crc_t = t
    return t


def _crc(data, start, end):
    # data[start:end] without copying; the raw register (before the final XOR)
    t = _crc_t if _crc_t is not None else _crc_table()
    c = 0
    for b in memoryview(data)[start:end]:
        c = t[(c >> 8) ^ b] ^ ((c & 0xFF) << 8)
    return c


def crc_en13757(data, start=0, end=-1):
    if end < 0:
        end = len(data)
    return _crc(data, start, end) ^ 0xFFFF


def _block_ok(buf, s, e):
    # the CRC of buf[s:e] equals the big-endian CRC in buf[e:e+2]
    return (_crc(buf, s, e) ^ 0xFFFF) == ((buf[e] << 8) | buf[e + 1])


# ------------------------------------------------------------------------------ frame formats

def frame_a_len(l):
    # Format A: block 1 = L C M A (10 bytes) + CRC, then blocks of 16 data bytes + CRC, the last
    # holding (L - 9) mod 16 bytes. L counts the bytes after itself without the CRCs.
    if l < 9 or l > 255:
        return 0
    return l + 3 + ((l + 6) // 16) * 2


def frame_b_len(l):
    # Format B: L counts every byte after itself, CRCs included. At least block 1 (10 bytes) and
    # its CRC; a frame of 129 or 130 bytes would leave block 3 without data.
    if l < 11 or l > 255 or l == 128 or l == 129:
        return 0
    return l + 1


def t1_chip_len(l):
    # T1 carries format A in 3-of-6: 1.5 chip bytes per byte, rounded up
    n = frame_a_len(l)
    return (3 * n + 1) // 2 if n else 0


def frame_a_check(buf, start=0):
    l = buf[start] if len(buf) > start else 0
    n = frame_a_len(l)
    if n == 0 or len(buf) - start < n:
        return None, False
    out = bytearray(l + 1)
    ok = _block_ok(buf, start, start + 10)
    out[0:10] = memoryview(buf)[start:start + 10]
    s = start + 12
    k = 10
    end = start + n
    while s < end:
        e = s + 16
        if e > end - 2:
            e = end - 2
        if not _block_ok(buf, s, e):
            ok = False
        out[k:k + e - s] = memoryview(buf)[s:e]
        k += e - s
        s = e + 2
    return bytes(out), ok


def frame_b_check(buf, start=0):
    l = buf[start] if len(buf) > start else 0
    n = frame_b_len(l)
    if n == 0 or len(buf) - start < n:
        return None, False
    mv = memoryview(buf)
    if n <= 128:
        out = bytearray(n - 2)
        ok = _block_ok(buf, start, start + n - 2)
        out[0:n - 2] = mv[start:start + n - 2]
    else:
        out = bytearray(n - 4)
        ok = _block_ok(buf, start, start + 126)
        if not _block_ok(buf, start + 128, start + n - 2):
            ok = False
        out[0:126] = mv[start:start + 126]
        out[126:n - 4] = mv[start + 128:start + n - 2]
    out[0] = len(out) - 1
    return bytes(out), ok


# ------------------------------------------------------------------------------ duplicates

def _tdiff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


class Dedup:
    # Marks repeated copies of one telegram: meters that send each telegram twice, repeaters.
    # A copy is a telegram with the same bytes (from the L-field, without CRCs) as one of the
    # last `size` first copies, within window_ms of that first copy (ticks wrap at 2**30). The
    # window is not restarted by a copy, so a meter that really sends the same bytes again later
    # (a static telegram) is not hidden for ever. Holds references to `size` telegrams.
    def __init__(self, window_ms=5000, size=16):
        self.window_ms = window_ms
        self._d = [None] * size
        self._t = [0] * size
        self._i = 0
        self.dups = 0

    def check(self, data, now_ms):
        d = self._d
        t = self._t
        w = self.window_ms
        for k in range(len(d)):
            x = d[k]
            if x is not None and x == data:
                age = _tdiff(now_ms, t[k])
                if 0 <= age <= w:
                    self.dups += 1
                    return True
        i = self._i
        d[i] = data if isinstance(data, bytes) else bytes(data)
        t[i] = now_ms & _MASK
        self._i = (i + 1) % len(d)
        return False
