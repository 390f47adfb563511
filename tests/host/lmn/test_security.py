"""Pairing and TLS of the wired LMN (docs/lmn-wired.md sections 5 and 6), with real crypto only."""

import datetime
import functools
import hashlib
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smgw.lmn.security import (
    PAIR_CONFIRM,
    PAIR_DONE,
    PAIR_FAIL,
    PAIR_HELLO,
    PAIR_PROOF,
    GatewayPairing,
    Identity,
    MeterPairing,
    PairingError,
    SecurityError,
    TlsEndpoint,
    TlsError,
    cert_cn,
    cert_fingerprint,
    fail_message,
    load_or_create,
    make_identity,
)

METER_ID = "0a01454d480000123456"
GW_CN = "SMGW EABC0012345678"
K = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


# Key generation is cheap but hypothesis runs hundreds of examples: make each identity once.
@functools.cache
def ident(name: str) -> Identity:
    cn = {"gw": GW_CN, "gw2": GW_CN, "meter": METER_ID, "impostor": METER_ID,
          "other": "0a01454d480000999999"}[name]
    return make_identity(cn)


def _self_signed(cn: str, curve=None, *, days_valid=(-1, 3650)) -> Identity:
    """An identity built by hand, for certificates make_identity would never make."""
    key = ec.generate_private_key(curve or ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days_valid[0]))
            .not_valid_after(now + datetime.timedelta(days=days_valid[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return Identity(key, cert)


def _cmac(key, *parts):
    c = cmac.CMAC(algorithms.AES(key))
    for p in parts:
        c.update(p)
    return c.finalize()


def _pair(gw_key=K, meter_key=K, meter=None, meter_id=METER_ID):
    gp = GatewayPairing(gw_key, ident("gw"), meter_id)
    mp = MeterPairing(meter_key, meter or ident("meter"))
    return gp, mp


# --------------------------------------------------------------------------------------------
# identities


def test_identity_certificate_properties():
    idn = make_identity(METER_ID)
    cert = x509.load_der_x509_certificate(idn.cert_der)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pub.curve.name == "brainpoolP256r1"
    assert isinstance(idn.key.curve, ec.BrainpoolP256R1)
    assert idn.cn == METER_ID == cert_cn(idn.cert_der)
    assert cert.version == x509.Version.v3
    # self-signed: issuer is the subject and the signature verifies with the certificate's key
    assert cert.issuer == cert.subject
    pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    # valid now, for about 20 years
    utc = datetime.timezone.utc
    now = datetime.datetime.now(utc)
    # the *_utc accessors are cryptography >= 42; pyproject allows 41
    start = (getattr(cert, "not_valid_before_utc", None)
             or cert.not_valid_before.replace(tzinfo=utc))
    end = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=utc)
    assert start < now
    assert end - now > datetime.timedelta(days=7300)
    assert idn.fingerprint == hashlib.sha256(idn.cert_der).hexdigest() == \
        cert_fingerprint(idn.cert_der)
    assert idn.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in idn.key_pem
    # random serials: two identities never share one
    assert make_identity(METER_ID).cert.serial_number != cert.serial_number


def test_identity_rejects_a_foreign_certificate():
    with pytest.raises(ValueError):
        Identity(ident("gw").key, ident("meter").cert)


def test_save_and_load_round_trip(tmp_path):
    idn = make_identity(GW_CN)
    d = tmp_path / "lmn"
    idn.save(d, "gateway")
    key_file = d / "gateway.key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (d / "gateway.crt.pem").read_bytes() == idn.cert_pem
    assert sorted(p.name for p in d.iterdir()) == ["gateway.crt.pem", "gateway.key.pem"]
    back = Identity.load(d, "gateway")
    assert back.cert_der == idn.cert_der
    assert back.key_pem == idn.key_pem
    # saving again replaces both files and leaves no temporary file behind
    other = make_identity(GW_CN)
    other.save(d, "gateway")
    assert Identity.load(d, "gateway").cert_der == other.cert_der
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in d.iterdir()) == ["gateway.crt.pem", "gateway.key.pem"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Identity.load(tmp_path, "missing")
    (tmp_path / "broken.key.pem").write_bytes(b"not pem")
    with pytest.raises(ValueError):
        Identity.load(tmp_path, "broken")
    (tmp_path / "mixed.key.pem").write_bytes(ident("gw").key_pem + ident("meter").cert_pem)
    with pytest.raises(ValueError):
        Identity.load(tmp_path, "mixed")
    with pytest.raises(ValueError):
        ident("gw").save(tmp_path, "../escape")


def test_load_or_create_creates_once(tmp_path):
    first = load_or_create(tmp_path, "meter-x", GW_CN)
    assert first.cn == GW_CN
    again = load_or_create(tmp_path, "meter-x", "SMGW another id")
    assert again.cert_der == first.cert_der  # an existing identity is kept: it may be pinned


# --------------------------------------------------------------------------------------------
# pairing


def test_pairing_happy_path_and_spec_formulas():
    gp, mp = _pair(meter_id="0A 01 45 4D 48 00 00 12 34 56")  # spaces and case do not matter
    hello = gp.hello()
    assert hello[0] == PAIR_HELLO and hello[17:] == ident("gw").cert_der
    assert gp.hello() == hello  # a resend, same nonce
    proof = mp.on_message(hello)
    assert proof[0] == PAIR_PROOF
    gw_nonce, m_nonce, mac_m = hello[1:17], proof[1:17], proof[17:33]
    gw_der, m_der = ident("gw").cert_der, ident("meter").cert_der
    sha = lambda b: hashlib.sha256(b).digest()  # noqa: E731
    assert mac_m == _cmac(K, b"SMGW-LMN-PAIR-M", gw_nonce, m_nonce, sha(gw_der), sha(m_der))
    assert proof[33:] == m_der
    confirm = gp.on_message(proof)
    assert confirm[0] == PAIR_CONFIRM
    assert confirm[1:] == _cmac(K, b"SMGW-LMN-PAIR-G", m_nonce, gw_nonce, sha(m_der), sha(gw_der))
    assert not gp.done and gp.meter_cert_der is None  # nothing pinned before PAIR_DONE
    done = mp.on_message(confirm)
    assert done == bytes((PAIR_DONE,))
    assert gp.on_message(done) is None
    assert gp.done and mp.done
    k_op = _cmac(K, b"SMGW-LMN-OPK", gw_nonce, m_nonce)
    assert gp.operational_key == mp.operational_key == k_op
    assert len(k_op) == 16 and k_op != K
    assert gp.key_id == mp.key_id == hashlib.sha256(k_op).hexdigest()[:8]
    assert gp.meter_cert_der == m_der
    assert mp.gateway_cert_der == gw_der


def test_each_pairing_has_fresh_nonces_and_keys():
    keys = set()
    for _ in range(3):
        gp, mp = _pair()
        gp.on_message(mp.on_message(gp.on_message(mp.on_message(gp.hello()))))
        keys.add(gp.operational_key)
    assert len(keys) == 3


def test_operational_key_repairs():
    # a re-pairing uses K_op in place of K (section 5, last paragraph)
    gp, mp = _pair()
    gp.on_message(mp.on_message(gp.on_message(mp.on_message(gp.hello()))))
    gp2 = GatewayPairing(gp.operational_key, ident("gw2"), METER_ID)
    mp2 = MeterPairing(mp.operational_key, ident("meter"))
    gp2.on_message(mp2.on_message(gp2.on_message(mp2.on_message(gp2.hello()))))
    assert gp2.done and mp2.gateway_cert_der == ident("gw2").cert_der


def test_wrong_pairing_key_is_bad_mac_and_nothing_pinned():
    gp, mp = _pair(meter_key=bytes(16))
    proof = mp.on_message(gp.hello())
    with pytest.raises(PairingError) as ei:
        gp.on_message(proof)
    assert ei.value.code == "bad_mac" and "MAC" in ei.value.reason and "Zähler" in ei.value.reason
    assert isinstance(ei.value, SecurityError)
    assert not gp.done
    assert gp.meter_cert_der is None and gp.operational_key is None and gp.key_id is None
    # the exchange is over: the same proof again is unexpected, not a second chance
    with pytest.raises(PairingError) as ei:
        gp.on_message(proof)
    assert ei.value.code == "unexpected"
    assert gp.fail_message("bad_mac") == bytes((PAIR_FAIL, 1))


@pytest.mark.parametrize("where", ["cert", "nonce", "mac"])
def test_tampered_proof_is_bad_mac(where):
    gp, mp = _pair()
    proof = bytearray(mp.on_message(gp.hello()))
    i = {"cert": len(proof) - 40, "nonce": 5, "mac": 20}[where]
    proof[i] ^= 0x01
    with pytest.raises(PairingError) as ei:
        gp.on_message(bytes(proof))
    assert ei.value.code == "bad_mac"
    assert gp.meter_cert_der is None


def test_swapped_meter_certificate_is_bad_mac():
    # a man in the middle replaces the meter's certificate with his own (right CN)
    gp, mp = _pair()
    proof = mp.on_message(gp.hello())
    forged = proof[:33] + ident("impostor").cert_der
    with pytest.raises(PairingError) as ei:
        gp.on_message(forged)
    assert ei.value.code == "bad_mac"


def test_replayed_proof_is_bad_mac():
    gp, mp = _pair()
    proof = mp.on_message(gp.hello())
    gp_new = GatewayPairing(K, ident("gw"), METER_ID)
    gp_new.hello()  # a new gateway nonce
    with pytest.raises(PairingError) as ei:
        gp_new.on_message(proof)
    assert ei.value.code == "bad_mac"
    assert gp_new.meter_cert_der is None


def test_replayed_confirm_is_bad_mac():
    gp, mp = _pair()
    hello = gp.hello()
    confirm = gp.on_message(mp.on_message(hello))
    mp_new = MeterPairing(K, ident("meter"))
    mp_new.on_message(hello)  # the same HELLO again, but the meter's nonce is new
    with pytest.raises(PairingError) as ei:
        mp_new.on_message(confirm)
    assert ei.value.code == "bad_mac"
    assert mp_new.gateway_cert_der is None and mp_new.operational_key is None


def test_wrong_cn_is_bad_cert():
    gp, mp = _pair(meter=ident("other"))
    with pytest.raises(PairingError) as ei:
        gp.on_message(mp.on_message(gp.hello()))
    assert ei.value.code == "bad_cert" and "Zertifikat des Zählers" in ei.value.reason
    assert gp.meter_cert_der is None
    assert fail_message(ei.value.code) == bytes((PAIR_FAIL, 2))


def test_meter_certificate_on_another_curve_is_bad_cert():
    gp, mp = _pair(meter=_self_signed(METER_ID, ec.SECP256R1()))
    with pytest.raises(PairingError) as ei:
        gp.on_message(mp.on_message(gp.hello()))
    assert ei.value.code == "bad_cert" and "brainpoolP256r1" in ei.value.reason


def test_expired_meter_certificate_is_bad_cert():
    gp, mp = _pair(meter=_self_signed(METER_ID, days_valid=(-30, -1)))
    with pytest.raises(PairingError) as ei:
        gp.on_message(mp.on_message(gp.hello()))
    assert ei.value.code == "bad_cert" and "abgelaufen" in ei.value.reason


def test_tampered_confirm_is_bad_mac_on_the_meter():
    gp, mp = _pair()
    confirm = bytearray(gp.on_message(mp.on_message(gp.hello())))
    confirm[-1] ^= 0x80
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes(confirm))
    assert ei.value.code == "bad_mac" and "Gateway" in ei.value.reason
    assert not mp.done and mp.gateway_cert_der is None and mp.operational_key is None


def test_hello_with_junk_certificate_is_bad_cert_on_the_meter():
    mp = MeterPairing(K, ident("meter"))
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes((PAIR_HELLO,)) + bytes(16) + b"\x30\x03\x02\x01\x00")
    assert ei.value.code == "bad_cert"


def test_hello_certificate_with_trailing_bytes_is_bad_cert():
    mp = MeterPairing(K, ident("meter"))
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes((PAIR_HELLO,)) + bytes(16) + ident("gw").cert_der + b"\x00")
    assert ei.value.code == "bad_cert"


def test_unexpected_messages():
    gp = GatewayPairing(K, ident("gw"), METER_ID)
    with pytest.raises(PairingError) as ei:
        gp.on_message(bytes((PAIR_DONE,)))  # before HELLO
    assert ei.value.code == "unexpected"

    gp, mp = _pair()
    gp.hello()
    with pytest.raises(PairingError) as ei:
        gp.on_message(bytes((PAIR_DONE,)))  # DONE before CONFIRM
    assert ei.value.code == "unexpected"

    mp = MeterPairing(K, ident("meter"))
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes((PAIR_CONFIRM,)) + bytes(16))  # CONFIRM before HELLO
    assert ei.value.code == "unexpected"

    gp, mp = _pair()
    hello = gp.hello()
    mp.on_message(hello)
    with pytest.raises(PairingError) as ei:
        mp.on_message(hello)  # a second HELLO in the same exchange
    assert ei.value.code == "unexpected"

    gp, mp = _pair()
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes((0x42,)) + bytes(20))  # unknown type
    assert ei.value.code == "unexpected"
    assert fail_message("unexpected") == bytes((PAIR_FAIL, 3))

    gp, mp = _pair()
    gp.on_message(mp.on_message(gp.on_message(mp.on_message(gp.hello()))))
    with pytest.raises(PairingError) as ei:
        gp.on_message(bytes((PAIR_DONE,)))  # after done
    assert ei.value.code == "unexpected"
    assert gp.done  # a stray message after the end does not undo the pairing


def test_malformed_messages():
    gp, mp = _pair()
    hello = gp.hello()
    for bad in (b"", bytes((PAIR_PROOF,)) + bytes(32), bytes((PAIR_PROOF,)) + bytes(1100)):
        g = GatewayPairing(K, ident("gw"), METER_ID)
        g.hello()
        with pytest.raises(PairingError) as ei:
            g.on_message(bad)
        assert ei.value.code == "malformed"
    with pytest.raises(PairingError) as ei:
        MeterPairing(K, ident("meter")).on_message(bytes((PAIR_HELLO,)) + bytes(16))
    assert ei.value.code == "malformed"
    mp.on_message(hello)
    with pytest.raises(PairingError) as ei:
        mp.on_message(bytes((PAIR_CONFIRM,)) + bytes(15))
    assert ei.value.code == "malformed"
    with pytest.raises(PairingError) as ei:
        MeterPairing(K, ident("meter")).on_message("not bytes")  # type: ignore[arg-type]
    assert ei.value.code == "malformed"


def test_pair_fail_from_the_peer():
    gp, mp = _pair()
    gp.hello()
    with pytest.raises(PairingError) as ei:
        gp.on_message(fail_message("bad_mac"))
    assert ei.value.code == "peer_fail" and ei.value.peer_reason == 1
    assert "Zähler hat die Paarung abgebrochen" in ei.value.reason
    with pytest.raises(PairingError) as ei:
        mp.on_message(fail_message(2))
    assert ei.value.code == "peer_fail" and ei.value.peer_reason == 2
    assert "Gateway" in ei.value.reason


def test_constructor_checks():
    with pytest.raises(ValueError):
        GatewayPairing(b"short", ident("gw"), METER_ID)
    with pytest.raises(ValueError):
        GatewayPairing(K, ident("gw"), "not hex")
    with pytest.raises(ValueError):
        MeterPairing(bytes(17), ident("meter"))


# Fuzzing: anything off the bus yields a message or a PairingError, never another exception.

_FUZZ = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _valid_messages():
    gp, mp = _pair()
    hello = gp.hello()
    proof = mp.on_message(hello)
    confirm = gp.on_message(proof)
    done = mp.on_message(confirm)
    return [hello, proof, confirm, done, fail_message(1)]


def _mutated():
    def mutate(args):
        base, flips, cut, extra = args
        b = bytearray(base)
        for pos, val in flips:
            if b:
                b[pos % len(b)] ^= val
        if cut is not None:
            b = b[:cut]
        return bytes(b) + extra
    return st.tuples(
        st.sampled_from(_valid_messages()),
        st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=4),
        st.none() | st.integers(0, 1100),
        st.binary(max_size=8),
    ).map(mutate)


_junk = (st.binary(max_size=1100)
         | st.tuples(st.sampled_from([1, 2, 3, 4, 15]), st.binary(max_size=600))
         .map(lambda t: bytes((t[0],)) + t[1])
         | st.deferred(_mutated))


def _only_pairing_errors(handler, msg):
    try:
        out = handler(msg)
    except PairingError as e:
        assert e.code in {"bad_mac", "bad_cert", "unexpected", "malformed", "peer_fail"}
        assert isinstance(e.reason, str) and e.reason
        return None
    return out


@_FUZZ
@given(msgs=st.lists(_junk, min_size=1, max_size=3))
def test_fuzz_gateway_on_message(msgs):
    gp = GatewayPairing(K, ident("gw"), METER_ID)
    gp.hello()
    for m in msgs:
        _only_pairing_errors(gp.on_message, m)
    # nothing from a fuzzer can carry a valid MAC, so nothing was pinned
    assert gp.meter_cert_der is None and gp.operational_key is None


@_FUZZ
@given(msgs=st.lists(_junk, min_size=1, max_size=3))
def test_fuzz_meter_on_message(msgs):
    mp = MeterPairing(K, ident("meter"))
    for m in msgs:
        _only_pairing_errors(mp.on_message, m)
    assert mp.gateway_cert_der is None and mp.operational_key is None


@_FUZZ
@given(msg=_junk)
def test_fuzz_meter_after_hello(msg):
    gp, mp = _pair()
    mp.on_message(gp.hello())
    _only_pairing_errors(mp.on_message, msg)
    assert mp.gateway_cert_der is None


@_FUZZ
@given(msg=_junk)
def test_fuzz_gateway_waiting_for_done(msg):
    gp, mp = _pair()
    gp.on_message(mp.on_message(gp.hello()))
    out = _only_pairing_errors(gp.on_message, msg)
    # only the one exact PAIR_DONE completes the pairing
    assert out is None
    assert gp.done == (msg == bytes((PAIR_DONE,)))


# --------------------------------------------------------------------------------------------
# TLS


def _pump(a: TlsEndpoint, b: TlsEndpoint, chunk: int | None = None, rounds: int = 200):
    """Move bytes both ways, `chunk` bytes per feed, until neither side has anything to send."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.pending_output()
            if not data:
                continue
            moved = True
            step = chunk or len(data)
            for i in range(0, len(data), step):
                dst.feed(data[i:i + step])
        if not moved:
            return
    raise AssertionError("TLS did not settle")


def _endpoints(meter="meter", gw="gw", pin_meter="meter", pin_gw="gw", peer_cn=METER_ID):
    client = TlsEndpoint("client", ident(gw), ident(pin_meter).cert_der, peer_cn=peer_cn)
    server = TlsEndpoint("server", ident(meter), ident(pin_gw).cert_der)
    return client, server


@pytest.mark.parametrize("chunk", [None, 1, 7, 1023])
def test_tls_handshake_data_and_close(chunk):
    client, server = _endpoints()
    client.start()
    _pump(client, server, chunk)
    assert client.handshake_done and server.handshake_done
    assert client.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert client.version == "TLSv1.2"

    request = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01" + bytes(range(256)) * 3
    client.send(request)
    _pump(client, server, chunk)
    assert server.receive() == request
    assert server.receive() == b""
    answer = os.urandom(5000)  # more than one I-frame, less than one TLS record
    server.send(answer)
    server.send(b"and more")
    _pump(client, server, chunk)
    assert client.receive() == answer + b"and more"

    client.close()
    _pump(client, server, chunk)
    assert server.closed and not client.closed
    server.close()
    _pump(client, server, chunk)
    assert client.closed
    with pytest.raises(TlsError):
        client.send(b"late")


def test_tls_impostor_meter_is_rejected():
    # same CN as the paired meter, but another key and certificate
    client, server = _endpoints(meter="impostor")
    client.start()
    with pytest.raises(TlsError) as ei:
        _pump(client, server)
    err = ei.value
    assert err.code == "bad_cert"
    assert "Zertifikat des Zählers" in err.reason and "certificate verify failed" in err.reason
    assert not client.handshake_done
    with pytest.raises(TlsError) as again:
        client.feed(b"")
    assert again.value is err  # the endpoint stays dead
    with pytest.raises(TlsError):
        client.send(b"x")
    # the client's alert tells the meter why
    with pytest.raises(TlsError) as ei:
        server.feed(client.pending_output())
    assert ei.value.code == "rejected"
    assert "Gateway lehnt das Zertifikat des Zählers ab" in ei.value.reason
    assert not server.handshake_done


def test_tls_unpinned_gateway_is_rejected_by_the_meter():
    client, server = _endpoints(gw="gw2")
    client.start()
    with pytest.raises(TlsError) as ei:
        _pump(client, server)
    assert ei.value.code == "bad_cert" and "Zertifikat des Gateways" in ei.value.reason
    assert not server.handshake_done
    with pytest.raises(TlsError) as ei:
        client.feed(server.pending_output())
    assert ei.value.code == "rejected" and "Zähler lehnt das Zertifikat des Gateways ab" \
        in ei.value.reason
    assert not client.handshake_done


def test_tls_expired_meter_certificate_is_rejected():
    old = _self_signed(METER_ID, days_valid=(-30, -1))
    client = TlsEndpoint("client", ident("gw"), old.cert_der)
    server = TlsEndpoint("server", old, ident("gw").cert_der)
    client.start()
    with pytest.raises(TlsError) as ei:
        _pump(client, server)
    assert ei.value.code == "bad_cert" and "expired" in ei.value.reason
    assert not client.handshake_done


def test_tls_certificate_issued_by_the_pinned_one_is_rejected():
    # A meter whose pinned self-signed certificate is a CA (some are made that way) could
    # present any certificate issued with its key: OpenSSL verifies that chain to the pinned
    # anchor, the exact comparison with the pinned bytes rejects it.
    ca_key = ec.generate_private_key(ec.BrainpoolP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, METER_ID)])
    now = datetime.datetime.now(datetime.timezone.utc)

    def build(subject, key, ca):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=10))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))

    pinned = build(ca_name, ca_key, True)
    leaf_key = ec.generate_private_key(ec.BrainpoolP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meter"),
                           x509.NameAttribute(NameOID.COMMON_NAME, METER_ID)])
    leaf = build(leaf_name, leaf_key, False)
    client = TlsEndpoint("client", ident("gw"),
                         pinned.public_bytes(serialization.Encoding.DER), peer_cn=METER_ID)
    server = TlsEndpoint("server", Identity(leaf_key, leaf), ident("gw").cert_der)
    client.start()
    with pytest.raises(TlsError) as ei:
        _pump(client, server)
    assert ei.value.code == "bad_cert"
    assert ei.value.reason == "Zertifikat des Zählers stimmt nicht mit dem hinterlegten überein"
    assert not client.handshake_done


def test_tls_wrong_peer_cn_is_rejected():
    client, server = _endpoints(peer_cn="0a01454d480000999999")
    client.start()
    with pytest.raises(TlsError) as ei:
        _pump(client, server)
    assert ei.value.code == "bad_cert" and "CN" in ei.value.reason
    assert not client.handshake_done


def test_tls_peer_cn_ignores_case_and_spaces_like_pairing():
    client, server = _endpoints(peer_cn="0A 01 45 4D 48 00 00 12 34 56")
    client.start()
    _pump(client, server)
    assert client.handshake_done


def test_tls_api_misuse_and_bad_pin():
    with pytest.raises(ValueError):
        TlsEndpoint("peer", ident("gw"), ident("meter").cert_der)
    with pytest.raises(TlsError) as ei:
        TlsEndpoint("client", ident("gw"), b"\x30\x00garbage")
    assert ei.value.code == "bad_cert"
    client, server = _endpoints()
    with pytest.raises(TlsError) as ei:
        client.send(b"too early")
    assert ei.value.code == "unexpected"
    server.start()  # a no-op for the server: the client speaks first
    assert server.pending_output() == b""


def test_tls_garbage_from_the_peer_is_a_tls_error():
    client, server = _endpoints()
    client.start()
    client.pending_output()
    with pytest.raises(TlsError) as ei:
        client.feed(b"\x16\x03\x03\x00\x05hello-not-tls" * 3)
    assert ei.value.code == "tls" and ei.value.reason.startswith("TLS-Handshake fehlgeschlagen")


def test_pairing_then_tls_with_the_pinned_certificates():
    gw, meter = ident("gw"), ident("meter")
    gp = GatewayPairing(K, gw, METER_ID)
    mp = MeterPairing(K, meter)
    msg = gp.hello()
    while not (gp.done and mp.done):
        msg = mp.on_message(msg)
        msg = gp.on_message(msg)
    client = TlsEndpoint("client", gw, gp.meter_cert_der, peer_cn=METER_ID)
    server = TlsEndpoint("server", meter, mp.gateway_cert_der)
    client.start()
    _pump(client, server, chunk=1023)  # cut as the link layer cuts it into I-frames
    assert client.handshake_done and server.handshake_done
    client.send(b"GetList.Req")
    _pump(client, server, chunk=1023)
    assert server.receive() == b"GetList.Req"
    server.send(b"GetList.Res")
    _pump(client, server, chunk=1023)
    assert client.receive() == b"GetList.Res"


@settings(max_examples=100, deadline=None)
@given(role=st.sampled_from(["client", "server"]),
       chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4))
def test_fuzz_tls_feed(role, chunks):
    own, pin = ("gw", "meter") if role == "client" else ("meter", "gw")
    ep = TlsEndpoint(role, ident(own), ident(pin).cert_der)
    ep.start()
    for c in chunks:
        try:
            ep.feed(c)
        except TlsError as e:
            assert e.code in {"tls", "rejected", "bad_cert"} and e.reason
            break
    assert not ep.handshake_done
