"""push() against the real test EMT over real TLS on 127.0.0.1: mutual authentication, the
server checks of the client (roots, host name, configured certificate), and how answers and
failures are classified."""

from __future__ import annotations

import asyncio
import ssl
import warnings

import pytest
from cryptography.hazmat.primitives import serialization

from smgw.security.testpki import TestPki
from smgw.wan.push import PushError, push

from wanbench import GW, Env


def run(coro):
    return asyncio.run(coro)


async def _with_receiver(env: Env, body, **kw):
    rx = env.receiver(**kw)
    url = await rx.start()
    try:
        return await body(rx, url)
    finally:
        await rx.stop()


def _push(env: Env, url: str, content: bytes, message_id: str = "m-1", **kw):
    args = dict(message_id=message_id, gateway_id=GW, client=env.keystore.tls,
                roots=env.keystore.roots, server_cert=env.emt.tls.cert, timeout_s=10)
    args.update(kw)
    return push(url, content, **args)


def _raw_context(env: Env, *, client_cert: bool, max_version=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if max_version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 on purpose
            ctx.maximum_version = max_version
    ctx.load_verify_locations(cadata=env.keystore.root.public_bytes(
        serialization.Encoding.PEM).decode())
    if client_cert:
        from smgw.wan.push import load_identity
        load_identity(ctx, env.keystore.tls)
    return ctx


async def _raw_post(url: str, ctx: ssl.SSLContext, body: bytes = b"x") -> bytes:
    """An HTTP POST with a hand-made TLS context; returns what came back (b"" = nothing)."""
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
    try:
        writer.write(b"POST /smgw/values HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/pkcs7-mime\r\nX-SMGW-Id: " + GW.encode() +
                     b"\r\nX-SMGW-Message-Id: raw\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def test_push_is_acknowledged_and_a_repeat_is_a_duplicate(env: Env) -> None:
    content = env.message()

    async def body(rx, url):
        first = await _push(env, url, content)
        again = await _push(env, url, content)
        return first, again, dict(rx.stats)

    first, again, stats = run(_with_receiver(env, body))
    assert (first, again) == (201, 200)
    assert stats["received"] == 1 and stats["duplicates"] == 1 and stats["values"] == 2


def test_host_name_localhost_works_too(env: Env) -> None:
    async def body(rx, url):
        return await _push(env, url.replace("127.0.0.1", "localhost"), env.message())

    assert run(_with_receiver(env, body)) == 201


def test_without_client_certificate_there_is_no_answer(env: Env) -> None:
    async def body(rx, url):
        try:
            got = await _raw_post(url, _raw_context(env, client_cert=False))
        except (ssl.SSLError, ConnectionError) as e:
            got = repr(e).encode()
        return got, dict(rx.stats)

    got, stats = run(_with_receiver(env, body))
    assert not got.startswith(b"HTTP/")
    assert stats["requests"] == 0 and stats["received"] == 0


def test_client_certificate_from_another_pki_is_refused(env: Env) -> None:
    other = TestPki.create(env.tmp / "other-pki").issue_triple(GW)

    async def body(rx, url):
        with pytest.raises(PushError) as ei:
            await _push(env, url, env.message(), client=other.tls)
        return ei.value, dict(rx.stats)

    err, stats = run(_with_receiver(env, body))
    assert err.retryable and err.status is None
    assert stats["requests"] == 0


def test_server_must_chain_to_the_given_roots(env: Env) -> None:
    other = TestPki.create(env.tmp / "other-pki")

    async def body(rx, url):
        with pytest.raises(PushError) as ei:
            await _push(env, url, env.message(), roots=[other.root])
        return ei.value, dict(rx.stats)

    err, stats = run(_with_receiver(env, body))
    assert "server certificate rejected" in str(err) and err.retryable
    assert stats["requests"] == 0


def test_server_must_present_the_configured_certificate(env: Env) -> None:
    """A server of the same PKI, but not the EMT of the communication profile: nothing of the
    message is sent."""
    async def body(rx, url):
        with pytest.raises(PushError) as ei:
            await _push(env, url, env.message(), server_cert=env.keystore.tls.cert)
        return ei.value, dict(rx.stats)

    err, stats = run(_with_receiver(env, body))
    assert "not the one of the communication profile" in str(err)
    assert stats["requests"] == 0


def test_tls_1_2_is_accepted_and_older_versions_are_not(env: Env) -> None:
    async def body(rx, url):
        ok = await _raw_post(url, _raw_context(env, client_cert=True,
                                               max_version=ssl.TLSVersion.TLSv1_2))
        try:
            old = await _raw_post(url, _raw_context(env, client_cert=True,
                                                    max_version=ssl.TLSVersion.TLSv1_1))
        except (ssl.SSLError, ConnectionError) as e:
            old = repr(e).encode()
        return ok, old

    try:
        ok, old = run(_with_receiver(env, body))
    except ssl.SSLError as e:  # pragma: no cover - OpenSSL built without TLS 1.1 at all
        pytest.skip(f"cannot build a TLS 1.1 client here: {e}")
    assert ok.startswith(b"HTTP/1.1 400")  # reached the EMT (the body is no CMS)
    assert not old.startswith(b"HTTP/")


@pytest.mark.parametrize("status,retryable", [(503, True), (500, True), (429, True),
                                              (408, True), (400, False), (404, False),
                                              (403, False)])
def test_status_codes_are_classified(env: Env, status: int, retryable: bool) -> None:
    async def body(rx, url):
        rx.fail_next(1, status=status)
        with pytest.raises(PushError) as ei:
            await _push(env, url, env.message())
        return ei.value

    err = run(_with_receiver(env, body))
    assert (err.status, err.retryable) == (status, retryable)
    assert f"HTTP {status}: injected failure" in str(err)


def test_refusal_by_the_emt_is_not_retryable(env: Env) -> None:
    """X-SMGW-Id that is not the TLS client: 403 with the EMT's reason."""
    async def body(rx, url):
        with pytest.raises(PushError) as ei:
            await _push(env, url, env.message(), gateway_id="EOPN0000000002")
        return ei.value, dict(rx.stats)

    err, stats = run(_with_receiver(env, body))
    assert err.status == 403 and not err.retryable and "not the TLS client" in str(err)
    assert stats["rejected"] == 1


def test_dropped_connection_and_refused_connection_are_retryable(env: Env) -> None:
    async def body(rx, url):
        rx.drop_connection_next(1)
        with pytest.raises(PushError) as dropped:
            await _push(env, url, env.message())
        await rx.stop()
        with pytest.raises(PushError) as refused:
            await _push(env, url, env.message())
        return dropped.value, refused.value

    dropped, refused = run(_with_receiver(env, body))
    assert dropped.retryable and "closed before a complete answer" in str(dropped)
    assert refused.retryable and "connection failed" in str(refused)


def test_bad_urls_and_headers(env: Env) -> None:
    with pytest.raises(PushError) as ei:
        run(_push(env, "http://127.0.0.1:1/x", b"x"))
    assert not ei.value.retryable and "https" in str(ei.value)
    with pytest.raises(ValueError, match="message_id"):
        run(_push(env, "https://127.0.0.1:1/x", b"x", message_id="a\r\nX-Evil: 1"))
