# The reliable link between firmware and host: one endpoint, used unchanged by both sides.
#
# Sans-I/O (bytes in, events out; the caller owns the UART and the clock):
#   link.receive(data, now_ms)   feed bytes read from the line
#   link.poll(now_ms)            -> a wire frame to write (memoryview, valid until the next call)
#                                   or None; call until None after every receive/send/tick
#   link.next_event()            -> (EV_*, value) or None
#   link.send(msg, rid=0)        queue a message (dict) for reliable, in-order delivery
#   link.consumed()              the oldest delivered message has been handled (and, when it
#                                carried a rid, durably stored): only now is it acknowledged
#
# Two layers of reliability, described in docs/link-protocol.md:
# 1. A session (established by a HELLO handshake with fresh nonces) numbers DATA frames with a
#    16-bit seq; the receiver acknowledges cumulatively what the application has consumed; the
#    sender keeps up to `window` frames in flight and goes back to the first unacknowledged one on
#    a timeout or a duplicate acknowledgement. Frames from an older session carry another session
#    tag and are ignored.
# 2. Durable messages carry a record id (rid), increasing per sender stream. Each side persists,
#    with the data, the last rid it consumed from the peer's stream and announces it in HELLO; the
#    sender then drops what the peer already has and re-sends the rest. So a restart of either side
#    neither loses nor doubles a durable message.
import struct

from smgwfw import cbor
from smgwfw import frame as fr
from smgwfw import messages as m

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


PROTO_VERSION = const(1)

# events
EV_UP = const(1)  # value: the peer's HELLO map (session established)
EV_DOWN = const(2)  # value: reason text (session lost; the link re-synchronises by itself)
EV_MESSAGE = const(3)  # value: message dict; call consumed() once it is handled
EV_ACKED = const(4)  # value: rid of a durable message the peer has consumed
EV_ERROR = const(5)  # value: (error code from messages.ERR_*, detail); already answered
EV_PEER_RESTART = const(6)  # value: the new HELLO map; the peer is a new incarnation

# HELLO keys
H_PROTO = const(1)
H_ROLE = const(2)
H_NONCE = const(3)
H_ECHO = const(4)
H_UP = const(5)
H_STREAM = const(6)
H_CURSOR_STREAM = const(7)
H_CURSOR = const(8)
H_MAX_PAYLOAD = const(9)
H_WINDOW = const(10)
H_CATALOGUE = const(11)
H_INFO = const(12)
H_INCARNATION = const(13)

_SYNC = const(0)
_UP = const(1)

_MASK = const(0x3FFFFFFF)  # time arithmetic modulo 2**30, like MicroPython's ticks
_HALF = const(0x20000000)


def _tdiff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def _sdiff(a, b):
    # signed distance between 16-bit sequence numbers
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


COUNTER_NAMES = (
    "frames_rx",
    "frames_tx",
    "bad_cobs",
    "bad_length",
    "bad_crc",
    "bad_version",
    "bad_kind",
    "too_long",
    "stale_session",
    "out_of_order",
    "dup_frames",
    "dup_records",
    "retransmits",
    "timeouts",
    "bad_messages",
    "queue_full",
    "rx_queue_full",
    "too_large_for_peer",
    "sessions",
    "peer_restarts",
)


class Link:
    def __init__(
        self,
        role,
        stream,
        nonce_source,
        info=None,
        cursors=None,
        incarnation=0,
        window=8,
        max_payload=1024,
        rto_ms=200,
        min_rto_ms=20,
        hello_ms=500,
        keepalive_ms=1000,
        dead_ms=5000,
        ack_delay_ms=5,
        queue_len=64,
        queue_bytes=32768,
    ):
        # role: "fw" or "host"; stream: this side's durable stream id (31-bit, non-zero);
        # nonce_source: callable returning a fresh random 30-bit int per session attempt;
        # cursors: {peer stream id: last rid consumed}, from the caller's persistent store;
        # incarnation: changes whenever this side restarts (boot counter, process start).
        self.role = role
        self.stream = stream
        self._nonce_source = nonce_source
        self.info = info or {}
        self.cursors = cursors if cursors is not None else {}
        self.incarnation = incarnation
        self.window = window
        self.max_payload = max_payload
        # rto_ms is where the retransmit timer starts and the most it backs off to (times 8);
        # once acknowledgements arrive it follows the measured round trip (RFC 6298).
        self.rto_ms = rto_ms
        self.min_rto_ms = min_rto_ms
        self.hello_ms = hello_ms
        self.keepalive_ms = keepalive_ms
        self.dead_ms = dead_ms
        self.ack_delay_ms = ack_delay_ms
        self.queue_len = queue_len
        self.queue_bytes = queue_bytes

        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0
        self._enc = fr.Encoder(max_payload)
        self._defr = fr.Deframer(max_payload)
        self._events = []
        self._now = 0

        # session
        self._state = _SYNC
        self._nonce = self._new_nonce()
        self._peer_nonce = 0
        self._old_peer_nonces = [0, 0, 0, 0]
        self._sess = 0
        self._hello_due = True
        self._hello_at = 0
        self._last_rx = 0
        self.peer = None  # the peer's last HELLO map
        self._peer_stream = 0
        self._peer_incarnation = None
        self._peer_window = window
        self._peer_max_payload = max_payload

        # transmit: _txq holds [payload, rid] not yet acknowledged; the first _tx_sent of them
        # are in flight with seq _tx_base + index
        self._txq = []
        self._tx_bytes = 0
        self._tx_base = 0
        self._tx_high = 0  # one past the highest seq ever transmitted in this session
        self._tx_sent = 0
        self._rto_at = 0
        self._dupacks = 0
        self._fast_armed = True
        self._last_tx = 0
        self._rto_cur = rto_ms
        self._rto_base = rto_ms  # the timer without backoff
        self._srtt8 = 0  # smoothed round trip, times 8 (0: no sample yet)
        self._rttvar4 = 0  # its mean deviation, times 4
        self._rtt_seq = -1  # seq being timed, or -1
        self._rtt_t0 = 0

        # receive: _rxq holds [message, done] in seq order from _rx_consumed; _rx_surfaced of them
        # have been handed to the application
        self._rxq = []
        self._rx_next = 0
        self._rx_consumed = 0
        self._rx_surfaced = 0
        self._rx_rid_hi = 0
        self._ack_due = False
        self._ack_at = 0
        self._ack_sent = 0

    # ------------------------------------------------------------------ public API

    @property
    def up(self):
        return self._state == _UP

    def queued(self):
        return len(self._txq)

    def idle(self):
        # nothing to send: no queued message and no acknowledgement owed to the peer
        return not self._txq and not self._ack_due

    def queued_bytes(self):
        return self._tx_bytes

    def can_send(self, size=0):
        return (
            len(self._txq) < self.queue_len and self._tx_bytes + size <= self.queue_bytes
        )

    def send(self, msg, rid=0):
        # Queues a message (a dict, or its CBOR encoding as bytes) for delivery. Durable messages
        # pass their rid (> 0, increasing per stream). Returns False when the queue is full: the
        # caller decides what to drop and says so; nothing is ever dropped silently in here.
        if isinstance(msg, dict):
            if rid:
                msg[m.K_RID] = rid
            payload = cbor.dumps(msg)
        else:
            payload = bytes(msg)
        if len(payload) > self.max_payload:
            raise ValueError("message larger than max_payload")
        if len(payload) > self._peer_max_payload:
            self.counters["too_large_for_peer"] += 1
            return False
        if not self.can_send(len(payload)):
            self.counters["queue_full"] += 1
            return False
        self._txq.append([payload, rid])
        self._tx_bytes += len(payload)
        return True

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        while self._rx_surfaced < len(self._rxq):
            e = self._rxq[self._rx_surfaced]
            self._rx_surfaced += 1
            if not e[1]:
                return (EV_MESSAGE, e[0])
        return None

    def consumed(self):
        # Marks the oldest surfaced, not yet consumed message as handled.
        q = self._rxq
        for i in range(self._rx_surfaced):
            e = q[i]
            if not e[1]:
                e[1] = True
                rid = e[0].get(m.K_RID, 0) if isinstance(e[0], dict) else 0
                if rid and self._peer_stream:
                    if rid > self.cursors.get(self._peer_stream, 0):
                        self.cursors[self._peer_stream] = rid
                break
        else:
            raise ValueError("consumed() without a delivered message")
        self._advance_consumed()

    def retry_later(self):
        # The application could not handle the oldest delivered message now (its store failed):
        # it stays unconsumed, so unacknowledged, and next_event() offers it again.
        q = self._rxq
        i = 0
        while i < self._rx_surfaced and q[i][1]:
            i += 1
        self._rx_surfaced = i

    def cursor(self):
        # the last durable rid consumed from the current peer stream
        return self.cursors.get(self._peer_stream, 0) if self._peer_stream else 0

    def peer_stream(self):
        return self._peer_stream

    def receive(self, data, now_ms):
        self._now = now_ms
        if data:
            self._defr.feed(data, 0, self._on_frame)

    def tick(self, now_ms):
        # Timers only; poll() calls this too.
        self._now = now_ms
        if self._state == _UP:
            if _tdiff(now_ms, self._last_rx) >= self.dead_ms:
                self.counters["timeouts"] += 1
                self._leave_up("no frames from the peer for %d ms" % self.dead_ms)
                return
            if self._tx_sent and _tdiff(now_ms, self._rto_at) >= 0:
                self.counters["retransmits"] += self._tx_sent
                self._tx_sent = 0
                self._dupacks = 0
                self._rtt_seq = -1  # Karn: a retransmitted frame gives no round-trip sample
                # back off (bounded) so a slow line is not flooded with copies
                self._rto_cur = min(self._rto_cur * 2, self.rto_ms * 8)
        elif _tdiff(now_ms, self._hello_at) >= 0:
            self._hello_due = True

    def poll(self, now_ms):
        self.tick(now_ms)
        if self._hello_due:
            self._hello_due = False
            if self._state == _SYNC:
                self._hello_at = (now_ms + self.hello_ms) & _MASK
            return self._frame_hello()
        if self._state != _UP:
            return None
        limit = self.window if self.window < self._peer_window else self._peer_window
        while self._tx_sent < len(self._txq) and len(self._txq[self._tx_sent][0]) > \
                self._peer_max_payload:
            # queued before the peer's limit was known; it could never be delivered
            e = self._txq.pop(self._tx_sent)
            self._tx_bytes -= len(e[0])
            self.counters["too_large_for_peer"] += 1
            self._events.append((EV_ERROR, (m.ERR_NOT_SUPPORTED, "message larger than the peer "
                                            "accepts, rid %d" % e[1])))
        if self._tx_sent < len(self._txq) and self._tx_sent < limit:
            e = self._txq[self._tx_sent]
            seq = (self._tx_base + self._tx_sent) & 0xFFFF
            if self._tx_sent == 0:
                self._rto_at = (now_ms + self._rto_cur) & _MASK
            if self._rtt_seq < 0 and _sdiff(seq, self._tx_high) >= 0:
                self._rtt_seq = seq
                self._rtt_t0 = now_ms
            if _sdiff(seq, self._tx_high) >= 0:
                self._tx_high = (seq + 1) & 0xFFFF
            self._tx_sent += 1
            return self._frame(fr.KIND_DATA, seq, e[0])
        if self._ack_due and (
            _tdiff(now_ms, self._ack_at) >= 0 or self._unacked() >= (self.window + 1) // 2
        ):
            return self._frame(fr.KIND_ACK, 0, b"")
        if _tdiff(now_ms, self._last_tx) >= self.keepalive_ms:
            return self._frame(fr.KIND_ACK, 0, b"")
        return None

    def next_deadline(self, now_ms):
        # ms until poll() may have something to do without new input (for the caller's sleep)
        if self._hello_due or self._events:
            return 0
        if self._state != _UP:
            return max(0, _tdiff(self._hello_at, now_ms))
        d = self.keepalive_ms - _tdiff(now_ms, self._last_tx)
        if self._tx_sent:
            d = min(d, _tdiff(self._rto_at, now_ms))
        if self._ack_due:
            d = min(d, _tdiff(self._ack_at, now_ms))
        d = min(d, self.dead_ms - _tdiff(now_ms, self._last_rx))
        return max(0, d)

    # ------------------------------------------------------------------ frames out

    def _frame(self, kind, seq, payload):
        self.counters["frames_tx"] += 1
        self._last_tx = self._now
        self._ack_due = False
        self._ack_sent = self._rx_consumed
        return self._enc.encode(kind, self._sess, seq, self._rx_consumed, payload)

    def _frame_hello(self):
        h = {
            H_PROTO: PROTO_VERSION,
            H_ROLE: self.role,
            H_NONCE: self._nonce,
            H_ECHO: self._peer_nonce,
            H_UP: self._state == _UP,
            H_STREAM: self.stream,
            H_CURSOR_STREAM: self._peer_stream,
            H_CURSOR: self.cursor(),
            H_MAX_PAYLOAD: self.max_payload,
            H_WINDOW: self.window,
            H_CATALOGUE: m.CATALOGUE_VERSION,
            H_INCARNATION: self.incarnation,
            H_INFO: self.info,
        }
        payload = cbor.dumps(h)
        self.counters["frames_tx"] += 1
        self._last_tx = self._now
        return self._enc.encode(fr.KIND_HELLO, 0, 0, 0, payload)

    def _unacked(self):
        return (self._rx_consumed - self._ack_sent) & 0xFFFF

    # ------------------------------------------------------------------ frames in

    def _on_frame(self, reason):
        c = self.counters
        if reason:
            c[fr.REASONS[reason]] += 1
            return
        c["frames_rx"] += 1
        d = self._defr
        if d.kind == fr.KIND_HELLO:
            self._on_hello(d.payload())
            return
        if self._state != _UP or d.sess != self._sess:
            c["stale_session"] += 1
            return
        self._last_rx = self._now
        self._on_ack(d.ack, d.kind == fr.KIND_ACK)
        if d.kind == fr.KIND_DATA:
            self._on_data(d.seq, d.payload())

    def _on_ack(self, ack, pure):
        n = _sdiff(ack, self._tx_base)
        # anything sent in this session may be acknowledged, also after a go-back reset _tx_sent
        if n > 0 and n <= _sdiff(self._tx_high, self._tx_base) and n <= len(self._txq):
            for _ in range(n):
                e = self._txq.pop(0)
                self._tx_bytes -= len(e[0])
                if e[1]:
                    self._events.append((EV_ACKED, e[1]))
            if self._rtt_seq >= 0 and 0 <= _sdiff(self._rtt_seq, self._tx_base) < n:
                self._rtt_sample(_tdiff(self._now, self._rtt_t0))
                self._rtt_seq = -1
            self._tx_base = ack
            self._tx_sent = self._tx_sent - n if self._tx_sent > n else 0
            self._dupacks = 0
            self._fast_armed = True
            self._rto_cur = self._rto_base
            self._rto_at = (self._now + self._rto_cur) & _MASK
        elif n == 0 and pure and self._tx_sent and self._fast_armed:
            # Only pure ACKs count: DATA frames repeat the ack value whenever the peer has news of
            # its own. Two in a row mean the peer saw a later frame but not the next one: go back
            # without waiting for the timer, once per loss (the frames still in flight would
            # otherwise trigger more go-backs).
            self._dupacks += 1
            if self._dupacks >= 2:
                self.counters["retransmits"] += self._tx_sent
                self._tx_sent = 0
                self._dupacks = 0
                self._fast_armed = False
                self._rtt_seq = -1

    def _rtt_sample(self, r):
        # RFC 6298 in integers: srtt += (r - srtt) / 8, rttvar += (|r - srtt| - rttvar) / 4
        if r < 0:
            return
        if self._srtt8 == 0:
            self._srtt8 = r * 8 or 1
            self._rttvar4 = r * 2
        else:
            err = r - (self._srtt8 >> 3)
            self._srtt8 += err
            if err < 0:
                err = -err
            self._rttvar4 += err - (self._rttvar4 >> 2)
        rto = (self._srtt8 >> 3) + self._rttvar4
        if rto < self.min_rto_ms:
            rto = self.min_rto_ms
        if rto > self.rto_ms * 8:
            rto = self.rto_ms * 8
        self._rto_base = rto

    def rtt(self):
        # (smoothed round trip ms, current retransmit timeout ms); srtt 0 = not measured yet
        return self._srtt8 >> 3, self._rto_base

    def _on_data(self, seq, payload):
        c = self.counters
        if seq != self._rx_next:
            if _sdiff(seq, self._rx_next) < 0:
                c["dup_frames"] += 1
            else:
                c["out_of_order"] += 1
            # tell the sender at once where we stand (its duplicate-ack trigger)
            self._ack_due = True
            self._ack_at = self._now
            return
        if len(self._rxq) >= self.window:
            self.counters["rx_queue_full"] += 1
            return  # application is behind; the sender will retransmit
        try:
            msg = cbor.loads(payload)
        except cbor.CborError as e:
            msg = None
            self._reject(m.ERR_BAD_CBOR, str(e), -1)
        if msg is not None and not (isinstance(msg, dict) and isinstance(msg.get(m.K_TYPE), int)):
            self._reject(m.ERR_NOT_A_MESSAGE, "not a map with an integer type", -1)
            msg = None
        self._rx_next = (self._rx_next + 1) & 0xFFFF
        if msg is None:
            # a frame with a good CRC but a bad message: consumed and answered, never re-asked
            self._rxq.append([None, True])
            self._advance_consumed()
            return
        rid = msg.get(m.K_RID, 0)
        if rid:
            if not isinstance(rid, int) or rid < 0:
                self._reject(m.ERR_BAD_FIELD, "rid must be a positive integer", msg[m.K_TYPE])
                self._rxq.append([None, True])
                self._advance_consumed()
                return
            if rid <= self.cursor() or rid <= self._rx_rid_hi:
                c["dup_records"] += 1
                self._rxq.append([msg, True])
                self._advance_consumed()
                return
            self._rx_rid_hi = rid
        self._rxq.append([msg, False])

    def reject(self, code, detail, ref):
        # For the application: answer a delivered message it cannot handle (then call consumed()).
        self._reject(code, detail, ref)

    def _reject(self, code, detail, ref):
        self.counters["bad_messages"] += 1
        self._events.append((EV_ERROR, (code, detail)))
        if not (isinstance(ref, int) and ref == m.T_ERROR):  # never answer an error with one
            self.send(
                {m.K_TYPE: m.T_ERROR, m.K_ERROR_CODE: code, m.K_ERROR_DETAIL: detail[:80],
                 m.K_ERROR_REF: ref if isinstance(ref, int) else -1}
            )

    def _advance_consumed(self):
        # pop consumed entries from the head (entries the app never saw, i.e. duplicates or
        # rejected frames, count as consumed when they reach the head)
        q = self._rxq
        k = 0
        while q and q[0][1]:
            q.pop(0)
            k += 1
        if k:
            self._rx_surfaced = max(0, self._rx_surfaced - k)
            self._rx_consumed = (self._rx_consumed + k) & 0xFFFF
            if not self._ack_due:
                self._ack_due = True
                self._ack_at = (self._now + self.ack_delay_ms) & _MASK

    # ------------------------------------------------------------------ session handshake

    def _new_nonce(self):
        n = self._nonce_source() & _MASK
        return n or 1

    def _on_hello(self, payload):
        try:
            h = cbor.loads(payload)
        except cbor.CborError as e:
            self._events.append((EV_ERROR, (m.ERR_BAD_CBOR, "hello: " + str(e))))
            self.counters["bad_messages"] += 1
            return
        if not isinstance(h, dict) or not self._hello_ok(h):
            self._events.append((EV_ERROR, (m.ERR_BAD_FIELD, "hello: malformed")))
            self.counters["bad_messages"] += 1
            return
        if h[H_PROTO] != PROTO_VERSION or h[H_CATALOGUE] != m.CATALOGUE_VERSION:
            self._events.append(
                (EV_ERROR, (m.ERR_NOT_SUPPORTED, "hello: peer speaks protocol %d/%d"
                            % (h[H_PROTO], h[H_CATALOGUE])))
            )
            self.counters["bad_messages"] += 1
            return
        if h[H_ROLE] == self.role:
            self._events.append((EV_ERROR, (m.ERR_NOT_SUPPORTED, "hello: peer has our own role")))
            self.counters["bad_messages"] += 1
            return
        nonce = h[H_NONCE]
        if nonce in self._old_peer_nonces:
            return  # a late copy from an earlier handshake
        if self._state == _UP:
            self._last_rx = self._now
            if nonce == self._peer_nonce:
                if not h[H_UP]:
                    self._hello_due = True  # the peer missed our "up" hello
                return
            # the peer started a new handshake: our session is gone with it
            self._leave_up("peer re-synchronised")
        self._adopt_peer(h)
        if h[H_ECHO] == self._nonce:
            self._enter_up()
        self._hello_due = True

    def _hello_ok(self, h):
        for k in (H_PROTO, H_NONCE, H_ECHO, H_STREAM, H_CURSOR_STREAM, H_CURSOR, H_MAX_PAYLOAD,
                  H_WINDOW, H_CATALOGUE, H_INCARNATION):
            v = h.get(k)
            if not isinstance(v, int) or v is True or v is False or v < 0:
                return False
        return isinstance(h.get(H_ROLE), str) and isinstance(h.get(H_UP), bool)

    def _adopt_peer(self, h):
        if h[H_NONCE] != self._peer_nonce:
            if self._peer_nonce:
                self._old_peer_nonces.pop(0)
                self._old_peer_nonces.append(self._peer_nonce)
            self._peer_nonce = h[H_NONCE]
        restarted = (
            self._peer_incarnation is not None
            and (h[H_INCARNATION] != self._peer_incarnation or h[H_STREAM] != self._peer_stream)
        )
        self.peer = h
        self._peer_stream = h[H_STREAM]
        self._peer_incarnation = h[H_INCARNATION]
        self._peer_window = max(1, h[H_WINDOW])
        self._peer_max_payload = min(self.max_payload, max(64, h[H_MAX_PAYLOAD]))
        if restarted:
            self.counters["peer_restarts"] += 1
            # volatile messages were meant for the old incarnation; it is gone
            keep = []
            for e in self._txq:
                if e[1]:
                    keep.append(e)
                else:
                    self._tx_bytes -= len(e[0])
            self._txq = keep
            self._events.append((EV_PEER_RESTART, h))
        # drop durable messages the peer already has
        if h[H_CURSOR_STREAM] == self.stream and h[H_CURSOR]:
            cur = h[H_CURSOR]
            keep = []
            for e in self._txq:
                if e[1] and e[1] <= cur:
                    self._tx_bytes -= len(e[0])
                    self._events.append((EV_ACKED, e[1]))
                else:
                    keep.append(e)
            self._txq = keep

    def _enter_up(self):
        self._state = _UP
        self._sess = ((self._nonce ^ self._peer_nonce) & 0xFFFF) or 1
        self._tx_base = 0
        self._tx_high = 0
        self._tx_sent = 0
        self._dupacks = 0
        self._rtt_seq = -1
        self._rto_cur = self._rto_base
        self._rx_next = 0
        self._rx_consumed = 0
        self._ack_sent = 0
        self._rxq = []
        self._rx_surfaced = 0
        self._rx_rid_hi = 0
        self._ack_due = False
        self._last_rx = self._now
        self._last_tx = self._now
        self.counters["sessions"] += 1
        self._events.append((EV_UP, self.peer))

    def _leave_up(self, reason):
        self._state = _SYNC
        self._nonce = self._new_nonce()
        self._hello_due = True
        self._hello_at = self._now
        # unconsumed deliveries are forgotten: the peer re-sends them in the next session
        self._rxq = []
        self._rx_surfaced = 0
        self._tx_sent = 0
        self._events.append((EV_DOWN, reason))
