"""Transport layer headers (design note ``meter-protocols.md`` §1.6-1.7) for telegrams from a
meter.

* none  (0x78 ...): no header.
* short (0x7A ...): ``ACC | STS | CFG (2, LE) [| ext ...]``.
* long  (0x72 ...): ``ID (4) | M (2) | version | type | ACC | STS | CFG (2) [| ext ...]`` -- the
  meter's own address, which may differ from the DLL's (radio converters, repeaters).

CFG for security modes 0 and 5 (and the other non-7 modes): bit 15 B, 14 A, 13 S, 12..8 mode,
7..4 N (encrypted 16-byte blocks), 3..2 content, 1 R, 0 H. For mode 7: 15..14 content, 13 Z,
12..8 mode, 7..4 N, 3 P (padding), 2..0 content index, followed by the extension byte (bit 7
must be 0, bit 6 V, 5..4 KDF: 00 persistent key, 01 KDF-A, bits 3..0 key id), then (as exmbus
reads EN 13757-7 §7.7.5) a 4-byte counter if Z, then a key-version byte if V.

:data:`TPL_CIS` lists which CI values from a meter carry which header and what application
data follows; other CI values are rejected as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass

from smgw.wmbus import WmbusShort, WmbusSyntax
from smgw.wmbus.link import Address

__all__ = ["SECURITY_MODES", "TPL_CIS", "Tpl", "parse_tpl"]

# CI -> (header kind, application content)
TPL_CIS: dict[int, tuple[str, str]] = {
    0x78: ("none", "full"), 0x7A: ("short", "full"), 0x72: ("long", "full"),
    0x79: ("none", "compact"), 0x7B: ("short", "compact"), 0x73: ("long", "compact"),
    0x69: ("none", "format"), 0x6A: ("short", "format"), 0x6B: ("long", "format"),
    0x71: ("none", "alarm"), 0x74: ("short", "alarm"), 0x75: ("long", "alarm"),
    0x70: ("none", "error"), 0x6E: ("short", "error"), 0x6F: ("long", "error"),
    0x66: ("none", "selected"), 0x67: ("short", "selected"), 0x68: ("long", "selected"),
    0x8A: ("short", "tpl"), 0x8B: ("long", "tpl"),
    0x7D: ("short", "dlms"), 0x7C: ("long", "dlms"),
    0x7F: ("short", "obis"), 0x7E: ("long", "obis"),
    **{ci: ("none", "manufacturer") for ci in range(0xA0, 0xB8)},
}

SECURITY_MODES: dict[int, str] = {
    0: "none", 1: "manufacturer specific", 2: "DES-CBC, IV 0", 3: "DES-CBC with IV",
    5: "AES-128-CBC with IV", 7: "AES-128-CBC, ephemeral key", 8: "AES-128-CTR + CMAC",
    9: "AES-128-GCM", 10: "AES-128-CCM", 13: "TLS",
}

_HEADER_SIZE = {"none": 1, "short": 5, "long": 13}  # including the CI


@dataclass(frozen=True, slots=True)
class Tpl:
    """One transport layer header. ``meter``: the long header's address (None otherwise);
    ``config_ext``: the mode-7 extension byte; ``length``: header bytes including the CI and
    every extension byte (the encrypted part starts right after it)."""

    ci: int
    kind: str  # "none" | "short" | "long"
    content: str  # "full", "compact", "format", "alarm", "error", "selected", "tpl", ...
    meter: Address | None
    access_number: int | None
    status: int | None
    config: int
    config_ext: int | None
    counter: int | None  # mode 7 with Z: the 4-byte counter after the extension
    key_version: int | None
    length: int

    @property
    def security_mode(self) -> int:
        return (self.config >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        return (self.config >> 4) & 0x0F

    @property
    def kdf(self) -> int | None:
        """Mode 7: 0 persistent key, 1 KDF-A, 2/3 reserved."""
        return None if self.config_ext is None else (self.config_ext >> 4) & 3

    @property
    def key_id(self) -> int | None:
        return None if self.config_ext is None else self.config_ext & 0x0F

    # status bits
    @property
    def application_state(self) -> int | None:
        """0 ok, 1 busy, 2 application error, 3 abnormal condition / alarm."""
        return None if self.status is None else self.status & 3

    @property
    def power_low(self) -> bool:
        return bool(self.status and self.status & 0x04)

    @property
    def permanent_error(self) -> bool:
        return bool(self.status and self.status & 0x08)

    @property
    def temporary_error(self) -> bool:
        return bool(self.status and self.status & 0x10)


def parse_tpl(data: bytes, pos: int) -> Tpl:
    """The TPL header at ``data[pos]`` (its CI)."""
    ci = data[pos]
    spec = TPL_CIS.get(ci)
    if spec is None:
        raise WmbusSyntax(f"CI 0x{ci:02x} is not supported", "unsupported", pos)
    kind, content = spec
    size = _HEADER_SIZE[kind]
    if pos + size > len(data):
        raise WmbusShort(f"truncated {kind} TPL header: needs {size} bytes, "
                         f"{len(data) - pos} left", offset=pos)
    if kind == "none":
        return Tpl(ci, kind, content, None, None, None, 0, None, None, None, 1)
    p = pos + 1
    meter = None
    if kind == "long":
        meter = Address.from_tpl(data[p : p + 8])
        p += 8
    acc, sts = data[p], data[p + 1]
    config = data[p + 2] | (data[p + 3] << 8)
    p += 4
    ext = counter = key_version = None
    if (config >> 8) & 0x1F == 7:
        if p >= len(data):
            raise WmbusShort("truncated TPL: mode 7 needs the configuration extension",
                             offset=p)
        ext = data[p]
        p += 1
        if ext & 0x80:
            raise WmbusSyntax(f"configuration extension 0x{ext:02x}: bit 7 set", offset=p - 1)
        extra = (4 if config & 0x2000 else 0) + (1 if ext & 0x40 else 0)
        if p + extra > len(data):
            raise WmbusShort("truncated TPL: counter / key version of mode 7", offset=p)
        if config & 0x2000:
            counter = int.from_bytes(data[p : p + 4], "little")
            p += 4
        if ext & 0x40:
            key_version = data[p]
            p += 1
    return Tpl(ci, kind, content, meter, acc, sts, config, ext, counter, key_version, p - pos)
