# Differential test: LMN-1 frame detection (smgwfw.lmn, smgwfw.crc16) under MicroPython and
# CPython must print the same transcript. Every SML vector whole, byte by byte and in LCG-sized
# chunks; the HDLC examples of meter-protocols.md §5.2 with shared flags and damage; a garbage
# stream (LCG bytes, start/flag fragments, silences, good frames) through both detectors.
# mp-files: tests/vectors/sml_frames.json
import sys

if sys.implementation.name == "micropython":
    INPUT = "/input"
else:
    import os

    INPUT = os.environ["MPY_INPUT"]

import json

from smgwfw import crc16, lmn
from smgwfw.crc import crc32


class Lcg:
    # the same numbers on every interpreter (random differs between them)
    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x

    def below(self, n):
        return (self.next() >> 8) % n


def counters(d):
    return ",".join("%s=%d" % (k, d.counters[k]) for k in sorted(d.counters))


def info_text(info):
    if info is None:
        return "-"
    return "%04x/%d/%s/%s/%02x/%d" % (info["format"], 1 if info["segmented"] else 0,
                                      info["dest"].hex(), info["src"].hex(), info["control"],
                                      info["info_len"])


def drain(d, label):
    while True:
        f = d.next_frame()
        if f is None:
            return
        extra = (" " + info_text(f[3])) if len(f) == 4 else ""
        print(label, lmn.CHECK_NAMES[f[1]], len(f[0]), crc32(f[0]), f[2], extra)


print("crc16", crc16.x25(b"123456789"), crc16.kermit(b"123456789"),
      crc16.x25(b"xx123456789yy", 2, 11), crc16.kermit(bytearray(b"123456789")))

with open(INPUT + "/sml_frames.json") as fh:
    vectors = json.load(fh)

# --- SML vectors, three ways
rng = Lcg(11)
for v in vectors:
    wire = bytes.fromhex(v["hex"])
    name = v["name"].split(" ")[0]
    for how in ("whole", "bytes", "chunks"):
        d = lmn.SmlDetector()
        if how == "whole":
            d.feed(wire, 7)
        elif how == "bytes":
            for i in range(len(wire)):
                d.feed(wire[i : i + 1], 7)
        else:
            i = 0
            while i < len(wire):
                k = 1 + rng.below(60)
                d.feed(wire[i : i + k], 7)
                i += k
        f = d.next_frame()
        print("sml", name, how, lmn.CHECK_NAMES[f[1]], f[0] == wire, f[2], v["check"])
    d = lmn.SmlDetector(max_pad=4)
    d.feed(wire, 0)
    print("sml", name, "max_pad4", lmn.CHECK_NAMES[d.next_frame()[1]])

# --- SML damage: silence, restart, oversized, bad CRC, bad escape, queue overrun
s1 = bytes.fromhex(vectors[0]["hex"])
s3 = bytes.fromhex(vectors[2]["hex"])
esc = bytes.fromhex(vectors[-1]["hex"])
d = lmn.SmlDetector()
d.feed(s1[:200], 1000)
d.feed(s1[200:], 1000 + lmn.SILENCE_MS + 1)
d.feed(s1[:100] + s3, 2000)
bad = bytearray(s1)
bad[77] ^= 4
d.feed(bytes(bad), 3000)
drain(d, "sml-damage")
d.feed(b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01\x76\x00\x00\x00"
       + b"\x1b\x1b\x1b\x1b\x02\x02\x02\x02" + esc, 4000)
drain(d, "sml-damage")
print("sml-damage", counters(d))
d = lmn.SmlDetector(max_frame=128)
d.feed(s1 + esc + s3 + esc, 5)
drain(d, "sml-oversized")
print("sml-oversized", counters(d), len(d._buf))
d = lmn.SmlDetector()
for t in range(6):
    d.feed(esc, t)
drain(d, "sml-overrun")
print("sml-overrun", counters(d))
d = lmn.SmlDetector()
top = (1 << 30) - 5
d.feed(s1[:50], top)
d.feed(s1[50:], 30)
drain(d, "sml-wrap")

# --- HDLC examples, shared flags, damage
SNRM = bytes.fromhex("7EA0070321930F017E")
DISC = bytes.fromhex("7EA00703215303C77E")
SNRM4 = bytes.fromhex("7EA00A00020023F193232E7E")
SNRM_INFO = bytes.fromhex("7EA0200321937DD98180140502040006020400070400000001080400000007"
                          "44867E")
hd = lmn.HdlcDetector(queue_len=8)
hd.feed(SNRM + DISC[1:] + SNRM4[1:] + b"\x7e\x7e" + SNRM_INFO, 1)
drain(hd, "hdlc")
bad_fcs = bytearray(SNRM_INFO)
bad_fcs[-2] ^= 1
bad_hcs = bytearray(SNRM_INFO)
bad_hcs[6] ^= 1
seg = bytearray(SNRM)
seg[1] = 0xA8  # segmentation bit: the FCS no longer matches, the parse shows the bit
stream = bytes(bad_fcs) + bytes(bad_hcs) + b"\x55\x7e\xa0" + bytes(seg) + SNRM
for i in range(len(stream)):
    hd.feed(stream[i : i + 1], 2)
hd.feed(SNRM_INFO[:10], 3)
hd.poll(3 + lmn.SILENCE_MS + 1)
drain(hd, "hdlc-damage")
print("hdlc-damage", counters(hd))
print("hdlc-address", lmn.hdlc_address(b"\x00\x02\x00\x23"), lmn.hdlc_address(b"\x03"))

# --- a garbage stream through both detectors
FRAGMENTS = (b"\x1b\x1b\x1b\x1b", b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01", b"\x1b\x1b\x1b\x1b\x1a\x02",
             b"\x7e", b"\x7e\xa0\x07", b"\x01\x01\x01", esc, SNRM, s1[:60])
rng = Lcg(2024)
parts = []
for _ in range(120):
    r = rng.below(10)
    if r < 5:
        parts.append(bytes([rng.below(256) for _ in range(rng.below(50))]))
    elif r < 9:
        parts.append(FRAGMENTS[rng.below(len(FRAGMENTS))])
    else:
        parts.append(None)  # a silence
for cls in (lmn.SmlDetector, lmn.HdlcDetector):
    d = cls(max_frame=256, queue_len=3)
    t = 0
    for p in parts:
        if p is None:
            t += d.silence_ms + 1
            d.poll(t)
        else:
            i = 0
            while i < len(p):
                k = 1 + rng.below(20)
                d.feed(p[i : i + k], t)
                i += k
                t += rng.below(3)
        drain(d, "garbage")
    print("garbage", counters(d), len(d._buf), d.in_frame())

print("OK")
