"""The SML encoder, checked against an independent decoder written here (bitwise CRCs, TL
parser, transport unframing) and against real meter dumps (design note meter-protocols.md
section 4.7 and SmlLib's test frames): re-encoding a dump's decoded content reproduces it."""

from __future__ import annotations

import binascii
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgw.meters import smlencode as enc
from smgw.meters.smlencode import Int, Raw, UInt

# ------------------------------------------------------------------ reference implementation
# Deliberately naive and written from the spec text, sharing nothing with smlencode.


def ref_crc16_x25(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def ref_crc16_kermit(data: bytes) -> int:
    crc = 0x0000
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def _ref_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _ref_table()


def ref_crc16_fast(data: bytes, init: int, xorout: int) -> int:
    """Byte-wise form of the two functions above, for checking thousands of frames."""
    crc = init
    t = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ t[(crc ^ byte) & 0xFF]
    return crc ^ xorout


def ref_crc_wire(data: bytes, crc: str) -> bytes:
    if crc == "x25":
        return ref_crc16_fast(data, 0xFFFF, 0xFFFF).to_bytes(2, "little")
    return ref_crc16_fast(data, 0, 0).to_bytes(2, "big")


class FrameError(Exception):
    pass


@dataclass
class Node:
    kind: str  # "octet" | "uint" | "int" | "bool" | "list" | "absent" | "end"
    value: Any
    width: int = 0  # data bytes (integers, octet strings); element count for lists
    raw: bytes = b""


def unframe(frame: bytes, crc: str = "x25") -> tuple[bytes, int]:
    """Transport v1 -> (SML file, pad count). Walks 4-byte blocks, undoing escapes."""
    if frame[:8] != b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01":
        raise FrameError("no start sequence")
    out = bytearray()
    i = 8
    while i + 4 <= len(frame):
        block = frame[i : i + 4]
        if block != b"\x1b\x1b\x1b\x1b":
            out += block
            i += 4
            continue
        nxt = frame[i + 4 : i + 8]
        if nxt == b"\x1b\x1b\x1b\x1b":
            out += block
            i += 8
            continue
        if len(nxt) == 4 and nxt[0] == 0x1A:
            pad = nxt[1]
            if ref_crc_wire(frame[: i + 6], crc) != frame[i + 6 : i + 8]:
                raise FrameError("transport CRC")
            if len(frame) != i + 8:
                raise FrameError("bytes after the end sequence")
            if not 0 <= pad <= 4 or any(out[len(out) - pad :]):
                raise FrameError("bad padding")
            return bytes(out[: len(out) - pad]), pad
        raise FrameError(f"unknown escape {nxt.hex()}")
    raise FrameError("no end sequence")


def parse(buf: bytes, pos: int) -> tuple[Node, int]:
    start = pos
    b = buf[pos]
    if b == 0x00:
        return Node("end", None, raw=buf[pos : pos + 1]), pos + 1
    type_ = (b >> 4) & 0x7
    n = b & 0x0F
    pos += 1
    more = b & 0x80
    while more:
        b = buf[pos]
        if b & 0x70:
            raise FrameError("TL continuation with type bits")
        n = (n << 4) | (b & 0x0F)
        more = b & 0x80
        pos += 1
    if type_ == 0x7:
        items = []
        for _ in range(n):
            item, pos = parse(buf, pos)
            items.append(item)
        return Node("list", items, n, buf[start:pos]), pos
    end = start + n
    data = buf[pos:end]
    if end > len(buf) or n < pos - start:
        raise FrameError("element runs past the buffer")
    raw = buf[start:end]
    if type_ == 0x0:
        if n == 1:
            return Node("absent", None, raw=raw), end
        return Node("octet", bytes(data), len(data), raw), end
    if type_ == 0x6:
        return Node("uint", int.from_bytes(data, "big"), len(data), raw), end
    if type_ == 0x5:
        return Node("int", int.from_bytes(data, "big", signed=True), len(data), raw), end
    if type_ == 0x4:
        return Node("bool", bool(data[0]), len(data), raw), end
    raise FrameError(f"unknown type {type_}")


@dataclass
class Message:
    tid: bytes
    tag: Node
    body: Node
    crc_ok: bool


def parse_file(file: bytes, crc: str = "x25") -> list[Message]:
    msgs = []
    pos = 0
    while pos < len(file):
        start = pos
        if file[pos] != 0x76:
            raise FrameError(f"no message at {pos}")
        pos += 1
        tid, pos = parse(file, pos)
        group, pos = parse(file, pos)
        abort, pos = parse(file, pos)
        body, pos = parse(file, pos)
        covered = file[start:pos]
        crc_node, pos = parse(file, pos)
        end, pos = parse(file, pos)
        if crc_node.kind != "uint" or crc_node.width != 2 or end.kind != "end":
            raise FrameError("bad message trailer")
        assert (group.kind, group.value, abort.kind, abort.value) == ("uint", 0, "uint", 0)
        assert body.kind == "list" and body.width == 2
        msgs.append(
            Message(
                tid.value,
                body.value[0],
                body.value[1],
                crc_node.raw[1:] == ref_crc_wire(covered, crc),
            )
        )
    return msgs


def decode_frame(frame: bytes, crc: str = "x25") -> dict:
    """Frame -> {"messages", "server_id", "sensor_time", "entries": {obis_bytes: Node list}}"""
    file, pad = unframe(frame, crc)
    msgs = parse_file(file, crc)
    tags = [m.tag.value for m in msgs]
    assert tags == [0x0101, 0x0701, 0x0201], tags
    gl = msgs[1].body.value
    entries = {}
    for e in gl[4].value:
        assert e.kind == "list" and e.width == 7
        entries[e.value[0].value] = e.value
    return {
        "file": file,
        "pad": pad,
        "messages": msgs,
        "server_id": gl[1].value,
        "sensor_time": gl[3],
        "entries": entries,
    }


def entry_value(entry: list[Node]) -> Any:
    return entry[5].value


def sec_index_of(node: Node) -> int | None:
    if node.kind == "absent":
        return None
    assert node.kind == "list" and node.value[0].value == 1
    return node.value[1].value


OBIS_180 = bytes.fromhex("0100010800FF")
OBIS_280 = bytes.fromhex("0100020800FF")
OBIS_1670 = bytes.fromhex("0100100700FF")

# ------------------------------------------------------------------ CRCs


def test_crc_check_values():
    assert ref_crc16_x25(b"123456789") == 0x906E
    assert ref_crc16_kermit(b"123456789") == 0x2189
    assert enc.crc16_x25(b"123456789") == 0x906E
    assert enc.crc16_kermit(b"123456789") == 0x2189
    # what binascii offers is CRC-CCITT (XModem), a different CRC
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3 != 0x906E


def test_crcs_match_reference_on_random_data():
    rng = random.Random(1)
    for n in list(range(0, 40)) + [255, 256, 1000]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert enc.crc16_x25(data) == ref_crc16_x25(data)
        assert enc.crc16_kermit(data) == ref_crc16_kermit(data)
        assert ref_crc16_fast(data, 0xFFFF, 0xFFFF) == ref_crc16_x25(data)
        assert ref_crc16_fast(data, 0, 0) == ref_crc16_kermit(data)


def test_crc_byte_order_on_the_wire():
    data = b"123456789"
    assert enc.crc_bytes(data, "x25") == bytes.fromhex("6E90")  # LSB first
    assert enc.crc_bytes(data, "kermit") == bytes.fromhex("2189")  # MSB first
    with pytest.raises(ValueError):
        enc.crc_bytes(data, "crc32")


# ------------------------------------------------------------------ TL and primitives


@pytest.mark.parametrize(
    "encoded, expected",
    [
        (enc.octet(bytes.fromhex("0100010800FF")), "070100010800ff"),
        (enc.uint(30), "621e"),
        (enc.sint(-5), "52fb"),
        (enc.uint(0x101, 4), "6500000101"),
        (enc.uint(0x0101), "630101"),
        (enc.uint(0), "6200"),
        (enc.uint(255), "62ff"),
        (enc.uint(256), "630100"),
        (enc.uint(0x010180), "64010180"),  # Unsigned24, as meters send it
        (enc.uint(2**64 - 1), "69" + "ff" * 8),
        (enc.sint(127), "527f"),
        (enc.sint(128), "530080"),
        (enc.sint(-128), "5280"),
        (enc.sint(-129), "53ff7f"),
        (enc.sint(238), "5300ee"),
        (enc.sint(80902), "5401 3c06".replace(" ", "")),
        (enc.sint(-514, 4), "55fffffdfe"),
        (enc.sint(-(2**63)), "598000000000000000"),
        (enc.boolean(True), "4201"),
        (enc.octet(b""), "01"),
        (enc.octet(b"x" * 14), "0f" + "78" * 14),
        (enc.octet(b"x" * 15), "8101" + "78" * 15),  # 15 + 2 TL bytes = 0x11
        (enc.octet(bytes(48)), "8302" + "00" * 48),  # the EMH public key
        (enc.sml_list([b"\x01"] * 22), "f106" + "01" * 22),  # the EFR 22-entry list
        (enc.sml_list([b"\x01"] * 6), "76" + "01" * 6),
        (enc.sml_list([]), "70"),
    ],
)
def test_tl_and_primitives(encoded, expected):
    assert encoded.hex() == expected


@pytest.mark.parametrize("n", list(range(0, 40)) + [253, 254, 255, 4092, 4093, 5000])
def test_octet_string_lengths_roundtrip(n):
    data = bytes(range(256)) * (n // 256 + 1)
    data = data[:n]
    encoded = enc.octet(data)
    node, end = parse(encoded, 0)
    assert end == len(encoded)
    if n == 0:
        assert node.kind == "absent"
    else:
        assert (node.kind, node.value) == ("octet", data)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 255, 256, 300])
def test_list_lengths_roundtrip(n):
    encoded = enc.sml_list([enc.uint(i % 256) for i in range(n)])
    node, end = parse(encoded, 0)
    assert end == len(encoded) and node.kind == "list"
    assert [c.value for c in node.value] == [i % 256 for i in range(n)]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_signed_is_shortest_and_roundtrips(v):
    encoded = enc.sint(v)
    node, _ = parse(encoded, 0)
    assert (node.kind, node.value) == ("int", v)
    if node.width > 1:  # one byte less would not hold it
        assert not -(1 << (8 * node.width - 9)) <= v < (1 << (8 * node.width - 9))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_unsigned_is_shortest_and_roundtrips(v):
    node, _ = parse(enc.uint(v), 0)
    assert (node.kind, node.value) == ("uint", v)
    assert node.width == 1 or v >= 1 << (8 * (node.width - 1))


def test_integer_range_errors():
    with pytest.raises(ValueError):
        enc.uint(-1)
    with pytest.raises(ValueError):
        enc.uint(2**64)
    with pytest.raises(ValueError):
        enc.sint(2**63)
    with pytest.raises(OverflowError):
        enc.uint(256, 1)


@pytest.mark.parametrize(
    "code, wire",
    [
        ("1-0:1.8.0", "0100010800ff"),
        ("1-0:1.8.0*255", "0100010800ff"),
        ("1-0:16.7.0", "0100100700ff"),
        ("1-0:96.50.1*1", "010060320101"),
        ("129-129:199.130.3", "8181c78203ff"),
        ("1-0:0.2.0*0", "010000020000"),
        ("2.8.0", "0100020800ff"),
        (bytes.fromhex("0100010800ff"), "0100010800ff"),
    ],
)
def test_obis(code, wire):
    assert enc.obis(code).hex() == wire


@pytest.mark.parametrize("bad", ["1-0:1.8", "1-0:256.8.0", "x", b"\x01\x00"])
def test_obis_rejects(bad):
    with pytest.raises(ValueError):
        enc.obis(bad)


# ------------------------------------------------------------------ messages


S1 = bytes.fromhex(
    "1b1b1b1b010101017605128e14cf620062007265000001017601010765425a4444330b090145425a0100091f"
    "14010163df26007605128e14d06200620072650000070177010b090145425a0100091f14017262016505e465"
    "007a77078181c78203ff010101010445425a0177070100000009ff010101010b090145425a0100091f140177"
    "070100010800ff6401018001621e52fb69000002a05939af070177070100010801ff0101621e52fb69000002"
    "a0531f2f070177070100010802ff0101621e52fb6900000000061a80000177070100020800ff640101800162"
    "1e52fb69000000000d7b8b460177070100100700ff0101621b52fe5500013c060177070100240700ff010162"
    "1b52fe55000058f00177070100380700ff0101621b52fe55000085f901770701004c0700ff0101621b52fe55"
    "00005d1d010101636c93007605128e14d162006200726500000201710163c682000000001b1b1b1b1a032f09"
)


def test_message_crc_worked_example():
    covered = bytes.fromhex(
        "7605128E14CF620062007265000001017601010765425A4444330B090145425A0100091F140101"
    )
    assert len(covered) == 39
    assert ref_crc16_x25(covered) == 0x26DF
    msg = enc.message(
        bytes.fromhex("128E14CF"),
        enc.TAG_OPEN_RES,
        enc.open_res(bytes.fromhex("090145425A0100091F14"), b"eBZDD3"),
        tag_width=4,
    )
    assert msg == covered + bytes.fromhex("63DF2600")
    assert S1[8 : 8 + len(msg)] == msg


def test_kermit_message_crc_is_msb_first():
    body = enc.close_res()
    msg = enc.message(b"\x00\x00\x03", enc.TAG_CLOSE_RES, body, crc="kermit", tag_width=4)
    covered = msg[:-4]
    assert msg[-4:] == b"\x63" + ref_crc16_kermit(covered).to_bytes(2, "big") + b"\x00"


# ------------------------------------------------------------------ transport


def test_transport_padding_and_crc():
    for n in range(12):
        file = bytes(range(1, n + 1))
        frame = enc.transport_frame(file)
        pad = frame[-3]
        assert pad == (-n) % 4
        assert (len(frame) - 8) % 4 == 0
        assert frame[-8:-3] == b"\x1b\x1b\x1b\x1b\x1a"
        assert frame[-2:] == ref_crc16_x25(frame[:-2]).to_bytes(2, "little")
        assert unframe(frame) == (file, pad)


def test_always_pad_quirk_sends_four_pad_bytes():
    frame = enc.transport_frame(b"\x02\x03\x04\x05", always_pad=True)
    assert frame[-3] == 4 and frame[-12:-8] == bytes(4)
    assert unframe(frame) == (b"\x02\x03\x04\x05", 4)


def test_escape_doubles_aligned_sequence_only():
    esc = b"\x1b" * 4
    file = b"\x01\x02\x03\x04" + esc + b"\x05\x06\x07\x08"
    frame = enc.transport_frame(file)
    assert frame[8:24] == b"\x01\x02\x03\x04" + esc + esc + b"\x05\x06\x07\x08"
    assert unframe(frame)[0] == file
    unaligned = b"\x01\x02" + esc + b"\x05\x06"
    frame = enc.transport_frame(unaligned)
    assert frame[8:16] == unaligned and frame[-3] == 0  # off the boundary: sent as is
    assert b"\x1b" * 8 not in frame
    assert unframe(frame)[0] == unaligned
    double = esc + esc + b"\x09"
    frame = enc.transport_frame(double)
    assert frame[8:24] == esc * 4
    assert unframe(frame)[0] == double


def test_escape_test_entry_forces_an_escape():
    readings = [{"obis": "1-0:1.8.0", "value": 10, "scaler": -1, "unit": 30}]
    for tid in range(8):  # different field lengths shift the entry around
        plain = enc.encode_sml_file(b"\x01" * tid, readings, transaction_id=tid)
        assert not enc.has_aligned_escape(plain)
        frame = enc.encode_file(b"\x01" * tid, readings, transaction_id=tid, escape_test=True)
        assert frame[8:].count(b"\x1b" * 8) == 1
        d = decode_frame(frame)
        value = entry_value(d["entries"][enc.ESCAPE_TEST_OBIS])
        assert value.count(b"\x1b") == 4 and len(value) == 7
        assert all(m.crc_ok for m in d["messages"])


# ------------------------------------------------------------------ encode_file


def test_encode_file_example_reading():
    r = {"obis": "1-0:1.8.0", "value": 55432991, "scaler": -1, "unit": 30, "status": 0x182}
    sid = bytes.fromhex("0901454D480000ABD62A")
    frame = enc.encode_file(sid, [r], transaction_id=0x1000, act_sensor_time=4242)
    d = decode_frame(frame)
    assert all(m.crc_ok for m in d["messages"])
    assert [m.tid.hex() for m in d["messages"]] == ["00001000", "00001001", "00001002"]
    assert d["server_id"] == sid
    assert sec_index_of(d["sensor_time"]) == 4242
    e = d["entries"][OBIS_180]
    assert [e[1].value, e[3].value, e[4].value, e[5].value] == [0x182, 30, -1, 55432991]
    assert e[1].raw.hex() == "630182" and e[5].raw.hex() == "65034dd71f"
    assert e[2].kind == "absent" and e[6].kind == "absent"


@pytest.mark.parametrize("crc", ["x25", "kermit"])
def test_encode_file_crc_variants(crc):
    r = [{"obis": "1-0:16.7.0", "value": -51, "unit": 27, "scaler": 0}]
    frame = enc.encode_file(b"\x0a" * 10, r, transaction_id=b"\x00\x00\xff", crc=crc)
    assert frame[-2:] == ref_crc_wire(frame[:-2], crc)
    d = decode_frame(frame, crc)
    assert all(m.crc_ok for m in d["messages"])
    assert [m.tid.hex() for m in d["messages"]] == ["0000ff", "000100", "000101"]
    assert entry_value(d["entries"][OBIS_1670]) == -51
    other = "kermit" if crc == "x25" else "x25"
    with pytest.raises(FrameError):
        unframe(frame, other)


def test_encode_file_rejects_unknown_keys():
    with pytest.raises(ValueError):
        enc.encode_file(b"\x01", [{"obis": "1.8.0", "valeu": 1}], transaction_id=1)


reading_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=6, max_size=6),
            reading_values,
            st.one_of(st.none(), st.integers(0, 2**32 - 1)),
            st.one_of(st.none(), st.integers(0, 255)),
            st.one_of(st.none(), st.integers(-128, 127)),
        ),
        max_size=20,
        unique_by=lambda x: x[0],
    ),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["x25", "kermit"]),
    st.booleans(),
)
def test_any_readings_roundtrip(items, tid, crc, escape_test):
    items = [i for i in items if i[0] != enc.ESCAPE_TEST_OBIS]
    readings = [
        {"obis": o, "value": v, "status": s, "unit": u, "scaler": sc} for o, v, s, u, sc in items
    ]
    frame = enc.encode_file(
        b"\x0b" * 10, readings, transaction_id=tid, crc=crc, escape_test=escape_test,
        act_sensor_time=tid,
    )
    d = decode_frame(frame, crc)
    assert all(m.crc_ok for m in d["messages"])
    assert sec_index_of(d["sensor_time"]) == tid
    for o, v, s, u, sc in items:
        e = d["entries"][o]
        expect_v = None if v == b"" else v
        assert (e[1].value, e[3].value, e[4].value, e[5].value) == (s, u, sc, expect_v)


# ------------------------------------------------------------------ real dumps


S2 = bytes.fromhex(
    "1b1b1b1b010101017605080e4fb36200620072630101760107ffffffffffff0502af6fe70b0a014546522102"
    "cd630c7262016502af6fe40163ca28007605080e4fb462006200726307017707ffffffffffff0b0a01454652"
    "2102cd630c070100620affff7262016502af6fe4f10677070100603201010101010104454652017707010060"
    "0100ff010101010b0a014546522102cd630c0177070100010800ff641c58047262016502af6fe4621e52ff65"
    "016d59500177070100020800ff017262016502af6fe4621e52ff650286c63b0177070100100700ff0101621b"
    "520052f70177070100200700ff0101622352ff6309310177070100340700ff0101622352ff63093a01770701"
    "00480700ff0101622352ff63093701770701001f0700ff0101622152fe62680177070100330700ff01016221"
    "52fe62b80177070100470700ff0101622152fe62740177070100510701ff0101620852005279017707010051"
    "0702ff0101620852005300ee0177070100510704ff010162085200530108017707010051070fff0101620852"
    "00530120017707010051071aff0101620852005300e301770701000e0700ff0101622c52ff6301f401770701"
    "0000020000010101010630332e30300177070100605a0201010101010342bd01770701006161000001010101"
    "030000017707010060320104010101010850312e322e31320177070100603204040101010103042201010163"
    "5256007605080e4fb56200620072630201710163fa1200001b1b1b1b1a01fd46"
)
S3 = bytes.fromhex(
    "1b1b1b1b010101017607000c05de60f1620062007263010176010107000c0282cafb0b0901454d480000abd6"
    "2a010163ea5f007607000c05de60f2620062007263070177010b0901454d480000abd62a070100620affff72"
    "620165028215f37e77078181c78203ff0101010104454d480177070100000000ff010101010f31454d483030"
    "31313236313438320177070100000009ff010101010b0901454d480000abd62a0177070100010800ff640102"
    "a001621e52ff5600034dd71f0177070100020800ff640102a001621e52ff560000116bbf0177070100010801"
    "ff0101621e52ff5600000000000177070100020801ff0101621e52ff560000116bbf0177070100010802ff01"
    "01621e52ff5600034dd71f0177070100020802ff0101621e52ff5600000000000177070100100700ff010162"
    "1b52ff55fffffdfe0177070100240700ff0101621b52ff55000000000177070100380700ff0101621b52ff55"
    "ffffed5301770701004c0700ff0101621b52ff55000010ab0177078181c78205ff010101018302c589dde684"
    "39c20d18cee93dbe78f31c5631ebd3c08854aca19472b39f1c2dd4179d445b05dfd68c3de8ca1a05bdc92c01"
    "010163d727007607000c05de60f562006200726302017101638e9e001b1b1b1b1a004c66"
)
S4 = bytes.fromhex(
    "1b1b1b1b0101010176040000016200620072650000010176010107000005e370330b0a01484c59020005dc4b"
    "010163d7210076040000026200620072650000070177010b0a01484c59020005dc4b01017c77070100603201"
    "010101010104484c590177070100600100ff010101010b0a01484c59020005dc4b0177070100010800ff6500"
    "0000046505e37033621e52ff6504c2bfcc0177070100020800ff65000000046505e37033621e52ff65002d3d"
    "840177070100100700ff0101621b520052000177070100200700ff0101622352ff63090301770701001f0700"
    "ff0101622152fe62000177070100510704ff010162085200620001770701000e0700ff0101622c52ff6301f3"
    "0177070100000200000101010109322e30312e3030310177070100605a020101010101053032463401770701"
    "00600500ff01010101650000000401010163682f00760400000362006200726500000201710163e823000000"
    "1b1b1b1b1a021af2"
)
# SmlLib tests/test_frames.py "Frame1" (DZG) and "Frame2" (Holley, X-25)
DZG = bytes.fromhex(
    "1b1b1b1b0101010176051c414c02620062007263010176010102310b0a01445a47000282c0b0726201650547"
    "1c2a620263f9380076051d414c02620062007263070177010b0a01445a47000282c0b0070100620affff7262"
    "016505471c2a7477070100603201010172620162006200520004445a470177070100600100ff017262016200"
    "620052000b0a01445a47000282c0b00177070100010800ff641c01047262016200621e520363344f01770701"
    "00020800ff017262016200621e520362000101016393770076051e414c026200620072630201710163e6ba00"
    "000000001b1b1b1b1a04dad0"
)
HLY = bytes.fromhex(
    "1b1b1b1b0101010176040000016200620072650000010176010107000002dba23c0b0a01484c5902000424a0"
    "010163945b0076040000026200620072650000070177010b0a01484c5902000424a00101f104770701006032"
    "01010101010104484c590177070100600100ff010101010b0a01484c5902000424a00177070100010800ff65"
    "001c81046502dba23d621e52ff6502aea1320177070100020800ff65001c81046502dba23d621e52ff620001"
    "77070100100700ff0101621b52005300890177070100200700ff0101622352ff6309280177070100340700ff"
    "0101622352ff6309290177070100480700ff0101622352ff63092201770701001f0700ff0101622152fe6229"
    "0177070100330700ff0101622152fe624e0177070100470700ff0101622152fe622e0177070100510701ff01"
    "016208520062f00177070100510702ff01016208520062780177070100510704ff0101620852006301100177"
    "07010051070fff010162085200630138017707010051071aff01016208520063011101770701000e0700ff01"
    "01622c52ff6301f40177070100000200000101010109312e30322e3030370177070100605a02010101010105"
    "413031410177070100600500ff0101010165001c810401010163fc1e00760400000362006200726500000201"
    "710163e8230000001b1b1b1b1a0222ed"
)
DUMPS = {"S1-EBZ": S1, "S2-EFR": S2, "S3-EMH": S3, "S4-HLY": S4, "DZG": DZG, "HLY-2": HLY}


def _arg(node: Node, exact: bool) -> Any:
    """A decoded element -> what encode_file takes. ``exact`` keeps integer widths."""
    if node.kind == "absent":
        return None
    if node.kind == "octet":
        return node.value
    if node.kind == "bool":
        return node.value
    if node.kind in ("uint", "int"):
        cls = UInt if node.kind == "uint" else Int
        return cls(node.value, node.width if exact else None)
    raise AssertionError(f"unexpected {node.kind}")


def _time_arg(node: Node, exact: bool) -> Any:
    if node.kind == "absent":
        return None
    if node.kind == "uint":  # the DTZ541's bare Unsigned32
        return Raw(enc.uint(node.value, node.width if exact else None))
    tag, value = node.value
    assert tag.value in (1, 2)
    f = enc.sec_index if tag.value == 1 else enc.timestamp
    return f(_arg(value, exact))


def _all_shortest(node: Node) -> bool:
    if node.kind == "list":
        return all(_all_shortest(c) for c in node.value)
    if node.kind == "uint":
        return node.width == max(1, (node.value.bit_length() + 7) // 8)
    if node.kind == "int":
        return node.raw == enc.sint(node.value)
    return True


def _values(node: Node) -> Any:
    if node.kind == "list":
        return [_values(c) for c in node.value]
    return node.value


def reencode(frame: bytes, exact: bool) -> tuple[bytes, bool]:
    """Decodes a dump and encodes its content again; also says whether the dump used the
    shortest integers everywhere (CRC fields excepted)."""
    d = decode_frame(frame)
    op, gl, cl = (m.body.value for m in d["messages"])
    tag_widths = {m.tag.width for m in d["messages"]}
    assert len(tag_widths) == 1
    assert gl[5].kind == gl[6].kind == cl[0].kind == "absent"
    assert op[0].kind == "absent"
    assert _arg(op[1], True) == _arg(gl[0], True)  # one client_id serves both
    readings = []
    for e in gl[4].value:
        obj, status, val_time, unit, scaler, value, sig = e.value
        readings.append(
            {
                "obis": obj.value,
                "status": _arg(status, exact),
                "val_time": _time_arg(val_time, exact),
                "unit": _arg(unit, exact),
                "scaler": _arg(scaler, exact),
                "value": _arg(value, exact),
                "signature": _arg(sig, exact),
            }
        )
    out = enc.encode_file(
        d["server_id"],
        readings,
        transaction_id=[m.tid for m in d["messages"]],
        act_sensor_time=_time_arg(gl[3], exact),
        client_id=_arg(op[1], exact),
        req_file_id=op[2].value,
        ref_time=_time_arg(op[4], exact),
        sml_version=_arg(op[5], exact),
        list_name=_arg(gl[2], exact),
        tag_width=tag_widths.pop() if exact else None,
        always_pad=d["pad"] == 4,
    )
    shortest = all(_all_shortest(m.body) and _all_shortest(m.tag) for m in d["messages"])
    return out, shortest


@pytest.mark.parametrize("name", DUMPS)
def test_dumps_are_valid(name):
    d = decode_frame(DUMPS[name])
    assert all(m.crc_ok for m in d["messages"])


@pytest.mark.parametrize("name", DUMPS)
def test_reencoding_dump_with_its_widths_is_byte_exact(name):
    out, _ = reencode(DUMPS[name], exact=True)
    assert out.hex() == DUMPS[name].hex()


@pytest.mark.parametrize("name", DUMPS)
def test_reencoding_dump_with_shortest_integers(name):
    dump = DUMPS[name]
    out, shortest = reencode(dump, exact=False)
    d_in, d_out = decode_frame(dump), decode_frame(out)
    assert all(m.crc_ok for m in d_out["messages"])
    assert d_out["server_id"] == d_in["server_id"]
    assert list(d_out["entries"]) == list(d_in["entries"])
    for k, e in d_in["entries"].items():
        assert [_values(n) for n in d_out["entries"][k]] == [_values(n) for n in e]
        assert entry_value(d_out["entries"][k]) == entry_value(e)
    if shortest:
        assert out == dump
    else:
        assert len(out) < len(dump)


def test_which_dumps_use_shortest_integers():
    assert {n for n, f in DUMPS.items() if reencode(f, exact=False)[1]} == {"S2-EFR", "DZG"}


def test_dump_values_match_the_design_note():
    d = decode_frame(S1)
    e = d["entries"][OBIS_180]
    assert (entry_value(e), e[4].value, e[1].value) == (2887714975495, -5, 0x010180)
    assert entry_value(d["entries"][OBIS_1670]) == 80902
    assert sec_index_of(d["sensor_time"]) == 98854144
    d = decode_frame(S2)
    assert entry_value(d["entries"][OBIS_1670]) == -9
    assert entry_value(d["entries"][OBIS_180]) == 23943504
    d = decode_frame(S3)
    assert entry_value(d["entries"][OBIS_1670]) == -514
    assert entry_value(d["entries"][OBIS_180]) == 55432991
    assert len(entry_value(d["entries"][bytes.fromhex("8181C78205FF")])) == 48
    d = decode_frame(S4)
    assert entry_value(d["entries"][OBIS_180]) == 79871948
    assert d["entries"][OBIS_180][2].raw.hex() == "6505e37033"  # bare valTime
