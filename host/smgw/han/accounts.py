"""HAN accounts: consumers and service technicians, their Digest secrets and client certificates.

One JSON file, ``<data_dir>/han-accounts.json`` (written atomically, mode 0600)::

    {"format": 1, "realm": "eopn0000000001",
     "accounts": [{"name": "demo", "role": "consumer", "consumer": "LV1",
                   "ha1": {"MD5": "<hex>", "SHA-256": "<hex>"},
                   "certs": [{"sha256": "<hex of the DER>", "subject": "CN=demo",
                              "not_after_ms": 1900000000000, "pem": "-----BEGIN ..."}],
                   "created_ms": 1763700000000}]}

No password is stored: ``ha1`` holds ``H(name:realm:password)`` for each algorithm
(:mod:`smgw.han.digest`); the realm is the lower-case gateway id, so a file belongs to one
gateway. ``consumer`` is the consumer id of the logbooks (``logbook.consumers``, e.g. ``LV1``):
what the account sees is what belongs to that consumer. A technician has no consumer.

A client certificate is enrolled by adding its PEM to the account (``smgw han account add NAME
--cert FILE`` or ``... cert NAME FILE``); the TLS layer then trusts exactly that certificate
(self-signed or not, see :mod:`smgw.han.tlsconf`) and a connection presenting it is logged in as
the account. The running gateway notices changes of the file (:meth:`Accounts.reload_if_changed`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import pkcs12 as _pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smgw.fileio import atomic_write
from smgw.han.digest import ALGORITHMS, canonical_algorithm, ha1

__all__ = ["ACCOUNTS_FILE", "ROLES", "Account", "AccountError", "Accounts", "ClientCert",
           "cert_fingerprint", "make_client_identity", "pkcs12"]

ACCOUNTS_FILE = "han-accounts.json"
ROLES = ("consumer", "technician")
FORMAT = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_HEX_RE = re.compile(r"[0-9a-f]{32,128}\Z")
MAX_CERTS = 8


class AccountError(ValueError):
    """A bad account request or a bad accounts file; the message names the account/key."""


def cert_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER encoding, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def make_client_identity(name: str, days: int = 730) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed client certificate for an account (``CN = name``,
    clientAuth): ``(key_pem, cert_pem)``. For consumers without a certificate of their own
    (the demo gateway, tests); enrol the certificate with :meth:`Accounts.add`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "HAN"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(Encoding.PEM)


def pkcs12(key_pem: bytes, cert_pem: bytes, password: str, name: str) -> bytes:
    """Key and certificate as a PKCS#12 file for a browser's certificate import (seed 001
    E-4.2.5: the key pair comes as a password-protected .p12)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    return _pkcs12.serialize_key_and_certificates(name.encode(), key, cert, None, enc)


@dataclass(frozen=True)
class ClientCert:
    sha256: str
    subject: str
    not_after_ms: int
    pem: str


@dataclass(frozen=True)
class Account:
    name: str
    role: str                       # "consumer" | "technician"
    consumer: str | None            # logbook consumer id (consumers only)
    ha1: dict[str, str] = field(default_factory=dict)   # base algorithm -> hex; {} = no password
    certs: tuple[ClientCert, ...] = ()
    created_ms: int = 0

    @property
    def has_password(self) -> bool:
        return bool(self.ha1)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "consumer": self.consumer,
                "ha1": dict(self.ha1),
                "certs": [{"sha256": c.sha256, "subject": c.subject,
                           "not_after_ms": c.not_after_ms, "pem": c.pem} for c in self.certs],
                "created_ms": self.created_ms}

    def describe(self) -> dict[str, Any]:
        """What `smgw han account list` shows (no secrets)."""
        return {"name": self.name, "role": self.role, "consumer": self.consumer,
                "password": self.has_password,
                "certificates": [{"sha256": c.sha256, "subject": c.subject,
                                  "not_after": _iso(c.not_after_ms)} for c in self.certs],
                "created": _iso(self.created_ms)}


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AccountError(f"name {name!r}: an account name is 1-64 characters of letters, "
                           "digits, '.', '_', '-', starting with a letter or digit")
    return name


def _check_password(password: Any, name: str) -> str:
    if not isinstance(password, str) or not password:
        raise AccountError(f"account {name}: the password must be a non-empty string")
    if len(password) > 256 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise AccountError(f"account {name}: the password must be at most 256 characters "
                           "without control characters")
    return password


def parse_client_cert(pem: bytes | str, name: str, now_ms: int) -> ClientCert:
    """A client certificate to enrol; refuses what TLS would refuse anyway (expired,
    not yet valid, a CA certificate)."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise AccountError(f"account {name}: the client certificate is not a PEM "
                           f"certificate ({e})") from None
    nb = int(cert.not_valid_before_utc.timestamp() * 1000)
    na = int(cert.not_valid_after_utc.timestamp() * 1000)
    if now_ms > na:
        raise AccountError(f"account {name}: the client certificate expired at {_iso(na)}")
    if now_ms < nb:
        raise AccountError(f"account {name}: the client certificate is valid only from "
                           f"{_iso(nb)}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise AccountError(f"account {name}: a CA certificate cannot be a client "
                               "certificate")
    except x509.ExtensionNotFound:
        pass
    der = cert.public_bytes(Encoding.DER)
    return ClientCert(cert_fingerprint(der), cert.subject.rfc4514_string(), na,
                      cert.public_bytes(Encoding.PEM).decode("ascii"))


class Accounts:
    """The accounts of one gateway (realm). Load with :meth:`open`; every change is written
    at once."""

    def __init__(self, path: Path, realm: str, accounts: Iterable[Account] = (),
                 now_ms: Any = None) -> None:
        self.path = Path(path)
        self.realm = realm
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._by_name: dict[str, Account] = {}
        self._by_cert: dict[str, str] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._set(accounts)

    # ------------------------------------------------------------------ file

    @classmethod
    def open(cls, path: Path | str, gateway_id: str, now_ms: Any = None) -> "Accounts":
        """The accounts in ``path`` (a data directory means ``<dir>/han-accounts.json``); an
        absent file is an empty set of accounts. The realm is ``gateway_id.lower()``."""
        path = Path(path)
        if path.is_dir():
            path = path / ACCOUNTS_FILE
        self = cls(path, gateway_id.lower(), now_ms=now_ms)
        self._load()
        return self

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> None:
        stamp = self._file_stamp()
        if stamp is None:
            self._set(())
            self._stamp = None
            return
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as e:
            raise AccountError(f"{self.path}: not readable as JSON ({e})") from None
        self._set(self._parse(doc))
        self._stamp = stamp

    def _parse(self, doc: Any) -> list[Account]:
        p = self.path
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise AccountError(f"{p}: format must be {FORMAT}")
        if doc.get("realm") != self.realm:
            raise AccountError(
                f"{p}: realm: the file was made for realm {doc.get('realm')!r}, this gateway's "
                f"realm is {self.realm!r} (gateway.id changed?): the stored Digest secrets "
                "cannot work; set the passwords again or restore gateway.id")
        out = []
        items = doc.get("accounts")
        if not isinstance(items, list):
            raise AccountError(f"{p}: accounts must be a list")
        for i, a in enumerate(items):
            where = f"{p}: accounts[{i}]"
            try:
                name = _check_name(a.get("name"))
                role = a.get("role")
                if role not in ROLES:
                    raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
                consumer = a.get("consumer")
                if (role == "consumer") != isinstance(consumer, str) or consumer == "":
                    raise AccountError("consumer: a consumer account needs a consumer id, a "
                                       "technician account has none")
                h = a.get("ha1") or {}
                if not isinstance(h, dict):
                    raise AccountError("ha1 must be an object")
                for alg, v in h.items():
                    if alg not in ALGORITHMS or not isinstance(v, str) or not _HEX_RE.match(v):
                        raise AccountError(f"ha1.{alg}: must be lower-case hex for one of "
                                           f"{', '.join(ALGORITHMS)}")
                certs = tuple(ClientCert(str(c["sha256"]), str(c.get("subject", "")),
                                         int(c.get("not_after_ms", 0)), str(c["pem"]))
                              for c in a.get("certs") or [])
                out.append(Account(name, role, consumer, dict(h), certs,
                                   int(a.get("created_ms") or 0)))
            except AccountError as e:
                raise AccountError(f"{where}.{e}" if str(e)[:1].islower() else f"{where}: {e}"
                                   ) from None
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise AccountError(f"{where}: malformed ({type(e).__name__}: {e})") from None
        return out

    def _set(self, accounts: Iterable[Account]) -> None:
        by_name: dict[str, Account] = {}
        by_cert: dict[str, str] = {}
        for a in accounts:
            if a.name in by_name:
                raise AccountError(f"{self.path}: account {a.name!r} appears twice")
            by_name[a.name] = a
            for c in a.certs:
                if c.sha256 in by_cert:
                    raise AccountError(f"{self.path}: certificate {c.sha256[:16]}... belongs "
                                       f"to both {by_cert[c.sha256]!r} and {a.name!r}")
                by_cert[c.sha256] = a.name
        self._by_name, self._by_cert = by_name, by_cert

    def _save(self, accounts: list[Account]) -> None:
        self._set(accounts)
        doc = {"format": FORMAT, "realm": self.realm,
               "accounts": [a.to_json() for a in accounts]}
        atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), 0o600)
        self._stamp = self._file_stamp()

    def reload_if_changed(self) -> bool:
        """Re-read the file if another process (the CLI) changed it; True if it did. A file
        that became unreadable keeps the accounts as they were (and raises)."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._load()
        return True

    # ------------------------------------------------------------------ queries

    def get(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def list(self) -> list[Account]:
        return sorted(self._by_name.values(), key=lambda a: a.name)

    def __len__(self) -> int:
        return len(self._by_name)

    def by_fingerprint(self, sha256_hex: str) -> Account | None:
        name = self._by_cert.get(sha256_hex.lower())
        return self._by_name.get(name) if name else None

    def by_cert_der(self, der: bytes) -> Account | None:
        return self.by_fingerprint(cert_fingerprint(der))

    def ha1(self, name: str, algorithm: str) -> str | None:
        """The stored HA1 of ``name`` for a base algorithm (None: no account, no password)."""
        a = self._by_name.get(name)
        if a is None:
            return None
        base, _ = canonical_algorithm(algorithm)
        return a.ha1.get(base)

    def client_cert_pems(self) -> list[str]:
        """Every enrolled client certificate (PEM): the TLS layer's trust list."""
        return [c.pem for a in self._by_name.values() for c in a.certs]

    # ------------------------------------------------------------------ changes

    def add(self, name: str, role: str, password: str | None = None,
            consumer: str | None = None, cert_pem: bytes | str | None = None) -> Account:
        """A new account with a password, a client certificate, or both."""
        self.reload_if_changed()
        _check_name(name)
        if name in self._by_name:
            raise AccountError(f"account {name}: exists already (remove it first, or use "
                               "passwd/cert)")
        if role not in ROLES:
            raise AccountError(f"account {name}: role must be one of {', '.join(ROLES)}, "
                               f"not {role!r}")
        if role == "consumer":
            if not isinstance(consumer, str) or not consumer.strip():
                raise AccountError(f"account {name}: a consumer account needs the consumer id "
                                   "(logbook.consumers, e.g. LV1)")
            if any(ord(c) < 0x20 for c in consumer) or len(consumer) > 64:
                raise AccountError(f"account {name}: consumer id {consumer!r} is not valid")
        elif consumer is not None:
            raise AccountError(f"account {name}: a technician account has no consumer id")
        if password is None and cert_pem is None:
            raise AccountError(f"account {name}: give a password, a client certificate or both")
        now = int(self._now_ms())
        h = self._ha1s(name, _check_password(password, name)) if password is not None else {}
        certs = ()
        if cert_pem is not None:
            c = parse_client_cert(cert_pem, name, now)
            self._cert_free(c, name)
            certs = (c,)
        acct = Account(name, role, consumer, h, certs, now)
        self._save([*self._by_name.values(), acct])
        return acct

    def _ha1s(self, name: str, password: str) -> dict[str, str]:
        return {alg: ha1(alg, name, self.realm, password) for alg in ALGORITHMS}

    def _cert_free(self, c: ClientCert, name: str) -> None:
        owner = self._by_cert.get(c.sha256)
        if owner is not None:
            raise AccountError(f"account {name}: this certificate is enrolled for {owner!r} "
                               "already")

    def _replace(self, acct: Account) -> Account:
        self._save([acct if a.name == acct.name else a for a in self._by_name.values()])
        return acct

    def _need(self, name: str) -> Account:
        self.reload_if_changed()
        a = self._by_name.get(name)
        if a is None:
            raise AccountError(f"account {name}: no such account")
        return a

    def set_password(self, name: str, password: str | None) -> Account:
        """A new password (None removes it: certificate login only)."""
        a = self._need(name)
        if password is None and not a.certs:
            raise AccountError(f"account {name}: has no certificate; it would have no way to "
                               "log in")
        h = self._ha1s(name, _check_password(password, name)) if password is not None else {}
        return self._replace(Account(a.name, a.role, a.consumer, h, a.certs, a.created_ms))

    def add_cert(self, name: str, cert_pem: bytes | str) -> Account:
        a = self._need(name)
        c = parse_client_cert(cert_pem, name, int(self._now_ms()))
        self._cert_free(c, name)
        if len(a.certs) >= MAX_CERTS:
            raise AccountError(f"account {name}: has {MAX_CERTS} certificates already")
        return self._replace(Account(a.name, a.role, a.consumer, a.ha1, (*a.certs, c),
                                     a.created_ms))

    def remove_cert(self, name: str, sha256_prefix: str) -> Account:
        a = self._need(name)
        p = sha256_prefix.lower().replace(":", "")
        hits = [c for c in a.certs if c.sha256.startswith(p)] if p else []
        if len(hits) != 1:
            raise AccountError(f"account {name}: {len(hits)} certificates match {sha256_prefix!r}"
                               " (give more of the SHA-256 fingerprint)")
        rest = tuple(c for c in a.certs if c is not hits[0])
        if not rest and not a.ha1:
            raise AccountError(f"account {name}: has no password; it would have no way to log "
                               "in")
        return self._replace(Account(a.name, a.role, a.consumer, a.ha1, rest, a.created_ms))

    def remove(self, name: str) -> bool:
        self.reload_if_changed()
        if name not in self._by_name:
            return False
        self._save([a for a in self._by_name.values() if a.name != name])
        return True
