"""SML (Smart Message Language, transport version 1) decoder for eHZ/mME/MSB meter pushes.

Layers (design note meter-protocols.md §4):

1. :func:`decode_transport` -- one transport frame ``1B1B1B1B 01010101 <file> 00.. 1B1B1B1B 1A PP
   CRC``: undo the escaping, check the padding, check the CRC (X-25 sent LSB first; KERMIT sent
   MSB first as the fallback some Holley DTZ541 firmware needs).
2. :func:`decode_frame` -- the SML file inside: every ``SML_Message`` with its own CRC, the
   bodies PublicOpen.Res / GetList.Res / PublicClose.Res decoded field by field (other bodies are
   kept as generic trees), and the list entries of every GetList.Res as :class:`Reading`\\ s with
   exact decimal values.
3. :func:`split_frames` -- a capture of several frames (with junk between them) -> frames.

Whose fault: everything that goes wrong in the bytes is the meter's (or the line's) and raises
:class:`SmlError` with a ``code`` and the gateway catalogue id (10263 checksum, 10274 syntax).
Nothing else escapes for any input: sizes, list counts and nesting depth are bounded before
anything is allocated or recursed into (``MAX_FRAME_BYTES``, ``MAX_DEPTH``, ``MAX_TL_BYTES``).
A wrong *message* CRC does not raise: it is reported per message (``SmlMessage.crc_ok``,
``Reading.message_crc_ok``, ``SmlFile.errors``) and the caller's policy decides.

Why not PyPI ``smllib`` (1.7, read and run against the §4.7/§4.8 frames before writing this):

* no message CRCs are checked at all (a frame with a corrupted message CRC decodes silently);
* the transport CRC is either X-25 or KERMIT, chosen when the reader is built: no fallback;
* hostile input leaks ``IndexError`` (TL byte or boolean at the end of the data),
  ``RecursionError`` (5000 nested lists) and allocates ``[None] * count`` for any list count a
  TL announces (``7F FF FF FF FF FF 0F`` builds 16 million entries before failing);
* escape sequences are replaced anywhere, not on the 4-byte grid, and the padding is not checked;
* values are floats (``round(value * 10**scaler, ...)``), not exact decimals;
* no DZG DVS74 correction, and errors are untyped (``ValueError``, ``CrcError`` with no reason);
* GPL-3.0 (this project is Apache-2.0).

Wrapping it would have meant re-doing the transport layer, the CRCs, the limits and the values,
so this module is a complete decoder of its own (about 3x faster than smllib on the same frame).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from smgw.meters.obis import obis_name
from smgw.meters.units import unit_symbol

__all__ = [
    "MAX_DEPTH",
    "MAX_FRAME_BYTES",
    "Reading",
    "SmlError",
    "SmlFile",
    "SmlMessage",
    "TransportResult",
    "crc_kermit",
    "crc_x25",
    "decode_file",
    "decode_frame",
    "decode_transport",
    "meter_id_text",
    "split_frames",
    "to_json",
]

# ------------------------------------------------------------------------------------ limits

MAX_FRAME_BYTES = 1 << 20  # a meter push is a few hundred bytes; profiles a few kB
MAX_DEPTH = 16  # SML nests at most ~8 deep (message > body > valList > entry > value > time)
MAX_TL_BYTES = 6  # 6 TL bytes = 24-bit length; anything longer cannot fit in MAX_FRAME_BYTES
MAX_INT_BYTES = 8  # Integer64 / Unsigned64

CATALOGUE_CRC = 10263  # "Prüfsumme der Daten von Zähler … ist ungültig"
CATALOGUE_SYNTAX = 10274  # "Telegramm … hat eine unverständliche Syntax"

ESC = b"\x1b\x1b\x1b\x1b"
START = ESC + b"\x01\x01\x01\x01"

TAG_NAMES: dict[int, str] = {
    0x0100: "PublicOpen.Req", 0x0101: "PublicOpen.Res",
    0x0200: "PublicClose.Req", 0x0201: "PublicClose.Res",
    0x0300: "GetProfilePack.Req", 0x0301: "GetProfilePack.Res",
    0x0400: "GetProfileList.Req", 0x0401: "GetProfileList.Res",
    0x0500: "GetProcParameter.Req", 0x0501: "GetProcParameter.Res",
    0x0600: "SetProcParameter.Req",
    0x0700: "GetList.Req", 0x0701: "GetList.Res",
    0x0801: "GetCosem.Res", 0x0901: "SetCosem.Res", 0x0A01: "ActionCosem.Res",
    0xFF01: "Attention.Res",
}

# DZG DVS74 (libsml SML_WORKAROUND_DZG_NEGATIVE): positive power sent as a 1..3-byte *signed*
# integer. Applied to these OBIS codes only, when the meter is in the affected range.
DZG_DVS74_OBIS = frozenset({bytes.fromhex("0100100700ff")})
# the server id's serial (bytes 6..9, printed as 8 decimal digits) starts with this digit
DZG_DVS74_SERIAL_PREFIX = "6"

# octet-string values that are a DIN 43863-5 server id: printed "1EBZ0100597780" as the value
_ID_OBIS = frozenset({bytes.fromhex("0100600100ff"), bytes.fromhex("0100000009ff")})


class SmlError(ValueError):
    """The bytes are not a usable SML frame: the meter's (or the line's) fault.

    ``code``: ``crc`` (transport checksum), ``truncated`` (data ends early, or a length / list
    count larger than the data), ``escape`` (bad escape sequence), ``padding``, ``syntax``
    (types, structure, values out of range, trailing bytes), ``oversized`` (frame or TL beyond
    the limits), ``depth`` (nesting beyond ``MAX_DEPTH``). ``offset``: byte position in the
    frame (transport) or in the unescaped SML file (messages), when known.
    """

    def __init__(self, code: str, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.code = code
        self.offset = offset
        self.reason = message

    @property
    def catalogue_id(self) -> int:
        return CATALOGUE_CRC if self.code == "crc" else CATALOGUE_SYNTAX

    def within(self, context: str) -> SmlError:
        e = SmlError(self.code, f"{context}: {self.reason}", self.offset)
        e.__cause__ = self.__cause__
        return e


# -------------------------------------------------------------------------------------- CRCs
# Both CRCs are the reflected form of CRC-16/CCITT (poly 0x1021). binascii.crc_hqx computes the
# non-reflected form in C, so reflect the input bytes and the result (X-25 init 0xFFFF, xorout
# 0xFFFF; KERMIT init 0, xorout 0): 30x faster than a Python table loop.

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _rev16(v: int) -> int:
    return (_REV[v & 0xFF] << 8) | _REV[v >> 8]


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25 (check value for ``b"123456789"``: 0x906E)."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV), 0xFFFF)) ^ 0xFFFF


def crc_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (check value for ``b"123456789"``: 0x2189)."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV), 0))


def _swap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


# --------------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class TransportResult:
    payload: bytes  # the SML file: unescaped, padding removed
    crc_ok: bool
    crc_kind: str | None  # "x25" | "kermit" | None (neither matched)
    crc_sent: int  # the two CRC bytes as sent, big-endian
    padding: int
    length: int  # bytes of the frame
    quirks: tuple[str, ...] = ()  # "padding-4": DZG sends PP = 4


def decode_transport(frame: bytes) -> TransportResult:
    """Unescape one transport-v1 frame and check padding and CRC (a bad CRC is reported in the
    result, not raised: :func:`decode_frame` decides). Raises :class:`SmlError` for framing."""
    frame = bytes(frame)
    n = len(frame)
    if n > MAX_FRAME_BYTES:
        raise SmlError("oversized", f"frame of {n} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    if frame[:8] != START:
        if START.startswith(frame):
            raise SmlError("truncated", f"frame ends inside the start sequence ({n} bytes)")
        raise SmlError("syntax", "frame does not start with the SML start sequence "
                                 f"1b1b1b1b01010101 (got {frame[:8].hex()})", 0)
    chunks: list[bytes] = []
    pos = 8
    while True:
        i = frame.find(ESC, pos)
        while i != -1 and (i - 8) & 3:  # escapes only count on the 4-byte grid
            i = frame.find(ESC, i + 1)
        if i == -1 or i + 8 > n:
            raise SmlError("truncated", f"frame of {n} bytes has no end sequence 1b1b1b1b1a")
        chunks.append(frame[pos:i])
        nxt = frame[i + 4:i + 8]
        if nxt == ESC:  # escaped 1b1b1b1b in the data
            chunks.append(ESC)
            pos = i + 8
            continue
        if nxt[0] == 0x1A:
            end = i + 8
            break
        if nxt == b"\x01\x01\x01\x01":
            raise SmlError("escape", "a new start sequence inside the frame (the frame before it "
                                     "was cut off)", i)
        raise SmlError("escape", f"unknown escape sequence 1b1b1b1b{nxt.hex()}", i)
    if end != n:
        raise SmlError("syntax", f"{n - end} bytes after the end of the frame", end)
    data = b"".join(chunks)
    pad = frame[end - 3]
    quirks: tuple[str, ...] = ()
    if pad == 4:  # DZG: a whole block of zeros when the data was already aligned
        quirks = ("padding-4",)
    elif pad > 3:
        raise SmlError("padding", f"padding count {pad} in the end sequence (0..3 allowed, 4 "
                                  "tolerated)", end - 3)
    if pad > len(data):
        raise SmlError("padding", f"padding count {pad} but only {len(data)} data bytes", end - 3)
    if pad and data[-pad:].count(0) != pad:
        raise SmlError("padding", f"padding bytes are not zero: {data[-pad:].hex()}",
                       end - 8 - pad)
    payload = data[:len(data) - pad]
    sent = (frame[-2] << 8) | frame[-1]
    body = frame[:-2]
    if _swap16(crc_x25(body)) == sent:
        kind: str | None = "x25"
    elif crc_kermit(body) == sent:
        kind = "kermit"
    else:
        kind = None
    return TransportResult(payload, kind is not None, kind, sent, pad, n, quirks)


def split_frames(data: bytes) -> list[bytes]:
    """Cut a capture (several concatenated transport frames) into frames.

    Bytes before the first start sequence, between frames and after the last complete frame are
    skipped (a capture starts and ends in the middle of a frame). A start sequence whose frame
    never ends is skipped too; decode a single frame with :func:`decode_frame` to learn why.
    Never raises."""
    data = bytes(data)
    n = len(data)
    frames: list[bytes] = []
    pos = 0
    while True:
        s = data.find(START, pos)
        if s == -1:
            return frames
        end = _frame_end(data, s, n)
        if end == -1:
            pos = s + 1
            continue
        frames.append(data[s:end])
        pos = end


def _frame_end(data: bytes, s: int, n: int) -> int:
    pos = s + 8
    limit = min(n, s + MAX_FRAME_BYTES)
    while True:
        i = data.find(ESC, pos, limit)
        while i != -1 and (i - s) & 3:
            i = data.find(ESC, i + 1, limit)
        if i == -1 or i + 8 > limit:
            return -1
        nxt = data[i + 4:i + 8]
        if nxt == ESC:
            pos = i + 8
        elif nxt[0] == 0x1A:
            return i + 8
        else:
            return -1


# ------------------------------------------------------------------------------------ results


@dataclass
class Reading:
    obis: str  # "1-0:1.8.0" (F = 255 left out), or the hex of an objName that is not 6 bytes
    raw: int | bytes | bool | list | None  # the value as sent (list: SML 1.04 list-type value)
    scaler: int | None
    unit: str | None  # symbol ("Wh"); "" for 255 (count); None if absent or an unknown code
    unit_code: int | None
    value: str | None  # exact decimal raw*10^scaler; text for printable octets; else None
    status: int | None
    val_time: dict | None  # {"kind": "secIndex"|"timestamp"|"localTimestamp", "value": ...}
    signature: bytes | None  # valueSignature
    server_id: bytes | None  # of the GetList.Res this entry came from
    obis_bytes: bytes = b""
    raw_type: str = "int"  # "int" | "uint" | "bool" | "octets" | "list" | "none"
    message_crc_ok: bool = True
    quirks: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        return obis_name(self.obis_bytes) if len(self.obis_bytes) == 6 else None


@dataclass
class OpenResponse:
    codepage: bytes | None
    client_id: bytes | None
    req_file_id: bytes | None
    server_id: bytes | None
    ref_time: dict | None
    sml_version: int | None


@dataclass
class GetListResponse:
    client_id: bytes | None
    server_id: bytes | None
    list_name: bytes | None
    act_sensor_time: dict | None
    readings: list[Reading]
    list_signature: bytes | None
    act_gateway_time: dict | None


@dataclass
class CloseResponse:
    global_signature: bytes | None


@dataclass
class SmlMessage:
    index: int
    offset: int  # of the message's list TL in the SML file
    transaction_id: bytes | None
    group_no: int | None
    abort_on_error: int | None
    tag: int
    type: str  # "GetList.Res", … or "0x1234" for an unknown tag
    body: Any  # OpenResponse | GetListResponse | CloseResponse | generic tree
    crc_ok: bool
    crc_kind: str | None
    crc_sent: int


@dataclass
class SmlFile:
    crc_ok: bool | None  # transport CRC; None when decoded without transport (decode_file)
    crc_kind: str | None
    messages: list[SmlMessage]
    readings: list[Reading]
    server_id: bytes | None
    errors: list[str] = field(default_factory=list)  # problems that did not stop decoding
    quirks: list[str] = field(default_factory=list)  # tolerated deviations ("padding-4", ...)

    @property
    def messages_crc_ok(self) -> bool:
        return all(m.crc_ok for m in self.messages)

    @property
    def meter_id(self) -> str | None:
        return meter_id_text(self.server_id)


# ------------------------------------------------------------------------------------- decode


def decode_frame(frame: bytes, *, strict_crc: bool = True, dzg_fix: str = "auto") -> SmlFile:
    """Decode one transport frame completely.

    ``strict_crc``: a transport CRC that is neither X-25 nor KERMIT raises ``SmlError("crc")``;
    with ``False`` the frame is decoded anyway and ``crc_ok`` is False. Message CRCs never raise.
    ``dzg_fix``: "auto" (DZG meters in the affected serial range), "on" or "off"."""
    t = decode_transport(frame)
    if not t.crc_ok and strict_crc:
        body = bytes(frame)[:-2]
        raise SmlError("crc", f"transport CRC mismatch: sent {t.crc_sent:04x}, X-25 gives "
                              f"{_swap16(crc_x25(body)):04x} (LSB first), KERMIT gives "
                              f"{crc_kermit(body):04x}")
    f = decode_file(t.payload, crc_kind=t.crc_kind, dzg_fix=dzg_fix)
    f.crc_ok = t.crc_ok
    f.crc_kind = t.crc_kind
    f.quirks[:0] = t.quirks
    if not t.crc_ok:
        f.errors.insert(0, f"transport CRC mismatch (sent {t.crc_sent:04x})")
    return f


def decode_file(payload: bytes, *, crc_kind: str | None = None, dzg_fix: str = "auto") -> SmlFile:
    """Decode an SML file that is already out of its transport frame (``crc_ok`` is None).
    ``crc_kind`` ("x25"/"kermit"): which message CRC to try first."""
    if dzg_fix not in ("auto", "on", "off"):
        raise ValueError(f"dzg_fix must be 'auto', 'on' or 'off', not {dzg_fix!r}")
    payload = bytes(payload)
    if len(payload) > MAX_FRAME_BYTES:
        raise SmlError("oversized", f"SML file of {len(payload)} bytes exceeds the limit")
    r = _Reader(payload, dzg_fix)
    messages: list[SmlMessage] = []
    errors: list[str] = []
    n = len(payload)
    while r.pos < n:
        if payload[r.pos] == 0x00:  # fill bytes between messages (libsml skips them too)
            r.pos += 1
            continue
        msg = r.message(len(messages), crc_kind)
        messages.append(msg)
        if not msg.crc_ok:
            errors.append(f"message {msg.index} ({msg.type}): CRC mismatch (sent "
                          f"{msg.crc_sent:04x})")
    if not messages:
        raise SmlError("syntax", "the SML file holds no message")
    readings: list[Reading] = []
    server_id = None
    open_server_id = None
    for msg in messages:
        if isinstance(msg.body, GetListResponse):
            if server_id is None:
                server_id = msg.body.server_id
            if not msg.crc_ok:
                for rd in msg.body.readings:
                    rd.message_crc_ok = False
            readings.extend(msg.body.readings)
        elif isinstance(msg.body, OpenResponse) and open_server_id is None:
            open_server_id = msg.body.server_id
    return SmlFile(None, None, messages, readings, server_id or open_server_id, errors)


class _Reader:
    """Cursor over one SML file. Every read checks its bounds first."""

    __slots__ = ("buf", "dzg", "n", "pos")

    def __init__(self, buf: bytes, dzg_fix: str) -> None:
        self.buf = buf
        self.n = len(buf)
        self.pos = 0
        self.dzg = dzg_fix

    # -- TL and primitives ------------------------------------------------------------------

    def tl(self) -> tuple[int, int, int]:
        """-> (type bits 0x00/0x40/0x50/0x60/0x70, length field, number of TL bytes)."""
        buf, pos = self.buf, self.pos
        if pos >= self.n:
            raise SmlError("truncated", "data ends where a value should start", pos)
        b = buf[pos]
        typ = b & 0x70
        length = b & 0x0F
        k = 1
        while b & 0x80:
            if k >= MAX_TL_BYTES:
                raise SmlError("oversized", f"type-length field longer than {MAX_TL_BYTES} "
                                            "bytes", pos)
            if pos + k >= self.n:
                raise SmlError("truncated", "data ends inside a type-length field", pos)
            b = buf[pos + k]
            if b & 0x70:
                raise SmlError("syntax", f"TL continuation byte {b:02x} has type bits set",
                               pos + k)
            length = (length << 4) | (b & 0x0F)
            k += 1
        self.pos = pos + k
        return typ, length, k

    def _data(self, length: int, k: int, start: int) -> tuple[int, int]:
        size = length - k
        if size < 0:
            raise SmlError("syntax", f"length {length} is shorter than its {k} TL bytes", start)
        end = self.pos + size
        if end > self.n:
            raise SmlError("truncated", f"value of {size} bytes but only {self.n - self.pos} "
                                        "left", start)
        return self.pos, end

    def octets(self, what: str, optional: bool = True) -> bytes | None:
        start = self.pos
        if start < self.n and self.buf[start] == 0x01:
            self.pos = start + 1
            if optional:
                return None
            raise SmlError("syntax", f"{what} is missing", start)
        typ, length, k = self.tl()
        if typ != 0x00 or length == 0:
            raise SmlError("syntax", f"{what} must be an octet string, got TL "
                                     f"{self.buf[start]:02x}", start)
        a, b = self._data(length, k, start)
        self.pos = b
        return self.buf[a:b]

    def number(self, what: str, optional: bool = True) -> int | None:
        """An Integer or Unsigned of any length 1..8 (shortened integers are legal in practice);
        signed values are sign-extended from the bytes actually sent."""
        buf, start = self.buf, self.pos
        if start >= self.n:
            raise SmlError("truncated", f"data ends where {what} should start", start)
        b = buf[start]
        if b == 0x01:
            self.pos = start + 1
            if optional:
                return None
            raise SmlError("syntax", f"{what} is missing", start)
        if b == 0x62 and start + 1 < self.n:  # Unsigned8: the common case
            self.pos = start + 2
            return buf[start + 1]
        typ, length, k = self.tl()
        if typ not in (0x50, 0x60):
            raise SmlError("syntax", f"{what} must be an integer, got TL {b:02x}", start)
        a, e = self._data(length, k, start)
        if not 1 <= e - a <= MAX_INT_BYTES:
            raise SmlError("syntax", f"{what}: integer of {e - a} bytes (1..8 allowed)", start)
        self.pos = e
        return int.from_bytes(buf[a:e], "big", signed=typ == 0x50)

    def list_of(self, count: int | None, what: str) -> int:
        start = self.pos
        typ, length, _ = self.tl()
        if typ != 0x70:
            raise SmlError("syntax", f"{what} must be a list, got TL {self.buf[start]:02x}", start)
        if count is not None and length != count:
            raise SmlError("syntax", f"{what} must be a list of {count}, got {length} elements",
                           start)
        if length > self.n - self.pos:  # every element takes at least one byte
            raise SmlError("truncated", f"{what}: list of {length} elements but only "
                                        f"{self.n - self.pos} bytes left", start)
        return length

    def tree(self, depth: int) -> Any:
        """Any value, generically: lists -> list, octets -> bytes, numbers -> int, bool."""
        start = self.pos
        if depth > MAX_DEPTH:
            raise SmlError("depth", f"lists nested deeper than {MAX_DEPTH}", start)
        if start >= self.n:
            raise SmlError("truncated", "data ends where a value should start", start)
        b = self.buf[start]
        if b == 0x01:
            self.pos = start + 1
            return None
        if b == 0x00:
            raise SmlError("syntax", "end-of-message marker 00 inside a message", start)
        typ, length, k = self.tl()
        if typ == 0x70:
            if length > self.n - self.pos:
                raise SmlError("truncated", f"list of {length} elements but only "
                                            f"{self.n - self.pos} bytes left", start)
            return [self.tree(depth + 1) for _ in range(length)]
        if typ not in (0x00, 0x40, 0x50, 0x60):
            raise SmlError("syntax", f"unknown SML type in TL byte {b:02x}", start)
        a, e = self._data(length, k, start)
        self.pos = e
        if typ == 0x00:
            return self.buf[a:e]
        if typ == 0x40:
            if e - a != 1:
                raise SmlError("syntax", f"boolean of {e - a} bytes", start)
            return self.buf[a] != 0
        if not 1 <= e - a <= MAX_INT_BYTES:  # 0x50 / 0x60
            raise SmlError("syntax", f"integer of {e - a} bytes (1..8 allowed)", start)
        return int.from_bytes(self.buf[a:e], "big", signed=typ == 0x50)

    # -- SML_Time ----------------------------------------------------------------------------

    def time(self, what: str) -> tuple[dict | None, str | None]:
        """SML_Time, with the quirks: a bare Unsigned32 (DTZ541) and a bare list of 3."""
        start = self.pos
        if start >= self.n:
            raise SmlError("truncated", f"data ends where {what} should start", start)
        b = self.buf[start]
        if b == 0x01:
            self.pos = start + 1
            return None, None
        typ = b & 0x70
        if typ in (0x50, 0x60):  # Holley DTZ541: the secIndex without the choice list
            return {"kind": "secIndex", "value": self.number(what, False)}, "bare-valtime"
        if typ != 0x70:
            raise SmlError("syntax", f"{what} must be an SML_Time, got TL {b:02x}", start)
        n = self.list_of(None, what)
        if n == 3:  # the localTimestamp triple without its choice tag (FROETEC ZG22)
            return self._local_time(what), "time-list3"
        if n != 2:
            raise SmlError("syntax", f"{what}: SML_Time is a list of 2, got {n} elements", start)
        tag = self.number(f"{what} choice", False)
        if self.pos < self.n and self.buf[self.pos] & 0x70 == 0x70:
            inner = self.pos
            if self.list_of(None, what) != 3:
                raise SmlError("syntax", f"{what}: localTimestamp is a list of 3", inner)
            return self._local_time(what), (None if tag == 3 else "time-list3")
        value = self.number(f"{what} value", False)
        if tag == 1:
            return {"kind": "secIndex", "value": value}, None
        if tag == 2:
            return {"kind": "timestamp", "value": value, "iso": _iso(value, 0)}, None
        raise SmlError("syntax", f"{what}: unknown SML_Time choice {tag}", start)

    def _local_time(self, what: str) -> dict:
        ts = self.number(f"{what} timestamp", False)
        local = self.number(f"{what} localOffset", False)
        season = self.number(f"{what} seasonTimeOffset", False)
        return {"kind": "localTimestamp", "value": ts, "local_offset": local,
                "season_offset": season, "iso": _iso(ts, local + season)}

    # -- messages ----------------------------------------------------------------------------

    def message(self, index: int, crc_kind: str | None) -> SmlMessage:
        start = self.pos
        label = f"message {index}"
        try:
            self.list_of(6, "SML message")
            tid = self.octets("transactionId")
            group = self.number("groupNo")
            abort = self.number("abortOnError")
            self.list_of(2, "messageBody")
            tag = self.number("messageBody tag", False)
            name = TAG_NAMES.get(tag, f"0x{tag:04X}")
            label = f"message {index} ({name})"
            if tag == 0x0701:
                body: Any = self.get_list_response()
            elif tag == 0x0101:
                body = self.open_response()
            elif tag == 0x0201:
                self.list_of(1, "PublicClose.Res")
                body = CloseResponse(self.octets("globalSignature"))
            else:
                body = self.tree(2)
            body_end = self.pos
            crc_sent = self.number("crc16", False)
            if self.pos >= self.n:
                raise SmlError("truncated", "data ends before the end-of-message 00", self.pos)
            if self.buf[self.pos] != 0x00:
                raise SmlError("syntax", f"message does not end with 00 (got "
                                         f"{self.buf[self.pos]:02x})", self.pos)
            self.pos += 1
        except SmlError as e:
            raise e.within(label) from None
        if not 0 <= crc_sent <= 0xFFFF:
            raise SmlError("syntax", f"{label}: crc16 {crc_sent} is not 16 bits", body_end)
        covered = self.buf[start:body_end]
        kind = None
        for k in (("kermit", "x25") if crc_kind == "kermit" else ("x25", "kermit")):
            if (_swap16(crc_x25(covered)) if k == "x25" else crc_kermit(covered)) == crc_sent:
                kind = k
                break
        return SmlMessage(index, start, tid, group, abort, tag, name, body, kind is not None,
                          kind, crc_sent)

    def open_response(self) -> OpenResponse:
        self.list_of(6, "PublicOpen.Res")
        codepage = self.octets("codepage")
        client = self.octets("clientId")
        req_file = self.octets("reqFileId")
        server = self.octets("serverId")
        ref_time, _ = self.time("refTime")
        version = self.number("smlVersion")
        return OpenResponse(codepage, client, req_file, server, ref_time, version)

    def get_list_response(self) -> GetListResponse:
        self.list_of(7, "GetList.Res")
        client = self.octets("clientId")
        server = self.octets("serverId")
        list_name = self.octets("listName")
        sensor_time, _ = self.time("actSensorTime")
        readings: list[Reading] = []
        if self.pos < self.n and self.buf[self.pos] == 0x01:  # valList absent: tolerated
            self.pos += 1
        else:
            count = self.list_of(None, "valList")
            dzg = self._dzg_active(server)
            for j in range(count):
                try:
                    readings.append(self.list_entry(server, dzg))
                except SmlError as e:
                    raise e.within(f"valList entry {j}") from None
        signature = self.octets("listSignature")
        gateway_time, _ = self.time("actGatewayTime")
        return GetListResponse(client, server, list_name, sensor_time, readings, signature,
                               gateway_time)

    def _dzg_active(self, server: bytes | None) -> bool:
        if self.dzg != "auto":
            return self.dzg == "on"
        mid = meter_id_text(server)
        return bool(mid and mid[1:4] == "DZG" and mid[6] == DZG_DVS74_SERIAL_PREFIX)

    def list_entry(self, server: bytes | None, dzg: bool) -> Reading:
        self.list_of(7, "SML_ListEntry")
        obj = self.octets("objName", optional=False)
        assert obj is not None
        obis = _obis_text(obj)
        try:
            status = self.number("status")
            val_time, quirk = self.time("valTime")
            unit_code = self.number("unit")
            scaler = self.number("scaler")
            if scaler is not None and not -128 <= scaler <= 127:
                raise SmlError("syntax", f"scaler {scaler} is outside Integer8", self.pos)
            if unit_code is not None and not 0 <= unit_code <= 255:
                raise SmlError("syntax", f"unit {unit_code} is outside Unsigned8", self.pos)
            raw, raw_type, nbytes = self.value()
            signature = self.octets("valueSignature")
        except SmlError as e:
            raise e.within(obis) from None
        quirks: tuple[str, ...] = (quirk,) if quirk else ()
        if (dzg and raw_type == "int" and nbytes <= 3 and raw < 0  # type: ignore[operator]
                and obj in DZG_DVS74_OBIS):
            raw = raw + (1 << (8 * nbytes))  # type: ignore[operator]
            raw_type = "uint"
            quirks += ("dzg-dvs74",)
        if raw_type in ("int", "uint"):
            value: str | None = scaled_decimal(raw, scaler)  # type: ignore[arg-type]
        elif raw_type == "octets":
            value = _octets_text(obj, raw)  # type: ignore[arg-type]
        elif raw_type == "bool":
            value = "true" if raw else "false"
        else:
            value = None
        return Reading(obis, raw, scaler, unit_symbol(unit_code), unit_code, value, status,
                       val_time, signature, server, obj, raw_type, True, quirks)

    def value(self) -> tuple[Any, str, int]:
        """SML_Value -> (raw, raw_type, data bytes)."""
        start = self.pos
        if start >= self.n:
            raise SmlError("truncated", "data ends where the value should start", start)
        b = self.buf[start]
        if b == 0x01:
            self.pos = start + 1
            return None, "none", 0
        typ = b & 0x70
        if typ == 0x70:  # SML 1.04 list type (e.g. a time as the value)
            return self.tree(5), "list", 0
        typ, length, k = self.tl()
        if typ not in (0x00, 0x40, 0x50, 0x60):
            raise SmlError("syntax", f"value: unknown SML type in TL byte {b:02x}", start)
        a, e = self._data(length, k, start)
        self.pos = e
        size = e - a
        if typ == 0x00:
            return self.buf[a:e], "octets", size
        if typ in (0x50, 0x60):
            if not 1 <= size <= MAX_INT_BYTES:
                raise SmlError("syntax", f"value: integer of {size} bytes (1..8 allowed)", start)
            signed = typ == 0x50
            return int.from_bytes(self.buf[a:e], "big", signed=signed), \
                ("int" if signed else "uint"), size
        if size != 1:  # 0x40
            raise SmlError("syntax", f"value: boolean of {size} bytes", start)
        return self.buf[a] != 0, "bool", 1


# ----------------------------------------------------------------------------------- helpers


def scaled_decimal(raw: int, scaler: int | None) -> str:
    """Exact ``raw * 10**scaler`` as a decimal string with ``-scaler`` fraction digits:
    (55432991, -1) -> "5543299.1", (0, -2) -> "0.00", (13391, 3) -> "13391000". No floats."""
    if not scaler:
        return str(raw)
    if scaler > 0:
        return str(raw * 10 ** scaler)
    sign = "-" if raw < 0 else ""
    digits = str(abs(raw)).rjust(1 - scaler, "0")
    return f"{sign}{digits[:scaler]}.{digits[scaler:]}"


def meter_id_text(server_id: bytes | None) -> str | None:
    """DIN 43863-5 server id (10 bytes) -> printed meter id, ``0901 45425A 01 00091F14`` ->
    "1EBZ0100597780"; None if the bytes do not have that form."""
    if not server_id or len(server_id) != 10:
        return None
    medium, flag, fab = server_id[1], server_id[2:5], server_id[5]
    serial = int.from_bytes(server_id[6:10], "big")
    if medium > 0x0F or fab > 99 or serial > 99_999_999:
        return None
    if not all(0x41 <= c <= 0x5A for c in flag):
        return None
    return f"{medium:X}{flag.decode('ascii')}{fab:02d}{serial:08d}"


def _obis_text(obj: bytes) -> str:
    if len(obj) != 6:
        return obj.hex()
    a, b, c, d, e, f = obj
    s = f"{a}-{b}:{c}.{d}.{e}"
    return s if f == 255 else f"{s}*{f}"


def _octets_text(obj: bytes, raw: bytes) -> str | None:
    if obj in _ID_OBIS:
        mid = meter_id_text(raw)
        if mid:
            return mid
    if raw and all(0x20 <= c <= 0x7E for c in raw):
        return raw.decode("ascii")
    return None


def _iso(ts: int, offset_min: int) -> str | None:
    if not 0 <= ts < 253402214400 or not -1440 < offset_min < 1440:
        return None
    tz = timezone(timedelta(minutes=offset_min))
    try:
        s = datetime.fromtimestamp(ts, tz).isoformat()
    except (OverflowError, OSError, ValueError):
        return None
    return s[:-6] + "Z" if s.endswith("+00:00") else s


# --------------------------------------------------------------------------------------- JSON


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def reading_json(r: Reading) -> dict[str, Any]:
    d: dict[str, Any] = {"obis": r.obis, "value": r.value, "unit": r.unit, "scaler": r.scaler,
                         "raw": _jsonable(r.raw), "status": r.status, "unit_code": r.unit_code,
                         "raw_type": r.raw_type}
    name = r.name
    if name:
        d["name"] = name
    if r.val_time is not None:
        d["val_time"] = r.val_time
    if r.signature is not None:
        d["signature"] = r.signature.hex()
    if not r.message_crc_ok:
        d["message_crc_ok"] = False
    if r.quirks:
        d["quirks"] = list(r.quirks)
    return d


def _message_json(m: SmlMessage) -> dict[str, Any]:
    d: dict[str, Any] = {"type": m.type, "tag": m.tag, "transaction_id": _jsonable(
        m.transaction_id), "crc_ok": m.crc_ok, "crc_kind": m.crc_kind}
    b = m.body
    if isinstance(b, OpenResponse):
        d.update(server_id=_jsonable(b.server_id), req_file_id=_jsonable(b.req_file_id),
                 client_id=_jsonable(b.client_id), ref_time=b.ref_time,
                 sml_version=b.sml_version)
    elif isinstance(b, GetListResponse):
        d.update(server_id=_jsonable(b.server_id), client_id=_jsonable(b.client_id),
                 list_name=_jsonable(b.list_name), act_sensor_time=b.act_sensor_time,
                 act_gateway_time=b.act_gateway_time, entries=len(b.readings),
                 list_signature=_jsonable(b.list_signature))
    elif isinstance(b, CloseResponse):
        d["global_signature"] = _jsonable(b.global_signature)
    else:
        d["body"] = _jsonable(b)
    return d


def to_json(files: list[SmlFile]) -> dict[str, Any]:
    """``{"frames": [{"server_id", "crc_ok", "readings": [{"obis", "value", "unit", "scaler",
    "raw", "status", ...}], ...}]}``; bytes as lowercase hex."""
    frames = []
    for f in files:
        frames.append({
            "server_id": _jsonable(f.server_id),
            "meter_id": f.meter_id,
            "crc_ok": f.crc_ok,
            "crc_kind": f.crc_kind,
            "message_crc_ok": f.messages_crc_ok,
            "readings": [reading_json(r) for r in f.readings],
            "messages": [_message_json(m) for m in f.messages],
            "errors": list(f.errors),
        })
        if f.quirks:
            frames[-1]["quirks"] = list(f.quirks)
    return {"frames": frames}
