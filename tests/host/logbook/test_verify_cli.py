"""``smgw verify-log``: the standalone check of an export, run as a separate process."""

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from smgw.logbook import verify_cli
from smgw.logbook.chain import Signer
from smgw.logbook.store import Logbooks

GW = "EPPC0012345678"
T0 = 1_767_225_600_000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A gateway's key directory and a calibration-log export of 12 entries."""
    d = tmp_path_factory.mktemp("gw")
    signer = Signer.load_or_create(d / "keys", GW)
    with Logbooks.open(d / "logs.db", GW, signer) as lb:
        for i in range(12):
            lb.append(10067, "INFO", "successful", {"n": i}, f"Uhrzeit synchronisiert {i}",
                      ["calibration", "system"], ts_ms=T0 + i * 1000)
        with open(d / "eichlog.csv", "w", newline="", encoding="utf-8") as f:
            lb.export_csv("calibration", f)
        with open(d / "system.csv", "w", newline="", encoding="utf-8") as f:
            lb.export_csv("system", f)
    return d


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "smgw.logbook.verify_cli", *map(str, args)],
                          capture_output=True, text=True, input=stdin)


def edited(src: Path, dst: Path, change) -> Path:
    rows = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"), newline="")))
    change(rows)
    with open(dst, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)
    return dst


def test_intact_export_is_ok(exported):
    r = run(exported / "eichlog.csv", "--cert", exported / "keys" / "log-sign.crt.pem",
            "--gateway-id", GW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "OK: 12 entries, chain and signatures valid\n"
    r = run(exported / "system.csv", "--cert", exported / "keys" / "log-sign.crt.pem",
            "--gateway-id", GW)
    assert r.returncode == 0 and r.stdout == \
        "OK: 12 entries, export signature valid (system log)\n"


def test_stdin(exported):
    r = run("-", "--cert", exported / "keys" / "log-sign.crt.pem", "--gateway-id", GW,
            stdin=(exported / "eichlog.csv").read_text(encoding="utf-8"))
    assert r.returncode == 0 and r.stdout.startswith("OK: 12 entries")


@pytest.mark.parametrize("name, change, expect", [
    ("edited", lambda rows: rows[5].__setitem__(8, "anders"), "entry 5: hash:"),
    ("deleted", lambda rows: rows.pop(5), "entry 6: gap: entry 5 missing"),
    ("swapped", lambda rows: rows.__setitem__(slice(4, 6), [rows[5], rows[4]]),
     "entry 4: order:"),
    ("cut", lambda rows: rows.__delitem__(slice(10, 13)), "log: truncated:"),
    ("bad-sig", lambda rows: rows[3].__setitem__(11, rows[4][11]), "entry 3: signature:"),
])
def test_tampered_export_fails_with_one_line_per_problem(exported, tmp_path, name, change,
                                                         expect):
    bad = edited(exported / "eichlog.csv", tmp_path / f"{name}.csv", change)
    r = run(bad, "--cert", exported / "keys" / "log-sign.crt.pem", "--gateway-id", GW)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith(expect) for line in lines), lines
    assert all(": " in line for line in lines) and r.stderr == ""


def test_wrong_certificate_or_gateway(exported, tmp_path):
    other = Signer.load_or_create(tmp_path / "other", GW)
    assert other.cert_pem != (exported / "keys" / "log-sign.crt.pem").read_bytes()
    r = run(exported / "eichlog.csv", "--cert", tmp_path / "other" / "log-sign.crt.pem",
            "--gateway-id", GW)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["log: key: no signature matches the certificate (wrong "
                                     "certificate, or every signature forged)"]
    r = run(exported / "eichlog.csv", "--cert", exported / "keys" / "log-sign.crt.pem",
            "--gateway-id", "EOTHER")
    assert r.returncode == 1 and "entry 1: chain:" in r.stdout


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe binary", b"name,value\r\na,1\r\n"])
def test_not_our_csv_is_exit_2(exported, tmp_path, content):
    f = tmp_path / "x.csv"
    f.write_bytes(content)
    r = run(f, "--cert", exported / "keys" / "log-sign.crt.pem", "--gateway-id", GW)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("smgw verify-log: ")


def test_unreadable_inputs_are_exit_2(exported, tmp_path):
    cert = exported / "keys" / "log-sign.crt.pem"
    r = run(tmp_path / "missing.csv", "--cert", cert, "--gateway-id", GW)
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = run(exported / "eichlog.csv", "--cert", tmp_path / "missing.pem", "--gateway-id", GW)
    assert r.returncode == 2 and "cannot read" in r.stderr
    (tmp_path / "bad.pem").write_text("no certificate")
    r = run(exported / "eichlog.csv", "--cert", tmp_path / "bad.pem", "--gateway-id", GW)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1


def test_add_parser_registers_verify_log(exported, capsys):
    p = argparse.ArgumentParser(prog="smgw")
    sub = p.add_subparsers(dest="command", required=True)
    verify_cli.add_parser(sub)
    args = p.parse_args(["verify-log", str(exported / "eichlog.csv"), "--cert",
                         str(exported / "keys" / "log-sign.crt.pem"), "--gateway-id", GW])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("OK: 12 entries")
    assert verify_cli.main([str(exported / "eichlog.csv"), "--cert",
                            str(exported / "keys" / "log-sign.crt.pem"), "--gateway-id",
                            GW]) == 0
