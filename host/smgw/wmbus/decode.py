"""One wM-Bus / OMS telegram from bytes to values: :func:`decode` -> :class:`Telegram`.

Order of the checks (design note ``meter-protocols.md`` §2.6):

1. DLL CRCs: detect frame A / B / none, check and strip (:func:`smgw.wmbus.link.strip_crcs`);
2. DLL fields (:func:`smgw.wmbus.link.parse_link`);
3. ELL (CI 0x8C..0x8F): with ENC=1 decrypt AES-CTR and check the payload CRC, else check the
   payload CRC if there is one;
4. AFL (CI 0x90): FCL, MCL, message counter, MAC;
5. TPL (CI 0x72 / 0x7A / 0x78 ...): security mode 5 (IV decrypt + 2F2F) or 7 (KDF, MAC check,
   decrypt + 2F2F); other modes are not supported;
6. a telegram that should be encrypted but is clear is rejected (:class:`WmbusNotEncrypted`);
7. APL: ``smgw.wmbus.apl.decode_records`` for full EN 13757-3 frames (CI 0x72/0x7A/0x78); the
   payload of other application types (compact, format, manufacturer specific ...) is kept as
   bytes with no records.

The decoder is stateless: the replay check on the AFL counter / access number is the caller's
(raise :class:`smgw.wmbus.WmbusReplay`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from smgw.wmbus import (
    WmbusDecrypt,
    WmbusError,
    WmbusNoKey,
    WmbusNotEncrypted,
    WmbusShort,
    WmbusSyntax,
)
from smgw.wmbus.afl import AFL_CI, Afl, parse_afl
from smgw.wmbus.ell import ELL_CIS, Ell, check_payload_crc, parse_ell
from smgw.wmbus.link import Address, LinkHeader, parse_link, strip_crcs
from smgw.wmbus.security import check_key, decrypt_ell, decrypt_mode5, decrypt_mode7
from smgw.wmbus.tpl import SECURITY_MODES, Tpl, parse_tpl

__all__ = ["Telegram", "decode", "decode_hex"]

_DLL_SIZE = 10  # L, C, M (2), A (6)


@dataclass(slots=True)
class Telegram:
    """A decoded telegram. ``raw``: the telegram without DLL CRCs (``L = len - 1``);
    ``payload``: the APL bytes after decryption (None when it could not be decrypted, e.g. on
    :class:`WmbusNoKey`); ``records``: ``smgw.wmbus.apl.Record`` list (empty for application
    data that is not a full EN 13757-3 frame); ``encrypted``: whether any layer (ELL or TPL)
    was encrypted; ``rssi``: passed through from the radio (dBm) if given; ``apl_error``: why
    the application data gave no records (only with ``decode(..., strict_apl=False)``)."""

    link: LinkHeader
    frame: str | None
    ell: Ell | None
    afl: Afl | None
    tpl: Tpl | None
    payload: bytes | None
    records: list = field(default_factory=list)
    encrypted: bool = False
    raw: bytes = b""
    rssi: float | int | None = None
    apl_error: WmbusError | None = None

    # -------------------------------------------------------------------- the meter's identity
    @property
    def meter(self) -> Address:
        """The meter's address: the long TPL header's if there is one (a radio converter or
        repeater sends its own address in the DLL), else the DLL's."""
        if self.tpl is not None and self.tpl.meter is not None:
            return self.tpl.meter
        return self.link.address

    @property
    def manufacturer(self) -> str:
        return self.meter.manufacturer

    @property
    def id(self) -> str:
        return self.meter.id

    @property
    def version(self) -> int:
        return self.meter.version

    @property
    def device_type(self) -> int:
        return self.meter.device_type

    # ---------------------------------------------------------------------- transport fields
    @property
    def access_number(self) -> int | None:
        """The TPL ACC; without a TPL header the ELL's; None if neither."""
        if self.tpl is not None and self.tpl.access_number is not None:
            return self.tpl.access_number
        return None if self.ell is None else self.ell.access_number

    @property
    def status(self) -> int | None:
        return None if self.tpl is None else self.tpl.status

    @property
    def security_mode(self) -> int:
        return 0 if self.tpl is None else self.tpl.security_mode

    @property
    def counter(self) -> int | None:
        """The AFL message counter MCR (mode 7), None without one."""
        return None if self.afl is None else self.afl.counter

    @property
    def ci(self) -> int | None:
        """The CI of the application layer (the TPL's)."""
        return None if self.tpl is None else self.tpl.ci

    def to_json(self) -> dict[str, Any]:
        """The issue's shape first (manufacturer, id, version, device_type, access_number,
        security_mode, records), then: medium, frame, c, ci, content, status, counter, link
        (the DLL address), ell / afl (when present), encrypted, payload (hex), rssi and
        apl_error (when set)."""
        m = self.meter
        d: dict[str, Any] = {
            "manufacturer": m.manufacturer,
            "id": m.id,
            "version": m.version,
            "device_type": m.device_type,
            "access_number": self.access_number,
            "security_mode": self.security_mode,
            "records": [r.to_json() for r in self.records],
            "medium": m.medium,
            "frame": self.frame,
            "c": self.link.c,
            "ci": self.ci,
            "content": None if self.tpl is None else self.tpl.content,
            "status": self.status,
            "counter": self.counter,
            "link": self.link.address.to_json(),
        }
        if self.ell is not None:
            d["ell"] = self.ell.to_json()
        if self.afl is not None:
            d["afl"] = self.afl.to_json()
        d["encrypted"] = self.encrypted
        d["payload"] = None if self.payload is None else self.payload.hex()
        if self.rssi is not None:
            d["rssi"] = self.rssi
        if self.apl_error is not None:
            d["apl_error"] = str(self.apl_error)
        return d


KeyArg = bytes | bytearray | str | None | Callable[[Address], "bytes | str | None"]


def decode(telegram: bytes, key: KeyArg = None, *, expect_encrypted: bool | None = None,
           frame: str = "auto", rssi: float | int | None = None,
           decode_apl: bool = True, strict_apl: bool = True) -> Telegram:
    """Decode one telegram as a radio delivers it (starting at the L-field; with or without DLL
    CRCs, frame A or B).

    ``key``: the meter's AES-128 key (16 bytes or 32 hex digits) for ELL, mode 5 and mode 7 --
    or a function ``key(address) -> key | None`` that looks it up: it is called with the DLL's
    :class:`~smgw.wmbus.link.Address` for ELL encryption and with the meter's (the long TPL's,
    else the DLL's) for the TPL, so a gateway needs one pass to find and use the right key.
    ``expect_encrypted``: reject a clear telegram (:class:`WmbusNotEncrypted`); default: True
    when there is a key for the meter. ``frame``: ``"auto"`` or what the radio reported (``"A"``, ``"B"``,
    ``"none"``). ``decode_apl=False`` stops after decryption (``records`` empty).
    ``strict_apl=False``: application data that are no valid EN 13757-3 records (proprietary
    formats such as Apator's, V5) do not raise; ``records`` stays empty and ``apl_error``
    holds the :class:`WmbusSyntax` that would have been raised.

    Raises only :class:`smgw.wmbus.WmbusError` subclasses for any ``telegram`` (a malformed
    *key* is the caller's ``ValueError``).
    """
    keys = _Keys(key)
    raw, fr = strip_crcs(telegram, frame)
    link = parse_link(raw)
    t = Telegram(link, fr, None, None, None, None, raw=raw, rssi=rssi)
    data = raw
    pos = _DLL_SIZE

    # ELL
    if data[pos] in ELL_CIS or data[pos] == 0x86:
        ell = parse_ell(data, pos)
        if ell.encrypted:
            t.encrypted = True
            t.ell = ell
            key = keys(link.address)
            if key is None:
                raise WmbusNoKey("telegram is encrypted (ELL AES-CTR) and no key is given", t)
            crc_at = pos + ell.length - 2
            plain, crc = _at(decrypt_ell, crc_at, key, link.address.raw, ell, data[crc_at:])
            ell = replace(ell, payload_crc=crc)
            data = data[:crc_at] + bytes([crc & 0xFF, crc >> 8]) + plain  # same positions
        elif ell.has_crc:
            check_payload_crc(ell, data[pos + ell.length:], offset=pos + ell.length - 2)
        t.ell = ell
        pos += ell.length
        if pos >= len(data):
            raise WmbusShort("telegram ends after the ELL: no CI", offset=pos)

    # AFL
    if data[pos] == AFL_CI:
        afl = parse_afl(data, pos)
        t.afl = afl
        pos += afl.length
        if pos >= len(data):
            raise WmbusShort("telegram ends after the AFL: no CI", offset=pos)

    # TPL
    if data[pos] in ELL_CIS or data[pos] in (0x86, AFL_CI):
        raise WmbusSyntax(f"CI 0x{data[pos]:02x} out of order (DLL, ELL, AFL, TPL)", offset=pos)
    tpl_at = pos
    tpl = parse_tpl(data, pos)
    t.tpl = tpl
    pos += tpl.length
    rest = data[pos:]
    mode = tpl.security_mode
    if mode == 0:
        payload = bytes(rest)
    else:
        t.encrypted = True
        meter = t.meter
        key = keys(meter)
        if key is None:
            raise WmbusNoKey(f"telegram is encrypted (security mode {mode}) and no key is given",
                             t)
        if mode == 5:
            payload = _at(decrypt_mode5, pos, key, tpl, meter.raw, rest)
        elif mode == 7:
            payload = _at(decrypt_mode7, pos, key, t.afl, tpl, meter.id_raw, data[tpl_at:], rest)
        else:
            name = SECURITY_MODES.get(mode, "reserved / manufacturer specific")
            raise WmbusDecrypt(f"security mode {mode} ({name}) is not supported", "unsupported")
    if expect_encrypted is None:
        expect_encrypted = keys(t.meter) is not None
    if expect_encrypted and not t.encrypted:
        raise WmbusNotEncrypted("telegram arrived unencrypted but encryption is expected "
                                "(a key is configured for the meter)")
    t.payload = payload
    if decode_apl and tpl.content == "full":
        _records(t, payload, pos, strict_apl)
    return t


class _Keys:
    """The ``key`` argument as a lookup by address (a fixed key serves every address)."""

    __slots__ = ("_cache", "_fixed", "_lookup")

    def __init__(self, key: KeyArg) -> None:
        self._lookup = key if callable(key) else None
        self._fixed = None if callable(key) else check_key(key)
        self._cache: dict[bytes, bytes | None] = {}

    def __call__(self, address: Address) -> bytes | None:
        if self._lookup is None:
            return self._fixed
        if address.raw not in self._cache:
            self._cache[address.raw] = check_key(self._lookup(address))
        return self._cache[address.raw]


def _records(t: Telegram, payload: bytes, offset: int, strict: bool) -> None:
    from smgw.wmbus.apl import AplError, decode_records  # lazy: only full frames need it

    from smgw.wmbus.mfct import decoder_for

    # meters that wrap a proprietary register format (Apator 16-2, V5) get their own decoder
    decode_fn = decoder_for(t.manufacturer, t.device_type, t.version) or decode_records
    try:
        t.records = list(decode_fn(payload))
    except AplError as e:  # the APL's own error (a ValueError): re-raise as ours
        err = WmbusSyntax(f"application layer: {e.reason}", f"apl_{e.code}",
                          None if e.offset is None else offset + e.offset)
        err.__cause__ = e
        if strict:
            raise err from e
        t.apl_error = err


def _at(fn: Callable, offset: int, *args):
    """Run a security step; its errors get the telegram offset of the data it worked on."""
    try:
        return fn(*args)
    except WmbusError as e:
        if e.offset is None:
            e.offset = offset
        raise


def decode_hex(text: str, key: bytes | str | None = None, **kw) -> Telegram:
    """:func:`decode` for a hex string (whitespace allowed); a bad hex string is a
    :class:`WmbusSyntax`."""
    digits = "".join(text.split())
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise WmbusSyntax("telegram is not hexadecimal") from None
    return decode(data, key, **kw)
