# Differential test: the durable outbox journal's file handling (append, feed, ack, reopen,
# compaction, torn tail, corrupted entry) on MicroPython's file API and on CPython's.
import os
import sys

if sys.implementation.name == "micropython":
    INPUT = "/input"
else:
    INPUT = os.environ["MPY_INPUT"]

from smgwfw import journal as jm
from smgwfw.journal import FileJournal, JournalFull

D = INPUT + "/jtest"
try:
    os.mkdir(D)
except OSError:
    pass
P = D + "/o.bin"
seed = [7]


def nonce():
    seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return seed[0]


def put(j, payload):
    rid = j.next_rid()
    j.append(payload, rid)
    return rid


def drain(j):
    out = []
    while True:
        e = j.next_unfed()
        if e is None:
            return out
        out.append(e[0])
        j.fed()


j = FileJournal(P, 5000, nonce)
print("stream", j.stream)
print("rids", [put(j, b"m%03d" % i + b"." * 40) for i in range(1, 11)])
print("fed", drain(j))
j.ack(4)
print("pending", j.pending(), "used", j.used())
j2 = FileJournal(P, 5000, nonce)
print("reopened", j2.stream == j.stream, drain(j2), j2.last_payload()[:4])
try:
    for i in range(200):
        put(j2, b"x" * 100)
except JournalFull:
    print("full at", j2.pending(), j2.used())
j2.ack(j2.next_rid() - 1)
print("all acked, file gone:", "o.bin" not in os.listdir(D), "next rid", j2.next_rid())

# a constant backlog: compaction keeps the file small
jm.COMPACT_BYTES = 600
j3 = FileJournal(P, 100000, nonce)
pending = []
biggest = 0
for i in range(60):
    pending.append(put(j3, b"%03d" % i + b"y" * 57))
    if len(pending) > 3:
        j3.ack(pending.pop(0))
    biggest = max(biggest, os.stat(P)[6])
print("backlog", pending, "largest file", biggest, "< 1000:", biggest < 1000)
print("after reopen", drain(FileJournal(P, 100000, nonce)) == pending)

# a torn tail (power lost mid-append) is cut, and reported
with open(P, "ab") as f:
    f.write(b"\x00\x30\x00")
j4 = FileJournal(P, 100000, nonce)
print("torn tail cut", j4.truncated_bytes, drain(j4) == pending)
print("OK")
