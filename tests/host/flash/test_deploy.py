"""smgw flash against a fake board: mpremote's own Transport code, run on a directory.

FakeTransport subclasses ``mpremote.transport.Transport`` and implements only what a serial
transport adds (exec/eval, raw REPL entry, close). It *executes* the MicroPython-flavoured code
the base class sends — ``os.ilistdir``, ``open(...).readinto``, ``hashlib.sha256`` — in a
namespace whose ``open``/``os``/``machine``/``sys`` act on a temporary directory standing in for
the board's filesystem, and reports errors the way MicroPython prints them. So every ``fs_*``
method of mpremote (and mpremote's own ``mip`` installer) runs unchanged.

The HELLO/RELEASE part runs against the real firmware on the sim board over a pty pair.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from mpremote.transport import Transport, TransportExecError

from smgw.flash import deploy
from smgw.flash.build import FIRMWARE_DIR, REPO, BuiltFile, source_files
from smgw.flash.deploy import DeployError, Hello, compare_hello, flash
from smgw.flash.plan import RESET_CODE, make_plan

# ============================================================================ the fake board


class FakeTransport(Transport):
    def __init__(self, root: Path, *, frozen: bool = False, raw_repl_ok: bool = True,
                 on_reset=None) -> None:
        self.on_reset = on_reset
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.frozen = frozen
        self.raw_repl_ok = raw_repl_ok
        self.in_raw_repl = False
        self.closed = False
        self.resets = 0
        self.soft_resets = 0
        self.writes: list[str] = []  # paths opened for writing, in order
        self.execs = 0
        self._globals: dict | None = None
        self._out = io.StringIO()

    # ---------------------------------------------------------------- the transport API
    def enter_raw_repl(self, soft_reset: bool = True, timeout_overall: float = 10) -> None:
        from mpremote.transport import TransportError

        if not self.raw_repl_ok:
            raise TransportError("could not enter raw repl")
        if soft_reset:
            self.soft_resets += 1
            self._globals = None  # a soft reset clears the REPL's globals
        self.in_raw_repl = True

    def exit_raw_repl(self) -> None:
        self.in_raw_repl = False

    def close(self) -> None:
        self.closed = True

    def exec(self, command, data_consumer=None):
        assert self.in_raw_repl, "exec outside the raw REPL"
        assert not self.closed
        if isinstance(command, bytes):
            command = command.decode()
        self.execs += 1
        self._out = io.StringIO()
        ns = self._namespace()
        try:
            exec(compile(command, "<stdin>", "exec"), ns)
        except BaseException as e:  # noqa: BLE001 - everything the device would print
            raise TransportExecError(self._out.getvalue().encode(), _mp_traceback(e)) from None
        out = self._out.getvalue().encode()
        if data_consumer is not None:
            data_consumer(out)
        return out

    def eval(self, expression, parse=True):  # as SerialTransport.eval
        import ast

        ret = self.exec(("print(repr({}))" if parse else "print({})").format(expression)).strip()
        return ast.literal_eval(ret.decode()) if parse else ret

    # ---------------------------------------------------------------- the device side
    def path(self, p: str) -> Path:
        """Device path -> local path. Relative paths start at the cwd "/"; repeated slashes and
        "." are skipped and ".." goes up, as littlefs does."""
        parts: list[str] = []
        for seg in str(p).split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(seg)
        return self.root.joinpath(*parts)

    def files(self) -> dict[str, bytes]:
        return {"/" + str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}

    def _namespace(self) -> dict:
        if self._globals is not None:
            self._globals["print"] = self._print
            return self._globals
        dev = self

        def _open(p, mode="r", *a, **kw):
            if any(c in mode for c in "wax"):
                dev.writes.append("/" + str(dev.path(p).relative_to(dev.root)))
            return builtins.open(dev.path(p), mode, *a, **kw)

        def _stat(p):
            st = os.stat(dev.path(p))
            mode = 0x4000 if os.path.isdir(dev.path(p)) else 0x8000
            return (mode, 0, 0, 0, 0, 0, st.st_size, int(st.st_mtime), int(st.st_mtime),
                    int(st.st_mtime))

        def _ilistdir(p=""):
            d = dev.path(p)
            for name in sorted(os.listdir(d)):
                full = d / name
                yield (name, 0x4000 if full.is_dir() else 0x8000, 0,
                       0 if full.is_dir() else full.stat().st_size)

        def _reset():
            dev.resets += 1
            if dev.on_reset is not None:
                dev.on_reset()

        fake_os = types.SimpleNamespace(
            ilistdir=_ilistdir, listdir=lambda p="": sorted(os.listdir(dev.path(p))),
            stat=_stat, mkdir=lambda p: os.mkdir(dev.path(p)),
            rmdir=lambda p: os.rmdir(dev.path(p)), remove=lambda p: os.remove(dev.path(p)),
            rename=lambda a, b: os.rename(dev.path(a), dev.path(b)), getcwd=lambda: "",
            sep="/")
        fake_sys = types.SimpleNamespace(
            path=["", ".frozen", "/lib"],
            implementation=types.SimpleNamespace(name="micropython", version=(1, 29, 0),
                                                 _mpy=0x0A06),
            platform="rp2")
        modules = {
            "os": fake_os,
            "sys": fake_sys,
            "machine": types.SimpleNamespace(reset=_reset),
            "time": types.SimpleNamespace(sleep_ms=lambda ms: None, sleep=lambda s: None),
            "hashlib": hashlib,
        }

        def _import(name, globals=None, locals=None, fromlist=(), level=0):
            if name == "smgwfw":
                if dev.frozen:
                    return types.SimpleNamespace(__file__=".frozen/smgwfw/__init__.py")
                for ext in (".py", ".mpy"):
                    if dev.path("/lib/smgwfw/__init__" + ext).exists():
                        return types.SimpleNamespace(__file__="/lib/smgwfw/__init__" + ext)
            if name in modules:
                return modules[name]
            raise ImportError(f"no module named '{name}'")

        bi = dict(vars(builtins))
        bi.update(open=_open, __import__=_import, print=self._print)
        self._globals = {"__builtins__": bi, "__name__": "__main__", "print": self._print}
        return self._globals

    def _print(self, *args, sep=" ", end="\n", file=None):
        builtins.print(*args, sep=sep, end=end, file=self._out)


def _mp_traceback(e: BaseException) -> str:
    # what MicroPython prints: "OSError: [Errno 2] ENOENT" (mpremote parses the errno name)
    if isinstance(e, OSError) and e.errno:
        last = f"OSError: [Errno {e.errno}] {errno.errorcode.get(e.errno, '')}"
    else:
        last = f"{type(e).__name__}: {e}"
    return f'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n{last}\n'


# ============================================================================ fixtures


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A board directory of our own (so the tests do not depend on boards/pico's details)."""
    d = tmp_path / "boards" / "testboard"
    d.mkdir(parents=True)
    (d / "board.py").write_text('BOARD_ID = "testboard"\nMPY_ARCH = "armv6m"\n'
                                'LINK_PORT = {"kind": "usb_cdc"}\n'
                                'SAFE_BOOT = {"kind": "bootsel", "window_ms": 1000}\n')
    return d


@pytest.fixture
def fw(tmp_path: Path) -> Path:
    """A copy of firmware/ that a test may change."""
    d = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, d, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    return d


def _flash(board: Path, fw: Path, dev: FakeTransport, tmp: Path, **kw):
    lines: list[str] = []
    result = flash(board, "/dev/fake", firmware_dir=fw, build_dir=tmp / "build",
                   transport_factory=lambda port, baud: dev, release=False, wait=False,
                   log=lines.append, **kw)
    return result, lines


def _expected_device(result) -> dict[str, bytes]:
    return {f.device_path: f.local_path.read_bytes() for f in result.built}


# ============================================================================ the fake itself


def test_fake_runs_mpremote_fs_methods_unchanged(tmp_path: Path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    dev.enter_raw_repl()
    dev.fs_mkdir("/lib")
    dev.fs_writefile("/lib/x.py", b"\x00\xffabc" * 100)
    assert dev.fs_readfile("/lib/x.py") == b"\x00\xffabc" * 100
    assert dev.fs_hashfile("/lib/x.py", "sha256") == hashlib.sha256(b"\x00\xffabc" * 100).digest()
    assert [e.name for e in dev.fs_listdir("/lib")] == ["x.py"]
    assert dev.fs_isdir("/lib") and not dev.fs_isdir("/lib/x.py")
    with pytest.raises(FileNotFoundError):  # mpremote maps "OSError: [Errno 2] ENOENT"
        dev.fs_hashfile("/nope.py", "sha256")
    with pytest.raises(FileExistsError):
        dev.fs_mkdir("/lib")
    dev.fs_rmfile("/lib/x.py")
    assert not dev.fs_exists("/lib/x.py")


# ============================================================================ deploys


def test_first_deploy_copies_everything_and_resets(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    result, lines = _flash(board, fw, dev, tmp_path)
    plan = result.plan
    assert plan.mkdirs == ["/lib", "/lib/smgwfw"]
    assert plan.copies == [f.device_path for f in result.built]
    assert plan.copies[-1] == "/main.py"  # the entry point goes last
    assert plan.unchanged == [] and plan.removes == [] and plan.reset
    assert dev.resets == 1 and dev.closed
    assert dev.soft_resets == 1  # entering the raw REPL soft-resets: main.py does not run
    assert dev.files() == _expected_device(result)  # byte-identical to the build
    # every module is compiled, main.py and board.py are the sources
    mods = sorted(p.stem for p in (fw / "smgwfw").glob("*.py"))
    assert sorted(Path(p).stem for p in dev.files() if p.startswith("/lib/smgwfw/")) == mods
    assert all(p.endswith(".mpy") for p in dev.files() if p.startswith("/lib/"))
    assert dev.files()["/main.py"] == (fw / "main.py").read_bytes()
    assert dev.files()["/board.py"] == (board / "board.py").read_bytes()
    text = "\n".join(lines)
    for word in ("build", "connect", "compare", "install", "reset"):
        assert word in text


def test_second_deploy_copies_nothing(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    _flash(board, fw, dev, tmp_path)
    dev.closed = False
    dev.writes.clear()
    result, _ = _flash(board, fw, dev, tmp_path)
    assert result.plan.copies == [] and result.plan.mkdirs == [] and result.plan.removes == []
    assert len(result.plan.unchanged) == len(result.built)
    assert dev.writes == []
    assert dev.resets == 2  # the firmware is restarted all the same


def test_changed_module_is_the_only_copy(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    _flash(board, fw, dev, tmp_path)
    with open(fw / "smgwfw" / "crc.py", "a") as f:
        f.write("\n_FLASH_TEST = 1\n")
    dev.closed = False
    dev.writes.clear()
    result, _ = _flash(board, fw, dev, tmp_path)
    assert result.plan.copies == ["/lib/smgwfw/crc.mpy"]
    assert dev.writes == ["/lib/smgwfw/crc.mpy"]
    assert dev.files() == _expected_device(result)


def test_file_changed_on_the_device_is_restored(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    _flash(board, fw, dev, tmp_path)
    (dev.root / "board.py").write_text("BOARD_ID = 'edited on the device'\n")
    dev.closed = False
    result, _ = _flash(board, fw, dev, tmp_path)
    assert result.plan.copies == ["/board.py"]
    assert dev.files() == _expected_device(result)


def test_stale_modules_are_removed(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    _flash(board, fw, dev, tmp_path)
    (dev.root / "lib/smgwfw/app.py").write_text("# an old source copy that would shadow app.mpy")
    (dev.root / "lib/smgwfw/gone.mpy").write_bytes(b"M\x06old")
    (dev.root / "lib/smgwfw/notes.txt").write_text("not firmware: left alone")
    (dev.root / "lib/other.py").write_text("someone else's library: left alone")
    dev.closed = False
    result, _ = _flash(board, fw, dev, tmp_path)
    assert sorted(result.plan.removes) == ["/lib/smgwfw/app.py", "/lib/smgwfw/gone.mpy"]
    assert result.plan.copies == []
    files = dev.files()
    assert "/lib/smgwfw/app.py" not in files and "/lib/smgwfw/gone.mpy" not in files
    assert "/lib/smgwfw/notes.txt" in files and "/lib/other.py" in files


def test_module_removed_from_the_build_is_removed_from_the_device(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev")
    (fw / "smgwfw" / "extra.py").write_text("X = 1\n")
    _flash(board, fw, dev, tmp_path)
    assert "/lib/smgwfw/extra.mpy" in dev.files()
    (fw / "smgwfw" / "extra.py").unlink()
    dev.closed = False
    result, _ = _flash(board, fw, dev, tmp_path)
    assert result.plan.removes == ["/lib/smgwfw/extra.mpy"]
    assert dev.files() == _expected_device(result)


def test_deps_from_a_local_index(board, fw, tmp_path) -> None:
    # --deps-dir: a local copy of a mip package index, installed by mpremote's own mip code
    data = b"# a tiny micropython-lib package\nVALUE = 42\n"
    short = hashlib.sha256(data).hexdigest()[:8]
    index = tmp_path / "index"
    (index / "package" / "6" / "tinypkg").mkdir(parents=True)
    (index / "package" / "6" / "tinypkg" / "latest.json").write_text(json.dumps(
        {"hashes": [["tinypkg.mpy", short]], "deps": [], "version": "1.0"}))
    (index / "file" / short[:2]).mkdir(parents=True)
    (index / "file" / short[:2] / short).write_bytes(data)
    dev = FakeTransport(tmp_path / "dev")
    result, _ = _flash(board, fw, dev, tmp_path, deps=["tinypkg"], deps_dir=index)
    assert result.plan.installs == ["tinypkg"]
    assert dev.files()["/lib/tinypkg.mpy"] == data
    assert dev.resets == 1


def test_deps_without_network_say_use_deps_dir(board, fw, tmp_path, monkeypatch) -> None:
    import urllib.error
    import urllib.request

    def offline(*a, **kw):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dev = FakeTransport(tmp_path / "dev")
    with pytest.raises(DeployError, match="--deps-dir"):
        _flash(board, fw, dev, tmp_path, deps=["tinypkg"])
    assert dev.resets == 0 and not dev.in_raw_repl and dev.closed


def test_no_raw_repl_explains_safe_boot(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev", raw_repl_ok=False)
    with pytest.raises(DeployError) as e:
        _flash(board, fw, dev, tmp_path)
    assert "BOOTSEL" in str(e.value) and "within 1 s" in str(e.value)


def test_frozen_firmware_is_refused(board, fw, tmp_path) -> None:
    dev = FakeTransport(tmp_path / "dev", frozen=True)
    with pytest.raises(DeployError, match="frozen"):
        _flash(board, fw, dev, tmp_path)
    assert dev.files() == {}


def test_cpython_board_and_unknown_board(tmp_path) -> None:
    with pytest.raises(DeployError, match="CPython"):
        deploy.resolve_board("sim")
    with pytest.raises(DeployError, match="no board"):
        deploy.resolve_board("no-such-board")


def test_cli_flash_errors_exit_1(capsys) -> None:
    from smgw.flash.cli import main

    assert main(["flash", "--board", "sim", "--port", "/dev/null"]) == 1
    assert "nothing to flash" in capsys.readouterr().err
    assert main(["flash", "--board", "nope", "--port", "/dev/null"]) == 1
    assert "no board 'nope'" in capsys.readouterr().err


def test_dry_run_prints_one_mpremote_command(board, fw, tmp_path) -> None:
    lines: list[str] = []
    plan = deploy.dry_run(board, "/dev/ttyACM0", firmware_dir=fw, build_dir=tmp_path / "b",
                          log=lines.append)
    cmd = lines[-1]
    assert cmd.startswith("mpremote connect /dev/ttyACM0 fs mkdir :/lib + \\\n")
    assert cmd.rstrip().endswith("reset")
    assert len(plan.copies) == len(list((fw / "smgwfw").glob("*.py"))) + 2


def test_mip_install_of_package_json_lays_out_the_device(tmp_path) -> None:
    # the alternative documented in docs/flashing.md: `mpremote mip install --target /
    # ./package.json` then the board package; run here through mpremote's own mip code
    from mpremote.main import State, argparse_mip
    from mpremote.mip import do_mip

    for target in ("/", ""):
        dev = FakeTransport(tmp_path / f"dev{len(target)}")
        dev.enter_raw_repl()
        state = State()
        state.transport = dev
        state._auto_soft_reset = False
        for pkg in (REPO / "package.json", REPO / "boards" / "pico" / "package.json"):
            do_mip(state, argparse_mip().parse_args(["--target", target, "install", str(pkg)]))
        expect = {f.device_path: f.local_path.read_bytes()
                  for f in source_files(REPO / "boards" / "pico")}
        assert dev.files() == expect


# ============================================================================ HELLO checks


def _hello(files: dict[str, str], **kw) -> Hello:
    return Hello(version=kw.get("version", "0.1.0"), board=kw.get("board", "pico"), boot=1,
                 reset="power-on", durable=True, files=files)


def _built() -> list[BuiltFile]:
    return [BuiltFile("/lib/smgwfw/app.mpy", Path("x"), "aa" * 32),
            BuiltFile("/lib/smgwfw/link.mpy", Path("x"), "bb" * 32),
            BuiltFile("/board.py", Path("x"), "cc" * 32),
            BuiltFile("/main.py", Path("x"), "dd" * 32)]


def test_compare_hello_accepts_the_build() -> None:
    files = {"smgwfw/app.mpy": "aa" * 32, "smgwfw/link.mpy": "bb" * 32, "board.py": "cc" * 32,
             "main.py": "dd" * 32}
    problems, notes = compare_hello(_hello(files), _built(), board_id="pico", version="0.1.0")
    assert problems == []
    assert "4 file hashes" in notes[0]


def test_compare_hello_reports_mismatches() -> None:
    files = {"smgwfw/app.mpy": "ab" * 32, "smgwfw/old.py": "00" * 32, "main.py": "dd" * 32}
    problems, _ = compare_hello(_hello(files, board="esp32-devkitc", version="0.0.9"), _built(),
                                board_id="pico", version="0.1.0")
    text = "\n".join(problems)
    assert "version '0.0.9'" in text and "board 'esp32-devkitc'" in text
    assert "/lib/smgwfw/app.mpy: the firmware reports sha256 abab" in text
    assert "smgwfw/old.py: the firmware runs it but it is not in the build" in text
    assert "/lib/smgwfw/link.mpy: not among the files" in text


def test_compare_hello_without_files_is_a_note() -> None:
    problems, notes = compare_hello(_hello({}), _built(), board_id="pico")
    assert problems == [] and "no file hashes" in notes[0]


# ======================================================================= against the sim firmware


@pytest.fixture
def sim(tmp_path: Path):
    from smgw.sim.firmware import start_firmware
    from smgw.sim.ptybridge import PtyBridge

    bridge = PtyBridge().start()
    proc = start_firmware(bridge.port_b, tmp_path / "fw", tmp_path / "fw.log")
    try:
        yield bridge, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        bridge.close()


def test_flash_waits_for_the_hello_and_reports_mismatches(board, fw, tmp_path) -> None:
    # the fake board "boots" the sim firmware when reset; that runs other files (the sources,
    # the sim board.py) than the ones just installed, and flash must say so
    from smgw.sim.firmware import start_firmware
    from smgw.sim.ptybridge import PtyBridge

    procs = []
    with PtyBridge() as bridge:
        dev = FakeTransport(tmp_path / "dev", on_reset=lambda: procs.append(
            start_firmware(bridge.port_b, tmp_path / "fw-state", tmp_path / "fw.log")))
        try:
            lines: list[str] = []
            result = flash(board, "/dev/fake", firmware_dir=fw, build_dir=tmp_path / "build",
                           transport_factory=lambda port, baud: dev, release=False,
                           wait=True, timeout=15, link_port=bridge.port_a, log=lines.append)
        finally:
            for p in procs:
                p.kill()
                p.wait(timeout=10)
    assert len(procs) == 1
    assert result.hello is not None and result.hello.board == "sim"
    assert not result.ok
    text = "\n".join(result.problems)
    assert "board 'sim', the build is for 'testboard'" in text
    assert "smgwfw/app.py: the firmware runs it but it is not in the build" in text
    assert "/lib/smgwfw/app.mpy: not among the files" in text
    assert "/main.py" not in text and "/board.py" not in text  # the sim reports smgwfw/ only
    assert any(ln.startswith("MISMATCH") for ln in lines)
    assert any(f"firmware {deploy.firmware_version()} on board sim" in ln for ln in lines)


def test_wait_for_hello_reports_the_sim_firmware(sim, tmp_path) -> None:
    bridge, proc = sim
    hello = deploy.wait_for_hello(bridge.port_a, timeout=15)
    assert hello.version == deploy.firmware_version()
    assert hello.board == "sim"
    assert hello.boot == 1 and hello.durable is True
    # the sim firmware runs the sources in place: compare with that "build"
    built = source_files(REPO / "boards" / "sim")
    problems, notes = compare_hello(hello, built, board_id="sim",
                                    version=deploy.firmware_version())
    assert problems == [], problems
    assert proc.poll() is None  # HELLO only: the firmware keeps running


def test_release_stops_the_sim_firmware(sim) -> None:
    bridge, proc = sim
    lines: list[str] = []
    assert deploy.release_firmware(bridge.port_a, listen_s=5, timeout_s=10, log=lines.append)
    assert "released the port" in lines[-1]
    # the sim board has no release(): app.run() returns, main.py ends, the process exits 0
    assert proc.wait(timeout=10) == 0


def test_release_without_firmware_sends_nothing(tmp_path) -> None:
    from smgw.sim.ptybridge import PtyBridge

    with PtyBridge() as bridge:
        import serial

        other = serial.serial_for_url(bridge.port_b, timeout=0.1)
        try:
            lines: list[str] = []
            assert not deploy.release_firmware(bridge.port_a, listen_s=0.5, log=lines.append)
            assert "no firmware" in lines[-1]
            time.sleep(0.2)
            assert other.read(4096) == b""  # a REPL on the other end would have seen nothing
        finally:
            other.close()


def _records(port: str, want: int, gen: int = 0, timeout: float = 15) -> list[int]:
    """rids of the durable linktest records the firmware sends (asking it to generate ``gen``
    of them first), seen through a flash link session (never acknowledged), once ``want`` of
    them came or after ``timeout`` s."""
    from smgwfw import messages as m

    ser = deploy.open_port(port, 115200)
    try:
        s = deploy.LinkSession(ser)
        end = time.monotonic() + timeout
        asked = False
        rids: set[int] = set()
        while time.monotonic() < end and len(rids) < want:
            s.pump()
            if s.link.up and gen and not asked:
                asked = s.link.send({m.K_TYPE: m.T_LINKTEST_GEN, m.K_LTG_COUNT: gen,
                                     m.K_LTG_SIZE: 8})
            rids = {msg[m.K_RID] for msg in s.messages if msg.get(m.K_TYPE) == m.T_LINKTEST}
        time.sleep(0.3)  # a late acknowledgement would have gone out by now
        s.pump()
        return sorted(rids)
    finally:
        ser.close()


def test_flash_sessions_never_acknowledge_firmware_records(sim, tmp_path) -> None:
    # the firmware's outbox is for the gateway: a flash (RELEASE, HELLO wait) must not make it
    # drop anything. Records seen by one session come again after a RELEASE and a restart.
    from smgw.sim.firmware import start_firmware

    bridge, proc = sim
    assert _records(bridge.port_a, 3, gen=3) == [1, 2, 3]
    assert deploy.release_firmware(bridge.port_a, listen_s=8, timeout_s=10, log=lambda s: None)
    assert proc.wait(timeout=10) == 0
    again = start_firmware(bridge.port_b, tmp_path / "fw", tmp_path / "fw2.log")
    try:
        assert _records(bridge.port_a, 3) == [1, 2, 3]
    finally:
        again.kill()
        again.wait(timeout=10)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_busy_port_message_names_the_user(tmp_path) -> None:
    from smgw.sim.ptybridge import PtyBridge

    with PtyBridge() as bridge:
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sys, time; f = open(sys.argv[1], 'rb', buffering=0); print('ok', "
             "flush=True); time.sleep(30)", bridge.port_a],
            stdout=subprocess.PIPE)
        try:
            assert holder.stdout.readline().strip() == b"ok"
            users = deploy.port_users(bridge.port_a)
            assert any(f"pid {holder.pid}" in u for u in users)
            msg = deploy._busy_message(bridge.port_a)
            assert "busy" in msg and f"pid {holder.pid}" in msg and "smgw run" in msg
        finally:
            holder.kill()
            holder.wait()


def test_reset_code_is_mpremotes_reset() -> None:
    import mpremote.main as mm

    exp = mm._BUILTIN_COMMAND_EXPANSIONS["reset"]["command"]
    assert exp == ["exec", "--no-follow", RESET_CODE]
    assert make_plan([], {}).mpremote_commands("p") == [["connect", "p", "reset"]]
