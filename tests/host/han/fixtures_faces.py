"""A small gateway for the tests of the compatible faces (:mod:`smgw.han.m2m`,
:mod:`smgw.han.ppc`): real SQLite stores, real key store, real logbooks, real self-test, the
HAN core's server with TLS on a free port of 127.0.0.1.

:func:`make_world` builds the data once (module scope in the tests): two consumers, each with
a meter, a TAF 7 usage point (1-0:1.8.0 and 1-0:2.8.0) and a TAF 1 usage point (1-0:1.8.0
billed per day), two days of 15-minute original values (and the two readings at the boundaries of
the previous calendar month for TAF 1), the TAF 7 register readings and TAF 1
registers formed from them by the real TAF calculation (:func:`smgw.tariff.cases.form`) and
signed with the gateway's key (:mod:`smgw.security.valuesig`), and entries in the system log and
both consumer logs. The meters store their values differently on purpose: Alice's meter in
0.1 Wh (scaler -1), Bob's in whole Wh (scaler 0), so that the faces' conversion to the 0.1 Wh
the clients expect is checked both ways.

:func:`serve` starts a HAN server with both faces over that data (one per test: sessions,
lock-out and the self-test rate limit start fresh).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from hankit import GATEWAY_ID, Clock, Digest, client_ssl
from smgw.han import m2m, ppc
from smgw.han.accounts import Accounts
from smgw.han.data import HanData
from smgw.han.server import HanServer, HanSettings
from smgw.logbook import catalogue
from smgw.logbook.chain import Signer
from smgw.logbook.store import Logbooks
from smgw.store import Store
from smgw.store.db import ReadingRow
from smgw.tariff import cases
from smgw.tariff.model import Reading
from smgw.tariff.profile import parse_profile
from smgw.tariff.store import TariffStore

TZ = "Europe/Berlin"
GRID_MS = 900_000
DAY_MS = 86_400_000
POINTS = 2 * 96 + 1          # two days of quarter hours, both ends included
CAPTURE_EARLY_MS = 3_000     # values are captured a few seconds before the quarter hour
FIRMWARE = [("smgw-host", "0.1.0", hashlib.sha256(b"host").hexdigest()),
            ("firmware", "1.2.3", hashlib.sha256(b"mcu").hexdigest())]


@dataclass(frozen=True)
class Party:
    user: str
    password: str
    consumer: str
    meter: str
    usage_point: str
    scaler: int               # how the meter sends its registers
    base_import: int          # raw register values at point 0, step per quarter hour
    step_import: int
    base_export: int
    step_export: int

    @property
    def taf7(self) -> str:
        return f"{self.user}-taf7"

    @property
    def taf1(self) -> str:
        return f"{self.user}-taf1"

    def raw(self, obis: str, k: int) -> int:
        if obis == "1-0:1.8.0":
            return self.base_import + k * self.step_import
        return self.base_export + k * self.step_export

    def tenth_wh(self, obis: str, k: int) -> int:
        """The register at point k in 0.1 Wh (what IF_GW_CON clients expect)."""
        return self.raw(obis, k) * 10 ** (self.scaler + 1)


ALICE = Party("alice", "alice-pw-1", "LV1", "0a01454d480000000001",
              "DE0001234567800000000000000000001", -1, 123_456_789, 1_234, 4_567_890, 321)
BOB = Party("bob", "bob-pw-2", "LV2", "0a01454d480000000002",
            "DE0001234567800000000000000000002", 0, 500_000, 70, 20_000, 3)
PARTIES = (ALICE, BOB)
TECH_USER, TECH_PASSWORD = "tech", "tech-pw-3"


def local_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).isoformat()


def profile_texts(party: Party, valid_from_ms: int) -> list[str]:
    head = (f'usage_point = "{party.usage_point}"\nconsumer = "{party.consumer}"\n'
            f'supplier = "9900000000003"\nrecipients = ["emt1"]\n'
            f'valid_from = "{local_iso(valid_from_ms)}"\n')
    taf7 = (f'[profile]\nkind = "evaluation"\nname = "{party.taf7}"\ntaf = 7\n{head}'
            "registration_period_s = 900\n\n"
            f'[[channels]]\nmeter = "{party.meter}"\nobis = "1-0:1.8.0"\n\n'
            f'[[channels]]\nmeter = "{party.meter}"\nobis = "1-0:2.8.0"\n\n'
            '[[sending]]\ntrigger = "periodic"\nperiod_s = 86400\n')
    taf1 = (f'[profile]\nkind = "evaluation"\nname = "{party.taf1}"\ntaf = 1\n{head}'
            'billing_period = "month"\n\n'
            f'[[channels]]\nmeter = "{party.meter}"\nobis = "1-0:1.8.0"\n\n'
            '[[sending]]\ntrigger = "periodic"\n')
    return [taf7, taf1]


class LogEmit:
    """The ``emit(cat, params, status=...)`` of the gateway, writing into the real logbooks
    (consumer log of ``params["consumer_log"]``; none if it is ""; all consumers if absent),
    and remembering what it wrote."""

    def __init__(self, books: Logbooks, clock: Any, consumers: list[str]) -> None:
        self.books, self.clock, self.consumers = books, clock, consumers
        self.events: list[tuple[int, str, dict[str, Any]]] = []

    def __call__(self, cat: int, params: dict[str, Any] | None = None,
                 status: str = "successful") -> str:
        ev = catalogue.event(cat)
        params = dict(params or {})
        status = str(params.pop("status", status))
        consumer_log = params.pop("consumer_log", None)
        text_params = {k: v for k, v in params.items() if k in ev.params}
        for k in ev.params:
            if k not in text_params and k not in ev.defaults:
                text_params[k] = "-"
        text = catalogue.format_event(cat, **text_params)
        logs = set(ev.logs)
        consumers: list[str] = []
        if "consumer" in logs:
            if consumer_log is None:
                consumers = list(self.consumers)
            elif consumer_log:
                consumers = [str(consumer_log)]
            if not consumers:
                logs.discard("consumer")
        clean = {str(k): v if isinstance(v, (int, str)) and not isinstance(v, bool) else str(v)
                 for k, v in {**params, **text_params}.items()}
        self.events.append((cat, status, clean))
        if logs:
            self.books.append(cat, ev.level_for(status), status, clean, text, sorted(logs),
                              consumers, ts_ms=int(self.clock()))
        return text


@dataclass
class World:
    dir: Path
    store: Store
    tariff: TariffStore
    books: Logbooks
    keystore: Any
    start_ms: int             # grid instant of point 0
    end_ms: int               # grid instant of the newest point
    billing_period: tuple[int, int] = (0, 0)    # the TAF 1 period formed
    n_consumer_log: dict[str, int] = field(default_factory=dict)
    n_system_log: int = 0

    def grid(self, k: int) -> int:
        return self.start_ms + k * GRID_MS

    def capture(self, k: int) -> int:
        return self.grid(k) - CAPTURE_EARLY_MS

    def now_ms(self) -> int:
        return self.end_ms + 5 * 60_000

    def close(self) -> None:
        self.books.close()
        self.store.close()


def _append_logs(w: World) -> None:
    """Entries of a few days in the system log and both consumer logs (10165: values sent)."""
    t0 = w.start_ms + 3_600_000
    for i in range(30):
        for party, every in ((ALICE, 1), (BOB, 10)):
            if i % every:
                continue
            params = {"tariff_profile": party.taf7, "start": local_iso(w.grid(4 * i)),
                      "end": local_iso(w.grid(4 * i + 4)), "comm_profile": "emt1"}
            text = catalogue.format_event(10165, **params)
            w.books.append(10165, "INFO", "successful", params, text, ["system", "consumer"],
                           [party.consumer], ts_ms=t0 + i * 60_000 + (0 if every == 1 else 1))
            w.n_consumer_log[party.consumer] = w.n_consumer_log.get(party.consumer, 0) + 1
            w.n_system_log += 1


def make_world(dir: Path, keystore: Any) -> World:
    """The stores and their data (see the module doc). ``keystore``: the gateway's keys."""
    from smgw.security import valuesig

    dir.mkdir(parents=True, exist_ok=True)
    end = int(time.time() * 1000) // GRID_MS * GRID_MS
    start = end - (POINTS - 1) * GRID_MS
    store = Store.open(dir / "smgw.db")
    tariff = TariffStore(store)
    signer = Signer.load_or_create(dir / "keys", GATEWAY_ID)
    books = Logbooks.open(dir / "logs.db", GATEWAY_ID, signer, clock=lambda: end)
    w = World(dir, store, tariff, books, keystore, start, end)
    # TAF 1 bills per calendar month: the previous complete month [m0, m1) gets its two
    # boundary readings besides the two days of quarter hours
    zone = ZoneInfo(TZ)
    first = dt.datetime.fromtimestamp(start / 1000, zone).date().replace(day=1)
    m1 = int(dt.datetime(first.year, first.month, 1, tzinfo=zone).timestamp() * 1000)
    prev = (first - dt.timedelta(days=1)).replace(day=1)
    m0 = int(dt.datetime(prev.year, prev.month, 1, tzinfo=zone).timestamp() * 1000)
    w.billing_period = (m0, m1)
    points = [(m0 - start) // GRID_MS] + ([(m1 - start) // GRID_MS] if m1 < start else [])
    points += list(range(POINTS))
    valid_from = m0 - DAY_MS
    for stream, party in enumerate(PARTIES, start=1):
        rowid = store.add_meter(party.meter, "lmn-wired", "sml", ["1-0:1.8.0", "1-0:2.8.0"],
                                900)
        for rid, k in enumerate(points, start=1):
            rows = [ReadingRow(rowid, o, party.raw(o, k), party.scaler, "Wh", 0x4)
                    for o in ("1-0:1.8.0", "1-0:2.8.0")]
            if party is ALICE and k >= 0:   # a power channel nobody tariffs
                rows.append(ReadingRow(rowid, "1-0:16.7.0", 12_345 + k, -2, "W", None))
            store.put_record(stream, rid, 1, None, w.capture(k), w.capture(k),
                             b"frame", None, rows)
        for text in profile_texts(party, valid_from):
            p = parse_profile(text)
            tariff.put_profile(p, text, valid_from)
            tariff.set_active(p.name, True)
            idx = {ch: [Reading(ch.meter, ch.obis, w.capture(k), party.raw(ch.obis, k),
                                party.scaler, "Wh", 0x4) for k in points]
                   for ch in p.channels}
            windows = [(start - GRID_MS, end)] if p.taf == 7 else [(m0, m1)]
            values = []
            for a, b in windows:
                res = cases.form(p, idx, a, b)
                assert res.values and not res.problems, (p.name, res.problems)
                values += res.values
            signed = [(v, valuesig.sign_value(keystore.sig, v, GATEWAY_ID) if v.billing
                       else None) for v in values]
            tariff.put_values(signed, end)
    _append_logs(w)
    return w


# ------------------------------------------------------------------ the server


@dataclass
class Served:
    world: World
    server: HanServer
    data: HanData
    accounts: Accounts
    clock: Clock
    emit: LogEmit
    port: int
    info: dict[str, Any]          # what the supervisor reports (tests may change it)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def client(self, **kw: Any) -> aiohttp.ClientSession:
        """A client that pins the HAN certificate and keeps no cookies (each test sends the
        ``Cookie`` header the way the client it imitates does)."""
        conn = aiohttp.TCPConnector(ssl=client_ssl(self.world.keystore))
        return aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar(), **kw)


def make_accounts(path: Path) -> Accounts:
    accounts = Accounts.open(path, GATEWAY_ID)
    for party in PARTIES:
        accounts.add(party.user, "consumer", party.password, consumer=party.consumer)
    accounts.add(TECH_USER, "technician", TECH_PASSWORD)
    return accounts


@contextlib.asynccontextmanager
async def serve(world: World, tmp: Path) -> Any:
    """A started HAN server with the m2m and ppc faces on ``world``."""
    from smgw.gateway import GatewayState
    from smgw.opstate import OperatingState
    from smgw.selftest import kat
    from smgw.selftest.runner import SelfTest

    clock = Clock(world.now_ms())
    emit = LogEmit(world.books, clock, [p.consumer for p in PARTIES])
    ops = OperatingState(GatewayState(), emit, tmp / "opstate.json", clock=lambda: clock.ms / 1e3)
    selftest = SelfTest([kat.sha256, kat.aes128], ops, emit, clock=lambda: clock.ms / 1000,
                        path=tmp / "selftest.json")
    # opstate None: the real operating state's description; a test may put a state name
    info: dict[str, Any] = {"gateway_id": GATEWAY_ID, "firmware": FIRMWARE, "time_valid": True,
                            "opstate": None}

    def report() -> dict[str, Any]:
        last = selftest.last()
        return dict(info, opstate=info["opstate"] or ops.describe(),
                    selftest_last=last.to_dict() if last else None)

    data = HanData(world.store, world.tariff, world.books, world.keystore, report,
                   selftest.run, clock)
    accounts = make_accounts(tmp / "han-accounts.json")
    server = HanServer(HanSettings(listen=(("127.0.0.1", 0),)), data, accounts,
                       world.keystore, emit, clock, clock_ms=clock)
    server.add_face(m2m.register)
    server.add_face(ppc.register)
    addrs = await server.start()
    try:
        yield Served(world, server, data, accounts, clock, emit, addrs[0][1], info)
    finally:
        await server.stop()


# ------------------------------------------------------------------ small client helpers


def cookie_of(resp: aiohttp.ClientResponse) -> str | None:
    """The value of the first Set-Cookie header if it is the session cookie (node-red takes
    ``set-cookie[0]`` up to the first ';')."""
    values = resp.headers.getall("Set-Cookie", [])
    if not values:
        return None
    first = values[0].split(";", 1)[0]
    name, _, value = first.partition("=")
    return value if name.strip() == "session" and value else None


def hidden(html: str, name: str) -> str | None:
    """The value of the first ``<input ... name="<name>" value="...">``."""
    m = re.search(r'<input type="hidden" name="' + re.escape(name) + r'" value="([^"]*)"', html)
    return m.group(1) if m else None


def cells(html: str, cell_id: str) -> list[str]:
    """The texts of every ``<td id="<cell_id>">`` (the regex some clients use)."""
    return re.findall(r'<td\s+id="' + re.escape(cell_id) + r'">([^<]*)</td>', html)


__all__ = ["ALICE", "BOB", "Digest", "PARTIES", "Served", "TECH_PASSWORD", "TECH_USER",
           "World", "cells", "cookie_of", "hidden", "make_world", "serve"]
