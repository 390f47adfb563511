"""Management messages (smgw.lmn.mgmt): golden encodings, round trips, every malformed case
with its code, fuzzing (only MgmtError comes out), the REGISTER size and the slot length."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgw.lmn import hdlc, mgmt
from smgw.lmn.mgmt import Assign, Assigned, Invite, MgmtError, Register

SID = bytes.fromhex("0a01454d480000123456")

sids = st.binary(min_size=1, max_size=16)
messages = st.one_of(
    st.builds(Invite, st.integers(1, 64), st.integers(1, 0xFFFF), st.integers(0, 0xFFFF)),
    st.builds(Register, st.integers(0, 0xFFFF), sids),
    st.builds(Assign, sids, st.integers(0x10, 0x7D)),
    st.builds(Assigned, sids),
)


def test_golden_encodings():
    assert mgmt.encode(Invite(16, 8, 0x0102)).hex() == "01100008" "0102"
    assert mgmt.encode(Register(7, SID)).hex() == "020007" "0a" + SID.hex()
    assert mgmt.encode(Assign(SID, 0x10)).hex() == "03" "0a" + SID.hex() + "10"
    assert mgmt.encode(Assigned(SID)).hex() == "04" "0a" + SID.hex()


@given(messages)
@settings(max_examples=300)
def test_round_trip(msg):
    assert mgmt.decode(mgmt.encode(msg)) == msg


@pytest.mark.parametrize("hexdata, code", [
    ("", "empty"),
    ("00", "type"),
    ("05", "type"),
    ("ff0102", "type"),
    ("01", "length"),
    ("011000", "length"),
    ("0110000800", "length"),
    ("011000080001ff", "length"),  # trailing byte
    ("01000008 0001", "slots"),
    ("01410008 0001", "slots"),  # 65 slots
    ("01100000 0001", "slot_ms"),
    ("020001", "length"),
    ("020001 00", "sid"),
    ("020001 11" + "00" * 17, "sid"),  # 17-byte sid
    ("020001 03 aabb", "length"),
    ("020001 02 aabb cc", "length"),
    ("03 02 aabb", "length"),  # no address
    ("03 02 aabb 0f", "address"),
    ("03 02 aabb 7e", "address"),
    ("03 02 aabb 10 00", "length"),
    ("03 00 10", "sid"),
    ("04", "length"),
    ("04 00", "sid"),
    ("04 01 aa bb", "length"),
])
def test_malformed(hexdata, code):
    with pytest.raises(MgmtError) as e:
        mgmt.decode(bytes.fromhex(hexdata.replace(" ", "")))
    assert e.value.code == code
    assert isinstance(e.value, ValueError) and str(e.value)


def test_boundaries_accepted():
    assert mgmt.decode(bytes.fromhex("01400001ffff")) == Invite(64, 1, 0xFFFF)
    assert mgmt.decode(bytes.fromhex("03" "01aa" "7d")) == Assign(b"\xaa", 0x7D)
    assert mgmt.decode(bytes.fromhex("0200" "00" "10" + "ab" * 16)).sid == b"\xab" * 16


def test_constructors_reject_caller_bugs():
    for bad in (lambda: Invite(0, 1, 0), lambda: Invite(65, 1, 0), lambda: Invite(1, 0, 0),
                lambda: Invite(1, 1, 70000), lambda: Register(-1, SID), lambda: Register(0, b""),
                lambda: Register(0, bytes(17)), lambda: Assign(SID, 0x0F),
                lambda: Assign(SID, 0x7E), lambda: Assigned(b"")):
        with pytest.raises(ValueError) as e:
            bad()
        assert not isinstance(e.value, MgmtError)
    with pytest.raises(TypeError):
        mgmt.encode("nope")  # type: ignore[arg-type]


@given(st.binary(max_size=40))
@settings(max_examples=1000)
def test_fuzz_only_mgmt_errors(data):
    try:
        msg = mgmt.decode(data)
    except MgmtError:
        return
    assert mgmt.encode(msg) == data  # anything accepted is canonical


@given(messages, st.integers(0, 100), st.integers(0, 255))
@settings(max_examples=500)
def test_fuzz_mutated(msg, pos, val):
    data = bytearray(mgmt.encode(msg))
    data[pos % len(data)] = val
    try:
        mgmt.decode(bytes(data))
    except MgmtError:
        pass


def test_register_max_bytes_is_the_longest_register_on_the_wire():
    longest = hdlc.encode(hdlc.Frame(hdlc.GATEWAY, hdlc.UNASSIGNED, hdlc.UI,
                                     mgmt.encode(Register(0xFFFF, bytes(16)))))
    assert len(longest) == mgmt.REGISTER_MAX_BYTES == 31
    # ASSIGNED (sent in the response window, not in a slot) is shorter
    assert len(hdlc.encode(hdlc.Frame(hdlc.GATEWAY, 0x10, hdlc.UI,
                                      mgmt.encode(Assigned(bytes(16)))))) < 31


@pytest.mark.parametrize("baud", [1200, 9600, 19200, 38400, 57600, 115200, 230400, 921600])
def test_slot_ms_for(baud):
    ms = mgmt.slot_ms_for(baud)
    air_ms = mgmt.REGISTER_MAX_BYTES * 10 * 1000 / baud
    assert ms >= 5
    assert ms >= (air_ms + 2) * 1.5
    assert ms == max(5, math.ceil((air_ms + 2) * 1.5))
    # a REGISTER started at its slot start plus turnaround ends before the next slot starts
    assert 2 + air_ms < ms


def test_slot_ms_values():
    assert mgmt.slot_ms_for(115200) == 8
    assert mgmt.slot_ms_for(9600) == 52
    assert mgmt.slot_ms_for(921600) == 5
    with pytest.raises(ValueError):
        mgmt.slot_ms_for(0)
