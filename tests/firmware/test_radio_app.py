"""The radio in the firmware application (smgwfw.app): every telegram becomes a durable
T_RECORD with its meta data, repeated copies are marked, the wMT LED flashes, a full channel's
burst is captured whole, and a radio that cannot start leaves the gateway running."""

from __future__ import annotations

import pytest

from smgwfw import amb8465 as amb
from smgwfw import messages as m
from smgwfw.app import App
from smgwfw.radio import Radio, RxPacket
from test_amb8465 import FakeModule, tel
from test_app import Board, Host, run


class ListRadio(Radio):
    """A radio that hands out the packets the test queued."""

    MODULE = "test"

    def __init__(self):
        super().__init__(lambda: 0)
        self.queue = []
        self.started = 0

    def start_recv(self):
        self.started += 1

    def poll_recv(self, now_ms=None):
        return self.queue.pop(0) if self.queue else None

    def standby(self):
        pass


def up(tmp_path, radio):
    (tmp_path / "flash").mkdir()
    board = Board(tmp_path / "flash")
    board.radio = lambda: radio
    app = App(board)
    host = Host()
    assert run(board, app, host, 3000, lambda: host.link.up and app.link.up)
    return board, app, host


def records(host):
    return [r for r in host.of_type(m.T_RECORD) if r[m.K_REC_SRC] == m.SRC_LMN_WIRELESS]


def test_telegrams_become_records_with_meta_and_copies_are_marked(tmp_path):
    radio = ListRadio()
    board, app, host = up(tmp_path, radio)
    assert radio.started == 1
    host.link.send({m.K_TYPE: m.T_TIME, m.K_TIME_UNIX_MS: 1_800_000_000_000})
    run(board, app, host, 50)
    a, b = tel(40, 1), tel(40, 2)
    t = board.t
    radio.queue += [RxPacket(a, -70, "T1", "A", True, t), RxPacket(a, -81, "T1", "A", True, t + 3),
                    RxPacket(b, -60, "C1", "B", False, t + 4),
                    RxPacket(b, -60, "C1", "B", True, t + 5)]
    assert run(board, app, host, 2000, lambda: len(records(host)) >= 4)
    recs = records(host)
    assert [r[m.K_REC_BODY] for r in recs] == [a, a, b, b]
    metas = [r[m.K_REC_META] for r in recs]
    assert metas[0] == {"proto": "wmbus", "mode": "T1", "frame": "A", "rssi": -70, "crc": "ok",
                        "dup": False, "module": "test"}
    assert metas[1]["dup"] is True and metas[1]["rssi"] == -81
    assert metas[2]["crc"] == "bad" and metas[2]["dup"] is False  # a bad copy is never a dup
    assert metas[3]["dup"] is False and metas[3]["frame"] == "B"  # the first good copy of b
    assert recs[1][m.K_REC_TICK] == t + 3
    off = recs[0][m.K_REC_TIME] - recs[0][m.K_REC_TICK]
    assert all(r[m.K_REC_TIME] - r[m.K_REC_TICK] == off for r in recs)
    assert all(r.get(m.K_RID) for r in recs)  # durable: journalled with a record id


def test_the_wmt_led_flashes_per_telegram(tmp_path):
    radio = ListRadio()
    board, app, host = up(tmp_path, radio)
    host.link.send({m.K_TYPE: m.T_STATE, m.K_STATE_OP: m.OP_NORMAL, m.K_STATE_WAN: m.WAN_UP,
                    m.K_STATE_LMC: m.LMC_NONE})
    run(board, app, host, 3500)  # past the boot sequence
    wmt = board.levels[3]
    assert wmt[-1][1] == 0
    n = len(wmt)
    radio.queue.append(RxPacket(tel(30), -70, "T1", "A", True, board.t))
    t = board.t
    run(board, app, host, 600)
    lit = wmt[n:]
    assert lit[0][1] == 1 and t < lit[0][0] <= t + 2
    assert lit[1][1] == 0 and 240 <= lit[1][0] - lit[0][0] <= 260  # FLASH_MS = 250


def test_status_carries_the_radio_counters(tmp_path):
    radio = ListRadio()
    board, app, host = up(tmp_path, radio)
    radio.queue += [RxPacket(tel(30), -70, "T1", "A", True, 1)] * 3
    run(board, app, host, 100)
    host.link.send({m.K_TYPE: m.T_GET_STATUS})
    assert run(board, app, host, 500, lambda: len(host.of_type(m.T_STATUS)) >= 2)
    c = host.of_type(m.T_STATUS)[-1][m.K_STATUS_COUNTERS]
    assert c["radio_dups"] == 2 and "radio_telegrams" in c


def test_amb8465_burst_of_a_full_channel_reaches_the_host_in_order(tmp_path):
    # 70 telegrams of 100 bytes per second: two seconds of them in the UART at once
    mod = FakeModule({0x05: 1, 0x45: 1})
    radio = amb.Amb8465(mod, ticks_ms=lambda: 0)
    board, app, host = up(tmp_path, radio)
    assert radio.ready() and mod.mode == 0x08
    sent = [tel(99, i) for i in range(140)]
    for t in sent:
        mod.indicate(t, 0x10)
    assert run(board, app, host, 20000, lambda: len(records(host)) >= 140)
    recs = records(host)
    assert [r[m.K_REC_BODY] for r in recs] == sent
    assert {r[m.K_REC_META]["module"] for r in recs} == {"amb8465"}
    assert all(r[m.K_REC_META]["rssi"] == -66 and r[m.K_REC_META]["crc"] == "ok" for r in recs)
    assert app.dropped == 0


@pytest.mark.parametrize("fail", ["build", "start"])
def test_a_radio_that_cannot_start_is_reported_and_the_gateway_runs_on(tmp_path, fail):
    class Broken(ListRadio):
        def start_recv(self):
            raise OSError("CC1101 not answering (PARTNUM 0xff, VERSION 0xff)")

    (tmp_path / "flash").mkdir()
    board = Board(tmp_path / "flash")
    if fail == "build":
        def make():
            raise AttributeError("'module' object has no attribute 'SPI'")

        board.radio = make
    else:
        board.radio = Broken
    app = App(board)
    host = Host()
    assert app.radio is None
    assert run(board, app, host, 3000, lambda: host.of_type(m.T_EVENT) and any(
        e[m.K_EVENT_CODE] == m.EV_RADIO_ERROR for e in host.of_type(m.T_EVENT)))
    ev = [e for e in host.of_type(m.T_EVENT) if e[m.K_EVENT_CODE] == m.EV_RADIO_ERROR][0]
    assert ev[m.K_EVENT_PARAMS][0] in ("OSError", "AttributeError")


def test_a_board_without_a_radio(tmp_path):
    board, app, host = up(tmp_path, None)
    assert app.radio is None and app.radio_error is None


def test_mcu_builds_the_driver_from_the_radio_facts(monkeypatch):
    import sys
    import types

    from smgwfw import cc1101, mcu

    made = []

    class Pin:
        IN, OUT = 0, 1

        def __init__(self, pin, mode=-1, value=None):
            self.pin, self.mode, self.level = pin, mode, value

        def value(self, v=None):
            if v is None:
                return self.level
            self.level = v

    class Bus:
        def __init__(self, kind):
            self.kind = kind

        def __call__(self, bus_id, **kw):
            made.append((self.kind, bus_id, kw))
            return types.SimpleNamespace(kind=self.kind)

    machine = types.SimpleNamespace(Pin=Pin, UART=Bus("uart"), SPI=Bus("spi"))
    monkeypatch.setitem(sys.modules, "machine", machine)
    pico = {"kind": "uart_module", "module": "amb8465", "uart": 0, "tx": 0, "rx": 1,
            "baud": 9600, "reset": 2}
    m = mcu.Mcu({"RADIO": pico})
    r = m.radio()
    assert isinstance(r, amb.Amb8465) and m.radio() is r
    kind, bus_id, kw = made[0]
    assert (kind, bus_id, kw["baudrate"], kw["timeout"], kw["rxbuf"]) == ("uart", 0, 9600, 0, 320)
    assert (kw["tx"].pin, kw["rx"].pin) == (0, 1)
    assert (r.reset_pin.pin, r.reset_pin.mode, r.reset_pin.level) == (2, Pin.OUT, 1)
    esp = {"kind": "spi", "chip": "cc1101", "spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5,
           "gdo0": 4, "gdo2": 2}
    r = mcu.Mcu({"RADIO": esp}).radio()
    assert isinstance(r, cc1101.CC1101)
    kind, bus_id, kw = made[1]
    assert (kind, bus_id, kw["baudrate"], kw["polarity"], kw["phase"]) == ("spi", 2, 4000000, 0, 0)
    assert (kw["sck"].pin, kw["mosi"].pin, kw["miso"].pin) == (18, 23, 19)
    assert (r.cs.pin, r.cs.mode, r.cs.level) == (5, Pin.OUT, 1)
    assert (r.gdo0.pin, r.gdo0.mode, r.gdo2.pin) == (4, Pin.IN, 2)
    assert mcu.Mcu({"RADIO": dict(pico, module="im871a")}).radio() is None  # no driver yet
    assert mcu.Mcu({"RADIO": None}).radio() is None and mcu.Mcu({}).radio() is None
