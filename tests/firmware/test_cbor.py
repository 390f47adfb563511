"""The firmware's CBOR subset codec: strict decoding, and byte-for-byte agreement with PyPI cbor2
(which the host uses) on everything in the subset."""

import json
import math
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import cbor

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "cbor.json").read_text())


@pytest.mark.parametrize("hexstr", VECTORS["good"])
def test_good_vectors_round_trip_like_cbor2(hexstr):
    raw = bytes.fromhex(hexstr)
    ours = cbor.loads(raw)
    ref = cbor2.loads(raw)
    if isinstance(ref, float) and math.isnan(ref):
        assert math.isnan(ours)
    else:
        assert ours == ref
    assert cbor.dumps(ours) == raw == cbor2.dumps(canonical(ref))


@pytest.mark.parametrize("hexstr,reason", VECTORS["bad"])
def test_bad_vectors_are_rejected_with_a_reason(hexstr, reason):
    with pytest.raises(cbor.CborError) as e:
        cbor.loads(bytes.fromhex(hexstr))
    assert reason.lower() in str(e.value).lower()


def test_loads_respects_bounds_and_rejects_trailing_bytes():
    buf = b"\xff" + cbor2.dumps({0: 1}) + b"\xee"
    assert cbor.loads(buf, 1, len(buf) - 1) == {0: 1}
    with pytest.raises(cbor.CborError, match="trailing"):
        cbor.loads(buf, 1)


def test_encoder_refuses_what_is_outside_the_subset():
    for bad in (float("inf"), float("nan"), {1.5: 1}, {True: 1}, {(1,): 2}, set(), 2**64, -(2**64) - 1, object()):
        with pytest.raises(cbor.CborError):
            cbor.dumps(bad)
    deep: list = []
    for _ in range(cbor.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(cbor.CborError, match="deep"):
        cbor.dumps(deep)


def test_tuples_encode_as_arrays_like_cbor2():
    assert cbor.dumps((1, 2)) == cbor2.dumps([1, 2])


keys = st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=8))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64 - 1), st.binary(max_size=64),
    st.text(max_size=32), st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


def canonical(v):
    """The same value with every map rebuilt in deterministic key order (what our encoder
    writes; PyPI cbor2 writes maps in insertion order)."""
    if isinstance(v, dict):
        return {k: canonical(v[k]) for k in sorted(v, key=cbor._key_order)}
    if isinstance(v, list):
        return [canonical(x) for x in v]
    return v


@given(values)
@settings(max_examples=400, deadline=None)
def test_property_ours_and_cbor2_agree(v):
    ours = cbor.dumps(v)
    assert cbor2.loads(ours) == v  # the host reads what the firmware writes
    assert cbor.loads(cbor2.dumps(v)) == v  # the firmware reads what the host writes
    assert ours == cbor2.dumps(canonical(v))  # byte for byte, given the same key order
    assert cbor.loads(ours) == v


def test_map_keys_are_written_in_deterministic_order():
    a = cbor.dumps({"bb": 1, 1: 2, -1: 3, "a": 4, 0: 5, 300: 6})
    assert a == cbor2.dumps({0: 5, 1: 2, 300: 6, -1: 3, "a": 4, "bb": 1})


@given(st.binary(max_size=200))
@settings(max_examples=3000, deadline=None)
def test_fuzz_random_bytes_only_raise_cbor_error(data):
    try:
        cbor.loads(data)
    except cbor.CborError:
        pass


@given(values, st.data())
@settings(max_examples=500, deadline=None)
def test_fuzz_truncated_and_mutated_items_only_raise_cbor_error(v, data):
    raw = bytearray(cbor.dumps(v))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw[:cut]),):
        try:
            cbor.loads(candidate)
        except cbor.CborError:
            pass
    if raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
        try:
            cbor.loads(bytes(raw))
        except cbor.CborError:
            pass
