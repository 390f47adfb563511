"""Known-answer tests: each passes, and fails when its published vector is corrupted."""

from __future__ import annotations

import random

import pytest

from smgw.opstate import Cause
from smgw.selftest import kat


def _flip_hex(h: str) -> str:
    # change the last hex digit: a one-bit-ish corruption of the expected answer
    return h[:-1] + ("0" if h[-1] != "0" else "1")


@pytest.mark.parametrize("fn", kat.CHECKS, ids=lambda f: f.__name__)
def test_every_check_passes_on_this_machine(fn):
    c = fn()
    assert c.ok, c.detail
    assert c.code.startswith(("ST-KAT-", "ST-PCT-", "ST-RNG-"))
    assert c.cause is None and c.severity is None
    assert c.ms >= 0


# (check, vector constant, how to corrupt it)
CORRUPTIONS = {
    "sha256": (kat.sha256, "SHA256_VECTORS",
               lambda v: [v[0], (v[1][0], _flip_hex(v[1][1]))]),
    "sha384": (kat.sha384, "SHA384_VECTORS", lambda v: [(v[0][0] + b"!", v[0][1])]),
    "aes128-ecb": (kat.aes128, "AES_ECB_VECTORS",
                   lambda v: [(v[0][0], v[0][1], _flip_hex(v[0][2])), v[1]]),
    "aes256-ecb": (kat.aes256, "AES_ECB_VECTORS",
                   lambda v: [v[0], (v[1][0], v[1][1], _flip_hex(v[1][2]))]),
    "aes128-cbc": (kat.aes128, "AES_CBC_VECTORS",
                   lambda v: [(v[0][0], v[0][1], _flip_hex(v[0][2])), v[1]]),
    "aes256-cbc-iv": (kat.aes256, "AES_CBC_VECTORS",
                      lambda v: [v[0], (v[1][0], _flip_hex(v[1][1]), v[1][2])]),
    "aes128-ctr": (kat.aes128, "AES_CTR_VECTORS",
                   lambda v: [(v[0][0], v[0][1], "00" + v[0][2][2:])]),
    "gcm-tag": (kat.aes_gcm, "AES_GCM_VECTORS",
                lambda v: [v[0], (*v[1][:5], _flip_hex(v[1][5]))]),
    "gcm-aad": (kat.aes_gcm, "AES_GCM_VECTORS",
                lambda v: [v[0], (*v[1][:3], "00" + v[1][3][2:], *v[1][4:])]),
    "cmac": (kat.aes_cmac, "CMAC_VECTORS", lambda v: [*v[:3], (64, _flip_hex(v[3][1]))]),
    "cmac-key": (kat.aes_cmac, "CMAC_KEY", _flip_hex),
    "ecdsa-r": (kat.ecdsa_p256, "ECDSA_P256_SHA256_VECTORS",
                lambda v: [(v[0][0], _flip_hex(v[0][1]), v[0][2]), v[1]]),
    "ecdsa-msg": (kat.ecdsa_p256, "ECDSA_P256_SHA256_VECTORS",
                  lambda v: [v[0], (b"tests", *v[1][1:])]),
    "ecdsa-key": (kat.ecdsa_p256, "ECDSA_P256_KEY",
                  lambda k: {**k, "x": _flip_hex(k["x"])}),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_vector_fails_with_its_code(monkeypatch, name):
    fn, const, corrupt = CORRUPTIONS[name]
    good = fn()
    monkeypatch.setattr(kat, const, corrupt(getattr(kat, const)))
    bad = fn()
    assert not bad.ok
    assert bad.code == good.code
    assert bad.cause == Cause.CRYPTO_SELFTEST
    assert bad.severity == "severe"
    assert bad.detail


def test_a_broken_primitive_is_a_failure_not_a_crash(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("engine gone")
    monkeypatch.setattr(kat.hashlib, "new", boom)
    c = kat.sha256()
    assert not c.ok and "engine gone" in c.detail


def test_brainpool_pct_fails_when_verification_is_broken(monkeypatch):
    from cryptography.hazmat.primitives.asymmetric import ec

    class FakeKey:
        def sign(self, data, alg):
            return b"\x30\x06\x02\x01\x01\x02\x01\x01"

        def public_key(self):
            return self

        def verify(self, sig, data, alg):
            return None  # accepts anything

    monkeypatch.setattr(ec, "generate_private_key", lambda curve: FakeKey())
    c = kat.ecdsa_brainpool_pct()
    assert not c.ok and "changed message" in c.detail


# ============================================================================ RNG health

def test_cutoffs_follow_sp800_90b():
    # 90B Table 2 (non-binary, W = 512): H = 8 and alpha = 2^-20 give cutoff 13
    assert kat.apt_cutoff(8, 20) == 13
    # 90B §4.4.1 example: H = 2, alpha = 2^-20 -> C = 1 + ceil(20 / 2) = 11
    assert kat.rct_cutoff(2, 20) == 11
    assert (kat.RCT_CUTOFF, kat.APT_CUTOFF) == (6, 19)


def test_stuck_generator_fails_the_repetition_count_test():
    c = kat.rng_repetition_count(lambda n: b"\x5a" * n)
    assert not c.ok and c.code == "ST-RNG-RCT" and c.cause == Cause.CRYPTO_SELFTEST
    assert "ending at sample 5" in c.detail


def test_stuck_generator_fails_the_adaptive_proportion_test():
    c = kat.rng_adaptive_proportion(lambda n: b"\x5a" * n)
    assert not c.ok and c.code == "ST-RNG-APT"


def test_biased_generator_fails_the_adaptive_proportion_test():
    # 16 equally likely values: no long runs, but each value ~32 times per 512-sample window
    rnd = random.Random(7)
    source = lambda n: bytes(rnd.randrange(16) for _ in range(n))  # noqa: E731
    assert kat.repetition_count(source(4096)) is None
    c = kat.rng_adaptive_proportion(source)
    assert not c.ok and "cutoff 19" in c.detail


def test_short_read_fails():
    assert not kat.rng_repetition_count(lambda n: b"\x01\x02").ok
    assert not kat.rng_adaptive_proportion(lambda n: bytes(n - 1)).ok


def test_repetition_run_just_below_the_cutoff_passes():
    data = bytes(range(200)) + b"\x07" * (kat.RCT_CUTOFF - 1) + bytes(range(100, 200))
    assert kat.repetition_count(data) is None
    assert kat.repetition_count(data + b"\x07" * kat.RCT_CUTOFF) is not None


def test_apt_counts_the_first_sample_of_the_window():
    w = bytearray(range(256)) * 2
    w[256] = 1  # value 0 only at the window's start
    for i in range(kat.APT_CUTOFF - 2):
        w[1 + i * 20] = 0
    assert kat.adaptive_proportion(bytes(w)) is None  # first + cutoff-2 repeats
    w[500] = 0
    assert kat.adaptive_proportion(bytes(w)) == (0, kat.APT_CUTOFF)  # first + cutoff-1
    assert kat.adaptive_proportion(bytes(512) + bytes(w)) == (0, 512)
    assert kat.adaptive_proportion(bytes(range(256)) * 2 + bytes(w)) == (512, kat.APT_CUTOFF)
