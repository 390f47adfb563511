"""Management messages of the wired LMN (docs/lmn-wired.md §3): the info fields of the UI
frames (control 0x13) that assign addresses by slotted random access.

| type | message  | direction                              | fields                         |
|------|----------|----------------------------------------|--------------------------------|
| 0x01 | INVITE   | gateway -> 0x7F                        | slots u8, slot_ms u16, round u16 |
| 0x02 | REGISTER | meter 0x7E -> 0x01, in its slot        | round u16, sid                 |
| 0x03 | ASSIGN   | gateway -> 0x7F                        | sid, address u8                |
| 0x04 | ASSIGNED | meter (new address) -> 0x01, at once   | sid                            |

``sid`` is a length byte (1..16) and the server id bytes; integers are big-endian. Sans-I/O:
:func:`encode` gives the info field, :func:`decode` parses one and raises :class:`MgmtError`
(the sender's fault) for anything malformed, never another exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smgw.lmn import hdlc

__all__ = [
    "ASSIGN",
    "ASSIGNED",
    "INVITE",
    "MAX_SID",
    "MAX_SLOTS",
    "REGISTER",
    "REGISTER_MAX_BYTES",
    "Assign",
    "Assigned",
    "Invite",
    "MgmtError",
    "Register",
    "decode",
    "encode",
    "slot_ms_for",
]

INVITE = 0x01
REGISTER = 0x02
ASSIGN = 0x03
ASSIGNED = 0x04

MAX_SID = 16
MAX_SLOTS = 64

# Bytes on the wire, both flags included, of the longest REGISTER (a 16-byte sid):
# flags 2 + format 2 + dest 1 + src 1 + control 1 + HCS 2 + info (type 1 + round 2 + sid
# length 1 + sid 16 = 20) + FCS 2 = 31. (docs/lmn-wired.md §3 says 28: that is a 13-byte sid;
# the slots are sized from this constant, so a 16-byte sid still fits its slot.)
REGISTER_MAX_BYTES = 2 + 2 + 1 + 1 + 1 + 2 + (1 + 2 + 1 + MAX_SID) + 2

TURNAROUND_MS = 2.0  # a meter's time from the end of the INVITE to the start of its answer
MIN_SLOT_MS = 5


class MgmtError(ValueError):
    """A management info field that is malformed: the sender's fault. ``code``: ``empty``,
    ``type`` (unknown message type), ``length`` (too short or trailing bytes), ``sid``
    (length 0 or > 16), ``address`` (outside 0x10..0x7D), ``slots`` (0 or > 64),
    ``slot_ms`` (0)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check_sid(sid: bytes) -> bytes:
    sid = bytes(sid)
    if not 1 <= len(sid) <= MAX_SID:
        raise ValueError(f"sid must be 1..{MAX_SID} bytes, got {len(sid)}")
    return sid


@dataclass(frozen=True)
class Invite:
    slots: int
    slot_ms: int
    round: int

    def __post_init__(self) -> None:
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ValueError(f"slots must be 1..{MAX_SLOTS}, got {self.slots}")
        if not 1 <= self.slot_ms <= 0xFFFF:
            raise ValueError(f"slot_ms must be 1..65535, got {self.slot_ms}")
        if not 0 <= self.round <= 0xFFFF:
            raise ValueError(f"round must be 0..65535, got {self.round}")


@dataclass(frozen=True)
class Register:
    round: int
    sid: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.round <= 0xFFFF:
            raise ValueError(f"round must be 0..65535, got {self.round}")
        object.__setattr__(self, "sid", _check_sid(self.sid))


@dataclass(frozen=True)
class Assign:
    sid: bytes
    address: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "sid", _check_sid(self.sid))
        if not hdlc.is_meter_address(self.address):
            raise ValueError(f"address must be {hdlc.FIRST_METER:#04x}..{hdlc.LAST_METER:#04x}, "
                             f"got {self.address!r}")


@dataclass(frozen=True)
class Assigned:
    sid: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "sid", _check_sid(self.sid))


Message = Invite | Register | Assign | Assigned


def _sid(sid: bytes) -> bytes:
    return bytes((len(sid),)) + sid


def encode(msg: Message) -> bytes:
    """The UI info field of ``msg`` (the dataclasses validated their fields already)."""
    if isinstance(msg, Invite):
        return bytes((INVITE, msg.slots)) + msg.slot_ms.to_bytes(2, "big") \
            + msg.round.to_bytes(2, "big")
    if isinstance(msg, Register):
        return bytes((REGISTER,)) + msg.round.to_bytes(2, "big") + _sid(msg.sid)
    if isinstance(msg, Assign):
        return bytes((ASSIGN,)) + _sid(msg.sid) + bytes((msg.address,))
    if isinstance(msg, Assigned):
        return bytes((ASSIGNED,)) + _sid(msg.sid)
    raise TypeError(f"not a management message: {msg!r}")


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.pos = 1
        self.name = name

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise MgmtError("length", f"{self.name} ends inside {what} ({len(self.data)} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def sid(self) -> bytes:
        n = self.u8("the sid length")
        if not 1 <= n <= MAX_SID:
            raise MgmtError("sid", f"{self.name}: sid length {n} (1..{MAX_SID} allowed)")
        return self.take(n, "the sid")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise MgmtError("length", f"{self.name}: {len(self.data) - self.pos} bytes after "
                                      "the last field")


def decode(info: bytes) -> Message:
    """A UI info field -> Invite | Register | Assign | Assigned; :class:`MgmtError` for anything
    malformed (and nothing else, for any input)."""
    if not isinstance(info, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode() takes bytes, not {type(info).__name__}")
    data = bytes(info)
    if not data:
        raise MgmtError("empty", "empty management message")
    t = data[0]
    if t == INVITE:
        r = _Reader(data, "INVITE")
        slots, slot_ms, rnd = r.u8("slots"), r.u16("slot_ms"), r.u16("round")
        r.end()
        if not 1 <= slots <= MAX_SLOTS:
            raise MgmtError("slots", f"INVITE with {slots} slots (1..{MAX_SLOTS} allowed)")
        if slot_ms < 1:
            raise MgmtError("slot_ms", "INVITE with slot_ms 0")
        return Invite(slots, slot_ms, rnd)
    if t == REGISTER:
        r = _Reader(data, "REGISTER")
        rnd = r.u16("round")
        sid = r.sid()
        r.end()
        return Register(rnd, sid)
    if t == ASSIGN:
        r = _Reader(data, "ASSIGN")
        sid = r.sid()
        address = r.u8("the address")
        r.end()
        if not hdlc.is_meter_address(address):
            raise MgmtError("address", f"ASSIGN of address {address:#04x} (meters use "
                                       f"{hdlc.FIRST_METER:#04x}..{hdlc.LAST_METER:#04x})")
        return Assign(sid, address)
    if t == ASSIGNED:
        r = _Reader(data, "ASSIGNED")
        sid = r.sid()
        r.end()
        return Assigned(sid)
    raise MgmtError("type", f"unknown management message type {t:#04x}")


def slot_ms_for(baud: int) -> int:
    """Slot length for ``baud`` (docs/lmn-wired.md §3): the air time of the longest REGISTER
    plus the meter's 2 ms turnaround plus 50 %, rounded up, at least 5 ms."""
    if baud <= 0:
        raise ValueError(f"baud must be > 0, got {baud}")
    air_ms = hdlc.air_time_s(REGISTER_MAX_BYTES, baud) * 1000
    return max(MIN_SLOT_MS, math.ceil((air_ms + TURNAROUND_MS) * 1.5))
