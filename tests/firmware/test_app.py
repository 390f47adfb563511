"""The firmware application against a host-side link endpoint, over an in-memory line: hello
contents, error answers, status, the bounded journal that says when it drops, and durable
consumption of host messages across a reset."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smgwfw import link as lk
from smgwfw import messages as m
from smgwfw.app import App, pattern


class Board:
    """A board whose UART is a pair of byte buffers and whose flash is a temp directory."""

    BOARD_ID = "test"

    def __init__(self, storage: Path | None, journal_bytes=100_000, seed=1):
        self.STORAGE = str(storage) if storage else None
        self.JOURNAL_BYTES = journal_bytes
        self.LINK = {"window": 8, "max_payload": 1024, "rto_ms": 50}
        self.rng = random.Random(seed)
        self.t = 0
        self.rx = bytearray()
        self.tx = bytearray()
        self.levels = [[], [], [], []]

    def ticks_ms(self):
        return self.t

    def nonce(self):
        return self.rng.getrandbits(30)

    def reset_cause(self):
        return "test"

    def firmware_files(self):
        here = Path(lk.__file__).parent
        return [("smgwfw/link.py", str(here / "link.py")), ("smgwfw/gone.py", "/nonexistent")]

    def link_uart(self):
        return self

    def read(self):
        data = bytes(self.rx)
        self.rx.clear()
        return data or None

    def write(self, data):
        self.tx += data

    def leds(self):
        board = self

        class Led:
            def __init__(self, i):
                self.i = i

            def value(self, v):
                board.levels[self.i].append((board.t, v))

        return [Led(i) for i in range(4)]


class Host:
    def __init__(self, seed=2, cursors=None):
        rng = random.Random(seed)
        self.link = lk.Link("host", 777, lambda: rng.getrandbits(30), cursors=cursors or {},
                            rto_ms=50)
        self.msgs: list[dict] = []
        self.events: list[tuple] = []

    def pump(self):
        while (ev := self.link.next_event()) is not None:
            if ev[0] == lk.EV_MESSAGE:
                self.msgs.append(ev[1])
                self.link.consumed()
            self.events.append(ev)

    def of_type(self, t):
        return [x for x in self.msgs if x[m.K_TYPE] == t]


def run(board: Board, app: App, host: Host, ms: int, until=None):
    for _ in range(ms):
        board.t += 1
        app.step(board.t)
        if board.tx:
            host.link.receive(bytes(board.tx), board.t)
            board.tx.clear()
        host.pump()
        while (f := host.link.poll(board.t)) is not None:
            board.rx += f
        if until is not None and until():
            return True
    return until() if until else True


@pytest.fixture
def setup(tmp_path):
    board = Board(tmp_path / "flash")
    (tmp_path / "flash").mkdir()
    app = App(board)
    host = Host()
    assert run(board, app, host, 3000, lambda: host.link.up and app.link.up)
    return board, app, host


def test_hello_carries_version_board_boot_and_file_hashes(setup):
    board, app, host = setup
    info = host.link.peer[lk.H_INFO]
    assert info["board"] == "test" and info["boot"] == 1 and info["durable"] is True
    import hashlib
    want = hashlib.sha256(Path(lk.__file__).read_bytes()).digest()
    assert info["files"] == {"smgwfw/link.py": want}  # a file it cannot read is left out
    # the boot event and a first status follow the hello
    run(board, app, host, 200)
    assert host.of_type(m.T_EVENT)[0][m.K_EVENT_PARAMS] == [1, "test"]
    assert host.of_type(m.T_STATUS)


def test_boot_counter_counts_resets(tmp_path):
    (tmp_path / "f").mkdir()
    for boot in (1, 2, 3):
        app = App(Board(tmp_path / "f"))
        assert app.state.v["boot"] == boot


def test_bad_messages_get_specific_error_answers(setup):
    board, app, host = setup
    host.link.send({m.K_TYPE: 99})
    host.link.send({m.K_TYPE: m.T_STATE, m.K_STATE_OP: 42, m.K_STATE_WAN: 0, m.K_STATE_LMC: 0})
    host.link.send({m.K_TYPE: m.T_RECORD, m.K_REC_BODY: b"x"})
    host.link.send({m.K_TYPE: m.T_LINKTEST_GEN, m.K_LTG_COUNT: 1, m.K_LTG_SIZE: 5000})
    run(board, app, host, 500, lambda: len(host.of_type(m.T_ERROR)) >= 4)
    codes = [(e[m.K_ERROR_CODE], e[m.K_ERROR_REF]) for e in host.of_type(m.T_ERROR)]
    assert codes == [(m.ERR_UNKNOWN_TYPE, 99), (m.ERR_BAD_FIELD, m.T_STATE),
                     (m.ERR_NOT_SUPPORTED, m.T_RECORD), (m.ERR_BAD_FIELD, m.T_LINKTEST_GEN)]
    assert app.link.counters["bad_messages"] == 4
    assert app.link.up and host.link.up  # nothing crashed, the session survived


def test_full_journal_drops_counts_and_reports(tmp_path):
    (tmp_path / "f").mkdir()
    board = Board(tmp_path / "f", journal_bytes=2000)
    app = App(board)
    host = Host()
    run(board, app, host, 3000, lambda: host.link.up)
    # capture far more than the journal holds while the host does not consume
    kept = sum(app.capture({m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRED,
                            m.K_REC_BODY: bytes(100)}) for _ in range(40))
    assert 0 < kept < 40 and app.dropped == 40 - kept
    run(board, app, host, 2000, lambda: bool(host.of_type(m.T_EVENT)[1:]))
    drops = [e for e in host.of_type(m.T_EVENT) if e[m.K_EVENT_CODE] == m.EV_OUTBOX_DROP]
    assert drops and drops[0][m.K_EVENT_PARAMS][0] == 40 - kept
    # what was kept arrives, in order, once
    run(board, app, host, 5000, lambda: len(host.of_type(m.T_RECORD)) >= kept)
    rids = [r[m.K_RID] for r in host.of_type(m.T_RECORD)]
    assert rids == sorted(set(rids)) and len(rids) == kept


def test_state_drives_the_leds_and_reports_patterns(setup):
    board, app, host = setup
    run(board, app, host, 3500)  # past the boot blink
    host.link.send({m.K_TYPE: m.T_STATE, m.K_STATE_OP: m.OP_NORMAL, m.K_STATE_WAN: m.WAN_UP,
                    m.K_STATE_LMC: m.LMC_ADDRESSED, m.K_STATE_INSTALL: False,
                    m.K_STATE_SECURITY: m.SEC_NONE})
    run(board, app, host, 300)
    from smgwfw.leds import pattern_name
    last = host.of_type(m.T_LEDS)[-1][m.K_LEDS_PATTERNS]
    assert [pattern_name(p) for p in last[:3]] == ["on", "on", "on"]
    assert board.levels[0][-1][1] == 1


def test_host_linktest_is_consumed_durably_across_a_reset(tmp_path):
    (tmp_path / "f").mkdir()
    board = Board(tmp_path / "f")
    app = App(board)
    host = Host()
    run(board, app, host, 3000, lambda: host.link.up)
    for n in range(1, 31):
        host.link.send({m.K_TYPE: m.T_LINKTEST, m.K_LT_N: n, m.K_LT_DATA: pattern(n, 20)}, rid=n)
        run(board, app, host, 20)
    run(board, app, host, 1000, lambda: app.state.v["lt_received"] == 30)
    # reset: a new App on the same flash knows the host's cursor and counters
    app2 = App(board)
    assert app2.state.v["host_cursor"] == 30 and app2.state.v["lt_last"] == 30
    assert app2.link.cursors == {777: 30}


def test_release_ends_the_loop_and_hands_the_port_back(setup):
    board, app, host = setup
    released = []
    board.release = lambda: released.append(board.t)

    def wait(ms):  # the board's sleep: the line and the host run meanwhile
        board.t += max(1, ms)
        if board.tx:
            host.link.receive(bytes(board.tx), board.t)
            board.tx.clear()
        host.pump()
        while (f := host.link.poll(board.t)) is not None:
            board.rx += f
        assert board.t < 100_000, "run() did not return"

    board.wait = wait
    host.link.send({m.K_TYPE: m.T_RELEASE})
    while (f := host.link.poll(board.t)) is not None:
        board.rx += f
    app.run()
    assert released and app.release_requested
    # the RELEASE itself was acknowledged before the firmware let go
    run(board, app, host, 50)
    assert not host.link.queued()


def test_generator_position_is_repaired_from_the_journal_after_a_reset(tmp_path):
    (tmp_path / "f").mkdir()
    board = Board(tmp_path / "f")
    app = App(board)
    v = app.state.v
    v["gen_target"], v["gen_size"] = 5, 10
    app.state.save()
    app._generate()
    assert v["gen_n"] == 5
    # a reset hit between the journal append of n=5 and the save of the generator position
    v["gen_n"] = 4
    app.state.save()
    app2 = App(board)
    assert app2.state.v["gen_n"] == 5  # n=5 is in the journal: it is not made again
    app2._generate()
    assert app2.journal.pending() == 5


def test_durable_generator_request_is_saved_before_it_is_acknowledged(setup, tmp_path):
    board, app, host = setup
    host.link.send({m.K_TYPE: m.T_LINKTEST_GEN, m.K_LTG_COUNT: 3, m.K_LTG_SIZE: 8}, rid=41)
    run(board, app, host, 300, lambda: len(host.of_type(m.T_LINKTEST)) >= 3)
    from smgwfw.journal import State

    saved = State(str(Path(board.STORAGE) / "state.bin")).v
    assert saved["host_cursor"] == 41 and saved["gen_target"] == 3 and saved["gen_n"] == 3


class MeterPort:
    """The wired LMN port: hands out whatever bytes the test put there, all in one read."""

    def __init__(self):
        self.buf = bytearray()

    def read(self):
        data = bytes(self.buf)
        self.buf.clear()
        return data or None


def test_a_burst_of_meter_frames_in_one_read_is_captured_whole(tmp_path):
    # A UART buffer read late can hold more frames than the detector's queue: every one of
    # them must still reach the journal, in order, with its check result.
    import json

    vectors = json.loads((Path(__file__).parents[1] / "vectors" / "sml_frames.json").read_text())
    frame = next(bytes.fromhex(v["hex"]) for v in vectors if v["check"] == "x25")
    (tmp_path / "flash").mkdir()
    board = Board(tmp_path / "flash")
    port = MeterPort()
    board.lmn_port = lambda: port
    app = App(board)
    host = Host()
    assert run(board, app, host, 3000, lambda: host.link.up and app.link.up)
    port.buf += frame * 12
    assert run(board, app, host, 3000, lambda: len(host.of_type(m.T_RECORD)) >= 12)
    recs = host.of_type(m.T_RECORD)
    assert len(recs) == 12
    assert all(r[m.K_REC_BODY] == frame and r[m.K_REC_META]["check"] == "x25" for r in recs)


class BusPort:
    """The HDLC bus: a meter that answers every frame it is sent with a fixed reply."""

    baud = 115200

    def __init__(self, board, reply):
        self.board = board
        self.reply = reply
        self.sent = []
        self.rx = bytearray()

    def read(self):
        data = bytes(self.rx)
        self.rx.clear()
        return data or None

    def send(self, data):
        self.sent.append(bytes(data))
        self.rx += self.reply
        return len(data)


def test_lmn_tx_is_sent_on_the_bus_and_the_answer_comes_back_in_its_window(tmp_path):
    from smgwfw.crc16 import x25

    def hdlc(dest, src, control):
        head = bytes([0xA0, 7, (dest << 1) | 1, (src << 1) | 1, control])
        f = x25(head)
        return b"\x7e" + head + bytes([f & 0xFF, f >> 8]) + b"\x7e"

    (tmp_path / "flash").mkdir()
    board = Board(tmp_path / "flash")
    bus = BusPort(board, hdlc(0x01, 0x10, 0x73))
    board.lmn_bus = lambda: bus
    app = App(board)
    host = Host()
    assert run(board, app, host, 3000, lambda: host.link.up and app.link.up)
    snrm = hdlc(0x10, 0x01, 0x93)
    host.link.send({m.K_TYPE: m.T_LMN_TX, m.K_LMN_ID: 42, m.K_LMN_FRAME: snrm,
                    m.K_LMN_LISTEN: 30})
    assert run(board, app, host, 2000, lambda: host.of_type(m.T_LMN_DONE))
    assert bus.sent == [snrm]
    (rx,) = host.of_type(m.T_LMN_RX)
    assert rx[m.K_LMN_ID] == 42 and rx[m.K_LMN_FRAME] == bus.reply
    assert rx[m.K_LMN_CHECK] == "x25" and 0 <= rx[m.K_LMN_AT] <= 30
    (done,) = host.of_type(m.T_LMN_DONE)
    assert done[m.K_LMN_COUNT] == 1 and done[m.K_LMN_SENT] is True
    # malformed requests are answered with a specific error, and a board without a bus says so
    host.link.send({m.K_TYPE: m.T_LMN_TX, m.K_LMN_ID: 43, m.K_LMN_FRAME: snrm,
                    m.K_LMN_LISTEN: 99999})
    assert run(board, app, host, 2000, lambda: host.of_type(m.T_ERROR))
    assert host.of_type(m.T_ERROR)[0][m.K_ERROR_CODE] == m.ERR_BAD_FIELD


def test_lmn_tx_on_a_board_without_a_bus_is_not_supported(setup):
    board, app, host = setup
    host.link.send({m.K_TYPE: m.T_LMN_TX, m.K_LMN_ID: 1, m.K_LMN_FRAME: b"\x7e\x7e",
                    m.K_LMN_LISTEN: 10})
    assert run(board, app, host, 2000, lambda: host.of_type(m.T_ERROR))
    assert host.of_type(m.T_ERROR)[0][m.K_ERROR_CODE] == m.ERR_NOT_SUPPORTED
