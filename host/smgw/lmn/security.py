"""Security of the wired LMN: identities, pairing and TLS (docs/lmn-wired.md sections 5 and 6).

Three parts, all sans-I/O so that the gateway (``master``), the meter simulator and the tests
drive them the same way, byte by byte, over whatever carries channel 0x01 and 0x02:

* :class:`Identity` -- an ECDSA key on brainpoolP256r1 and a self-signed X.509 certificate.
  :func:`make_identity`, :meth:`Identity.save` / :meth:`Identity.load`, :func:`load_or_create`.
* Pairing (section 5): :class:`GatewayPairing` and :class:`MeterPairing` exchange the two
  certificates and prove them with AES-CMAC (RFC 4493) under the meter's pairing key K; both
  derive the operational key K_op. Python's ``ssl`` has no TLS-PSK before 3.13, so the symmetric
  key authenticates the certificates instead of the TLS session.
* TLS (section 6): :class:`TlsEndpoint` runs TLS 1.2 over ``ssl.MemoryBIO`` with mutual
  certificates, each side trusting exactly the certificate it pinned while pairing.

Brainpool: tested with the system OpenSSL 3.0 that CPython's ``ssl`` links against. Keys,
certificates (ECDSA-with-SHA256) and the ECDHE group all run on brainpoolP256r1 with both cipher
suites; no part falls back to prime256v1. One condition: both sides must offer brainpoolP256r1
as their only group (``set_ecdh_curve``). OpenSSL 3.0's default group list has no brainpool
curve, and in TLS 1.2 the client's group list also decides which certificate curves the server
may use, so without it the handshake ends in "no shared cipher".

Errors: everything that goes wrong because of the peer or the configuration raises a
:class:`SecurityError` subclass with ``code`` (an English slug for programs and tests) and
``reason`` (a short German text for the gateway log, naming whose fault it is, never containing
key material). Codes:

* ``bad_mac``    the peer's MAC is wrong (wrong pairing key, or the message was altered),
* ``bad_cert``   the peer's certificate is unacceptable (CN, curve, validity, not the pinned one),
* ``unexpected`` a message that does not fit the state of the exchange,
* ``malformed``  a message whose length or layout is wrong,
* ``peer_fail``  the peer sent PAIR_FAIL (``PairingError.peer_reason`` holds its reason byte),
* ``rejected``   the TLS peer refused our certificate (it sent a certificate alert),
* ``tls``        any other TLS failure (the OpenSSL reason is in ``reason``).

Pairing messages arrive from a bus anyone can drive: hostile input of any kind raises
:class:`PairingError` and nothing else (fuzzed in tests/host/lmn/test_security.py).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.x509.oid import NameOID

from smgw.fileio import atomic_write

CURVE_NAME = "brainpoolP256r1"
TLS_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"

# Section 4: the channel data of one I-frame is at most 1023 bytes, and a pairing message is
# one I-frame.
MAX_MESSAGE = 1023
NONCE_LEN = 16
MAC_LEN = 16
KEY_LEN = 16

PAIR_HELLO = 0x01
PAIR_PROOF = 0x02
PAIR_CONFIRM = 0x03
PAIR_DONE = 0x04
PAIR_FAIL = 0x0F

FAIL_BAD_MAC = 1
FAIL_BAD_CERT = 2
FAIL_UNEXPECTED = 3

# PAIR_FAIL knows three reasons; a malformed message is an unexpected one for the peer.
_FAIL_BY_CODE = {"bad_mac": FAIL_BAD_MAC, "bad_cert": FAIL_BAD_CERT,
                 "unexpected": FAIL_UNEXPECTED, "malformed": FAIL_UNEXPECTED}
_FAIL_TEXT = {FAIL_BAD_MAC: "MAC ungültig", FAIL_BAD_CERT: "Zertifikat ungültig",
              FAIL_UNEXPECTED: "unerwartete Nachricht"}

_LABEL_M = b"SMGW-LMN-PAIR-M"
_LABEL_G = b"SMGW-LMN-PAIR-G"
_LABEL_OPK = b"SMGW-LMN-OPK"


# --------------------------------------------------------------------------------------------
# errors


class SecurityError(Exception):
    """A pairing or TLS failure: ``code`` for programs, ``reason`` (German) for the log."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class PairingError(SecurityError):
    """Pairing failed. ``peer_reason`` is the reason byte of a received PAIR_FAIL, else None."""

    def __init__(self, code: str, reason: str, peer_reason: int | None = None):
        super().__init__(code, reason)
        self.peer_reason = peer_reason


class TlsError(SecurityError):
    """The TLS handshake or connection failed; the link ends (section 6)."""


# --------------------------------------------------------------------------------------------
# identities


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _not_before(cert: x509.Certificate) -> datetime.datetime:
    # cryptography < 42 has only the naive (UTC) accessors
    try:
        return cert.not_valid_before_utc
    except AttributeError:  # pragma: no cover - old cryptography
        return cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    try:
        return cert.not_valid_after_utc
    except AttributeError:  # pragma: no cover - old cryptography
        return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _cn_of(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cert_fingerprint(der: bytes) -> str:
    """SHA-256 of the DER certificate, lower-case hex (what the GWA compares)."""
    return hashlib.sha256(der).hexdigest()


def cert_cn(der: bytes) -> str:
    """The subject CN of a DER certificate ("" when it has none); ValueError for bad DER."""
    return _cn_of(x509.load_der_x509_certificate(der))


@dataclass(frozen=True)
class Identity:
    """One side's LMN key pair and its self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def __post_init__(self):
        own = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        certified = self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if own != certified:
            raise ValueError("the certificate does not belong to the key")

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def fingerprint(self) -> str:
        return cert_fingerprint(self.cert_der)

    @property
    def cn(self) -> str:
        return _cn_of(self.cert)

    # Files: ``<name>.key.pem`` holds the key *and* the certificate, so that the pair is replaced
    # in one atomic rename and can never be found half old, half new; it is the file load()
    # reads. ``<name>.crt.pem`` is a copy of the certificate alone, for the operator and the GWA.

    def save(self, dir: str | os.PathLike, name: str) -> None:
        d = Path(dir)
        _check_name(name)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(d / f"{name}.key.pem", self.key_pem + self.cert_pem, 0o600)
        atomic_write(d / f"{name}.crt.pem", self.cert_pem, 0o644)

    @classmethod
    def load(cls, dir: str | os.PathLike, name: str) -> Identity:
        """Read an identity saved by :meth:`save`; FileNotFoundError or ValueError."""
        _check_name(name)
        path = Path(dir) / f"{name}.key.pem"
        blocks = _pem_blocks(path.read_bytes())
        keys = [b for label, b in blocks if label.endswith("PRIVATE KEY")]
        certs = [b for label, b in blocks if label == "CERTIFICATE"]
        if len(keys) != 1 or len(certs) != 1:
            raise ValueError(f"{path}: expected one private key and one certificate")
        key = serialization.load_pem_private_key(keys[0], password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC key")
        return cls(key, x509.load_pem_x509_certificate(certs[0]))


def make_identity(cn: str, days: int = 7305) -> Identity:
    """A new brainpoolP256r1 key and a self-signed certificate with CN=cn, valid for `days`.

    The certificate is a plain end-entity certificate (CA:FALSE, keyUsage digitalSignature only):
    it signs TLS handshakes and nothing else. That it is also the peer's trust anchor is done by
    the TLS context (VERIFY_X509_PARTIAL_CHAIN, see TlsEndpoint), not by making it a CA.
    """
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = _utcnow()
    # Back-dated a day: a meter whose clock lags must not see a fresh gateway certificate as
    # "not yet valid".
    start = now - datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    return Identity(key, builder.sign(key, hashes.SHA256()))


def load_or_create(dir: str | os.PathLike, name: str, cn: str) -> Identity:
    """The identity saved under `name`, or a new one with CN=cn, saved first.

    An existing identity is returned as it is, whatever its CN: a peer may have pinned it, and
    replacing it silently would break that pairing.
    """
    try:
        return Identity.load(dir, name)
    except FileNotFoundError:
        pass
    ident = make_identity(cn)
    ident.save(dir, name)
    return ident


_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_RE.finditer(data)]


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"bad identity name {name!r}")


# --------------------------------------------------------------------------------------------
# pairing (section 5)


def _cmac(key: bytes, *parts: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    for p in parts:
        c.update(p)
    return c.finalize()


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError(f"the pairing key must be {KEY_LEN} bytes")
    return bytes(key)


def _nonce(rng: Callable[[int], bytes]) -> bytes:
    n = bytes(rng(NONCE_LEN))
    if len(n) != NONCE_LEN:
        raise ValueError("rng returned the wrong number of bytes")
    return n


def key_id(operational_key: bytes) -> str:
    """The loggable id of an operational key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(operational_key).hexdigest()[:8]


def fail_message(code: str | int) -> bytes:
    """PAIR_FAIL for an error code (a PairingError.code or the reason byte itself)."""
    if isinstance(code, int):
        reason = code if 0 <= code <= 0xFF else FAIL_UNEXPECTED
    else:
        reason = _FAIL_BY_CODE.get(code, FAIL_UNEXPECTED)
    return bytes((PAIR_FAIL, reason))


def _split(msg: bytes) -> tuple[int, bytes]:
    if not isinstance(msg, (bytes, bytearray, memoryview)):
        raise PairingError("malformed", "Paarungsnachricht hat keinen Bytes-Inhalt")
    msg = bytes(msg)
    if not msg:
        raise PairingError("malformed", "Paarungsnachricht ist leer")
    if len(msg) > MAX_MESSAGE:
        raise PairingError("malformed", "Paarungsnachricht ist zu lang")
    return msg[0], msg[1:]


def _raise_peer_fail(body: bytes, peer: str) -> None:
    if len(body) != 1:
        raise PairingError("malformed", f"PAIR_FAIL vom {peer} hat die falsche Länge")
    text = _FAIL_TEXT.get(body[0], f"Grund {body[0]}")
    raise PairingError("peer_fail", f"{peer} hat die Paarung abgebrochen: {text}",
                       peer_reason=body[0])


def _check_cert(der: bytes, whose: str, expect_cn: str | None) -> None:
    """Accept a peer certificate from a pairing message or raise PairingError(bad_cert).

    `whose` is the genitive for the log ("des Zählers"). Only called after the MAC was checked
    (or, for PAIR_HELLO, before anything is trusted), and only on bytes the caller bounded.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        # the pin is on exact bytes; trailing junk or a re-encoding would make it ambiguous
        exact = cert.public_bytes(serialization.Encoding.DER) == der
        pub = cert.public_key()
        curve = pub.curve.name if isinstance(pub, ec.EllipticCurvePublicKey) else None
        cn = _cn_of(cert)
        start, end = _not_before(cert), _not_after(cert)
    except Exception:  # the DER comes off the bus; any parser failure means "not a certificate"
        raise PairingError("bad_cert", f"Zertifikat {whose} ist kein gültiges X.509-DER") from None
    if not exact:
        raise PairingError("bad_cert", f"Zertifikat {whose} ist nicht eindeutig DER-kodiert")
    if curve is None:
        raise PairingError("bad_cert", f"Zertifikat {whose} hat keinen EC-Schlüssel")
    if curve != CURVE_NAME:
        raise PairingError("bad_cert", f"Zertifikat {whose} hat einen Schlüssel nicht auf "
                                       f"{CURVE_NAME}")
    now = _utcnow()
    if not start <= now <= end:
        raise PairingError("bad_cert", f"Zertifikat {whose} ist abgelaufen oder noch nicht gültig")
    if expect_cn is not None and cn.lower() != expect_cn:
        raise PairingError("bad_cert", f"Zertifikat {whose} trägt nicht die Zählerkennung "
                                       "des Profils als CN")


def _squash(text: str) -> str:
    return "".join(str(text).split()).lower()


def _norm_meter_id(meter_id: str) -> str:
    mid = _squash(meter_id)
    if not mid or len(mid) % 2 or any(c not in "0123456789abcdef" for c in mid):
        raise ValueError(f"meter id must be hex, got {meter_id!r}")
    return mid


class GatewayPairing:
    """The gateway's side of pairing: HELLO -> (PROOF) -> CONFIRM -> (DONE).

    After ``done``: ``meter_cert_der`` (to pin), ``operational_key`` (replaces K),
    ``key_id``. Until then, and after any PairingError, these stay None: nothing is pinned.
    """

    def __init__(self, key: bytes, gateway: Identity, meter_id: str,
                 rng: Callable[[int], bytes] = os.urandom):
        self._key = _check_key(key)
        self._gw_der = gateway.cert_der
        if 1 + NONCE_LEN + len(self._gw_der) > MAX_MESSAGE:
            raise ValueError("the gateway certificate does not fit into PAIR_HELLO")
        self.meter_id = _norm_meter_id(meter_id)
        self._rng = rng
        self._state = "new"  # new -> hello -> confirm -> done; any error -> failed
        self._gw_nonce = b""
        self._pending: tuple[bytes, bytes] | None = None  # (meter cert, K_op) before DONE
        self.done = False
        self.meter_cert_der: bytes | None = None
        self.operational_key: bytes | None = None

    @property
    def key_id(self) -> str | None:
        return None if self.operational_key is None else key_id(self.operational_key)

    def hello(self) -> bytes:
        """PAIR_HELLO; called again before the PROOF it gives the same message (a resend)."""
        if self._state == "new":
            self._gw_nonce = _nonce(self._rng)
            self._state = "hello"
        elif self._state != "hello":
            raise PairingError("unexpected", "PAIR_HELLO in einer laufenden Paarung")
        return bytes((PAIR_HELLO,)) + self._gw_nonce + self._gw_der

    def fail_message(self, code: str | int) -> bytes:
        return fail_message(code)

    def on_message(self, msg: bytes) -> bytes | None:
        """Handle a message from the meter: PAIR_CONFIRM for PAIR_PROOF, None for PAIR_DONE."""
        try:
            return self._on_message(msg)
        except PairingError:
            self._state = "failed"
            self._pending = None
            raise

    def _on_message(self, msg: bytes) -> bytes | None:
        kind, body = _split(msg)
        if self._state in ("done", "failed"):
            raise PairingError("unexpected", "Nachricht des Zählers nach Ende der Paarung")
        if kind == PAIR_FAIL:
            _raise_peer_fail(body, "Zähler")
        if kind == PAIR_PROOF and self._state == "hello":
            return self._on_proof(body)
        if kind == PAIR_DONE and self._state == "confirm":
            if body:
                raise PairingError("malformed", "PAIR_DONE des Zählers ist nicht leer")
            self.meter_cert_der, self.operational_key = self._pending
            self._pending = None
            self._state = "done"
            self.done = True
            return None
        raise PairingError("unexpected", f"unerwartete Nachricht 0x{kind:02x} vom Zähler")

    def _on_proof(self, body: bytes) -> bytes:
        if len(body) <= NONCE_LEN + MAC_LEN:
            raise PairingError("malformed", "PAIR_PROOF des Zählers ist zu kurz")
        m_nonce = body[:NONCE_LEN]
        mac_m = body[NONCE_LEN:NONCE_LEN + MAC_LEN]
        meter_der = body[NONCE_LEN + MAC_LEN:]
        gw_hash, m_hash = _sha(self._gw_der), _sha(meter_der)
        want = _cmac(self._key, _LABEL_M, self._gw_nonce, m_nonce, gw_hash, m_hash)
        if not hmac.compare_digest(want, mac_m):
            raise PairingError("bad_mac", "MAC des Zählers ungültig (falscher Paarungsschlüssel "
                                          "oder veränderte Nachricht)")
        _check_cert(meter_der, "des Zählers", self.meter_id)
        mac_g = _cmac(self._key, _LABEL_G, m_nonce, self._gw_nonce, m_hash, gw_hash)
        k_op = _cmac(self._key, _LABEL_OPK, self._gw_nonce, m_nonce)
        self._pending = (meter_der, k_op)
        self._state = "confirm"
        return bytes((PAIR_CONFIRM,)) + mac_g


class MeterPairing:
    """The meter's side of pairing: (HELLO) -> PROOF -> (CONFIRM) -> DONE.

    After ``done``: ``gateway_cert_der`` (to pin), ``operational_key``, ``key_id``.
    """

    def __init__(self, key: bytes, meter: Identity, rng: Callable[[int], bytes] = os.urandom):
        self._key = _check_key(key)
        self._m_der = meter.cert_der
        if 1 + NONCE_LEN + MAC_LEN + len(self._m_der) > MAX_MESSAGE:
            raise ValueError("the meter certificate does not fit into PAIR_PROOF")
        self._rng = rng
        self._state = "new"  # new -> proof -> done; any error -> failed
        self._gw_nonce = b""
        self._m_nonce = b""
        self._gw_der = b""
        self.done = False
        self.gateway_cert_der: bytes | None = None
        self.operational_key: bytes | None = None

    @property
    def key_id(self) -> str | None:
        return None if self.operational_key is None else key_id(self.operational_key)

    def fail_message(self, code: str | int) -> bytes:
        return fail_message(code)

    def on_message(self, msg: bytes) -> bytes:
        """Handle a message from the gateway: PAIR_PROOF for HELLO, PAIR_DONE for CONFIRM."""
        try:
            return self._on_message(msg)
        except PairingError:
            self._state = "failed"
            raise

    def _on_message(self, msg: bytes) -> bytes:
        kind, body = _split(msg)
        if self._state in ("done", "failed"):
            raise PairingError("unexpected", "Nachricht des Gateways nach Ende der Paarung")
        if kind == PAIR_FAIL:
            _raise_peer_fail(body, "Gateway")
        if kind == PAIR_HELLO and self._state == "new":
            if len(body) <= NONCE_LEN:
                raise PairingError("malformed", "PAIR_HELLO des Gateways ist zu kurz")
            gw_der = body[NONCE_LEN:]
            # HELLO carries no MAC: the certificate is only checked for form here and trusted
            # only once PAIR_CONFIRM proves it.
            _check_cert(gw_der, "des Gateways", None)
            self._gw_nonce, self._gw_der = body[:NONCE_LEN], gw_der
            self._m_nonce = _nonce(self._rng)
            mac_m = _cmac(self._key, _LABEL_M, self._gw_nonce, self._m_nonce,
                          _sha(self._gw_der), _sha(self._m_der))
            self._state = "proof"
            return bytes((PAIR_PROOF,)) + self._m_nonce + mac_m + self._m_der
        if kind == PAIR_CONFIRM and self._state == "proof":
            if len(body) != MAC_LEN:
                raise PairingError("malformed", "PAIR_CONFIRM des Gateways hat die falsche Länge")
            want = _cmac(self._key, _LABEL_G, self._m_nonce, self._gw_nonce,
                         _sha(self._m_der), _sha(self._gw_der))
            if not hmac.compare_digest(want, body):
                raise PairingError("bad_mac", "MAC des Gateways ungültig (falscher "
                                              "Paarungsschlüssel oder veränderte Nachricht)")
            self.gateway_cert_der = self._gw_der
            self.operational_key = _cmac(self._key, _LABEL_OPK, self._gw_nonce, self._m_nonce)
            self._state = "done"
            self.done = True
            return bytes((PAIR_DONE,))
        raise PairingError("unexpected", f"unerwartete Nachricht 0x{kind:02x} vom Gateway")


# --------------------------------------------------------------------------------------------
# TLS (section 6)

_PEER = {"client": ("Zähler", "des Zählers"), "server": ("Gateway", "des Gateways")}
_OWN = {"client": "des Gateways", "server": "des Zählers"}
_SSL_TEXT_RE = re.compile(r"^\[[^\]]*\]\s*(.*?)\s*\(_ssl\.c:\d+\)$")
_CERT_ALERTS = ("UNKNOWN_CA", "CERTIFICATE")


def _ssl_text(e: ssl.SSLError) -> str:
    """The OpenSSL reason as text ("certificate verify failed: self-signed certificate")."""
    s = str(e)
    m = _SSL_TEXT_RE.match(s)
    return m.group(1) if m else (e.reason or s)


def _load_own(ctx: ssl.SSLContext, own: Identity) -> None:
    # ssl only loads keys from a path. A memfd keeps the private key off every file system;
    # where that is not available, a private temporary directory that is removed at once.
    pem = own.key_pem + own.cert_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("smgw-lmn-identity", os.MFD_CLOEXEC)
        try:
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view):]
            try:
                ctx.load_cert_chain(f"/proc/self/fd/{fd}")
                return
            except FileNotFoundError:  # no /proc
                pass
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="smgw-lmn-") as tmp:
        path = Path(tmp) / "identity.pem"
        path.touch(mode=0o600)
        path.write_bytes(pem)
        ctx.load_cert_chain(str(path))


def _context(role: str, own: Identity, peer_der: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT if role == "client"
                         else ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS_CIPHERS)
    # the only group on both sides: see the module docstring for why this is required
    ctx.set_ecdh_curve(CURVE_NAME)
    ctx.check_hostname = False  # the identity is the pinned certificate, not a host name
    ctx.verify_mode = ssl.CERT_REQUIRED
    # The pinned certificate is a self-signed end-entity certificate without keyCertSign.
    # OpenSSL 3.0 accepts such a certificate from the trust store as anchor even so; partial
    # chain makes that explicit (any certificate in the store is an anchor) instead of relying
    # on OpenSSL's rules for what counts as self-signed. Validity dates are still checked.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    try:
        ctx.load_verify_locations(cadata=bytes(peer_der))
    except (ssl.SSLError, ValueError, TypeError):
        raise TlsError("bad_cert", f"hinterlegtes Zertifikat {_PEER[role][1]} ist unlesbar") \
            from None
    _load_own(ctx, own)
    return ctx


class TlsEndpoint:
    """One side of the LMN TLS connection, sans-I/O over memory BIOs.

    ``role`` "client" is the gateway, "server" the meter. The caller moves bytes: ``feed`` what
    the peer sent, send ``pending_output()`` to the peer, in any chunking. ``handshake_done``
    becomes True only after OpenSSL verified the peer *and* its certificate equals the pinned
    DER (and carries ``peer_cn``, when given). After a TlsError the endpoint is dead: every
    further call raises the same error, but ``pending_output()`` still drains (an alert that
    tells the peer why).
    """

    def __init__(self, role: str, own: Identity, peer_cert_der: bytes,
                 peer_cn: str | None = None):
        if role not in _PEER:
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self.role = role
        self.peer_cn = peer_cn
        self._peer_der = bytes(peer_cert_der)
        self._peer, self._peer_gen = _PEER[role]
        ctx = _context(role, own, self._peer_der)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._ssl = ctx.wrap_bio(self._in, self._out, server_side=(role == "server"))
        self._app = bytearray()
        self._error: TlsError | None = None
        self._closing = False
        self.handshake_done = False
        self.closed = False

    @property
    def cipher(self) -> str | None:
        c = self._ssl.cipher()
        return c[0] if c else None

    @property
    def version(self) -> str | None:
        return self._ssl.version()

    def start(self) -> None:
        """Begin the handshake (the client's ClientHello); a no-op for the server."""
        self._check()
        if self.role == "client" and not self.handshake_done:
            self._advance()

    def feed(self, data: bytes) -> None:
        """Bytes the peer sent, in any chunking."""
        self._check()
        if data:
            self._in.write(bytes(data))
        self._advance()

    def pending_output(self) -> bytes:
        return self._out.read()

    def receive(self) -> bytes:
        data = bytes(self._app)
        self._app.clear()
        return data

    def send(self, app_data: bytes) -> None:
        self._check()
        if not self.handshake_done:
            raise TlsError("unexpected", "Senden vor Abschluss des TLS-Handshakes")
        if self._closing or self.closed:
            raise TlsError("unexpected", "Senden auf einer geschlossenen TLS-Verbindung")
        view = memoryview(bytes(app_data))
        try:
            while view:
                view = view[self._ssl.write(view):]
        except ssl.SSLError as e:
            self._fail(self._convert(e))

    def close(self) -> None:
        """Queue close_notify; the peer's answer (if any) sets ``closed`` on a later feed."""
        if self._error is not None or self._closing:
            return
        self._closing = True
        if not self.handshake_done:
            return
        try:
            self._ssl.unwrap()
        except ssl.SSLWantReadError:
            pass  # our close_notify is queued; the peer's has not come yet
        except ssl.SSLError as e:
            self._fail(self._convert(e))

    # ---------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _fail(self, err: TlsError) -> None:
        self._error = err
        raise err

    def _advance(self) -> None:
        if not self.handshake_done:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                return
            except ssl.SSLError as e:
                self._fail(self._convert(e))
            self._check_pin()
            self.handshake_done = True
        while not self.closed:
            try:
                chunk = self._ssl.read(16384)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                self.closed = True
                return
            except ssl.SSLError as e:
                self._fail(self._convert(e))
            if not chunk:  # close_notify received
                self.closed = True
                return
            self._app += chunk

    def _check_pin(self) -> None:
        der = self._ssl.getpeercert(binary_form=True)
        if der != self._peer_der:
            self._fail(TlsError("bad_cert", f"Zertifikat {self._peer_gen} stimmt nicht mit dem "
                                            "hinterlegten überein"))
        # the same rule as pairing's meter id: case and spaces do not matter ("0A 01 .." is
        # the meter id "0a01..")
        if self.peer_cn is not None and _squash(cert_cn(der)) != _squash(self.peer_cn):
            self._fail(TlsError("bad_cert", f"Zertifikat {self._peer_gen} trägt einen anderen "
                                            "CN als erwartet"))

    def _convert(self, e: ssl.SSLError) -> TlsError:
        text = _ssl_text(e)
        stage = "TLS-Verbindung gestört" if self.handshake_done else "TLS-Handshake fehlgeschlagen"
        if isinstance(e, ssl.SSLCertVerificationError):
            return TlsError("bad_cert", f"{stage}: Zertifikat {self._peer_gen} nicht akzeptiert "
                                        f"({text})")
        reason = (e.reason or "").upper()
        if "ALERT" in reason and any(a in reason for a in _CERT_ALERTS):
            return TlsError("rejected", f"{stage}: {self._peer} lehnt das Zertifikat "
                                        f"{_OWN[self.role]} ab ({text})")
        return TlsError("tls", f"{stage}: {text}")
