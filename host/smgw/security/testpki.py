"""A small SM-PKI look-alike for the bench and the tests: root CA -> sub-CA -> end-entity
certificate triples (TLS, SIG, ENC) for the gateway, the GWA and the EMTs.

Made with ``cryptography``; docs/pki-and-cms.md describes the profiles and the directory layout
in full. In short::

    <dir>/root.crt.pem      root CA certificate (the trust anchor: ``-CAfile`` for openssl)
    <dir>/root.key.pem      its key (0600; missing in a PKI imported from elsewhere)
    <dir>/sub-ca.crt.pem    sub-CA certificate, issued by the root
    <dir>/sub-ca.key.pem    its key (0600)
    <dir>/<name>/{tls,sig,enc}.crt.pem   the end-entity certificates of <name>
    <dir>/<name>/{tls,sig,enc}.key.pem   their keys (PKCS#8 PEM, unencrypted, 0600)
    <dir>/<name>/chain.pem  the certificates between them and the root (here: the sub-CA)

Keys are EC keys on NIST P-256 (default) or brainpoolP256r1, the two 256-bit curves of the
SM-PKI (TR-03109-3). Certificates are signed with ECDSA-with-SHA256.

Unencrypted keys are for the development bench only: a real gateway keeps its keys in the
security module and imports its SM-PKI certificates into the same layout (see KeyStore).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smgw.fileio import atomic_write

__all__ = [
    "CURVES",
    "ROLES",
    "Identity",
    "PkiError",
    "TestPki",
    "Triple",
    "curve_name",
    "public_key_matches",
    "read_identity",
    "read_triple",
    "check_name",
    "key_usage",
    "load_cert",
    "load_certs",
    "load_key",
    "resolve_curve",
    "ski_of",
    "tls_san",
]

# Curve names accepted by create(); the value is the cryptography curve class.
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
}
_CURVE_ALIASES = {"secp256r1": "P-256", "prime256v1": "P-256", "p-256": "P-256",
                  "p256": "P-256", "brainpoolp256r1": "brainpoolP256r1",
                  "bp256": "brainpoolP256r1"}

ROLES = ("tls", "sig", "enc")

# Validity in days (from the moment of issue; not-before is back-dated, see _NOT_BEFORE_SLACK)
ROOT_DAYS = 3653      # 10 years
SUB_CA_DAYS = 1826    # 5 years
EE_DAYS = 730         # 2 years
# A peer whose clock lags a little must not see a fresh certificate as "not yet valid".
_NOT_BEFORE_SLACK = datetime.timedelta(hours=1)

ROOT_CERT = "root.crt.pem"
ROOT_KEY = "root.key.pem"
SUB_CA_CERT = "sub-ca.crt.pem"
SUB_CA_KEY = "sub-ca.key.pem"
CHAIN_FILE = "chain.pem"

# Entity names become directory names and a DNS name in the TLS certificate.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_OU = {"tls": "TLS", "sig": "SIG", "enc": "ENC"}


class PkiError(ValueError):
    """The PKI directory is missing something, holds something inconsistent, or a name is
    unusable. The message names the file or the name."""


# --------------------------------------------------------------------------------------------
# identities


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def public_key_matches(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    """Does ``cert`` certify the public half of ``key``?"""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def ski_of(cert: x509.Certificate) -> bytes | None:
    """The certificate's subjectKeyIdentifier, or None when it has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def curve_name(curve: ec.EllipticCurve) -> str:
    """Our name of a curve ("P-256", "brainpoolP256r1"), else cryptography's name."""
    for name, cls in CURVES.items():
        if isinstance(curve, cls):
            return name
    return curve.name


@dataclass(frozen=True)
class Identity:
    """A private key, its certificate and the certificates between it and the root.

    ``chain`` holds the issuing CA certificates, nearest first, *without* the root (the root is
    the trust anchor each side configures; it is never sent). Empty for a self-signed
    certificate and for the sub-CA itself.
    """

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self):
        if not isinstance(self.key, ec.EllipticCurvePrivateKey):
            raise PkiError("an identity needs an EC private key")
        if not public_key_matches(self.key, self.cert):
            raise PkiError("the certificate does not belong to the key")

    def key_pem(self) -> bytes:
        """The private key, PKCS#8 PEM, unencrypted."""
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def chain_pem(self) -> bytes:
        """The certificate followed by its chain (what a TLS endpoint sends)."""
        return b"".join(_pem_cert(c) for c in (self.cert, *self.chain))

    @property
    def ski(self) -> bytes | None:
        return ski_of(self.cert)

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


@dataclass(frozen=True)
class Triple:
    """An entity's three certificates: TLS (channel), SIG (content signature), ENC (content
    encryption by key agreement)."""

    tls: Identity
    sig: Identity
    enc: Identity

    def __iter__(self):
        return iter((self.tls, self.sig, self.enc))


# --------------------------------------------------------------------------------------------
# reading PEM files


_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: file missing") from None


def load_certs(path: Path, *, allow_empty: bool = False) -> list[x509.Certificate]:
    data = _read(path)
    blocks = [m.group(0) for m in _PEM_RE.finditer(data) if m.group(1) == b"CERTIFICATE"]
    if not blocks and not allow_empty:
        raise PkiError(f"{path}: no PEM certificate in the file")
    try:
        return [x509.load_pem_x509_certificate(b) for b in blocks]
    except ValueError as e:
        raise PkiError(f"{path}: unreadable certificate ({e})") from None


def load_cert(path: Path) -> x509.Certificate:
    certs = load_certs(path)
    if len(certs) != 1:
        raise PkiError(f"{path}: expected one certificate, found {len(certs)}")
    return certs[0]


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{path}: unreadable private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


def read_identity(dir: Path, role: str) -> Identity:
    """``<dir>/<role>.key.pem`` + ``<role>.crt.pem`` + ``chain.pem`` (may be empty or missing
    for a self-signed certificate)."""
    dir = Path(dir)
    key = load_key(dir / f"{role}.key.pem")
    cert = load_cert(dir / f"{role}.crt.pem")
    chain_path = dir / CHAIN_FILE
    chain = tuple(load_certs(chain_path, allow_empty=True)) if chain_path.exists() else ()
    if not public_key_matches(key, cert):
        raise PkiError(f"{dir / f'{role}.crt.pem'}: does not belong to the key in "
                       f"{role}.key.pem")
    return Identity(key, cert, chain)


def read_triple(pki_dir: Path, name: str) -> Triple:
    """The triple stored under ``<pki_dir>/<name>/``; PkiError names the missing or bad file."""
    check_name(name)
    d = Path(pki_dir) / name
    if not d.is_dir():
        raise PkiError(f"{d}: no certificate triple for {name!r}")
    return Triple(*(read_identity(d, role) for role in ROLES))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PkiError(f"bad entity name {name!r}: 1-64 characters of A-Z a-z 0-9 _ -, "
                       "starting with a letter or digit")
    return name


def resolve_curve(name: str) -> ec.EllipticCurve:
    """The curve for one of the names in :data:`CURVES` (or a common alias)."""
    canonical = name if name in CURVES else _CURVE_ALIASES.get(str(name).lower())
    if canonical is None:
        raise PkiError(f"unknown curve {name!r}; use one of {', '.join(CURVES)}")
    return CURVES[canonical]()


# --------------------------------------------------------------------------------------------
# certificate building


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def key_usage(**on: bool) -> x509.KeyUsage:
    fields = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                  data_encipherment=False, key_agreement=False, key_cert_sign=False,
                  crl_sign=False, encipher_only=False, decipher_only=False)
    fields.update(on)
    return x509.KeyUsage(**fields)


def _name(org: str, cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _certificate(subject: x509.Name, public_key, issuer_name: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, issuer_ski: bytes | None,
                 not_before: datetime.datetime, days: int,
                 extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_before + _NOT_BEFORE_SLACK + datetime.timedelta(days=days))
               .add_extension(ski, critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(
                   key_identifier=issuer_ski if issuer_ski is not None else ski.digest,
                   authority_cert_issuer=None, authority_cert_serial_number=None),
                   critical=False))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def tls_san(name: str | None) -> x509.SubjectAlternativeName:
    """localhost, 127.0.0.1, ::1 and (if it is a DNS label) the entity name in lower case."""
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if name and _DNS_LABEL_RE.match(name) and name.lower() != "localhost":
        names.append(x509.DNSName(name.lower()))
    return x509.SubjectAlternativeName(names)


def _ee_extensions(role: str, name: str) -> list[tuple[x509.ExtensionType, bool]]:
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True)]
    if role == "tls":
        exts.append((key_usage(digital_signature=True), True))
        exts.append((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                            ExtendedKeyUsageOID.CLIENT_AUTH]), False))
        exts.append((tls_san(name), False))
    elif role == "sig":
        exts.append((key_usage(digital_signature=True, content_commitment=True), True))
    elif role == "enc":
        exts.append((key_usage(key_agreement=True), True))
    else:  # pragma: no cover - internal
        raise PkiError(f"unknown role {role!r}")
    return exts


# --------------------------------------------------------------------------------------------
# the PKI


class TestPki:
    """Root CA and sub-CA in a directory, issuing certificate triples into sub-directories."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, dir: Path, root: Identity, sub_ca: Identity):
        self.dir = Path(dir)
        self._root = root
        self.sub_ca = sub_ca

    @property
    def root(self) -> x509.Certificate:
        return self._root.cert

    @property
    def curve(self) -> str:
        return curve_name(self._root.key.curve)

    @property
    def org(self) -> str:
        attrs = self.root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else "SMGW Test-PKI"

    @staticmethod
    def exists(dir: Path) -> bool:
        """Does ``dir`` hold a PKI (its root certificate is the commit mark of create())?"""
        return (Path(dir) / ROOT_CERT).is_file()

    @classmethod
    def create(cls, dir: Path, name: str = "SMGW Test-PKI", *, curve: str = "P-256") -> TestPki:
        """A new root CA and sub-CA, written to ``dir`` (created if needed).

        Refuses (PkiError) if ``dir`` already holds a PKI. The root certificate is written
        last, so an interrupted create() leaves no PKI and the next create() starts over.
        """
        dir = Path(dir)
        if cls.exists(dir):
            raise PkiError(f"{dir / ROOT_CERT}: a PKI exists already")
        ec_curve = resolve_curve(curve)
        now = _now() - _NOT_BEFORE_SLACK
        root_key = ec.generate_private_key(ec_curve)
        root_name = _name(name, f"{name} Root-CA")
        root_cert = _certificate(
            root_name, root_key.public_key(), root_name, root_key, None, now, ROOT_DAYS,
            [(x509.BasicConstraints(ca=True, path_length=1), True),
             (key_usage(key_cert_sign=True, crl_sign=True), True)])
        sub_key = ec.generate_private_key(ec_curve)
        sub_cert = _certificate(
            _name(name, f"{name} Sub-CA"), sub_key.public_key(), root_name, root_key,
            ski_of(root_cert), now, SUB_CA_DAYS,
            [(x509.BasicConstraints(ca=True, path_length=0), True),
             (key_usage(key_cert_sign=True, crl_sign=True), True)])
        root = Identity(root_key, root_cert)
        sub_ca = Identity(sub_key, sub_cert)
        dir.mkdir(parents=True, exist_ok=True)
        atomic_write(dir / ROOT_KEY, root.key_pem(), 0o600)
        atomic_write(dir / SUB_CA_KEY, sub_ca.key_pem(), 0o600)
        atomic_write(dir / SUB_CA_CERT, sub_ca.cert_pem(), 0o644)
        atomic_write(dir / ROOT_CERT, root.cert_pem(), 0o644)
        return cls(dir, root, sub_ca)

    @classmethod
    def load(cls, dir: Path) -> TestPki:
        """The PKI in ``dir`` including both CA keys (needed to issue); PkiError otherwise."""
        dir = Path(dir)
        root_cert = load_cert(dir / ROOT_CERT)
        root_key = load_key(dir / ROOT_KEY)
        sub_cert = load_cert(dir / SUB_CA_CERT)
        sub_key = load_key(dir / SUB_CA_KEY)
        if not public_key_matches(root_key, root_cert):
            raise PkiError(f"{dir / ROOT_CERT}: does not belong to {ROOT_KEY}")
        if not public_key_matches(sub_key, sub_cert):
            raise PkiError(f"{dir / SUB_CA_CERT}: does not belong to {SUB_CA_KEY}")
        try:
            sub_cert.verify_directly_issued_by(root_cert)
        except Exception:
            raise PkiError(f"{dir / SUB_CA_CERT}: not issued by the root in {ROOT_CERT}") \
                from None
        return cls(dir, Identity(root_key, root_cert), Identity(sub_key, sub_cert))

    def names(self) -> list[str]:
        """Entities with a triple directory, sorted."""
        return sorted(p.name for p in self.dir.iterdir()
                      if p.is_dir() and _NAME_RE.match(p.name))

    def has_triple(self, name: str) -> bool:
        return (self.dir / check_name(name)).is_dir()

    def issue(self, role: str, name: str, *, not_before: datetime.datetime | None = None,
              days: int = EE_DAYS) -> Identity:
        """One end-entity identity (in memory only) issued by the sub-CA."""
        if role not in ROLES:
            raise PkiError(f"unknown certificate role {role!r}; one of {', '.join(ROLES)}")
        check_name(name)
        key = ec.generate_private_key(type(self.sub_ca.key.curve)())
        start = not_before if not_before is not None else _now() - _NOT_BEFORE_SLACK
        cert = _certificate(_name(self.org, name, _OU[role]), key.public_key(),
                            self.sub_ca.cert.subject, self.sub_ca.key, self.sub_ca.ski,
                            start, days, _ee_extensions(role, name))
        return Identity(key, cert, (self.sub_ca.cert,))

    def issue_triple(self, name: str, *, not_before: datetime.datetime | None = None,
                     days: int = EE_DAYS) -> Triple:
        """Issue TLS, SIG and ENC for ``name`` and write them to ``<dir>/<name>/``.

        The directory appears complete or not at all (written beside it, then renamed).
        PkiError if ``name`` has a triple already: keys are never replaced silently.
        ``not_before``/``days`` exist for tests (expired or not-yet-valid certificates).
        """
        check_name(name)
        target = self.dir / name
        if target.exists():
            raise PkiError(f"{target}: {name!r} has a certificate triple already")
        triple = Triple(*(self.issue(role, name, not_before=not_before, days=days)
                          for role in ROLES))
        tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".{name}."))
        try:
            os.chmod(tmp, 0o755)
            for role, ident in zip(ROLES, triple):
                atomic_write(tmp / f"{role}.key.pem", ident.key_pem(), 0o600)
                atomic_write(tmp / f"{role}.crt.pem", ident.cert_pem(), 0o644)
            atomic_write(tmp / CHAIN_FILE, _pem_cert(self.sub_ca.cert), 0o644)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return triple

    def load_triple(self, name: str) -> Triple:
        return read_triple(self.dir, name)
