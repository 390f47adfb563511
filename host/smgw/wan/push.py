"""One HTTPS POST of a protected message to a market participant (trudi-wan.md §3.2, §3.5).

TLS 1.2 at least (1.3 allowed), mutual authentication: the gateway shows its TLS identity, the
server's certificate must chain to the given roots, carry the URL's host name, and — when the
communication profile names one — be exactly the configured certificate (DS §13 "direct
match"). That last check happens right after the handshake, before a byte of the message is
written.

The HTTP/1.1 exchange is written here on asyncio streams rather than with aiohttp's client:
aiohttp offers no point between the TLS handshake and sending the request where the peer's
certificate could be compared with the configured one (its ``Fingerprint`` pinning replaces
certificate-chain verification and client certificates instead of adding to them). One request
per connection (``Connection: close``), a response body read only for its first few KiB (the
reason text), chunked and length-delimited bodies understood.

Outcome: the status code of a 2xx answer (acknowledged; 200 "duplicate" counts too), else
:class:`PushError`. ``retryable`` tells the worker whether trying again later can help:
network, TLS, timeouts, 408, 429 and 5xx can; other 4xx and 3xx (the recipient refuses this
message or the communication profile is wrong) cannot by themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:  # pragma: no cover
    from smgw.security.testpki import Identity

__all__ = ["CONTENT_TYPE", "PushError", "client_context", "load_identity", "push",
           "server_context"]

CONTENT_TYPE = "application/pkcs7-mime"

#: TLS 1.2 suites (TR-03116-3 list as used by TRuDI, trudi-wan.md §3.2); 1.3 keeps its defaults
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
])

_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,250}")  # DS §6: header fields <= 250 characters
_MAX_HEAD = 16 * 1024       # response status line + headers
_MAX_BODY = 4 * 1024        # what is read of a response body (for the reason)
_CLOSE_WAIT_S = 5.0         # after close_notify, wait this long for the peer, then abort


class PushError(Exception):
    """A push that was not acknowledged. ``retryable``: a later attempt may succeed;
    ``status``: the HTTP status if the server answered."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


# ---------------------------------------------------------------------- TLS contexts

def _der_sha256(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _roots_pem(roots: Sequence[x509.Certificate]) -> str:
    if not roots:
        raise ValueError("no trusted roots given")
    return "".join(r.public_bytes(serialization.Encoding.PEM).decode("ascii") for r in roots)


def load_identity(ctx: ssl.SSLContext, identity: "Identity") -> None:
    """Load an in-memory identity (key + certificate + chain) into ``ctx``.

    ``ssl`` only loads keys from files: they are written to a private temporary directory
    (mode 0700, files 0600) and removed right after loading.
    """
    with tempfile.TemporaryDirectory(prefix="smgw-tls-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        for path, data in ((cert_path, identity.chain_pem()), (key_path, identity.key_pem())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(str(cert_path), str(key_path))


def _base_context(purpose: int, roots: Sequence[x509.Certificate]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_roots_pem(roots))
    return ctx


_client_contexts: dict[tuple, ssl.SSLContext] = {}


def client_context(client: "Identity", roots: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """TLS client context: TLS >= 1.2, ECDHE-ECDSA suites, our identity, server verified
    against ``roots`` with host-name check. Cached per (identity, roots)."""
    key = (_der_sha256(client.cert), tuple(_der_sha256(r) for r in roots))
    ctx = _client_contexts.get(key)
    if ctx is None:
        ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT, roots)
        ctx.check_hostname = True
        load_identity(ctx, client)
        if len(_client_contexts) >= 16:
            _client_contexts.clear()
        _client_contexts[key] = ctx
    return ctx


def server_context(server: "Identity", client_roots: Sequence[x509.Certificate]
                   ) -> ssl.SSLContext:
    """TLS server context that requires a client certificate chaining to ``client_roots``."""
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER, client_roots)
    load_identity(ctx, server)
    return ctx


# ---------------------------------------------------------------------- HTTP/1.1

def _request(method: str, target: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii") + body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """Status line and headers of the final (non-1xx) response."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise PushError(f"response header longer than {_MAX_HEAD} bytes", retryable=True)
        lines = head.decode("iso-8859-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.[01] (\d{3})(?: (.*))?", lines[0])
        if not m:
            raise PushError(f"not an HTTP/1.x response: {lines[0][:80]!r}", retryable=True)
        status = int(m.group(1))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise PushError(f"malformed response header {line[:80]!r}", retryable=True)
            headers[name.strip().lower()] = value.strip()
        if status >= 200 or status == 101:
            return status, m.group(2) or "", headers


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    """Up to _MAX_BODY bytes of the body (the rest is not needed: the connection closes)."""
    if status in (204, 304):
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while len(out) < _MAX_BODY:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0:  # a negative size would make readexactly raise a bare ValueError
                raise PushError("malformed chunked response body", retryable=True)
            if size == 0:
                break
            out += await reader.readexactly(min(size, _MAX_BODY - len(out)))
            if len(out) >= _MAX_BODY:
                break
            await reader.readexactly(2)
        return bytes(out[:_MAX_BODY])
    if "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            n = -1
        if n < 0:
            raise PushError("malformed Content-Length in response", retryable=True)
        return await reader.readexactly(min(n, _MAX_BODY))
    return await reader.read(_MAX_BODY)


def _reason(body: bytes, fallback: str) -> str:
    text = body.decode("utf-8", "replace")
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text[:200] or fallback


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_S)
    except (asyncio.TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()


async def push(url: str, content: bytes, *, message_id: str, gateway_id: str,
               client: "Identity", roots: Sequence[x509.Certificate], timeout_s: float = 20,
               server_cert: x509.Certificate | None = None) -> int:
    """POST ``content`` to ``url``; returns the 2xx status or raises :class:`PushError`.

    ``server_cert``: the recipient's TLS certificate from its communication profile; when
    given, the server must present exactly that certificate.
    """
    u = urlsplit(url)
    try:
        port = u.port or 443
    except ValueError:
        raise PushError(f"{url}: bad port in URL (communication profile)",
                        retryable=False) from None
    if u.scheme != "https" or not u.hostname or not u.hostname.isascii():
        raise PushError(f"{url}: not an https:// URL with an ASCII host name "
                        "(communication profile)", retryable=False)
    for name, value in (("message_id", message_id), ("gateway_id", gateway_id)):
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"{name} {value!r}: 1-250 printable ASCII characters expected")
    host = u.hostname
    host_header = f"[{host}]" if ":" in host else host
    if port != 443:
        host_header += f":{port}"
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    ctx = client_context(client, roots)
    request = _request("POST", target, host_header, {
        "User-Agent": "smgw",
        "Content-Type": CONTENT_TYPE,
        "X-SMGW-Id": gateway_id,
        "X-SMGW-Message-Id": message_id,
    }, bytes(content))
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=host, limit=_MAX_HEAD,
                ssl_handshake_timeout=timeout_s)
            try:
                if server_cert is not None:
                    ssl_obj = writer.get_extra_info("ssl_object")
                    peer = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
                    want = server_cert.public_bytes(serialization.Encoding.DER)
                    if peer != want:
                        raise PushError(
                            f"{url}: the server's TLS certificate is not the one of the "
                            "communication profile", retryable=True)
                writer.write(request)
                await writer.drain()
                status, reason, headers = await _read_head(reader)
                body = await _read_body(reader, status, headers)
            finally:
                await _close(writer)
    except PushError:
        raise
    except ssl.SSLCertVerificationError as e:
        raise PushError(f"{url}: server certificate rejected: {e.verify_message or e}",
                        retryable=True) from e
    except ssl.SSLError as e:
        raise PushError(f"{url}: TLS failed: {e.reason or e}", retryable=True) from e
    except TimeoutError as e:
        raise PushError(f"{url}: no answer within {timeout_s:g} s", retryable=True) from e
    except asyncio.IncompleteReadError as e:
        raise PushError(f"{url}: connection closed before a complete answer (with TLS 1.3 "
                        "also: the server refused our client certificate)",
                        retryable=True) from e
    except asyncio.LimitOverrunError as e:
        raise PushError(f"{url}: response header too long", retryable=True) from e
    except OSError as e:
        raise PushError(f"{url}: connection failed: {e.strerror or e}", retryable=True) from e
    if 200 <= status < 300:
        return status
    text = _reason(body, reason)
    retryable = status in (408, 429) or status >= 500
    raise PushError(f"{url}: HTTP {status}: {text}", retryable=retryable, status=status)
