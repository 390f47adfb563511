import datetime
import shutil
import subprocess
import zlib

import pytest
from asn1crypto import cms as acms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from smgw.security import cms
from smgw.security.cms import CmsDecryptError, CmsError, CmsFormatError, CmsVerifyError
from smgw.security.testpki import Identity, TestPki, key_usage, ski_of

CONTENT = b"<values>meter 1ESY1160012345 1-0:1.8.0 12345 Wh</values>"
UTC = datetime.timezone.utc
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")


# --- helpers ---------------------------------------------------------------------------------


def flip(blob: bytes, needle: bytes, index: int = -1) -> bytes:
    """``blob`` with one bit changed inside the only occurrence of ``needle``."""
    assert blob.count(needle) == 1
    i = blob.index(needle) + (index % len(needle))
    return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1:]


def signed_parts(blob: bytes):
    sd = acms.ContentInfo.load(blob)["content"]
    return sd, sd["signer_infos"][0]


def aed_parts(blob: bytes):
    aed = acms.ContentInfo.load(blob)["content"]
    kari = aed["recipient_infos"][0].chosen
    return aed, kari


def _cert(subject_cn, key, issuer: Identity | None, *, ca, path_length=None, days=30):
    """A certificate made by hand (for chains the test PKI would never issue)."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(UTC)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer.cert.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), True)
         .add_extension(key_usage(key_cert_sign=True, crl_sign=True) if ca
                        else key_usage(digital_signature=True), True))
    if issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier(ski_of(issuer.cert), None, None), False)
    return b.sign(issuer.key if issuer else key, hashes.SHA256())


# --- structure of what we write ----------------------------------------------------------------


def test_sign_writes_signed_data_v3_with_ski_sid(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    ci = acms.ContentInfo.load(blob, strict=True)
    assert ci["content_type"].dotted == "1.2.840.113549.1.7.2"
    sd, si = signed_parts(blob)
    assert sd["version"].native == "v3"
    assert [a["algorithm"].native for a in sd["digest_algorithms"]] == ["sha256"]
    assert sd["encap_content_info"]["content_type"].native == "data"
    assert bytes(sd["encap_content_info"]["content"]) == CONTENT
    certs = sorted(c.chosen.dump() for c in sd["certificates"])   # a SET: DER order
    assert certs == sorted([bench.gw.sig.cert.public_bytes(serialization.Encoding.DER),
                            bench.pki.sub_ca.cert.public_bytes(serialization.Encoding.DER)])
    assert si["version"].native == "v3"
    assert si["sid"].name == "subject_key_identifier"
    assert si["sid"].chosen.native == bench.gw.sig.ski
    assert si["digest_algorithm"]["algorithm"].native == "sha256"
    assert si["signature_algorithm"]["algorithm"].dotted == "1.2.840.10045.4.3.2"
    assert [a["type"].native for a in si["signed_attrs"]] == [
        "content_type", "signing_time", "message_digest"]   # DER order of the SET
    assert si["signature"].native[0] == 0x30  # X9.62 DER signature


def test_sign_detached_has_no_econtent(bench):
    sd, _ = signed_parts(cms.sign(CONTENT, bench.gw.sig, detached=True))
    assert sd["encap_content_info"]["content"].native is None


def test_signing_time_is_the_given_one(bench):
    when = datetime.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    _, si = signed_parts(cms.sign(CONTENT, bench.gw.sig, signing_time=when))
    attrs = {a["type"].native: a["values"][0].native for a in si["signed_attrs"]}
    assert attrs["signing_time"] == when


@pytest.mark.parametrize("kdf,oid", [("rfc5753", "1.3.132.1.11.1"),
                                     ("bsi", "0.4.0.127.0.7.1.1.5.1.1.3")])
def test_encrypt_writes_auth_enveloped_data_with_kari(bench, kdf, oid):
    blob = cms.encrypt(CONTENT, bench.emt1.enc.cert, kdf=kdf)
    ci = acms.ContentInfo.load(blob, strict=True)
    assert ci["content_type"].dotted == "1.2.840.113549.1.9.16.1.23"
    aed, kari = aed_parts(blob)
    assert aed["version"].native == "v0"
    assert aed["originator_info"].native is None
    assert len(aed["recipient_infos"]) == 1 and aed["recipient_infos"][0].name == "kari"
    assert kari["version"].native == "v3"
    assert kari["originator"].name == "originator_key"
    okey = kari["originator"].chosen
    assert okey["algorithm"]["algorithm"].dotted == "1.2.840.10045.2.1"
    assert okey["public_key"].contents[1] == 0x04 and len(okey["public_key"].contents) == 66
    assert kari["ukm"].native is None
    assert kari["key_encryption_algorithm"]["algorithm"].dotted == oid
    assert kari["key_encryption_algorithm"]["parameters"].dump().hex() == \
        "300b0609608648016503040105"   # id-aes128-wrap, parameters absent
    rek = kari["recipient_encrypted_keys"][0]
    assert rek["rid"].name == "r_key_id"
    assert rek["rid"].chosen["subject_key_identifier"].native == bench.emt1.enc.ski
    assert len(rek["encrypted_key"].native) == 24   # 16-byte key + 8-byte wrap IV
    eci = aed["auth_encrypted_content_info"]
    assert eci["content_type"].native == "data"
    assert eci["content_encryption_algorithm"]["algorithm"].dotted == "2.16.840.1.101.3.4.1.6"
    params = cms._GcmParameters.load(eci["content_encryption_algorithm"]["parameters"].dump())
    assert len(params["nonce"].native) == 12 and params["icv_len"].native == 16
    assert len(eci["encrypted_content"].native) == len(CONTENT)
    assert len(aed["mac"].native) == 16
    assert aed["auth_attrs"].native is None   # id-data: none (and OpenSSL 3.0 needs none)


def test_each_message_has_a_fresh_key_and_nonce(bench):
    a = aed_parts(cms.encrypt(CONTENT, bench.emt1.enc.cert))[0]
    b = aed_parts(cms.encrypt(CONTENT, bench.emt1.enc.cert))[0]
    assert a["mac"].native != b["mac"].native
    assert a["recipient_infos"][0].chosen["originator"].dump() != \
        b["recipient_infos"][0].chosen["originator"].dump()


def test_protect_nests_auth_enveloped_data_in_signed_data(bench):
    blob = cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert)
    sd, si = signed_parts(blob)
    eci = sd["encap_content_info"]
    assert eci["content_type"].dotted == "1.2.840.113549.1.9.16.1.23"
    inner = acms.AuthEnvelopedData.load(bytes(eci["content"]), strict=True)
    assert inner["auth_encrypted_content_info"]["content_type"].native == "data"
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    assert attrs["content_type"].native == "authenticated_enveloped_data"


def test_compressed_protect_encrypts_compressed_data_with_auth_attrs(bench):
    blob = cms.protect(CONTENT * 50, bench.gw.sig, bench.emt1.enc.cert, compress=True)
    sd, _ = signed_parts(blob)
    inner = acms.AuthEnvelopedData.load(bytes(sd["encap_content_info"]["content"]))
    assert inner["auth_encrypted_content_info"]["content_type"].native == "compressed_data"
    assert [(a["type"].native, a["values"][0].native) for a in inner["auth_attrs"]] == [
        ("content_type", "compressed_data")]
    assert len(blob) < len(CONTENT * 50)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["bench", "bp_bench"])
def test_sign_verify_round_trip(request, which):
    b = request.getfixturevalue(which)
    content, signer, ctype = cms.verify(cms.sign(CONTENT, b.gw.sig), [b.pki.root])
    assert (content, signer, ctype) == (CONTENT, b.gw.sig.cert, "data")


def test_sign_other_content_type_round_trip(bench):
    blob = cms.sign(b"\x30\x00", bench.gw.sig, content_type="authenticated_enveloped_data")
    assert cms.verify(blob, [bench.pki.root])[2] == "authenticated_enveloped_data"


def test_detached_round_trip(bench):
    blob = cms.sign(CONTENT, bench.gw.sig, detached=True)
    assert cms.verify(blob, [bench.pki.root], detached_content=CONTENT)[0] == CONTENT


def test_empty_content_round_trips(bench):
    assert cms.verify(cms.sign(b"", bench.gw.sig), [bench.pki.root])[0] == b""
    assert cms.decrypt(cms.encrypt(b"", bench.emt1.enc.cert), bench.emt1.enc) == b""


@pytest.mark.parametrize("which", ["bench", "bp_bench"])
@pytest.mark.parametrize("kdf", ["rfc5753", "bsi"])
def test_encrypt_decrypt_round_trip(request, which, kdf):
    b = request.getfixturevalue(which)
    blob = cms.encrypt(CONTENT, b.emt1.enc.cert, kdf=kdf)
    assert cms.decrypt(blob, b.emt1.enc) == CONTENT


@pytest.mark.parametrize("which", ["bench", "bp_bench"])
@pytest.mark.parametrize("compress", [False, True])
def test_protect_unprotect_round_trip(request, which, compress):
    b = request.getfixturevalue(which)
    big = CONTENT * 2000 + bytes(range(256))
    blob = cms.protect(big, b.gw.sig, b.emt2.enc.cert, compress=compress)
    content, signer = cms.unprotect(blob, b.emt2.enc, [b.pki.root])
    assert content == big and signer == b.gw.sig.cert


def test_verify_finds_certificates_given_out_of_band(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    sd, _ = signed_parts(blob)
    del sd["certificates"]
    bare = acms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    with pytest.raises(CmsVerifyError, match="neither in the message nor among the known"):
        cms.verify(bare, [bench.pki.root])
    content, signer, _ = cms.verify(bare, [bench.pki.root],
                                    extra_certs=[bench.gw.sig.cert, bench.pki.sub_ca.cert])
    assert content == CONTENT and signer == bench.gw.sig.cert


# --- tampering ------------------------------------------------------------------------------


def test_changed_content_fails_the_message_digest(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    with pytest.raises(CmsVerifyError, match="messageDigest attribute does not match"):
        cms.verify(flip(blob, CONTENT, 5), [bench.pki.root])


def test_changed_signature_fails(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    _, si = signed_parts(blob)
    with pytest.raises(CmsVerifyError, match="signature does not verify with the certificate"):
        cms.verify(flip(blob, si["signature"].native, -1), [bench.pki.root])


def test_changed_signed_attribute_fails_the_signature(bench):
    blob = cms.sign(CONTENT, bench.gw.sig,
                    signing_time=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(CmsVerifyError, match="signature does not verify"):
        cms.verify(flip(blob, b"260101000000Z", 3), [bench.pki.root])


def test_wrong_detached_content_fails(bench):
    blob = cms.sign(CONTENT, bench.gw.sig, detached=True)
    with pytest.raises(CmsVerifyError, match="messageDigest"):
        cms.verify(blob, [bench.pki.root], detached_content=CONTENT + b" ")
    with pytest.raises(CmsFormatError, match="no detached content given"):
        cms.verify(blob, [bench.pki.root])
    with pytest.raises(CmsFormatError, match="encapsulated, yet detached content"):
        cms.verify(cms.sign(CONTENT, bench.gw.sig), [bench.pki.root], detached_content=CONTENT)


def test_changed_wrapped_key_fails_to_unwrap(bench):
    blob = cms.encrypt(CONTENT, bench.emt1.enc.cert)
    _, kari = aed_parts(blob)
    wrapped = kari["recipient_encrypted_keys"][0]["encrypted_key"].native
    with pytest.raises(CmsDecryptError, match="wrapped content key does not unwrap"):
        cms.decrypt(flip(blob, wrapped, 3), bench.emt1.enc)


def test_changed_tag_or_ciphertext_fails_authentication(bench):
    blob = cms.encrypt(CONTENT, bench.emt1.enc.cert)
    aed, _ = aed_parts(blob)
    with pytest.raises(CmsDecryptError, match="authentication tag does not match"):
        cms.decrypt(flip(blob, aed["mac"].native, 0), bench.emt1.enc)
    ct = aed["auth_encrypted_content_info"]["encrypted_content"].native
    with pytest.raises(CmsDecryptError, match="authentication tag does not match"):
        cms.decrypt(flip(blob, ct, 7), bench.emt1.enc)


def test_changed_ephemeral_key_fails(bench):
    blob = cms.encrypt(CONTENT, bench.emt1.enc.cert)
    _, kari = aed_parts(blob)
    point = kari["originator"].chosen["public_key"].contents[1:]
    with pytest.raises(CmsError) as info:
        cms.decrypt(flip(blob, point, -1), bench.emt1.enc)
    # either no longer a curve point (format) or a different shared secret (decrypt)
    assert isinstance(info.value, (CmsFormatError, CmsDecryptError))


def test_protected_message_changed_inside_fails_the_outer_signature(bench):
    blob = cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert)
    sd, _ = signed_parts(blob)
    inner = acms.AuthEnvelopedData.load(bytes(sd["encap_content_info"]["content"]))
    ct = inner["auth_encrypted_content_info"]["encrypted_content"].native
    with pytest.raises(CmsVerifyError, match="messageDigest"):
        cms.unprotect(flip(blob, ct, 0), bench.emt1.enc, [bench.pki.root])


def test_tampered_compressed_data_inside_is_caught_by_gcm(bench):
    aed = cms._auth_enveloped(b"not a CompressedData", "compressed_data",
                              bench.emt1.enc.cert, "rfc5753")
    blob = acms.ContentInfo({"content_type": "authenticated_enveloped_data",
                             "content": aed}).dump()
    with pytest.raises(CmsFormatError, match="malformed CompressedData"):
        cms.decrypt(blob, bench.emt1.enc)


# --- wrong keys, roots, times ----------------------------------------------------------------


def test_wrong_recipient_is_told_so(bench, bp_bench):
    blob = cms.encrypt(CONTENT, bench.emt1.enc.cert)
    for who in (bench.emt2.enc, bench.emt1.sig, bp_bench.emt1.enc):
        with pytest.raises(CmsDecryptError, match="not encrypted for this recipient"):
            cms.decrypt(blob, who)
    protected = cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert)
    with pytest.raises(CmsDecryptError, match="not encrypted for this recipient"):
        cms.unprotect(protected, bench.emt2.enc, [bench.pki.root])


def test_untrusted_root_with_look_alike_names(bench, other_pki):
    blob = cms.sign(CONTENT, other_pki.gw.sig)   # same subject names, other keys
    with pytest.raises(CmsVerifyError, match="does not verify with the key of its issuer"):
        cms.verify(blob, [bench.pki.root])
    with pytest.raises(CmsVerifyError, match="does not verify with the key of its issuer"):
        cms.unprotect(cms.protect(CONTENT, other_pki.gw.sig, bench.emt1.enc.cert),
                      bench.emt1.enc, [bench.pki.root])


def test_untrusted_root_of_another_name(bench, tmp_path):
    foreign = TestPki.create(tmp_path / "f", "Fremd-PKI")
    blob = cms.sign(CONTENT, foreign.issue("sig", "intruder"))
    with pytest.raises(CmsVerifyError, match="does not chain to a trusted root"):
        cms.verify(blob, [bench.pki.root])
    with pytest.raises(CmsVerifyError, match="no trusted root"):
        cms.verify(blob, [])
    assert cms.verify(blob, [bench.pki.root, foreign.root])[0] == CONTENT


def test_expired_signer_certificate(bench):
    start = datetime.datetime.now(UTC) - datetime.timedelta(days=100)
    old = bench.pki.issue("sig", "old", not_before=start, days=30)
    with pytest.raises(CmsVerifyError, match=r"certificate CN=old.* expired at"):
        cms.verify(cms.sign(CONTENT, old), [bench.pki.root])
    # the whole chain is checked at one instant (shell model): 10 days after its start the
    # leaf was valid, but the sub-CA did not exist yet
    with pytest.raises(CmsVerifyError, match="Sub-CA.* is not valid before"):
        cms.verify(cms.sign(CONTENT, old), [bench.pki.root],
                   at=start + datetime.timedelta(days=10))


def test_validity_is_checked_at_the_given_time(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    later = datetime.datetime.now(UTC) + datetime.timedelta(days=3 * 365)
    with pytest.raises(CmsVerifyError, match="CN=EOPN0000000001.* expired at"):
        cms.verify(blob, [bench.pki.root], at=later)
    earlier = datetime.datetime(2001, 1, 1, tzinfo=UTC)
    with pytest.raises(CmsVerifyError, match="is not valid before"):
        cms.verify(blob, [bench.pki.root], at=earlier)


def test_end_entity_cannot_act_as_ca(bench):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("fake", key, bench.gw.sig, ca=False)
    fake = Identity(key, cert, (bench.gw.sig.cert, bench.pki.sub_ca.cert))
    with pytest.raises(CmsVerifyError, match="is not a CA"):
        cms.verify(cms.sign(CONTENT, fake), [bench.pki.root])


def test_path_length_of_the_sub_ca_is_enforced(bench):
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = Identity(mid_key, _cert("Sub-Sub-CA", mid_key, bench.pki.sub_ca, ca=True))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = Identity(key, _cert("deep", key, mid, ca=False), (mid.cert, bench.pki.sub_ca.cert))
    with pytest.raises(CmsVerifyError, match="allows 0 CA certificates below it, the chain has 1"):
        cms.verify(cms.sign(CONTENT, leaf), [bench.pki.root])


def test_encryption_certificate_cannot_sign(bench):
    with pytest.raises(CmsVerifyError, match="may not sign"):
        cms.verify(cms.sign(CONTENT, bench.gw.enc), [bench.pki.root])


def test_pinned_end_entity_as_trust_anchor(bench):
    blob = cms.sign(CONTENT, bench.gw.sig)
    assert cms.verify(blob, [bench.gw.sig.cert])[1] == bench.gw.sig.cert


# --- wrong kinds of input --------------------------------------------------------------------


def test_wrong_message_kinds_are_format_errors(bench):
    signed = cms.sign(CONTENT, bench.gw.sig)
    encrypted = cms.encrypt(CONTENT, bench.emt1.enc.cert)
    with pytest.raises(CmsFormatError, match="content type is signed_data, expected auth"):
        cms.decrypt(signed, bench.emt1.enc)
    with pytest.raises(CmsFormatError, match="content type is authenticated_enveloped_data"):
        cms.verify(encrypted, [bench.pki.root])
    with pytest.raises(CmsFormatError, match="signed content is data, expected"):
        cms.unprotect(signed, bench.emt1.enc, [bench.pki.root])
    with pytest.raises(CmsFormatError, match="not a DER/BER CMS ContentInfo"):
        cms.verify(b"hello", [bench.pki.root])
    with pytest.raises(CmsFormatError, match="not a DER/BER CMS ContentInfo"):
        cms.verify(signed + b"\x00", [bench.pki.root])   # trailing data


def test_caller_mistakes_are_type_errors(bench):
    with pytest.raises(TypeError):
        cms.verify("text", [bench.pki.root])
    with pytest.raises(TypeError):
        cms.decrypt(b"", bench.emt1)   # a Triple, not an Identity
    with pytest.raises(CmsFormatError, match="unknown kdf"):
        cms.encrypt(CONTENT, bench.emt1.enc.cert, kdf="md5")
    with pytest.raises(CmsFormatError, match="not for key agreement"):
        cms.encrypt(CONTENT, bench.emt1.sig.cert)


def test_zlib_bomb_is_refused(bench, monkeypatch):
    blob = cms.protect(bytes(5000), bench.gw.sig, bench.emt1.enc.cert, compress=True)
    monkeypatch.setattr(cms, "MAX_DECOMPRESSED", 1000)
    with pytest.raises(CmsFormatError, match="exceeds 1000 bytes"):
        cms.unprotect(blob, bench.emt1.enc, [bench.pki.root])


def test_corrupt_zlib_stream_is_a_format_error(bench):
    bad = acms.CompressedData({
        "version": "v0", "compression_algorithm": {"algorithm": "zlib"},
        "encap_content_info": {"content_type": "data",
                               "content": zlib.compress(CONTENT)[:-3]}}).dump()
    aed = cms._auth_enveloped(bad, "compressed_data", bench.emt1.enc.cert, "rfc5753")
    blob = acms.ContentInfo({"content_type": "authenticated_enveloped_data",
                             "content": aed}).dump()
    with pytest.raises(CmsFormatError, match="zlib"):
        cms.decrypt(blob, bench.emt1.enc)


# --- fuzzing: hostile input raises CmsError subclasses and nothing else ----------------------

_SAMPLES: dict = {}


def _samples(bench):
    if not _SAMPLES:
        _SAMPLES["sign"] = cms.sign(CONTENT, bench.gw.sig)
        _SAMPLES["encrypt"] = cms.encrypt(CONTENT, bench.emt1.enc.cert)
        _SAMPLES["protect"] = cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert)
        _SAMPLES["protect_z"] = cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert,
                                            compress=True)
    return _SAMPLES


def _mutate(blob: bytes, ops) -> bytes:
    b = bytearray(blob)
    for kind, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == "xor":
            b[i] ^= val or 1
        elif kind == "set":
            b[i] = val
        elif kind == "insert":
            b[i:i] = bytes([val])
        elif kind == "delete":
            del b[i:i + 1 + val % 8]
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


_ops = st.lists(st.tuples(st.sampled_from(["xor", "set", "insert", "delete", "truncate"]),
                          st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)


def _run_all(bench, blob):
    """verify, decrypt and unprotect ``blob``: each raises a CmsError or returns genuine
    content (what the unmodified samples hold)."""
    root = [bench.pki.root]
    genuine_signed = {CONTENT, *(bytes(signed_parts(_samples(bench)[k])[0]["encap_content_info"]
                                       ["content"]) for k in ("protect", "protect_z"))}
    try:
        assert cms.verify(blob, root)[0] in genuine_signed
    except CmsError:
        pass
    try:
        assert cms.decrypt(blob, bench.emt1.enc) == CONTENT
    except CmsError:
        pass
    try:
        assert cms.unprotect(blob, bench.emt1.enc, root)[0] == CONTENT
    except CmsError:
        pass


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(bench, data):
    _run_all(bench, data)


@settings(max_examples=400, deadline=None)
@given(which=st.sampled_from(["sign", "encrypt", "protect", "protect_z"]), ops=_ops)
def test_fuzz_mutated_messages(bench, which, ops):
    _run_all(bench, _mutate(_samples(bench)[which], ops))


@settings(max_examples=200, deadline=None)
@given(inner=st.binary(max_size=300),
       ctype=st.sampled_from(["signed_data", "authenticated_enveloped_data"]))
def test_fuzz_random_content_in_a_valid_wrapper(bench, inner, ctype):
    # ContentInfo header right, content random: exercises the lazily parsed inner fields
    body = acms.ContentType(ctype).dump() + b"\xa0" + _len(len(inner)) + inner
    _run_all(bench, b"\x30" + _len(len(body)) + body)


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


# --- the real openssl command ----------------------------------------------------------------


def _openssl(*args, input=None):
    return subprocess.run([OPENSSL, *map(str, args)], input=input, capture_output=True)


def _ci_of_auth_enveloped(aed_der: bytes) -> bytes:
    aed = acms.AuthEnvelopedData.load(aed_der, strict=True)
    return acms.ContentInfo({"content_type": "authenticated_enveloped_data",
                             "content": aed}).dump()


@needs_openssl
@pytest.mark.parametrize("which", ["bench", "bp_bench"])
@pytest.mark.parametrize("purpose", [[], ["-purpose", "any"]])
def test_openssl_verifies_sign(request, tmp_path, which, purpose):
    b = request.getfixturevalue(which)
    msg = tmp_path / "m.der"
    msg.write_bytes(cms.sign(CONTENT, b.gw.sig))
    r = _openssl("cms", "-verify", *purpose, "-CAfile", b.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg, "-binary")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == CONTENT
    assert b"Verification successful" in r.stderr


@needs_openssl
def test_openssl_verifies_detached_sign(bench, tmp_path):
    msg, data = tmp_path / "m.der", tmp_path / "data"
    msg.write_bytes(cms.sign(CONTENT, bench.gw.sig, detached=True))
    data.write_bytes(CONTENT)
    r = _openssl("cms", "-verify", "-CAfile", bench.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg, "-content", data, "-binary", "-out", tmp_path / "out")
    assert r.returncode == 0, r.stderr.decode()


@needs_openssl
def test_openssl_rejects_what_we_reject(bench, other_pki, tmp_path):
    msg = tmp_path / "m.der"
    msg.write_bytes(flip(cms.sign(CONTENT, bench.gw.sig), CONTENT, 0))
    r = _openssl("cms", "-verify", "-CAfile", bench.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg)
    assert r.returncode != 0 and b"content verify error" in r.stderr
    msg.write_bytes(cms.sign(CONTENT, other_pki.gw.sig))
    r = _openssl("cms", "-verify", "-CAfile", bench.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg)
    assert r.returncode != 0 and b"certificate verify error" in r.stderr


@needs_openssl
@pytest.mark.parametrize("which", ["bench", "bp_bench"])
def test_openssl_verifies_protect_and_decrypts_the_inner_message(request, tmp_path, which):
    b = request.getfixturevalue(which)
    msg, inner = tmp_path / "m.der", tmp_path / "inner.der"
    msg.write_bytes(cms.protect(CONTENT, b.gw.sig, b.emt1.enc.cert))
    r = _openssl("cms", "-verify", "-CAfile", b.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg, "-binary")
    assert r.returncode == 0, r.stderr.decode()
    # -verify writes the eContent: the DER of the AuthEnvelopedData itself
    acms.AuthEnvelopedData.load(r.stdout, strict=True)
    inner.write_bytes(_ci_of_auth_enveloped(r.stdout))
    r = _openssl("cms", "-decrypt", "-inform", "DER", "-in", inner,
                 "-recip", b.dir / "emt1" / "enc.crt.pem",
                 "-inkey", b.dir / "emt1" / "enc.key.pem")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == CONTENT


@needs_openssl
@pytest.mark.parametrize("which", ["bench", "bp_bench"])
def test_openssl_decrypts_encrypt(request, tmp_path, which):
    b = request.getfixturevalue(which)
    msg = tmp_path / "m.der"
    msg.write_bytes(cms.encrypt(CONTENT, b.emt1.enc.cert))
    r = _openssl("cms", "-decrypt", "-inform", "DER", "-in", msg,
                 "-recip", b.dir / "emt1" / "enc.crt.pem",
                 "-inkey", b.dir / "emt1" / "enc.key.pem")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == CONTENT
    # the key alone is enough: openssl tries it on every recipient entry
    r = _openssl("cms", "-decrypt", "-inform", "DER", "-in", msg,
                 "-inkey", b.dir / "emt1" / "enc.key.pem")
    assert r.returncode == 0 and r.stdout == CONTENT


@needs_openssl
def test_openssl_does_not_know_the_bsi_kdf_oid(bench, tmp_path):
    """Finding (docs/pki-and-cms.md): OpenSSL 3.0 refuses ecka-eg-X963KDF-SHA256."""
    msg = tmp_path / "m.der"
    msg.write_bytes(cms.encrypt(CONTENT, bench.emt1.enc.cert, kdf="bsi"))
    r = _openssl("cms", "-decrypt", "-inform", "DER", "-in", msg,
                 "-recip", bench.dir / "emt1" / "enc.crt.pem",
                 "-inkey", bench.dir / "emt1" / "enc.key.pem")
    assert r.returncode != 0
    assert b"kdf parameter error" in r.stderr


@needs_openssl
def test_openssl_and_compressed_protect(bench, tmp_path):
    """Finding (docs/pki-and-cms.md): openssl verifies the signature; OpenSSL 3.0.x cannot
    parse an AuthEnvelopedData with authAttrs (openssl/openssl#26101), which RFC 5083 requires
    around CompressedData. If a fixed openssl opens it, it must yield our CompressedData."""
    msg, inner = tmp_path / "m.der", tmp_path / "inner.der"
    msg.write_bytes(cms.protect(CONTENT, bench.gw.sig, bench.emt1.enc.cert, compress=True))
    r = _openssl("cms", "-verify", "-CAfile", bench.dir / "root.crt.pem", "-inform", "DER",
                 "-in", msg, "-binary")
    assert r.returncode == 0, r.stderr.decode()
    inner.write_bytes(_ci_of_auth_enveloped(r.stdout))
    r = _openssl("cms", "-decrypt", "-inform", "DER", "-in", inner,
                 "-recip", bench.dir / "emt1" / "enc.crt.pem",
                 "-inkey", bench.dir / "emt1" / "enc.key.pem")
    if r.returncode != 0:
        assert b"Field=mac" in r.stderr or b"wrong tag" in r.stderr, r.stderr.decode()
    else:
        cd = acms.CompressedData.load(r.stdout, strict=True)
        assert zlib.decompress(bytes(cd["encap_content_info"]["content"])) == CONTENT


@needs_openssl
@pytest.mark.parametrize("which", ["bench", "bp_bench"])
@pytest.mark.parametrize("keyid", [[], ["-keyid"]])
def test_openssl_encrypted_message_decrypts_with_ours(request, tmp_path, which, keyid):
    b = request.getfixturevalue(which)
    data, msg = tmp_path / "data", tmp_path / "m.der"
    data.write_bytes(CONTENT)
    r = _openssl("cms", "-encrypt", "-aes-128-gcm", *keyid, "-binary", "-outform", "DER",
                 "-in", data, "-out", msg, "-recip", b.dir / "emt1" / "enc.crt.pem",
                 "-keyopt", "ecdh_kdf_md:sha256")
    assert r.returncode == 0, r.stderr.decode()
    blob = msg.read_bytes()
    assert acms.ContentInfo.load(blob)["content_type"].native == "authenticated_enveloped_data"
    assert cms.decrypt(blob, b.emt1.enc) == CONTENT


@needs_openssl
def test_openssl_default_sha1_kdf_is_refused(bench, tmp_path):
    data, msg = tmp_path / "data", tmp_path / "m.der"
    data.write_bytes(CONTENT)
    r = _openssl("cms", "-encrypt", "-aes-128-gcm", "-binary", "-outform", "DER",
                 "-in", data, "-out", msg, "-recip", bench.dir / "emt1" / "enc.crt.pem")
    assert r.returncode == 0, r.stderr.decode()
    with pytest.raises(CmsFormatError, match="1.3.133.16.840.63.0.2 not supported"):
        cms.decrypt(msg.read_bytes(), bench.emt1.enc)


@needs_openssl
def test_openssl_signed_message_verifies_with_ours(bench, tmp_path):
    data, msg = tmp_path / "data", tmp_path / "m.der"
    data.write_bytes(CONTENT)
    gw = bench.dir / "EOPN0000000001"
    r = _openssl("cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-in", data,
                 "-out", msg, "-signer", gw / "sig.crt.pem", "-inkey", gw / "sig.key.pem",
                 "-certfile", gw / "chain.pem", "-md", "sha256")
    assert r.returncode == 0, r.stderr.decode()
    content, signer, ctype = cms.verify(msg.read_bytes(), [bench.pki.root])
    assert (content, signer, ctype) == (CONTENT, bench.gw.sig.cert, "data")
    # SKI sid, no certificates in the message: known out of band
    r = _openssl("cms", "-sign", "-keyid", "-nocerts", "-binary", "-nodetach", "-outform", "DER",
                 "-in", data, "-out", msg, "-signer", gw / "sig.crt.pem",
                 "-inkey", gw / "sig.key.pem")
    assert r.returncode == 0, r.stderr.decode()
    assert cms.verify(msg.read_bytes(), [bench.pki.root],
                      extra_certs=[bench.gw.sig.cert, bench.pki.sub_ca.cert])[0] == CONTENT


@needs_openssl
def test_openssl_reads_our_compressed_data(tmp_path):
    cd = acms.CompressedData.load(cms._compressed(CONTENT))
    msg = tmp_path / "cd.der"
    msg.write_bytes(acms.ContentInfo({"content_type": "compressed_data", "content": cd}).dump())
    r = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", msg)
    assert r.returncode == 0, r.stderr.decode()
    assert b"id-smime-ct-compressedData" in r.stdout
    assert b"zlib compression (1.2.840.113549.1.9.16.3.8)" in r.stdout
    assert b"parameter: <ABSENT>" in r.stdout
