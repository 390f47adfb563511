"""The demo gateway's data: accounts, a client certificate, two usage points and a week of
measured values, so that every page of the portal and every HAN client has something to show.

``prepare_demo(data_dir, gateway_id, now_ms)`` is what ``smgw demo`` / ``make run`` call before
the gateway starts. It is idempotent: run again, it adds only what is missing (the accounts and
the certificate stay, the profiles are unchanged, readings are filled in from where the last
run stopped up to now).

- Accounts (``<data_dir>/han-accounts.json``, :class:`smgw.han.accounts.Accounts`): the consumer
  ``demo`` / ``demo`` (consumer ``LV1``), who may also log in with the client certificate written
  to ``<data_dir>/han-demo-client.p12`` (PKCS#12, password ``demo``) and as PEM
  (``han-demo-client.crt.pem`` / ``han-demo-client.key.pem``); the service technician
  ``service`` / ``service``.
- The simulated electricity meter of the sim board (import 1-0:1.8.0, export 1-0:2.8.0, power
  1-0:16.7.0) gets its meter profile, and two evaluation profiles of the consumer on one usage
  point, loaded from profile text (:func:`demo_profile_texts`, sent to the sim board's market
  participant ``emt1``): TAF 7 (15-minute register readings of 1.8.0 and 2.8.0, from ``days``
  days ago) and TAF 1 (1.8.0 per calendar month, from the first of the month two months
  before, so that complete billing periods exist).
- Readings: every 15 minutes of the last ``days`` days, and one at each local midnight before
  that back to the TAF 1 start (TAF 1 needs the readings at its month boundaries): what the
  simulated meter would have sent then (a household with a PV system; the same
  :class:`~smgw.sim.smlmeter.DailyProfile` the sim board uses), stored like a received frame
  (``Store.put_record`` with the SML frame as the record body, on a stream of its own,
  ``DEMO_STREAM``): registers are monotonic, a re-run stores nothing twice (the stream's
  cursor).
- Derived values are not made here: the running gateway's tariff engine forms them from these
  readings within its first ticks (as it would after a downtime).

The registers are one function of wall-clock time, anchored at an epoch kept in
``<data_dir>/han-demo.json``; :func:`sim_meter_settings` gives the sim board's live meter the
same curve from now on, so live values continue the backfilled ones without a jump.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "DEMO_STREAM",
    "DemoInfo",
    "backfill",
    "demo_profile_texts",
    "prepare_demo",
    "sim_meter_settings",
]

DEMO_STREAM = 0x44454D4F           # "DEMO": the stream the backfilled records are stored on
STATE_FILE = "han-demo.json"
ACCOUNTS_FILE = "han-accounts.json"
CLIENT_P12 = "han-demo-client.p12"
CLIENT_CERT = "han-demo-client.crt.pem"
CLIENT_KEY = "han-demo-client.key.pem"
CONSUMER = "LV1"
USER, PASSWORD = "demo", "demo"
TECH_USER, TECH_PASSWORD = "service", "service"
P12_PASSWORD = "demo"
USAGE_POINT = "DE0001234567800000000000000000001"   # 33 characters, like a Zählpunkt
SUPPLIER = "9900000000003"                           # a made-up BDEW code
PROFILE_TAF7 = "demo-taf7"
PROFILE_TAF1 = "demo-taf1"
RECIPIENT = "emt1"                 # the sim board's test market participant (tariff.sim_emt)
TZ = "Europe/Berlin"
GRID_MS = 900_000
# the sim board's meter (smgw.service.SimBoard): its server id, channels and household
METER_OBIS = ["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"]
SEED = 1
PV_PEAK_W = 3000.0
# register values at the epoch (0.1 Wh): a meter that has been in use for a while
BASE_IMPORT_DWH = 123_456_789
BASE_EXPORT_DWH = 45_678_901
METER_STATUS = 0x182               # the sim meter's FNN status word (smgw.sim.smlmeter)


@dataclass(frozen=True)
class DemoInfo:
    gateway_id: str
    consumer: str
    meter_id: str
    usage_point: str
    profiles: tuple[str, ...]
    accounts: tuple[tuple[str, str, str], ...]   # (user, password, role)
    client_p12: Path
    client_p12_password: str
    client_cert: Path
    client_key: Path
    epoch_ms: int
    start_ms: int
    backfilled: int                              # records stored by this run

    def describe(self, urls: list[str]) -> str:
        """What ``smgw demo`` prints: where to go and how to log in."""
        lines = ["Demo gateway " + self.gateway_id]
        for u in urls:
            lines.append(f"  portal:  {u}/")
            lines.append(f"  M2M:     {u}/smgw/m2m")
            lines.append(f"  PPC CGI: {u}/cgi-bin/hanservice.cgi")
        for user, pw, role in self.accounts:
            lines.append(f"  {role:<11} {user} / {pw}")
        lines.append(f"  client certificate: {self.client_p12} "
                     f"(password {self.client_p12_password}), PEM: {self.client_cert}, "
                     f"{self.client_key}")
        lines.append(f"  meter {self.meter_id}, usage point {self.usage_point}, "
                     f"profiles {', '.join(self.profiles)}")
        return "\n".join(lines)


# ------------------------------------------------------------------ the meter's curve


def _sim_server_id() -> str:
    from smgw.sim.smlmeter import DEFAULT_SERVER_ID

    return DEFAULT_SERVER_ID.hex()


def _meter(meter_id: str) -> Any:
    """The simulated meter with t = 0 at the epoch: its registers are the demo's curve."""
    from smgw.sim.smlmeter import DailyProfile, SmlMeter

    return SmlMeter(bytes.fromhex(meter_id), DailyProfile(SEED, pv_peak_w=PV_PEAK_W),
                    period_s=GRID_MS / 1000, start_wh=BASE_IMPORT_DWH / 10,
                    start_export_wh=BASE_EXPORT_DWH / 10, two_way=True, status=METER_STATUS)


def _local_midnight(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def _window_start(now_ms: int, days: int) -> int:
    """Local midnight ``days`` days before the day of ``now_ms``."""
    d = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(TZ)).date()
    return _local_midnight(d - dt.timedelta(days=days))


def _first_layout(now_ms: int, days: int) -> dict[str, int]:
    """The fixed times of a first run: ``start_ms`` (15-minute values from here), ``taf1_ms``
    (the first of the month two months before: TAF 1 bills calendar months and needs complete
    ones) and ``epoch_ms`` (the Monday midnight on or before it: the household's day 0)."""
    start = _window_start(now_ms, days)
    d = dt.datetime.fromtimestamp(start / 1000, ZoneInfo(TZ)).date()
    m = (d.year * 12 + d.month - 1) - 2
    first = dt.date(m // 12, m % 12 + 1, 1)
    monday = first - dt.timedelta(days=first.weekday())
    return {"start_ms": start, "taf1_ms": _local_midnight(first),
            "epoch_ms": _local_midnight(monday)}


def _grid_indices(epoch_ms: int, daily_from_ms: int, quarter_from_ms: int, end_ms: int
                  ) -> list[int]:
    """Grid indices (15-minute steps since the epoch) to store: local midnights in
    [daily_from, quarter_from), then every instant in [quarter_from, end]."""
    out = []
    d = dt.datetime.fromtimestamp(daily_from_ms / 1000, ZoneInfo(TZ)).date()
    while True:
        t = _local_midnight(d)
        if t >= quarter_from_ms:
            break
        if t >= daily_from_ms:
            out.append((t - epoch_ms) // GRID_MS)
        d += dt.timedelta(days=1)
    first = max(0, -(-(quarter_from_ms - epoch_ms) // GRID_MS))
    out.extend(range(first, (end_ms - epoch_ms) // GRID_MS + 1))
    return out


def backfill(store: Any, meter_rowid: int, meter_id: str, epoch_ms: int,
             indices: Sequence[int], *, stream: int = DEMO_STREAM) -> int:
    """Stores the simulated meter's frame and values for each grid index (15-minute steps
    since ``epoch_ms``, ascending) not stored yet on ``stream``; returns how many records were
    stored.

    Record id = grid index + 1, so the stream's cursor makes a re-run store nothing twice. The
    capture lies 0..3 s before the grid instant (like a meter pushing every few seconds)."""
    import cbor2

    from smgw.meters.units import unit_symbol
    from smgw.store import ReadingRow
    from smgwfw import messages as m

    meter = _meter(meter_id)
    meta = cbor2.dumps({"proto": "sml", "check": "x25", "origin": "demo-backfill"})
    cursor = store.cursor(stream)
    stored = 0
    for k in indices:
        if k + 1 <= cursor:
            continue
        t = epoch_ms + k * GRID_MS
        capture = t - (k * 7919) % 4 * 1000
        ts = (capture - epoch_ms) / 1000
        imp, exp = meter.registers_at(ts)
        watts = round(meter.power_w(ts) * 100)
        rows = [
            ReadingRow(meter_rowid, "1-0:1.8.0", imp, -1, unit_symbol(30), METER_STATUS),
            ReadingRow(meter_rowid, "1-0:2.8.0", exp, -1, unit_symbol(30), METER_STATUS),
            ReadingRow(meter_rowid, "1-0:16.7.0", watts, -2, unit_symbol(27), None),
        ]
        if store.put_record(stream, k + 1, m.SRC_LMN_WIRED, None, capture, capture,
                            meter.frame_at(ts), meta, rows):
            stored += 1
            cursor = k + 1
    return stored


def sim_meter_settings(data_dir: Path, now_ms: int) -> dict[str, Any]:
    """Keyword arguments for the sim board's :class:`~smgw.sim.smlmeter.SmlMeter` so that its
    live registers continue the demo's backfilled ones (``profile``, ``start_wh``,
    ``start_export_wh``); empty before :func:`prepare_demo` ran."""
    from smgw.sim.smlmeter import DailyProfile

    state = _read_state(Path(data_dir))
    if not state:
        return {}
    meter = _meter(state["meter_id"])
    ts = (now_ms - state["epoch_ms"]) / 1000
    imp, exp = meter.registers_at(ts)
    return {"profile": DailyProfile(SEED, pv_peak_w=PV_PEAK_W, start_s=ts),
            "start_wh": imp / 10, "start_export_wh": exp / 10}


# ------------------------------------------------------------------ profiles


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).isoformat()


def demo_profile_texts(meter_id: str, consumer: str, taf7_from_ms: int, taf1_from_ms: int,
                       recipient: str = RECIPIENT) -> list[str]:
    """The demo's evaluation profiles as profile files (docs/tariffs.md): TAF 7 of import and
    export, TAF 1 of import billed per calendar month."""
    head = (f'usage_point = "{USAGE_POINT}"\nconsumer = "{consumer}"\n'
            f'supplier = "{SUPPLIER}"\nrecipients = ["{recipient}"]\n')
    taf7 = (f"# Demo: Zählerstandsgang (TAF 7) des simulierten Zählers\n[profile]\n"
            f'kind = "evaluation"\nname = "{PROFILE_TAF7}"\ntaf = 7\n{head}'
            f'valid_from = "{_iso(taf7_from_ms)}"\nregistration_period_s = 900\n\n'
            f'[[channels]]\nmeter = "{meter_id}"\nobis = "1-0:1.8.0"\n\n'
            f'[[channels]]\nmeter = "{meter_id}"\nobis = "1-0:2.8.0"\n\n'
            f'[[sending]]\ntrigger = "periodic"\nperiod_s = 86400\noffset_s = 600\n')
    taf1 = (f"# Demo: datensparsamer Tarif (TAF 1), Bezug je Kalendermonat\n[profile]\n"
            f'kind = "evaluation"\nname = "{PROFILE_TAF1}"\ntaf = 1\n{head}'
            f'valid_from = "{_iso(taf1_from_ms)}"\nbilling_period = "month"\n\n'
            f'[[channels]]\nmeter = "{meter_id}"\nobis = "1-0:1.8.0"\n\n'
            f'[[sending]]\ntrigger = "periodic"\noffset_s = 3600\n')
    return [taf7, taf1]


# ------------------------------------------------------------------ accounts and certificate


def _client_certificate(data_dir: Path) -> tuple[bytes, Path, Path, Path]:
    """The demo consumer's client certificate (self-signed, P-256, clientAuth; made with
    :func:`smgw.han.accounts.make_client_identity`), made once: (cert PEM, cert, key, p12)."""
    from smgw.fileio import atomic_write
    from smgw.han.accounts import make_client_identity, pkcs12

    cert_path, key_path, p12_path = (data_dir / CLIENT_CERT, data_dir / CLIENT_KEY,
                                     data_dir / CLIENT_P12)
    if cert_path.exists() and key_path.exists() and p12_path.exists():
        return cert_path.read_bytes(), cert_path, key_path, p12_path
    key_pem, cert_pem = make_client_identity(USER)
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(p12_path, pkcs12(key_pem, cert_pem, P12_PASSWORD, USER), mode=0o600)
    atomic_write(cert_path, cert_pem)
    return cert_pem, cert_path, key_path, p12_path


def _ensure_accounts(data_dir: Path, gateway_id: str, consumer: str, cert_pem: bytes) -> None:
    from smgw.han.accounts import Accounts

    # certificates are checked against the wall clock (they were made with it)
    accounts = Accounts.open(data_dir / ACCOUNTS_FILE, gateway_id)
    if accounts.get(USER) is None:
        accounts.add(USER, "consumer", PASSWORD, consumer=consumer,
                     cert_pem=cert_pem.decode())
    if accounts.get(TECH_USER) is None:
        accounts.add(TECH_USER, "technician", TECH_PASSWORD)


# ------------------------------------------------------------------ state


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    p = data_dir / STATE_FILE
    if not p.exists():
        return None
    try:
        state = json.loads(p.read_text())
        return {"epoch_ms": int(state["epoch_ms"]), "start_ms": int(state["start_ms"]),
                "taf1_ms": int(state["taf1_ms"]), "meter_id": str(state["meter_id"]),
                "consumer": str(state["consumer"])}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{p}: not a demo state file ({e}); remove it to start the demo "
                         f"data afresh") from None


def prepare_demo(data_dir: Path, gateway_id: str, now_ms: int, *, meter_id: str | None = None,
                 consumer: str = CONSUMER, days: int = 7, store: Any = None,
                 meter_period_s: int | None = 2, recipient: str = RECIPIENT) -> DemoInfo:
    """Creates (or completes) the demo data in ``data_dir``; see the module doc. ``store``: an
    open :class:`smgw.store.Store` of ``<data_dir>/smgw.db`` (opened and closed here if None).
    ``meter_id``: the simulated meter (default: the sim board's SML meter)."""
    from smgw.fileio import atomic_write
    from smgw.store import Store
    from smgw.tariff.profile import parse_profile
    from smgw.tariff.store import TariffStore

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(data_dir)
    if state is None:
        state = {**_first_layout(now_ms, days),
                 "meter_id": (meter_id or _sim_server_id()).lower(), "consumer": consumer}
        atomic_write(data_dir / STATE_FILE, (json.dumps(state, indent=2) + "\n").encode())
    mid = state["meter_id"]
    consumer = state["consumer"]
    cert_pem, cert_path, key_path, p12_path = _client_certificate(data_dir)
    _ensure_accounts(data_dir, gateway_id, consumer, cert_pem)

    own = store is None
    st = Store.open(data_dir / "smgw.db") if own else store
    try:
        row = next((r for r in st.meters() if r.meter_id == mid), None)
        rowid = row.id if row is not None else st.add_meter(mid, "lmn-wired", "sml", METER_OBIS,
                                                            meter_period_s)
        # 15-minute values of the last `days` days; one a day (TAF 1's month boundaries)
        # from the TAF 1 start or from where the last run stopped
        quarter_from = max(state["start_ms"], _window_start(now_ms, days))
        n = backfill(st, rowid, mid, state["epoch_ms"],
                     _grid_indices(state["epoch_ms"], state["taf1_ms"], quarter_from, now_ms))
        tariff = TariffStore(st)
        for text in demo_profile_texts(mid, consumer, state["start_ms"], state["taf1_ms"],
                                       recipient):
            tariff.put_profile(parse_profile(text, "demo"), text, now_ms)
    finally:
        if own:
            st.close()
    return DemoInfo(
        gateway_id=gateway_id, consumer=consumer, meter_id=mid, usage_point=USAGE_POINT,
        profiles=(PROFILE_TAF7, PROFILE_TAF1),
        accounts=((USER, PASSWORD, "consumer"), (TECH_USER, TECH_PASSWORD, "technician")),
        client_p12=p12_path, client_p12_password=P12_PASSWORD, client_cert=cert_path,
        client_key=key_path, epoch_ms=state["epoch_ms"], start_ms=state["start_ms"],
        backfilled=n)
