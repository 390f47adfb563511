"""Fuzzed wM-Bus decoders (smgw.wmbus.decode and the layers under it): for any bytes, any key and
any damage to real telegrams, only :class:`smgw.wmbus.WmbusError` subclasses come out -- no
IndexError, struct/crypto errors or the APL's own exception -- and what decodes is consistent
with the bytes it came from (no layer claims bytes beyond the buffer).

Hostile inputs aimed at every length field: the L-field, frame-A/B CRC layouts, ELL variants,
AFLL and the FCL presence bits, the MCL authentication type, TPL header kinds and CFG (mode,
encrypted-block count N, mode-7 Z/V extension bytes), and random APL behind a valid mode-5
encryption, so the record decoder is fuzzed through the whole stack.

SMGW_FUZZ_EXAMPLES=20000 for a long run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smgw.wmbus import WmbusError
from smgw.wmbus.decode import decode
from smgw.wmbus.link import add_crcs, strip_crcs
from smgw.wmbus.security import aes_cbc_encrypt, aes_ctr, ell_counter_block, mode5_iv

FUZZ = settings(max_examples=int(os.environ.get("SMGW_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wmbus_vectors.json").read_text("utf-8")
)["vectors"]
REAL = [(bytes.fromhex(v["hex"]), bytes.fromhex(v["key"]) if v["key"] else None)
        for v in VECTORS]
STRIPPED = [(strip_crcs(t)[0], k) for t, k in REAL]
KEY = bytes.fromhex("0102030405060708090A0B0C0D0E0F11")
DLL = bytes.fromhex("449315785634123303")  # C, M = ELS, A = 12345678 / 0x33 / gas

keys = st.one_of(st.none(), st.just(KEY), st.binary(min_size=16, max_size=16),
                st.just(lambda address: KEY if address.id == "12345678" else None))


def only_wmbus_errors(data: bytes, key: bytes | None = None, **kw) -> object:
    """Decode; return the Telegram, or the WmbusError (anything else fails the test)."""
    try:
        t = decode(data, key, strict_apl=kw.pop("strict_apl", True), **kw)
    except WmbusError as e:
        assert e.catalogue_id in (10262, 10263, 10274), e
        assert isinstance(e.code, str) and e.code
        str(e)
        return e
    consistent(t)
    return t


def consistent(t) -> None:
    """A decoded telegram's layers fit inside its bytes."""
    raw = t.raw
    assert raw[0] == len(raw) - 1
    used = 10
    for layer in (t.ell, t.afl, t.tpl):
        if layer is not None:
            used += layer.length
    assert used <= len(raw)
    assert t.payload is not None and len(t.payload) == len(raw) - used
    json.dumps(t.to_json())


def relen(t: bytes | bytearray) -> bytes:
    t = bytearray(t)
    if t:
        t[0] = min(len(t) - 1, 255)
    return bytes(t)


# ------------------------------------------------------------------------------ random bytes

@FUZZ
@given(st.binary(max_size=300), keys)
def test_fuzz_random_bytes(data, key):
    only_wmbus_errors(data, key)
    only_wmbus_errors(relen(data), key)  # consistent L-field: gets past the link layer
    for frame in ("A", "B", "none"):
        only_wmbus_errors(data, key, frame=frame)


@FUZZ
@given(st.binary(min_size=1, max_size=240), keys)
def test_fuzz_random_body_behind_a_valid_dll(body, key):
    t = relen(b"\x00" + DLL + body)
    only_wmbus_errors(t, key)
    only_wmbus_errors(add_crcs(t, "A"), key)  # with valid CRCs, detected as frame A
    if len(t) <= 252:
        only_wmbus_errors(add_crcs(t, "B"), key)


# ---------------------------------------------------------------------------- real telegrams

@FUZZ
@given(st.sampled_from(STRIPPED), st.data())
def test_fuzz_mutated_vectors(vector, data):
    t, key = vector
    b = bytearray(t)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            b.insert(i, data.draw(st.integers(0, 255)))
        elif op == "delete" and len(b) > 1:
            del b[i]
    mutated = bytes(b)
    k = data.draw(st.sampled_from([key, None, KEY]))
    only_wmbus_errors(mutated, k)
    fixed = relen(mutated)  # keep the link layer happy so that the damage reaches deeper
    only_wmbus_errors(fixed, k)
    only_wmbus_errors(fixed, k, strict_apl=False)
    if 11 <= len(fixed) <= 252 and fixed[0] == len(fixed) - 1:
        only_wmbus_errors(add_crcs(fixed, data.draw(st.sampled_from(["A", "B"]))), k)


@FUZZ
@given(st.sampled_from(REAL), st.data())
def test_fuzz_truncated_and_extended_vectors(vector, data):
    t, key = vector
    cut = data.draw(st.integers(0, len(t)))
    only_wmbus_errors(t[:cut], key)
    only_wmbus_errors(relen(t[:cut]), key)
    extra = data.draw(st.binary(min_size=1, max_size=8))
    only_wmbus_errors(t + extra, key)
    only_wmbus_errors(relen(strip_crcs(t)[0] + extra), key)


@FUZZ
@given(st.sampled_from(STRIPPED), st.integers(0, 255), keys)
def test_fuzz_hostile_l_field(vector, l_field, key):
    t, k = vector
    hostile = bytes([l_field]) + t[1:]
    for frame in ("auto", "A", "B", "none"):
        only_wmbus_errors(hostile, key or k, frame=frame)


def test_every_truncation_of_every_vector():
    """Cut anywhere, with the L-field kept or fixed: an error or a consistent telegram."""
    for t, key in REAL:
        for cut in range(len(t) + 1):
            assert isinstance(only_wmbus_errors(t[:cut], key), WmbusError) or cut == len(t)
            only_wmbus_errors(relen(t[:cut]), key)


# ------------------------------------------------------------------------- hostile headers

ell_header = st.one_of(
    st.builds(lambda ci, rest: bytes([ci]) + rest, st.sampled_from([0x8C, 0x8D, 0x8E, 0x8F, 0x86]),
              st.binary(max_size=20)),
    st.builds(lambda cc, acc, sn: bytes([0x8D, cc, acc]) + sn, st.integers(0, 255),
              st.integers(0, 255), st.binary(min_size=4, max_size=4)),
)
afl_header = st.builds(
    lambda afll, fcl, mcl, rest: bytes([0x90, afll]) + fcl.to_bytes(2, "little") + bytes([mcl])
    + rest,
    st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=40))
tpl_header = st.builds(
    lambda ci, acc, sts, cfg, ext, rest: bytes([ci]) + rest[:8] * (ci in (0x72, 0x73))
    + bytes([acc, sts]) + cfg.to_bytes(2, "little") + ext + rest[8:],
    st.sampled_from([0x72, 0x7A, 0x78, 0x73, 0x7B, 0x79, 0x8A, 0x8B, 0x6E, 0x75, 0xA5]),
    st.integers(0, 255), st.integers(0, 255),
    st.one_of(st.integers(0, 0xFFFF), st.builds(lambda n, m, hi: (hi << 13) | (m << 8) | (n << 4),
                                                 st.integers(0, 15), st.sampled_from([0, 5, 7]),
                                                 st.integers(0, 7))),
    st.binary(max_size=6), st.binary(max_size=80))


@FUZZ
@given(st.lists(st.one_of(ell_header, afl_header, tpl_header), min_size=1, max_size=4),
       st.binary(max_size=64), keys)
def test_fuzz_hostile_layer_headers(layers, tail, key):
    body = b"".join(layers) + tail
    t = relen(b"\x00" + DLL + body[:245])
    only_wmbus_errors(t, key)
    only_wmbus_errors(t, key, expect_encrypted=False)


# ------------------------------------------------- random APL behind valid encryption layers

@FUZZ
@given(st.binary(max_size=150), st.integers(0, 255), st.binary(max_size=20))
def test_fuzz_random_apl_through_mode5(apl, acc, clear):
    """2F2F + random records, encrypted correctly: the APL decoder runs on hostile records."""
    plain = b"\x2f\x2f" + apl
    plain += b"\x2f" * (-len(plain) % 16)
    n = len(plain) // 16
    if n > 15:
        plain, n = plain[:240], 15
    cfg = (0x05 << 8) | (n << 4)
    header = bytes([0x7A, acc, 0]) + cfg.to_bytes(2, "little")
    enc = aes_cbc_encrypt(KEY, mode5_iv(bytes.fromhex("9315785634123303"), acc), plain)
    t = relen(b"\x00" + DLL + header + enc + clear)
    if len(t) > 256:
        return
    got = only_wmbus_errors(t, KEY)
    if not isinstance(got, WmbusError):
        assert got.payload == plain + clear
    only_wmbus_errors(t, KEY, strict_apl=False)


@FUZZ
@given(st.binary(max_size=120), st.binary(min_size=4, max_size=4), st.integers(0, 255))
def test_fuzz_random_data_through_ell_ctr(inner, sn, cc):
    """A correct ELL II AES-CTR layer around random inner layers and records."""
    from smgw.wmbus.link import crc16

    sn = bytes(sn[:3]) + bytes([(sn[3] & 0x1F) | 0x20])  # ENC = 1
    addr = bytes.fromhex("9315785634123303")
    plain = crc16(inner).to_bytes(2, "little") + inner
    enc = aes_ctr(KEY, ell_counter_block(addr, cc, sn), plain)
    t = relen(b"\x00" + DLL + bytes([0x8D, cc, 0]) + sn + enc)
    only_wmbus_errors(t, KEY)
    only_wmbus_errors(t, KEY, strict_apl=False)
