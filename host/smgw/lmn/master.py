"""The gateway's side of the wired LMN (docs/lmn-wired.md): the bus master, sans-I/O.

It decides every frame the gateway puts on the RS-485 bus and interprets what comes back; the
firmware only times the bus (section 7). One exchange is in flight at a time::

    req = master.next_request(now)        # Request(rid, frame, listen_ms) or None
    ...  the firmware sends it and reports:
    master.on_rx(rid, frame, check, at_ms, now)   # every frame heard in the window
    master.on_done(rid, count, sent, now)         # the window closed
    master.pop_events()                   # what the gateway must log or store (Event)
    master.next_deadline(now)             # when next_request() may have work again

Per meter: address assignment (INVITE/REGISTER/ASSIGN/ASSIGNED), an HDLC link (SNRM/UA, I/RR
stop-and-wait, window 1), symmetric pairing where the meter has no pinned certificate yet, TLS
with the pinned certificates, and an SML GetList poll every period inside TLS. A meter that
misses ``max_misses`` polls in a row is unreachable: its address is free and it registers anew.
A pairing or TLS failure ends the link (DISC) and is tried again after ``retry_s``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from smgw.lmn import hdlc, mgmt
from smgw.lmn.security import (GatewayPairing, Identity, SecurityError,
                               TlsEndpoint)
from smgw.meters import smlreq

CH_PAIRING = 0x01
CH_TLS = 0x02
MAX_CHUNK = hdlc.MAX_INFO - 1
_SML_END = b"\x1b\x1b\x1b\x1b\x1a"


@dataclass
class MeterConfig:
    """What the gateway knows of a wired LMN meter (its profile)."""

    sid: bytes
    period_s: float = 15.0
    pairing_key: bytes | None = None  # 16 bytes; K_op after the first pairing
    meter_cert: bytes | None = None  # the pinned LMN certificate (DER)

    @property
    def meter_id(self) -> str:
        return self.sid.hex()


@dataclass
class Request:
    rid: int
    frame: bytes
    listen_ms: int
    what: str  # "invite", "assign", "snrm", "poll", "disc"
    meter: str | None = None
    assign: tuple[bytes, int] | None = None  # what an "assign" request gives: (sid, address)


@dataclass
class Event:
    """kind: "address" (address), "paired" (key_id, operational_key, meter_cert), "tls_up",
    "values" (sml: one SML transport frame from the meter), "failed" (code, reason),
    "lost", "unknown" (a meter without a profile registered), "cert_used" (fingerprint)."""

    kind: str
    meter: str
    data: dict[str, Any] = field(default_factory=dict)


class _Meter:
    def __init__(self, cfg: MeterConfig) -> None:
        self.cfg = cfg
        self.address: int | None = None
        self.last_address: int | None = None
        self.state = "unaddressed"  # unaddressed, linking, linked, failed
        self.failed_until = 0.0
        self.disc_due = False
        self.misses = 0
        self.reset_link()

    def reset_link(self) -> None:
        self.vs = 0
        self.vr = 0
        self.out_frame: bytes | None = None  # the unacknowledged I-frame info
        self.out = bytearray()  # TLS bytes not yet cut into I-frames
        self.out_pairing: list[bytes] = []
        self.pairing: GatewayPairing | None = None
        self.tls: TlsEndpoint | None = None
        self.tls_up = False
        self.app = bytearray()
        self.awaiting = False  # an SML answer is due
        self.next_sml = 0.0
        self.last_poll = 0.0

    @property
    def busy(self) -> bool:
        # more exchanges are needed at once (not just a keep-alive)
        return bool(self.out_frame or self.out or self.out_pairing or self.awaiting
                    or (self.tls is not None and not self.tls_up)
                    or (self.pairing is not None and not self.pairing.done))


class LmnMaster:
    def __init__(self, identity_for: Callable[[str], Identity], *, client_id: bytes = b"SMGW",
                 baud: int = 115200, listen_ms: int = 60, invite_s: float = 10.0,
                 idle_invite_s: float = 60.0, keepalive_s: float = 5.0, retry_s: float = 60.0,
                 max_misses: int = 3, slots: int = 8, reserve_s: float = 120.0,
                 rng: random.Random | None = None) -> None:
        self.identity_for = identity_for  # meter id -> the gateway's LMN identity for it
        self.client_id = client_id
        self.listen_ms = listen_ms
        self.invite_s = invite_s
        self.idle_invite_s = idle_invite_s
        self.keepalive_s = keepalive_s
        self.retry_s = retry_s
        self.max_misses = max_misses
        self.reserve_s = reserve_s  # > a meter's orphan time (60 s, docs/lmn-wired.md §3)
        self.reserved: dict[int, float] = {}  # address -> until when no other meter gets it
        self.slots = slots
        self.slot_ms = mgmt.slot_ms_for(baud)
        self.rng = rng or random.Random()
        self.meters: dict[bytes, _Meter] = {}
        self.events: list[Event] = []
        self.pending: Request | None = None
        self.answers: list[hdlc.Frame] = []
        self.assign_queue: list[tuple[bytes, int]] = []
        self.next_invite = 0.0
        self.round = 0
        self._rid = 0
        self._transaction = self.rng.getrandbits(24)
        self._rr = 0  # round-robin position
        self.unknown: dict[str, int] = {}
        self.counters = {"exchanges": 0, "bad_frames": 0, "collisions": 0, "registers": 0,
                         "retransmits": 0, "misses": 0, "values": 0, "unsolicited": 0}

    # ------------------------------------------------------------------ profiles

    def set_meters(self, configs: list[MeterConfig]) -> None:
        wanted = {c.sid: c for c in configs}
        for sid in list(self.meters):
            if sid not in wanted:
                del self.meters[sid]
        for sid, cfg in wanted.items():
            if sid in self.meters:
                self.meters[sid].cfg = cfg
            else:
                self.meters[sid] = _Meter(cfg)
                self.next_invite = 0.0  # look for it at once

    def reset(self) -> None:
        """The firmware link restarted: exchanges in flight are gone, meters keep their address
        only as far as the next poll shows."""
        self.pending = None
        self.answers = []

    # ------------------------------------------------------------------ scheduling

    def _new(self, frame: hdlc.Frame, what: str, listen_ms: int, meter: _Meter | None = None
             ) -> Request:
        self._rid = (self._rid + 1) & 0x3FFFFFFF or 1
        self.pending = Request(self._rid, hdlc.encode(frame), listen_ms, what,
                               meter.cfg.meter_id if meter else None)
        self.answers = []
        self.counters["exchanges"] += 1
        return self.pending

    def next_request(self, now: float) -> Request | None:
        if self.pending is not None:
            return None
        if self.assign_queue:
            sid, addr = self.assign_queue.pop(0)
            info = mgmt.encode(mgmt.Assign(sid, addr))
            req = self._new(hdlc.Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, info), "assign",
                            self.listen_ms, self.meters.get(sid))
            req.assign = (sid, addr)
            return req
        order = list(self.meters.values())
        if order:
            k = self._rr % len(order)
            order = order[k:] + order[:k]
        for mt in order:
            req = self._meter_request(mt, now)
            if req is not None:
                self._rr += 1
                return req
        if now >= self.next_invite:
            return self._invite(now)
        return None

    def next_deadline(self, now: float) -> float:
        """Seconds until next_request() may have something (0 when it has now)."""
        if self.pending is not None:
            return 1.0
        times = [self.next_invite]
        for mt in self.meters.values():
            if mt.state == "failed":
                times.append(mt.failed_until)
            elif mt.state == "linking" or mt.disc_due or (mt.state == "linked" and mt.busy):
                return 0.0
            elif mt.state == "linked":
                times.append(mt.last_poll + self.keepalive_s)
                if mt.tls_up:
                    times.append(mt.next_sml)
        return max(0.0, min(times) - now)

    def _invite(self, now: float) -> Request:
        self.round = (self.round + 1) & 0xFFFF
        missing = any(mt.address is None for mt in self.meters.values())
        self.next_invite = now + (self.invite_s if missing or not self.meters
                                  else self.idle_invite_s)
        info = mgmt.encode(mgmt.Invite(self.slots, self.slot_ms, self.round))
        return self._new(hdlc.Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, info), "invite",
                         self.slots * self.slot_ms + self.listen_ms)

    def _meter_request(self, mt: _Meter, now: float) -> Request | None:
        if mt.address is None:
            return None
        a = mt.address
        if mt.disc_due:
            mt.disc_due = False
            return self._new(hdlc.Frame(a, hdlc.GATEWAY, hdlc.DISC), "disc", self.listen_ms, mt)
        if mt.state == "failed":
            if now < mt.failed_until:
                return None
            mt.state = "linking"
        if mt.state == "linking":
            return self._new(hdlc.Frame(a, hdlc.GATEWAY, hdlc.SNRM), "snrm", self.listen_ms, mt)
        if mt.state != "linked":
            return None
        if mt.tls_up and not mt.awaiting and now >= mt.next_sml:
            self._ask_values(mt, now)
        if not mt.busy and now < mt.last_poll + self.keepalive_s:
            return None
        mt.last_poll = now
        if mt.out_frame is None:
            if mt.out_pairing:
                mt.out_frame = bytes([CH_PAIRING]) + mt.out_pairing.pop(0)
            elif mt.out:
                mt.out_frame = bytes([CH_TLS]) + bytes(mt.out[:MAX_CHUNK])
                del mt.out[:MAX_CHUNK]
        if mt.out_frame is not None:
            frame = hdlc.Frame(a, hdlc.GATEWAY, hdlc.i_control(mt.vs, mt.vr), mt.out_frame)
        else:
            frame = hdlc.Frame(a, hdlc.GATEWAY, hdlc.rr_control(mt.vr))
        return self._new(frame, "poll", self.listen_ms, mt)

    # ------------------------------------------------------------------ answers

    def on_rx(self, rid: int | None, frame: bytes, check: str, at_ms: int | None,
              now: float) -> None:
        if rid is None or self.pending is None or rid != self.pending.rid:
            self.counters["unsolicited"] += 1
            return
        if check != "x25":
            # a collision or a line error: the slot (or the poll) counts as not answered
            self.counters["bad_frames"] += 1
            if self.pending.what == "invite":
                self.counters["collisions"] += 1
            return
        try:
            f = hdlc.decode(frame)
        except hdlc.HdlcError:
            self.counters["bad_frames"] += 1
            return
        if f.dest != hdlc.GATEWAY:
            return  # another station's frame (there is none on a bus with one master)
        self.answers.append(f)

    def on_done(self, rid: int, count: int, sent: bool, now: float) -> None:
        req = self.pending
        if req is None or rid != req.rid:
            return
        self.pending = None
        answers, self.answers = self.answers, []
        if req.what == "invite":
            self._on_registers(answers, now)
            return
        mt = self.meters.get(bytes.fromhex(req.meter)) if req.meter else None
        if req.what == "assign":
            self._on_assigned(answers, req)
            return
        if mt is None or mt.address is None:
            return
        mine = [f for f in answers if f.src == mt.address]
        if req.what == "disc":
            return
        if not mine:
            self._miss(mt, now)
            return
        mt.misses = 0
        ans = mine[0]
        if req.what == "snrm":
            if ans.kind == "UA":
                mt.state = "linked"
                mt.reset_link()
                mt.last_poll = 0.0
                self._start_security(mt, now)
            else:
                self._miss(mt, now)
            return
        self._on_poll_answer(mt, ans, now)

    def _on_registers(self, answers: list[hdlc.Frame], now: float) -> None:
        taken = {mt.address for mt in self.meters.values() if mt.address is not None}
        for f in answers:
            if f.control != hdlc.UI or f.src != hdlc.UNASSIGNED:
                continue
            try:
                msg = mgmt.decode(f.info)
            except mgmt.MgmtError:
                self.counters["bad_frames"] += 1
                continue
            if not isinstance(msg, mgmt.Register) or msg.round != self.round:
                continue
            self.counters["registers"] += 1
            mt = self.meters.get(msg.sid)
            if mt is None:
                mid = msg.sid.hex()
                if mid not in self.unknown:
                    self.events.append(Event("unknown", mid))
                self.unknown[mid] = self.unknown.get(mid, 0) + 1
                continue
            # the meter lost its address (unplugged, restarted): whatever we had is gone
            if mt.address is not None:
                taken.discard(mt.address)
                mt.last_address = mt.address
                mt.address = None
                mt.state = "unaddressed"
                mt.reset_link()
            # its old address if it is free, else one no other meter may still believe it has
            held = {a for a, until in self.reserved.items() if until > now}
            if mt.last_address is not None and mt.last_address not in taken:
                addr = mt.last_address
            else:
                free = [a for a in range(hdlc.FIRST_METER, hdlc.LAST_METER + 1)
                        if a not in taken and a not in held]
                if not free:
                    continue  # 110 meters on one bus: the next invitation may find room
                addr = free[0]
            self.reserved.pop(addr, None)
            taken.add(addr)
            self.assign_queue.append((msg.sid, addr))

    def _on_assigned(self, answers: list[hdlc.Frame], req: Request) -> None:
        assert req.assign is not None
        sid, address = req.assign
        mt = self.meters.get(sid)
        for f in answers:
            if f.src != address or f.control != hdlc.UI:
                continue
            try:
                msg = mgmt.decode(f.info)
            except mgmt.MgmtError:
                continue
            if isinstance(msg, mgmt.Assigned) and msg.sid == sid and mt is not None:
                mt.address = address
                mt.state = "linking"
                mt.misses = 0
                mt.reset_link()
                self.events.append(Event("address", mt.cfg.meter_id, {"address": address}))
                return

    def _miss(self, mt: _Meter, now: float) -> None:
        mt.misses += 1
        self.counters["misses"] += 1
        if mt.misses >= self.max_misses:
            self.events.append(Event("lost", mt.cfg.meter_id, {"address": mt.address}))
            # the meter may still hold the address (unplugged for a moment): give it to no
            # other meter before the meter's orphan time has surely passed
            self.reserved[mt.address] = now + self.reserve_s
            mt.last_address = mt.address
            mt.address = None
            mt.state = "unaddressed"
            mt.misses = 0
            mt.reset_link()
            self.next_invite = min(self.next_invite, now)

    def _on_poll_answer(self, mt: _Meter, f: hdlc.Frame, now: float) -> None:
        if f.kind == "DM":
            # the meter has no link with us (it restarted or dropped it): start again
            mt.state = "linking"
            mt.reset_link()
            return
        if f.kind not in ("I", "RR", "RNR"):
            self._miss(mt, now)
            return
        if mt.out_frame is not None:
            if f.nr == (mt.vs + 1) % 8:
                mt.vs = (mt.vs + 1) % 8
                mt.out_frame = None
            else:
                self.counters["retransmits"] += 1
        if f.kind == "I":
            if f.ns == mt.vr:
                mt.vr = (mt.vr + 1) % 8
                self._on_data(mt, f.info, now)
            # else: a repeat of what we have (our acknowledgement was lost); the next poll
            # carries V(R) and so acknowledges it

    # ------------------------------------------------------------------ security and data

    def _start_security(self, mt: _Meter, now: float) -> None:
        cfg = mt.cfg
        try:
            ident = self.identity_for(cfg.meter_id)
        except (OSError, ValueError) as e:
            self._fail(mt, "identity", f"Gateway-Zertifikat nicht verfügbar: {e}", now)
            return
        if cfg.meter_cert is not None:
            mt.tls = TlsEndpoint("client", ident, cfg.meter_cert, peer_cn=cfg.meter_id)
            mt.tls.start()
            self._pump_tls(mt, now)
        elif cfg.pairing_key is not None:
            mt.pairing = GatewayPairing(cfg.pairing_key, ident, cfg.meter_id)
            mt.out_pairing.append(mt.pairing.hello())
        else:
            self._fail(mt, "no_key", "weder Zertifikat noch Pairing-Schlüssel hinterlegt", now)

    def _fail(self, mt: _Meter, code: str, reason: str, now: float) -> None:
        self.events.append(Event("failed", mt.cfg.meter_id, {"code": code, "reason": reason}))
        mt.reset_link()
        mt.state = "failed"
        mt.failed_until = now + self.retry_s
        mt.disc_due = True

    def _on_data(self, mt: _Meter, info: bytes, now: float) -> None:
        if not info:
            return
        ch, data = info[0], info[1:]
        try:
            if ch == CH_PAIRING and mt.pairing is not None and not mt.pairing.done:
                reply = mt.pairing.on_message(data)  # a PAIR_FAIL raises PairingError there
                if reply is not None:
                    mt.out_pairing.append(reply)
                if mt.pairing.done:
                    p = mt.pairing
                    mt.cfg.meter_cert = p.meter_cert_der
                    mt.cfg.pairing_key = p.operational_key
                    self.events.append(Event("paired", mt.cfg.meter_id, {
                        "key_id": p.key_id, "operational_key": p.operational_key,
                        "meter_cert": p.meter_cert_der}))
                    mt.pairing = None
                    mt.tls = TlsEndpoint("client", self.identity_for(mt.cfg.meter_id),
                                         mt.cfg.meter_cert, peer_cn=mt.cfg.meter_id)
                    mt.tls.start()
                    self._pump_tls(mt, now)
            elif ch == CH_TLS and mt.tls is not None:
                mt.tls.feed(data)
                self._pump_tls(mt, now)
            else:
                self.counters["bad_frames"] += 1
        except SecurityError as e:
            code = getattr(e, "code", "security")
            if mt.pairing is not None and ch == CH_PAIRING:
                mt.out_pairing = []
            self._fail(mt, code, getattr(e, "reason", str(e)), now)

    def _pump_tls(self, mt: _Meter, now: float) -> None:
        tls = mt.tls
        assert tls is not None
        if tls.handshake_done and not mt.tls_up:
            mt.tls_up = True
            mt.next_sml = now
            self.events.append(Event("tls_up", mt.cfg.meter_id))
        if mt.tls_up:
            mt.app += tls.receive()
            self._take_sml(mt, now)
        mt.out += tls.pending_output()

    def _ask_values(self, mt: _Meter, now: float) -> None:
        assert mt.tls is not None
        self._transaction = (self._transaction + 3) & 0xFFFFFFFF
        req = smlreq.get_list_request(mt.cfg.sid, self.client_id,
                                      self._transaction.to_bytes(4, "big"), self._transaction)
        mt.tls.send(req)
        mt.out += mt.tls.pending_output()
        mt.awaiting = True
        mt.next_sml = now + mt.cfg.period_s

    def _take_sml(self, mt: _Meter, now: float) -> None:
        # complete SML transport frames out of the TLS byte stream (end: 1b1b1b1b 1a pp crc crc)
        while True:
            k = mt.app.find(_SML_END)
            if k < 0 or len(mt.app) < k + 8:
                if len(mt.app) > 64 * 1024:  # not SML: do not let it grow
                    mt.app.clear()
                return
            frame = bytes(mt.app[:k + 8])
            del mt.app[:k + 8]
            start = frame.find(b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01")
            if start < 0:
                continue
            mt.awaiting = False
            self.counters["values"] += 1
            self.events.append(Event("values", mt.cfg.meter_id, {"sml": frame[start:],
                                                                 "at": now}))

    # ------------------------------------------------------------------ out

    def pop_events(self) -> list[Event]:
        ev, self.events = self.events, []
        return ev

    def status(self) -> dict[str, Any]:
        return {
            "meters": [{"id": mt.cfg.meter_id, "address": mt.address, "state": mt.state,
                        "tls": mt.tls_up, "paired": mt.cfg.meter_cert is not None}
                       for mt in self.meters.values()],
            "unknown": dict(self.unknown),
            "counters": dict(self.counters),
        }
