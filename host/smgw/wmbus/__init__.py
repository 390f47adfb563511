"""Wireless M-Bus / OMS telegrams on the host (LMN-A): decode, decrypt, encode.

A telegram as a radio delivers it (starting with the L-field, with or without DLL CRCs, frame
format A or B) goes through the layers in the order of design note ``meter-protocols.md`` §2.6:

========== ============================================================================
module     what
========== ============================================================================
link       EN 13757-4 link layer: CRC-16 EN 13757, DLL CRCs of frame A / B (detect, strip,
           add), L/C/M/A fields, manufacturer codes (2 bytes <-> 3 letters), ids, media
ell        extended link layer, CI 0x8C..0x8F (CC, ACC, receiver address, session number,
           payload CRC)
afl        authentication and fragmentation layer, CI 0x90 (FCL, MCL, key info, message
           counter MCR, MAC, message length)
tpl        transport layer headers: long (0x72 ...), short (0x7A ...), none (0x78 ...); ACC,
           STS, configuration word (security mode, encrypted blocks) and its extension
security   mode 5 (AES-128-CBC, IV from address + ACC), mode 7 (KDF-A, AFL CMAC, CBC with
           IV 0), ELL AES-128-CTR with its payload CRC
apl        EN 13757-3 application layer: data records (DIF/DIFE/VIF/VIFE, values)
vif        the VIF / VIFE tables the application layer reads (data only)
decode     :func:`smgw.wmbus.decode.decode`: bytes (+ key) -> :class:`Telegram`, JSON
encode     building telegrams (used by ``tools/omsgen.py``)
cli        ``smgw decode wmbus [--key HEX] HEX | --file F``
========== ============================================================================

The error classes live here so that every layer (and other modules) can raise them without
import cycles. Whose fault: everything wrong in the received bytes (or a wrong key) is the
meter's, the radio's or the key owner's and raises a :class:`WmbusError` subclass -- a
``ValueError`` with a ``code`` slug, the gateway's log-catalogue id (``catalogue_id``) and a short
``reason`` for the log entry. Nothing else escapes the decoders for any input. Docs:
``docs/wmbus.md`` (layers, security, errors, CLI) and ``docs/wmbus-apl.md`` (records).
"""

from __future__ import annotations

__all__ = [
    "CATALOGUE_CHECKSUM",
    "CATALOGUE_COUNTER",
    "CATALOGUE_DECRYPT",
    "CATALOGUE_SYNTAX",
    "WmbusCrc",
    "WmbusDecrypt",
    "WmbusError",
    "WmbusNoKey",
    "WmbusNotEncrypted",
    "WmbusReplay",
    "WmbusShort",
    "WmbusSyntax",
]

CATALOGUE_DECRYPT = 10262  # "Daten von Zähler {meter} ließen sich nicht entschlüsseln. Ursache: …"
CATALOGUE_CHECKSUM = 10263  # "Prüfsumme der Daten von Zähler {meter} ist ungültig."
CATALOGUE_COUNTER = 10264  # "Unerwarteter Transmission Counter … erwartet {…}, erhalten {…}."
CATALOGUE_SYNTAX = 10274  # "Telegramm … hat eine unverständliche Syntax"


class WmbusError(ValueError):
    """A telegram that cannot be used. ``code``: short slug for counters and logs;
    ``catalogue_id``: the log-catalogue event; ``reason``: the message without context;
    ``offset``: byte position in the telegram (after the DLL CRCs are removed) when known."""

    code = "wmbus"
    catalogue_id = CATALOGUE_SYNTAX

    def __init__(self, message: str, code: str | None = None, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        if code is not None:
            self.code = code
        self.reason = message
        self.offset = offset


class WmbusShort(WmbusError):
    """The telegram ends early: fewer bytes than the L-field, a header or an announced
    encrypted length needs (``code``: ``short``)."""

    code = "short"


class WmbusCrc(WmbusError):
    """A DLL block CRC (frame A/B) or an unencrypted ELL payload CRC is wrong (``code``:
    ``crc``; ``block`` names the block: ``"A1"`` .. ``"A17"``, ``"B1"``, ``"B2"``, ``"ell"``)."""

    code = "crc"
    catalogue_id = CATALOGUE_CHECKSUM

    def __init__(self, block: str, sent: int, computed: int, offset: int | None = None) -> None:
        super().__init__(f"CRC of block {block} wrong: sent {sent:04x}, computed {computed:04x}",
                         offset=offset)
        self.block = block
        self.sent = sent
        self.computed = computed


class WmbusSyntax(WmbusError):
    """Bytes that are no telegram of the supported layers: bad L-field arithmetic (``length``),
    header fields that contradict each other (``syntax``), a CI / layer variant this decoder
    does not handle (``unsupported``)."""

    code = "syntax"


class WmbusDecrypt(WmbusError):
    """Decryption failed: wrong key (mode 5/7: no 2F2F; mode 7: MAC mismatch ``mac``; ELL:
    payload CRC mismatch ``ell_crc``), or a security mode / KDF / MAC type this gateway cannot
    decrypt (``unsupported``). Default ``code``: ``decrypt``."""

    code = "decrypt"
    catalogue_id = CATALOGUE_DECRYPT


class WmbusNotEncrypted(WmbusDecrypt):
    """A telegram that should be encrypted arrived in clear (security mode 0 and no ELL
    encryption while a key is configured, or the "ciphertext" already starts with 2F2F):
    rejected against spoofing with replayed, already decrypted logs (§2.6 point 7)."""

    code = "not_encrypted"


class WmbusNoKey(WmbusDecrypt):
    """The telegram is encrypted and no key was given. ``telegram`` is what could be decoded
    without the key (:class:`smgw.wmbus.decode.Telegram` with ``payload`` None), when known."""

    code = "no_key"

    def __init__(self, message: str, telegram: object | None = None) -> None:
        super().__init__(message)
        self.telegram = telegram


class WmbusReplay(WmbusError):
    """Unexpected transmission counter or access number: a replayed or reordered telegram.
    Raised by the gateway's per-meter check (not by the stateless decoder), with the expected
    and the received value for catalogue event 10264."""

    code = "replay"
    catalogue_id = CATALOGUE_COUNTER

    def __init__(self, expected: object, received: object, what: str = "counter") -> None:
        super().__init__(f"unexpected {what}: expected {expected}, received {received}")
        self.expected = expected
        self.received = received
        self.what = what
