"""Known-answer tests of the crypto primitives the gateway uses, and random-generator health.

Every test computes a published test vector with the library the gateway uses (``hashlib``,
``cryptography``) and compares the result with the published answer. The vectors are module
constants (a test corrupts one to see its check fail). A failure raises
:attr:`~smgw.opstate.Cause.CRYPTO_SELFTEST` (ceased operation): a primitive that computes
wrong results makes every signature and every decrypted meter value untrustworthy.

    for kat in kat.CHECKS: report(kat())      # each returns a Check, codes ST-KAT-*/ST-RNG-*
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from fractions import Fraction

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC

from smgw.opstate import Cause
from smgw.selftest.checks import Check, timed

_h = bytes.fromhex

# ============================================================================ vectors

# SHA-256 and SHA-384: the examples of FIPS 180-2 Appendix B.1, B.2 and D.1, which NIST keeps for
# FIPS 180-4 ("Examples with Intermediate Values", csrc.nist.gov, SHA256.pdf / SHA384.pdf).
SHA256_VECTORS = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
]
SHA384_VECTORS = [
    (b"abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
             "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
]

# AES block cipher: FIPS-197 Appendix C.1 (AES-128) and C.3 (AES-256), one block, ECB.
AES_ECB_VECTORS = [
    ("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff",
     "69c4e0d86a7b0430d8cdb78070b4c55a"),
    ("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "00112233445566778899aabbccddeeff", "8ea2b7ca516745bfeafc49904b496089"),
]
# NIST SP 800-38A Appendix F: the four-block plaintext shared by all its examples
SP800_38A_PLAIN = ("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                   "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
# SP 800-38A F.2.1/F.2.2 (CBC-AES128) and F.2.5/F.2.6 (CBC-AES256): key, IV, ciphertext
AES_CBC_VECTORS = [
    ("2b7e151628aed2a6abf7158809cf4f3c", "000102030405060708090a0b0c0d0e0f",
     "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
     "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
    ("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
     "000102030405060708090a0b0c0d0e0f",
     "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
     "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"),
]
# SP 800-38A F.5.1/F.5.2 (CTR-AES128): key, initial counter block, ciphertext
AES_CTR_VECTORS = [
    ("2b7e151628aed2a6abf7158809cf4f3c", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
     "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"),
]
# AES-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Test Cases 2 and 4:
# key, IV, plaintext, additional data, ciphertext, tag
AES_GCM_VECTORS = [
    ("00000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "",
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
    ("feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"),
]
# AES-CMAC: RFC 4493 §4, Examples 1-4 (key K, the first 0/16/40/64 bytes of the SP 800-38A
# plaintext above)
CMAC_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
CMAC_VECTORS = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]
# ECDSA P-256 with SHA-256: RFC 6979 Appendix A.2.5 (private key x, public key (Ux, Uy), and
# the deterministic signatures (r, s) of "sample" and "test")
ECDSA_P256_KEY = {
    "x": "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
    "Ux": "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
    "Uy": "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
}
ECDSA_P256_SHA256_VECTORS = [
    (b"sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
     "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    (b"test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
     "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"),
]


# ============================================================================ hashes

def _hash_kat(code: str, name: str, vectors: list[tuple[bytes, str]]) -> Check:
    def run() -> tuple[bool, str]:
        for i, (msg, digest) in enumerate(vectors):
            if hashlib.new(name, msg).hexdigest() != digest:
                return False, f"{name} of vector {i} ({msg[:8]!r}...) differs"
        return True, f"{len(vectors)} {name} vectors"
    return timed(code, Cause.CRYPTO_SELFTEST, run)


def sha256() -> Check:
    """ST-KAT-SHA256: FIPS 180-2 B.1 ("abc") and B.2 (448-bit message)."""
    return _hash_kat("ST-KAT-SHA256", "sha256", SHA256_VECTORS)


def sha384() -> Check:
    """ST-KAT-SHA384: FIPS 180-2 D.1 ("abc")."""
    return _hash_kat("ST-KAT-SHA384", "sha384", SHA384_VECTORS)


# ============================================================================ AES

def _crypt(cipher: Cipher, data: bytes, encrypt: bool) -> bytes:
    c = cipher.encryptor() if encrypt else cipher.decryptor()
    return c.update(data) + c.finalize()


def _aes_kat(code: str, key_len: int) -> Check:
    plain = _h(SP800_38A_PLAIN)

    def run() -> tuple[bool, str]:
        n: dict[str, int] = {}
        for key, pt, ct in AES_ECB_VECTORS:
            if len(_h(key)) != key_len:
                continue
            c = Cipher(algorithms.AES(_h(key)), modes.ECB())  # noqa: S305 - one-block KAT
            if _crypt(c, _h(pt), True) != _h(ct) or _crypt(c, _h(ct), False) != _h(pt):
                return False, f"AES-{key_len * 8} block (FIPS-197) differs"
            n["ECB"] = n.get("ECB", 0) + 1
        for key, iv, ct in AES_CBC_VECTORS:
            if len(_h(key)) != key_len:
                continue
            c = Cipher(algorithms.AES(_h(key)), modes.CBC(_h(iv)))
            if _crypt(c, plain, True) != _h(ct) or _crypt(c, _h(ct), False) != plain:
                return False, f"CBC-AES{key_len * 8} (SP 800-38A F.2) differs"
            n["CBC"] = n.get("CBC", 0) + 1
        for key, ctr, ct in AES_CTR_VECTORS:
            if len(_h(key)) != key_len:
                continue
            c = Cipher(algorithms.AES(_h(key)), modes.CTR(_h(ctr)))
            if _crypt(c, plain, True) != _h(ct):
                return False, f"CTR-AES{key_len * 8} (SP 800-38A F.5) differs"
            n["CTR"] = n.get("CTR", 0) + 1
        if not n:
            return False, f"no AES-{key_len * 8} vectors"
        return True, f"AES-{key_len * 8} vectors: " + ", ".join(f"{v} {k}" for k, v in n.items())
    return timed(code, Cause.CRYPTO_SELFTEST, run)


def aes128() -> Check:
    """ST-KAT-AES128: FIPS-197 C.1, SP 800-38A F.2.1/F.2.2 (CBC) and F.5.1/F.5.2 (CTR)."""
    return _aes_kat("ST-KAT-AES128", 16)


def aes256() -> Check:
    """ST-KAT-AES256: FIPS-197 C.3, SP 800-38A F.2.5/F.2.6 (CBC)."""
    return _aes_kat("ST-KAT-AES256", 32)


def aes_gcm() -> Check:
    """ST-KAT-AES-GCM: GCM specification Test Cases 2 and 4; a flipped tag bit must be
    rejected."""
    def run() -> tuple[bool, str]:
        for i, (key, iv, pt, aad, ct, tag) in enumerate(AES_GCM_VECTORS):
            g = AESGCM(_h(key))
            if g.encrypt(_h(iv), _h(pt), _h(aad) or None) != _h(ct) + _h(tag):
                return False, f"GCM vector {i}: ciphertext or tag differs"
            if g.decrypt(_h(iv), _h(ct) + _h(tag), _h(aad) or None) != _h(pt):
                return False, f"GCM vector {i}: decryption differs"
            bad = bytearray(_h(ct) + _h(tag))
            bad[-1] ^= 1
            try:
                g.decrypt(_h(iv), bytes(bad), _h(aad) or None)
            except InvalidTag:
                pass
            else:
                return False, f"GCM vector {i}: a wrong tag was accepted"
        return True, f"{len(AES_GCM_VECTORS)} GCM vectors, wrong tag rejected"
    return timed("ST-KAT-AES-GCM", Cause.CRYPTO_SELFTEST, run)


def aes_cmac() -> Check:
    """ST-KAT-CMAC: RFC 4493 §4 Examples 1-4; a wrong tag must be rejected."""
    def run() -> tuple[bool, str]:
        plain = _h(SP800_38A_PLAIN)
        for n, tag in CMAC_VECTORS:
            c = CMAC(algorithms.AES(_h(CMAC_KEY)))
            c.update(plain[:n])
            if c.finalize() != _h(tag):
                return False, f"AES-CMAC of {n} bytes (RFC 4493) differs"
        c = CMAC(algorithms.AES(_h(CMAC_KEY)))
        c.update(plain[:16])
        try:
            c.verify(bytes(16))
        except InvalidSignature:
            pass
        else:
            return False, "AES-CMAC accepted a wrong tag"
        return True, f"{len(CMAC_VECTORS)} AES-CMAC vectors, wrong tag rejected"
    return timed("ST-KAT-CMAC", Cause.CRYPTO_SELFTEST, run)


# ============================================================================ ECDSA

def ecdsa_p256() -> Check:
    """ST-KAT-ECDSA: RFC 6979 A.2.5 (P-256, SHA-256). The published signatures verify under
    the published public key, the private key gives that public key and signs the messages
    deterministically to exactly the published (r, s); a changed message is rejected."""
    def run() -> tuple[bool, str]:
        k = ECDSA_P256_KEY
        priv = ec.derive_private_key(int(k["x"], 16), ec.SECP256R1())
        pub = ec.EllipticCurvePublicNumbers(int(k["Ux"], 16), int(k["Uy"], 16),
                                            ec.SECP256R1()).public_key()
        if priv.public_key().public_numbers() != pub.public_numbers():
            return False, "P-256 public key from the private key differs"
        for msg, r, s in ECDSA_P256_SHA256_VECTORS:
            sig = encode_dss_signature(int(r, 16), int(s, 16))
            try:
                pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                return False, f"published signature of {msg!r} does not verify"
            got = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256(),
                                                              deterministic_signing=True)))
            if got != (int(r, 16), int(s, 16)):
                return False, f"deterministic signature of {msg!r} differs"
            try:
                pub.verify(sig, msg + b".", ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                pass
            else:
                return False, "a signature verified for a changed message"
        return True, f"{len(ECDSA_P256_SHA256_VECTORS)} RFC 6979 signatures signed and verified"
    return timed("ST-KAT-ECDSA", Cause.CRYPTO_SELFTEST, run)


PCT_MESSAGE = b"SMGW self-test pairwise consistency"


def ecdsa_brainpool_pct() -> Check:
    """ST-PCT-ECDSA-BP256: pairwise consistency on brainpoolP256r1 (the curve of the gateway's
    certificates, TR-03109-3): a fresh key signs, its public key verifies, a changed message
    fails. (No published brainpool ECDSA vector exists in RFC 5639/7027, hence no KAT.)"""
    def run() -> tuple[bool, str]:
        key = ec.generate_private_key(ec.BrainpoolP256R1())
        sig = key.sign(PCT_MESSAGE, ec.ECDSA(hashes.SHA256()))
        try:
            key.public_key().verify(sig, PCT_MESSAGE, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False, "brainpoolP256r1 signature does not verify under its own key"
        try:
            key.public_key().verify(sig, PCT_MESSAGE + b".", ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return True, "brainpoolP256r1 sign/verify consistent"
        return False, "brainpoolP256r1 signature verified for a changed message"
    return timed("ST-PCT-ECDSA-BP256", Cause.CRYPTO_SELFTEST, run)


# ============================================================================ random generator

# NIST SP 800-90B §4.4 health tests applied to os.urandom output, 8-bit samples. os.urandom is
# the kernel's DRBG output, which claims full entropy: H = 8 bits per byte. The false-alarm
# probability per sample is alpha = 2^-40 (the small end of 90B's 2^-20..2^-40), so a healthy
# generator practically never fails, while a stuck or heavily biased one always does.
RNG_H = 8
RNG_ALPHA_LOG2 = 40
RNG_SAMPLES = 4096
APT_WINDOW = 512  # 90B §4.4.2: W = 512 for non-binary samples


def rct_cutoff(h: float = RNG_H, alpha_log2: int = RNG_ALPHA_LOG2) -> int:
    """90B §4.4.1: C = 1 + ceil(-log2(alpha) / H)."""
    return 1 + math.ceil(alpha_log2 / h)


def apt_cutoff(h: int = RNG_H, alpha_log2: int = RNG_ALPHA_LOG2, w: int = APT_WINDOW) -> int:
    """90B §4.4.2: C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), computed exactly."""
    p = Fraction(1, 2 ** h)
    target = 1 - Fraction(1, 2 ** alpha_log2)
    cum = Fraction(0)
    for k in range(w + 1):
        cum += math.comb(w, k) * p ** k * (1 - p) ** (w - k)
        if cum >= target:
            return 1 + k
    return w + 1


RCT_CUTOFF = rct_cutoff()  # 6
APT_CUTOFF = apt_cutoff()  # 19 (90B Table 2 gives 13 for alpha = 2^-20; see test_kat)


def repetition_count(samples: bytes, cutoff: int = RCT_CUTOFF) -> int | None:
    """The index where a run of ``cutoff`` identical samples completes, or None."""
    run, prev = 0, None
    for i, x in enumerate(samples):
        run = run + 1 if x == prev else 1
        prev = x
        if run >= cutoff:
            return i
    return None


def adaptive_proportion(samples: bytes, cutoff: int = APT_CUTOFF,
                        w: int = APT_WINDOW) -> tuple[int, int] | None:
    """The first window (start, count) whose first sample recurs ``cutoff`` times, or None."""
    for start in range(0, len(samples) - w + 1, w):
        window = samples[start:start + w]
        count = window.count(window[0])  # includes the first sample itself (B = 1 at start)
        if count >= cutoff:
            return start, count
    return None


def rng_repetition_count(source: Callable[[int], bytes] = os.urandom,
                         n: int = RNG_SAMPLES) -> Check:
    """ST-RNG-RCT: 90B §4.4.1 repetition count test on ``n`` bytes of ``source``."""
    def run() -> tuple[bool, str]:
        samples = source(n)
        if len(samples) != n:
            return False, f"generator returned {len(samples)} of {n} bytes"
        at = repetition_count(samples)
        if at is not None:
            return False, f"{RCT_CUTOFF} equal bytes in a row ending at sample {at}"
        return True, f"{n} samples, no run of {RCT_CUTOFF}"
    return timed("ST-RNG-RCT", Cause.CRYPTO_SELFTEST, run)


def rng_adaptive_proportion(source: Callable[[int], bytes] = os.urandom,
                            n: int = RNG_SAMPLES) -> Check:
    """ST-RNG-APT: 90B §4.4.2 adaptive proportion test on ``n`` bytes of ``source``."""
    def run() -> tuple[bool, str]:
        samples = source(n)
        if len(samples) != n:
            return False, f"generator returned {len(samples)} of {n} bytes"
        hit = adaptive_proportion(samples)
        if hit is not None:
            return False, (f"window at sample {hit[0]}: its first value occurs {hit[1]} times "
                           f"in {APT_WINDOW} (cutoff {APT_CUTOFF})")
        return True, f"{n // APT_WINDOW} windows of {APT_WINDOW}, cutoff {APT_CUTOFF}"
    return timed("ST-RNG-APT", Cause.CRYPTO_SELFTEST, run)


CHECKS: tuple[Callable[[], Check], ...] = (
    sha256, sha384, aes128, aes256, aes_gcm, aes_cmac, ecdsa_p256, ecdsa_brainpool_pct,
    rng_repetition_count, rng_adaptive_proportion,
)
