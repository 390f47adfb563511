# CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for frame integrity.
#
# Most MicroPython ports build binascii.crc32 in C; where a port leaves it out we fall back to a
# table-driven version in Python (the table is built once, 1 KiB, at import). Both give the same
# result as CPython's binascii.crc32, which tests check on shared vectors.
try:
    from binascii import crc32 as _native
except ImportError:
    _native = None

_table = None


def _build_table():
    t = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        t[i] = c
    return t


def _crc32_py(data, crc=0):
    global _table
    if _table is None:
        _table = _build_table()
    t = _table
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32(data, crc=0):
    if _native is not None:
        return _native(data, crc) & 0xFFFFFFFF
    return _crc32_py(data, crc)
