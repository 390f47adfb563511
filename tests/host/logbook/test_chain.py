"""The calibration log's chain and signatures (smgw.logbook.chain), without any database."""

import dataclasses
import hashlib
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from smgw.logbook import chain as ch
from smgw.logbook.chain import Head, Signer, Verifier

GW = "EPPC0012345678"


@dataclasses.dataclass(frozen=True)
class E:
    seq: int
    ts_ms: int
    time_valid: bool
    event_id: int
    level: str
    status: str
    params: dict
    text: str
    hash: bytes = b""
    sig: bytes = b""
    prev_hash: bytes | None = None


@pytest.fixture(scope="module")
def signer():
    return Signer.generate(GW)


@pytest.fixture(scope="module")
def other():
    return Signer.generate("someone else")


def build(signer, n, gateway_id=GW, with_prev=False):
    """n chained, signed entries and the head, as the store writes them."""
    out = []
    prev = ch.genesis(gateway_id)
    for seq in range(1, n + 1):
        e = E(seq, 1_767_225_600_000 + seq * 1000, seq % 7 != 0, 10067, "INFO", "successful",
              {"comm_profile": "ntp-1", "n": seq}, f"Uhrzeit synchronisiert ({seq}), ü")
        h = ch.chain_hash(prev, ch.entry_bytes(e))
        out.append(dataclasses.replace(e, hash=h, sig=signer.sign(h),
                                       prev_hash=prev if with_prev else None))
        prev = h
    head = Head(n, prev, signer.sign(ch.head_digest(gateway_id, n, prev)))
    return out, head


def codes(result):
    return sorted({p.code for p in result.problems})


# ---------------------------------------------------------------- format


def test_canonical_json_is_sorted_compact_utf8():
    assert ch.canonical_json({"b": 1, "a": "ä\"\n"}) == '{"a":"ä\\"\\n","b":1}'
    assert ch.canonical_json([1, True, None]) == "[1,true,null]"


def test_canonical_bytes_golden_vector():
    b = ch.canonical_bytes(1, 1767225600000, True, 10067, "INFO", "successful",
                           {"z": 2, "a": "ü"}, "Text")
    assert b == ('[1,1767225600000,true,10067,"INFO","successful",{"a":"ü","z":2},"Text"]'
                 .encode("utf-8"))


def test_genesis_and_chain_hash_follow_the_documented_formulas():
    assert ch.genesis(GW) == hashlib.sha256(b"SMGW-EICHLOG-v1" + GW.encode()).digest()
    prev = b"\x01" * 32
    assert ch.chain_hash(prev, b"abc") == hashlib.sha256(prev + b"abc").digest()
    h = b"\x02" * 32
    assert ch.head_digest(GW, 5, h) == hashlib.sha256(
        b"SMGW-EICHLOG-HEAD-v1\x00" + GW.encode() + b"\x00" + (5).to_bytes(8, "big") + h
    ).digest()
    with pytest.raises(ValueError):
        ch.head_digest(GW, 1, b"short")


# ---------------------------------------------------------------- keys


def test_load_or_create_writes_key_0600_and_certificate(tmp_path):
    s = Signer.load_or_create(tmp_path / "keys", GW)
    key_file = tmp_path / "keys" / "log-sign.key.pem"
    crt_file = tmp_path / "keys" / "log-sign.crt.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(crt_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        f"SMGW {GW} Log-Signatur"
    assert cert.public_key().curve.name == "brainpoolP256r1"
    assert crt_file.read_bytes() == s.cert_pem
    # the same key comes back, never a new one
    again = Signer.load_or_create(tmp_path / "keys", "another id")
    assert again.cert_pem == s.cert_pem
    d = hashlib.sha256(b"x").digest()
    assert Verifier(crt_file.read_bytes()).verify(d, again.sign(d))


def test_sign_and_verify_with_cert_public_key_and_key_object(signer, other):
    d = hashlib.sha256(b"entry").digest()
    sig = signer.sign(d)
    pub_pem = signer.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    for v in (Verifier(signer.cert_pem), Verifier(signer.cert_pem.decode()), Verifier(pub_pem),
              Verifier(signer.public_key), Verifier(signer.cert), signer.verifier()):
        assert v.verify(d, sig)
        assert not v.verify(hashlib.sha256(b"other").digest(), sig)
        assert not v.verify(d, b"\x30\x00")
    assert not Verifier(other.cert_pem).verify(d, sig)
    with pytest.raises(ValueError):
        signer.sign(b"not a digest")
    with pytest.raises(ValueError):
        Verifier(b"garbage")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_a_third_party_verifies_an_entry_signature_with_openssl(tmp_path, signer):
    """The signature is plain ECDSA over h_n as the digest: openssl checks it as it is."""
    entries, head = build(signer, 2)
    e = entries[1]
    (tmp_path / "h.bin").write_bytes(e.hash)
    (tmp_path / "sig.der").write_bytes(e.sig)
    (tmp_path / "pub.pem").write_bytes(signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem",
                        "-in", "h.bin", "-sigfile", "sig.der"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # and recomputes h_n from h_{n-1} and the documented bytes
    assert hashlib.sha256(entries[0].hash + ch.entry_bytes(e)).digest() == e.hash


# ---------------------------------------------------------------- verify


def test_intact_chain_verifies(signer):
    entries, head = build(signer, 20)
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert r.ok and r.checked == 20 and r.problems == [] and r.head_seq == 20
    assert ch.verify(entries, head, signer.verifier(), GW, signatures=False).ok


def test_empty_log_with_its_head_verifies(signer):
    h0 = ch.genesis(GW)
    head = Head(0, h0, signer.sign(ch.head_digest(GW, 0, h0)))
    assert ch.verify([], head, signer.verifier(), GW).ok


def test_edited_entry_is_a_hash_problem_at_that_entry_only(signer):
    entries, head = build(signer, 10)
    entries[4] = dataclasses.replace(entries[4], text="geändert")
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert not r.ok
    assert [(p.seq, p.code) for p in r.problems] == [(5, "hash")]


def test_deleted_entry_is_a_gap(signer):
    entries, head = build(signer, 10)
    del entries[3]
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert (5, "gap") in [(p.seq, p.code) for p in r.problems]
    assert "entry 4 missing" in str(r.problems[0])


def test_deleted_first_entry_is_found(signer):
    entries, head = build(signer, 5)
    r = ch.verify(entries[1:], head, signer.verifier(), GW)
    assert (2, "gap") in [(p.seq, p.code) for p in r.problems]


def test_reordered_entries(signer):
    entries, head = build(signer, 6)
    entries[2], entries[3] = entries[3], entries[2]
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert "order" in codes(r)


def test_renumbered_entries_break_the_hashes(signer):
    entries, head = build(signer, 6)
    a, b = entries[2], entries[3]
    entries[2] = dataclasses.replace(b, seq=3)
    entries[3] = dataclasses.replace(a, seq=4)
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert {p.seq for p in r.problems if p.code == "hash"} >= {3, 4}


def test_cut_tail_is_truncated(signer):
    entries, head = build(signer, 10)
    r = ch.verify(entries[:7], head, signer.verifier(), GW)
    assert codes(r) == ["truncated"]
    assert "ends at entry 7" in r.problems[0].text and "entry 10" in r.problems[0].text


def test_everything_deleted_is_truncated(signer):
    _, head = build(signer, 3)
    assert codes(ch.verify([], head, signer.verifier(), GW)) == ["truncated"]


def test_bad_signature(signer, other):
    entries, head = build(signer, 5)
    entries[2] = dataclasses.replace(entries[2], sig=other.sign(entries[2].hash))
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert [(p.seq, p.code) for p in r.problems] == [(3, "signature")]
    # without signature checks the chain up to the signed head still holds
    assert ch.verify(entries, head, signer.verifier(), GW, signatures=False).ok


def test_re_signed_forgery_breaks_the_link_to_the_next_entry(signer, other):
    entries, head = build(signer, 5, with_prev=True)
    e = dataclasses.replace(entries[1], text="gefälscht")
    h = ch.chain_hash(e.prev_hash, ch.entry_bytes(e))
    entries[1] = dataclasses.replace(e, hash=h, sig=other.sign(h))
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert (2, "signature") in [(p.seq, p.code) for p in r.problems]
    assert (3, "chain") in [(p.seq, p.code) for p in r.problems]


def test_wrong_key_is_one_problem_not_one_per_entry(signer, other):
    entries, head = build(signer, 50)
    r = ch.verify(entries, head, other.verifier(), GW)
    assert codes(r) == ["key"] and len(r.problems) == 1 and r.head_seq is None


def test_head_missing_or_forged(signer, other):
    entries, head = build(signer, 5)
    r = ch.verify(entries, None, signer.verifier(), GW)
    assert codes(r) == ["head"]
    forged = Head(head.seq, head.hash, other.sign(ch.head_digest(GW, head.seq, head.hash)))
    assert codes(ch.verify(entries, forged, signer.verifier(), GW)) == ["head"]
    # a head that is older than the log
    old = Head(3, entries[2].hash, signer.sign(ch.head_digest(GW, 3, entries[2].hash)))
    r = ch.verify(entries, old, signer.verifier(), GW)
    assert codes(r) == ["head"] and "after the signed head" in r.problems[0].text


def test_chain_of_another_gateway_does_not_verify(signer):
    entries, head = build(signer, 3, gateway_id="OTHER")
    r = ch.verify(entries, head, signer.verifier(), GW)
    assert not r.ok and "hash" in codes(r)
    entries, head = build(signer, 3, gateway_id="OTHER", with_prev=True)
    assert "chain" in codes(ch.verify(entries, head, signer.verifier(), GW))


def test_partial_selection_verifies_with_prev_hashes(signer):
    entries, head = build(signer, 10, with_prev=True)
    part = entries[3:6]
    assert ch.verify(part, head, signer.verifier(), GW, complete=False).ok
    sparse = [entries[1], entries[4], entries[8]]
    assert ch.verify(sparse, head, signer.verifier(), GW, complete=False,
                     contiguous=False).ok
    assert codes(ch.verify(sparse, head, signer.verifier(), GW, complete=False)) == ["gap"]


def test_problem_list_is_capped(signer):
    entries, head = build(signer, 30)
    entries = [dataclasses.replace(e, text="x") for e in entries]
    r = ch.verify(entries, head, signer.verifier(), GW, max_problems=10)
    assert len(r.problems) == 11 and r.problems[-1].code == "more"
    assert "20 further" in r.problems[-1].text
