# The firmware's durable outbox: captured frames wait here until the host says it stored them.
#
# FileJournal keeps them in an append-only file on the board's filesystem (littlefs on the
# device, a directory on the sim board), so a reset or power loss between capture and the host's
# acknowledgement loses nothing. RamJournal is the same FIFO in RAM, for boards whose flash should
# not take one write per telegram; docs/link-protocol.md says what each choice guarantees.
#
# File layout, one entry after the other:
#   u16 payload length | u32 rid | u32 CRC-32 of (rid, payload) | payload
# A torn or corrupted tail (power lost mid-write) is cut off at the first bad entry when the
# journal is opened. Beside it: "<path>.ack" holds the highest rid the host has consumed, and
# "<path>.sid" the journal's stream id, a random number chosen when the journal is created.
import os
import struct

from smgwfw.crc import crc32

_HDR = 10
# once this many bytes of acknowledged entries lie before the first pending one, the file is
# rewritten without them, so a journal that is never fully drained still stays bounded
COMPACT_BYTES = 65536


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        try:
            f.flush()
            os.fsync(f.fileno())  # CPython; MicroPython's littlefs commits on close
        except (AttributeError, OSError):
            pass
    os.rename(tmp, path)


class JournalFull(Exception):
    pass


class RamJournal:
    def __init__(self, capacity_bytes, stream):
        self.capacity = capacity_bytes
        self.stream = stream
        self._q = []  # [rid, payload]
        self._bytes = 0
        self._next_rid = 1
        self._feed = 0  # index of the next entry to hand to the link
        self.acked = 0

    def used(self):
        return self._bytes

    def pending(self):
        return len(self._q)

    def next_rid(self):
        return self._next_rid

    def append(self, payload, rid):
        # rid must be next_rid(): the caller puts it into the payload before it is stored
        if rid != self._next_rid:
            raise ValueError("rid out of order")
        if self._bytes + len(payload) > self.capacity:
            raise JournalFull()
        self._next_rid += 1
        self._q.append([rid, bytes(payload)])
        self._bytes += len(payload)
        return rid

    def last_payload(self):
        return self._q[-1][1] if self._q else None

    def next_unfed(self):
        # -> (rid, payload) of the next entry not yet given to the link, or None
        if self._feed < len(self._q):
            e = self._q[self._feed]
            return e[0], e[1]
        return None

    def fed(self):
        self._feed += 1

    def ack(self, rid):
        while self._q and self._q[0][0] <= rid:
            e = self._q.pop(0)
            self._bytes -= len(e[1])
            if self._feed:
                self._feed -= 1
        if rid > self.acked:
            self.acked = rid

    def close(self):
        pass


class FileJournal:
    # Keeps no per-entry state in RAM: rids are consecutive and every entry carries its length,
    # so a handful of offsets is enough to walk the file, however long the backlog is (a Pico
    # has ~190 KiB of heap; a 256 KiB backlog of small telegrams would not fit as a list).
    def __init__(self, path, capacity_bytes, nonce_source):
        self.path = path
        self.capacity = capacity_bytes
        self._ack_path = path + ".ack"
        self._sid_path = path + ".sid"
        self.truncated_bytes = 0  # what opening cut off as a torn tail (reported at boot)
        if _exists(self._sid_path):
            with open(self._sid_path, "rb") as f:
                b = f.read()
            self.stream = struct.unpack(">I", b)[0] if len(b) == 4 else 0
        else:
            self.stream = 0
        if not self.stream:
            # a new journal is a new stream: the host must not take its rids for old ones
            self.stream = (nonce_source() & 0x7FFFFFFF) or 1
            _write_atomic(self._sid_path, struct.pack(">I", self.stream))
            for p in (path, self._ack_path):
                if _exists(p):
                    os.remove(p)
        self.acked = 0
        if _exists(self._ack_path):
            with open(self._ack_path, "rb") as f:
                b = f.read()
            if len(b) == 4:
                self.acked = struct.unpack(">I", b)[0]
        self._hdr = bytearray(_HDR)
        self._count = 0  # pending entries
        self._bytes = 0  # their payload bytes
        self._first = 0  # offset of the first pending entry
        self._last = 0  # offset of the newest entry
        self._end = 0  # end of the last good entry
        last = self._scan()
        self._next_rid = max(last, self.acked) + 1
        self._feed = self._first  # offset of the next entry to give to the link
        self._feed_len = 0

    def _read_hdr(self, f, off):
        # -> (length, rid) of the entry at off
        f.seek(off)
        f.readinto(self._hdr)
        ln, rid, _ = struct.unpack(">HII", self._hdr)
        return ln, rid

    def _scan(self):
        # Finds the pending entries after the ack mark and cuts off a torn tail.
        last = 0
        if not _exists(self.path):
            return last
        hdr = bytearray(_HDR)
        first = -1
        pos = 0
        with open(self.path, "rb") as f:
            while True:
                n = f.readinto(hdr)
                if n < _HDR:
                    break
                ln, rid, crc = struct.unpack(">HII", hdr)
                body = f.read(ln)
                if len(body) < ln or crc32(body, crc32(hdr[2:6])) != crc or rid <= last:
                    break
                if last and rid != last + 1:
                    break  # rids are consecutive; anything else is damage
                last = rid
                if rid > self.acked:
                    if first < 0:
                        first = pos
                    self._count += 1
                    self._bytes += ln
                    self._last = pos
                pos += _HDR + ln
        size = os.stat(self.path)[6]
        if pos < size:
            self.truncated_bytes = size - pos
            self._truncate(pos)
        self._end = pos
        self._first = first if first >= 0 else pos
        return last

    def _truncate(self, size):
        # MicroPython files have no truncate(): rewrite the good prefix instead
        if size == 0:
            os.remove(self.path)
            return
        tmp = self.path + ".cut"
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            left = size
            buf = bytearray(512)
            while left:
                n = src.readinto(buf)
                if not n:
                    break
                k = n if n < left else left
                dst.write(memoryview(buf)[:k])
                left -= k
        os.rename(tmp, self.path)

    def used(self):
        return self._bytes

    def pending(self):
        return self._count

    def next_rid(self):
        return self._next_rid

    def append(self, payload, rid):
        # rid must be next_rid(): the caller puts it into the payload before it is stored
        if rid != self._next_rid:
            raise ValueError("rid out of order")
        ln = len(payload)
        if self._bytes + ln > self.capacity:
            raise JournalFull()
        h = self._hdr
        struct.pack_into(">HI", h, 0, ln, rid)
        struct.pack_into(">I", h, 6, crc32(payload, crc32(memoryview(h)[2:6])))
        with open(self.path, "ab") as f:
            f.write(h)
            f.write(payload)
            try:
                f.flush()
                os.fsync(f.fileno())
            except (AttributeError, OSError):
                pass
        if not self._count:
            self._first = self._end
        self._last = self._end
        self._end += _HDR + ln
        self._next_rid = rid + 1
        self._count += 1
        self._bytes += ln
        return rid

    def last_payload(self):
        # the newest pending entry's payload (None when nothing is pending)
        if not self._count:
            return None
        with open(self.path, "rb") as f:
            ln, _ = self._read_hdr(f, self._last)
            return f.read(ln)

    def next_unfed(self):
        if self._feed >= self._end:
            return None
        with open(self.path, "rb") as f:
            ln, rid = self._read_hdr(f, self._feed)
            self._feed_len = ln
            return rid, f.read(ln)

    def fed(self):
        self._feed += _HDR + self._feed_len

    def ack(self, rid):
        if rid <= self.acked:
            return
        self.acked = rid
        _write_atomic(self._ack_path, struct.pack(">I", rid))
        if self._count:
            with open(self.path, "rb") as f:
                while self._count:
                    ln, r = self._read_hdr(f, self._first)
                    if r > rid:
                        break
                    self._first += _HDR + ln
                    self._count -= 1
                    self._bytes -= ln
        if self._feed < self._first:
            self._feed = self._first
        if not self._count:
            if _exists(self.path):
                # everything is with the host: start the file afresh
                os.remove(self.path)
            self._first = self._last = self._end = self._feed = 0
        elif self._first >= COMPACT_BYTES:
            self._compact()

    def _compact(self):
        # Rewrites the file from the first pending entry on; a crash leaves either the old file
        # (whose acknowledged prefix is skipped at the next open) or the new one.
        start = self._first
        tmp = self.path + ".cut"
        buf = bytearray(512)
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(start)
            while True:
                n = src.readinto(buf)
                if not n:
                    break
                dst.write(memoryview(buf)[:n])
            try:
                dst.flush()
                os.fsync(dst.fileno())
            except (AttributeError, OSError):
                pass
        os.rename(tmp, self.path)
        self._first -= start
        self._last -= start
        self._end -= start
        self._feed -= start

    def close(self):
        pass


class State:
    # A handful of integers that must survive a reset (boot counter, the host stream cursor and
    # the linktest receiver's counters), written atomically as one small file.
    FIELDS = ("boot", "host_stream", "host_cursor", "lt_received", "lt_last", "lt_ooo", "lt_bad",
              "gen_n", "gen_target", "gen_size")

    def __init__(self, path):
        self.path = path
        self.v = {}
        for k in self.FIELDS:
            self.v[k] = 0
        if path and _exists(path):
            with open(path, "rb") as f:
                b = f.read()
            if len(b) == 4 * len(self.FIELDS) + 4 and crc32(b[:-4]) == struct.unpack(
                ">I", b[-4:]
            )[0]:
                vals = struct.unpack(">" + "I" * len(self.FIELDS), b[:-4])
                for i, k in enumerate(self.FIELDS):
                    self.v[k] = vals[i]

    def save(self):
        if not self.path:
            return
        b = struct.pack(">" + "I" * len(self.FIELDS), *[self.v[k] for k in self.FIELDS])
        _write_atomic(self.path, b + struct.pack(">I", crc32(b)))
