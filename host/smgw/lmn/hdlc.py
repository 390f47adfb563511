"""HDLC frames of the wired LMN (docs/lmn-wired.md §2): encode, strict decode, and a stream
decoder for raw bus bytes. Sans-I/O: bytes in, :class:`Frame` objects or errors out.

    7E | format (2) | dest | src | control | HCS (2) | info (1..1024) | FCS (2) | 7E
    7E | format (2) | dest | src | control | FCS (2) | 7E                      (no info)

format = ``0xA000 | length`` (frame format type 3, segmentation bit S = 0, length = the bytes
between the flags); one address byte each, ``(address << 1) | 1``; HCS over format..control,
FCS over format..info, both CRC-16/X-25 sent LSB first. No byte stuffing: the length field
delimits the frame. This profile uses only 1-byte addresses and never segments.

Whose fault: anything wrong in received bytes is the line's or the peer's and raises a subclass
of :class:`HdlcError` (a ``ValueError`` with a ``code`` slug); nothing else ever escapes
:func:`decode` or :meth:`StreamDecoder.feed`. Building a :class:`Frame` with impossible fields
is the caller's bug and raises a plain ``ValueError``.

What counts as a frame agrees with the firmware's ``smgwfw.lmn.HdlcDetector``: every frame
:func:`encode` makes passes it as ``CHECK_X25``, and whatever the detector does not accept,
:func:`decode` rejects (tests/host/lmn/test_hdlc.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from smgw.meters.sml import crc_x25

__all__ = [
    "BROADCAST",
    "DISC",
    "DM",
    "FIRST_METER",
    "FLAG",
    "FRMR",
    "GATEWAY",
    "LAST_METER",
    "MAX_FRAME",
    "MAX_INFO",
    "MAX_LENGTH",
    "SNRM",
    "UA",
    "UI",
    "UNASSIGNED",
    "Control",
    "Frame",
    "HdlcAddress",
    "HdlcChecksum",
    "HdlcControl",
    "HdlcError",
    "HdlcFormat",
    "HdlcShort",
    "StreamDecoder",
    "air_time_s",
    "decode",
    "encode",
    "i_control",
    "is_meter_address",
    "parse_control",
    "rnr_control",
    "rr_control",
]

FLAG = 0x7E

# addresses (7 bits; on the wire (a << 1) | 1)
GATEWAY = 0x01  # the primary station
BROADCAST = 0x7F  # all stations (destination only)
UNASSIGNED = 0x7E  # source of a meter that has no address yet (source only)
FIRST_METER = 0x10
LAST_METER = 0x7D

MAX_INFO = 1024
MIN_LENGTH = 7  # format 2, dest, src, control, FCS 2
MAX_LENGTH = MIN_LENGTH + 2 + MAX_INFO  # 1033 bytes between the flags (§2 says 1035: miscounted)
MAX_FRAME = MAX_LENGTH + 2  # 1035 with both flags

# control bytes with P/F = 1 (bit 4), as this profile always sends them
UI = 0x13
SNRM = 0x93
UA = 0x73
DISC = 0x53
DM = 0x1F
FRMR = 0x97
_PF = 0x10

# unnumbered frames: control with the P/F bit cleared -> kind
_UNNUMBERED = {0x03: "UI", 0x83: "SNRM", 0x63: "UA", 0x43: "DISC", 0x0F: "DM", 0x87: "FRMR"}


# ------------------------------------------------------------------------------------ errors


class HdlcError(ValueError):
    """Received bytes that are not a valid frame of this profile: the line's or the sender's
    fault. ``code`` is a short slug for counters and logs; the message says what was wrong."""

    code = "hdlc"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class HdlcShort(HdlcError):
    """No complete frame: fewer bytes than the smallest frame, missing or wrong flags, or a
    frame cut off (``code``: ``short``, ``flag``, ``truncated``)."""

    code = "short"


class HdlcFormat(HdlcError):
    """The format field is wrong: frame format type not 3 (``format_type``), segmentation bit
    set (``segmented``), length field and frame size disagree or no room for the fields
    (``length``), longer than 1035 bytes (``oversized``)."""

    code = "format"


class HdlcAddress(HdlcError):
    """An address byte without its end bit (``address_extension``: multi-byte addresses are not
    part of this profile), or a reserved address, or one in the wrong place
    (``address``)."""

    code = "address"


class HdlcChecksum(HdlcError):
    """HCS or FCS wrong (line noise, a collision). ``which`` is ``"hcs"`` or ``"fcs"``."""

    code = "checksum"

    def __init__(self, which: str, sent: int, computed: int) -> None:
        super().__init__(f"{which.upper()} wrong: sent {sent:04x}, computed {computed:04x}",
                         f"bad_{which}")
        self.which = which
        self.sent = sent
        self.computed = computed


class HdlcControl(HdlcError):
    """A control byte this profile does not use (REJ, SREJ, other unnumbered frames)."""

    code = "control"


# ------------------------------------------------------------------------------------ control


class Control(NamedTuple):
    kind: str  # "I", "RR", "RNR", "UI", "SNRM", "UA", "DISC", "DM", "FRMR"
    ns: int | None  # N(S), I-frames only
    nr: int | None  # N(R), I, RR and RNR only
    pf: bool


def i_control(ns: int, nr: int, pf: bool = True) -> int:
    """I-frame ``RRR P SSS 0``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | ((ns & 7) << 1)


def rr_control(nr: int, pf: bool = True) -> int:
    """RR ``RRR P 0001``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | 0x01


def rnr_control(nr: int, pf: bool = True) -> int:
    """RNR ``RRR P 0101``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | 0x05


def parse_control(control: int) -> Control:
    """The kind, N(S), N(R) and P/F of a control byte; :class:`HdlcControl` for the ones this
    profile does not use."""
    if not 0 <= control <= 0xFF:
        raise HdlcControl(f"control {control!r} is not a byte")
    pf = bool(control & _PF)
    if control & 1 == 0:
        return Control("I", (control >> 1) & 7, control >> 5, pf)
    if control & 3 == 1:
        s = control & 0x0F
        if s == 0x01:
            return Control("RR", None, control >> 5, pf)
        if s == 0x05:
            return Control("RNR", None, control >> 5, pf)
        name = "REJ" if s == 0x09 else "SREJ"
        raise HdlcControl(f"control {control:02x} is {name}, which this profile does not use")
    kind = _UNNUMBERED.get(control & ~_PF)
    if kind is None:
        raise HdlcControl(f"control {control:02x} is no frame type of this profile")
    return Control(kind, None, None, pf)


# ------------------------------------------------------------------------------------ frames


def is_meter_address(a: int) -> bool:
    return FIRST_METER <= a <= LAST_METER


def _dest_ok(a: int) -> bool:
    return a == GATEWAY or a == BROADCAST or is_meter_address(a)


def _src_ok(a: int) -> bool:
    return a == GATEWAY or a == UNASSIGNED or is_meter_address(a)


@dataclass(frozen=True)
class Frame:
    """One frame. ``dest`` and ``src`` are 7-bit addresses (not the wire bytes); ``control`` the
    control byte; ``info`` the information field (empty: none)."""

    dest: int
    src: int
    control: int
    info: bytes = b""

    def __post_init__(self) -> None:
        # a Frame is always encodable: a wrong field here is the caller's bug, not the peer's
        if not isinstance(self.dest, int) or not _dest_ok(self.dest):
            raise ValueError(f"destination address {self.dest!r} is reserved or source-only")
        if not isinstance(self.src, int) or not _src_ok(self.src):
            raise ValueError(f"source address {self.src!r} is reserved or destination-only")
        if not isinstance(self.control, int):
            raise ValueError(f"control {self.control!r} is not an int")
        try:
            parse_control(self.control)
        except HdlcControl as e:
            raise ValueError(str(e)) from None
        info = bytes(self.info)
        if len(info) > MAX_INFO:
            raise ValueError(f"info of {len(info)} bytes exceeds {MAX_INFO}")
        object.__setattr__(self, "info", info)

    @property
    def _ctl(self) -> Control:
        return parse_control(self.control)

    @property
    def kind(self) -> str:
        return self._ctl.kind

    @property
    def ns(self) -> int | None:
        return self._ctl.ns

    @property
    def nr(self) -> int | None:
        return self._ctl.nr

    @property
    def pf(self) -> bool:
        return self._ctl.pf

    def __repr__(self) -> str:
        c = self._ctl
        seq = ""
        if c.ns is not None:
            seq += f" ns={c.ns}"
        if c.nr is not None:
            seq += f" nr={c.nr}"
        info = f" info={self.info[:16].hex()}{'..' if len(self.info) > 16 else ''}" \
            if self.info else ""
        return f"Frame({c.kind} {self.src:#04x}->{self.dest:#04x}{seq}{info})"


def _crc_bytes(data: bytes) -> bytes:
    c = crc_x25(data)
    return bytes((c & 0xFF, c >> 8))


def encode(frame: Frame) -> bytes:
    """The frame on the wire, with both flags."""
    info = frame.info
    length = MIN_LENGTH + (len(info) + 2 if info else 0)
    head = bytes(((0xA0 | (length >> 8)), length & 0xFF, (frame.dest << 1) | 1,
                  (frame.src << 1) | 1, frame.control))
    if info:
        body = head + _crc_bytes(head) + info
    else:
        body = head
    return b"\x7e" + body + _crc_bytes(body) + b"\x7e"


def air_time_s(nbytes: int, baud: int) -> float:
    """Seconds ``nbytes`` take on the line at ``baud`` (8N1: 10 bits per character)."""
    return nbytes * 10 / baud


def decode(data: bytes) -> Frame:
    """One complete frame with both flags -> :class:`Frame`. Strict: raises the specific
    :class:`HdlcError` subclass for anything this profile does not allow, and no other
    exception for any input."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise HdlcShort(f"not bytes but {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < MIN_LENGTH + 2:
        raise HdlcShort(f"{n} bytes: a frame has at least {MIN_LENGTH + 2}")
    if data[0] != FLAG or data[-1] != FLAG:
        raise HdlcShort("frame must start and end with flag 7e "
                        f"(got {data[0]:02x}..{data[-1]:02x})", "flag")
    f0 = data[1]
    if f0 & 0xF0 != 0xA0:
        raise HdlcFormat(f"format type {f0 >> 4:x}, not a (frame format type 3)", "format_type")
    if f0 & 0x08:
        raise HdlcFormat("segmentation bit set: this profile never segments", "segmented")
    length = ((f0 & 7) << 8) | data[2]
    if length > MAX_LENGTH:
        raise HdlcFormat(f"length field {length} exceeds {MAX_LENGTH}", "oversized")
    if length != n - 2:
        raise HdlcFormat(f"length field {length} but {n - 2} bytes between the flags", "length")
    if length != MIN_LENGTH and length < MIN_LENGTH + 3:
        raise HdlcFormat(f"length {length}: no room for HCS and an information field",
                         "length")
    for where, b in (("destination", data[3]), ("source", data[4])):
        if not b & 1:
            raise HdlcAddress(f"{where} address byte {b:02x} has no end bit: multi-byte "
                              "addresses are not part of this profile", "address_extension")
    if length > MIN_LENGTH:
        hcs_sent = data[6] | data[7] << 8
        hcs = crc_x25(data[1:6])
        if hcs != hcs_sent:
            raise HdlcChecksum("hcs", hcs_sent, hcs)
    fcs_sent = data[-3] | data[-2] << 8
    fcs = crc_x25(data[1:-3])
    if fcs != fcs_sent:
        raise HdlcChecksum("fcs", fcs_sent, fcs)
    dest, src = data[3] >> 1, data[4] >> 1
    if not _dest_ok(dest):
        raise HdlcAddress(f"destination address {dest:#04x} is reserved or source-only")
    if not _src_ok(src):
        raise HdlcAddress(f"source address {src:#04x} is reserved or destination-only")
    control = data[5]
    parse_control(control)  # raises HdlcControl
    return Frame(dest, src, control, data[8:-3] if length > MIN_LENGTH else b"")


# ------------------------------------------------------------------------------------ stream


class StreamDecoder:
    """Finds frames in a raw byte stream (what a station reads from the bus): shared and idle
    flags, garbage between frames, frames split across :meth:`feed` calls.

    :meth:`feed` returns, in stream order, a :class:`Frame` for each good frame and an
    :class:`HdlcError` for each thing that was evidently meant as a frame but is not a good one:
    a header whose HCS is wrong, a length field without a flag at its end, an oversized length,
    or a complete frame that :func:`decode` rejects (FCS, address, control, segmentation).
    Bytes that never looked like a frame (no flag, a flag followed by no format type 3 or
    impossible address bytes) are only counted in ``garbage_bytes``.

    Since 0x7E also occurs inside frames, a flag is only a candidate start: after any failure
    the decoder resynchronises on the next flag after the failed opening flag (like the
    firmware's detector), so line noise after a flag never swallows the frames behind it. The
    held bytes never exceed one maximal frame (1035 bytes), and the result depends only on the
    bytes, never on how they were split into feed() calls.

    :meth:`flush` says the line went silent: a frame still incomplete is reported as
    ``HdlcShort("truncated")`` and dropped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()  # starts with a flag whenever not empty
        self._want = 0  # length + 2 once the header at _buf[1:] passed its checks
        self.garbage_bytes = 0
        self.frames = 0
        self.errors = 0

    @property
    def held(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | HdlcError]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"feed() takes bytes, not {type(data).__name__}")
        out: list[Frame | HdlcError] = []
        data = bytes(data)
        i, n = 0, len(data)
        while i < n:
            if not self._buf:
                j = data.find(b"\x7e", i)
                if j < 0:
                    self.garbage_bytes += n - i
                    break
                self.garbage_bytes += j - i
                i = j
            # take no more than one maximal frame: memory stays bounded whatever comes in
            k = min(MAX_FRAME - len(self._buf), n - i)
            self._buf += data[i:i + k]
            i += k
            self._parse(out, eof=False)
        return out

    def flush(self) -> list[Frame | HdlcError]:
        """The line is idle: report and drop an incomplete frame (frames hidden behind a false
        start are still found)."""
        out: list[Frame | HdlcError] = []
        self._parse(out, eof=True)
        return out

    # -------------------------------------------------------------- internals

    def _emit(self, out: list, item: Frame | HdlcError) -> None:
        if isinstance(item, Frame):
            self.frames += 1
        else:
            self.errors += 1
        out.append(item)

    def _resync(self) -> None:
        # the flag at _buf[0] did not open a good frame: continue at the next held flag
        # (the opening flag itself is not counted: flags are never garbage)
        self._want = 0
        s = self._buf.find(b"\x7e", 1)
        if s < 0:
            self.garbage_bytes += len(self._buf) - 1
            self._buf.clear()
        else:
            self.garbage_bytes += s - 1
            del self._buf[:s]

    def _parse(self, out: list, eof: bool) -> None:
        buf = self._buf
        while buf:
            if not self._want:
                p = 1
                while p < len(buf) and buf[p] == FLAG:
                    p += 1
                if p > 1:
                    del buf[:p - 1]  # idle fill: keep the last flag as the opening one
                want = self._header(out)
                if want is None:  # need more bytes
                    if eof:
                        if len(buf) > 1:
                            self._emit(out, HdlcShort(
                                f"frame cut off after {len(buf)} bytes", "truncated"))
                        self._resync()
                        continue
                    return
                if want < 0:
                    self._resync()
                    continue
                self._want = want
            want = self._want
            if len(buf) < want:
                if eof:
                    self._emit(out, HdlcShort(
                        f"frame cut off after {len(buf)} of {want} bytes", "truncated"))
                    self._resync()
                    continue
                return
            if buf[want - 1] != FLAG:
                self._emit(out, HdlcFormat(
                    f"no flag after the {want - 2} bytes the length field announces", "length"))
                self._resync()
                continue
            try:
                self._emit(out, decode(bytes(buf[:want])))
            except HdlcError as e:
                self._emit(out, e)
            self._want = 0
            del buf[:want - 1]  # the closing flag may open the next frame

    def _header(self, out: list) -> int | None:
        # Checks the header in _buf[1:] as far as it has arrived: the frame size (length + 2)
        # when good, None when more bytes are needed, -1 when the flag opens no frame.
        buf = self._buf
        n = len(buf)
        if n < 3:
            return None
        f0 = buf[1]
        length = ((f0 & 7) << 8) | buf[2]
        if f0 & 0xF0 != 0xA0 or length < MIN_LENGTH:
            return -1  # not a start: garbage
        if length > MAX_LENGTH:
            self._emit(out, HdlcFormat(f"length field {length} exceeds {MAX_LENGTH}",
                                       "oversized"))
            return -1
        if n < 6:
            return None
        if not buf[3] & 1 or not buf[4] & 1:
            return -1  # not a start of this profile (1-byte addresses)
        if length == MIN_LENGTH:
            return length + 2
        if length < MIN_LENGTH + 3:
            return -1  # no room for HCS and info: not a start
        if n < 8:
            return None
        hcs_sent = buf[6] | buf[7] << 8
        hcs = crc_x25(bytes(buf[1:6]))
        if hcs != hcs_sent:
            self._emit(out, HdlcChecksum("hcs", hcs_sent, hcs))
            return -1
        return length + 2
