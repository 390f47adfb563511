"""``smgw decode wmbus`` (smgw.wmbus.cli): input forms, JSON output, exit codes, one-line errors.

Most cases run in-process through :func:`smgw.wmbus.cli.main`; one goes through ``smgw.cli``
(the ``decode`` command of smgw.meters.cli with ``sml`` and ``wmbus`` under it) and one runs
the installed ``smgw`` entry point with stdin as a real subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smgw.wmbus import cli

VECTORS = {v["name"]: v for v in json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wmbus_vectors.json").read_text("utf-8")
)["vectors"]}
V1 = VECTORS["V1"]
V6 = VECTORS["V6"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(list(argv))
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("smgw decode wmbus: "), err
    return lines[0]


def test_v1_prints_the_issue_shape(capsys):
    rc, out, err = run(capsys, "--key", V1["key"], V1["hex"])
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert {k: doc[k] for k in ("manufacturer", "id", "version", "device_type",
                                "access_number", "security_mode")} == {
        "manufacturer": "ELS", "id": "12345678", "version": 51, "device_type": 3,
        "access_number": 42, "security_mode": 5}
    assert doc["records"][0] == {"storage": 0, "tariff": 0, "subunit": 0,
                                 "function": "instantaneous", "quantity": "volume",
                                 "unit": "m3", "value": "28504.27"}
    assert out.startswith('{\n  "manufacturer": "ELS"')


def test_hex_in_several_words_and_lower_case_key(capsys):
    h = V1["hex"]
    rc, out, _ = run(capsys, "--key", V1["key"].lower(), h[:20], h[20:34], "0x" + h[34:])
    assert rc == 2  # "0x" in the middle is not hex: usage
    rc, out, _ = run(capsys, "-k", V1["key"].lower(), h[:20], h[20:34], h[34:])
    assert rc == 0 and json.loads(out)["id"] == "12345678"


def test_frame_b_with_crcs_and_mode7(capsys):
    rc, out, _ = run(capsys, "--key", V6["key"], V6["hex"])
    doc = json.loads(out)
    assert rc == 0 and doc["frame"] == "B" and doc["security_mode"] == 7
    assert doc["counter"] == 155273 and doc["afl"]["mac"] == "3b0877d31da840b1"
    assert any(r["quantity"] == "volume" and r["value"] == "1348.631" for r in doc["records"])


@pytest.mark.parametrize("name", ["V1", "V2", "V4", "V6"])
def test_wrong_key_exits_1_with_one_line(capsys, name):
    v = VECTORS[name]
    rc, out, err = run(capsys, "--key", "AA" * 16, v["hex"])
    assert rc == 1 and out == ""
    line = one_line_error(err)
    assert any(w in line for w in ("2F2F", "MAC", "CRC"))


def test_bad_crc_exits_1(capsys):
    bad = bytearray.fromhex(VECTORS["V1A"]["hex"])
    bad[20] ^= 0x04
    rc, out, err = run(capsys, "--key", V1["key"], bad.hex())
    assert rc == 1 and out == ""
    assert "CRC of block A2 wrong" in one_line_error(err)


def test_truncated_exits_1(capsys):
    rc, out, err = run(capsys, "--key", V1["key"], V1["hex"][:-2])
    assert rc == 1 and out == ""
    assert "truncated" in one_line_error(err)


def test_no_key_and_clear_with_key(capsys):
    rc, _, err = run(capsys, V1["hex"])
    assert rc == 1 and "no key" in one_line_error(err)
    son = VECTORS["SON-A"]["hex"]
    rc, _, err = run(capsys, "--key", V1["key"], son)
    assert rc == 1 and "unencrypted" in one_line_error(err)
    rc, out, err = run(capsys, "--key", V1["key"], "--allow-clear", son)
    assert rc == 0 and json.loads(out)["manufacturer"] == "SON"
    rc, out, _ = run(capsys, son)
    assert rc == 0 and json.loads(out)["frame"] == "A"


def test_vendor_register_format_prints_its_total(capsys):
    v5 = VECTORS["V5"]  # Apator 16-2: its own register format inside mode 5
    rc, out, err = run(capsys, "--key", v5["key"], v5["hex"])
    assert rc == 0, err
    doc = json.loads(out)
    assert [(r["quantity"], r["unit"], r["value"]) for r in doc["records"]] == [
        ("volume", "m3", "4.848")]
    assert doc["payload"].startswith("2f2f80c84afd") and "apl_error" not in doc


def test_proprietary_plaintext_prints_payload_and_warns(capsys, monkeypatch):
    from smgw.wmbus import mfct

    monkeypatch.setattr(mfct, "decoder_for", lambda *a: None)  # a vendor format we lack
    v5 = VECTORS["V5"]
    rc, out, err = run(capsys, "--key", v5["key"], v5["hex"])
    assert rc == 0
    doc = json.loads(out)
    assert doc["records"] == [] and doc["payload"].startswith("2f2f80c84afd")
    assert "warning: no records" in one_line_error(err) and "apl_error" in doc


@pytest.mark.parametrize("argv, what", [
    (["zz"], "not hexadecimal"),
    (["abc"], "odd number"),
    ([], "no input"),
    (["--key", "0011", V1["hex"]], "--key must be 32 hex digits"),
    (["--key", "g" * 32, V1["hex"]], "--key must be 32 hex digits"),
])
def test_usage_errors_exit_2(capsys, argv, what):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and what in one_line_error(err)


def test_file_raw_hex_and_rtl_wmbus_lines(capsys, tmp_path):
    raw = tmp_path / "t.bin"
    raw.write_bytes(bytes.fromhex(V1["hex"]))
    rc, out, _ = run(capsys, "--key", V1["key"], "--file", str(raw))
    assert rc == 0 and json.loads(out)["access_number"] == 42
    lines = tmp_path / "t.txt"
    lines.write_text("# capture\n"
                     f"{V1['hex']}\n\n"
                     f"C1;1;1;2024-01-01 10:00:00.000;-71;-80;12345678;{V1['hex'].lower()}\n")
    rc, out, _ = run(capsys, "--key", V1["key"], "-f", str(lines))
    doc = json.loads(out)
    assert rc == 0 and isinstance(doc, list) and len(doc) == 2
    assert "rssi" not in doc[0] and doc[1]["rssi"] == -71.0
    lines.write_text(f"{V1['hex']}\n{V1['hex'][:-2]}\n")
    rc, out, err = run(capsys, "--key", V1["key"], "-f", str(lines))
    assert rc == 1 and out == "" and "line 2: truncated" in one_line_error(err)
    rc, _, err = run(capsys, "-f", str(tmp_path / "missing"))
    assert rc == 1 and "cannot read" in one_line_error(err)
    rc, _, err = run(capsys, "-f", str(raw), V1["hex"])
    assert rc == 2


def test_through_smgw_cli(capsys):
    from smgw import cli as smgw_cli

    rc = smgw_cli.main(["decode", "wmbus", "--key", V1["key"], V1["hex"]])
    out, _ = capsys.readouterr()
    assert rc == 0 and json.loads(out)["id"] == "12345678"


def test_sml_still_registered_next_to_wmbus():
    import argparse

    from smgw.meters.cli import add_parser

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["decode", "wmbus", "--key", "00" * 16, "2e44"])
    assert args.func is cli.cmd_decode_wmbus and args.key == "00" * 16
    args = p.parse_args(["decode", "sml", "1b1b1b1b"])
    assert args.func.__name__ == "cmd_decode_sml"


def test_stdin_subprocess():
    smgw = Path(sys.executable).with_name("smgw")
    r = subprocess.run([str(smgw), "decode", "wmbus", "--key", V1["key"], "-"],
                       input=V1["hex"] + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"][0]["value"] == "28504.27"
    r = subprocess.run([sys.executable, "-m", "smgw.wmbus.cli", "--key", "AA" * 16, V1["hex"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().startswith("smgw decode wmbus: mode 5: no 2F2F")
