"""The replay command (smgw.tariff.replay, smgw.tariff.cli): CSV readings with exact decimal
conversion and line/column errors, the JSON result, and the command itself."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tafcalc_helpers import METER, ms, profile

from smgw.tariff.cli import add_parser, main, parse_time_arg, run
from smgw.tariff.model import Reading
from smgw.tariff.profile import load_profile
from smgw.tariff.replay import CsvError, decimal_text, parse_value, read_readings_csv, replay

REPO = Path(__file__).resolve().parents[3]
PROFILES = REPO / "examples" / "profiles"
READINGS = REPO / "examples" / "readings"


# ------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("text,unit,expected", [
    ("1234.5", "kWh", (12345, 2, "Wh")),
    ("1234", "Wh", (1234, 0, "Wh")),
    ("0.001", "kWh", (1, 0, "Wh")),
    ("100.0000", "kWh", (1_000_000, -1, "Wh")),
    ("-12.50", "kW", (-1250, 1, "W")),
    ("1e3", "Wh", (1, 3, "Wh")),
    ("230.1", "V", (2301, -1, "V")),
    ("49.98", "Hz", (4998, -2, "Hz")),
    ("12", "deg", (12, 0, "°")),
    ("3", "m³", (3, 0, "m³")),
])
def test_parse_value_is_exact(text, unit, expected):
    assert parse_value(text, unit) == expected
    raw, scaler, _ = expected
    assert decimal_text(raw, scaler) == format(__import__("decimal").Decimal(text).scaleb(
        {"kWh": 3, "kW": 3}.get(unit, 0)), "f")


@pytest.mark.parametrize("text,unit,fragment", [
    ("12,5", "Wh", "not a decimal number"),
    ("NaN", "Wh", "finite"),
    ("1", "kwh", "unknown unit"),
])
def test_parse_value_errors(text, unit, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_value(text, unit)


# ---------------------------------------------------------------------------------------- CSV


def test_csv_with_and_without_header(tmp_path):
    body = (f"{METER.upper()},1-0:1.8.0*255,2026-03-10T00:00:00+01:00,100.5,kWh,0x00000104\n"
            f"{METER},1-0:1.8.0,2026-03-10T00:15:00Z,100600,Wh,\n")
    a = read_readings_csv("a.csv", body)
    b = read_readings_csv("b.csv", "# comment\n\nmeter,obis,time,value,unit,status\n" + body)
    c = read_readings_csv("c.csv", "unit,value,time,obis,meter\n" + "\n".join(
        ",".join(reversed(line.split(",")[:5])) for line in body.splitlines()))
    assert a == b
    assert a[0] == Reading(METER, "1-0:1.8.0", ms(2026, 3, 10), 1005, 2, "Wh", 0x104, True)
    assert a[1] == Reading(METER, "1-0:1.8.0", ms(2026, 3, 10, 1, 15), 100600, 0, "Wh", None)
    assert [(r.value, r.scaler) for r in c] == [(1005, 2), (100600, 0)]
    f = tmp_path / "r.csv"
    f.write_text("\ufeff" + body, encoding="utf-8")     # a BOM from spreadsheet programs
    assert read_readings_csv(f) == a


def test_csv_time_valid_column():
    rs = read_readings_csv("x", f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,,false\n"
                                f"{METER},1-0:1.8.0,2026-03-10T00:15:00+01:00,2,Wh,4,1\n")
    assert [(r.time_valid, r.status) for r in rs] == [(False, None), (True, 4)]


GOOD = f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,"


@pytest.mark.parametrize("line,column,fragment", [
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,abc,Wh,", "value", "not a decimal"),
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Kwh,", "unit", "unknown unit"),
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00,1,Wh,", "time", "no UTC offset"),
    (f"{METER},1-0:1.8.0,10.03.2026 00:00,1,Wh,", "time", "ISO 8601"),
    ("xyz,1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,", "meter", "hex meter id"),
    (f"{METER},1.8.0,2026-03-10T00:00:00+01:00,1,Wh,", "obis", "OBIS"),
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,ok", "status", "status word"),
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,,maybe", "time_valid", "true/false"),
    (f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1,Wh,,true,extra", None, "columns"),
])
def test_bad_line_names_line_and_column(line, column, fragment):
    text = f"meter,obis,time,value,unit,status,time_valid\n{GOOD}\n\n{line}\n{GOOD}\n"
    with pytest.raises(CsvError) as ei:
        read_readings_csv("r.csv", text)
    e = ei.value
    assert (e.line, e.column) == (4, column)
    assert str(e).startswith(f"r.csv line 4{', column ' + column if column else ''}: ")
    assert fragment in str(e)


def test_bad_header_and_short_lines():
    with pytest.raises(CsvError, match="line 1, column colour: unknown column name"):
        read_readings_csv("r.csv", "meter,obis,time,value,unit,colour\n")
    with pytest.raises(CsvError, match="line 1, column unit: missing in the header"):
        read_readings_csv("r.csv", "meter,obis,time,value\n")
    with pytest.raises(CsvError, match="line 2: expected 5 to 7 columns"):
        read_readings_csv("r.csv", "# x\n" + f"{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00\n")
    with pytest.raises(CsvError, match="line 2, column unit: missing"):
        read_readings_csv("r.csv", f"{GOOD}\n{METER},1-0:1.8.0,2026-03-10T00:00:00+01:00,1\n")


# ------------------------------------------------------------------------------------- replay


def test_replay_taf2_worked_examples():
    p = load_profile(PROFILES / "taf2-ht-nt.toml")
    expected = {
        "taf2-ht-nt": (8000, 1600, 0),
        "taf2-gap-no-switch": (8000, 1600, 0),
        "taf2-gap-across-switch": (7700, 1500, 400),
    }
    for name, (ht, nt, err) in expected.items():
        out = replay(p, read_readings_csv(READINGS / f"{name}.csv"))
        assert out["profile"] == "taf2-ht-nt" and out["taf"] == 2
        assert out["from"] == "2026-03-10T00:00:00+01:00"
        assert out["to"] == "2026-03-11T00:00:00+01:00"
        [period] = out["periods"]
        assert period["start"] == "2026-03-10T00:00:00+01:00"
        assert period["end"] == "2026-03-11T00:00:00+01:00"
        vals = {v["register"]: v for v in period["values"]}
        assert (vals["1-0:1.8.1"]["value"], vals["1-0:1.8.2"]["value"],
                vals["1-0:1.8.63"]["value"], vals["1-0:1.8.0"]["value"]) == (ht, nt, err, 9600)
        assert vals["1-0:1.8.1"]["stage"] == 1 and vals["1-0:1.8.0"]["kind"] == "sum"
        assert vals["1-0:1.8.63"]["status"] == "0x00000005"
        assert period["switches"] == [{"time": "2026-03-10T06:00:00+01:00", "stage": 1},
                                      {"time": "2026-03-10T22:00:00+01:00", "stage": 2}]
        assert len(period["problems"]) == (0 if name == "taf2-ht-nt" else 1)


def test_replay_taf1_example_kwh_decimals():
    p = load_profile(PROFILES / "taf1-monthly.toml")
    out = replay(p, read_readings_csv(READINGS / "taf1-monthly.csv"))
    [period] = out["periods"]
    assert (period["start"], period["end"]) == ("2017-10-01T00:00:00+02:00",
                                                "2017-11-01T00:00:00+01:00")
    regs = {(v["register"], v["owner"]): v for v in period["values"] if v["kind"] != "reading"}
    a = regs[("1-0:1.8.1", "0a01454d4800000a1b2c")]
    assert (a["value"], a["scaler"], a["decimal"], a["unit"]) == (152340, -1, "15234.0", "Wh")
    assert a["meter_status"] == "0x00000004"
    total = regs[("1-0:1.8.1", "taf1-monthly")]
    assert (total["decimal"], total["kind"]) == ("12234.0", "sum")
    assert total["sources"] == ["0a01454d4800000a1b2c", "0a01454d4800000d3e4f"]


def test_replay_taf6_taf7_taf9_examples():
    out = replay(load_profile(PROFILES / "taf6-daily.toml"),
                 read_readings_csv(READINGS / "taf6-daily.csv"))
    assert [len(p["values"]) for p in out["periods"]] == [1, 1, 1, 1, 0, 1, 1]
    assert out["periods"][4]["problems"][0].endswith(
        "no reading at the day start 2026-03-30T00:00:00+02:00 (±9 s)")
    out = replay(load_profile(PROFILES / "taf7-15min.toml"),
                 read_readings_csv(READINGS / "taf7-15min.csv"))
    [day] = out["periods"]
    assert len(day["values"]) == 2 * 93 - 1               # 00:00 .. 24:00 of a 23 h day
    invalid = [v for v in day["values"] if not v["time_valid"]]
    assert [(v["target"], v["status"]) for v in invalid] == [
        ("2026-03-29T12:15:00+02:00", "0x00000205")]
    assert day["problems"] == ["0a01454d4800000a1b2c 1-0:1.8.0: gap, no reading at "
                               "2026-03-29T12:00:00+02:00"]
    out = replay(load_profile(PROFILES / "taf9-feedin.toml"),
                 read_readings_csv(READINGS / "taf9-feedin.csv"))
    assert [(p["start"], p["end"]) for p in out["periods"]] == [
        ("2026-06-01T12:00:00+02:00", "2026-06-01T12:15:00+02:00"),
        ("2026-06-01T12:15:00+02:00", "2026-06-01T12:30:00+02:00")]
    for p in out["periods"]:
        assert [v["kind"] for v in p["values"]] == ["min", "max", "mean", "reading"]
        assert all(v["owner"] == "pv-anlage-7f3a" and v["status"] == "0x00000007"
                   and not v["billing"] for v in p["values"])


def test_replay_range_validity_and_unused_readings():
    p = profile(2, profile={"billing_period": "day",
                            "valid_until": "2026-03-12T00:00:00+01:00"})
    rs = [Reading(METER, "1-0:1.8.0", ms(2026, 3, 9) + i * 900_000, i) for i in range(4 * 96 + 1)]
    rs.append(Reading("ff" * 5, "1-0:1.8.0", ms(2026, 3, 9), 1))
    out = replay(p, rs)
    assert out["unused_readings"] == 1
    assert [x["start"][:10] for x in out["periods"]] == ["2026-03-09", "2026-03-10",
                                                         "2026-03-11"]  # validity ends 12th
    out = replay(p, rs, ms(2026, 3, 10), ms(2026, 3, 11))
    assert [x["start"][:10] for x in out["periods"]] == ["2026-03-10"]
    out = replay(p, rs, ms(2026, 3, 10, 1), ms(2026, 3, 11))
    assert out["periods"] == [] and out["problems"] == ["no complete period in the range"]
    out = replay(p, [])
    assert out["periods"] == [] and out["problems"][0].startswith("no readings")


def test_parse_time_arg():
    assert parse_time_arg("2026-03-29", "Europe/Berlin") == ms(2026, 3, 29)
    assert parse_time_arg("2026-03-29T12:00", "Europe/Berlin") == ms(2026, 3, 29, 12)
    assert parse_time_arg("2026-03-29T12:00Z", "Europe/Berlin") == ms(2026, 3, 29, 14)
    with pytest.raises(ValueError):
        parse_time_arg("soon", "Europe/Berlin")


# ---------------------------------------------------------------------------------------- CLI


def cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="smgw")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_replay_good(capsys):
    rc, out, err = cli(["tariff", "replay", "--profile", str(PROFILES / "taf2-ht-nt.toml"),
                        "--readings", str(READINGS / "taf2-gap-across-switch.csv")], capsys)
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert set(d) >= {"profile", "taf", "periods"}
    vals = {v["register"]: v["value"] for v in d["periods"][0]["values"]}
    assert (vals["1-0:1.8.1"], vals["1-0:1.8.63"], vals["1-0:1.8.2"]) == (7700, 400, 1500)


def test_cli_replay_from_to_and_output(capsys, tmp_path):
    o = tmp_path / "out.json"
    rc, out, err = cli(["tariff", "replay", "--profile", str(PROFILES / "taf7-15min.toml"),
                        "--readings", str(READINGS / "taf7-15min.csv"), "--from",
                        "2026-03-29T10:00", "--to", "2026-03-29T11:00", "-o", str(o),
                        "--compact"], capsys)
    assert rc == 0 and out == ""
    d = json.loads(o.read_text())
    assert len(o.read_text().splitlines()) == 1
    targets = sorted({v["target"] for v in d["periods"][0]["values"]})
    assert targets[0] == "2026-03-29T10:00:00+02:00" and targets[-1] == "2026-03-29T11:00:00+02:00"
    assert len(targets) == 5


def test_cli_replay_bad_line(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("meter,obis,time,value,unit,status\n" + GOOD + "\n"
                   f"{METER},1-0:1.8.0,2026-03-10T00:15:00+01:00,12..5,Wh,\n")
    rc, out, err = cli(["tariff", "replay", "--profile", str(PROFILES / "taf7-15min.toml"),
                        "--readings", str(bad)], capsys)
    assert rc == 1 and out == ""
    assert err.startswith(f"smgw tariff replay: {bad} line 3, column value: '12..5' is not a "
                          f"decimal number")


def test_cli_replay_bad_profile_and_communication_profile(capsys, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text((PROFILES / "taf1-monthly.toml").read_text().replace(
        'billing_period = "month"', 'billing_period = "day"'))
    rc, _, err = cli(["tariff", "replay", "--profile", str(p), "--readings",
                      str(READINGS / "taf1-monthly.csv")], capsys)
    assert rc == 1 and f"{p}: profile.billing_period: TAF 1 needs" in err
    c = tmp_path / "c.toml"
    c.write_text('[profile]\nkind = "communication"\nname = "x"\n')
    rc, _, err = cli(["tariff", "replay", "--profile", str(c), "--readings",
                      str(READINGS / "taf1-monthly.csv")], capsys)
    assert rc == 1 and "profile." in err
    rc, _, err = cli(["tariff", "replay", "--profile", str(PROFILES / "taf1-monthly.toml"),
                      "--readings", str(tmp_path / "missing.csv")], capsys)
    assert rc == 1 and "cannot read" in err


def test_run_and_main_entry_points(capsys):
    ns = argparse.Namespace(profile=str(PROFILES / "taf6-daily.toml"),
                            readings=str(READINGS / "taf6-daily.csv"), from_=None, to=None,
                            output=None, compact=True)
    assert run(ns) == 0
    assert json.loads(capsys.readouterr().out)["taf"] == 6
    assert main(["replay", "--profile", str(PROFILES / "taf6-daily.toml"), "--readings",
                 str(READINGS / "taf6-daily.csv"), "--compact"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "taf6-daily"


def test_module_runs_as_a_real_process():
    r = subprocess.run([sys.executable, "-m", "smgw.tariff.cli", "replay", "--profile",
                        str(PROFILES / "taf2-ht-nt.toml"), "--readings",
                        str(READINGS / "taf2-ht-nt.csv"), "--compact"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["periods"][0]["values"][-1]["value"] == 9600
    r = subprocess.run([sys.executable, "-m", "smgw.tariff.cli", "replay"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--profile" in r.stderr


def test_year_replay_of_the_benchmark_adds_up():
    """tools/bench_tariff.py: a year of 15-min readings (35,040 periods, both DST changes)
    through replay(); the bench itself checks 12 periods and stages = advance."""
    import bench_tariff

    out = bench_tariff.bench_taf2_replay_year()
    assert set(out) == {"taf2_replay_year_s"} and out["taf2_replay_year_s"] >= 0
