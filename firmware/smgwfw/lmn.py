# LMN-1 frame detection: finds meter frames in the bytes of the wired LMN (RS-485) or an optical
# head. Sans-I/O: the caller owns the UART and the clock.
#
#   det = SmlDetector()            or HdlcDetector()
#   det.feed(data, now_ms)         bytes as they came from the UART (bytes or bytearray)
#   det.poll(now_ms)               runs the silence timer when no bytes came
#   det.next_frame()               -> a completed frame or None, oldest first:
#       SML:  (frame, check, first_byte_ms)
#       HDLC: (frame, check, first_byte_ms, info)
#   det.counters                   dict of event counts (names below), never reset here
#
# frame is a copy (bytes) of the frame as it was on the wire: SML from the first 1B of the start
# sequence through the two CRC bytes, still escaped and padded (the host decodes it); HDLC with
# both flags. check says what the detector verified (CHECK_*). Frames that failed a check are
# delivered too, so the caller can count, log or forward them; only CHECK_X25 and CHECK_KERMIT
# frames are intact. first_byte_ms is the now_ms of the feed() that delivered the frame's first
# byte (HDLC: the first byte after the opening flag, as flags may be shared or idle fill).
#
# Timing. now_ms is a millisecond counter wrapping at 2**30 like time.ticks_ms() (differences are
# taken modulo 2**30, as in link.py). A gap of more than silence_ms between two feeds that carry
# bytes, in the middle of a frame, ends the frame: it is delivered as CHECK_TRUNCATED, counted in
# "timeouts", and the detector hunts for the next start. A meter sends a frame as one burst (a
# character takes 1.04 ms at 9600 Bd 8N1) and eHZ/mME meters push one SML file every 1-4 s.
# Bytes wait in the UART buffer between two reads, so the gaps the detector sees inside a frame
# are the caller's read intervals: silence_ms_for() adds 100 character times to the caller's
# worst read interval (latency_ms, 100 ms by default): 204 ms at 9600 Bd. So read the UART and
# feed() at least every latency_ms, with a receive buffer that holds what arrives in between
# (rs485.rxbuf_for), and call poll() when nothing came.
#
# Memory. Each detector allocates its frame buffer (max_frame bytes) and its queue once. Garbage
# never grows anything: bytes outside a frame are counted and dropped, a frame longer than
# max_frame is reported as CHECK_OVERSIZED (with empty bytes) and skipped without storing it.
# Per frame the allocations are the copy handed out, its tuple (and HDLC's info dict); per feed()
# at most one small memoryview. The queue holds queue_len frames; when it is full the oldest one
# is dropped ("overrun"). The CRC table (crc16) takes 512 bytes more, built at the first check.
#
# Garbage never stalls the receiver for more than one silence timeout: outside a frame every
# byte is searched for a start; inside one, a silence, an end, a new start, a broken escape or
# max_frame bytes end it (SML), or the header checks reject it before its length is trusted
# (HDLC). The outcome depends only on the bytes and their times, never on how they were split
# into feed() calls (style.md habit 11).
from smgwfw import crc16

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


# What next_frame() reports about a frame (the index into CHECK_NAMES).
CHECK_X25 = const(1)  # CRC-16/X-25 correct (SML transport CRC, or HDLC HCS and FCS)
CHECK_KERMIT = const(2)  # SML only: CRC-16/KERMIT sent MSB first correct (Holley DTZ541)
CHECK_BAD_CRC = const(3)  # SML: neither CRC matches; HDLC: FCS wrong
CHECK_TRUNCATED = const(4)  # silence inside the frame, or (SML) a new start sequence in it
CHECK_OVERSIZED = const(5)  # longer than max_frame; the frame bytes are empty
CHECK_BAD_PAD = const(6)  # SML: padding count PP larger than max_pad or than the data
CHECK_BAD_HCS = const(7)  # HDLC: header check sequence wrong (bytes up to the HCS only)
CHECK_BAD_ESCAPE = const(8)  # SML: escape sequence other than start, end or escaped data

CHECK_NAMES = ("", "x25", "kermit", "bad_crc", "truncated", "oversized", "bad_pad", "bad_hcs",
               "bad_escape")

SML_COUNTERS = ("frames", "kermit", "bad_crc", "bad_pad", "bad_escape", "truncated", "timeouts",
                "oversized", "garbage_bytes", "overrun")
HDLC_COUNTERS = ("frames", "segmented", "bad_crc", "bad_hcs", "bad_format", "bad_length",
                 "timeouts", "oversized", "garbage_bytes", "overrun")

_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def _tdiff(a, b):
    # a - b on the 2**30 wrapping millisecond counter
    return ((a - b + _HALF) & _MASK) - _HALF


def silence_ms_for(baud, latency_ms=100, bits_per_char=10):
    # The inter-frame silence: 100 character times at baud plus the caller's worst delay between
    # two UART reads. 9600 Bd 8N1: 104 + 100 = 204 ms.
    return 100 * bits_per_char * 1000 // baud + latency_ms


SILENCE_MS = silence_ms_for(9600)


class _Detector:
    # The part both detectors share: counters, the frame queue, the silence timer.
    def __init__(self, max_frame, silence_ms, queue_len, names):
        self.max_frame = max_frame
        self.silence_ms = silence_ms
        self.counters = {}
        for name in names:
            self.counters[name] = 0
        self._buf = bytearray(max_frame)
        self._mv = memoryview(self._buf)
        self._n = 0  # bytes held in _buf
        self._t0 = 0  # first_byte_ms of the frame being received
        self._last = 0  # now_ms of the last feed() that carried bytes
        self._q = [None] * queue_len
        self._qh = 0  # index of the oldest queued frame
        self._qn = 0  # frames queued

    def next_frame(self):
        if not self._qn:
            return None
        q = self._q
        item = q[self._qh]
        q[self._qh] = None
        self._qh = (self._qh + 1) % len(q)
        self._qn -= 1
        return item

    def pending(self):
        return self._qn

    def poll(self, now_ms):
        self._silence(now_ms)

    def _push(self, item):
        q = self._q
        if self._qn == len(q):
            q[self._qh] = None
            self._qh = (self._qh + 1) % len(q)
            self._qn -= 1
            self.counters["overrun"] += 1
        q[(self._qh + self._qn) % len(q)] = item
        self._qn += 1

    def _drop(self, k):
        # removes the first k held bytes (overlapping move: memmove on both interpreters)
        n = self._n - k
        if n > 0:
            self._buf[0:n] = self._mv[k : self._n]
        self._n = n if n > 0 else 0


# ===================================================================================== SML
#
# Transport v1 (meter-protocols.md §4.2):
#   1B1B1B1B 01010101 | file data, escaped | 00 x PP | 1B1B1B1B 1A PP C1 C2
# Escape sequences start on 4-byte boundaries counted from the frame start: 1B1B1B1B followed by
# 1B1B1B1B is escaped data, by 01010101 a (new) start, by 1A PP C1 C2 the end; anything else is
# CHECK_BAD_ESCAPE. The transport CRC covers the frame from the first start byte through PP: X-25
# sent LSB first, else KERMIT sent MSB first (Holley DTZ541). Inside a frame only aligned words
# are escapes (as in libsml), so escaped data such as 1B1B1B1B 1B1B1B1B 01010101 is not a start.
# Outside a frame the start is searched at every byte offset.

_START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
_ESC = b"\x1b\x1b\x1b\x1b"
_ONES = b"\x01\x01\x01\x01"

_HUNT = const(0)  # outside a frame; _hm start bytes matched so far
_FRAME = const(1)  # storing a frame; _buf[0:8] is its start sequence
_SKIP = const(2)  # inside an oversized frame: scanning words for its end without storing


def _start_suffix(src, i, n):
    # length (0..7) of the longest tail of src[i:n] that is a beginning of the start sequence
    k = 0
    while k < 3 and n - k > i and src[n - k - 1] == 0x01:
        k += 1
    e = 0
    while e < 4 and n - k - e > i and src[n - k - e - 1] == 0x1B:
        e += 1
    if k:
        return k + 4 if e == 4 else 0
    return e


class SmlDetector(_Detector):
    def __init__(self, max_frame=2048, silence_ms=SILENCE_MS, queue_len=4, max_pad=3):
        # max_pad: the largest padding count PP accepted (the standard says 0..3; see
        # tests/vectors/sml_frames.json for a DZG frame that sends 4).
        if max_frame < 16 or queue_len < 1:
            raise ValueError("max_frame must be >= 16 and queue_len >= 1")
        _Detector.__init__(self, max_frame, silence_ms, queue_len, SML_COUNTERS)
        self.max_pad = max_pad
        self._state = _HUNT
        self._hm = 0
        self._scan = 0  # aligned offset in _buf up to which words are checked

    def in_frame(self):
        return self._state != _HUNT or self._hm > 0

    def feed(self, data, now_ms):
        n = len(data)
        self._silence(now_ms)
        if not n:
            return
        self._last = now_ms
        if type(data) is memoryview:
            data = bytes(data)
        i = 0
        cap = self.max_frame
        while i < n:
            if self._state == _HUNT:
                i = self._hunt(data, i, n, now_ms)
                continue
            k = cap - self._n
            if k > n - i:
                k = n - i
            if i == 0 and k == n:
                self._buf[self._n : self._n + k] = data
            else:
                self._buf[self._n : self._n + k] = memoryview(data)[i : i + k]
            self._n += k
            i += k
            self._words(now_ms)

    def _silence(self, now_ms):
        if self._state == _HUNT and not self._hm:
            return
        if _tdiff(now_ms, self._last) <= self.silence_ms:
            return
        c = self.counters
        if self._state == _FRAME:
            c["timeouts"] += 1
            self._push((bytes(self._mv[: self._n]), CHECK_TRUNCATED, self._t0))
        elif self._state == _HUNT:
            c["garbage_bytes"] += self._hm
        # _SKIP: the frame was already reported as oversized
        self._state = _HUNT
        self._hm = 0
        self._n = 0

    def _hunt(self, data, i, n, now_ms):
        # Looks for a start sequence in data[i:n]; returns the index after what it consumed.
        c = self.counters
        hm = self._hm
        while hm:
            # a start sequence began in an earlier chunk: continue it byte by byte
            if i >= n:
                self._hm = hm
                return n
            b = data[i]
            i += 1
            if b == _START[hm]:
                hm += 1
                if hm == 8:
                    self._hm = 0
                    self._begin()
                    return i
            elif b == 0x1B:
                # 1B1B1B1B + 1B: still four 1B; 1B1B1B1B 01.. + 1B: a new first 1B
                c["garbage_bytes"] += 1 if hm == 4 else hm
                hm = 4 if hm == 4 else 1
                self._t0 = now_ms
            else:
                c["garbage_bytes"] += hm + 1
                hm = 0
        self._hm = 0
        j = data.find(_START, i, n)
        if j >= 0:
            c["garbage_bytes"] += j - i
            self._t0 = now_ms
            self._begin()
            return j + 8
        k = _start_suffix(data, i, n)
        c["garbage_bytes"] += n - i - k
        if k:
            self._hm = k
            self._t0 = now_ms
        return n

    def _begin(self):
        self._buf[0:8] = _START
        self._n = 8
        self._scan = 8
        self._state = _FRAME

    def _resync(self, frm, now_ms):
        # Hunts for a start in the held bytes _buf[frm:_n] (after an end, a broken escape or a
        # restart); a start found becomes the frame being received.
        buf = self._buf
        n = self._n
        c = self.counters
        s = buf.find(_START, frm, n)
        if s >= 0:
            c["garbage_bytes"] += s - frm
            self._drop(s)
            self._scan = 8
            self._state = _FRAME
            self._t0 = now_ms
            return
        k = _start_suffix(buf, frm, n)
        c["garbage_bytes"] += n - frm - k
        self._hm = k
        if k:
            self._t0 = now_ms
        self._n = 0
        self._state = _HUNT

    def _words(self, now_ms):
        # Checks the held bytes word by word from _scan for escape sequences.
        buf = self._buf
        while self._state != _HUNT:
            n = self._n
            j = buf.find(_ESC, self._scan, n)
            while j > 0 and j & 3:
                j = buf.find(_ESC, j + 1, n)
            if j < 0:
                self._scan = n & ~3
                break
            if j + 8 > n:
                self._scan = j  # the word after the escape has not arrived yet
                break
            if buf[j + 4] == 0x1A:
                if self._state == _FRAME:
                    self._end(j)
                self._state = _HUNT
                self._resync(j + 8, now_ms)
            elif buf.find(_ESC, j + 4, j + 8) == j + 4:
                self._scan = j + 8  # escaped 1B1B1B1B in the data
            elif buf.find(_ONES, j + 4, j + 8) == j + 4:
                if j and self._state == _FRAME:
                    self.counters["truncated"] += 1
                    self._push((bytes(self._mv[:j]), CHECK_TRUNCATED, self._t0))
                self._resync(j, now_ms)
            else:
                if self._state == _FRAME:
                    self.counters["bad_escape"] += 1
                    self._push((bytes(self._mv[: j + 8]), CHECK_BAD_ESCAPE, self._t0))
                self._resync(j + 1, now_ms)
        if self._state == _FRAME and self._n == self.max_frame:
            self.counters["oversized"] += 1
            self._push((b"", CHECK_OVERSIZED, self._t0))
            self._state = _SKIP
        if self._state == _SKIP and self._scan:
            # keep only the unchecked tail (< 8 bytes); dropping whole words keeps alignment
            self._drop(self._scan)
            self._scan = 0

    def _end(self, j):
        # _buf[j:j+8] is 1B1B1B1B 1A PP C1 C2: check and deliver the frame _buf[0:j+8]
        buf = self._buf
        c = self.counters
        pp = buf[j + 5]
        if pp > self.max_pad or pp > j - 8:
            check = CHECK_BAD_PAD
            c["bad_pad"] += 1
        elif crc16.x25(buf, 0, j + 6) == buf[j + 6] | buf[j + 7] << 8:
            check = CHECK_X25
            c["frames"] += 1
        elif crc16.kermit(buf, 0, j + 6) == buf[j + 6] << 8 | buf[j + 7]:
            check = CHECK_KERMIT
            c["frames"] += 1
            c["kermit"] += 1
        else:
            check = CHECK_BAD_CRC
            c["bad_crc"] += 1
        self._push((bytes(self._mv[: j + 8]), check, self._t0))


# ==================================================================================== HDLC
#
# IEC 62056-46 / ISO 13239 frame format type 3 (meter-protocols.md §5.2):
#   7E | format(2) | dest(1/2/4) | src(1/2/4) | control | [HCS(2) | information] | FCS(2) | 7E
# format = 1010 S LLLLLLLLLLL: S = more segments follow, L = bytes between the flags. Address
# bytes carry b0 = 1 on their last byte. HCS (format..control) exists when an information field
# follows; FCS covers format..information (HCS included). Both CRC-16/X-25, LSB first. There is
# no byte stuffing: the length field delimits the frame, and the byte after L must be a flag.
# Consecutive frames may share one flag; runs of flags are idle fill.
#
# Since 0x7E may occur inside a frame, a flag is only a candidate start. The header is checked
# as soon as its bytes are there, before the detector waits for L bytes, so that line noise
# after a flag cannot swallow the frames behind it:
#   - format type not 1010, or L < 7: not a start (garbage_bytes);
#   - L + 2 > max_frame: CHECK_OVERSIZED (empty bytes);
#   - addresses not 1, 2 or 4 bytes ending with b0 = 1, no room for control and FCS, or an HCS
#     with no information after it: not a start ("bad_format");
#   - HCS wrong: CHECK_BAD_HCS with the bytes up to the HCS (the length is not trusted either);
#   - no flag after L bytes: not a frame ("bad_length");
#   - FCS wrong: CHECK_BAD_CRC; else CHECK_X25.
# After each of these the detector resynchronises on the next flag after the opening one; a
# frame without an information field (no HCS; at most 13 bytes) is the longest a false start
# can hold up the frames behind it. The outcome depends only on the bytes, never on how they
# were split into feed() calls.

_FLAG = b"\x7e"
_NEED = const(-2)  # header parsing: more bytes needed
_BAD = const(-1)  # header parsing: malformed


def _addr_end(buf, p, n, limit):
    # index after an HDLC address starting at p (1, 2 or 4 bytes, the last with b0 = 1) that
    # must end before limit; _BAD, or _NEED when buf[:n] ends first
    q = p
    while q < p + 4:
        if q >= limit:
            return _BAD
        if q >= n:
            return _NEED
        if buf[q] & 1:
            return q + 1 if q - p != 2 else _BAD
        q += 1
    return _BAD


def hdlc_address(raw):
    # (upper, lower) of a server address as sent (7 bits per byte, b0 the end mark): 1 byte ->
    # (upper, None); 2 bytes -> 7+7 bits; 4 bytes -> 14+14 bits. 00 02 00 23 -> (1, 17).
    if len(raw) == 1:
        return (raw[0] >> 1, None)
    if len(raw) == 2:
        return (raw[0] >> 1, raw[1] >> 1)
    return (((raw[0] >> 1) << 7) | (raw[1] >> 1), ((raw[2] >> 1) << 7) | (raw[3] >> 1))


class HdlcDetector(_Detector):
    def __init__(self, max_frame=2048, silence_ms=SILENCE_MS, queue_len=4):
        # max_frame counts both flags: frames with L <= max_frame - 2 are received
        if max_frame < 16 or queue_len < 1:
            raise ValueError("max_frame must be >= 16 and queue_len >= 1")
        _Detector.__init__(self, max_frame, silence_ms, queue_len, HDLC_COUNTERS)
        # _buf[0] is the opening flag whenever _n > 0
        self._want = 0  # L + 2 once the header at _buf[1:] has passed its checks

    def in_frame(self):
        return self._n > 1

    def feed(self, data, now_ms):
        n = len(data)
        self._silence(now_ms)
        if not n:
            return
        self._last = now_ms
        if type(data) is memoryview:
            data = bytes(data)
        i = 0
        cap = self.max_frame
        while i < n:
            if self._n == 0:
                j = data.find(_FLAG, i)
                if j < 0:
                    self.counters["garbage_bytes"] += n - i
                    return
                self.counters["garbage_bytes"] += j - i
                i = j
            if self._n <= 1:
                self._t0 = now_ms
            k = cap - self._n
            if k > n - i:
                k = n - i
            if i == 0 and k == n:
                self._buf[self._n : self._n + k] = data
            else:
                self._buf[self._n : self._n + k] = memoryview(data)[i : i + k]
            self._n += k
            i += k
            self._parse(now_ms)

    def _silence(self, now_ms):
        if self._n == 0 or _tdiff(now_ms, self._last) <= self.silence_ms:
            return
        if self._n > 1:
            self.counters["timeouts"] += 1
            self._push((bytes(self._mv[: self._n]), CHECK_TRUNCATED, self._t0, None))
        self._n = 0
        self._want = 0

    def _resync(self, now_ms):
        # the flag at _buf[0] did not open a frame: continue at the next held flag
        self._want = 0
        s = self._buf.find(_FLAG, 1, self._n)
        if s < 0:
            self.counters["garbage_bytes"] += self._n
            self._n = 0
        else:
            self.counters["garbage_bytes"] += s
            self._drop(s)
            self._t0 = now_ms

    def _parse(self, now_ms):
        buf = self._buf
        while True:
            n = self._n
            want = self._want
            if not want:
                p = 1
                while p < n and buf[p] == 0x7E:
                    p += 1
                if p > 1:
                    self._drop(p - 1)  # idle flags
                    n = self._n
                want = self._header(n)
                if want == _NEED:
                    return
                if want == _BAD:
                    self._resync(now_ms)
                    continue
                self._want = want
            if n < want:
                return
            if buf[want - 1] != 0x7E:
                self.counters["bad_length"] += 1
                self._resync(now_ms)
                continue
            self._deliver(want - 2)
            self._want = 0
            self._drop(want - 1)  # the closing flag may open the next frame
            self._t0 = now_ms

    def _header(self, n):
        # Checks the header in _buf[1:n] as far as it has arrived: returns L + 2 when it is
        # good, _NEED or _BAD (after counting/reporting why).
        buf = self._buf
        c = self.counters
        if n < 3:
            return _NEED
        f0 = buf[1]
        length = ((f0 & 7) << 8) | buf[2]
        if f0 & 0xF0 != 0xA0 or length < 7:
            return _BAD
        if length + 2 > self.max_frame:
            c["oversized"] += 1
            self._push((b"", CHECK_OVERSIZED, self._t0, None))
            return _BAD
        fcs = length - 1  # index of the FCS in _buf
        p = _addr_end(buf, 3, n, fcs)
        if p < 0:
            if p == _BAD:
                c["bad_format"] += 1
            return p
        q = _addr_end(buf, p, n, fcs)
        if q < 0:
            if q == _BAD:
                c["bad_format"] += 1
            return q
        h = q + 1  # index after the control byte buf[q]
        if h == fcs:
            return length + 2  # no information field, no HCS: the FCS covers everything
        if h + 2 >= fcs:
            c["bad_format"] += 1  # no room for HCS plus at least one information byte
            return _BAD
        if n < h + 2:
            return _NEED
        if crc16.x25(buf, 1, h) != buf[h] | buf[h + 1] << 8:
            c["bad_hcs"] += 1
            self._push((bytes(self._mv[: h + 2]), CHECK_BAD_HCS, self._t0, None))
            return _BAD
        return length + 2

    def _deliver(self, length):
        # _buf[0:length+2] is a frame whose header passed: check the FCS, deliver it
        buf = self._buf
        c = self.counters
        fcs = length - 1
        p = _addr_end(buf, 3, fcs, fcs)
        q = _addr_end(buf, p, fcs, fcs)
        h = q + 1
        info = {"format": (buf[1] << 8) | buf[2], "segmented": (buf[1] & 0x08) != 0,
                "length": length, "dest": bytes(self._mv[3:p]), "src": bytes(self._mv[p:q]),
                "control": buf[q], "info_len": fcs - h - 2 if h < fcs else 0}
        if crc16.x25(buf, 1, fcs) == buf[fcs] | buf[fcs + 1] << 8:
            check = CHECK_X25
            c["frames"] += 1
            if info["segmented"]:
                c["segmented"] += 1
        else:
            check = CHECK_BAD_CRC
            c["bad_crc"] += 1
        self._push((bytes(self._mv[: length + 2]), check, self._t0, info))
