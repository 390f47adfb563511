"""The HAN server over real TLS: protocol versions and suites, no plain HTTP, security headers
on every kind of response, JSON 404/405/500, request limits, several interfaces, settings."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings

import aiohttp
import pytest

from hankit import PASSWORD, Digest, digest_request, run, running_server
from smgw.han.server import HanSettings, parse_address
from smgw.han.tlsconf import TLS12_CIPHERS, server_context

SECURITY = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'self'"}


def assert_security_headers(r: aiohttp.ClientResponse) -> None:
    for k, v in SECURITY.items():
        assert r.headers.get(k) == v, (k, r.status)
    assert r.headers.get("Server") == "SMGW"


async def handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLObject:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="127.0.0.1")
    obj = writer.get_extra_info("ssl_object")
    writer.close()
    try:
        await writer.wait_closed()
    except (ssl.SSLError, ConnectionError):
        pass
    return obj


def pinned(keystore) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=keystore.han.cert_pem().decode())


# ----------------------------------------------------------------------------- TLS

def test_tls12_uses_ecdhe_ecdsa_aead_and_tls13_is_offered(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            c12 = pinned(keystore)
            c12.maximum_version = ssl.TLSVersion.TLSv1_2
            o = await handshake(h.port, c12)
            assert o.version() == "TLSv1.2"
            name = o.cipher()[0]
            assert name in TLS12_CIPHERS.split(":") and "GCM" in name
            o = await handshake(h.port, pinned(keystore))
            assert o.version() == "TLSv1.3"
            # the certificate the client sees is the key store's HAN certificate
            assert o.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(
                keystore.han.cert_pem().decode())
    run(go())


def _old_client(max_version: ssl.TLSVersion) -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        c.minimum_version = ssl.TLSVersion.TLSv1_1
        c.maximum_version = max_version
    c.set_ciphers("DEFAULT:@SECLEVEL=0")
    return c


def test_tls11_is_refused(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            # the same client allowed TLS 1.1 and 1.2 gets 1.2: it is the version that fails
            o = await handshake(h.port, _old_client(ssl.TLSVersion.TLSv1_2))
            assert o.version() == "TLSv1.2"
            # (asyncio's TLS server drops the connection without flushing the alert)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await handshake(h.port, _old_client(ssl.TLSVersion.TLSv1_1))
    run(go())


def test_suites_outside_the_set_are_refused(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            c = pinned(keystore)
            c.maximum_version = ssl.TLSVersion.TLSv1_2
            c.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-CHACHA20-POLY1305")
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await handshake(h.port, c)
            c.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
            o = await handshake(h.port, c)
            assert o.cipher()[0] == "ECDHE-ECDSA-AES256-SHA384"  # CBC with SHA-384: allowed
    run(go())


def test_plain_http_on_the_tls_port_gets_no_http_answer(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
            writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(), timeout=10)
            except ConnectionError:
                data = b""
            writer.close()
            assert not data.startswith(b"HTTP/")
            assert b"hello" not in data.lower()
    run(go())


def test_server_context_refuses_a_non_ec_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(ValueError, match="EC key"):
        server_context(b"", pem)


def test_server_context_refuses_a_key_of_another_certificate(keystore):
    from smgw.security.keystore import make_han_identity

    other = make_han_identity("EOPN0000000009")
    with pytest.raises(ValueError, match="do not fit"):
        server_context(keystore.han.cert_pem(), other.key_pem())


# ----------------------------------------------------------------------------- responses

def test_security_headers_on_every_kind_of_response(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            assert r.status == 200
            assert_security_headers(r)
            r = await http.get(h.url("/hello"))
            assert r.status == 401
            assert_security_headers(r)
            r = await http.get(h.url("/nowhere"))
            assert r.status == 404 and r.content_type == "application/json"
            assert (await r.json()) == {"status": 404, "error": "Nicht gefunden",
                                        "path": "/nowhere"}
            assert_security_headers(r)
            r = await http.delete(h.url("/hello"))
            assert r.status == 405 and r.content_type == "application/json"
            body = await r.json()
            assert body["allowed"] == ["GET", "POST"]
            assert set(r.headers["Allow"].split(",")) == {"GET", "POST"}
            assert_security_headers(r)
            r = await http.get(h.url("/tech"))  # HTTPException raised by guard()
            assert r.status == 401
            assert_security_headers(r)
            r = await http.get(h.url("/boom"))
            assert r.status == 500
            assert "secret detail" not in await r.text()
            assert_security_headers(r)
    run(go())


def test_request_body_limit(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore,
                                  settings=HanSettings(listen=(("127.0.0.1", 0),),
                                                       max_body_bytes=4096)) as h:
            async with h.client() as http:
                r = await http.post(h.url("/big"), data=b"x" * 4000)
                assert r.status == 200 and (await r.json())["bytes"] == 4000
                r = await http.post(h.url("/big"), data=b"x" * 5000)
                assert r.status == 413
                assert_security_headers(r)
    run(go())


def test_oversized_header_is_refused(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await http.get(h.url("/hello"), headers={"Authorization": "Digest " + "a" * 9000})
            assert r.status in (400, 431)
    run(go())


def test_several_interfaces(tmp_path, keystore):
    async def go():
        listen = [("127.0.0.1", 0), ("127.0.0.1", 0)]
        if socket.has_ipv6:
            try:
                with socket.socket(socket.AF_INET6) as s:
                    s.bind(("::1", 0))
                listen[1] = ("::1", 0)
            except OSError:
                pass
        async with running_server(tmp_path, keystore,
                                  settings=HanSettings(listen=tuple(listen))) as h:
            assert len(h.server.addresses) == 2
            assert all(u.startswith("https://") for u in h.server.urls)
            for (host, port), url in zip(h.server.addresses, h.server.urls):
                async with h.client() as http:
                    r = await digest_request(http, "GET", url + "hello",
                                             Digest("demo", PASSWORD))
                    assert r.status == 200
    run(go())


def test_faces_are_added_before_start(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            with pytest.raises(RuntimeError):
                h.server.add_face(lambda app, ctx: None)
    run(go())


# ----------------------------------------------------------------------------- settings

def test_parse_address():
    assert parse_address("192.168.1.200:443") == ("192.168.1.200", 443)
    assert parse_address("[::1]:8443") == ("::1", 8443)
    for bad in ("8443", ":8443", "::1:8443", "host:x", "host:70000"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_settings_from_mapping():
    s = HanSettings.from_mapping({"listen": ["192.168.1.200:443", "10.0.0.1:443"],
                                  "idle_s": 300})
    assert s.listen == (("192.168.1.200", 443), ("10.0.0.1", 443)) and s.idle_s == 300
    assert HanSettings().idle_s == 600 and HanSettings().max_s == 172_800
    assert (HanSettings().lockout_failures, HanSettings().lockout_window_s,
            HanSettings().lockout_s, HanSettings().selftest_min_interval_s) == (5, 300, 300, 600)
    with pytest.raises(ValueError, match=r"han.listen\[1\]"):
        HanSettings.from_mapping({"listen": ["1.2.3.4:443", "nope"]})
    with pytest.raises(ValueError, match="han.idel_s: unknown key"):
        HanSettings.from_mapping({"idel_s": 5})
    with pytest.raises(ValueError, match="han.idle_s"):
        HanSettings(idle_s=200_000)
    with pytest.raises(ValueError, match="han.listen"):
        HanSettings(listen=())


def test_settings_from_the_gateway_configuration(tmp_path):
    from smgw.config import Config

    cfg = Config.default(data_dir=tmp_path, overrides={"han.listen": ["0.0.0.0:443",
                                                                       "[::1]:8443"],
                                                       "han.max_session_s": 3600.0})
    s = HanSettings.from_config(cfg.han)
    assert s.listen == (("0.0.0.0", 443), ("::1", 8443))
    assert s.max_s == 3600.0 and s.idle_s == 600.0 and s.lockout_failures == 5
