# Link frames on the wire: header + payload + CRC-32, COBS-encoded, terminated by 0x00.
#
#   offset size field
#   0      1    version (FRAME_VERSION)
#   1      1    kind: DATA, ACK or HELLO
#   2      2    session tag (big endian): binds DATA/ACK frames to one handshake
#   4      2    seq: DATA sequence number within the session (0 for ACK and HELLO)
#   6      2    ack: next DATA seq the sender expects (cumulative; all before it are consumed)
#   8      n    payload: CBOR (a message for DATA, the hello map for HELLO, empty for ACK)
#   8+n    4    CRC-32 of bytes 0 .. 8+n-1, big endian
#
# Every frame is sent as 0x00, COBS(frame), 0x00: the leading delimiter ends whatever noise was on
# the line before, so that noise costs at most itself and never the next good frame.
#
# The Deframer accumulates wire bytes into one buffer allocated at construction, and reports each
# complete frame (decoded in place) or the reason it was rejected. An over-long run without a
# delimiter is discarded up to the next delimiter, so garbage can never grow a buffer.
import struct

from smgwfw import cobs
from smgwfw.crc import crc32

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


FRAME_VERSION = const(1)
KIND_DATA = const(0)
KIND_ACK = const(1)
KIND_HELLO = const(2)
HEADER_LEN = const(8)
CRC_LEN = const(4)

# Reasons a received frame is rejected (also the names of the link's error counters).
BAD_COBS = const(1)
BAD_LENGTH = const(2)
BAD_CRC = const(3)
BAD_VERSION = const(4)
BAD_KIND = const(5)
TOO_LONG = const(6)

REASONS = ("", "bad_cobs", "bad_length", "bad_crc", "bad_version", "bad_kind", "too_long")


# A HELLO carries the firmware's identity (version, board, the hash of every file), so it gets
# its own room whatever the DATA limit is: both ends must be able to read the other's HELLO
# before they know its limits.
HELLO_MAX = const(2048)


def payload_room(max_payload):
    return max_payload if max_payload > HELLO_MAX else HELLO_MAX


def wire_capacity(max_payload):
    # bytes one frame can occupy on the wire, both delimiters included
    return cobs.max_encoded_len(HEADER_LEN + max_payload + CRC_LEN) + 2


class Encoder:
    # Builds wire frames into buffers owned by this object; the returned memoryview is valid until
    # the next call.
    def __init__(self, max_payload):
        self.max_payload = max_payload
        room = payload_room(max_payload)
        self._raw = bytearray(HEADER_LEN + room + CRC_LEN)
        self._wire = bytearray(wire_capacity(room))
        self._wire_mv = memoryview(self._wire)

    def encode(self, kind, sess, seq, ack, payload):
        n = len(payload)
        if n > (HELLO_MAX if kind == KIND_HELLO else self.max_payload):
            raise ValueError("payload larger than the frame allows")
        raw = self._raw
        struct.pack_into(">BBHHH", raw, 0, FRAME_VERSION, kind, sess, seq, ack)
        raw[HEADER_LEN : HEADER_LEN + n] = payload
        end = HEADER_LEN + n
        struct.pack_into(">I", raw, end, crc32(memoryview(raw)[:end]))
        self._wire[0] = 0
        w = cobs.encode_into(raw, end + CRC_LEN, self._wire, 1)
        self._wire[w] = 0
        return self._wire_mv[: w + 1]


class Deframer:
    def __init__(self, max_payload):
        self.max_payload = max_payload
        self._cap = wire_capacity(payload_room(max_payload))
        self._buf = bytearray(self._cap)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._skipping = False  # discarding an over-long run until the next delimiter
        # The last decoded frame, valid until the next feed():
        self.kind = 0
        self.sess = 0
        self.seq = 0
        self.ack = 0
        self.payload_len = 0

    def payload(self):
        return self._mv[HEADER_LEN : HEADER_LEN + self.payload_len]

    def feed(self, data, start, on_frame):
        # Consumes data[start:] and calls on_frame(reason) for each complete frame: reason 0 means
        # a good frame whose fields are in self.kind/.sess/.seq/.ack/.payload(). Returns nothing;
        # every byte is always consumed.
        n = len(data)
        i = start
        while i < n:
            j = data.find(b"\x00", i)
            end = n if j < 0 else j
            k = end - i
            if k:
                if self._skipping or self._n + k > self._cap:
                    self._skipping = True
                else:
                    self._buf[self._n : self._n + k] = data[i:end]
                    self._n += k
            if j < 0:
                return
            i = j + 1
            if self._skipping:
                self._skipping = False
                self._n = 0
                on_frame(TOO_LONG)
            elif self._n:
                reason = self._decode()
                self._n = 0
                on_frame(reason)
            # an empty run between two delimiters is idle fill, not a frame

    def _decode(self):
        try:
            m = cobs.decode_in_place(self._buf, self._n)
        except cobs.CobsError:
            return BAD_COBS
        if m < HEADER_LEN + CRC_LEN:
            return BAD_LENGTH
        body = m - CRC_LEN
        got = struct.unpack_from(">I", self._buf, body)[0]
        if crc32(self._mv[:body]) != got:
            return BAD_CRC
        ver, kind, sess, seq, ack = struct.unpack_from(">BBHHH", self._buf, 0)
        if ver != FRAME_VERSION:
            return BAD_VERSION
        if kind > KIND_HELLO:
            return BAD_KIND
        if body - HEADER_LEN > (HELLO_MAX if kind == KIND_HELLO else self.max_payload):
            return BAD_LENGTH
        self.kind = kind
        self.sess = sess
        self.seq = seq
        self.ack = ack
        self.payload_len = body - HEADER_LEN
        return 0
