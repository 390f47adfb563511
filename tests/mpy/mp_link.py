# Differential test: the link core under MicroPython and CPython must print the same transcript.
# Covers CRC, COBS, the CBOR subset (good and bad items), frame encode/decode and a pair of
# endpoints exchanging durable messages over a line damaged by a deterministic generator.
from smgwfw import cbor, cobs
from smgwfw import frame as fr
from smgwfw import link as lk
from smgwfw import messages as m
from smgwfw.crc import _crc32_py, crc32


class Lcg:
    # the same numbers on every interpreter (random differs between them)
    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x


def describe(v):
    # a canonical text form (dict iteration order differs between interpreters)
    if isinstance(v, dict):
        ks = sorted(v, key=lambda k: (isinstance(k, str), k))
        return "{" + ",".join(describe(k) + ":" + describe(v[k]) for k in ks) + "}"
    if isinstance(v, list):
        return "[" + ",".join(describe(x) for x in v) + "]"
    if isinstance(v, bytes):
        # MicroPython quirk: b"".hex() returns b"", not ""
        return "h'" + (v.hex() if v else "") + "'"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, float):
        return "f" + repr(v)
    return repr(v)


# --- CRC
for data in (b"", b"123456789", bytes(range(256))):
    print("crc", crc32(data), _crc32_py(data))

# --- COBS
for data in (b"", b"\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(600)):
    out = bytearray(cobs.max_encoded_len(len(data)))
    n = cobs.encode_into(data, len(data), out, 0)
    enc = bytes(out[:n])
    buf = bytearray(enc)
    k = cobs.decode_in_place(buf, len(buf))
    print("cobs", len(data), enc[:8].hex(), n, bytes(buf[:k]) == data)

# --- CBOR
items = [0, 23, 24, 255, 65536, 2**32, 2**64 - 1, -1, -2**64, b"", b"\x00\xff", "", "Z\u00e4hler",
         [], [1, [2, 3]], {}, {0: 6, 1: 42, 5: b"\x01\x02"}, True, False, None, 1.5, -0.25,
         {"fw": "0.1.0", "files": {"a": b"\x11" * 4}}]
for v in items:
    enc = cbor.dumps(v)
    back = cbor.loads(enc)
    print("cbor", enc.hex(), describe(back), cbor.dumps(back) == enc)
for h in ("", "18", "0101", "5f41aaff", "c101", "f93c00", "f7", "a20101" + "0102", "a1f501",
          "62c328", "9bffffffffffffffff", "81" * 17 + "00"):
    try:
        cbor.loads(bytes.fromhex(h))
        print("cbor-bad", h, "ACCEPTED")
    except cbor.CborError as e:
        print("cbor-bad", h, str(e))

# --- frames: whole, byte by byte, with garbage in front
enc = fr.Encoder(64)
wire = bytes(enc.encode(fr.KIND_DATA, 0x1234, 7, 9, b"\x00hi\x00")) + bytes(
    enc.encode(fr.KIND_ACK, 0x1234, 0, 10, b""))
for label, stream, step in (("whole", wire, 0), ("bytes", wire, 1), ("garbage", b"\x05\x99zz" + wire, 0)):
    d = fr.Deframer(64)
    got = []

    def on(reason):
        if reason:
            got.append("bad:" + fr.REASONS[reason])
        else:
            p = bytes(d.payload())
            got.append("%d/%d/%d/%d/%s" % (d.kind, d.sess, d.seq, d.ack, p.hex() if p else ""))

    if step:
        for i in range(len(stream)):
            d.feed(stream[i:i + 1], 0, on)
    else:
        d.feed(stream, 0, on)
    print("frame", label, " ".join(got))


# --- a pair of endpoints over a damaged line
class Side:
    def __init__(self, role, stream, seed, cursors=None):
        g = Lcg(seed)
        self.link = lk.Link(role, stream, g.next, info={"r": role}, cursors=cursors or {},
                            rto_ms=40)
        self.got = []

    def pump(self):
        while True:
            ev = self.link.next_event()
            if ev is None:
                return
            if ev[0] == lk.EV_MESSAGE:
                self.got.append(ev[1][m.K_LT_N])
                self.link.consumed()


noise = Lcg(7)


def carry(data):
    out = bytearray()
    for b in data:
        r = noise.next() % 4000
        if r == 0:
            continue
        if r == 1:
            b ^= 1 << (noise.next() % 8)
        out.append(b)
    return bytes(out)


a = Side("fw", 111, 1)
b = Side("host", 222, 2)
N = 150
sent = 0
now = 0
for step in range(60000):
    now += 1
    while sent < N and a.link.can_send(200):
        sent += 1
        a.link.send({m.K_TYPE: m.T_LINKTEST, m.K_LT_N: sent, m.K_LT_DATA: bytes([sent & 255]) * 60},
                    sent)
    for src, dst in ((a, b), (b, a)):
        while True:
            f = src.link.poll(now)
            if f is None:
                break
            dst.link.receive(carry(bytes(f)), now)
        dst.pump()
    if len(b.got) == N and not a.link.queued():
        break
print("pair delivered", len(b.got), b.got == list(range(1, N + 1)), "at", now)
for name in lk.COUNTER_NAMES:
    print("counter", name, a.link.counters[name], b.link.counters[name])
print("OK")
