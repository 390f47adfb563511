"""make_plan is pure; its mpremote command lines are checked with mpremote's own parsers."""

from __future__ import annotations

import argparse
import hashlib
import shlex
import types
from pathlib import Path

import mpremote.main as mm
import pytest

from smgw.flash.build import BuiltFile
from smgw.flash.plan import RESET_CODE, Plan, make_plan


def parse_mpremote(argv: list[str]) -> list[tuple[str, argparse.Namespace]]:
    """Parses an mpremote command line exactly as mpremote.main.main() does (command
    expansions, "+" terminators, each command's argparse builder from _COMMANDS) without running
    anything. argparse errors raise SystemExit, failing the test."""
    mm.prepare_command_expansions(types.SimpleNamespace(commands={}))
    remaining = list(argv)
    out = []
    while remaining:
        if remaining[0] == "+":
            remaining.pop(0)
            continue
        mm.do_command_expansion(remaining)
        cmd = remaining.pop(0)
        assert cmd in mm._COMMANDS, f"{cmd!r} is not an mpremote command"
        try:
            t = remaining.index("+")
            command_args, extra = remaining[:t], remaining[t:]
        except ValueError:
            command_args, extra = remaining, []
        parser = mm._COMMANDS[cmd][1]()
        parser.prog = cmd
        parser.add_argument("next_command", nargs=argparse.REMAINDER)
        args = parser.parse_args(command_args)
        out.append((cmd, args))
        remaining = args.next_command + extra
    return out


def _bf(path: str, content: bytes, tmp: Path) -> BuiltFile:
    local = tmp / path.strip("/").replace("/", "_")
    local.write_bytes(content)
    return BuiltFile(path, local, hashlib.sha256(content).hexdigest())


@pytest.fixture
def built(tmp_path: Path) -> list[BuiltFile]:
    return [_bf("/lib/smgwfw/app.mpy", b"app", tmp_path),
            _bf("/lib/smgwfw/link.mpy", b"link", tmp_path),
            _bf("/board.py", b"BOARD_ID = 'x'\n", tmp_path),
            _bf("/main.py", b"import board\n", tmp_path)]


def _have(built: list[BuiltFile]) -> dict[str, str]:
    return {f.device_path: f.sha256 for f in built}


def test_empty_device(built) -> None:
    plan = make_plan(built, {})
    assert plan.mkdirs == ["/lib", "/lib/smgwfw"]
    assert plan.copies == [f.device_path for f in built]
    assert plan.removes == [] and plan.installs == [] and plan.unchanged == []
    assert [s.kind for s in plan.steps] == ["mkdir"] * 2 + ["cp"] * 4 + ["reset"]


def test_up_to_date_device_only_resets(built) -> None:
    plan = make_plan(built, _have(built))
    assert [s.kind for s in plan.steps] == ["reset"]
    assert plan.unchanged == [f.device_path for f in built]
    assert not plan.changes_files


def test_only_differing_or_missing_files_are_copied(built) -> None:
    have = _have(built)
    have["/lib/smgwfw/link.mpy"] = "00" * 32
    have["/main.py"] = None
    plan = make_plan(built, have)
    assert plan.copies == ["/lib/smgwfw/link.mpy", "/main.py"]
    assert plan.mkdirs == []


def test_digest_bytes_and_upper_case_hex_are_accepted(built) -> None:
    have = {f.device_path: bytes.fromhex(f.sha256) for f in built}
    have["/main.py"] = built[3].sha256.upper()
    assert make_plan(built, have).copies == []


def test_directories_from_device_dirs(built) -> None:
    have = {p: None for p in _have(built)}
    assert make_plan(built, have, device_dirs={"/lib"}).mkdirs == ["/lib/smgwfw"]
    assert make_plan(built, have, device_dirs={"/lib", "/lib/smgwfw"}).mkdirs == []
    # inferred: a directory exists when a file in it does
    have["/lib/smgwfw/old.mpy"] = "11" * 32
    assert make_plan(built, have).mkdirs == []


def test_stale_firmware_files_are_removed(built) -> None:
    have = _have(built)
    have.update({
        "/lib/smgwfw/app.py": "11" * 32,  # an old source copy would shadow app.mpy
        "/lib/smgwfw/gone.mpy": "22" * 32,
        "/lib/smgwfw/readme.txt": "33" * 32,  # not firmware
        "/lib/smgwfw/sub/x.py": "44" * 32,  # not directly in the package
        "/lib/other.py": "55" * 32,  # someone else's
        "/lib/smgwfw/missing.py": None,
    })
    plan = make_plan(built, have)
    assert plan.removes == ["/lib/smgwfw/app.py", "/lib/smgwfw/gone.mpy"]
    assert plan.copies == []
    kinds = [s.kind for s in plan.steps]
    assert kinds.index("rm") < kinds.index("reset")


def test_deps_from_network_and_from_a_directory(built, tmp_path) -> None:
    plan = make_plan(built, _have(built), ["aiorepl", "ntptime@1.0"])
    assert plan.installs == ["aiorepl", "ntptime@1.0"]
    cmds = plan.mpremote_commands("/dev/ttyACM0")
    assert cmds[0] == ["connect", "/dev/ttyACM0", "mip", "install", "--target", "/lib", "aiorepl"]
    assert cmds[1] == ["mip", "install", "--target", "/lib", "ntptime@1.0"]
    plan = make_plan(built, _have(built), ["aiorepl"], tmp_path / "index")
    assert plan.mpremote_commands("p")[0][2:] == [
        "mip", "install", "--target", "/lib", "--index", str(tmp_path / "index"), "aiorepl"]


def test_no_reset(built) -> None:
    assert make_plan(built, _have(built), reset=False).steps == []
    assert make_plan(built, _have(built), reset=False).mpremote_commands("p") == [
        ["connect", "p"]]


def _full_plan(built) -> Plan:
    have = {"/lib/smgwfw/old.py": "11" * 32, "/board.py": "22" * 32}
    return make_plan(built, have, ["aiorepl"], "/srv/mip-index", device_dirs={"/lib"})


def test_each_command_is_a_valid_mpremote_command(built) -> None:
    plan = _full_plan(built)
    cmds = plan.mpremote_commands("/dev/ttyACM0")
    assert len(cmds) == len(plan.steps)
    for i, (cmd, step) in enumerate(zip(cmds, plan.steps)):
        parsed = parse_mpremote(cmd)
        if i == 0:
            assert parsed[0][0] == "connect" and parsed[0][1].device == ["/dev/ttyACM0"]
            parsed = parsed[1:]
        assert len(parsed) == 1, cmd
        name, args = parsed[0]
        if step.kind in ("mkdir", "rm", "cp"):
            assert name == "fs" and args.command == [step.kind]
            if step.kind == "cp":
                assert args.path == [str(step.local), ":" + step.path]
                assert Path(args.path[0]).read_bytes()  # the local file exists
            else:
                assert args.path == [":" + step.path]
        elif step.kind == "mip":
            assert name == "mip" and args.command == ["install"]
            assert args.target == "/lib" and args.index == "/srv/mip-index"
            assert args.packages == ["aiorepl"]
        else:
            assert step.kind == "reset"
            assert name == "exec" and args.follow is False and args.expr == [RESET_CODE]


def test_the_printed_command_line_is_one_valid_mpremote_invocation(built) -> None:
    plan = _full_plan(built)
    line = plan.command_line("/dev/ttyACM0")
    assert line.startswith("mpremote connect /dev/ttyACM0 ")
    argv = shlex.split(line.replace("\\\n", " "))
    assert argv[0] == "mpremote"
    parsed = parse_mpremote(argv[1:])
    names = [n for n, _ in parsed]
    assert names == ["connect"] + ["fs"] * 6 + ["mip", "exec"]
    fs = [(a.command[0], a.path) for n, a in parsed if n == "fs"]
    assert fs[0] == ("mkdir", [":/lib/smgwfw"])
    assert fs[1] == ("rm", [":/lib/smgwfw/old.py"])
    assert [p[-1] for c, p in fs[2:]] == [":/lib/smgwfw/app.mpy", ":/lib/smgwfw/link.mpy",
                                          ":/board.py", ":/main.py"]


def test_plan_with_awkward_paths_survives_shell_quoting(tmp_path) -> None:
    d = tmp_path / "dir with spaces"
    d.mkdir()
    f = _bf("/main.py", b"x", d)
    line = make_plan([f], {}).command_line("/dev/tty ACM0")
    parsed = parse_mpremote(shlex.split(line.replace("\\\n", " "))[1:])
    assert parsed[0][1].device == ["/dev/tty ACM0"]
    assert parsed[1][1].path == [str(f.local_path), ":/main.py"]


def test_summary(built) -> None:
    s = _full_plan(built).summary()
    assert "to copy" in s and "1 stale to remove" in s and "1 package(s)" in s


def test_cli_dry_run_prints_a_parsable_command(tmp_path, capsys) -> None:
    from smgw.flash.cli import main

    assert main(["flash", "--board", "pico", "--port", "/dev/ttyACM0", "--dry-run",
                 "--build-dir", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    line = out[out.index("mpremote connect"):]
    parsed = parse_mpremote(shlex.split(line.replace("\\\n", " "))[1:])
    cps = [a.path[-1] for n, a in parsed if n == "fs" and a.command == ["cp"]]
    assert ":/lib/smgwfw/app.mpy" in cps and cps[-2:] == [":/board.py", ":/main.py"]
    assert parsed[-1][0] == "exec"
