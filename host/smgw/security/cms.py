"""CMS content protection for the WAN (TR-03109-1 content protection, trudi-wan.md §3.4):
signing (SignedData), encryption (AuthEnvelopedData with key agreement) and both together.

ASN.1 with asn1crypto, primitives with cryptography. docs/pki-and-cms.md lists every structure
and OID; in short:

* :func:`sign`: ContentInfo(SignedData v3), one SignerInfo v3 with ``sid`` =
  subjectKeyIdentifier, SHA-256, ecdsa-with-SHA256 (DER signature), signed attributes
  contentType, signingTime, messageDigest; certificates = signer certificate + its chain.
  Encapsulated or detached.
* :func:`encrypt`: ContentInfo(AuthEnvelopedData v0, RFC 5083), one ``kari`` (RFC 5753)
  with an ephemeral EC key on the recipient's curve (``originatorKey``, no ``ukm``), X9.63 KDF
  with SHA-256 over ECC-CMS-SharedInfo, AES-128 key wrap (RFC 3394), ``rKeyId`` = the
  recipient certificate's subjectKeyIdentifier; content AES-128-GCM (RFC 5084, 12-byte nonce,
  16-byte tag in ``mac``).
* :func:`protect`: SignedData whose eContent (type id-ct-authEnvelopedData) is the
  AuthEnvelopedData of the content; with ``compress=True`` the encrypted content is a
  CompressedData (RFC 3274, zlib) of it.

Key-agreement OID: by default dhSinglePass-stdDH-sha256kdf-scheme (1.3.132.1.11.1, RFC 5753),
which OpenSSL understands; ``kdf="bsi"`` writes the BSI TR-03109 OID ecka-eg-X963KDF-SHA256
(0.4.0.127.0.7.1.1.5.1.1.3) instead. Both mean the same computation for our curves (cofactor
1: ECKA-EG = standard ECDH; the same KDF input) and :func:`decrypt` accepts both.

Errors: everything that is wrong with a received message raises a :class:`CmsError`:
:class:`CmsFormatError` (malformed or unsupported), :class:`CmsVerifyError` (signature,
digest or certificate chain), :class:`CmsDecryptError` (not for us, or the key/content does
not authenticate). No asn1crypto or cryptography exception leaves this module from
:func:`verify`, :func:`decrypt` or :func:`unprotect` (fuzzed in the tests).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import warnings
import zlib
from collections.abc import Sequence

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from smgw.security.testpki import Identity, ski_of

__all__ = [
    "CmsDecryptError",
    "CmsError",
    "CmsFormatError",
    "CmsVerifyError",
    "KDF_OIDS",
    "MAX_DECOMPRESSED",
    "decrypt",
    "encrypt",
    "protect",
    "sign",
    "unprotect",
    "verify",
]

# --------------------------------------------------------------------------------------------
# OIDs

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
OID_COMPRESSED_DATA = "1.2.840.113549.1.9.16.1.9"
OID_ZLIB = "1.2.840.113549.1.9.16.3.8"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

# key agreement + KDF hash: RFC 5753 (SEC 1) and BSI TR-03111 ECKA-EG with X9.63 KDF
_KA_HASH = {
    "1.3.132.1.11.1": hashes.SHA256,            # dhSinglePass-stdDH-sha256kdf-scheme
    "1.3.132.1.11.2": hashes.SHA384,            # dhSinglePass-stdDH-sha384kdf-scheme
    "1.3.132.1.11.3": hashes.SHA512,            # dhSinglePass-stdDH-sha512kdf-scheme
    "0.4.0.127.0.7.1.1.5.1.1.3": hashes.SHA256,  # ecka-eg-X963KDF-SHA256
    "0.4.0.127.0.7.1.1.5.1.1.4": hashes.SHA384,  # ecka-eg-X963KDF-SHA384
    "0.4.0.127.0.7.1.1.5.1.1.5": hashes.SHA512,  # ecka-eg-X963KDF-SHA512
}
KDF_OIDS = {"rfc5753": "1.3.132.1.11.1", "bsi": "0.4.0.127.0.7.1.1.5.1.1.3"}

# AES key wrap (RFC 3394 / RFC 3565): OID -> KEK length
_WRAP = {
    "2.16.840.1.101.3.4.1.5": 16,   # id-aes128-wrap
    "2.16.840.1.101.3.4.1.25": 24,  # id-aes192-wrap
    "2.16.840.1.101.3.4.1.45": 32,  # id-aes256-wrap
}
OID_AES128_WRAP = "2.16.840.1.101.3.4.1.5"

# AES-GCM content encryption (RFC 5084): OID -> key length
_GCM = {
    "2.16.840.1.101.3.4.1.6": 16,   # id-aes128-GCM
    "2.16.840.1.101.3.4.1.26": 24,  # id-aes192-GCM
    "2.16.840.1.101.3.4.1.46": 32,  # id-aes256-GCM
}
OID_AES128_GCM = "2.16.840.1.101.3.4.1.6"
_GCM_NONCE = 12
_GCM_TAG = 16

# digest / signature algorithms accepted in verify (asn1crypto names)
_DIGESTS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_SIG_FOR_DIGEST = {"sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa",
                   "sha512": "sha512_ecdsa"}

# A zlib bomb must not exhaust memory: decompressed content above this is refused.
MAX_DECOMPRESSED = 64 * 1024 * 1024
_MAX_CHAIN = 6


# --------------------------------------------------------------------------------------------
# errors


class CmsError(ValueError):
    """A CMS message could not be processed. Subclasses say why."""


class CmsFormatError(CmsError):
    """The message is malformed, or uses a structure or algorithm this module does not
    support (the sender's fault)."""


class CmsVerifyError(CmsError):
    """The signature, the message digest or the signer's certificate chain is not valid."""


class CmsDecryptError(CmsError):
    """The message is not encrypted for this recipient, or the wrapped key or the encrypted
    content does not authenticate (wrong key, or altered in transit)."""


def _guard(what: str):
    """Turn any exception other than a CmsError raised while reading received input into a
    CmsFormatError: asn1crypto parses lazily, so a malformed field can surface anywhere."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CmsError:
                raise
            except Exception as e:  # noqa: BLE001 - the boundary of untrusted input
                detail = " ".join(str(e).split())[:200]
                raise CmsFormatError(f"{what}: malformed or unsupported CMS input "
                                     f"({type(e).__name__}: {detail})") from e
        return wrapper
    return deco


# --------------------------------------------------------------------------------------------
# small ASN.1 helpers of our own


class _AlgorithmIdentifier(core.Sequence):
    _fields = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.Any, {"optional": True}),
    ]


class _EccCmsSharedInfo(core.Sequence):
    """RFC 5753 section 7.2 ECC-CMS-SharedInfo."""

    _fields = [
        ("key_info", _AlgorithmIdentifier),
        ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", core.OctetString, {"explicit": 2}),
    ]


class _GcmParameters(core.Sequence):
    """RFC 5084 GCMParameters (aes-ICVlen DEFAULT 12)."""

    _fields = [
        ("nonce", core.OctetString),
        ("icv_len", core.Integer, {"default": 12}),
    ]


def _der_set(contents: bytes) -> bytes:
    """A SET OF with these contents octets: what signed/auth attributes are computed over
    (their [0]/[1] IMPLICIT tag replaced by the universal SET tag, RFC 5652 5.4 / RFC 5083)."""
    n = len(contents)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x31" + length + contents


def _content_type(name: str) -> cms.ContentType:
    try:
        return cms.ContentType(name)
    except (ValueError, TypeError):
        raise CmsFormatError(f"unknown content type {name!r}") from None


def _hex(b: bytes | None) -> str:
    return b.hex() if b else "-"


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _check_bytes(name: str, value) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _check_at(at: datetime.datetime | None) -> datetime.datetime:
    if at is None:
        return _now()
    if not isinstance(at, datetime.datetime) or at.tzinfo is None:
        raise TypeError("at must be a timezone-aware datetime")
    return at


def _load_content_info(blob: bytes, expected: str, what: str) -> cms.ContentInfo:
    try:
        ci = cms.ContentInfo.load(blob, strict=True)
        ctype = ci["content_type"].native
    except Exception as e:  # noqa: BLE001
        raise CmsFormatError(f"{what}: not a DER/BER CMS ContentInfo "
                             f"({type(e).__name__})") from e
    if ctype != expected:
        raise CmsFormatError(f"{what}: content type is {ctype}, expected {expected}")
    try:
        content = ci["content"]
    except Exception as e:  # noqa: BLE001
        raise CmsFormatError(f"{what}: the {expected} content is malformed "
                             f"({type(e).__name__})") from e
    if not isinstance(content, cms.ContentInfo._oid_specs[expected]):
        raise CmsFormatError(f"{what}: {expected} content missing")
    return ci


# --------------------------------------------------------------------------------------------
# signing


def sign(content: bytes, signer: Identity, *, content_type: str = "data",
         detached: bool = False, signing_time: datetime.datetime | None = None) -> bytes:
    """ContentInfo(SignedData) over ``content`` (DER). ``content_type`` is the eContentType
    (asn1crypto name such as "data", "authenticated_enveloped_data", or a dotted OID).
    ``detached``: the content is not included (the verifier must be given it)."""
    content = _check_bytes("content", content)
    ski = signer.ski
    if ski is None:
        raise CmsFormatError(f"signer certificate {signer.subject} has no "
                             "subjectKeyIdentifier (needed for sid)")
    ctype = _content_type(content_type)
    when = (signing_time or _now()).astimezone(datetime.timezone.utc).replace(microsecond=0)
    # RFC 5652 11.3: UTCTime for 1950..2049, GeneralizedTime otherwise
    time = cms.Time({"utc_time": when} if 1950 <= when.year < 2050
                    else {"generalized_time": when})
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [ctype]},
        {"type": "signing_time", "values": [time]},
        {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
    ])
    # asn1crypto writes SET OF sorted (DER), which is what OpenSSL re-encodes to verify
    signature = signer.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
    signer_info = cms.SignerInfo({
        "version": "v3",
        "sid": cms.SignerIdentifier({"subject_key_identifier": ski}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "sha256_ecdsa"},
        "signature": signature,
    })
    certs = [cms.CertificateChoices(
        {"certificate": asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))})
        for c in (signer.cert, *signer.chain)]
    eci = {"content_type": ctype}
    if not detached:
        eci["content"] = core.ParsableOctetString(content)
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": eci,
        "certificates": certs,
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def _find_signer(sid: cms.SignerIdentifier,
                 certs: Sequence[x509.Certificate]) -> x509.Certificate:
    if sid.name == "subject_key_identifier":
        want = sid.chosen.native
        for c in certs:
            if ski_of(c) == want:
                return c
        raise CmsVerifyError(f"the signer certificate (subjectKeyIdentifier {_hex(want)}) is "
                             "neither in the message nor among the known certificates")
    issuer = sid.chosen["issuer"].dump()
    serial = sid.chosen["serial_number"].native
    for c in certs:
        if c.serial_number == serial and c.issuer.public_bytes() == issuer:
            return c
    raise CmsVerifyError(f"the signer certificate (serial {serial:x}) is neither in the "
                         "message nor among the known certificates")


def _single_attr(attrs: dict, name: str, where: str):
    values = attrs.get(name)
    if values is None:
        raise CmsFormatError(f"{where}: the {name} attribute is missing")
    if len(values) != 1:
        raise CmsFormatError(f"{where}: the {name} attribute must have exactly one value, "
                             f"has {len(values)}")
    return values[0]


def _attr_dict(attrs: cms.CMSAttributes, where: str) -> dict:
    out: dict = {}
    for a in attrs:
        name = a["type"].native
        if name in out:
            raise CmsFormatError(f"{where}: the {name} attribute appears twice")
        out[name] = list(a["values"])
    return out


@_guard("verify")
def _verify(blob: bytes, roots: Sequence[x509.Certificate], detached_content: bytes | None,
            at: datetime.datetime, extra_certs: Sequence[x509.Certificate]):
    ci = _load_content_info(blob, "signed_data", "verify")
    sd = ci["content"]
    if sd["version"].native not in ("v1", "v3"):
        raise CmsFormatError(f"verify: SignedData version {sd['version'].native} "
                             "not supported (v1 or v3)")
    infos = list(sd["signer_infos"])
    if len(infos) != 1:
        raise CmsFormatError(f"verify: expected exactly one SignerInfo, found {len(infos)}")
    si = infos[0]
    eci = sd["encap_content_info"]
    ctype = eci["content_type"]
    encapsulated = eci["content"]
    if isinstance(encapsulated, core.Void):
        if detached_content is None:
            raise CmsFormatError("verify: detached signature but no detached content given")
        content = detached_content
    else:
        if detached_content is not None:
            raise CmsFormatError("verify: the content is encapsulated, yet detached content "
                                 "was given too")
        content = bytes(encapsulated)

    digest_name = si["digest_algorithm"]["algorithm"].native
    if digest_name not in _DIGESTS:
        raise CmsFormatError(f"verify: digest algorithm {digest_name} not supported "
                             f"({', '.join(_DIGESTS)})")
    sig_name = si["signature_algorithm"]["algorithm"].native
    if sig_name not in (_SIG_FOR_DIGEST[digest_name], "ecdsa"):
        raise CmsFormatError(f"verify: signature algorithm {sig_name} does not match "
                             f"digest {digest_name} (ECDSA only)")
    signed_attrs = si["signed_attrs"]
    if isinstance(signed_attrs, core.Void):
        raise CmsFormatError("verify: the SignerInfo has no signed attributes "
                             "(contentType and messageDigest are required)")
    attrs = _attr_dict(signed_attrs, "verify")
    attr_type = _single_attr(attrs, "content_type", "verify")
    if attr_type.dotted != ctype.dotted:
        raise CmsVerifyError(f"verify: the content-type attribute ({attr_type.native}) differs "
                             f"from the eContentType ({ctype.native})")
    md = _single_attr(attrs, "message_digest", "verify").native
    hash_cls = _DIGESTS[digest_name]
    h = hashes.Hash(hash_cls())
    h.update(content)
    if md != h.finalize():
        raise CmsVerifyError("verify: the messageDigest attribute does not match the content "
                             "(content altered, or the wrong detached content)")

    msg_certs = []
    for i, choice in enumerate(sd["certificates"] if not isinstance(
            sd["certificates"], core.Void) else []):
        if choice.name != "certificate":
            continue
        try:
            with warnings.catch_warnings():
                # e.g. a negative serial number: refused below or tolerated, never printed
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert = x509.load_der_x509_certificate(choice.chosen.dump())
                cert.subject, cert.issuer, cert.extensions  # noqa: B018 - parse them now
        except Exception:  # noqa: BLE001 - asn1crypto or cryptography parse errors
            raise CmsFormatError(f"verify: certificate {i} in the message is malformed") \
                from None
        msg_certs.append(cert)
    pool = [*msg_certs, *extra_certs]
    signer = _find_signer(si["sid"], pool)
    try:
        pub = signer.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CmsFormatError(f"verify: the public key of the signer certificate "
                             f"{_subject(signer)} is unreadable or unsupported") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise CmsFormatError(f"verify: the signer key of {_subject(signer)} is not an EC key")
    try:
        pub.verify(si["signature"].native, _der_set(signed_attrs.contents),
                   ec.ECDSA(hash_cls()))
    except InvalidSignature:
        raise CmsVerifyError(f"verify: the signature does not verify with the certificate of "
                             f"{_subject(signer)}") from None
    _check_signing_usage(signer)
    _validate_chain(signer, pool, roots, at)
    return content, signer, ctype.native


def verify(blob: bytes, roots: Sequence[x509.Certificate], *,
           detached_content: bytes | None = None, at: datetime.datetime | None = None,
           extra_certs: Sequence[x509.Certificate] = ()) -> tuple[bytes, x509.Certificate, str]:
    """Verify a ContentInfo(SignedData): exactly one signer, its signature over the signed
    attributes, the messageDigest and contentType attributes, and the signer's chain to one
    of ``roots`` (validity at ``at``, default now; CA constraints).

    Returns (content, signer certificate, content type name such as "data").
    ``extra_certs``: certificates to use when the message does not carry them.
    """
    blob = _check_bytes("blob", blob)
    if detached_content is not None:
        detached_content = _check_bytes("detached_content", detached_content)
    roots = list(roots)
    if not all(isinstance(r, x509.Certificate) for r in roots):
        raise TypeError("roots must be cryptography x509.Certificate objects")
    return _verify(blob, roots, detached_content, _check_at(at), list(extra_certs))


# --------------------------------------------------------------------------------------------
# certificate chain


def _check_time(cert: x509.Certificate, at: datetime.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise CmsVerifyError(f"certificate {_subject(cert)} is not valid before "
                             f"{cert.not_valid_before_utc.isoformat()}")
    if at > cert.not_valid_after_utc:
        raise CmsVerifyError(f"certificate {_subject(cert)} expired at "
                             f"{cert.not_valid_after_utc.isoformat()}")


def _check_extensions(cert: x509.Certificate) -> None:
    for ext in cert.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            raise CmsVerifyError(f"certificate {_subject(cert)} has an unsupported critical "
                                 f"extension {ext.oid.dotted_string}")


def _ext(cert: x509.Certificate, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_signing_usage(cert: x509.Certificate) -> None:
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        raise CmsVerifyError(f"certificate {_subject(cert)} may not sign (keyUsage has neither "
                             "digitalSignature nor nonRepudiation)")


def _check_ca(cert: x509.Certificate, cas_below: int) -> None:
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise CmsVerifyError(f"certificate {_subject(cert)} issues certificates but is not a "
                             "CA (basicConstraints)")
    if bc.path_length is not None and cas_below > bc.path_length:
        raise CmsVerifyError(f"CA {_subject(cert)} allows {bc.path_length} CA certificates "
                             f"below it, the chain has {cas_below}")
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:
        raise CmsVerifyError(f"CA {_subject(cert)} lacks keyUsage keyCertSign")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Is ``cert`` signed by ``issuer``'s key (names already match)?"""
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    iski = ski_of(issuer)
    if aki is not None and aki.key_identifier and iski and aki.key_identifier != iski:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _validate_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate],
                    roots: Sequence[x509.Certificate], at: datetime.datetime) -> None:
    """RFC 5280 path building and checks, reduced to what an SM-PKI needs: names, signatures,
    validity at ``at``, basicConstraints/pathLen, keyUsage, unknown critical extensions."""
    if not roots:
        raise CmsVerifyError("no trusted root certificate configured")
    root_der = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    cur = leaf
    cas_below = 0  # CA certificates between the current issuer candidate and the leaf
    seen = set()
    for _ in range(_MAX_CHAIN):
        _check_time(cur, at)
        _check_extensions(cur)
        der = cur.public_bytes(serialization.Encoding.DER)
        if der in root_der:
            return  # the certificate itself is a configured trust anchor
        seen.add(der)
        named = [r for r in roots if r.subject == cur.issuer]
        for r in named:
            if _issued_by(cur, r):
                _check_time(r, at)
                _check_extensions(r)
                _check_ca(r, cas_below)
                return
        cands = [c for c in pool if c.subject == cur.issuer
                 and c.public_bytes(serialization.Encoding.DER) not in seen]
        issuer = next((c for c in cands if _issued_by(cur, c)), None)
        if issuer is None:
            if named or cands:
                raise CmsVerifyError(f"the signature on certificate {_subject(cur)} does not "
                                     f"verify with the key of its issuer "
                                     f"{cur.issuer.rfc4514_string()}")
            raise CmsVerifyError(f"certificate {_subject(cur)} does not chain to a trusted root "
                                 f"(issuer {cur.issuer.rfc4514_string()} unknown)")
        _check_ca(issuer, cas_below)
        cas_below += 1
        cur = issuer
    raise CmsVerifyError(f"certificate chain of {_subject(leaf)} longer than {_MAX_CHAIN}")


# --------------------------------------------------------------------------------------------
# encryption


def _shared_info(wrap_oid: str, kek_len: int, ukm: bytes | None) -> bytes:
    info = {"key_info": {"algorithm": wrap_oid},
            "supp_pub_info": (kek_len * 8).to_bytes(4, "big")}
    if ukm is not None:
        info["entity_u_info"] = ukm
    return _EccCmsSharedInfo(info).dump()


def _kek(shared_secret: bytes, hash_cls, wrap_oid: str, ukm: bytes | None) -> bytes:
    kek_len = _WRAP[wrap_oid]
    kdf = X963KDF(algorithm=hash_cls(), length=kek_len,
                  sharedinfo=_shared_info(wrap_oid, kek_len, ukm))
    return kdf.derive(shared_secret)


def _auth_enveloped(content: bytes, inner_type: str, recipient_cert: x509.Certificate,
                    kdf: str) -> cms.AuthEnvelopedData:
    if kdf not in KDF_OIDS:
        raise CmsFormatError(f"unknown kdf {kdf!r}; one of {', '.join(KDF_OIDS)}")
    if not isinstance(recipient_cert, x509.Certificate):
        raise TypeError("recipient_cert must be a cryptography x509.Certificate")
    pub = recipient_cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise CmsFormatError(f"recipient certificate {_subject(recipient_cert)} has no EC key")
    ski = ski_of(recipient_cert)
    if ski is None:
        raise CmsFormatError(f"recipient certificate {_subject(recipient_cert)} has no "
                             "subjectKeyIdentifier (needed for rKeyId)")
    ku = _ext(recipient_cert, x509.KeyUsage)
    if ku is not None and not ku.key_agreement:
        raise CmsFormatError(f"recipient certificate {_subject(recipient_cert)} is not for key "
                             "agreement (keyUsage lacks keyAgreement)")
    ka_oid = KDF_OIDS[kdf]
    ephemeral = ec.generate_private_key(pub.curve)
    kek = _kek(ephemeral.exchange(ec.ECDH(), pub), _KA_HASH[ka_oid], OID_AES128_WRAP, None)
    cek = os.urandom(16)
    nonce = os.urandom(_GCM_NONCE)
    ctype = _content_type(inner_type)
    auth_attrs = None
    aad = b""
    if ctype.dotted != OID_DATA:
        # RFC 5083 2.1: authAttrs with contentType whenever the content is not id-data
        auth_attrs = cms.CMSAttributes([{"type": "content_type", "values": [ctype]}])
        aad = auth_attrs.dump()
    sealed = AESGCM(cek).encrypt(nonce, content, aad)
    ciphertext, tag = sealed[:-_GCM_TAG], sealed[-_GCM_TAG:]
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)
    kari = cms.KeyAgreeRecipientInfo({
        "version": "v3",
        "originator": cms.OriginatorIdentifierOrKey({"originator_key": {
            "algorithm": {"algorithm": "ec"},   # parameters absent: the recipient's curve
            "public_key": point,
        }}),
        "key_encryption_algorithm": {
            "algorithm": ka_oid,
            "parameters": _AlgorithmIdentifier({"algorithm": OID_AES128_WRAP}),
        },
        "recipient_encrypted_keys": [{
            "rid": cms.KeyAgreementRecipientIdentifier(
                {"r_key_id": {"subject_key_identifier": ski}}),
            "encrypted_key": aes_key_wrap(kek, cek),
        }],
    })
    fields = {
        "version": "v0",
        "recipient_infos": [cms.RecipientInfo({"kari": kari})],
        "auth_encrypted_content_info": {
            "content_type": ctype,
            "content_encryption_algorithm": {
                "algorithm": OID_AES128_GCM,
                "parameters": _GcmParameters({"nonce": nonce, "icv_len": _GCM_TAG}),
            },
            "encrypted_content": ciphertext,
        },
        "mac": tag,
    }
    if auth_attrs is not None:
        fields["auth_attrs"] = auth_attrs
    return cms.AuthEnvelopedData(fields)


def encrypt(content: bytes, recipient_cert: x509.Certificate, *, kdf: str = "rfc5753") -> bytes:
    """ContentInfo(AuthEnvelopedData) of ``content`` (id-data) for the holder of
    ``recipient_cert`` (an EC certificate with subjectKeyIdentifier). ``kdf``: "rfc5753"
    (default) or "bsi" selects the key-agreement OID (see the module docstring)."""
    content = _check_bytes("content", content)
    aed = _auth_enveloped(content, "data", recipient_cert, kdf)
    return cms.ContentInfo({"content_type": "authenticated_enveloped_data",
                            "content": aed}).dump()


def _compressed(content: bytes) -> bytes:
    return cms.CompressedData({
        "version": "v0",
        "compression_algorithm": {"algorithm": "zlib"},
        "encap_content_info": {"content_type": "data", "content": zlib.compress(content, 9)},
    }).dump()


def protect(content: bytes, signer: Identity, recipient_cert: x509.Certificate, *,
            compress: bool = False, kdf: str = "rfc5753",
            signing_time: datetime.datetime | None = None) -> bytes:
    """SignedData(eContentType id-ct-authEnvelopedData, eContent = AuthEnvelopedData of
    ``content`` for ``recipient_cert``), signed by ``signer``. ``compress``: the encrypted
    content is CompressedData (zlib) of ``content`` instead of ``content`` itself."""
    content = _check_bytes("content", content)
    if compress:
        aed = _auth_enveloped(_compressed(content), "compressed_data", recipient_cert, kdf)
    else:
        aed = _auth_enveloped(content, "data", recipient_cert, kdf)
    return sign(aed.dump(), signer, content_type="authenticated_enveloped_data",
                signing_time=signing_time)


# --------------------------------------------------------------------------------------------
# decryption


def _rid_matches(rid: cms.KeyAgreementRecipientIdentifier, cert: x509.Certificate) -> bool:
    if rid.name == "r_key_id":
        return rid.chosen["subject_key_identifier"].native == ski_of(cert)
    ias = rid.chosen
    return (ias["serial_number"].native == cert.serial_number
            and ias["issuer"].dump() == cert.issuer.public_bytes())


def _originator_key(kari: cms.KeyAgreeRecipientInfo,
                    curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    orig = kari["originator"]
    if orig.name != "originator_key":
        raise CmsFormatError(f"decrypt: kari originator is {orig.name}; only an ephemeral "
                             "originatorKey is supported")
    info = orig.chosen
    alg = info["algorithm"]
    if alg["algorithm"].dotted != OID_EC_PUBLIC_KEY:
        raise CmsFormatError(f"decrypt: originator key algorithm {alg['algorithm'].dotted} is "
                             "not id-ecPublicKey")
    params = alg["parameters"]
    if not isinstance(params, (core.Void, core.Null)):
        if params.name != "named" or params.chosen.dotted != _curve_oid(curve):
            raise CmsFormatError("decrypt: the originator key is on another curve than the "
                                 "recipient key")
    raw = info["public_key"].contents
    if not raw or raw[0] != 0:
        raise CmsFormatError("decrypt: originator public key BIT STRING has unused bits")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw[1:])
    except ValueError:
        raise CmsFormatError(f"decrypt: the originator public key is not a point on "
                             f"{curve.name}") from None


_CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34",
               "secp521r1": "1.3.132.0.35", "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7",
               "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
               "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13"}


def _curve_oid(curve: ec.EllipticCurve) -> str:
    return _CURVE_OIDS.get(curve.name, "")


def _unwrap_cek(aed: cms.AuthEnvelopedData, recipient: Identity) -> bytes:
    """Find our RecipientEncryptedKey and recover the content-encryption key."""
    found = False
    for ri in aed["recipient_infos"]:
        if ri.name != "kari":
            continue
        kari = ri.chosen
        for rek in kari["recipient_encrypted_keys"]:
            if not _rid_matches(rek["rid"], recipient.cert):
                continue
            found = True
            kea = kari["key_encryption_algorithm"]
            ka_oid = kea["algorithm"].dotted
            if ka_oid not in _KA_HASH:
                raise CmsFormatError(f"decrypt: key agreement algorithm {ka_oid} not supported "
                                     f"({', '.join(sorted(_KA_HASH))})")
            params = kea["parameters"]
            if isinstance(params, (core.Void, core.Null)):
                raise CmsFormatError("decrypt: key agreement without key wrap algorithm "
                                     "parameters")
            wrap = _AlgorithmIdentifier.load(params.dump(), strict=True)
            wrap_oid = wrap["algorithm"].dotted
            if wrap_oid not in _WRAP:
                raise CmsFormatError(f"decrypt: key wrap algorithm {wrap_oid} not supported "
                                     "(AES key wrap only)")
            ukm = kari["ukm"]
            ukm_bytes = None if isinstance(ukm, core.Void) else ukm.native
            peer = _originator_key(kari, recipient.key.curve)
            kek = _kek(recipient.key.exchange(ec.ECDH(), peer), _KA_HASH[ka_oid], wrap_oid,
                       ukm_bytes)
            try:
                return aes_key_unwrap(kek, rek["encrypted_key"].native)
            except InvalidUnwrap:
                raise CmsDecryptError("decrypt: the wrapped content key does not unwrap with "
                                      "our key (altered, or encrypted for another key)") \
                    from None
    if not found:
        raise CmsDecryptError(f"decrypt: the message is not encrypted for this recipient (no "
                              f"key-agreement entry for subjectKeyIdentifier "
                              f"{_hex(ski_of(recipient.cert))})")
    raise AssertionError("unreachable")  # pragma: no cover


def _open_auth_enveloped(aed: cms.AuthEnvelopedData, recipient: Identity) -> bytes:
    if aed["version"].native != "v0":
        raise CmsFormatError(f"decrypt: AuthEnvelopedData version {aed['version'].native} "
                             "not supported (v0)")
    eci = aed["auth_encrypted_content_info"]
    inner = eci["content_type"]
    alg = eci["content_encryption_algorithm"]
    alg_oid = alg["algorithm"].dotted
    if alg_oid not in _GCM:
        raise CmsFormatError(f"decrypt: content encryption {alg_oid} not supported (AES-GCM "
                             "only)")
    params = _GcmParameters.load(alg["parameters"].dump(), strict=True)
    nonce = params["nonce"].native
    if len(nonce) != _GCM_NONCE:
        raise CmsFormatError(f"decrypt: GCM nonce of {len(nonce)} bytes, expected {_GCM_NONCE}")
    if params["icv_len"].native != _GCM_TAG:
        raise CmsFormatError(f"decrypt: GCM tag length {params['icv_len'].native} not "
                             f"supported ({_GCM_TAG})")
    tag = aed["mac"].native
    if len(tag) != _GCM_TAG:
        raise CmsFormatError(f"decrypt: mac has {len(tag)} bytes, expected {_GCM_TAG}")
    ciphertext = eci["encrypted_content"]
    if isinstance(ciphertext, core.Void):
        raise CmsFormatError("decrypt: no encryptedContent (detached content not supported)")
    aad = b""
    auth_attrs = aed["auth_attrs"]
    if not isinstance(auth_attrs, core.Void):
        attrs = _attr_dict(auth_attrs, "decrypt")
        if "content_type" in attrs:
            attr_type = _single_attr(attrs, "content_type", "decrypt")
            if attr_type.dotted != inner.dotted:
                raise CmsFormatError(f"decrypt: the content-type attribute "
                                     f"({attr_type.native}) differs from the encrypted "
                                     f"content type ({inner.native})")
        aad = _der_set(auth_attrs.contents)
    elif inner.dotted != OID_DATA:
        raise CmsFormatError(f"decrypt: content type {inner.native} without authAttrs "
                             "(RFC 5083 requires a content-type attribute)")
    cek = _unwrap_cek(aed, recipient)
    if len(cek) != _GCM[alg_oid]:
        raise CmsDecryptError(f"decrypt: the unwrapped key has {len(cek)} bytes, {alg_oid} "
                              f"needs {_GCM[alg_oid]}")
    try:
        plain = AESGCM(cek).decrypt(nonce, ciphertext.native + tag, aad)
    except InvalidTag:
        raise CmsDecryptError("decrypt: the authentication tag does not match (encrypted "
                              "content, tag or authAttrs altered)") from None
    if inner.dotted == OID_DATA:
        return plain
    if inner.dotted == OID_COMPRESSED_DATA:
        return _decompress(plain)
    raise CmsFormatError(f"decrypt: encrypted content type {inner.native} not supported "
                         "(data or compressedData)")


def _decompress(der: bytes) -> bytes:
    try:
        cd = cms.CompressedData.load(der, strict=True)
        version = cd["version"].native
        alg = cd["compression_algorithm"]["algorithm"].dotted
        eci = cd["encap_content_info"]
        inner = eci["content_type"].dotted
        data = eci["content"]
    except Exception as e:  # noqa: BLE001
        raise CmsFormatError(f"decrypt: malformed CompressedData ({type(e).__name__})") from e
    if version != "v0":
        raise CmsFormatError(f"decrypt: CompressedData version {version} not supported")
    if alg != OID_ZLIB:
        raise CmsFormatError(f"decrypt: compression algorithm {alg} not supported (zlib)")
    if inner != OID_DATA:
        raise CmsFormatError(f"decrypt: compressed content type {inner} not supported (data)")
    if isinstance(data, core.Void):
        raise CmsFormatError("decrypt: CompressedData without content")
    d = zlib.decompressobj()
    try:
        out = d.decompress(bytes(data), MAX_DECOMPRESSED)
        if d.unconsumed_tail:
            raise CmsFormatError(f"decrypt: decompressed content exceeds {MAX_DECOMPRESSED} "
                                 "bytes")
        out += d.flush()
    except zlib.error as e:
        raise CmsFormatError(f"decrypt: zlib data corrupt ({e})") from None
    if not d.eof:
        raise CmsFormatError("decrypt: zlib stream truncated")
    if d.unused_data:
        raise CmsFormatError("decrypt: data after the end of the zlib stream")
    return out


def _check_recipient(recipient) -> None:
    if not isinstance(recipient, Identity):
        raise TypeError("recipient must be a smgw.security.testpki.Identity")


@_guard("decrypt")
def _decrypt(blob: bytes, recipient: Identity) -> bytes:
    ci = _load_content_info(blob, "authenticated_enveloped_data", "decrypt")
    return _open_auth_enveloped(ci["content"], recipient)


def decrypt(blob: bytes, recipient: Identity) -> bytes:
    """The content of a ContentInfo(AuthEnvelopedData) for ``recipient`` (its ENC identity).
    A CompressedData inside is decompressed."""
    blob = _check_bytes("blob", blob)
    _check_recipient(recipient)
    return _decrypt(blob, recipient)


@_guard("unprotect")
def _unprotect(blob, recipient, roots, at, extra_certs):
    content, signer, ctype = _verify.__wrapped__(blob, roots, None, at, extra_certs)
    if ctype != "authenticated_enveloped_data":
        raise CmsFormatError(f"unprotect: the signed content is {ctype}, expected "
                             "authenticated_enveloped_data")
    try:
        aed = cms.AuthEnvelopedData.load(content, strict=True)
        aed["version"].native  # noqa: B018 - parse now, so that a bad header is a format error
    except Exception as e:  # noqa: BLE001
        raise CmsFormatError(f"unprotect: the signed content is not an AuthEnvelopedData "
                             f"({type(e).__name__})") from e
    return _open_auth_enveloped(aed, recipient), signer


def unprotect(blob: bytes, recipient: Identity, roots: Sequence[x509.Certificate], *,
              at: datetime.datetime | None = None,
              extra_certs: Sequence[x509.Certificate] = ()) -> tuple[bytes, x509.Certificate]:
    """The reverse of :func:`protect`: verify the signature (as :func:`verify`), then decrypt
    the AuthEnvelopedData inside with ``recipient``. Returns (content, signer certificate)."""
    blob = _check_bytes("blob", blob)
    _check_recipient(recipient)
    roots = list(roots)
    if not all(isinstance(r, x509.Certificate) for r in roots):
        raise TypeError("roots must be cryptography x509.Certificate objects")
    return _unprotect(blob, recipient, roots, _check_at(at), list(extra_certs))
