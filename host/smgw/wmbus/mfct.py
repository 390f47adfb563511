"""Manufacturer-specific application data that is not EN 13757-3 records.

Some meters wrap a proprietary register format in an otherwise standard telegram (encrypted by
mode 5 like any other). ``decoder_for(manufacturer, device_type, version)`` names the decoder
for such a meter, or None; a decoder turns the decrypted application bytes into the same
``Record`` objects as ``smgw.wmbus.apl``, so values flow on unchanged.

Apator AT-WMBUS-16-2 water meters (APA, device type 6 or 7, version 5), the published vector V5
of meter-protocols.md §2.7. Facts (public: the open-source wmbusmeters project documents the
format from real telegrams): after the 2F2F filler come 8 bytes of header (a function byte,
date and fault flags), then registers, each a tag byte followed by a fixed number of bytes
that depends on the tag; 0xFF ends the data (padding to the AES block). Tag 0x10 (also 0xA1)
holds the total volume in litres, 4 bytes little-endian. A tag of unknown size ends decoding:
what follows cannot be framed, and a guess could report a wrong total.
"""

from __future__ import annotations

from typing import Callable

from smgw.wmbus.apl import AplError, Record

# tag -> bytes that follow it (the register sizes as observed in Apator 16-2 telegrams)
_APATOR_SIZES: dict[int, int] = {
    0x00: 4, 0x01: 3, 0x10: 4, 0xA1: 4, 0x11: 2, 0x40: 6, 0x41: 2, 0x42: 4, 0x43: 2, 0x44: 3,
    0x71: 9, 0x72: 13, 0x73: 17, 0x75: 25, 0x7B: 49,
    0x80: 10, 0x81: 10, 0x82: 10, 0x83: 10, 0x84: 10, 0x86: 10, 0x87: 10,
    0x85: 11, 0x88: 11, 0x8F: 11, 0x8A: 9, 0x8B: 6, 0x8C: 6, 0x8E: 7,
    0xA0: 4, 0xA2: 1, 0xA3: 7, 0xA4: 4, 0xA5: 1, 0xA9: 1, 0xAF: 1, 0xA6: 3,
    0xA7: 2, 0xA8: 2, 0xAA: 2, 0xAB: 2, 0xAC: 2, 0xAD: 2,
    0xB0: 5, 0xB1: 8, 0xB2: 16, 0xB3: 8, 0xB4: 2, 0xB5: 16,
    **{t: 3 for t in range(0xB6, 0xC0)}, **{t: 3 for t in range(0xC0, 0xC8)},
    0xD0: 3, 0xD3: 3, 0xF0: 4,
}
_APATOR_HEADER = 8


def apator162(data: bytes) -> list[Record]:
    """Records of an Apator 16-2 payload (after decryption, 2F2F fillers included or not)."""
    i = 0
    while i + 1 < len(data) and data[i] == 0x2F and data[i + 1] == 0x2F:
        i += 2
    start = i
    i += _APATOR_HEADER
    if i > len(data):
        raise AplError("truncated", f"Apator payload shorter than its {_APATOR_HEADER}-byte "
                       "header", start)
    records: list[Record] = []
    while i < len(data):
        tag = data[i]
        if tag == 0xFF:
            break
        size = _APATOR_SIZES.get(tag)
        if size is None:
            break  # an unknown register: nothing after it can be framed (see the module doc)
        if i + 1 + size > len(data):
            raise AplError("truncated", f"Apator register 0x{tag:02X} needs {size} bytes, "
                           f"{len(data) - i - 1} left", i)
        body = data[i + 1:i + 1 + size]
        if tag in (0x10, 0xA1) and not records:
            litres = int.from_bytes(body, "little")
            records.append(Record(0, 0, 0, "instantaneous", "volume", "m3",
                                  f"{litres // 1000}.{litres % 1000:03d}", raw=litres,
                                  exponent=-3, data_type="apator_register", offset=i))
        i += 1 + size
    if not records:
        raise AplError("vif", "Apator payload without a total-volume register", start)
    return records


def decoder_for(manufacturer: str, device_type: int, version: int
                ) -> Callable[[bytes], list[Record]] | None:
    if manufacturer == "APA" and device_type in (0x06, 0x07) and version == 0x05:
        return apator162
    return None
