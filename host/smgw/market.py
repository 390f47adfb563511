"""Tariffing and delivery in the running gateway: the key store, the tariff engine that forms,
signs and queues derived values (:mod:`smgw.tariff.engine`), the delivery worker that pushes
them to market participants (:mod:`smgw.wan.delivery`), and on the simulated board a test
market participant (``emt1``, :mod:`smgw.wan.emtserver`) with its communication profile.

The pieces have their own modules and tests; this one only connects them to the supervisor
(legal time, operating state, logbooks) and to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from smgw.security.keystore import KeyStore
from smgw.tariff import commands as tariff_commands
from smgw.tariff.engine import TariffEngine
from smgw.tariff.store import TariffStore
from smgw.wan.delivery import DeliveryWorker
from smgw.wan.emtserver import EmtReceiver
from smgw.wan.outbox import Outbox

log = logging.getLogger("smgw.market")

SIM_EMT = "emt1"


class Market:
    def __init__(self, cfg: Any, data_dir: Path, store: Any, supervisor: Any,
                 settled: Any = None) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.sup = supervisor
        self.keystore = KeyStore.load_or_create(data_dir / "pki", cfg.gateway.id)
        self.tariff = TariffStore(store)
        self.outbox = Outbox(store)
        self.delivery = DeliveryWorker(
            self.outbox, self._comm_profile, self.keystore, supervisor.emit, supervisor.now_ms,
            lambda: supervisor.allows("sending"), consumer_of=self._consumer_of)
        self.engine = TariffEngine(
            store, self.tariff, self.outbox, self.keystore, supervisor.emit, supervisor.now_ms,
            time_valid=lambda: bool(supervisor.clock and supervisor.clock.valid),
            allowed=supervisor.allows, settled=settled, on_queued=self.delivery.wake,
            latency_ms=round(cfg.tariff.grace_s * 1000))
        self.emt: EmtReceiver | None = None
        self._meter_owner: dict[str, str] = {}
        self._meters_version: tuple | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lookups

    def _comm_profile(self, name: str) -> Any:
        return self.engine.comm_profile(name)

    def _consumer_of(self, profile: str) -> str | None:
        return self.engine.consumer_of(profile)

    def consumer_of_meter(self, meter: str) -> str | None:
        """The consumer whose evaluation profile reads ``meter`` (consumer-log routing). Asked
        for every consumer-log event of a meter: the map is rebuilt only when a profile
        changed (one small query instead of parsing every profile per event)."""
        version = self.tariff.store._read(
            "profiles version", "SELECT count(*), max(updated_ms), max(removed_ms) "
            "FROM tariff_profiles")[0]
        if version != self._meters_version:
            owners: dict[str, str] = {}
            for sp in self.tariff.profiles(kind="evaluation"):
                for ch in sp.profile.channels:
                    owners.setdefault(ch.meter, sp.consumer)
            self._meter_owner, self._meters_version = owners, version
        return self._meter_owner.get(meter)

    # ------------------------------------------------------------------ start and stop

    async def start(self, sim: bool) -> None:
        if sim and self.cfg.tariff.sim_emt:
            await self._start_sim_emt()
        pdir = self.cfg.tariff.profiles_dir
        if pdir is not None:
            self.load_dir(Path(pdir))
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self.engine.run(self._stop, self.cfg.tariff.tick_s),
                                name="tariff-engine"),
            asyncio.create_task(self.delivery.run(self._stop), name="delivery"),
        ]

    def load_dir(self, pdir: Path) -> dict[str, str]:
        """Every profile file of ``pdir`` (communication profiles first); a rejected one is
        logged (10219) and the others still load."""
        return self.engine.load_dir(pdir)

    async def _start_sim_emt(self) -> None:
        out = self.data_dir / "sim-emt"
        out.mkdir(parents=True, exist_ok=True)
        triple = self.keystore.issue_emt(SIM_EMT)
        self.emt = EmtReceiver(out, triple, [self.keystore.root])
        # the same port at every start, so the communication profile stays unchanged
        port_file = out / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        try:
            url = await self.emt.start("127.0.0.1", port)
        except OSError:
            url = await self.emt.start("127.0.0.1", 0)
        port_file.write_text(url.rsplit(":", 1)[1].split("/", 1)[0])
        text = "\n".join([
            "# the simulated market participant of the development bench",
            "[profile]", 'kind = "communication"', f'name = "{SIM_EMT}"', f'url = "{url}"',
            f'tls_cert = """{triple.tls.cert_pem().decode()}"""',
            f'sig_cert = """{triple.sig.cert_pem().decode()}"""',
            f'enc_cert = """{triple.enc.cert_pem().decode()}"""',
            "retry_min_s = 2", "retry_max_s = 60", ""])
        self.engine.load(text, "sim-emt")
        log.info("simulated market participant listening",
                 extra={"fields": {"url": url, "out": str(out)}})

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self.emt is not None:
            await self.emt.stop()
            self.emt = None

    # ------------------------------------------------------------------ control and status

    def handlers(self) -> dict[str, Any]:
        return tariff_commands.handlers(self.engine)

    def status(self) -> dict[str, Any]:
        out = {"engine": self.engine.status(), "deliveries": self.outbox.stats()}
        if self.emt is not None:
            out["sim_emt"] = {"url": self.emt.url, **self.emt.stats}
        return out

