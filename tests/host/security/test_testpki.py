import datetime
import ipaddress
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smgw.security.testpki import (
    ROLES,
    Identity,
    PkiError,
    TestPki,
    read_triple,
    ski_of,
)

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def aki(cert):
    return ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier


def years(cert) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365.25


def test_root_is_a_self_signed_ca_valid_ten_years(bench):
    root = bench.pki.root
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert aki(root) == ski_of(root)
    assert 9.99 < years(root) < 10.01


def test_sub_ca_is_issued_by_the_root_with_path_length_zero(bench):
    sub = bench.pki.sub_ca.cert
    sub.verify_directly_issued_by(bench.pki.root)
    assert aki(sub) == ski_of(bench.pki.root)
    assert ski_of(sub) != ski_of(bench.pki.root)
    bc = ext(sub, x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert ext(sub, x509.KeyUsage).value.key_cert_sign
    assert 4.99 < years(sub) < 5.01


@pytest.mark.parametrize("role", ROLES)
def test_end_entity_certificates_chain_to_the_sub_ca(bench, role):
    ident: Identity = getattr(bench.gw, role)
    cert = ident.cert
    cert.verify_directly_issued_by(bench.pki.sub_ca.cert)
    assert aki(cert) == ski_of(bench.pki.sub_ca.cert)
    assert ski_of(cert) == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert ident.chain == (bench.pki.sub_ca.cert,)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "EOPN0000000001"
    assert cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role.upper()
    assert 1.99 < years(cert) < 2.01
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def test_key_usages_per_role(bench):
    tls = ext(bench.gw.tls.cert, x509.KeyUsage)
    sig = ext(bench.gw.sig.cert, x509.KeyUsage)
    enc = ext(bench.gw.enc.cert, x509.KeyUsage)
    assert tls.critical and sig.critical and enc.critical
    assert tls.value.digital_signature and not tls.value.key_agreement
    assert sig.value.digital_signature and sig.value.content_commitment
    assert enc.value.key_agreement and not enc.value.digital_signature
    eku = ext(bench.gw.tls.cert, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    for ident in (bench.gw.sig, bench.gw.enc):
        with pytest.raises(x509.ExtensionNotFound):
            ext(ident.cert, x509.ExtendedKeyUsage)
        with pytest.raises(x509.ExtensionNotFound):
            ext(ident.cert, x509.SubjectAlternativeName)


def test_tls_certificate_names_localhost_loopback_and_the_entity(bench):
    san = ext(bench.emt1.tls.cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "emt1"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    gw = ext(bench.gw.tls.cert, x509.SubjectAlternativeName).value
    assert "eopn0000000001" in gw.get_values_for_type(x509.DNSName)


def test_default_curve_is_p256_and_brainpool_is_selectable(bench, bp_bench):
    assert isinstance(bench.pki.root.public_key().curve, ec.SECP256R1)
    assert bench.pki.curve == "P-256"
    assert bp_bench.pki.curve == "brainpoolP256r1"
    for cert in (bp_bench.pki.root, bp_bench.pki.sub_ca.cert, *[i.cert for i in bp_bench.emt1]):
        assert isinstance(cert.public_key().curve, ec.BrainpoolP256R1)


def test_files_layout_and_key_modes(bench):
    d = bench.dir
    for f in ("root.crt.pem", "root.key.pem", "sub-ca.crt.pem", "sub-ca.key.pem"):
        assert (d / f).is_file()
    for role in ROLES:
        assert (d / "emt1" / f"{role}.crt.pem").is_file()
    assert (d / "emt1" / "chain.pem").read_bytes() == bench.pki.sub_ca.cert_pem()
    keys = [d / "root.key.pem", d / "sub-ca.key.pem", *(d / "emt1").glob("*.key.pem")]
    assert len(keys) == 5
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600, k
        assert k.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE((d / "root.crt.pem").stat().st_mode) == 0o644
    # nothing half-written left behind
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_load_reads_back_what_create_wrote(bench):
    pki = TestPki.load(bench.dir)
    assert pki.root == bench.pki.root
    assert pki.sub_ca.cert == bench.pki.sub_ca.cert
    assert pki.sub_ca.key_pem() == bench.pki.sub_ca.key_pem()
    t = pki.load_triple("emt1")
    for a, b in zip(t, bench.emt1):
        assert a.cert == b.cert and a.key_pem() == b.key_pem() and a.chain == b.chain
    assert set(pki.names()) == {"EOPN0000000001", "emt1", "emt2"}
    assert pki.has_triple("emt2") and not pki.has_triple("emt9")


def test_identity_pem_helpers(bench):
    ident = bench.emt1.sig
    assert ident.chain_pem() == ident.cert_pem() + bench.pki.sub_ca.cert_pem()
    assert x509.load_pem_x509_certificate(ident.cert_pem()) == ident.cert
    assert ident.ski == ski_of(ident.cert)


def test_identity_refuses_a_certificate_of_another_key(bench):
    with pytest.raises(PkiError, match="does not belong"):
        Identity(bench.emt1.sig.key, bench.emt1.enc.cert)


def test_create_refuses_an_existing_pki(bench):
    with pytest.raises(PkiError, match="exists already"):
        TestPki.create(bench.dir)


def test_issue_triple_never_replaces_keys(bench):
    before = (bench.dir / "emt1" / "sig.key.pem").read_bytes()
    with pytest.raises(PkiError, match="has a certificate triple already"):
        bench.pki.issue_triple("emt1")
    assert (bench.dir / "emt1" / "sig.key.pem").read_bytes() == before


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "a b", "x" * 65, "ümlaut"])
def test_bad_names_are_refused(bench, name):
    with pytest.raises(PkiError, match="bad entity name"):
        bench.pki.issue_triple(name)


def test_unknown_curve_is_refused(tmp_path):
    with pytest.raises(PkiError, match="unknown curve"):
        TestPki.create(tmp_path / "p", curve="P-192")
    assert not TestPki.exists(tmp_path / "p")


def test_missing_or_mismatched_files_are_named(tmp_path, bench):
    with pytest.raises(PkiError, match="root.crt.pem: file missing"):
        TestPki.load(tmp_path)
    with pytest.raises(PkiError, match="no certificate triple for 'nobody'"):
        read_triple(bench.dir, "nobody")
    d = tmp_path / "pki"
    shutil.copytree(bench.dir, d)
    (d / "emt1" / "enc.crt.pem").write_bytes((d / "emt1" / "sig.crt.pem").read_bytes())
    with pytest.raises(PkiError, match="enc.crt.pem: does not belong"):
        read_triple(d, "emt1")
    (d / "sub-ca.key.pem").write_bytes(b"garbage")
    with pytest.raises(PkiError, match="sub-ca.key.pem: unreadable private key"):
        TestPki.load(d)


def test_issue_with_a_past_validity_for_tests(bench):
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    ident = bench.pki.issue("sig", "old", not_before=start, days=30)
    assert ident.cert.not_valid_before_utc == start
    assert ident.cert.not_valid_after_utc < start + datetime.timedelta(days=31)


@needs_openssl
@pytest.mark.parametrize("role,purpose", [("tls", "sslserver"), ("tls", "sslclient"),
                                          ("sig", "smimesign"), ("enc", "any")])
@pytest.mark.parametrize("which", ["bench", "bp_bench"])
def test_openssl_verifies_the_chain(request, which, role, purpose):
    b = request.getfixturevalue(which)
    r = subprocess.run([OPENSSL, "verify", "-x509_strict", "-purpose", purpose,
                        "-CAfile", str(b.dir / "root.crt.pem"),
                        "-untrusted", str(b.dir / "emt1" / "chain.pem"),
                        str(b.dir / "emt1" / f"{role}.crt.pem")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith(": OK")
