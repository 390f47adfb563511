"""SML encoder (Smart Message Language, transport v1): pure functions, bytes out.

What an eHZ / mME meter pushes on its info interface: an SML *file* of three messages
(SML_PublicOpen.Res, SML_GetList.Res, SML_PublicClose.Res) inside a transport frame::

    1B1B1B1B 01010101 <file, escaped> 00*PP 1B1B1B1B 1A PP C1 C2

Layers, bottom up (see /work/shared/design/meter-protocols.md section 4):

* TL bytes (``_tl``): type nibble plus a length; non-list lengths count the TL byte(s) too,
  list lengths count elements; long lengths continue in further TL bytes, 4 bits each.
* Primitives: ``octet``, ``uint``, ``sint``, ``boolean``, ``sml_list``, ``OPTIONAL`` (``01``).
  Integers use the shortest width that holds the value unless a width is given.
* Messages: ``message`` wraps a body with transaction id, group, abortOnError, tag, CRC and
  ``00``; ``open_res``, ``get_list_res``, ``list_entry``, ``close_res`` build the bodies.
* Transport: ``escape`` doubles ``1B1B1B1B`` found on a 4-byte boundary, ``transport_frame``
  adds start, padding, end and the frame CRC.

CRCs: CRC-16/X-25 for transport and every message, sent LSB first (the normal case), or
CRC-16/KERMIT sent MSB first (Holley DTZ541 firmware).

Any field that takes a value also takes ``UInt(v, width)`` / ``Int(v, width)`` to force a width
(real meters often send fixed Unsigned64/Integer32 where a shorter form would do) or
``Raw(bytes)`` to insert an already-encoded element verbatim (meter quirks such as the DTZ541's
bare Unsigned32 valTime).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

# ------------------------------------------------------------------ constants

ESC = b"\x1b\x1b\x1b\x1b"
START = ESC + b"\x01\x01\x01\x01"
END = ESC + b"\x1a"
OPTIONAL = b"\x01"  # an absent optional element
END_OF_MSG = b"\x00"

TAG_OPEN_RES = 0x0101
TAG_CLOSE_RES = 0x0201
TAG_GET_LIST_RES = 0x0701

LIST_NAME = bytes.fromhex("0100620AFFFF")  # the listName most meters send, if any

# DLMS unit codes used by the simulator
UNIT_W = 27
UNIT_WH = 30
UNIT_V = 35
UNIT_A = 33
UNIT_HZ = 44

# Entry that escape_test=True appends: a manufacturer-specific OBIS code (group A = 129), made up
# for this purpose; no real meter sends it.
ESCAPE_TEST_OBIS = bytes.fromhex("8181C782FEFF")

T_OCTET, T_BOOL, T_INT, T_UINT, T_LIST = 0x0, 0x4, 0x5, 0x6, 0x7

# ------------------------------------------------------------------ CRCs
#
# Both CRCs are the reflected CCITT polynomial (0x8408). binascii.crc_hqx is the non-reflected
# one (XModem); fed bit-reversed bytes its result is the bit-reversed reflected CRC, which lets
# C do the work (43,200 frames for a simulated day must encode in seconds).

_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _rev16(v: int) -> int:
    return (_REV8[v & 0xFF] << 8) | _REV8[v >> 8]


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25: poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF; check("123456789")
    = 0x906E."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV8), 0xFFFF)) ^ 0xFFFF


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT: poly 0x1021 reflected, init 0, no xorout; check("123456789") = 0x2189."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV8), 0))


def crc_bytes(data: bytes, crc: str = "x25") -> bytes:
    """The two CRC bytes as sent: X-25 LSB first, KERMIT MSB first."""
    if crc == "x25":
        return crc16_x25(data).to_bytes(2, "little")
    if crc == "kermit":
        return crc16_kermit(data).to_bytes(2, "big")
    raise ValueError(f"crc must be 'x25' or 'kermit', got {crc!r}")


# ------------------------------------------------------------------ value wrappers


@dataclass(frozen=True)
class UInt:
    """Unsigned integer; ``width`` in bytes (1..8), None for the shortest."""

    value: int
    width: int | None = None


@dataclass(frozen=True)
class Int:
    """Signed (two's complement) integer; ``width`` in bytes (1..8), None for the shortest."""

    value: int
    width: int | None = None


class Raw(bytes):
    """An already-encoded SML element, inserted verbatim."""


# ------------------------------------------------------------------ TL and primitives


def _tl(type_: int, n: int, is_list: bool = False) -> bytes:
    """TL byte(s) for ``n`` data bytes (or ``n`` elements of a list)."""
    if n < 0:
        raise ValueError("negative length")
    k = 1
    if is_list:
        while n >= 1 << (4 * k):
            k += 1
        total = n
    else:
        while n + k >= 1 << (4 * k):
            k += 1
        total = n + k
    out = bytearray()
    for i in range(k - 1, -1, -1):
        b = (total >> (4 * i)) & 0x0F
        if i == k - 1:
            b |= type_ << 4
        if i:
            b |= 0x80
        out.append(b)
    return bytes(out)


def octet(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    return _tl(T_OCTET, len(data)) + data


def _shortest_unsigned(v: int) -> int:
    return max(1, (v.bit_length() + 7) // 8)


def _shortest_signed(v: int) -> int:
    n = 1
    while not -(1 << (8 * n - 1)) <= v < (1 << (8 * n - 1)):
        n += 1
    return n


def uint(v: int, width: int | None = None) -> bytes:
    if v < 0:
        raise ValueError(f"unsigned value {v} < 0")
    if width is None:
        width = _shortest_unsigned(v)
    if not 1 <= width <= 8:
        raise ValueError(f"integer width {width} outside 1..8")
    return bytes((0x60 | (width + 1),)) + v.to_bytes(width, "big")


def sint(v: int, width: int | None = None) -> bytes:
    if width is None:
        width = _shortest_signed(v)
    if not 1 <= width <= 8:
        raise ValueError(f"integer width {width} outside 1..8")
    return bytes((0x50 | (width + 1),)) + v.to_bytes(width, "big", signed=True)


def boolean(v: bool) -> bytes:
    return b"\x42\x01" if v else b"\x42\x00"


def sml_list(items: Sequence[bytes]) -> bytes:
    return _tl(T_LIST, len(items), is_list=True) + b"".join(items)


def element(x: Any, kind: str = "auto") -> bytes:
    """Encodes one field. ``kind`` says how a plain int is sent: "uint", "int", or "auto"
    (unsigned if >= 0, else signed). None is the absent optional ``01``."""
    if x is None:
        return OPTIONAL
    if isinstance(x, Raw):
        return bytes(x)
    if isinstance(x, UInt):
        return uint(x.value, x.width)
    if isinstance(x, Int):
        return sint(x.value, x.width)
    if isinstance(x, bool):
        return boolean(x)
    if isinstance(x, int):
        if kind == "uint" or (kind == "auto" and x >= 0):
            return uint(x)
        return sint(x)
    if isinstance(x, (bytes, bytearray, memoryview, str)):
        return octet(x)
    raise TypeError(f"cannot encode {x!r} as an SML element")


def sec_index(v: int | UInt) -> Raw:
    """SML_Time choice 1 (secIndex): ``72 62 01 <Unsigned>``."""
    return Raw(b"\x72\x62\x01" + element(v, "uint"))


def timestamp(v: int | UInt) -> Raw:
    """SML_Time choice 2 (UNIX timestamp): ``72 62 02 <Unsigned>``."""
    return Raw(b"\x72\x62\x02" + element(v, "uint"))


def sml_time(x: Any) -> bytes:
    """An int is a secIndex; Raw goes verbatim (see ``timestamp``, or a bare Unsigned32 for the
    DTZ541 quirk); None is absent."""
    if x is None or isinstance(x, Raw):
        return element(x)
    return bytes(sec_index(x))


_OBIS_RE = re.compile(r"^(?:(\d+)-(\d+):)?(\d+)\.(\d+)\.(\d+)(?:[*&](\d+))?$")


def obis(code: str | bytes) -> bytes:
    """``"1-0:1.8.0"`` / ``"1-0:96.50.1*1"`` / ``"129-129:199.130.3*255"`` / ``"1.8.0"``
    (A-B = 1-0) or 6 raw bytes -> the 6 wire bytes A B C D E F (F defaults to 255)."""
    if isinstance(code, (bytes, bytearray)):
        if len(code) != 6:
            raise ValueError(f"OBIS code must be 6 bytes, got {len(code)}")
        return bytes(code)
    m = _OBIS_RE.match(code.strip())
    if not m:
        raise ValueError(f"bad OBIS code {code!r}")
    a, b, c, d, e, f = m.groups()
    parts = [int(a or 1), int(b or 0), int(c), int(d), int(e), int(f if f is not None else 255)]
    if any(not 0 <= p <= 255 for p in parts):
        raise ValueError(f"bad OBIS code {code!r}")
    return bytes(parts)


# ------------------------------------------------------------------ messages


def message(
    transaction_id: bytes,
    tag: int,
    body: bytes,
    *,
    crc: str = "x25",
    tag_width: int | None = None,
    group_no: int = 0,
    abort_on_error: int = 0,
) -> bytes:
    """SML_Message list(6); the CRC covers ``76`` .. end of messageBody."""
    head = b"".join(
        (
            b"\x76",
            octet(transaction_id),
            uint(group_no),
            uint(abort_on_error),
            b"\x72",
            uint(tag, tag_width),
            body,
        )
    )
    return head + b"\x63" + crc_bytes(head, crc) + END_OF_MSG


def open_res(
    server_id: bytes,
    req_file_id: bytes,
    *,
    codepage: Any = None,
    client_id: Any = None,
    ref_time: Any = None,
    sml_version: Any = None,
) -> bytes:
    return sml_list(
        [
            element(codepage),
            element(client_id),
            element(req_file_id),
            element(server_id),
            sml_time(ref_time),
            element(sml_version, "uint"),
        ]
    )


def list_entry(
    obj_name: str | bytes,
    value: Any,
    *,
    status: Any = None,
    val_time: Any = None,
    unit: Any = None,
    scaler: Any = None,
    signature: Any = None,
) -> bytes:
    """SML_ListEntry list(7). ``value``: int (unsigned if >= 0), UInt/Int, bytes/str (octet
    string), bool, Raw or None."""
    return sml_list(
        [
            octet(obis(obj_name)),
            element(status, "uint"),
            sml_time(val_time),
            element(unit, "uint"),
            element(scaler, "int"),
            element(value),
            element(signature),
        ]
    )


def get_list_res(
    server_id: bytes,
    entries: Sequence[bytes],
    *,
    client_id: Any = None,
    list_name: Any = None,
    act_sensor_time: Any = None,
    list_signature: Any = None,
    act_gateway_time: Any = None,
) -> bytes:
    return sml_list(
        [
            element(client_id),
            element(server_id),
            element(list_name),
            sml_time(act_sensor_time),
            sml_list(entries),
            element(list_signature),
            sml_time(act_gateway_time),
        ]
    )


def close_res(signature: Any = None) -> bytes:
    return sml_list([element(signature)])


# ------------------------------------------------------------------ transport


def escape(data: bytes) -> bytes:
    """Doubles every ``1B1B1B1B`` that sits on a 4-byte boundary of the file data."""
    if ESC not in data:
        return bytes(data)
    out = bytearray()
    for i in range(0, len(data), 4):
        block = data[i : i + 4]
        out += block
        if block == ESC:
            out += ESC
    return bytes(out)


def has_aligned_escape(data: bytes) -> bool:
    return any(data[i : i + 4] == ESC for i in range(0, len(data) - 3, 4))


def transport_frame(file: bytes, crc: str = "x25", *, always_pad: bool = False) -> bytes:
    """Start sequence, escaped file, 0-3 zero pad bytes, end sequence with the pad count, CRC
    over everything before it. ``always_pad`` mimics DZG meters, which send 4 pad bytes (PP=4)
    instead of none when the data is already aligned."""
    body = bytearray(START)
    body += escape(file)
    pad = -len(body) % 4
    if always_pad and pad == 0:
        pad = 4
    body += bytes(pad)
    body += END
    body.append(pad)
    return bytes(body) + crc_bytes(body, crc)


# ------------------------------------------------------------------ a whole file


def _transaction_ids(transaction_id: int | bytes | Sequence[bytes]) -> list[bytes]:
    if isinstance(transaction_id, int):
        return [((transaction_id + k) & 0xFFFFFFFF).to_bytes(4, "big") for k in range(3)]
    if isinstance(transaction_id, (bytes, bytearray)):
        n = len(transaction_id)
        base = int.from_bytes(transaction_id, "big")
        return [((base + k) % (1 << (8 * n))).to_bytes(n, "big") for k in range(3)]
    ids = [bytes(t) for t in transaction_id]
    if len(ids) != 3:
        raise ValueError("transaction_id sequence must hold 3 ids (open, get-list, close)")
    return ids


def reading_entry(r: dict) -> bytes:
    """A reading dict -> SML_ListEntry. Keys: obis (required), value, status, val_time, unit,
    scaler, signature."""
    unknown = set(r) - {"obis", "value", "status", "val_time", "unit", "scaler", "signature"}
    if unknown:
        raise ValueError(f"unknown reading keys {sorted(unknown)}")
    return list_entry(
        r["obis"],
        r.get("value"),
        status=r.get("status"),
        val_time=r.get("val_time"),
        unit=r.get("unit"),
        scaler=r.get("scaler"),
        signature=r.get("signature"),
    )


def encode_sml_file(
    server_id: bytes,
    readings: Iterable[dict],
    *,
    transaction_id: int | bytes | Sequence[bytes],
    act_sensor_time: Any = None,
    crc: str = "x25",
    escape_test: bool = False,
    client_id: Any = None,
    req_file_id: Any = None,
    ref_time: Any = None,
    sml_version: Any = None,
    codepage: Any = None,
    list_name: Any = None,
    tag_width: int | None = None,
) -> bytes:
    """The SML file (three messages), without transport framing."""
    tids = _transaction_ids(transaction_id)
    server_id = bytes(server_id)
    entries = [reading_entry(r) for r in readings]

    def build(extra: list[bytes]) -> bytes:
        return b"".join(
            (
                message(
                    tids[0],
                    TAG_OPEN_RES,
                    open_res(
                        server_id,
                        tids[0] if req_file_id is None else req_file_id,
                        codepage=codepage,
                        client_id=client_id,
                        ref_time=ref_time,
                        sml_version=sml_version,
                    ),
                    crc=crc,
                    tag_width=tag_width,
                ),
                message(
                    tids[1],
                    TAG_GET_LIST_RES,
                    get_list_res(
                        server_id,
                        entries + extra,
                        client_id=client_id,
                        list_name=list_name,
                        act_sensor_time=act_sensor_time,
                    ),
                    crc=crc,
                    tag_width=tag_width,
                ),
                message(tids[2], TAG_CLOSE_RES, close_res(), crc=crc, tag_width=tag_width),
            )
        )

    if not escape_test:
        return build([])
    # one octet string whose four 1B bytes land on a 4-byte boundary: its data starts at the
    # same offset whatever k is (the TL stays one byte), so exactly one k in 0..3 fits
    for k in range(4):
        value = bytes(k) + ESC + bytes(3 - k)
        file = build([list_entry(ESCAPE_TEST_OBIS, value)])
        if has_aligned_escape(file):
            return file
    raise AssertionError("unreachable: no alignment gave an escape")  # pragma: no cover


def encode_file(
    server_id: bytes,
    readings: Iterable[dict],
    *,
    transaction_id: int | bytes | Sequence[bytes],
    act_sensor_time: Any = None,
    crc: str = "x25",
    escape_test: bool = False,
    always_pad: bool = False,
    **options: Any,
) -> bytes:
    """A complete transport frame holding SML_PublicOpen.Res, SML_GetList.Res (one list entry
    per reading) and SML_PublicClose.Res.

    ``readings``: dicts like ``{"obis": "1-0:1.8.0", "value": 55432991, "scaler": -1,
    "unit": 30, "status": 0x182}``; optional ``val_time`` (int secIndex or Raw) and
    ``signature``. ``transaction_id``: int (4-byte ids n, n+1, n+2), bytes (a counter of that
    width) or three explicit ids. ``act_sensor_time``: secIndex int, Raw or None (absent).
    ``crc``: "x25" or "kermit" (transport and message CRCs). ``escape_test`` appends an entry
    whose data puts ``1B1B1B1B`` on a 4-byte boundary, so the transport must escape it.
    ``options``: client_id, req_file_id (default: the first transaction id), ref_time,
    sml_version, codepage, list_name, tag_width (None: shortest, ``63 0101``; 4: ``65 00000101``).
    ``always_pad``: see ``transport_frame``.
    """
    file = encode_sml_file(
        server_id,
        readings,
        transaction_id=transaction_id,
        act_sensor_time=act_sensor_time,
        crc=crc,
        escape_test=escape_test,
        **options,
    )
    return transport_frame(file, crc, always_pad=always_pad)
