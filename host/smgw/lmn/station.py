"""The meter's side of the wired LMN (docs/lmn-wired.md §3, §4 and the meter side of §5, §6):
one station on the RS-485 bus. Sans-I/O and without a clock of its own: the caller hands it
every good frame it saw on the bus with the time the frame's last byte arrived, and sends what
it returns at the times it says.

    st = MeterStation(sid, identity, pairing_key, answer, random.Random(1))
    for start_s, wire in st.on_frame(frame, end_s): ...   # transmit `wire` at `start_s`
    st.tick(now_s)                                          # the orphan timer

Layers inside, bottom up:

* management (UI frames to 0x7F from the gateway): answer INVITE in a random slot while the
  station has no address, take the address of an ASSIGN that names its sid and confirm it;
* the link (frames to its address): SNRM/UA, DISC/UA|DM, I/RR stop-and-wait, window 1 modulo
  8, retransmission of an unacknowledged I-frame at the next poll, DM without a link;
* channels in I-frames: 0x01 pairing (``security.MeterPairing``), 0x02 TLS
  (``security.TlsEndpoint`` as the server, trusting only the pinned gateway certificate);
* inside TLS: SML transport frames cut out of the byte stream, each handed to ``answer``, whose
  reply goes back through TLS.

Whose fault: frames and messages the gateway gets wrong are ignored or answered as the spec
says (DM, PAIR_FAIL, a dropped TLS session) and counted; nothing here raises for anything that
comes off the bus.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from smgw.lmn import hdlc, mgmt, security
from smgw.lmn.hdlc import Frame

__all__ = ["CH_PAIRING", "CH_TLS", "MAX_CHANNEL_DATA", "MeterStation", "SmlSplitter",
           "StationCounters"]

CH_PAIRING = 0x01
CH_TLS = 0x02
MAX_CHANNEL_DATA = hdlc.MAX_INFO - 1  # 1023: the channel byte takes one

# What may wait for the gateway's polls. TLS output for one SML answer is a few kB; a gateway
# that stops polling while requests keep coming must not grow the meter without bound.
MAX_QUEUED = 64 * 1024


@dataclass
class StationCounters:
    frames_rx: int = 0  # good frames addressed to this station (and ASSIGNs naming its sid)
    answers: int = 0  # transmissions of any kind
    retransmits: int = 0  # I-frames sent again because the gateway had not acknowledged them
    duplicates: int = 0  # I-frames from the gateway received again (not delivered twice)
    registrations: int = 0  # REGISTERs sent
    assignments: int = 0  # addresses taken from ASSIGN
    orphaned: int = 0  # addresses forgotten by the orphan timer
    links: int = 0  # SNRMs answered with UA
    dm_sent: int = 0
    pairings: int = 0  # pairings completed (PAIR_DONE sent)
    pairing_failures: int = 0
    tls_sessions: int = 0  # TLS handshakes completed
    tls_failures: int = 0
    tls_refused: int = 0  # TLS data while not paired (no gateway certificate to trust)
    polls_answered: int = 0  # I/RR/RNR polls answered with an I-frame or RR
    sml_requests: int = 0  # SML files received inside TLS
    bad_requests: int = 0  # ... that ``answer`` rejected
    bad_mgmt: int = 0  # malformed management messages
    bad_channel: int = 0  # I-frames with no or an unknown channel byte
    overflows: int = 0  # TLS sessions dropped because the gateway did not fetch the output


class SmlSplitter:
    """Cuts SML transport v1 frames (``1B1B1B1B 01010101 .. 1B1B1B1B 1A PP C1 C2``) out of a
    byte stream, in any chunking. Escapes count on the 4-byte grid from the frame start, as in
    the decoder (smgw.meters.sml). Held bytes are capped at ``limit``; bytes that are no frame
    are dropped (counted in ``junk``)."""

    START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
    ESC = b"\x1b\x1b\x1b\x1b"

    def __init__(self, limit: int = MAX_QUEUED) -> None:
        self._buf = bytearray()
        self.limit = limit
        self.junk = 0

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while True:
            s = buf.find(self.START)
            if s < 0:
                keep = min(len(buf), 7)  # a start sequence may be arriving
                self.junk += len(buf) - keep
                del buf[:len(buf) - keep]
                break
            if s:
                self.junk += s
                del buf[:s]
            end = self._end()
            if end is None:
                if len(buf) > self.limit:  # a frame that never ends: give it up
                    self.junk += len(buf)
                    buf.clear()
                break
            if end < 0:  # broken at -end: drop what came before and look again
                self.junk += -end
                del buf[:-end]
                continue
            out.append(bytes(buf[:end]))
            del buf[:end]
        return out

    def _end(self) -> int | None:
        # end index of the frame at _buf[0]; None: not complete yet; -k: broken, drop k bytes
        buf = self._buf
        pos = 8
        while True:
            i = buf.find(self.ESC, pos)
            while i != -1 and i & 3:
                i = buf.find(self.ESC, i + 1)
            if i == -1 or i + 8 > len(buf):
                return None
            nxt = buf[i + 4:i + 8]
            if nxt == self.ESC:
                pos = i + 8
            elif nxt[0] == 0x1A:
                return i + 8
            elif nxt == b"\x01\x01\x01\x01":
                return -i  # a new start: the frame before it was cut off
            else:
                return -(i + 8)  # an escape sequence that means nothing


class MeterStation:
    """One meter on the bus. ``sid``: its server id (1..16 bytes); ``identity``: its
    ``security.Identity`` (CN = sid in hex); ``pairing_key``: the 16-byte pairing key K, or None
    when the station is paired already (then ``pinned_gateway_cert`` is required);
    ``answer(sml_request_frame) -> sml_response_frame`` produces the SML answers (raise
    ValueError for a request it rejects); ``rng`` picks registration slots.

    ``on_paired(station)`` is called after a completed pairing, when ``key`` (now K_op) and
    ``pinned_gateway_cert`` changed: a meter keeps both across restarts. ``nonce`` gives the
    pairing nonces (default ``os.urandom``).

    State: ``address`` (None while unassigned), ``linked``, ``paired``, ``tls_up``,
    ``counters`` (:class:`StationCounters`).
    """

    def __init__(
        self,
        sid: bytes,
        identity: security.Identity,
        pairing_key: bytes | None,
        answer: Callable[[bytes], bytes],
        rng: random.Random,
        orphan_s: float = 60.0,
        turnaround_ms: float = 2.0,
        *,
        pinned_gateway_cert: bytes | None = None,
        on_paired: Callable[[MeterStation], None] | None = None,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        sid = bytes(sid)
        if not 1 <= len(sid) <= mgmt.MAX_SID:
            raise ValueError(f"sid must be 1..{mgmt.MAX_SID} bytes, got {len(sid)}")
        if pairing_key is None and pinned_gateway_cert is None:
            raise ValueError("a station needs a pairing key or a pinned gateway certificate")
        if pairing_key is not None and len(pairing_key) != security.KEY_LEN:
            raise ValueError(f"pairing key must be {security.KEY_LEN} bytes")
        if orphan_s <= 0 or turnaround_ms < 0:
            raise ValueError("orphan_s must be > 0 and turnaround_ms >= 0")
        self.sid = sid
        self.identity = identity
        self.key = None if pairing_key is None else bytes(pairing_key)
        self.pinned_gateway_cert = pinned_gateway_cert
        self.answer = answer
        self.rng = rng
        self.orphan_s = float(orphan_s)
        self.turnaround_s = turnaround_ms / 1000
        self.on_paired = on_paired
        self._nonce = nonce
        self.counters = StationCounters()
        self.address: int | None = None
        self.linked = False
        self.tls_up = False
        self._last_heard = 0.0  # end time of the last frame addressed to this station
        self._reset_link()

    @property
    def paired(self) -> bool:
        return self.pinned_gateway_cert is not None

    # -------------------------------------------------------------- the bus

    def on_frame(self, frame: Frame, end_s: float) -> list[tuple[float, bytes]]:
        """A good frame seen on the bus (any address), its last byte at ``end_s``; returns the
        transmissions as (start time, frame bytes)."""
        if frame.src != hdlc.GATEWAY:
            return []  # other meters' answers: on a bus with one master, nothing for us
        if frame.dest == hdlc.BROADCAST:
            return self._on_broadcast(frame, end_s)
        if self.address is None or frame.dest != self.address:
            return []
        self._last_heard = end_s
        self.counters.frames_rx += 1
        reply = self._on_link(frame)
        if reply is None:
            return []
        self.counters.answers += 1
        return [(end_s + self.turnaround_s, hdlc.encode(reply))]

    def tick(self, now_s: float) -> None:
        """Runs the orphan timer: an address no frame was addressed to for ``orphan_s`` is
        forgotten with its link, so that the station registers again (how a meter comes back
        after it was unplugged, or after the gateway gave up on it)."""
        if self.address is not None and now_s - self._last_heard > self.orphan_s:
            self.address = None
            self.counters.orphaned += 1
            self._reset_link()

    # -------------------------------------------------------------- management

    def _on_broadcast(self, frame: Frame, end_s: float) -> list[tuple[float, bytes]]:
        if frame.kind != "UI":
            return []
        try:
            msg = mgmt.decode(frame.info)
        except mgmt.MgmtError:
            self.counters.bad_mgmt += 1
            return []
        if isinstance(msg, mgmt.Invite):
            if self.address is not None:
                return []
            # slotted random access: a uniformly random slot, the REGISTER starts at its
            # beginning plus the turnaround, counted from the end of the INVITE
            k = self.rng.randrange(msg.slots)
            start = end_s + k * msg.slot_ms / 1000 + self.turnaround_s
            reg = Frame(hdlc.GATEWAY, hdlc.UNASSIGNED, hdlc.UI,
                        mgmt.encode(mgmt.Register(msg.round, self.sid)))
            self.counters.registrations += 1
            self.counters.answers += 1
            return [(start, hdlc.encode(reg))]
        if isinstance(msg, mgmt.Assign) and msg.sid == self.sid:
            # the gateway is the authority on addresses: take this one even if we had another,
            # and expect a new link (SNRM) on it
            self.address = msg.address
            self._last_heard = end_s
            self._reset_link()
            self.counters.frames_rx += 1
            self.counters.assignments += 1
            self.counters.answers += 1
            done = Frame(hdlc.GATEWAY, self.address, hdlc.UI,
                         mgmt.encode(mgmt.Assigned(self.sid)))
            return [(end_s + self.turnaround_s, hdlc.encode(done))]
        return []

    # -------------------------------------------------------------- link

    def _reset_link(self) -> None:
        # no link: no sequence state, nothing queued, no pairing or TLS session in progress
        self.linked = False
        self._vs = 0  # N(S) of the outstanding (or next) I-frame
        self._vr = 0  # N(S) expected next from the gateway
        self._unacked: bytes | None = None  # info of the I-frame not yet acknowledged
        self._txq: deque[tuple[int, bytes]] = deque()
        self._queued = 0
        self._pairing: security.MeterPairing | None = None
        self._drop_tls()

    def _frame(self, control: int, info: bytes = b"") -> Frame:
        assert self.address is not None
        return Frame(hdlc.GATEWAY, self.address, control, info)

    def _on_link(self, frame: Frame) -> Frame | None:
        kind = frame.kind
        if kind == "SNRM":
            # a new link: V(S) = V(R) = 0, and whatever ran on the old one (pairing, TLS) is
            # gone; a new TLS handshake follows
            self._reset_link()
            self.linked = True
            self.counters.links += 1
            return self._frame(hdlc.UA)
        if kind == "DISC":
            if self.linked:
                self._reset_link()
                return self._frame(hdlc.UA)
            self.counters.dm_sent += 1
            return self._frame(hdlc.DM)
        if kind not in ("I", "RR", "RNR"):
            return None  # UI, UA, DM, FRMR addressed to a meter: nothing to answer
        if not self.linked:
            self.counters.dm_sent += 1
            return self._frame(hdlc.DM)
        # window 1: our outstanding I-frame is acknowledged when the gateway's N(R) moved past it
        if self._unacked is not None and frame.nr == (self._vs + 1) % 8:
            self._vs = (self._vs + 1) % 8
            self._unacked = None
        if kind == "I":
            if frame.ns == self._vr:
                self._vr = (self._vr + 1) % 8
                self._deliver(frame.info)
            else:
                # our acknowledgement was lost and the gateway sent it again
                self.counters.duplicates += 1
        if not frame.pf:
            return None  # in normal response mode a station answers only a poll
        self.counters.polls_answered += 1
        if kind == "RNR":
            return self._frame(hdlc.rr_control(self._vr))  # the gateway is busy: no data
        if self._unacked is not None:
            self.counters.retransmits += 1
            return self._frame(hdlc.i_control(self._vs, self._vr), self._unacked)
        if self._txq:
            ch, data = self._txq.popleft()
            self._queued -= len(data)
            self._unacked = bytes((ch,)) + data
            return self._frame(hdlc.i_control(self._vs, self._vr), self._unacked)
        return self._frame(hdlc.rr_control(self._vr))

    def _queue(self, channel: int, data: bytes) -> None:
        if channel == CH_PAIRING:
            self._txq.append((channel, data))  # one pairing message, one I-frame
            self._queued += len(data)
            return
        for i in range(0, len(data), MAX_CHANNEL_DATA):
            chunk = data[i:i + MAX_CHANNEL_DATA]
            self._txq.append((channel, chunk))
            self._queued += len(chunk)

    def _deliver(self, info: bytes) -> None:
        if not info:
            self.counters.bad_channel += 1
            return
        ch, data = info[0], info[1:]
        if ch == CH_PAIRING:
            self._on_pairing(data)
        elif ch == CH_TLS:
            self._on_tls(data)
        else:
            self.counters.bad_channel += 1

    # -------------------------------------------------------------- pairing (channel 0x01)

    def _on_pairing(self, msg: bytes) -> None:
        kind = msg[0] if msg else None
        if kind == security.PAIR_HELLO:
            if self.key is None:
                # paired without a key (installed with a pinned certificate): cannot prove
                self.counters.pairing_failures += 1
                self._queue(CH_PAIRING, security.fail_message(security.FAIL_UNEXPECTED))
                return
            # every HELLO starts afresh: the gateway begins a new pairing
            self._pairing = security.MeterPairing(self.key, self.identity, rng=self._nonce)
        if self._pairing is None:
            if kind != security.PAIR_FAIL:
                self.counters.pairing_failures += 1
                self._queue(CH_PAIRING, security.fail_message(security.FAIL_UNEXPECTED))
            return
        try:
            reply = self._pairing.on_message(msg)
        except security.PairingError as e:
            self._pairing = None
            self.counters.pairing_failures += 1
            if e.code != "peer_fail":  # never answer a PAIR_FAIL with one
                self._queue(CH_PAIRING, security.fail_message(e.code))
            return
        self._queue(CH_PAIRING, reply)
        p = self._pairing
        if p.done:
            # from now on K_op replaces K, and only this gateway certificate is trusted
            self.pinned_gateway_cert = p.gateway_cert_der
            self.key = p.operational_key
            self._pairing = None
            self._drop_tls()
            self.counters.pairings += 1
            if self.on_paired is not None:
                self.on_paired(self)

    # -------------------------------------------------------------- TLS (channel 0x02)

    def _drop_tls(self) -> None:
        self._tls: security.TlsEndpoint | None = None
        self._sml = SmlSplitter()
        self.tls_up = False

    def _on_tls(self, data: bytes) -> None:
        if self.pinned_gateway_cert is None:
            self.counters.tls_refused += 1  # nobody to trust yet: the handshake times out
            return
        if self._tls is None:
            self._tls = security.TlsEndpoint("server", self.identity, self.pinned_gateway_cert)
            self._sml = SmlSplitter()
        tls = self._tls
        try:
            tls.feed(data)
            if tls.handshake_done and not self.tls_up:
                self.tls_up = True
                self.counters.tls_sessions += 1
            app = tls.receive()
            if app:
                for request in self._sml.feed(app):
                    self._on_sml(tls, request)
            self._queue(CH_TLS, tls.pending_output())
        except security.TlsError:
            # the alert that says why still goes out; the gateway ends the link (DISC)
            self.counters.tls_failures += 1
            self._queue(CH_TLS, tls.pending_output())
            self._drop_tls()
            return
        if tls.closed:
            self._drop_tls()
        elif self._queued > MAX_QUEUED:
            self.counters.overflows += 1
            self._txq = deque(x for x in self._txq if x[0] != CH_TLS)
            self._queued = sum(len(d) for _, d in self._txq)
            self._drop_tls()

    def _on_sml(self, tls: security.TlsEndpoint, request: bytes) -> None:
        self.counters.sml_requests += 1
        try:
            response = self.answer(request)
        except ValueError:
            self.counters.bad_requests += 1
            return
        if response:
            tls.send(response)
