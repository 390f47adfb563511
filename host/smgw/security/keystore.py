"""The gateway's keys and certificates as the rest of the gateway sees them (the part a
security module would hold): its SM-PKI triple, its HAN TLS identity and the trusted root.

Layout (``<data_dir>/pki``, docs/pki-and-cms.md): the TestPki files plus

    <gateway id>/{tls,sig,enc}.{key,crt}.pem, chain.pem   the gateway's triple
    <gateway id>/han.key.pem, han.crt.pem                  HAN TLS identity (self-signed)

On a development bench :meth:`KeyStore.load_or_create` makes the test PKI and the gateway's
triple on first use. A deployment imports its SM-PKI root, chain and triple into the same files
(the CA keys are then absent and nothing can be issued locally).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smgw.fileio import atomic_write
from smgw.security.testpki import (
    ROOT_CERT,
    Identity,
    PkiError,
    TestPki,
    Triple,
    check_name,
    key_usage,
    load_cert,
    load_key,
    public_key_matches,
    read_triple,
    tls_san,
)

__all__ = ["HAN_DAYS", "KeyStore", "make_han_identity"]

HAN_KEY = "han.key.pem"
HAN_CERT = "han.crt.pem"
# The HAN certificate is self-signed; consumers and technicians accept (pin) it once, so it
# lives long. P-256 always: browsers do not offer brainpool curves in TLS.
HAN_DAYS = 1826


def make_han_identity(gateway_id: str, days: int = HAN_DAYS) -> Identity:
    """A P-256 key and a self-signed TLS server certificate: CN = gateway id, SAN localhost,
    127.0.0.1, ::1 and the gateway id as a DNS name; serverAuth."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "HAN"),
                      x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = now - datetime.timedelta(hours=1)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(tls_san(gateway_id), critical=False)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return Identity(key, cert, ())


@dataclass(frozen=True)
class KeyStore:
    """What the gateway holds. ``roots`` is the list to verify peers against."""

    gateway_id: str
    pki_dir: Path
    root: x509.Certificate
    tls: Identity
    sig: Identity
    enc: Identity
    han: Identity

    @property
    def triple(self) -> Triple:
        return Triple(self.tls, self.sig, self.enc)

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.root]

    @classmethod
    def load_or_create(cls, dir: Path, gateway_id: str) -> KeyStore:
        """Load the key store in ``dir`` (= ``<data_dir>/pki``), creating what is missing:
        the test PKI (if there is no root certificate), the gateway's triple (needs the CA keys
        of a test PKI) and the HAN identity. Calling it again loads the same keys."""
        dir = Path(dir)
        check_name(gateway_id)
        if not TestPki.exists(dir):
            TestPki.create(dir)
        root = load_cert(dir / ROOT_CERT)
        gw_dir = dir / gateway_id
        if not gw_dir.is_dir():
            try:
                pki = TestPki.load(dir)
            except PkiError as e:
                raise PkiError(f"no certificate triple for the gateway {gateway_id!r} in {dir} "
                               f"and no test PKI to issue one ({e})") from None
            pki.issue_triple(gateway_id)
        triple = read_triple(dir, gateway_id)
        han = cls._load_or_create_han(gw_dir, gateway_id)
        return cls(gateway_id, dir, root, triple.tls, triple.sig, triple.enc, han)

    @staticmethod
    def _load_or_create_han(gw_dir: Path, gateway_id: str) -> Identity:
        key_path, cert_path = gw_dir / HAN_KEY, gw_dir / HAN_CERT
        if key_path.exists() and cert_path.exists():
            key, cert = load_key(key_path), load_cert(cert_path)
            if not public_key_matches(key, cert):
                raise PkiError(f"{cert_path}: does not belong to the key in {HAN_KEY}")
            return Identity(key, cert, ())
        han = make_han_identity(gateway_id)
        # key first: a certificate without its key would be useless, a key without its
        # certificate is replaced on the next start
        atomic_write(key_path, han.key_pem(), 0o600)
        atomic_write(cert_path, han.cert_pem(), 0o644)
        return han

    def _pki(self) -> TestPki:
        try:
            return TestPki.load(self.pki_dir)
        except PkiError as e:
            raise PkiError(f"cannot issue certificates: {self.pki_dir} is not a test PKI with "
                           f"CA keys ({e})") from None

    def issue_emt(self, name: str) -> Triple:
        """Development bench: the triple of a simulated EMT (or GWA) from the same PKI,
        issued on first call and loaded afterwards."""
        check_name(name)
        if name == self.gateway_id:
            raise PkiError(f"{name!r} is the gateway's own name, not an EMT")
        if (self.pki_dir / name).is_dir():
            return read_triple(self.pki_dir, name)
        return self._pki().issue_triple(name)

    def load_triple(self, name: str) -> Triple:
        """The stored triple of another party (PkiError if there is none)."""
        return read_triple(self.pki_dir, name)
