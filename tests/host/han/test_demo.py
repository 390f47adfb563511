"""The demo gateway's data (smgw.han.demo): accounts, client certificate, profiles and the
backfilled readings, idempotent, and consistent with the live sim meter afterwards."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from smgw.han import demo
from smgw.han.accounts import Accounts
from smgw.han.digest import ha1
from smgw.meters import sml
from smgw.sim.smlmeter import SmlMeter
from smgw.store import Store
from smgw.tariff.store import TariffStore

GW = "ESIM0000000042"
BERLIN = ZoneInfo("Europe/Berlin")
# a fixed "now" (a Wednesday in summer time) keeps the expected counts exact
NOW = int(dt.datetime(2026, 6, 17, 13, 37, 21, tzinfo=BERLIN).timestamp() * 1000)
GRID = 900_000


def midnight(y: int, m: int, d: int) -> int:
    return int(dt.datetime(y, m, d, tzinfo=BERLIN).timestamp() * 1000)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    info = demo.prepare_demo(d, GW, NOW)
    return d, info


def channel(store: Store, obis: str) -> list[tuple[int, int]]:
    rowid = next(m.id for m in store.meters() if m.meter_id == demo._sim_server_id())
    return [(int(t), int(raw)) for _, raw, t in store.readings_of(rowid, obis)]


def test_accounts_and_client_certificate(prepared):
    d, info = prepared
    accounts = Accounts.open(d, GW)
    consumer, tech = accounts.get("demo"), accounts.get("service")
    assert (consumer.role, consumer.consumer) == ("consumer", "LV1")
    assert (tech.role, tech.consumer) == ("technician", None)
    assert consumer.ha1["MD5"] == ha1("MD5", "demo", GW.lower(), "demo")
    assert tech.ha1["SHA-256"] == ha1("SHA-256", "service", GW.lower(), "service")
    assert info.accounts == (("demo", "demo", "consumer"), ("service", "service", "technician"))
    cert = x509.load_pem_x509_certificate(info.client_cert.read_bytes())
    der = cert.public_bytes(Encoding.DER)
    assert accounts.by_cert_der(der).name == "demo"
    key, p12cert, _ = pkcs12.load_key_and_certificates(info.client_p12.read_bytes(), b"demo")
    assert p12cert.public_bytes(Encoding.DER) == der
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert os.stat(info.client_key).st_mode & 0o077 == 0
    assert os.stat(info.client_p12).st_mode & 0o077 == 0


def test_profiles_taf7_and_taf1_of_the_consumer(prepared):
    d, info = prepared
    with Store.open(d / "smgw.db") as store:
        profiles = {p.name: p for p in TariffStore(store).profiles(kind="evaluation")}
    taf7, taf1 = profiles["demo-taf7"].profile, profiles["demo-taf1"].profile
    assert (taf7.taf, taf1.taf) == (7, 1)
    meter = demo._sim_server_id()
    assert [(c.meter, c.obis) for c in taf7.channels] == [(meter, "1-0:1.8.0"),
                                                         (meter, "1-0:2.8.0")]
    assert [(c.meter, c.obis) for c in taf1.channels] == [(meter, "1-0:1.8.0")]
    assert taf1.billing_period == "month"
    for p in (taf7, taf1):
        assert (p.consumer, p.usage_point, p.recipients) == ("LV1", demo.USAGE_POINT, ("emt1",))
    # 15-minute values from local midnight seven days ago; TAF 1 from April 1st, so that
    # April and May are complete billing periods
    assert taf7.valid_from_ms == midnight(2026, 6, 10) == info.start_ms
    assert taf1.valid_from_ms == midnight(2026, 4, 1)


def test_readings_every_15_minutes_for_seven_days_and_daily_before(prepared):
    d, info = prepared
    with Store.open(d / "smgw.db") as store:
        imp, exp = channel(store, "1-0:1.8.0"), channel(store, "1-0:2.8.0")
        power = channel(store, "1-0:16.7.0")
    start = midnight(2026, 6, 10)
    quarter = [t for t, _ in imp if t > start - GRID]
    expected = list(range(start, NOW + 1, GRID))
    assert len(quarter) == len(expected) == info.backfilled - (start - midnight(2026, 4, 1)
                                                               ) // 86_400_000
    # captures 0..3 s before their grid instant
    assert all(0 <= g - t <= 3000 for g, t in zip(expected, quarter))
    daily = [t for t, _ in imp if t <= start - GRID]
    assert len(daily) == 70 and all(
        dt.time(0, 0) <= dt.datetime.fromtimestamp((t + 3000) / 1000, BERLIN).time()
        <= dt.time(0, 0, 3) for t in daily)
    for series in (imp, exp):
        values = [v for _, v in series]
        assert values == sorted(values) and values[-1] > values[0]
    # a plausible household with PV: a few kWh a day each way
    day = [v for t, v in imp if start - 1 <= t <= start + 86_400_000]
    assert 2_0000 < day[-1] - day[0] < 40_0000   # 0.1 Wh
    assert len(power) == len(imp)


def test_record_bodies_are_the_frames_of_the_stored_values(prepared):
    d, _ = prepared
    with Store.open(d / "smgw.db") as store:
        recs = store.iter_records(stream=demo.DEMO_STREAM, limit=5)
        rowid = next(m.id for m in store.meters() if m.meter_id == demo._sim_server_id())
        imp = {int(t): int(raw) for rec, raw, t in store.readings_of(rowid, "1-0:1.8.0")}
    for rec in recs:
        f = sml.decode_frame(rec.body)
        assert f.server_id.hex() == demo._sim_server_id()
        r = next(x for x in f.readings if x.obis == "1-0:1.8.0")
        assert r.raw == imp[rec.captured_ms] and r.scaler == -1 and r.unit == "Wh"


def test_rerun_is_idempotent_and_fills_up_to_now(prepared, tmp_path):
    d, info = prepared
    accounts_before = Accounts.open(d, GW).get("demo")
    with Store.open(d / "smgw.db") as store:
        n_before = store.count_records(demo.DEMO_STREAM)
        versions = {p.name: p.version for p in TariffStore(store).profiles()}
        again = demo.prepare_demo(d, GW, NOW, store=store)
        assert again.backfilled == 0 and store.count_records(demo.DEMO_STREAM) == n_before
        later = demo.prepare_demo(d, GW, NOW + 3_600_000, store=store)
        assert later.backfilled == 4
        assert {p.name: p.version for p in TariffStore(store).profiles()} == versions
        values = [v for _, v in channel(store, "1-0:1.8.0")]
        assert values == sorted(values)
    assert Accounts.open(d, GW).get("demo") == accounts_before
    assert again.client_cert.read_bytes() == info.client_cert.read_bytes()


def test_live_sim_meter_continues_the_backfilled_registers(prepared):
    d, _ = prepared
    kw = demo.sim_meter_settings(d, NOW + 3_600_000)
    assert set(kw) == {"profile", "start_wh", "start_export_wh"}
    live = SmlMeter(bytes.fromhex(demo._sim_server_id()), period_s=2.0, two_way=True, **kw)
    with Store.open(d / "smgw.db") as store:
        last_imp = channel(store, "1-0:1.8.0")[-1][1]
        last_exp = channel(store, "1-0:2.8.0")[-1][1]
    imp0, exp0 = live.registers_at(0)
    assert imp0 >= last_imp and exp0 >= last_exp
    # the next quarter hour of the live meter is what the backfill would have stored then
    ref = demo._meter(demo._sim_server_id())
    ts = (NOW + 3_600_000 + GRID - demo._read_state(d)["epoch_ms"]) / 1000
    want = ref.registers_at(ts)
    got = live.registers_at(GRID / 1000)
    assert all(0 <= w - g <= 1 for w, g in zip(want, got))
    assert demo.sim_meter_settings(d.parent / "nothing-here", NOW) == {}


def test_the_tariff_engine_forms_values_for_every_list(prepared, tmp_path):
    import shutil

    from smgw.security.keystore import KeyStore
    from smgw.tariff.engine import TariffEngine
    from smgw.wan.outbox import Outbox

    d, _ = prepared
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    with Store.open(copy / "smgw.db") as store:
        tariff = TariffStore(store)
        engine = TariffEngine(store, tariff, Outbox(store),
                              KeyStore.load_or_create(copy / "pki", GW),
                              emit=lambda *a, **k: None, now_ms=lambda: NOW)
        for _ in range(100):
            if not engine.tick():
                break
        assert tariff.periods("demo-taf1") == [(midnight(2026, 4, 1), midnight(2026, 5, 1)),
                                               (midnight(2026, 5, 1), midnight(2026, 6, 1))]
        taf7 = tariff.values("demo-taf7")
        assert {v.value.register for v in taf7} == {"1-0:1.8.0", "1-0:2.8.0"}
        assert min(v.value.target_ms for v in taf7) <= midnight(2026, 6, 10) + GRID
        assert all(v.signature for v in taf7)


def test_bad_state_file_names_the_fix(tmp_path):
    (tmp_path / demo.STATE_FILE).write_text("{}")
    with pytest.raises(ValueError, match="remove it to start the demo data afresh"):
        demo.prepare_demo(tmp_path, GW, NOW)


def test_describe_lists_urls_and_credentials(prepared):
    _, info = prepared
    text = info.describe(["https://127.0.0.1:8443"])
    for s in ("https://127.0.0.1:8443/", "/smgw/m2m", "/cgi-bin/hanservice.cgi", "demo / demo",
              "service / service", str(info.client_p12), demo.USAGE_POINT):
        assert s in text
