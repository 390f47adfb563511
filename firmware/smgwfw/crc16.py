# CRC-16 for the meter links (LMN-1): SML transport v1 and IEC 62056-46 HDLC (HCS/FCS).
#
#   x25(data, start=0, end=-1)     CRC-16/X-25 (also "IBM-SDLC", ISO 13239): polynomial 0x1021
#                                  reflected (0x8408), init 0xFFFF, reflected in/out, xorout
#                                  0xFFFF; check("123456789") = 0x906E. SML and HDLC send it
#                                  LSB first: 0x092F goes out as 2F 09.
#   kermit(data, start=0, end=-1)  CRC-16/KERMIT: the same reflected polynomial, init 0x0000, no
#                                  final XOR; check = 0x2189. Holley DTZ541 (some firmware) uses it
#                                  for SML and sends it MSB first: 0x7502 goes out as 75 02.
#
# Both cover data[start:end] (end=-1: to the end) and accept bytes, bytearray or memoryview, so a
# receiver checks a frame in its own buffer without copying it. Both use one 256-entry table,
# built at the first call (512 bytes as array('H')). meter-protocols.md §4.2 and §5.2.
from array import array

_table = None


def _build():
    global _table
    t = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        t[i] = c
    _table = t
    return t


def _run(c, data, start, end):
    t = _table if _table is not None else _build()
    if end < 0:
        end = len(data)
    if start != 0 or end != len(data):
        data = memoryview(data)[start:end]
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def x25(data, start=0, end=-1):
    return _run(0xFFFF, data, start, end) ^ 0xFFFF


def kermit(data, start=0, end=-1):
    return _run(0, data, start, end)
