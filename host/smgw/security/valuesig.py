"""The gateway's signature on each billing-relevant derived value (the "inner" value
signature that travels with the value to the EMT and to TRuDI/PrüDi).

The byte string the FNN specifies for this is not public (trudi-wan.md §1.7 and §5 point 2), so
this is our own, documented in docs/pki-and-cms.md section "Value signature". It is a fixed
sequence of fields, each either fixed-width big-endian or a 2-byte length followed by UTF-8,
so no two different values share a byte string:

    magic            8 bytes  b"SMGW-DV1"
    gateway_id       str
    profile          str
    taf              u8
    register         str     (OBIS, e.g. "1-0:1.8.1")
    owner            str     (meter id or profile name)
    target_ms        i64
    period_start_ms  i64
    period_end_ms    i64
    value            i64
    scaler           i8
    unit             str
    status           u32     (SMGW status word)
    time_valid       u8      (0 or 1)

    str = u16 byte length + UTF-8 bytes (at most 65535 bytes)

The signature is ECDSA with SHA-256 over that byte string, written as r || s, each as wide as
the curve order (32 bytes each for P-256 and brainpoolP256r1: 64 bytes in total).
"""

from __future__ import annotations

import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from smgw.security.testpki import Identity
from smgw.tariff.model import DerivedValue

__all__ = ["MAGIC", "sign_value", "signature_length", "value_message", "verify_value"]

MAGIC = b"SMGW-DV1"


def _str(field: str, s: str) -> bytes:
    if not isinstance(s, str):
        raise ValueError(f"{field}: expected text, got {type(s).__name__}")
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"{field}: longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _int(field: str, fmt: str, value: int) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: expected an integer, got {value!r}")
    try:
        return struct.pack(fmt, value)
    except struct.error:
        raise ValueError(f"{field}: {value} out of range for the signed byte string") from None


def value_message(v: DerivedValue, gateway_id: str) -> bytes:
    """The canonical byte string of ``v`` as signed by gateway ``gateway_id``.
    ValueError (naming the field) if a field does not fit its encoding."""
    return b"".join((
        MAGIC,
        _str("gateway_id", gateway_id),
        _str("profile", v.profile),
        _int("taf", ">B", v.taf),
        _str("register", v.register),
        _str("owner", v.owner),
        _int("target_ms", ">q", v.target_ms),
        _int("period_start_ms", ">q", v.period_start_ms),
        _int("period_end_ms", ">q", v.period_end_ms),
        _int("value", ">q", v.value),
        _int("scaler", ">b", v.scaler),
        _str("unit", v.unit),
        _int("status", ">I", v.status),
        bytes((1 if v.time_valid else 0,)),
    ))


def signature_length(curve: ec.EllipticCurve) -> int:
    """Bytes of an r || s signature on ``curve``."""
    return 2 * ((curve.key_size + 7) // 8)


def sign_value(sig: Identity, v: DerivedValue, gateway_id: str) -> bytes:
    """r || s ECDSA-SHA256 signature of :func:`value_message` with the SIG key."""
    der = sig.key.sign(value_message(v, gateway_id), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    half = signature_length(sig.key.curve) // 2
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def verify_value(cert: x509.Certificate, v: DerivedValue, gateway_id: str,
                 signature: bytes) -> bool:
    """Is ``signature`` (r || s) the signature of ``v`` by the key of ``cert``? False for a
    wrong signature, a signature of the wrong length, or a value that cannot be encoded."""
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise ValueError("verify_value: the certificate does not hold an EC key")
    if not isinstance(signature, (bytes, bytearray, memoryview)):
        return False
    signature = bytes(signature)
    n = signature_length(pub.curve)
    if len(signature) != n:
        return False
    r = int.from_bytes(signature[: n // 2], "big")
    s = int.from_bytes(signature[n // 2:], "big")
    if r == 0 or s == 0:
        return False
    try:
        msg = value_message(v, gateway_id)
    except ValueError:
        return False
    try:
        pub.verify(encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
