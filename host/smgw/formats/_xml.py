"""What the two formats share: a hardened XML parser, time stamps, text checks.

The parser never resolves entities, never loads a DTD or anything from the network, keeps
libxml2's depth and size limits (``huge_tree=False``) and refuses any document type
declaration outright, so entity expansion ("billion laughs") and external entities cannot
happen even in principle. Input is size-limited before lxml sees it.
"""

from __future__ import annotations

import datetime
import re
import unicodedata

from lxml import etree

from . import FormatError

MAX_MS = 253402300799999          # 9999-12-31T23:59:59.999Z: the largest time we write
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def parser() -> etree.XMLParser:
    """A fresh parser with every external and expanding feature off."""
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False, dtd_validation=False, remove_blank_text=False,
                           collect_ids=False)


def parse(data: bytes, *, max_bytes: int, what: str) -> etree._Element:
    """``data`` -> the root element; FormatError for oversize, malformed or DTD-carrying input."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"{what} must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise FormatError(f"{what} is {len(data)} bytes, more than the limit of {max_bytes}")
    if not data.strip():
        raise FormatError(f"{what} is empty")
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise FormatError(_NO_DTD.format(what=what))
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as e:
        raise FormatError(f"{what} is not well-formed XML: {e}") from None
    if root.getroottree().docinfo.internalDTD is not None:   # other encodings
        raise FormatError(_NO_DTD.format(what=what))
    return root


# A document type declaration is refused before lxml sees the document (so that neither entity
# expansion nor loading an external DTD is even attempted), for ASCII-compatible encodings and
# UTF-16; whatever slips through in another encoding is caught after parsing (and libxml2's own
# amplification and network limits hold in the meantime).
_DOCTYPE_MARKERS = (b"<!DOCTYPE", "<!DOCTYPE".encode("utf-16-le"),
                    "<!DOCTYPE".encode("utf-16-be"))
_NO_DTD = ("{what} contains a document type declaration (DOCTYPE); DTDs and entities are not "
           "allowed")


def declaration() -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n'


# ------------------------------------------------------------------------------------ times

def utc_text(ms: int) -> str:
    """Unix ms -> ``2025-02-28T23:15:01Z`` (``.123`` before the Z when the ms are not 0)."""
    t = _EPOCH + datetime.timedelta(milliseconds=ms)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{s}.{ms % 1000:03d}Z" if ms % 1000 else f"{s}Z"


_UTC_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$")


def parse_utc(text: str | None, where: str) -> int:
    """``utc_text`` back to Unix ms; only UTC with ``Z``, at most ms precision."""
    m = _UTC_RE.match((text or "").strip())
    if not m:
        raise FormatError(f"not a UTC time like 2025-02-28T23:15:01Z: {text!r}", where)
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    try:
        t = datetime.datetime(y, mo, d, h, mi, s, tzinfo=_UTC)
    except ValueError as e:
        raise FormatError(f"not a valid time {text!r}: {e}", where) from None
    ms = (t - _EPOCH) // datetime.timedelta(milliseconds=1) + int(frac.ljust(3, "0") or 0)
    if not 0 <= ms <= MAX_MS:
        raise FormatError(f"time {text!r} is before 1970", where)
    return ms


def local_text(ms: int, tz: datetime.tzinfo) -> str:
    """Unix ms -> ISO 8601 local time with its offset, ``2025-03-01T00:15:00+01:00``."""
    t = (_EPOCH + datetime.timedelta(milliseconds=ms)).astimezone(tz)
    return t.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def check_ms(ms: object, where: str) -> int:
    if not isinstance(ms, int) or isinstance(ms, bool):
        raise FormatError(f"a time in ms must be an int, not {type(ms).__name__}", where)
    if not 0 <= ms <= MAX_MS:
        raise FormatError(f"time {ms} ms is outside 1970..9999", where)
    return ms


# ------------------------------------------------------------------------------------- text

def check_text(s: object, where: str, *, max_len: int = 256, empty: bool = False) -> str:
    """A string that XML can carry unchanged: no control characters (not even tab or line
    breaks, which attribute values would not keep), no surrogates or U+FFFE/U+FFFF."""
    if not isinstance(s, str):
        raise FormatError(f"must be text, not {type(s).__name__}", where)
    if not s and not empty:
        raise FormatError("must not be empty", where)
    if len(s) > max_len:
        raise FormatError(f"is {len(s)} characters long, at most {max_len} allowed", where)
    for ch in s:
        if ch in "\ufffe\uffff" or unicodedata.category(ch) in ("Cc", "Cs"):
            raise FormatError(f"contains the character U+{ord(ch):04X}, which is not allowed "
                              f"here", where)
    return s


def check_int(v: object, where: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise FormatError(f"must be an int, not {type(v).__name__}", where)
    if not lo <= v <= hi:
        raise FormatError(f"{v} is outside {lo}..{hi}", where)
    return v


_INT_RE = re.compile(r"^-?[0-9]{1,20}$")


def parse_int(text: str | None, where: str, lo: int, hi: int) -> int:
    s = (text or "").strip()
    if not _INT_RE.match(s):
        raise FormatError(f"not an integer: {text!r}", where)
    v = int(s)
    if not lo <= v <= hi:
        raise FormatError(f"{v} is outside {lo}..{hi}", where)
    return v
