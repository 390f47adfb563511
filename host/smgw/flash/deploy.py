"""``smgw flash``: install the firmware on a board over its REPL with mpremote's Python API.

The steps, each reported on one progress line:

1. build    compile the firmware for the board's architecture (smgw.flash.build)
2. release  if the firmware runs and owns the port (the Pico's USB CDC link), ask it with a link
            RELEASE message to hand the port back to the REPL; it may as well not be running
3. connect  open the port with mpremote's SerialTransport and enter the raw REPL
4. compare  SHA-256 of every firmware file on the device (``fs_hashfile``) -> a Plan
5. install  carry the plan out: mkdir, remove stale modules, copy (each copy verified by
            hash), mip install dependencies, reset
6. hello    wait for the restarted firmware's link HELLO (on the same port, or on --link-port
            for boards whose link has its own UART) and check that the version, the board and
            the file hashes it reports are the ones just installed

The link sessions in steps 2 and 6 never acknowledge a message from the firmware, so nothing in
its outbox is dropped: the records stay queued for the gateway.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import serial

from smgw import VERSION as HOST_VERSION
from smgw.flash.build import (
    BOARDS_DIR,
    DEVICE_PKG,
    FIRMWARE_DEPS,
    FIRMWARE_DIR,
    REPO,
    BuildError,
    BuiltFile,
    board_facts,
    compile_firmware,
    is_cpython_board,
    mpy_cross_version,
)
from smgw.flash.plan import RESET_CODE, Plan, Step, make_plan
from smgwfw import link as lk
from smgwfw import messages as m

Log = Callable[[str], None]

# Used when a board.py does not (yet) state MPY_ARCH.
DEFAULT_ARCH = {"pico": "armv6m", "esp32": "xtensawin"}
BUILD_ROOT = REPO / "var" / "build"
_MASK = 0x3FFFFFFF


class DeployError(Exception):
    """A step failed; the message says what to do about it."""


@dataclass
class Hello:
    version: str
    board: str
    boot: int | None
    reset: str | None
    durable: bool | None
    files: dict[str, str]  # name as the firmware reports it -> sha256 hex

    @classmethod
    def from_info(cls, info: Any) -> "Hello":
        info = info if isinstance(info, dict) else {}
        files = info.get("files", {})
        files = files if isinstance(files, dict) else {}
        return cls(
            version=str(info.get("fw", "")),
            board=str(info.get("board", "")),
            boot=info.get("boot") if isinstance(info.get("boot"), int) else None,
            reset=str(info["reset"]) if "reset" in info else None,
            durable=info.get("durable") if isinstance(info.get("durable"), bool) else None,
            files={str(k): bytes(v).hex() for k, v in files.items()
                   if isinstance(v, (bytes, bytearray))},
        )


@dataclass
class FlashResult:
    board: str
    built: list[BuiltFile]
    plan: Plan
    hello: Hello | None = None
    problems: list[str] = field(default_factory=list)  # hello check failures (errors)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def now_ms() -> int:
    return int(time.monotonic() * 1000) & _MASK


# ----------------------------------------------------------------------------- board, build

@dataclass
class Board:
    name: str
    dir: Path
    facts: dict[str, Any]

    @property
    def arch(self) -> str | None:
        return self.facts.get("MPY_ARCH") or DEFAULT_ARCH.get(self.name)

    @property
    def link_kind(self) -> str:
        """"usb_cdc" when the link shares the REPL's USB port (the Pico), "uart" when it has its
        own UART and host adapter (the ESP32), "" when the board does not say."""
        lp = self.facts.get("LINK_PORT")
        return str(lp.get("kind", "")) if isinstance(lp, dict) else ""

    @property
    def link_baudrate(self) -> int | None:
        lp = self.facts.get("LINK_PORT")
        b = lp.get("baudrate") if isinstance(lp, dict) else None
        return b if isinstance(b, int) else None

    def safe_boot_hint(self) -> str:
        sb = self.facts.get("SAFE_BOOT")
        window = ""
        if isinstance(sb, dict) and isinstance(sb.get("window_ms"), int):
            window = f" within {sb['window_ms'] / 1000:g} s"
        if isinstance(sb, dict) and sb.get("kind") == "bootsel":
            how = (f"Safe boot: power the board up (unplug, replug) and press BOOTSEL{window} "
                   "after power-up, not while plugging in (that starts the ROM bootloader)")
        elif isinstance(sb, dict) and sb.get("kind") == "pin":
            pin = sb.get("pin")
            how = (f"Safe boot: reset the board and press the button on GPIO{pin}{window} "
                   "after the reset, not during it")
        else:
            how = "Safe boot: reset the board the way its boards/<name>/board.py SAFE_BOOT says"
        return (how + "; main.py then leaves the REPL free. Then run smgw flash again "
                "(with --no-release)")


def resolve_board(board: str | Path) -> Board:
    d = Path(board) if (isinstance(board, Path) or os.sep in str(board)) else BOARDS_DIR / board
    if not (d / "board.py").is_file():
        names = sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.py"))
        raise DeployError(f"no board {str(board)!r}: {d / 'board.py'} does not exist "
                          f"(boards: {', '.join(names) or 'none'})")
    if is_cpython_board(d):
        raise DeployError(f"board {d.name!r} runs the firmware under CPython on this machine "
                          "(`make run`); there is nothing to flash")
    try:
        facts = board_facts(d)
    except BuildError as e:
        raise DeployError(str(e)) from None
    return Board(d.name, d, facts)


def build(board: Board, out_dir: Path | None = None, *, firmware_dir: Path = FIRMWARE_DIR,
          log: Log = print) -> list[BuiltFile]:
    out = Path(out_dir) if out_dir else BUILD_ROOT / board.name
    arch = board.arch
    try:
        built = compile_firmware(board.dir, out, arch, firmware_dir=firmware_dir)
    except BuildError as e:
        raise DeployError(f"build failed: {e}") from None
    n = sum(1 for f in built if f.device_path.startswith(DEVICE_PKG + "/"))
    size = sum(f.size for f in built)
    ver = re.search(r"v(\d+\.\d+(?:\.\d+)?)", mpy_cross_version())
    log(f"build    {n} modules compiled for {arch or 'any architecture'} "
        f"(mpy-cross {ver.group(1) if ver else '?'}), with board.py and main.py: "
        f"{size} bytes in {out}")
    return built


# ----------------------------------------------------------------------------- link sessions

def _rand30() -> int:
    return (int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF) or 1


def _host_link() -> lk.Link:
    # A throw-away host endpoint: a fresh stream and no cursors, so the firmware drops nothing
    # it has queued for the gateway (nothing is ever consumed, so nothing is acknowledged).
    return lk.Link("host", _rand30(), _rand30, info={"host": f"smgw-flash {HOST_VERSION}"},
                   cursors={}, incarnation=_rand30(), hello_ms=250, rto_ms=200,
                   queue_len=8, queue_bytes=4096)


def port_users(port: str) -> list[str]:
    """Other processes that have ``port`` open (Linux /proc, best effort; [] elsewhere)."""
    try:
        dev = os.path.realpath(port)
        st = os.stat(dev)
    except OSError:
        return []
    users = []
    me = os.getpid()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except OSError:
        return []
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                s = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if s.st_rdev == st.st_rdev and s.st_ino == st.st_ino and s.st_dev == st.st_dev:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    cmd = "?"
                users.append(f"pid {pid} ({cmd[:60]})")
                break
    return users


def _busy_message(port: str, detail: str = "") -> str:
    users = port_users(port)
    who = f" (in use by {', '.join(users)})" if users else ""
    return (f"serial port {port} is busy{who}{': ' + detail if detail else ''}. Close the other "
            "programs that use it (`smgw run`, a serial terminal, another mpremote) and try again")


def open_port(port: str, baudrate: int, deadline: float | None = None) -> serial.SerialBase:
    """Opens ``port`` with pyserial; with a deadline, keeps retrying while the port is absent
    (a Pico's USB port disappears for a moment when the board resets)."""
    while True:
        try:
            return serial.serial_for_url(port, baudrate=baudrate, timeout=0.02, write_timeout=2,
                                         exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            text = str(e)
            if deadline is not None and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if "lock" in text.lower() or "busy" in text.lower() or getattr(
                    e, "errno", None) == errno.EBUSY:
                raise DeployError(_busy_message(port, text)) from None
            raise DeployError(f"cannot open serial port {port}: {text}. Is the board plugged "
                              "in? `mpremote devs` lists the ports") from None


class LinkSession:
    """A host link endpoint on an open serial port, pumped by the caller."""

    def __init__(self, ser: serial.SerialBase) -> None:
        self.ser = ser
        self.link = _host_link()
        self.hello: dict | None = None
        self.messages: list[dict] = []  # seen, never consumed (the last 100)

    def _read(self) -> None:
        n = self.ser.in_waiting
        data = self.ser.read(n if n else 1)
        if data:
            self.link.receive(data, now_ms())

    def _events(self) -> None:
        while True:
            ev = self.link.next_event()
            if ev is None:
                return
            if ev[0] == lk.EV_UP:
                self.hello = ev[1]
            elif ev[0] == lk.EV_MESSAGE:
                # deliberately never consumed, so never acknowledged: the firmware keeps it
                self.messages = self.messages[-99:] + [ev[1]]

    def listen(self, seconds: float) -> bool:
        """Reads without sending anything (the other end may be a REPL, to which link bytes are
        keystrokes); True as soon as a valid link frame arrived."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._read()
            if self.link.counters["frames_rx"]:
                return True
        return False

    def pump(self) -> None:
        self._read()
        self._events()
        now = now_ms()
        while True:
            f = self.link.poll(now)
            if f is None:
                break
            self.ser.write(bytes(f))
        self._events()


def release_firmware(port: str, baudrate: int = 115200, *, listen_s: float = 1.5,
                     timeout_s: float = 4.0, settle_s: float = 0.5,
                     log: Log = print) -> bool:
    """If the firmware is running on ``port``, asks it (link message RELEASE) to stop and hand
    the port back to the REPL. True when the firmware acknowledged the request; False when no
    firmware spoke on the port (the REPL is then usually there already) or it did not answer."""
    log(f"release  listening on {port} for a running firmware ({listen_s:g} s)")
    ser = open_port(port, baudrate)
    try:
        s = LinkSession(ser)
        if not s.listen(listen_s):
            log(f"release  no firmware talking on {port} (the REPL may already be free)")
            return False
        deadline = time.monotonic() + timeout_s
        sent = False
        while time.monotonic() < deadline:
            s.pump()
            if s.link.up and not sent:
                sent = s.link.send({m.K_TYPE: m.T_RELEASE})
            if sent and s.link.queued() == 0:  # acknowledged: the firmware has it
                info = Hello.from_info(s.hello.get(lk.H_INFO) if s.hello else None)
                log(f"release  firmware {info.version or '?'} on {port} released the port")
                time.sleep(settle_s)  # it finishes its loop and hands the port to the REPL
                return True
        log(f"release  the firmware on {port} did not acknowledge RELEASE within {timeout_s:g} s;"
            " trying the REPL anyway")
        return False
    finally:
        ser.close()


def wait_for_hello(port: str, baudrate: int = 115200, timeout: float = 20.0) -> Hello:
    """Waits (``timeout`` s, including the time the port is gone during a reset) until the
    firmware on ``port`` completes a link handshake and returns what its HELLO reports."""
    deadline = time.monotonic() + timeout
    why = ""
    while time.monotonic() < deadline:
        try:
            ser = open_port(port, baudrate, deadline)
        except DeployError as e:
            why = f" ({e})"
            break
        try:
            s = LinkSession(ser)
            while time.monotonic() < deadline:
                s.pump()
                if s.hello is not None:
                    return Hello.from_info(s.hello.get(lk.H_INFO))
        except (serial.SerialException, OSError) as e:
            # the port went away under us (USB re-enumeration after the reset): open it again
            why = f" (last port error: {e})"
            time.sleep(0.2)
        finally:
            ser.close()
    raise DeployError(
        f"no link HELLO from the firmware on {port} within {timeout:g} s{why}. It may have "
        f"failed at boot: `mpremote connect {port} repl`, then Ctrl-D shows main.py's traceback "
        "(if the firmware holds the port, use safe boot first); a slow board may need a longer "
        "--timeout")


def compare_hello(hello: Hello, built: Iterable[BuiltFile], *, board_id: str | None = None,
                  version: str | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes): what the HELLO says that contradicts the build. A file name in the
    HELLO matches the device path that ends with it ("smgwfw/app.mpy" ~ "/lib/smgwfw/app.mpy")."""
    problems: list[str] = []
    notes: list[str] = []
    built = list(built)
    if version and hello.version != version:
        problems.append(f"firmware reports version {hello.version!r}, the build is {version!r}")
    if board_id and hello.board != board_id:
        problems.append(f"firmware reports board {hello.board!r}, the build is for {board_id!r}")
    if not hello.files:
        notes.append("the firmware reported no file hashes; files not verified by the HELLO")
        return problems, notes

    def match(name: str) -> BuiltFile | None:
        key = "/" + name.lstrip("/")
        for f in built:
            if f.device_path == key or f.device_path.endswith(key):
                return f
        return None

    pkg = DEVICE_PKG.rsplit("/", 1)[-1] + "/"  # "smgwfw/"
    matched = set()
    for name, digest in sorted(hello.files.items()):
        f = match(name)
        if f is None:
            if pkg in "/" + name.lstrip("/"):
                problems.append(f"{name}: the firmware runs it but it is not in the build "
                                "(a stale file?)")
            continue
        matched.add(f.device_path)
        if digest != f.sha256:
            problems.append(f"{f.device_path}: the firmware reports sha256 {digest[:16]}..., "
                            f"the build has {f.sha256[:16]}...")
    for f in built:
        if f.device_path.startswith(DEVICE_PKG + "/") and f.device_path not in matched:
            problems.append(f"{f.device_path}: not among the files the firmware reports")
    ok = len(matched)
    notes.append(f"{ok} file hash{'es' if ok != 1 else ''} reported by the firmware "
                 f"{'match' if ok != 1 else 'matches'} the build" if not problems else
                 f"{ok} file(s) compared")
    return problems, notes


# ----------------------------------------------------------------------------- the device

def _is_enoent(e: OSError) -> bool:
    return e.errno == errno.ENOENT or isinstance(e, FileNotFoundError)


def read_device(transport: Any, built: Iterable[BuiltFile]) -> tuple[dict[str, str | None],
                                                                    set[str]]:
    """(device path -> sha256 hex or None, existing directories) for the built files and
    everything in /lib/smgwfw."""
    dirs: set[str] = set()
    for d in ("/lib", DEVICE_PKG):
        if transport.fs_isdir(d):
            dirs.add(d)
    paths = [f.device_path for f in built]
    if DEVICE_PKG in dirs:
        for entry in transport.fs_listdir(DEVICE_PKG):
            if not entry.st_mode & 0x4000:
                p = f"{DEVICE_PKG}/{entry.name}"
                if p not in paths:
                    paths.append(p)
    hashes: dict[str, str | None] = {}
    for p in paths:
        parent = p.rsplit("/", 1)[0]
        if parent and parent not in dirs:
            hashes[p] = None
            continue
        try:
            hashes[p] = bytes(transport.fs_hashfile(p, "sha256")).hex()
        except OSError as e:
            if not _is_enoent(e):
                raise DeployError(f"cannot read {p} on the device: {e}") from None
            hashes[p] = None
    return hashes, dirs


def firmware_origin(transport: Any) -> str | None:
    """Where the device imports ``smgwfw`` from (its ``__file__``), or None when it has none.
    ".frozen/..." means the MicroPython image has the firmware frozen in (``smgw firmware``)."""
    from mpremote.transport import TransportError

    try:
        v = transport.eval("getattr(__import__('smgwfw'), '__file__', '?')")
    except (TransportError, SyntaxError, ValueError):
        return None
    return v if isinstance(v, str) else None


def run_mip(transport: Any, step: Step) -> None:
    """``mpremote mip install ...`` for one step, through mpremote's own command handler."""
    from mpremote.commands import CommandError
    from mpremote.main import State, argparse_mip
    from mpremote.mip import do_mip

    args = argparse_mip().parse_args(step.mpremote_args()[1:])
    state = State()
    state.transport = transport
    state._auto_soft_reset = False  # already in the raw REPL; no soft reset in between
    try:
        do_mip(state, args)
    except CommandError as e:
        text = str(e)
        if step.index is None and "requesting" in text:
            raise DeployError(
                f"mip install {step.path} failed: {text}. Without internet, fetch the packages "
                "on another machine into a directory and pass --deps-dir DIR "
                "(docs/flashing.md, 'Offline dependencies')") from None
        raise DeployError(f"mip install {step.path} failed: {text}") from None


def reset_board(transport: Any) -> None:
    # The board resets while running this, so it never answers: do not wait for output.
    no_follow = getattr(transport, "exec_raw_no_follow", None)
    if no_follow is not None:
        no_follow(RESET_CODE)
    else:
        transport.exec(RESET_CODE)


def execute_plan(transport: Any, plan: Plan, log: Log = print, *, verify: bool = True) -> None:
    from mpremote.transport import TransportError

    total = len(plan.steps)
    for i, step in enumerate(plan.steps, 1):
        prefix = f"install  [{i}/{total}] {step.describe()}"
        try:
            if step.kind == "mkdir":
                log(prefix)
                transport.fs_mkdir(step.path)
            elif step.kind == "rm":
                log(prefix)
                transport.fs_rmfile(step.path)
            elif step.kind == "cp":
                data = Path(step.local).read_bytes()
                log(f"{prefix} ({len(data)} bytes)")
                transport.fs_writefile(step.path, data)
                if verify:
                    got = bytes(transport.fs_hashfile(step.path, "sha256")).hex()
                    if got != step.sha256:
                        raise DeployError(f"{step.path} reads back with sha256 {got[:16]}..., "
                                          f"expected {step.sha256[:16]}... (flash full or "
                                          "failing? `mpremote df` shows the free space)")
            elif step.kind == "mip":
                log(prefix)
                run_mip(transport, step)
            elif step.kind == "reset":
                log("reset    machine.reset(): the board restarts and main.py starts the firmware")
                reset_board(transport)
        except OSError as e:
            raise DeployError(f"{step.describe()} failed on the device: {e}") from None
        except TransportError as e:
            raise DeployError(f"{step.describe()} failed: {e}") from None


def connect(port: str, baudrate: int, board: Board,
            transport_factory: Callable[[str, int], Any] | None = None) -> Any:
    from mpremote.transport import TransportError

    if transport_factory is None:
        from mpremote.transport_serial import SerialTransport

        def transport_factory(p: str, b: int) -> Any:
            return SerialTransport(p, baudrate=b)

    try:
        transport = transport_factory(port, baudrate)
    except TransportError as e:
        text = str(e)
        if text.startswith("failed to access") and os.path.exists(port):
            raise DeployError(_busy_message(port, text)) from None
        raise DeployError(f"cannot open {port}: {text}. Is the board plugged in? "
                          "`mpremote devs` lists the ports") from None
    try:
        transport.enter_raw_repl(soft_reset=True)
    except (TransportError, OSError) as e:
        try:
            transport.close()
        except Exception:
            pass
        raise DeployError(f"no raw REPL on {port} ({e}): the firmware still holds the port or "
                          f"the board does not answer. {board.safe_boot_hint()}") from None
    return transport


def flash(board: str | Path, port: str, *, baudrate: int = 115200,
          deps: Iterable[str] = FIRMWARE_DEPS, deps_dir: Path | str | None = None,
          wait: bool = True, timeout: float = 20.0, link_port: str | None = None,
          link_baudrate: int | None = None, release: bool = True,
          build_dir: Path | None = None, firmware_dir: Path = FIRMWARE_DIR,
          transport_factory: Callable[[str, int], Any] | None = None,
          log: Log = print) -> FlashResult:
    """Builds the firmware for ``board`` and installs it on the board at ``port``; see the module
    docstring for the steps. Raises DeployError (with advice) when a step fails; hash mismatches
    in the HELLO are returned in ``FlashResult.problems``."""
    b = resolve_board(board)
    if deps_dir is not None and not Path(deps_dir).is_dir():
        raise DeployError(f"--deps-dir {deps_dir}: not a directory")
    built = build(b, build_dir, firmware_dir=firmware_dir, log=log)

    if transport_factory is None and port_users(port):
        # pyserial's exclusive lock does not see programs that opened the port without one
        raise DeployError(_busy_message(port))
    shares_port = b.link_kind in ("usb_cdc", "")
    if release and shares_port:
        release_firmware(port, baudrate, log=log)

    log(f"connect  {port}: raw REPL")
    transport = connect(port, baudrate, b, transport_factory)
    reset_sent = False
    try:
        origin = firmware_origin(transport)
        if origin and origin.startswith(".frozen"):
            raise DeployError(
                "the MicroPython image on the board has the firmware frozen in (smgwfw imports "
                f"from {origin}); frozen modules come before /lib, so installed files would not "
                "be used. Flash a stock MicroPython image first, or update the frozen image with "
                "`smgw firmware` (docs/flashing.md)")
        hashes, dirs = read_device(transport, built)
        plan = make_plan(built, hashes, list(deps), deps_dir, device_dirs=dirs)
        log(f"compare  {plan.summary()}")
        execute_plan(transport, plan, log)
        reset_sent = plan.reset
    finally:
        try:
            if not reset_sent and getattr(transport, "in_raw_repl", False):
                transport.exit_raw_repl()
            transport.close()
        except Exception:  # the board is resetting; its port may already be gone
            pass

    result = FlashResult(b.name, built, plan)
    if not wait:
        log("hello    not waiting for the firmware (--no-wait)")
        return result
    if link_port is None and not shares_port:
        result.notes.append(f"the link of board {b.name} is on its own UART, not on {port}: "
                            "pass --link-port to check the firmware's HELLO")
        log(f"hello    not checked: {result.notes[-1]}")
        return result
    lp = link_port or port
    time.sleep(0.5)  # the board resets 100 ms after the command; let its old port go first
    log(f"hello    waiting up to {timeout:g} s for the firmware on {lp}")
    hello = wait_for_hello(lp, link_baudrate or (b.link_baudrate if link_port else None)
                           or baudrate, timeout)
    result.hello = hello
    result.problems, result.notes = compare_hello(
        hello, built, board_id=b.facts.get("BOARD_ID"), version=firmware_version(firmware_dir))
    log(f"hello    firmware {hello.version} on board {hello.board}, boot {hello.boot}, "
        f"reset cause {hello.reset}, {len(hello.files)} files reported")
    for n in result.notes:
        log(f"hello    {n}")
    for p in result.problems:
        log(f"MISMATCH {p}")
    return result


def dry_run(board: str | Path, port: str, *, deps: Iterable[str] = FIRMWARE_DEPS,
            deps_dir: Path | str | None = None, build_dir: Path | None = None,
            firmware_dir: Path = FIRMWARE_DIR, log: Log = print) -> Plan:
    """Builds, then prints the plan for a fresh device as one mpremote command (the device is
    not contacted; a real run copies only what differs)."""
    b = resolve_board(board)
    built = build(b, build_dir, firmware_dir=firmware_dir, log=log)
    plan = make_plan(built, {}, list(deps), deps_dir, device_dirs=set())
    log("# the same steps as mpremote commands, for a board without /lib (a fresh board);")
    log("# smgw flash compares hashes first and copies only what differs")
    log(plan.command_line(port))
    return plan


def firmware_version(firmware_dir: Path = FIRMWARE_DIR) -> str | None:
    try:
        text = (Path(firmware_dir) / "smgwfw" / "__init__.py").read_text()
    except OSError:
        return None
    mt = re.search(r'^VERSION\s*=\s*"([^"]*)"', text, re.M)
    return mt.group(1) if mt else None


__all__ = [
    "Board", "DeployError", "FlashResult", "Hello", "LinkSession", "compare_hello", "connect",
    "dry_run", "execute_plan", "flash", "read_device", "release_firmware", "reset_board",
    "resolve_board", "run_mip", "wait_for_hello",
]
