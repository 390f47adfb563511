"""COBS and the frame layer: every frame survives being fed whole, byte by byte and surrounded by
garbage; damaged frames are rejected with their reason; the deframer's buffer never grows."""

import binascii
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import cobs
from smgwfw import frame as fr
from smgwfw.crc import _crc32_py, crc32


def cobs_encode(data: bytes) -> bytes:
    out = bytearray(cobs.max_encoded_len(len(data)))
    n = cobs.encode_into(data, len(data), out, 0)
    return bytes(out[:n])


@pytest.mark.parametrize("data,encoded", [
    (b"", b"\x01"), (b"\x00", b"\x01\x01"), (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"), (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
])
def test_cobs_known_vectors(data, encoded):
    # vectors from the COBS paper's worked examples (Cheshire & Baker) and the 254-byte edge
    assert cobs_encode(data) == encoded
    buf = bytearray(encoded)
    assert bytes(buf[: cobs.decode_in_place(buf, len(buf))]) == data


@given(st.binary(max_size=1100))
@settings(max_examples=500, deadline=None)
def test_cobs_round_trip_and_no_zero(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= cobs.max_encoded_len(len(data))
    buf = bytearray(enc)
    assert bytes(buf[: cobs.decode_in_place(buf, len(buf))]) == data


def test_crc32_matches_binascii_with_and_without_the_native_one():
    for data in (b"", b"123456789", bytes(range(256)) * 3):
        assert crc32(data) == binascii.crc32(data) == _crc32_py(data)
    assert crc32(b"123456789") == 0xCBF43926  # the catalogue check value of CRC-32/ISO-HDLC


def frames_of(wire: bytes, max_payload=64, chunks=None):
    d = fr.Deframer(max_payload)
    got = []

    def on(reason):
        got.append((reason, d.kind, d.sess, d.seq, d.ack, bytes(d.payload())) if reason == 0
                   else (reason,))

    if chunks is None:
        d.feed(wire, 0, on)
    else:
        for i in range(0, len(wire), chunks):
            d.feed(wire[i:i + chunks], 0, on)
    return got


def test_frame_round_trip_whole_bytewise_and_with_garbage():
    enc = fr.Encoder(64)
    w1 = bytes(enc.encode(fr.KIND_DATA, 0x1234, 7, 9, b"\x00hello\x00"))
    w2 = bytes(enc.encode(fr.KIND_ACK, 0x1234, 0, 10, b""))
    want = [(0, fr.KIND_DATA, 0x1234, 7, 9, b"\x00hello\x00"), (0, fr.KIND_ACK, 0x1234, 0, 10, b"")]
    assert frames_of(w1 + w2) == want
    assert frames_of(w1 + w2, chunks=1) == want
    # leading garbage is one bad frame, then both good ones; idle zeros are ignored
    got = frames_of(b"\x05\x99garbage" + w1 + b"\x00\x00" + w2)
    assert got[1:] == want and got[0][0] != 0


def test_damaged_frames_are_rejected_with_their_reason():
    enc = fr.Encoder(64)
    good = bytearray(enc.encode(fr.KIND_DATA, 1, 2, 3, b"abc"))
    flipped = bytearray(good)
    flipped[5] ^= 0x10
    assert frames_of(bytes(flipped)) == [(fr.BAD_CRC,)] or frames_of(bytes(flipped))[0][0] in (
        fr.BAD_CRC, fr.BAD_COBS)
    assert frames_of(b"\x02\x01\x00") == [(fr.BAD_LENGTH,)]
    assert frames_of(b"\x05\x01\x00") == [(fr.BAD_COBS,)]

    def raw_frame(ver, kind):
        body = struct.pack(">BBHHH", ver, kind, 0, 0, 0)
        body += struct.pack(">I", crc32(body))
        return cobs_encode(body) + b"\x00"

    assert frames_of(raw_frame(2, 0)) == [(fr.BAD_VERSION,)]
    assert frames_of(raw_frame(1, 9)) == [(fr.BAD_KIND,)]


def test_oversized_run_is_skipped_to_the_next_delimiter_without_growing():
    d_cap = fr.wire_capacity(fr.payload_room(64))
    enc = fr.Encoder(64)
    good = bytes(enc.encode(fr.KIND_ACK, 1, 0, 0, b""))
    got = frames_of(b"\x01" * (d_cap * 5) + b"\x00" + good)
    assert got[0] == (fr.TOO_LONG,) and got[1][0] == 0
    with pytest.raises(ValueError):
        enc.encode(fr.KIND_DATA, 0, 0, 0, bytes(65))


@given(st.binary(max_size=3000), st.integers(1, 64))
@settings(max_examples=800, deadline=None)
def test_fuzz_deframer_never_raises(data, chunk):
    frames_of(data, chunks=chunk)


def test_hello_has_room_beyond_a_small_data_limit_but_data_does_not():
    enc = fr.Encoder(64)
    hello = bytes(enc.encode(fr.KIND_HELLO, 0, 0, 0, b"h" * 1500))
    assert frames_of(hello)[0][0] == 0
    big = fr.Encoder(2000)
    data = bytes(big.encode(fr.KIND_DATA, 1, 0, 0, b"d" * 65))
    assert frames_of(data) == [(fr.BAD_LENGTH,)]
    with pytest.raises(ValueError):
        enc.encode(fr.KIND_HELLO, 0, 0, 0, b"h" * (fr.HELLO_MAX + 1))
