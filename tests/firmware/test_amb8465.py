"""The AMB8465-M UART command interface (smgwfw.amb8465, docs/amb8465.md): the manual's own
frame examples, the frame parser fed whole, byte by byte and in random chunks, with garbage, bad
checksums and false starts (it never raises, never grows and always recovers), and the driver's
start-up against a fake UART that answers like a module."""

import random
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import amb8465 as amb
from smgwfw.radio import ConfigError, rssi_dbm


def xor(data):
    return reduce(lambda a, b: a ^ b, data, 0)


def mk(cmd, payload=b""):
    # a frame built here, independently of the code under test
    body = bytes([0xFF, cmd, len(payload)]) + bytes(payload)
    return body + bytes([xor(body)])


def ind(telegram, raw_rssi=0x08):
    return mk(0x03, telegram + bytes([raw_rssi]))


def tel(n, seed=0):
    rng = random.Random(seed)
    body = bytes([0x44]) + bytes(rng.randrange(256) for _ in range(n - 1))
    return bytes([n]) + body  # L-field first


# ------------------------------------------------------------------------------ framing

def test_frames_match_the_manuals_examples():
    # AMB8426-M manual §7 (the command set the AMB8465-M shares) and wmbusmeters' asserts
    assert amb.frame(0x0A, b"\x00\x80") == bytes.fromhex("FF0A02008077")  # GET all params
    assert amb.frame(0x0B) == bytes.fromhex("FF0B00F4")  # CMD_SERIALNO_REQ
    assert amb.frame(0x05) == bytes.fromhex("FF0500FA")  # CMD_RESET_REQ
    assert amb.frame(0x0C) == bytes.fromhex("FF0C00F3")  # CMD_FWV_REQ
    assert amb.frame(0x0D) == bytes.fromhex("FF0D00F2")  # CMD_RSSI_REQ
    assert amb.frame(0x11) == bytes.fromhex("FF1100EE")  # CMD_FACTORYRESET_REQ
    assert amb.frame(0x06, b"\x0b") == bytes.fromhex("FF06010BF3")  # channel 11
    assert xor(bytes.fromhex("FF86010B")) == 0x73  # its confirmation
    assert amb.checksum(bytes.fromhex("FF8C03020006")) == 0x74  # FW 2.0.6 confirmation


def test_the_commands_the_driver_sends():
    assert amb.frame(amb.CMD_SET_MODE_REQ, b"\x08") == mk(0x04, b"\x08")
    assert amb.frame(amb.CMD_SET_REQ, bytes([0x45, 1, 1])) == bytes.fromhex("FF0903450101B0")
    assert amb.frame(amb.CMD_GET_REQ, bytes([0x45, 1])) == bytes.fromhex("FF0A024501B3")
    assert amb.frame(amb.CMD_SET_REQ, bytes([0x05, 1, 1])) == bytes.fromhex("FF0903050101F0")
    assert amb.frame(amb.CMD_GET_REQ, bytes([0x05, 1])) == bytes.fromhex("FF0A020501F3")
    assert amb.MODE_CODES == {"S1": 0x03, "T1": 0x08, "C1": 0x0E}


@pytest.mark.parametrize("raw,dbm", [(0x08, -70), (0x00, -74), (0xFF, -74), (0xFE, -75),
                                     (0xCC, -100), (0x80, -138), (0x7F, -11), (0x01, -74),
                                     (0x94, -128)])
def test_rssi_formula(raw, dbm):
    assert rssi_dbm(raw) == dbm


def test_rssi_round_trip_for_integer_dbm():
    for d in range(-138, -10):
        assert rssi_dbm((2 * (d + 74)) & 0xFF) == d


# ------------------------------------------------------------------------------ the parser

def collect(p, data, t=0, chunks=None):
    # feeds data (in the given chunk sizes), returns [(cmd, payload)] of every frame found
    out = []
    i = 0
    sizes = chunks or [len(data)]
    k = 0
    while i < len(data):
        end = min(len(data), i + sizes[k % len(sizes)])
        k += 1
        while i < end:
            i = p.feed(data, i, end, t)
            while p.ready:
                out.append((p.cmd(), bytes(p.payload())))
                p.consume()
        assert p.held() <= amb.MAX_FRAME
    return out


FRAMES = [ind(tel(30)), mk(0x84, b"\x00"), ind(tel(100, 1), 0xCC), mk(0x8A, b"\x45\x01\x01"),
          ind(tel(252, 2)), mk(0x89, b"\x00")]
STREAM = b"".join(FRAMES)
EXPECT = [(f[1], f[3:-1]) for f in FRAMES]


def test_parser_whole_byte_by_byte_and_with_trailing_bytes():
    assert collect(amb.Parser(), STREAM) == EXPECT
    assert collect(amb.Parser(), STREAM, chunks=[1]) == EXPECT
    p = amb.Parser()
    assert collect(p, STREAM + b"\xff\x03") == EXPECT and p.held() == 2  # the next one begun
    for seed in range(20):
        rng = random.Random(seed)
        assert collect(amb.Parser(), STREAM, chunks=[rng.randint(1, 300) for _ in range(9)]) \
            == EXPECT


def test_feed_stops_after_each_frame_and_keeps_the_rest_for_later():
    p = amb.Parser()
    i = p.feed(STREAM, 0, len(STREAM), 5)
    assert i == len(FRAMES[0]) and p.ready and p.t0 == 5
    assert p.feed(STREAM, i, len(STREAM), 6) == i  # nothing taken while a frame waits
    p.consume()
    assert p.feed(STREAM, i, len(STREAM), 7) == i + len(FRAMES[1])


def test_garbage_bad_checksums_and_unknown_commands_are_counted_and_skipped():
    bad = bytearray(ind(tel(40)))
    bad[10] ^= 0x20
    data = (b"\x00\x12garbage" + bytes(bad) + b"\xff\x55\x01\x02\x03" + b"\xff\x03\x02"
            + FRAMES[1] + b"\xff\xff" + FRAMES[0])
    p = amb.Parser()
    assert collect(p, data) == [EXPECT[1], EXPECT[0]]
    c = p.counters
    assert c["bad_cs"] == 1 and c["bad_cmd"] >= 2 and c["bad_len"] == 1 and c["frames"] == 2
    assert c["garbage_bytes"] > 0


def test_a_false_start_does_not_hide_the_frames_behind_it():
    # garbage ending in FF 03 F0 announces 240 payload bytes: the real frames inside it are
    # found when its checksum fails ...
    data = b"\xff\x03\xf0" + STREAM
    assert collect(amb.Parser(), data) == EXPECT
    # ... or, if the line goes quiet before it completes, when it times out
    p = amb.Parser(timeout_ms=100)
    short = b"\xff\x03\xf0" + FRAMES[1] + FRAMES[3]
    assert collect(p, short, t=0) == []
    p.poll(50)
    assert not p.ready
    p.poll(101)
    got = []
    while p.ready:
        got.append((p.cmd(), bytes(p.payload())))
        p.consume()
    assert got == [EXPECT[1], EXPECT[3]] and p.counters["timeouts"] == 1 and p.held() == 0


def test_timeout_drops_a_frame_that_stopped_arriving():
    p = amb.Parser(timeout_ms=100)
    assert collect(p, FRAMES[2][:50], t=1000) == []
    p.poll(1100)
    assert p.held() == 50  # not yet
    p.poll(1101)
    assert p.held() == 0 and p.counters["timeouts"] == 1
    assert collect(p, FRAMES[0], t=1200) == [EXPECT[0]]


frames_st = st.sampled_from(FRAMES)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.lists(frames_st, min_size=1, max_size=5),
       st.lists(st.integers(1, 80), min_size=1, max_size=8))
def test_random_garbage_never_raises_never_grows_and_always_recovers(garbage, good, chunks):
    p = amb.Parser(timeout_ms=100)
    collect(p, garbage, t=0, chunks=chunks)  # whatever the garbage held is ignored
    p.poll(200)  # the line was quiet
    while p.ready:
        p.consume()
    assert p.held() == 0
    data = b"".join(good)
    assert collect(p, data, t=300, chunks=chunks) == [(f[1], f[3:-1]) for f in good]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(frames_st, st.binary(max_size=20)), max_size=12),
       st.lists(st.integers(1, 64), min_size=1, max_size=6))
def test_the_result_does_not_depend_on_the_split(parts, chunks):
    data = b"".join(parts)
    assert collect(amb.Parser(), data, chunks=chunks) == collect(amb.Parser(), data)


# ------------------------------------------------------------------------------ the driver

class FakeModule:
    """A UART with an AMB8465 on the other end: answers requests like the module (parameter
    memory, volatile mode, reset), and sends indications when told to."""

    def __init__(self, params=None, answer_get=True, refuse_mode=0):
        self.params = {0x05: 0, 0x45: 0} if params is None else dict(params)
        self.flash = dict(self.params)  # what a reset loads
        self.answer_get = answer_get
        self.refuse_mode = refuse_mode  # SET_MODE requests answered with status 1
        self.mode = None
        self.out = bytearray()
        self.log = []
        self.writes = 0

    def readinto(self, buf):
        n = min(len(buf), len(self.out))
        if not n:
            return None
        buf[:n] = self.out[:n]
        del self.out[:n]
        return n

    def write(self, data):
        data = bytes(data)
        assert data[0] == 0xFF and len(data) == data[2] + 4 and xor(data[:-1]) == data[-1]
        cmd, pl = data[1], data[3:-1]
        self.log.append(data.hex())
        if cmd == 0x0A:
            if self.answer_get:
                addr, n = pl
                self.out += mk(0x8A, bytes([addr, n]) + bytes(
                    self.params.get(addr + i, 0xFF) for i in range(n)))
        elif cmd == 0x09:
            addr, n = pl[0], pl[1]
            for i in range(n):
                self.flash[addr + i] = pl[2 + i]
            self.writes += 1
            self.out += mk(0x89, b"\x00")
        elif cmd == 0x05:
            self.out += mk(0x85, b"\x00")
            self.params = dict(self.flash)
            self.mode = None
        elif cmd == 0x04:
            if self.refuse_mode:
                self.refuse_mode -= 1
                self.out += mk(0x84, b"\x01")
            else:
                self.mode = pl[0]
                self.out += mk(0x84, b"\x00")
        return len(data)

    def indicate(self, telegram, raw=0x08):
        if self.params.get(0x05) == 1 and self.params.get(0x45) == 1:
            self.out += ind(telegram, raw)


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def run(r, clock, ms, step=1):
    out = []
    for _ in range(0, ms, step):
        clock.t += step
        while (p := r.poll_recv(clock.t)) is not None:
            out.append(p)
    return out


def cmds(mod):
    return [h[2:4] for h in mod.log]


def test_startup_of_a_factory_fresh_module_writes_both_parameters_once():
    mod, clock = FakeModule(), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 2000, 10)
    assert cmds(mod) == ["0a", "0a", "09", "09", "05", "04"]
    assert mod.log[2] == mk(0x09, b"\x05\x01\x01").hex()
    assert mod.log[3] == mk(0x09, b"\x45\x01\x01").hex()
    assert mod.log[5] == mk(0x04, b"\x08").hex() and mod.mode == 0x08
    assert r.ready() and r.counters["config_writes"] == 2 and r.counters["resets"] == 1
    # a second start finds the parameters set: no flash writes, no reset
    mod.log.clear()
    r.start_recv(clock.t)
    run(r, clock, 100)
    assert cmds(mod) == ["0a", "0a", "04"] and mod.writes == 2 and r.ready()


def test_telegrams_become_packets_with_rssi_mode_and_time():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    mod.indicate(tel(30, 9))  # before the mode is set: dropped
    run(r, clock, 50)
    assert r.counters["not_ready"] == 1 and r.ready()
    clock.t = 777
    mod.indicate(tel(30, 9), 0xCC)
    (p,) = run(r, clock, 1)
    assert p.data == tel(30, 9) and p.rssi_dbm == -100 and p.mode == "T1" and p.frame == "A"
    assert p.crc_ok is True and p.tick_ms == 778 and r.counters["telegrams"] == 1


def test_a_burst_of_telegrams_in_the_uart_comes_out_whole_and_in_order():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 10)
    sent = [tel(100, i) for i in range(140)]  # two seconds of a full T1 channel
    for t in sent:
        mod.indicate(t, 0x10)
    got = run(r, clock, 1)
    assert [p.data for p in got] == sent and all(p.rssi_dbm == -66 for p in got)


def test_mode_change_while_receiving_and_c1_has_no_frame_format():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 10)
    r.set_mode("C1")
    run(r, clock, 10)
    assert mod.mode == 0x0E and r.ready()
    mod.indicate(tel(40))
    (p,) = run(r, clock, 1)
    assert p.mode == "C1" and p.frame == "?"
    r.set_mode("S1")
    run(r, clock, 10)
    assert mod.mode == 0x03
    with pytest.raises(ConfigError):
        r.set_mode("N1")


def test_a_module_that_ignores_get_is_configured_anyway():
    mod, clock = FakeModule(answer_get=False), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock, cnf_ms=100)
    r.start_recv()
    run(r, clock, 1000, 5)
    assert cmds(mod) == ["0a", "0a", "09", "09", "05", "04"] and r.ready()


def test_refused_mode_is_retried_then_the_startup_starts_over():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}, refuse_mode=3), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock, backoff_ms=1000)
    r.start_recv()
    run(r, clock, 100)
    assert cmds(mod) == ["0a", "0a", "04", "04", "04"] and not r.ready()
    assert r.counters["retries"] == 2 and r.counters["startup_failures"] == 1
    run(r, clock, 1100, 10)
    assert cmds(mod)[5:] == ["0a", "0a", "04"] and r.ready()


def test_silent_module_backs_off_and_tries_again():
    class Dead:
        def __init__(self):
            self.sent = []

        def readinto(self, buf):
            return None

        def write(self, data):
            self.sent.append(bytes(data))
            return len(data)

    dead, clock = Dead(), Clock()
    r = amb.Amb8465(dead, ticks_ms=clock, cnf_ms=100, backoff_ms=1000)
    r.start_recv()
    run(r, clock, 1400, 10)
    # two unanswered reads (no retries), the first write three times, then nothing ...
    assert [d[1] for d in dead.sent] == [0x0A, 0x0A, 0x09, 0x09, 0x09]
    assert r.counters["startup_failures"] == 1 and not r.ready()
    run(r, clock, 150, 10)  # ... until the back-off is over
    assert [d[1] for d in dead.sent[5:]] == [0x0A]


def test_reset_pin_is_pulsed_before_anything_is_sent():
    class Pin:
        def __init__(self):
            self.levels = []

        def value(self, v):
            self.levels.append((clock.t, v))

    mod, clock, pin = FakeModule({0x05: 1, 0x45: 1}), Clock(), Pin()
    r = amb.Amb8465(mod, reset=pin, ticks_ms=clock, boot_ms=300)
    r.start_recv()
    run(r, clock, 200)
    assert pin.levels == [(0, 1), (0, 0), (2, 1)] and mod.log == []
    run(r, clock, 200)
    assert cmds(mod) == ["0a", "0a", "04"] and r.ready()


def test_wrong_l_field_and_the_no_l_variant():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 10)
    bad = bytes([0x20]) + tel(30)[1:]
    mod.indicate(bad)
    (p,) = run(r, clock, 1)
    assert p.crc_ok is False and p.data == bad and r.counters["bad_l"] == 1
    # a module whose indications carry no L-field: the driver puts it back
    r2 = amb.Amb8465(mod, ticks_ms=clock, l_field=False)
    r2.start_recv(clock.t)
    run(r2, clock, 10)
    mod.out += ind(tel(30)[1:], 0x08)
    (p,) = run(r2, clock, 1)
    assert p.data == tel(30) and p.crc_ok


def test_unexpected_confirmations_and_standby():
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 10)
    mod.out += mk(0x8D, b"\x10")
    r.standby()
    mod.indicate(tel(20))
    assert run(r, clock, 10) == []
    assert r.counters["unexpected"] == 1 and r.counters["not_ready"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([ind(tel(30)), ind(tel(60))])),
                max_size=15))
def test_the_driver_never_raises_on_any_uart_input(parts):
    mod, clock = FakeModule({0x05: 1, 0x45: 1}), Clock()
    r = amb.Amb8465(mod, ticks_ms=clock)
    r.start_recv()
    run(r, clock, 10)
    for part in parts:
        mod.out += part
        for p in run(r, clock, 1):
            assert isinstance(p.data, bytes) and -138 <= p.rssi_dbm <= -11
    clock.t += 1000
    run(r, clock, 1)
    mod.indicate(tel(50, 3))
    assert [p.data for p in run(r, clock, 1)] == [tel(50, 3)]
