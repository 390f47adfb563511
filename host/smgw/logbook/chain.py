"""Signed hash chain of the calibration log (Eichlog): format, signing key, verification.

Usable on its own (``smgw verify-log`` needs nothing else): it knows no database and no CSV.
docs/logbooks.md section "Chain and signature" is the normative description; in short:

* ``canonical_json(x)``: JSON with sorted keys, separators ``,`` and ``:``, non-ASCII characters
  as themselves, UTF-8. For the values an entry holds (strings, integers below 2**53, booleans,
  objects with ASCII identifier keys) this is the JSON Canonicalization Scheme (RFC 8785).
* ``canonical_bytes(entry)`` = ``canonical_json([seq, ts_ms, time_valid, event_id, level, status,
  params, text])``.
* ``h_0 = SHA-256("SMGW-EICHLOG-v1" || gateway_id)`` and ``h_n = SHA-256(h_{n-1} ||
  canonical_bytes(entry_n))``.
* Each entry stores ``h_n`` and ``sig_n`` = ECDSA (brainpoolP256r1, DER) over ``h_n`` taken as
  the SHA-256 message digest (no second hash).
* The head (last seq and its hash) is signed separately: ``head_digest = SHA-256(
  "SMGW-EICHLOG-HEAD-v1" || 0x00 || gateway_id || 0x00 || seq as 8 bytes big-endian || h_seq)``.
  It is rewritten with every append, so cutting entries off the end is detected.

:func:`verify` checks a sequence of entries against a head and reports every problem it finds
(with a code: ``hash``, ``chain``, ``signature``, ``key``, ``gap``, ``order``, ``truncated``,
``head``) instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

__all__ = [
    "CERT_FILE",
    "GENESIS_LABEL",
    "HEAD_LABEL",
    "KEY_FILE",
    "Head",
    "Problem",
    "Signer",
    "Verifier",
    "VerifyResult",
    "canonical_bytes",
    "canonical_json",
    "chain_hash",
    "genesis",
    "head_digest",
    "verify",
]

GENESIS_LABEL = b"SMGW-EICHLOG-v1"
HEAD_LABEL = b"SMGW-EICHLOG-HEAD-v1"
KEY_NAME = "log-sign"
KEY_FILE = f"{KEY_NAME}.key.pem"
CERT_FILE = f"{KEY_NAME}.crt.pem"

_ALG = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


# --------------------------------------------------------------------------------------------
# canonical form and hashes


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value`` that hashes and the database use."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def canonical_bytes(seq: int, ts_ms: int, time_valid: bool, event_id: int, level: str,
                    status: str, params: Mapping[str, Any], text: str) -> bytes:
    """The bytes of one entry that go into the chain."""
    return canonical_json([int(seq), int(ts_ms), bool(time_valid), int(event_id), level, status,
                           dict(params), text]).encode("utf-8")


def entry_bytes(entry: Any) -> bytes:
    """:func:`canonical_bytes` of anything with the entry's attributes."""
    return canonical_bytes(entry.seq, entry.ts_ms, entry.time_valid, entry.event_id,
                           entry.level, entry.status, entry.params, entry.text)


def genesis(gateway_id: str) -> bytes:
    """``h_0``: the chain's anchor, bound to the gateway."""
    return hashlib.sha256(GENESIS_LABEL + gateway_id.encode("utf-8")).digest()


def chain_hash(prev: bytes, data: bytes) -> bytes:
    """``h_n = SHA-256(h_{n-1} || canonical_bytes(entry_n))``."""
    return hashlib.sha256(prev + data).digest()


def head_digest(gateway_id: str, seq: int, h: bytes) -> bytes:
    """What the head signature covers."""
    if len(h) != 32:
        raise ValueError("a chain hash has 32 bytes")
    return hashlib.sha256(HEAD_LABEL + b"\x00" + gateway_id.encode("utf-8") + b"\x00"
                          + int(seq).to_bytes(8, "big") + h).digest()


@dataclass(frozen=True)
class Head:
    """The signed head: ``seq`` of the last entry (0 for an empty log) and its hash."""

    seq: int
    hash: bytes
    sig: bytes


# --------------------------------------------------------------------------------------------
# keys


class Signer:
    """The gateway's log-signature key (ECDSA on brainpoolP256r1) and its certificate.

    Files in the key directory (``load_or_create``): ``log-sign.key.pem`` (0600: the key *and*
    the certificate, replaced in one atomic rename) and ``log-sign.crt.pem`` (the certificate
    alone, for whoever verifies exports). The certificate is self-signed with
    CN "SMGW <gateway id> Log-Signatur".
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the log-signature key must be an EC key")
        own = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        certified = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if own != certified:
            raise ValueError("the certificate does not belong to the log-signature key")
        self._key = key
        self._cert = cert

    @staticmethod
    def cn_for(gateway_id: str | None) -> str:
        return f"SMGW {gateway_id} Log-Signatur" if gateway_id else "SMGW Log-Signatur"

    @classmethod
    def generate(cls, gateway_id: str | None = None) -> "Signer":
        """A new key and certificate, in memory only."""
        from smgw.lmn.security import make_identity

        ident = make_identity(cls.cn_for(gateway_id))
        return cls(ident.key, ident.cert)

    @classmethod
    def load(cls, dir: str | os.PathLike) -> "Signer":
        """The key saved in ``dir``; FileNotFoundError or ValueError."""
        from smgw.lmn.security import Identity

        ident = Identity.load(dir, KEY_NAME)
        return cls(ident.key, ident.cert)

    @classmethod
    def load_or_create(cls, dir: str | os.PathLike, gateway_id: str | None = None) -> "Signer":
        """The key saved in ``dir``, or a new one saved there first.

        An existing key is never replaced: every signature in the calibration log depends on it.
        """
        from smgw.lmn.security import load_or_create

        ident = load_or_create(Path(dir), KEY_NAME, cls.cn_for(gateway_id))
        return cls(ident.key, ident.cert)

    def save(self, dir: str | os.PathLike) -> None:
        from smgw.lmn.security import Identity

        Identity(self._key, self._cert).save(dir, KEY_NAME)

    def sign(self, digest: bytes) -> bytes:
        """DER ECDSA signature over a SHA-256 digest (used as the message hash as it is)."""
        if len(digest) != 32:
            raise ValueError("sign() takes a 32-byte SHA-256 digest")
        return self._key.sign(bytes(digest), _ALG)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def cert(self) -> x509.Certificate:
        return self._cert

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def verifier(self) -> "Verifier":
        return Verifier(self.public_key)


class Verifier:
    """Checks log signatures with a certificate (PEM/DER bytes or text) or a public key."""

    def __init__(self, cert_or_key: bytes | str | x509.Certificate | ec.EllipticCurvePublicKey):
        key: Any
        if isinstance(cert_or_key, ec.EllipticCurvePublicKey):
            key = cert_or_key
        elif isinstance(cert_or_key, x509.Certificate):
            key = cert_or_key.public_key()
        else:
            data = cert_or_key.encode("ascii") if isinstance(cert_or_key, str) else cert_or_key
            data = bytes(data)
            try:
                if b"-----BEGIN CERTIFICATE-----" in data:
                    key = x509.load_pem_x509_certificate(data).public_key()
                elif b"-----BEGIN PUBLIC KEY-----" in data:
                    key = serialization.load_pem_public_key(data)
                else:
                    key = x509.load_der_x509_certificate(data).public_key()
            except ValueError as exc:
                raise ValueError(f"not a certificate or public key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the certificate does not hold an EC public key")
        self.public_key = key

    def verify(self, digest: bytes, sig: bytes) -> bool:
        try:
            self.public_key.verify(bytes(sig), bytes(digest), _ALG)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


# --------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True)
class Problem:
    """One finding: ``seq`` of the entry concerned (None: the log as a whole), a ``code`` for
    programs and an English ``text`` for people."""

    seq: int | None
    code: str
    text: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "log"
        return f"{where}: {self.code}: {self.text}"


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problems: list[Problem] = field(default_factory=list)
    #: the signed head's seq, when there was a head with a valid signature
    head_seq: int | None = None
    #: which log was checked
    log: str = "calibration"


class _Problems:
    def __init__(self, limit: int):
        self.items: list[Problem] = []
        self.limit = limit
        self.dropped = 0

    def add(self, seq: int | None, code: str, text: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(Problem(seq, code, text))
        else:
            self.dropped += 1

    def result(self, checked: int, head_seq: int | None) -> VerifyResult:
        items = list(self.items)
        if self.dropped:
            items.append(Problem(None, "more", f"{self.dropped} further problems not listed"))
        return VerifyResult(not items, checked, items, head_seq)


def verify(entries: Iterable[Any], head: Head | None, verifier: Verifier, gateway_id: str, *,
           complete: bool = True, contiguous: bool = True, signatures: bool = True,
           max_problems: int = 1000) -> VerifyResult:
    """Check entries (in the order given) and the head; report every problem found.

    ``entries`` are objects with ``seq, ts_ms, time_valid, event_id, level, status, params,
    text, hash, sig`` and optionally ``prev_hash`` (the hash the entry was chained to, as an
    export carries it; without it the previous entry's stored hash is used).

    ``complete``: the entries are the whole log, so it must start at seq 1 on ``h_0`` and end at
    the head. ``contiguous``: a missing seq between two entries is a problem (``gap``); off for
    a selection by time or level. ``signatures``: check each entry's signature (0.4 ms each);
    without it an unbroken chain from ``h_0`` up to a validly signed head still proves every
    entry, but a damaged signature field goes unnoticed.
    """
    out = _Problems(max_problems)
    h0 = genesis(gateway_id)

    head_ok = False
    if head is None:
        out.add(None, "head", "no signed head record: the end of the log cannot be checked")
    else:
        head_ok = verifier.verify(head_digest(gateway_id, head.seq, head.hash), head.sig)

    checked = 0
    sig_failed: list[int] = []
    prev_seq: int | None = 0 if complete else None
    prev_hash: bytes | None = h0 if complete else None
    first = True
    for e in entries:
        checked += 1
        seq = int(e.seq)
        stored = bytes(e.hash) if e.hash is not None else b""
        given_prev = getattr(e, "prev_hash", None)
        consecutive = prev_seq is not None and seq == prev_seq + 1

        if prev_seq is not None and seq <= prev_seq:
            out.add(seq, "order", f"entry {seq} comes after entry {prev_seq}")
        elif prev_seq is not None and seq > prev_seq + 1 and (contiguous or (complete and first)):
            missing = (f"entry {prev_seq + 1}" if seq == prev_seq + 2
                       else f"entries {prev_seq + 1} to {seq - 1}")
            out.add(seq, "gap", f"{missing} missing before entry {seq}")

        # the link to the predecessor
        if given_prev is not None:
            given_prev = bytes(given_prev)
            if seq == 1 and given_prev != h0:
                out.add(seq, "chain", "the first entry is not chained to this gateway's start "
                                      "value h_0 (other gateway id?)")
            elif consecutive and prev_hash is not None and given_prev != prev_hash:
                out.add(seq, "chain", f"not chained to entry {prev_seq}")
            link = given_prev
        elif consecutive:
            link = prev_hash
        else:
            link = h0 if seq == 1 else None

        try:
            data = entry_bytes(e)
        except (TypeError, ValueError) as exc:
            out.add(seq, "hash", f"entry cannot be encoded: {exc}")
            data = None
        if link is not None and data is not None:
            if chain_hash(link, data) != stored:
                out.add(seq, "hash", "content does not match its hash (entry changed)")
        if signatures and not verifier.verify(stored, e.sig or b""):
            sig_failed.append(seq)

        if prev_seq is None or seq > prev_seq:
            prev_seq, prev_hash = seq, stored
        first = False
        if head is not None and seq == head.seq and stored != head.hash:
            out.add(seq, "head", "entry does not match the signed head")

    if signatures and sig_failed and len(sig_failed) == checked and not head_ok:
        out.add(None, "key", "no signature matches the certificate (wrong certificate, or "
                             "every signature forged)")
    else:
        if head is not None and not head_ok:
            out.add(None, "head", "the head signature is invalid")
        for seq in sig_failed:
            out.add(seq, "signature", "signature invalid")

    if complete and head is not None:
        last = prev_seq or 0
        if checked == 0 and head.seq > 0:
            out.add(None, "truncated", f"the log is empty but the signed head is entry {head.seq}")
        elif last < head.seq:
            out.add(None, "truncated",
                    f"the log ends at entry {last} but the signed head is entry {head.seq}")
        elif last > head.seq:
            out.add(None, "head", f"entries after the signed head (entry {head.seq}) up to "
                                  f"entry {last}")
        elif checked == 0 and head.hash != h0:
            out.add(None, "head", "the signed head of the empty log is not h_0")
    return out.result(checked, head.seq if head is not None and head_ok else None)
