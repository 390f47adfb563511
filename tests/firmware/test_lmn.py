"""LMN-1 frame detection (smgwfw.lmn): the SML dumps of meter-protocols.md §4.7 and the HDLC
examples of §5.2 are found whole, byte by byte, in random chunks and between garbage; damaged,
truncated, oversized and interrupted frames are reported with their reason; random input never
raises, never grows a buffer and never keeps the detector from finding the next good frame."""

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import lmn

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "sml_frames.json")
                     .read_text())
WIRE = {v["name"].split(" ")[0]: bytes.fromhex(v["hex"]) for v in VECTORS}
S1 = WIRE["S1"]
ESCAPED = WIRE["escaped:"]
KERMIT = WIRE["KERMIT:"]
START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
SIL = lmn.SILENCE_MS


def frames(det):
    out = []
    while (f := det.next_frame()) is not None:
        out.append(f)
    return out


def checks(det):
    return [lmn.CHECK_NAMES[f[1]] for f in frames(det)]


def feed_chunks(det, data, rng, t=0, max_chunk=64):
    i = 0
    while i < len(data):
        k = rng.randint(1, max_chunk)
        det.feed(data[i:i + k], t)
        i += k


def x25(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
    return c ^ 0xFFFF


def sml(payload, pp=None, crc="x25"):
    # an SML transport v1 frame around already escaped file data
    pad = (-len(payload)) % 4 if pp is None else pp
    raw = START + payload + bytes((-len(payload)) % 4) + b"\x1b\x1b\x1b\x1b\x1a" + bytes([pad])
    c = x25(raw)
    return raw + bytes([c & 0xFF, c >> 8])


# ============================================================================= SML: vectors

def test_vector_file_covers_every_dump_of_section_4_7():
    text = (Path("/work/shared/design/meter-protocols.md").read_text()
            if Path("/work/shared/design/meter-protocols.md").exists() else None)
    for name in ("S1", "S2", "S3", "S4", "S5"):
        assert name in WIRE
    if text is not None:
        for name in ("S1", "S2", "S3", "S4"):
            assert WIRE[name].hex() in text


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"][:24] for v in VECTORS])
@pytest.mark.parametrize("how", ["whole", "bytes", "chunks", "garbage"])
def test_sml_vector(v, how):
    wire = bytes.fromhex(v["hex"])
    d = lmn.SmlDetector()
    if how == "whole":
        d.feed(wire, 100)
    elif how == "bytes":
        for b in wire:
            d.feed(bytes([b]), 100)
    elif how == "chunks":
        feed_chunks(d, wire, random.Random(len(wire)), 100)
    else:
        d.feed(b"\x00\x1b\x1b\x1b\xff" + wire[:5], 100)
        d.feed(wire[5:] + b"\x1b\x1b\x1b\x1b\x01\x01", 100)
    got = frames(d)
    assert len(got) == 1
    frame, check, t0 = got[0]
    assert type(frame) is bytes and frame == wire
    assert lmn.CHECK_NAMES[check] == v["check"]
    assert t0 == 100
    good = v["check"] in ("x25", "kermit")
    assert d.counters["frames"] == (1 if good else 0)
    assert d.counters["kermit"] == (1 if v["check"] == "kermit" else 0)
    assert d.counters["garbage_bytes"] == (5 if how == "garbage" else 0)
    assert d.in_frame() == (how == "garbage")  # the trailing start prefix is pending


def test_dzg_four_pad_bytes_accepted_with_max_pad_4():
    s5 = WIRE["S5"]
    assert s5[-3] == 4
    d = lmn.SmlDetector(max_pad=4)
    d.feed(s5, 0)
    assert checks(d) == ["x25"]
    d = lmn.SmlDetector()
    d.feed(s5, 0)
    assert checks(d) == ["bad_pad"] and d.counters["bad_pad"] == 1


def test_all_vectors_in_one_stream_with_garbage_between():
    rng = random.Random(7)
    stream = bytearray()
    for v in VECTORS:
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(40))).replace(b"\x1b", b"")
        stream += bytes.fromhex(v["hex"])
    for seed in range(5):
        # nobody reads until the end: the queue keeps the newest four
        d = lmn.SmlDetector()
        feed_chunks(d, bytes(stream), random.Random(seed), max_chunk=100)
        got = frames(d)
        assert [f for f, _, _ in got] == [bytes.fromhex(v["hex"]) for v in VECTORS[-4:]]
        assert d.counters["overrun"] == len(VECTORS) - 4
        assert d.counters["frames"] + d.counters["bad_pad"] == len(VECTORS)


def test_all_vectors_in_one_stream_read_as_they_come():
    rng = random.Random(3)
    d = lmn.SmlDetector()
    got = []
    for v in VECTORS:
        d.feed(b"\x42\x1b\x1b" * rng.randrange(5), 0)
        feed_chunks(d, bytes.fromhex(v["hex"]), rng)
        got += frames(d)
    assert [lmn.CHECK_NAMES[c] for _, c, _ in got] == [v["check"] for v in VECTORS]
    assert [f for f, _, _ in got] == [bytes.fromhex(v["hex"]) for v in VECTORS]
    assert d.counters["overrun"] == 0


def test_escaped_sequences_do_not_end_or_restart_the_frame():
    # the data holds 1B1B1B1B 01010101 and 1B1B1B1B 1A02.. on 4-byte boundaries (sent escaped)
    assert ESCAPED.count(b"\x1b" * 8) == 4
    for step in (1, 3, 4, 5, 8, len(ESCAPED)):
        d = lmn.SmlDetector()
        for i in range(0, len(ESCAPED), step):
            d.feed(ESCAPED[i:i + step], 0)
        assert frames(d) == [(ESCAPED, lmn.CHECK_X25, 0)]
        assert d.counters["truncated"] == 0 and d.counters["bad_escape"] == 0


def test_kermit_frame():
    d = lmn.SmlDetector()
    d.feed(KERMIT, 5)
    assert frames(d) == [(KERMIT, lmn.CHECK_KERMIT, 5)]
    assert d.counters["kermit"] == 1 and d.counters["frames"] == 1


@pytest.mark.parametrize("pos", [20, 200, -2, -1])
def test_bad_crc(pos):
    bad = bytearray(S1)
    bad[pos] ^= 0x10
    d = lmn.SmlDetector()
    d.feed(bytes(bad) + WIRE["S3"], 0)
    assert checks(d) == ["bad_crc", "x25"]
    assert d.counters["bad_crc"] == 1 and d.counters["frames"] == 1


def test_pad_count_out_of_range_or_larger_than_the_data():
    d = lmn.SmlDetector()
    d.feed(sml(b"\x76\x01\x02\x03", pp=5), 0)
    d.feed(sml(b"", pp=1), 0)  # one pad byte claimed, no data at all
    d.feed(sml(b"\x76\x01\x02", pp=1), 0)
    assert checks(d) == ["bad_pad", "bad_pad", "x25"]


def test_unknown_escape_is_reported_and_the_next_frame_found():
    bad = START + b"\x76\x01\x02\x03" + b"\x1b\x1b\x1b\x1b\x02\x02\x02\x02" + b"\x00" * 8
    d = lmn.SmlDetector()
    d.feed(bad + S1, 0)
    got = frames(d)
    assert [lmn.CHECK_NAMES[c] for _, c, _ in got] == ["bad_escape", "x25"]
    assert got[0][0] == bad[:20] and got[1][0] == S1


def test_unknown_escape_overlapping_a_real_start_resyncs_inside_it():
    # garbage opens a false frame; the real start then begins 1 byte before an aligned word, so
    # the detector sees the aligned "escape" 1B1B1B1B + 1B010101 (unknown) and must find the real
    # start one byte into it
    junk = START + b"\x11\x22\x33\x44\x1b"
    d = lmn.SmlDetector()
    d.feed(junk + S1, 0)
    got = frames(d)
    assert [lmn.CHECK_NAMES[c] for _, c, _ in got] == ["bad_escape", "x25"]
    assert got[-1][0] == S1


def test_new_start_inside_a_frame_truncates_it():
    cut = S1[:100]  # 100 is a multiple of 4: the next start is on a word boundary
    d = lmn.SmlDetector()
    d.feed(cut + WIRE["S3"], 0)
    got = frames(d)
    assert [(f, lmn.CHECK_NAMES[c]) for f, c, _ in got] == [(cut, "truncated"),
                                                           (WIRE["S3"], "x25")]
    assert d.counters["truncated"] == 1 and d.counters["timeouts"] == 0


def test_unaligned_truncation_is_ended_by_the_silence():
    # a frame cut at an odd length hides the next start (not on a word boundary); the meter's
    # pause before its next push ends it
    cut = S1[:101]
    d = lmn.SmlDetector()
    d.feed(cut + WIRE["S3"], 0)
    assert frames(d) == []
    d.poll(SIL)
    assert frames(d) == []  # exactly silence_ms: still waiting
    d.poll(SIL + 1)
    got = frames(d)
    assert len(got) == 1 and got[0][1] == lmn.CHECK_TRUNCATED
    assert got[0][0] == cut + WIRE["S3"]
    d.feed(WIRE["S4"], 2000)
    assert frames(d) == [(WIRE["S4"], lmn.CHECK_X25, 2000)]


def test_silence_in_the_middle_drops_the_partial_frame():
    d = lmn.SmlDetector()
    d.feed(S1[:200], 1000)
    d.feed(S1[200:], 1000 + SIL + 1)  # the rest after a pause: garbage, no start in it
    got = frames(d)
    assert got == [(S1[:200], lmn.CHECK_TRUNCATED, 1000)]
    assert d.counters["timeouts"] == 1
    assert d.counters["garbage_bytes"] == len(S1) - 200
    assert not d.in_frame()
    d.feed(S1, 5000)
    assert frames(d) == [(S1, lmn.CHECK_X25, 5000)]


def test_pauses_shorter_than_the_silence_are_fine():
    d = lmn.SmlDetector()
    t = 0
    for i in range(0, len(S1), 10):
        d.feed(S1[i:i + 10], t)
        t += SIL  # a gap of exactly silence_ms is not a silence
    assert checks(d) == ["x25"]


def test_empty_feed_runs_the_silence_timer_like_poll():
    for cls, wire in ((lmn.SmlDetector, S1), (lmn.HdlcDetector, I_FRAME)):
        d = cls()
        d.feed(wire[:20], 0)
        d.feed(b"", SIL + 1)
        assert d.counters["timeouts"] == 1 and not d.in_frame()


def test_start_sequence_split_by_a_silence_is_not_a_start():
    d = lmn.SmlDetector()
    d.feed(S1[:6], 0)
    assert d.in_frame()
    d.poll(SIL + 1)
    assert not d.in_frame()
    assert d.counters["garbage_bytes"] == 6 and d.counters["timeouts"] == 0
    d.feed(S1[6:], SIL + 2)
    assert frames(d) == []


def test_first_byte_ms_is_when_the_start_began():
    d = lmn.SmlDetector()
    d.feed(b"junk", 10)
    d.feed(S1[:3], 20)
    d.feed(S1[3:50], 30)
    d.feed(S1[50:], 40)
    assert frames(d)[0][2] == 20


def test_clock_wraps_at_2_30():
    d = lmn.SmlDetector()
    top = (1 << 30) - 5
    d.feed(S1[:100], top)
    d.feed(S1[100:], 20)  # 25 ms later, across the wrap
    assert checks(d) == ["x25"] and d.counters["timeouts"] == 0


def test_oversized_frame_is_skipped_without_growing_the_buffer():
    d = lmn.SmlDetector(max_frame=256)
    buf = d._buf
    d.feed(S1 + ESCAPED + S1 + WIRE["S3"], 0)  # no pause between them
    got = frames(d)
    assert [(lmn.CHECK_NAMES[c], len(f)) for f, c, _ in got] == [
        ("oversized", 0), ("x25", len(ESCAPED)), ("oversized", 0), ("oversized", 0)]
    assert d.counters["oversized"] == 3 and d.counters["garbage_bytes"] == 0
    assert d._buf is buf and len(d._buf) == 256


def test_oversized_byte_by_byte_then_a_good_frame():
    d = lmn.SmlDetector(max_frame=128)
    for b in S1 + ESCAPED:
        d.feed(bytes([b]), 0)
    assert checks(d) == ["oversized", "x25"]


def test_frame_of_exactly_max_frame_bytes():
    d = lmn.SmlDetector(max_frame=len(S1))
    d.feed(S1, 0)
    assert checks(d) == ["x25"]
    d = lmn.SmlDetector(max_frame=len(S1) - 1)
    d.feed(S1, 0)
    assert checks(d) == ["oversized"]


def test_queue_keeps_the_newest_frames():
    d = lmn.SmlDetector(queue_len=4)
    for i in range(6):
        d.feed(sml(b"\x76" + bytes([i]) * 3), i)
    assert d.pending() == 4
    got = frames(d)
    assert [t for _, _, t in got] == [2, 3, 4, 5]
    assert d.counters["overrun"] == 2 and d.counters["frames"] == 6


def test_memoryview_and_bytearray_input():
    d = lmn.SmlDetector()
    d.feed(memoryview(S1)[:100], 0)
    d.feed(bytearray(S1[100:]), 0)
    assert checks(d) == ["x25"]


def test_rejects_silly_sizes():
    with pytest.raises(ValueError):
        lmn.SmlDetector(max_frame=8)
    with pytest.raises(ValueError):
        lmn.HdlcDetector(queue_len=0)


def test_silence_default_derived_from_9600_baud():
    assert lmn.silence_ms_for(9600) == 204 == lmn.SILENCE_MS
    assert lmn.silence_ms_for(115200, 50) == 58


# ================================================================================== HDLC

SNRM = bytes.fromhex("7EA0070321930F017E")
DISC = bytes.fromhex("7EA00703215303C77E")
SNRM4 = bytes.fromhex("7EA00A00020023F193232E7E")
# a public SNRM with the parameter negotiation information field (HCS D97D, FCS 8644)
SNRM_INFO = bytes.fromhex("7EA020032193" "7DD9" "8180140502040006020400070400000001080400000007"
                          "4486" "7E")


def hdlc(dest, src, control, info=b"", segmented=False, fix_len=None):
    head_len = 2 + len(dest) + len(src) + 1
    length = head_len + (2 + len(info) if info else 0) + 2
    if fix_len is not None:
        length = fix_len
    fmt = 0xA000 | (0x0800 if segmented else 0) | length
    head = bytes([fmt >> 8, fmt & 0xFF]) + dest + src + bytes([control])
    body = head
    if info:
        h = x25(head)
        body += bytes([h & 0xFF, h >> 8]) + info
    f = x25(body)
    return b"\x7e" + body + bytes([f & 0xFF, f >> 8]) + b"\x7e"


I_FRAME = hdlc(b"\x00\x02\x00\x23", b"\x21", 0x10, b"\xe6\xe6\x00" + bytes(range(40)))


def test_hdlc_test_frame_builder_matches_the_worked_examples():
    assert hdlc(b"\x03", b"\x21", 0x93) == SNRM
    assert hdlc(b"\x03", b"\x21", 0x53) == DISC
    assert hdlc(b"\x00\x02\x00\x23", b"\xf1", 0x93) == SNRM4
    assert len(SNRM_INFO) == 34


@pytest.mark.parametrize("wire,dest,src,control,info_len", [
    (SNRM, b"\x03", b"\x21", 0x93, 0),
    (DISC, b"\x03", b"\x21", 0x53, 0),
    (SNRM4, b"\x00\x02\x00\x23", b"\xf1", 0x93, 0),
    (SNRM_INFO, b"\x03", b"\x21", 0x93, 23),
    (I_FRAME, b"\x00\x02\x00\x23", b"\x21", 0x10, 43),
])
@pytest.mark.parametrize("how", ["whole", "bytes", "chunks", "garbage"])
def test_hdlc_examples(wire, dest, src, control, info_len, how):
    d = lmn.HdlcDetector()
    if how == "whole":
        d.feed(wire, 9)
    elif how == "bytes":
        for b in wire:
            d.feed(bytes([b]), 9)
    elif how == "chunks":
        feed_chunks(d, wire, random.Random(len(wire)), 9, max_chunk=5)
    else:
        d.feed(b"\x01\x7e\x7e\x33\xa0\x7e", 9)  # garbage, idle flags and a false start
        d.feed(wire + b"\x55", 9)
    got = frames(d)
    assert len(got) == 1
    frame, check, t0, info = got[0]
    assert frame == wire and check == lmn.CHECK_X25 and t0 == 9
    assert info["dest"] == dest and info["src"] == src and info["control"] == control
    assert info["length"] == len(wire) - 2 and info["info_len"] == info_len
    assert info["format"] == 0xA000 | (len(wire) - 2) and info["segmented"] is False
    assert d.counters["frames"] == 1


def test_hdlc_address_parts():
    assert lmn.hdlc_address(b"\x00\x02\x00\x23") == (1, 17)
    assert lmn.hdlc_address(b"\x03") == (1, None)
    assert lmn.hdlc_address(b"\x02\x23") == (1, 17)


def test_hdlc_shared_and_repeated_flags():
    shared = SNRM + DISC[1:] + SNRM4[1:] + I_FRAME[1:]
    for step in (1, 2, 7, len(shared)):
        d = lmn.HdlcDetector()
        for i in range(0, len(shared), step):
            d.feed(shared[i:i + step], 0)
        assert [f for f, _, _, _ in frames(d)] == [SNRM, DISC, SNRM4, I_FRAME]
    d = lmn.HdlcDetector()
    d.feed(b"\x7e\x7e\x7e" + SNRM + b"\x7e\x7e" + DISC + DISC, 0)
    assert [f for f, _, _, _ in frames(d)] == [SNRM, DISC, DISC]
    assert d.counters["garbage_bytes"] == 0


def test_hdlc_bad_fcs_and_bad_hcs():
    bad_fcs = bytearray(I_FRAME)
    bad_fcs[-2] ^= 1
    bad_info = bytearray(I_FRAME)
    bad_info[20] ^= 0x40  # in the information field: FCS fails, HCS holds
    bad_hcs = bytearray(I_FRAME)
    bad_hcs[9] ^= 1  # the HCS itself
    bad_head = bytearray(SNRM)
    bad_head[5] ^= 0x20  # control byte of a frame without HCS: the FCS catches it
    d = lmn.HdlcDetector(queue_len=8)
    d.feed(bytes(bad_fcs) + bytes(bad_info) + bytes(bad_hcs) + bytes(bad_head) + SNRM, 0)
    got = frames(d)
    assert [lmn.CHECK_NAMES[c] for _, c, _, _ in got] == ["bad_crc", "bad_crc", "bad_hcs",
                                                          "bad_crc", "x25"]
    assert got[2] == (bytes(bad_hcs[:11]), lmn.CHECK_BAD_HCS, 0, None)  # up to the HCS
    assert d.counters["bad_crc"] == 3 and d.counters["bad_hcs"] == 1
    assert got[0][3]["control"] == 0x10  # parsed, but not to be trusted: check says why


def test_hdlc_segmentation_bit():
    seg = hdlc(b"\x03", b"\x21", 0x10, b"\xe6\xe7\x00" + bytes(20), segmented=True)
    d = lmn.HdlcDetector()
    d.feed(seg + I_FRAME, 0)
    got = frames(d)
    assert got[0][1] == lmn.CHECK_X25 and got[0][3]["segmented"] is True
    assert got[0][3]["format"] & 0x07FF == len(seg) - 2
    assert got[1][3]["segmented"] is False
    assert d.counters["segmented"] == 1 and d.counters["frames"] == 2


def test_hdlc_length_field_must_match():
    # says 14, has 13 between the flags (the HCS covers the false length, so it holds)
    short = hdlc(b"\x03", b"\x21", 0x10, b"\xe6\xe6\x00\x01", fix_len=14)
    assert len(short) == 15
    long_ = hdlc(b"\x03", b"\x21", 0x93, fix_len=6 + 1)
    long_ = long_[:-1] + b"\x00\x7e"  # one byte too many before the closing flag
    d = lmn.HdlcDetector()
    d.feed(short + b"\x00" + DISC, 0)
    d.feed(long_ + SNRM, 0)
    got = frames(d)
    assert [f for f, _, _, _ in got] == [DISC, SNRM]
    assert d.counters["bad_length"] == 2


def test_hdlc_bad_header_is_not_a_frame_start():
    three = hdlc(b"\x00\x02\x03", b"\x21", 0x93)  # 3-byte address: not allowed
    endless = hdlc(b"\x00\x02\x04\x06\x08", b"\x21", 0x93)  # no end bit within 4 bytes
    hcs_only = b"\x7e\xa0\x09\x03\x21\x10\x00\x00\x00\x00\x7e"  # HCS but no information
    for step in (1, 3, 100):
        d = lmn.HdlcDetector()
        stream = three + endless + hcs_only + SNRM
        for i in range(0, len(stream), step):
            d.feed(stream[i:i + step], 0)
        assert [f for f, _, _, _ in frames(d)] == [SNRM]
        assert d.counters["bad_format"] == 3


def test_hdlc_false_start_does_not_swallow_the_next_frames():
    # noise after a flag that looks like a long frame: its header fails at once, so the frames
    # right behind it (no pause) are found
    noise = [b"\x7e\xa7\xff", b"\x7e\xa0\x7e", b"\x7e\xa3\x00\x03\x21\x10\x12\x34"]
    for junk in noise:
        for step in (1, len(junk) + 30):
            d = lmn.HdlcDetector()
            stream = junk + SNRM + DISC
            for i in range(0, len(stream), step):
                d.feed(stream[i:i + step], 0)
            got = frames(d)
            assert [f for f, c, _, _ in got if c == lmn.CHECK_X25] == [SNRM, DISC]


def test_hdlc_format_type_and_minimum_length():
    d = lmn.HdlcDetector()
    d.feed(b"\x7e\x80\x07\x03\x21\x93\x0f\x01\x7e" + b"\x7e\xa0\x03\x01\x7e" + SNRM, 0)
    assert [f for f, _, _, _ in frames(d)] == [SNRM]
    assert d.counters["garbage_bytes"] > 0


def test_hdlc_silence_in_the_middle():
    d = lmn.HdlcDetector()
    d.feed(I_FRAME[:20], 0)
    d.poll(SIL + 1)
    got = frames(d)
    assert got == [(I_FRAME[:20], lmn.CHECK_TRUNCATED, 0, None)]
    assert d.counters["timeouts"] == 1
    d.feed(I_FRAME[20:] + SNRM, SIL + 2)
    assert [f for f, _, _, _ in frames(d)] == [SNRM]
    # a lone flag followed by silence is not a timeout
    d.feed(b"\x7e", 5000)
    d.poll(6000)
    assert d.counters["timeouts"] == 1 and not d.in_frame()


def test_hdlc_oversized():
    d = lmn.HdlcDetector(max_frame=32)
    buf = d._buf
    d.feed(SNRM_INFO + SNRM[1:] + I_FRAME, 0)
    got = frames(d)
    assert [lmn.CHECK_NAMES[c] for _, c, _, _ in got] == ["oversized", "x25", "oversized"]
    assert got[1][0] == SNRM
    assert d._buf is buf and len(buf) == 32


def test_hdlc_first_byte_ms():
    d = lmn.HdlcDetector()
    d.feed(b"\x55", 1)
    d.feed(b"\x7e", 2)
    d.feed(SNRM[1:4], 3)
    d.feed(SNRM[4:] + DISC[1:5], 4)
    d.feed(DISC[5:], 5)
    assert [t for _, _, t, _ in frames(d)] == [3, 4]


# ====================================================================== fuzz: both detectors

FRAGMENTS = [START, b"\x1b\x1b\x1b\x1b", b"\x1b\x1b\x1b\x1b\x1a\x00", b"\x1b\x1b\x1b\x1b" * 2,
             b"\x7e", b"\x7e\xa0", b"\x7e\xa8\x09", S1[:40], S1[-40:], SNRM, I_FRAME[:15]]

stream_parts = st.lists(st.one_of(st.binary(max_size=80), st.sampled_from(FRAGMENTS)),
                        max_size=30)


@pytest.mark.parametrize("kind", ["sml", "hdlc"])
@given(parts=stream_parts, seed=st.integers(0, 2**16), gaps=st.lists(st.integers(0, 400)))
@settings(max_examples=250, deadline=None)
def test_fuzz_never_raises_never_grows_always_recovers(kind, parts, seed, gaps):
    cls, good = ((lmn.SmlDetector, ESCAPED) if kind == "sml" else (lmn.HdlcDetector, I_FRAME))
    d = cls(max_frame=128, queue_len=3)
    buf = d._buf
    rng = random.Random(seed)
    t = 0
    data = b"".join(parts)
    i = 0
    gi = 0
    while i < len(data):
        k = rng.randint(1, 50)
        d.feed(data[i:i + k], t)
        i += k
        if gi < len(gaps):
            t += gaps[gi]
            gi += 1
        d.poll(t)
        assert d.pending() <= 3
        assert d._buf is buf and len(buf) == 128 and 0 <= d._n <= 128
    for f in frames(d):
        assert type(f[0]) is bytes and len(f[0]) <= 128
    # after one silence the detector is idle and the next good frame is found, whatever came
    t += d.silence_ms + 1
    d.poll(t)
    assert not d.in_frame()
    frames(d)
    d.feed(good, t)
    got = frames(d)
    assert len(got) == 1 and got[0][0] == good and got[0][1] == lmn.CHECK_X25
    assert all(v >= 0 for v in d.counters.values())


@given(st.binary(max_size=3000))
@settings(max_examples=100, deadline=None)
def test_fuzz_garbage_without_start_costs_nothing(data):
    # bytes that hold no start sequence (and no flag) never open a frame: a good frame right
    # behind them, without any pause, is found
    sml_junk = data.replace(b"\x1b", b"\x1c")
    d = lmn.SmlDetector()
    d.feed(sml_junk, 0)
    d.feed(S1, 0)
    assert frames(d) == [(S1, lmn.CHECK_X25, 0)]
    assert d.counters["garbage_bytes"] == len(sml_junk)
    h = lmn.HdlcDetector()
    hd_junk = data.replace(b"\x7e", b"\x7d")
    h.feed(hd_junk + SNRM, 0)
    assert [f for f, _, _, _ in frames(h)] == [SNRM]
    assert h.counters["garbage_bytes"] == len(hd_junk)
