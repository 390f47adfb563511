"""The HAN interface in the running gateway: the HTTPS server (:mod:`smgw.han.server`) with its
three faces — our portal (``/``), the IF_GW_CON M2M API (``/smgw/m2m``) and the PPC-style CGI
(``/cgi-bin/hanservice.cgi``, ``/cgi-bin/hanservicetech.cgi``) — reading through one data layer
(:class:`smgw.han.data.HanData`) over the store, the tariff store and the logbooks.

This module only connects the pieces to the supervisor (legal time, operating state, self-test,
logbooks) and to the key store; each piece has its own module and tests.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable

from smgw import VERSION
from smgw.han import m2m, portal, ppc
from smgw.han.accounts import Accounts
from smgw.han.data import HanData
from smgw.han.server import HanServer, HanSettings

log = logging.getLogger("smgw.hanservice")

FACES = (portal.register, m2m.register, ppc.register)


class HanService:
    def __init__(self, cfg: Any, data_dir: Path, store: Any, supervisor: Any, market: Any,
                 link_status: Callable[[], dict[str, Any]]) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.sup = supervisor
        self.link_status = link_status
        self.data = HanData(store, market.tariff, supervisor.logbooks, market.keystore,
                            info=self._info, selftest=supervisor.run_selftest,
                            now_ms=supervisor.now_ms,
                            selftest_min_interval_s=cfg.han.selftest_min_interval_s)
        self.accounts = Accounts.open(data_dir, cfg.gateway.id)
        self.server = HanServer(HanSettings.from_config(cfg.han), self.data, self.accounts,
                                market.keystore, supervisor.emit, supervisor.now_ms)
        for face in FACES:
            self.server.add_face(face)
        self.urls: list[str] = []
        self.error: str | None = None
        # the installation is sealed before the HAN starts; the portal asks for it per request
        self._host_digest = _host_digest(data_dir)

    async def start(self) -> list[str]:
        try:
            await self.server.start()
        except OSError as e:
            # an address in use must not stop metering: the HAN stays off and says why
            self.error = f"HAN interface not available: {e}"
            log.error(self.error, extra={"fields": {"listen": list(self.cfg.han.listen)}})
            return []
        self.urls = [u.rstrip("/") for u in self.server.urls]
        log.info("HAN interface listening", extra={"fields": {"urls": self.urls}})
        return self.urls

    async def stop(self) -> None:
        await self.server.stop()

    def _info(self) -> dict[str, Any]:
        sup = self.sup
        fw = (self.link_status() or {}).get("firmware") or {}
        components = [("SMGW-Anwendung (host)", VERSION, self._host_digest)]
        if fw:
            files = fw.get("files") or {}
            digest = hashlib.sha256("".join(f"{k}:{v}" for k, v in sorted(files.items()))
                                    .encode()).hexdigest() if files else ""
            components.append((f"Messwert-Frontend ({fw.get('board') or '-'})",
                               str(fw.get("version") or "-"), digest))
        ops = sup.ops.describe()["state"] if sup.ops else None
        last = sup.selftest.last() if sup.selftest else None
        return {"gateway_id": self.cfg.gateway.id, "firmware": components,
                "time_valid": bool(sup.clock and sup.clock.valid), "opstate": ops,
                "last_sync_ms": sup.clock.status()["last_sync_ms"] if sup.clock else None,
                "selftest_last": last.to_dict() if last is not None else None}

    def status(self) -> dict[str, Any]:
        return {"urls": self.urls, "error": self.error}


def _host_digest(data_dir: Path) -> str:
    # the sealed software manifest names every file of the installation with its hash
    manifest = data_dir / "software-manifest.json"
    try:
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    except OSError:
        return ""
