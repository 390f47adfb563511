"""The wired LMN in the running gateway: drives the bus master (``master.py``) through the
firmware link, stores the values of polled meters, keeps pairing results in the meter profiles,
logs the catalogue events (10175, 10186, 10198, 10214) and sets the LMC LED state."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smgw.events import emit
from smgw.lmn import security
from smgw.lmn.master import LmnMaster, MeterConfig, Request
from smgw.meters.ingest import MeterIngest
from smgw.store import StoreError
from smgwfw import messages as m

if TYPE_CHECKING:
    from smgw.gateway import GatewayState
    from smgw.link.service import FirmwareLink

log = logging.getLogger("smgw.lmn")

# an exchange whose window closed long ago without a DONE: the firmware link dropped it
STALE_S = 3.0


class LmnService:
    def __init__(self, link: "FirmwareLink", ingest: MeterIngest, gateway: "GatewayState",
                 gateway_id: str, key_dir: Path, **master_kw: Any) -> None:
        self.link = link
        self.ingest = ingest
        self.gateway = gateway
        self.gateway_id = gateway_id
        self.key_dir = key_dir
        self.master = LmnMaster(self._identity, **master_kw)
        self._identities: dict[str, security.Identity] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sent_at = 0.0
        self._lmc = m.LMC_NONE
        self.measuring = lambda: True  # the operating state may switch measuring off
        self.time_valid = lambda: True  # the legal clock's validity (smgw.legaltime)
        self.reload()
        link.lmn = self

    # ------------------------------------------------------------------ profiles and keys

    def reload(self) -> None:
        """Takes the sml-tls meter profiles from the ingest (after meter add/remove)."""
        cfgs = [MeterConfig(bytes.fromhex(mt.meter_id), float(mt.period_s or 15),
                            mt.key, mt.lmn_cert)
                for mt in self.ingest.meters.values() if mt.protocol == "sml-tls"]
        self.master.set_meters(cfgs)
        self._wake.set()

    def _identity(self, meter_id: str) -> security.Identity:
        # the gateway's own LMN certificate for this meter, made once and kept (log 10198)
        ident = self._identities.get(meter_id)
        if ident is None:
            name = f"lmn-{meter_id}"
            existed = (self.key_dir / f"{name}.key.pem").exists()
            ident = security.load_or_create(self.key_dir, name, f"SMGW {self.gateway_id}")
            if not existed:
                emit(log, 10198, meter=meter_id)
            self._identities[meter_id] = ident
        return ident

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmn-master")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            delay = 0.5
            if self.link.link.up and self.master.meters and self.measuring():
                pending = self.master.pending
                if pending is not None and now - self._sent_at > STALE_S + pending.listen_ms / 1000:
                    self.master.reset()  # the firmware restarted or the link dropped it
                req = self.master.next_request(now)
                if req is not None:
                    self._send(req, now)
                elif self.master.pending is None:
                    delay = min(delay, self.master.next_deadline(now))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.005, delay))
            except asyncio.TimeoutError:
                pass

    def _send(self, req: Request, now: float) -> None:
        self._sent_at = now
        self.link.link.send({m.K_TYPE: m.T_LMN_TX, m.K_LMN_ID: req.rid, m.K_LMN_FRAME: req.frame,
                             m.K_LMN_LISTEN: req.listen_ms})
        self.link.kick()

    # ------------------------------------------------------------------ from the firmware

    def on_message(self, msg: dict) -> str | None:
        """Handles LMN_RX / LMN_DONE; returns what is wrong with a malformed one (the link
        answers it with ERR_BAD_FIELD) or None."""
        now = time.monotonic()
        t = msg[m.K_TYPE]
        rid = msg.get(m.K_LMN_ID)
        if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool)):
            return "lmn: id must be an integer or None"
        if t == m.T_LMN_RX:
            frame, check, at = msg.get(m.K_LMN_FRAME), msg.get(m.K_LMN_CHECK), msg.get(m.K_LMN_AT)
            if (not isinstance(frame, bytes) or not isinstance(check, str)
                    or not (at is None or isinstance(at, int))):
                return "lmn_rx: frame (bytes), check (text) and at (int or None) required"
            self.master.on_rx(rid, frame, check, at, now)
        elif t == m.T_LMN_DONE:
            count, sent = msg.get(m.K_LMN_COUNT), msg.get(m.K_LMN_SENT)
            if rid is None or not isinstance(count, int) or not isinstance(sent, bool):
                return "lmn_done: id, count (int) and sent (bool) required"
            self.master.on_done(rid, count, sent, now)
            self._handle_events()
            self._wake.set()
        return None

    def on_link_change(self) -> None:
        self.master.reset()
        self._wake.set()

    def _handle_events(self) -> None:
        for ev in self.master.pop_events():
            mid = ev.meter
            if ev.kind == "address":
                emit(log, 10175, meter=mid, address=f"0x{ev.data['address']:02X}")
            elif ev.kind == "paired":
                # durable before anything else: the meter now only knows the operational key
                self.ingest.store.set_meter_security(mid, ev.data["operational_key"],
                                                     ev.data["meter_cert"])
                self.ingest.reload()
                emit(log, 10186, meter=mid, key_id=ev.data["key_id"])
            elif ev.kind == "tls_up":
                log.info("TLS-Verbindung zu Zähler %s steht", mid,
                         extra={"fields": {"meter": mid}})
            elif ev.kind == "failed":
                emit(log, 10214, meter=mid, smgw=self.gateway_id, reason=ev.data["reason"])
            elif ev.kind == "lost":
                log.warning("Zähler %s antwortet nicht mehr; HDLC-Adresse freigegeben", mid,
                            extra={"fields": {"meter": mid, "address": ev.data.get("address")}})
            elif ev.kind == "unknown":
                log.warning("Zähler %s ohne Zählerprofil meldet sich am LMN; nicht aufgenommen",
                            mid, extra={"fields": {"meter": mid}})
            elif ev.kind == "values":
                try:
                    self.ingest.polled(mid, ev.data["sml"])
                except StoreError as e:
                    # the meter keeps its registers: the next poll carries them again
                    log.error("could not store a polled meter's values", extra={"fields": {
                        "meter": mid, "error": str(e)}})
        self._update_lmc()

    def _update_lmc(self) -> None:
        addressed = any(mt.address is not None for mt in self.master.meters.values())
        # docs/leds.md: addressed meters while the legal time is invalid blink differently
        lmc = (m.LMC_NONE if not addressed else m.LMC_ADDRESSED if self.time_valid()
               else m.LMC_TIME_INVALID)
        if lmc != self._lmc:
            self._lmc = lmc
            self.gateway.update(lmc=lmc)

    def status(self) -> dict[str, Any]:
        self._update_lmc()  # the time may have turned (in)valid since the last exchange
        return self.master.status()
