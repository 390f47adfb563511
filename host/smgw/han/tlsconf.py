"""The HAN server's TLS settings.

* TLS 1.2 minimum, TLS 1.3 allowed (issue 7; seed 001 E-2 names TLS 1.2). No renegotiation,
  no compression.
* TLS 1.2 cipher suites: ECDHE with ECDSA and AES-GCM or AES-CBC with SHA-256/384 (the
  TR-03116-3 set); the key of the HAN identity must therefore be an EC key
  (:func:`smgw.security.keystore.make_han_identity` makes P-256). TLS 1.3 keeps OpenSSL's
  suites (all AEAD). Key exchange groups are OpenSSL's defaults (X25519, P-256, P-384, ...):
  restricting them to one curve, as the Theben HAN does with secp384r1, only costs clients.
* The server certificate is the gateway's self-signed HAN identity (``KeyStore.han``).
* Client certificates are optional (``CERT_OPTIONAL``). The trust list is exactly the
  certificates enrolled for HAN accounts, each one trusted by itself (OpenSSL partial-chain
  mode), so self-signed client certificates verify like ones from a CA. A client that presents
  a certificate that is not enrolled fails the handshake (as on a PPC gateway, seed 000 §4.1);
  one that presents none continues and logs in with Digest.

Enrolment while the server runs: :class:`ClientTrust` adds new certificates to the live
context (new connections see them). OpenSSL cannot remove a certificate from a store; a removed
certificate still completes the handshake until the next start, but it maps to no account any
more, so its holder is asked for Digest credentials instead.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from smgw.han.accounts import cert_fingerprint

__all__ = ["TLS12_CIPHERS", "ClientTrust", "server_context"]

TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
])


def server_context(cert_pem: bytes, key_pem: bytes, chain_pem: bytes = b"",
                   client_certs: Iterable[str | bytes] = ()) -> tuple[ssl.SSLContext,
                                                                      "ClientTrust"]:
    """The HAN server context for the identity (``cert_pem`` + ``key_pem``, optional
    intermediates in ``chain_pem``) and the enrolled client certificates."""
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"HAN identity: the key is not an unencrypted PEM private key ({e})"
                         ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("HAN identity: the key must be an EC key (the TLS 1.2 suites are "
                         f"ECDHE-ECDSA), not {type(key).__name__}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE)
    # load_cert_chain reads files only: a private directory that lives for this call
    with tempfile.TemporaryDirectory(prefix="smgw-han-") as d:
        cert_file = Path(d) / "han.crt.pem"
        key_file = Path(d) / "han.key.pem"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        cert_file.write_bytes(cert_pem.rstrip(b"\n") + b"\n" + chain_pem)
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file))
        except ssl.SSLError as e:
            raise ValueError(f"HAN identity: certificate and key do not fit together ({e})"
                             ) from None
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    trust = ClientTrust(ctx)
    trust.add(client_certs)
    return ctx, trust


class ClientTrust:
    """The enrolled client certificates loaded into a server context."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self._loaded: set[str] = set()

    def add(self, pems: Iterable[str | bytes]) -> int:
        """Load the certificates not loaded yet; returns how many were new."""
        n = 0
        for pem in pems:
            data = pem.encode() if isinstance(pem, str) else bytes(pem)
            cert = x509.load_pem_x509_certificate(data)
            fp = cert_fingerprint(cert.public_bytes(Encoding.DER))
            if fp in self._loaded:
                continue
            self.ctx.load_verify_locations(cadata=cert.public_bytes(Encoding.PEM).decode())
            self._loaded.add(fp)
            n += 1
        return n

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(self._loaded)
