import dataclasses
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from smgw.security.valuesig import MAGIC, sign_value, value_message, verify_value
from smgw.tariff.model import DerivedValue, smgw_status

GW = "EOPN0000000001"
V = DerivedValue(profile="TAF2-Haushalt", taf=2, register="1-0:1.8.1", owner="TAF2-Haushalt",
                 period_start_ms=1_772_319_600_000, period_end_ms=1_775_001_600_000,
                 target_ms=1_775_001_600_000, value=1_234_567, scaler=-1, unit="Wh",
                 status=smgw_status(), stage=1)


def test_message_layout_is_the_documented_one():
    msg = value_message(V, GW)

    def s(x: str) -> bytes:
        return struct.pack(">H", len(x.encode())) + x.encode()

    expected = (b"SMGW-DV1" + s(GW) + s("TAF2-Haushalt") + b"\x02" + s("1-0:1.8.1")
                + s("TAF2-Haushalt") + struct.pack(">qqqqb", V.target_ms, V.period_start_ms,
                                                   V.period_end_ms, 1_234_567, -1)
                + s("Wh") + struct.pack(">I", 5) + b"\x01")
    assert msg == expected
    assert msg.startswith(MAGIC)


def test_fields_outside_the_signature_do_not_change_it():
    # stage, kind, sources, capture time, meter status, billing are not part of the message
    other = dataclasses.replace(V, stage=None, kind="sum", sources=("a",), capture_ms=1,
                                meter_status=7, billing=False)
    assert value_message(other, GW) == value_message(V, GW)


@pytest.mark.parametrize("which", ["bench", "bp_bench"])
def test_sign_and_verify(request, which):
    b = request.getfixturevalue(which)
    sig = sign_value(b.gw.sig, V, GW)
    assert len(sig) == 64
    assert verify_value(b.gw.sig.cert, V, GW, sig)
    # the same signature is an ECDSA-SHA256 signature over value_message in r||s form
    r, s_ = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    b.gw.sig.cert.public_key().verify(encode_dss_signature(r, s_), value_message(V, GW),
                                      ec.ECDSA(hashes.SHA256()))


CHANGES = {
    "profile": "TAF2-Andere", "taf": 1, "register": "1-0:1.8.2", "owner": "other",
    "target_ms": V.target_ms + 1, "period_start_ms": V.period_start_ms - 1,
    "period_end_ms": V.period_end_ms + 900_000, "value": V.value + 1, "scaler": 0,
    "unit": "kWh", "status": V.status | (1 << 9), "time_valid": False,
}


@pytest.mark.parametrize("field,value", list(CHANGES.items()))
def test_a_changed_field_fails(bench, field, value):
    sig = sign_value(bench.gw.sig, V, GW)
    assert not verify_value(bench.gw.sig.cert, dataclasses.replace(V, **{field: value}), GW, sig)


def test_other_gateway_key_or_signature_fails(bench, other_pki):
    sig = sign_value(bench.gw.sig, V, GW)
    assert not verify_value(bench.gw.sig.cert, V, "EOPN0000000002", sig)
    assert not verify_value(other_pki.gw.sig.cert, V, GW, sig)
    assert not verify_value(bench.gw.sig.cert, V, GW, sig[:-1])
    assert not verify_value(bench.gw.sig.cert, V, GW, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify_value(bench.gw.sig.cert, V, GW, bytes(64))
    assert not verify_value(bench.gw.sig.cert, V, GW, "not bytes")


def test_field_boundaries_are_unambiguous():
    # moving a character from one text field to the next changes the message
    a = dataclasses.replace(V, profile="AB", register="C")
    b = dataclasses.replace(V, profile="A", register="BC")
    assert value_message(a, GW) != value_message(b, GW)


def test_values_that_do_not_fit_are_named():
    with pytest.raises(ValueError, match="value: .* out of range"):
        value_message(dataclasses.replace(V, value=1 << 63), GW)
    with pytest.raises(ValueError, match="scaler: .* out of range"):
        value_message(dataclasses.replace(V, scaler=200), GW)
    with pytest.raises(ValueError, match="taf: expected an integer"):
        value_message(dataclasses.replace(V, taf="2"), GW)


@settings(max_examples=50, deadline=None)
@given(value=st.integers(-(1 << 63), (1 << 63) - 1), scaler=st.integers(-128, 127),
       owner=st.text(max_size=40), status=st.integers(0, 0xFFFFFFFF))
def test_any_encodable_value_round_trips(bench, value, scaler, owner, status):
    v = dataclasses.replace(V, value=value, scaler=scaler, owner=owner, status=status)
    assert verify_value(bench.gw.sig.cert, v, GW, sign_value(bench.gw.sig, v, GW))
