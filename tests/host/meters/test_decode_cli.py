"""``smgw decode sml`` (smgw.meters.cli): input forms, JSON output, exit codes, one-line errors.

Most cases run the command in-process through :func:`smgw.meters.cli.main`; stdin and the
``python -m`` entry run as a real subprocess. One test wires :func:`add_parser` into a parser
the way ``smgw.cli`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from smgw.meters import cli
from smgw.meters.sml import crc_x25

VECTORS = {v["id"]: v for v in json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "sml_dumps.json").read_text("utf-8")
)["frames"]}
S1_HEX = VECTORS["S1"]["hex"]
S3 = bytes.fromhex(VECTORS["S3"]["hex"])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(["sml", *argv])
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def values(out: str, frame: int = 0) -> dict[str, str]:
    return {r["obis"]: r["value"] for r in json.loads(out)["frames"][frame]["readings"]}


def test_hex_argument(capsys):
    rc, out, err = run(capsys, S1_HEX)
    assert rc == 0 and err == ""
    doc = json.loads(out)
    (fr,) = doc["frames"]
    assert fr["server_id"] == "090145425a0100091f14" and fr["crc_ok"] is True
    assert values(out)["1-0:1.8.0"] == "28877149.75495"
    assert out.startswith('{\n  "frames": [')  # indent 2


def test_hex_with_whitespace_and_0x(capsys):
    spaced = " ".join(S1_HEX[i:i + 2] for i in range(0, len(S1_HEX), 2))
    assert run(capsys, spaced)[0] == 0
    assert run(capsys, "0x" + S1_HEX.upper())[0] == 0


def test_file_raw_bytes_hex_text_and_capture(capsys, tmp_path):
    raw = tmp_path / "frame.bin"
    raw.write_bytes(S3)
    rc, out, _ = run(capsys, "--file", str(raw))
    assert rc == 0 and values(out)["1-0:1.8.0"] == "5543299.1"

    text = tmp_path / "frame.hex"
    text.write_text("\n".join(S3.hex()[i:i + 64] for i in range(0, len(S3.hex()), 64)) + "\n")
    rc, out2, _ = run(capsys, "-f", str(text))
    assert rc == 0 and out2 == out

    capture = tmp_path / "capture.bin"
    capture.write_bytes(S3[100:] + S3 + bytes.fromhex(S1_HEX) + S3[:50])
    rc, out, _ = run(capsys, "--file", str(capture))
    assert rc == 0
    assert [f["meter_id"] for f in json.loads(out)["frames"]] == ["1EMH0011261482",
                                                                   "1EBZ0100597780"]


def test_kermit_and_message_crc_mismatch_are_not_errors(capsys):
    rc, out, _ = run(capsys, VECTORS["S6"]["hex"])
    assert rc == 0 and json.loads(out)["frames"][0]["crc_kind"] == "kermit"
    rc, out, err = run(capsys, VECTORS["EBZ-anon-ERR"]["hex"])
    fr = json.loads(out)["frames"][0]
    assert rc == 0 and err == ""
    assert fr["message_crc_ok"] is False and len(fr["errors"]) == 2


def _one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("smgw decode sml: ")
    return lines[0]


def test_bad_crc_exits_1_with_one_line(capsys):
    bad = bytearray(S3)
    bad[-1] ^= 0xFF
    rc, out, err = run(capsys, bad.hex())
    assert rc == 1 and out == ""
    assert "transport CRC mismatch" in _one_line_error(err)
    rc, out, err = run(capsys, "--ignore-crc", bad.hex())
    assert rc == 0 and json.loads(out)["frames"][0]["crc_ok"] is False


@pytest.mark.parametrize("data,reason", [
    (S3[:200], "no end sequence"),
    (S3[:8] + b"\x1b\x1b\x1b\x1b\x02\x02\x02\x02" + S3[8:], "unknown escape sequence"),
    (b"\x00\x01\x02\x03", "does not start with the SML start sequence"),
])
def test_bad_frames_exit_1(capsys, data, reason):
    rc, out, err = run(capsys, data.hex())
    assert rc == 1 and out == ""
    assert reason in _one_line_error(err)


def test_bytes_around_frames_are_skipped(capsys):
    rc, out, _ = run(capsys, (b"\x00\x00" + S3 + b"\x00").hex())
    assert rc == 0 and len(json.loads(out)["frames"]) == 1


def test_bad_frame_inside_a_capture_names_it(capsys):
    good = bytes.fromhex(S1_HEX)
    broken = bytearray(S3)
    broken[-1] ^= 0xFF
    rc, _, err = run(capsys, (good + bytes(broken)).hex())
    assert rc == 1 and "frame 2 of 2: transport CRC mismatch" in _one_line_error(err)


def test_syntax_error_exits_1(capsys):
    body = bytearray(b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01\x42\x00\x00\x00\x1b\x1b\x1b\x1b\x1a\x00")
    body += crc_x25(bytes(body)).to_bytes(2, "little")
    rc, _, err = run(capsys, body.hex())
    assert rc == 1 and "SML message must be a list" in _one_line_error(err)


@pytest.mark.parametrize("arg", ["hello", "1b1b1b1g", "1b1b1", "   "])
def test_non_hex_exits_2(capsys, arg):
    rc, out, err = run(capsys, arg)
    assert rc == 2 and out == ""
    _one_line_error(err)


def test_usage_errors(capsys, tmp_path):
    rc, _, err = run(capsys)
    assert rc == 2 and "no input" in _one_line_error(err)
    rc, _, err = run(capsys, S1_HEX, "--file", "x")
    assert rc == 2
    text = tmp_path / "notes.txt"
    text.write_text("this is not a frame\n")
    rc, _, err = run(capsys, "--file", str(text))
    assert rc == 2 and "not hexadecimal" in _one_line_error(err)
    rc, _, err = run(capsys, "--file", str(tmp_path / "missing.bin"))
    assert rc == 1 and "cannot read" in _one_line_error(err)
    binary = tmp_path / "junk.bin"
    binary.write_bytes(bytes(range(256)))
    rc, _, err = run(capsys, "--file", str(binary))
    assert rc == 1
    _one_line_error(err)


def test_dzg_fix_option(capsys):
    # 1DZG0061234567 sends +328.05 W as 53 80 25 (design note §4.8 quirk 5)
    from test_sml import entry, sml_file, transport

    server = bytes.fromhex("0a01445a4700") + (61234567).to_bytes(4, "big")
    frame = transport(sml_file(server, [entry(bytes.fromhex("0100100700ff"),
                                              bytes.fromhex("538025"), unit=27, scaler=-2)]))
    assert values(run(capsys, frame.hex())[1])["1-0:16.7.0"] == "328.05"
    assert values(run(capsys, "--dzg-fix", "off", frame.hex())[1])["1-0:16.7.0"] == "-327.31"


@pytest.mark.parametrize("stdin_data", [S3, (S3.hex() + "\n").encode()])
def test_stdin_subprocess(stdin_data):
    r = subprocess.run([sys.executable, "-m", "smgw.meters.cli", "sml", "-"], input=stdin_data,
                       capture_output=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert values(r.stdout.decode())["1-0:16.7.0"] == "-51.4"
    r = subprocess.run([sys.executable, "-m", "smgw.meters.cli", "sml", "--file", "-"],
                       input=stdin_data[:-3], capture_output=True, timeout=60, check=False)
    assert r.returncode in (1, 2) and len(r.stderr.decode().splitlines()) == 1


def test_add_parser_wires_into_a_smgw_style_parser(capsys):
    p = argparse.ArgumentParser(prog="smgw")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_parser(sub)
    args = p.parse_args(["decode", "sml", S1_HEX])
    assert args.func(args) == 0
    assert values(capsys.readouterr().out)["1-0:16.7.0"] == "809.02"
    with pytest.raises(SystemExit) as e:
        p.parse_args(["decode"])
    assert e.value.code == 2


def _assert_issue_shape(doc: dict) -> None:
    """The shape issue 3 asks for: {"frames": [{"server_id": "<hex>", "crc_ok": true,
    "readings": [{"obis", "value", "unit", "scaler", "raw", "status"}]}]} with JSON types:
    value an exact decimal string, raw a JSON integer for integer values (hex text for octet
    strings), scaler and status integers or null."""
    assert set(doc) == {"frames"} and doc["frames"]
    for fr in doc["frames"]:
        assert isinstance(fr["server_id"], str)
        bytes.fromhex(fr["server_id"])
        assert fr["server_id"] == fr["server_id"].lower()
        assert isinstance(fr["crc_ok"], bool)
        assert fr["readings"]
        for r in fr["readings"]:
            assert {"obis", "value", "unit", "scaler", "raw", "status"} <= set(r)
            assert isinstance(r["obis"], str)
            assert r["value"] is None or isinstance(r["value"], str)
            assert r["unit"] is None or isinstance(r["unit"], str)
            for k in ("scaler", "status"):
                assert r[k] is None or (isinstance(r[k], int) and not isinstance(r[k], bool))
            if r["raw_type"] in ("int", "uint"):
                assert isinstance(r["raw"], int) and not isinstance(r["raw"], bool), r
                scale = r["scaler"] or 0
                assert Decimal(r["value"]) == Decimal(r["raw"]).scaleb(scale), r
                assert len(r["value"].partition(".")[2]) == max(0, -scale), r
            elif r["raw_type"] == "octets":
                assert isinstance(r["raw"], str)
                bytes.fromhex(r["raw"])


def test_output_has_the_shape_the_issue_asks_for(capsys):
    rc, out, _ = run(capsys, S3.hex())
    assert rc == 0
    doc = json.loads(out)
    _assert_issue_shape(doc)
    r = next(r for r in doc["frames"][0]["readings"] if r["obis"] == "1-0:1.8.0")
    assert {k: r[k] for k in ("obis", "value", "unit", "scaler", "raw", "status")} == {
        "obis": "1-0:1.8.0", "value": "5543299.1", "unit": "Wh", "scaler": -1,
        "raw": 55432991, "status": 0x0102A0}
    assert '"raw": 55432991,' in out  # a JSON number, not a string
    key = next(r for r in doc["frames"][0]["readings"] if r["obis"] == "129-129:199.130.5")
    assert len(bytes.fromhex(key["raw"])) == 48  # octet strings stay hex text


@pytest.mark.parametrize("vid", sorted(VECTORS))
def test_every_real_dump_through_the_command(capsys, vid):
    rc, out, err = run(capsys, VECTORS[vid]["hex"])
    assert rc == 0 and err == ""
    doc = json.loads(out)
    _assert_issue_shape(doc)
    fr = doc["frames"][0]
    exp = VECTORS[vid]["expect"]
    assert fr["server_id"] == exp["server_id"] and fr["crc_ok"] is exp["crc_ok"]
    got = [{k: r[k] for k in e} for r, e in zip(fr["readings"], exp["readings"])]
    assert got == exp["readings"] and len(fr["readings"]) == len(exp["readings"])


def test_big_integers_stay_exact_in_json(capsys):
    """Unsigned64 / Integer64 raw values are JSON integers that round-trip exactly (no float)."""
    from test_sml import entry, sint, sml_file, transport, uint

    big, small = (1 << 64) - 1, -(1 << 63)
    frame = transport(sml_file(bytes.fromhex("0901454d480000abd62a"), [
        entry(bytes.fromhex("0100010800ff"), uint(big, 8), unit=30, scaler=-4),
        entry(bytes.fromhex("0100020800ff"), sint(small, 8), unit=30, scaler=0)]))
    rc, out, _ = run(capsys, frame.hex())
    assert rc == 0
    r1, r2 = json.loads(out)["frames"][0]["readings"]
    assert r1["raw"] == big and r1["value"] == "1844674407370955.1615"
    assert r2["raw"] == small and r2["value"] == str(small)


def test_smgw_entry_point(capsys):
    """`smgw decode sml HEX` through the real smgw command line (smgw.cli.main)."""
    from smgw.cli import main as smgw_main

    assert smgw_main(["decode", "sml", S3.hex()]) == 0
    doc = json.loads(capsys.readouterr().out)
    _assert_issue_shape(doc)
    assert smgw_main(["decode", "sml", "1b1b1b1b"]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_smgw_console_script_bad_input_one_line():
    exe = Path(sys.executable).parent / "smgw"
    if not exe.exists():
        pytest.skip("smgw console script not installed in this environment")
    r = subprocess.run([str(exe), "decode", "sml", "1b1b1b1b0101010100"], capture_output=True,
                       timeout=60, check=False)
    assert r.returncode != 0 and r.stdout == b""
    (line,) = r.stderr.decode().splitlines()
    assert line.startswith("smgw decode sml: ")
