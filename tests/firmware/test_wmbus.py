"""wM-Bus PHY/DLL helpers (smgwfw.wmbus): the 3-of-6 table of meter-protocols.md §1.2 both ways,
the EN 13757 CRC's published check values (§1.4), frame formats A and B against the vectors whose
CRCs are given (§1.4, §2.7 V6), every L-field's length, and duplicate marking. Random input never
raises and never reads past the frame."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import wmbus as w

# meter-protocols.md §1.2, written out again here (not imported from the code under test)
TABLE = {0x0: 0b010110, 0x1: 0b001101, 0x2: 0b001110, 0x3: 0b001011, 0x4: 0b011100,
         0x5: 0b011001, 0x6: 0b011010, 0x7: 0b010011, 0x8: 0b101100, 0x9: 0b100101,
         0xA: 0b100110, 0xB: 0b100011, 0xC: 0b110100, 0xD: 0b110001, 0xE: 0b110010,
         0xF: 0b101001}

# §1.4: the OMS N.2.1 telegram rebuilt as frame A with its CRCs (55 bytes on air)
N21_A = bytes.fromhex(
    "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD"
    "013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A")
N21 = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6"
                    "D3529B520EDFF0EA6DEFC99D6D69EBF3")
# §1.4: a real Sontex frame A with its CRCs (wmbusmeters simulations/simulation_dll_crcs.txt)
SONTEX_A = bytes.fromhex(
    "3444EE4D813929271608811D7A51000000046D1912A62B036E0000005170426CE1F1436E00000002FF2C0000"
    "0259D6D0D4090265FC0902FD66A00044C4")
# §2.7 V6: C1 frame B, 195 bytes, CRC 0xBEE3 at offset 126 and 0xF60B at the end
V6_B = bytes.fromhex(
    "C244C5140443054300048C200E900F002C25895E02003B0877D31DA840B17A0E009007100F8FAD4C4E6140"
    "0DA4F3B1F7E273CC4C5C07F93CD20B237345DB39F9A98F8415E1C4B7A25C86E4C22D05C3352FA7E2E56270"
    "31F14643063F1DC8FE2C32459B6F02E4234B447B18E4BFDA8C4DA9B1EDE6CF29D0B2122A3E8B9DEEBEE3E6"
    "DBE6617B4E709EC6B595179CB01C2C0BDE6723A345B708652880C114A58DA07C73AD9EB8ACB17FA0A88F19"
    "BC84CB1FC56672DE8A9603FD0C05010002FD0B2111F60B")


def crc_bitwise(data):
    # EN 13757 CRC, bit by bit: poly 0x3D65, init 0, MSB first, xorout 0xFFFF
    c = 0
    for b in data:
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x3D65) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c ^ 0xFFFF


def build_a(tel):
    # frame A from a telegram (L-field first, no CRCs): CRC after 10 bytes, then per 16
    out = bytearray(tel[:10]) + crc_bitwise(tel[:10]).to_bytes(2, "big")
    for i in range(10, len(tel), 16):
        blk = tel[i:i + 16]
        out += blk + crc_bitwise(blk).to_bytes(2, "big")
    return bytes(out)


def build_b(tel):
    # frame B from a telegram whose L-field is still the frame-A one (without CRCs)
    body = bytearray(tel)
    if len(body) + 2 <= 128:
        body[0] = len(body) + 1
        return bytes(body) + crc_bitwise(body).to_bytes(2, "big")
    if len(body) + 3 > 255:
        return None  # too long for format B
    body[0] = len(body) + 3
    first, rest = bytes(body[:126]), bytes(body[126:])
    return first + crc_bitwise(first).to_bytes(2, "big") + rest + crc_bitwise(rest).to_bytes(
        2, "big")


def encode_ref(data):
    # 3-of-6 by the table above: 12 chips per byte, packed MSB first, odd count padded 0101
    bits = "".join(f"{TABLE[b >> 4]:06b}{TABLE[b & 15]:06b}" for b in data)
    if len(bits) % 8:
        bits += "0101"
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def telegram(rng, l):
    body = bytes([l, 0x44]) + bytes(rng.randrange(256) for _ in range(l - 1))
    return body


# ------------------------------------------------------------------------------------ CRC

def test_crc_check_value_and_published_vectors():
    assert w.crc_en13757(b"123456789") == 0xC2B7
    assert w.crc_en13757(bytes.fromhex("01FD1F01")) == 0xCC22
    assert w.crc_en13757(bytes.fromhex("01FD1F00")) == 0xF147
    assert w.crc_en13757(bytes.fromhex("EE449ACE010000802307")) == 0xAABC
    assert w.crc_en13757(SONTEX_A, 0, 10) == 0x811D  # §1.4: the first block's CRC
    assert w.crc_en13757(b"") == crc_bitwise(b"") == 0xFFFF


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_crc_matches_bitwise_and_works_on_slices(data, d):
    assert w.crc_en13757(data) == crc_bitwise(data)
    a = d.draw(st.integers(0, len(data)))
    b = d.draw(st.integers(a, len(data)))
    assert w.crc_en13757(memoryview(bytearray(data)), a, b) == crc_bitwise(data[a:b])


# ---------------------------------------------------------------------------------- 3-of-6

def test_code_table_is_the_published_one_with_three_ones_each():
    assert bytes(TABLE[i] for i in range(16)) == w.CODES
    assert all(bin(c).count("1") == 3 for c in w.CODES)
    assert len(set(w.CODES)) == 16


def test_worked_example_and_every_byte_round_trip():
    assert w.encode_3of6(b"\x2e\x44") == bytes.fromhex("3B271C")  # §1.2
    assert w.decode_3of6(bytes.fromhex("3B271C"), 2) == b"\x2e\x44"
    every = bytes(range(256))
    chips = encode_ref(every)
    assert w.encode_3of6(every) == chips
    assert w.decode_3of6(chips, 256) == every
    for b in range(256):  # odd length: one byte in 1.5 chip bytes
        assert w.decode_3of6(encode_ref(bytes([b])), 1) == bytes([b])


def test_every_invalid_symbol_is_a_coding_error_in_every_position():
    valid = set(TABLE.values())
    good = encode_ref(b"\x12\x34")
    for sym in range(64):
        if sym in valid:
            continue
        for pos in range(4):  # replace the pos-th 6-bit group
            v = int.from_bytes(good, "big")
            shift = 18 - 6 * pos
            v = (v & ~(63 << shift)) | (sym << shift)
            assert w.decode_3of6(v.to_bytes(3, "big"), 2) is None, (sym, pos)
        v = (int.from_bytes(encode_ref(b"\x7f"), "big") & 0x00F) | (sym << 10)
        assert w.decode_3of6(v.to_bytes(2, "big"), 1) is None


def test_decode_into_a_given_buffer_and_short_input():
    dst = bytearray(8)
    assert w.decode_3of6(encode_ref(b"abc"), 3, dst) is dst and dst[:3] == b"abc"
    assert w.decode_3of6(encode_ref(b"abc")[:-1], 3) is None  # one chip byte short
    assert w.decode_3of6(b"", 0) == bytearray()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_3of6_round_trip(data):
    chips = w.encode_3of6(data)
    assert chips == encode_ref(data) and len(chips) == (3 * len(data) + 1) // 2
    assert w.decode_3of6(chips, len(data)) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 60))
def test_decode_of_anything_never_raises(src, n):
    out = w.decode_3of6(src, n)
    assert out is None or len(out) == n


# --------------------------------------------------------------------------- frame formats

def test_frame_a_lengths():
    assert w.frame_a_len(0x2E) == 55  # §1.4 / rtl-wmbus: 1 + 46 + 2 * 4
    assert w.frame_a_len(9) == 12 and w.frame_a_len(8) == 0
    for l in range(9, 256):
        assert w.frame_a_len(l) == 1 + l + 2 * (1 + -(-(l - 9) // 16))
        assert w.t1_chip_len(l) == (3 * w.frame_a_len(l) + 1) // 2
    assert w.t1_chip_len(255) == 435


def test_frame_b_lengths():
    assert w.frame_b_len(0xC2) == 195
    assert w.frame_b_len(10) == 0 and w.frame_b_len(11) == 12
    assert w.frame_b_len(128) == 0 and w.frame_b_len(129) == 0  # block 3 would be empty
    assert w.frame_b_len(130) == 131 and w.frame_b_len(127) == 128


def test_frame_a_published_vectors():
    assert w.frame_a_check(N21_A) == (N21, True)
    tel, ok = w.frame_a_check(SONTEX_A)
    # split by hand: 10 bytes | 811D | 16 bytes | 5170 | 16 bytes | D6D0 | 11 bytes | 44C4
    assert ok and tel == bytes.fromhex(
        "3444EE4D813929271608" "7A51000000046D1912A62B036E000000"
        "426CE1F1436E00000002FF2C00000259" "D4090265FC0902FD66A000")
    assert build_a(tel) == SONTEX_A
    # trailing bytes after the frame are ignored; the frame can start inside a buffer
    assert w.frame_a_check(b"\x00\x00" + N21_A + b"junk", 2) == (N21, True)


def test_frame_a_damage_in_any_block_is_reported_but_returned():
    for pos in (0, 5, 10, 11, 12, 27, 28, 29, 46, 47, 52, 54):
        bad = bytearray(N21_A)
        bad[pos] ^= 0x01
        tel, ok = w.frame_a_check(bad)
        assert not ok, pos
        if pos != 0:  # the L-field itself keeps the length
            assert len(tel) == len(N21)
    assert w.frame_a_check(N21_A[:-1]) == (None, False)  # shorter than L says
    assert w.frame_a_check(b"\x08" + bytes(20)) == (None, False)  # L < 9
    assert w.frame_a_check(b"") == (None, False)


def test_frame_b_v6_both_crcs_and_the_rebuilt_l():
    tel, ok = w.frame_b_check(V6_B)
    assert ok and len(tel) == 191 and tel[0] == 190  # §2.7 V6: L=190 after stripping
    assert V6_B[126:128] == b"\xbe\xe3" and V6_B[-2:] == b"\xf6\x0b"
    assert tel[1:126] == V6_B[1:126] and tel[126:] == V6_B[128:193]
    for pos in (3, 125, 126, 127, 128, 192, 194):
        bad = bytearray(V6_B)
        bad[pos] ^= 0x80
        assert w.frame_b_check(bad)[1] is False, pos
    assert w.frame_b_check(V6_B[:-1]) == (None, False)


def test_short_frame_b_has_one_crc():
    b = build_b(N21)
    assert len(b) == len(N21) + 2 and b[0] == len(N21) + 1
    assert w.frame_b_check(b) == (N21, True)


@pytest.mark.parametrize("seed", range(3))
def test_frames_a_and_b_of_every_length_round_trip(seed):
    rng = random.Random(seed)
    for l in range(9, 256):
        tel = telegram(rng, l)
        assert w.frame_a_check(build_a(tel)) == (tel, True), l
        fb = build_b(tel)
        if fb is not None:
            assert w.frame_b_check(fb) == (tel, True), l


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_frame_checks_of_anything_never_raise_or_overrun(data):
    for check, length in ((w.frame_a_check, w.frame_a_len), (w.frame_b_check, w.frame_b_len)):
        tel, ok = check(data)
        if tel is None:
            assert ok is False
        else:
            n = length(data[0])
            assert 0 < n <= len(data) and len(tel) == tel[0] + 1 <= n


# ------------------------------------------------------------------------------ duplicates

def test_dedup_marks_copies_within_the_window_only():
    d = w.Dedup(window_ms=1000, size=4)
    assert d.check(N21, 0) is False
    assert d.check(bytearray(N21), 500) is True  # the meter's second copy
    assert d.check(N21, 1000) is True
    assert d.check(N21, 1001) is False  # a new first copy: the window starts again
    assert d.check(N21, 1500) is True
    assert d.check(SONTEX_A, 1500) is False
    assert d.dups == 3


def test_dedup_forgets_the_oldest_and_survives_tick_wrap():
    d = w.Dedup(window_ms=1000, size=2)
    t0 = 0x3FFFFF00
    assert not d.check(b"a", t0)
    assert d.check(b"a", (t0 + 500) & 0x3FFFFFFF)  # across the 2**30 wrap
    assert not d.check(b"b", t0) and not d.check(b"c", t0)  # "a" pushed out
    assert not d.check(b"a", t0)
    assert d.check(b"x", 100) is False
    assert d.check(b"x", 50) is False  # earlier than the first copy: not a copy of it
