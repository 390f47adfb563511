import shutil
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smgw.security.keystore import KeyStore
from smgw.security.testpki import PkiError, TestPki

GW = "EOPN0000000001"


@pytest.fixture
def store(tmp_path):
    return KeyStore.load_or_create(tmp_path / "pki", GW)


def _same_identity(a, b):
    return a.cert == b.cert and a.key_pem() == b.key_pem() and a.chain == b.chain


def test_first_call_creates_the_test_pki_and_the_gateway_triple(store, tmp_path):
    d = tmp_path / "pki"
    assert store.pki_dir == d and store.gateway_id == GW
    assert TestPki.exists(d)
    assert store.root == TestPki.load(d).root
    assert store.roots == [store.root]
    for ident in store.triple:
        assert ident.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == GW
        ident.chain[0].verify_directly_issued_by(store.root)
        ident.cert.verify_directly_issued_by(ident.chain[0])
    for f in ("tls", "sig", "enc", "han"):
        key = d / GW / f"{f}.key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (d / GW / f"{f}.crt.pem").is_file()


def test_reload_is_idempotent(store, tmp_path):
    files = {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()}
    again = KeyStore.load_or_create(tmp_path / "pki", GW)
    for a, b in zip((*store.triple, store.han), (*again.triple, again.han)):
        assert _same_identity(a, b)
    assert again.root == store.root
    assert {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()} == files


def test_han_identity_is_self_signed_for_the_gateway(store):
    cert = store.han.cert
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == GW
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", GW.lower()} <= set(san.get_values_for_type(x509.DNSName))
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert store.han.chain == ()
    assert store.han.cert != store.tls.cert


def test_issue_emt_issues_once_then_loads(store, tmp_path):
    t1 = store.issue_emt("emt1")
    t2 = store.issue_emt("emt1")
    for a, b in zip(t1, t2):
        assert _same_identity(a, b)
    assert store.load_triple("emt1").sig.cert == t1.sig.cert
    t1.sig.cert.verify_directly_issued_by(store.sig.chain[0])
    with pytest.raises(PkiError, match="gateway's own name"):
        store.issue_emt(GW)


def test_brainpool_pki_is_used_as_it_is(tmp_path):
    TestPki.create(tmp_path / "pki", curve="brainpoolP256r1")
    ks = KeyStore.load_or_create(tmp_path / "pki", GW)
    assert isinstance(ks.sig.key.curve, ec.BrainpoolP256R1)
    assert isinstance(ks.han.key.curve, ec.SECP256R1)  # browsers speak no brainpool


def test_imported_layout_without_ca_keys_loads_but_cannot_issue(store, tmp_path):
    d = tmp_path / "imported"
    shutil.copytree(store.pki_dir, d)
    (d / "root.key.pem").unlink()
    (d / "sub-ca.key.pem").unlink()
    ks = KeyStore.load_or_create(d, GW)
    assert _same_identity(ks.sig, store.sig)
    with pytest.raises(PkiError, match="cannot issue certificates"):
        ks.issue_emt("emt1")
    with pytest.raises(PkiError, match="no certificate triple for the gateway 'EOPN0000000002'"):
        KeyStore.load_or_create(d, "EOPN0000000002")


def test_bad_gateway_id_is_refused(tmp_path):
    with pytest.raises(PkiError, match="bad entity name"):
        KeyStore.load_or_create(tmp_path / "pki", "../etc")


# --- real TLS with the identities (ssl over memory BIOs) ---------------------------------------


def _files(tmp_path, ident, name):
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert.write_bytes(ident.chain_pem())
    key.write_bytes(ident.key_pem())
    return str(cert), str(key)


def _handshake(server_ctx, client_ctx, hostname):
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    done = {"c": False, "s": False}
    for _ in range(20):
        for key, side in (("c", client), ("s", server)):
            if not done[key]:
                try:
                    side.do_handshake()
                    done[key] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client, server
    raise AssertionError("handshake did not finish")


def test_han_certificate_serves_tls_to_a_client_that_pinned_it(store, tmp_path):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_files(tmp_path, store.han, "han"))
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=store.han.cert_pem().decode())
    for host in ("localhost", "127.0.0.1", GW.lower()):
        client, _ = _handshake(server_ctx, client_ctx, host)
        assert client.getpeercert()["subject"][-1] == (("commonName", GW),)


def test_triples_do_mutual_tls_through_the_pki(store, tmp_path):
    emt = store.issue_emt("emt1")
    root = store.root.public_bytes(serialization.Encoding.PEM).decode()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(*_files(tmp_path, emt.tls, "emt"))
    server_ctx.load_verify_locations(cadata=root)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.load_cert_chain(*_files(tmp_path, store.tls, "gw"))
    client_ctx.load_verify_locations(cadata=root)
    client, server = _handshake(server_ctx, client_ctx, "emt1")
    assert client.version() == "TLSv1.2"
    assert ("commonName", GW) in [a[0] for a in server.getpeercert()["subject"]]
