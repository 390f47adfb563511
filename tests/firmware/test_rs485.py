"""Half-duplex RS-485 port (smgwfw.rs485) against a fake UART, DE pin and microsecond clock that
model when each stop bit physically leaves the wire: DE must be active before the first start
bit and stay active until the last stop bit is out, and no longer than the margin."""

import pytest

from smgwfw import rs485


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def ticks_us(self):
        return self.t

    def sleep_us(self, us):
        assert us >= 0
        self.t += us


class Pin:
    def __init__(self, clock, log, name="de"):
        self.clock, self.log, self.name = clock, log, name
        self.level = None

    def value(self, v):
        self.level = v
        self.log.append((self.clock.t, self.name, v))


class Uart:
    """Transmits at baud: a write() starts when the line is free; flush() returns when the last
    stop bit has gone ("exact"), one character earlier ("early", as esp8266/nrf) or late_us
    later; flush=None models a port without flush(). accept limits the bytes per write()."""

    def __init__(self, clock, log, baud, bits=10, flush="exact", late_us=0, accept=None,
                 stall=0):
        self.clock, self.log = clock, log
        self.char = bits * 1e6 / baud  # exact, not rounded
        self.busy_until = 0.0
        self.mode, self.late_us, self.accept, self.stall = flush, late_us, accept, stall
        self.tx = []  # (first start bit, last stop bit end, bytes)
        self.rx = bytearray()

    def write(self, buf):
        if self.stall:
            self.stall -= 1
            return None
        data = bytes(buf[: self.accept] if self.accept else buf)
        start = max(self.clock.t, self.busy_until)
        self.busy_until = start + len(data) * self.char
        self.tx.append((start, self.busy_until, data))
        self.log.append((self.clock.t, "write", len(data)))
        return len(data)

    def flush(self):
        end = self.busy_until + (self.late_us if self.mode == "exact" else -self.char)
        self.clock.t = max(self.clock.t, int(end + 0.999))

    def read(self):
        if not self.rx:
            return None
        data = bytes(self.rx)
        self.rx.clear()
        return data


class UartWithoutFlush(Uart):
    flush = None  # what getattr(uart, "flush", None) sees on a port without flush()


def make(baud=9600, de=True, **kw):
    clock = Clock()
    log = []
    port_kw = {k: kw.pop(k) for k in list(kw) if k in ("turnaround_us", "margin_us", "settle_us")}
    uart = (UartWithoutFlush if kw.get("flush", "exact") is None else Uart)(clock, log, baud, **kw)
    pin = Pin(clock, log) if de else None
    port = rs485.Rs485(uart, pin, baud, ticks_us=clock.ticks_us, sleep_us=clock.sleep_us,
                       **port_kw)
    return port, uart, pin, clock, log


def de_edges(log):
    return [(t, v) for t, name, v in log if name == "de"]


def check_timeline(uart, log, margin_us):
    # DE rose before the first start bit and fell after the last stop bit, within the margin
    edges = de_edges(log)
    rise = [t for t, v in edges if v == 1][-1]
    fall = [t for t, v in edges if v == 0][-1]
    first = min(s for s, _, _ in uart.tx)
    last = max(e for _, e, _ in uart.tx)
    assert rise <= first
    assert fall >= last
    return fall - last


def test_constructor_releases_the_bus():
    port, uart, pin, clock, log = make()
    assert pin.level == 0 and de_edges(log) == [(1000, 0)]


def test_send_with_exact_flush():
    port, uart, pin, clock, log = make()
    clock.t += 10_000  # the bus has been quiet for long
    log.clear()
    assert port.send(b"\x7e" + bytes(40) + b"\x7e") == 42
    extra = check_timeline(uart, log, port.margin_us)
    assert extra <= port.bit_us + 1  # released one bit time after the stop bit
    assert pin.level == 0
    assert [name for _, name, _ in log] == ["de", "write", "de"]


def test_early_flush_needs_the_measured_margin():
    # esp8266/nrf: flush() returns while the last byte is still going out
    port, uart, pin, clock, log = make(flush="early")
    clock.t += 10_000
    port.send(b"0123456789")
    fall = de_edges(log)[-1][0]
    assert fall < uart.tx[-1][1]  # with one bit of margin DE drops inside the last character
    result = port.measure_flush()
    assert result["theory_us"] == 32 * port.char_us
    assert result["margin_us"] == port.margin_us >= port.char_us
    assert result["late_us"] == 0
    assert pin.level == 0  # calibration never drove the bus
    log.clear()
    uart.tx.clear()
    port.send(b"0123456789")
    extra = check_timeline(uart, log, port.margin_us)
    assert 0 <= extra <= 2 * port.bit_us


def test_late_flush_is_reported():
    port, uart, pin, clock, log = make(late_us=400)
    result = port.measure_flush(rounds=2)
    assert result["late_us"] >= 400 - 32  # theory counts whole microseconds per character
    assert result["margin_us"] == port.bit_us  # nothing to add: flush already waits long enough
    assert [v for _, v in de_edges(log)] == [0, 0]  # DE stayed released


def test_measure_flush_with_explicit_clock_functions():
    port, uart, pin, clock, log = make(flush="early")
    result = port.measure_flush(clock.ticks_us, clock.sleep_us, n=8, rounds=1)
    assert result["theory_us"] == 8 * port.char_us
    assert result["margin_us"] >= port.char_us


def test_no_flush_uses_the_computed_frame_time():
    port, uart, pin, clock, log = make(flush=None)
    assert port._flush is None
    clock.t += 10_000
    port.send(b"x" * 25)
    extra = check_timeline(uart, log, port.margin_us)
    assert extra <= port.bit_us + 25  # char_us is rounded up: at most 1 us per character
    assert port.measure_flush()["margin_us"] == port.bit_us


def test_turnaround_after_receiving():
    port, uart, pin, clock, log = make(turnaround_us=5000)
    uart.rx += b"answer"
    t_rx = clock.t
    assert port.read() == b"answer"
    assert port.read() is None
    port.send(b"next")
    rise = [t for t, v in de_edges(log) if v == 1][0]
    assert rise >= t_rx + 5000


def test_default_turnaround_is_three_and_a_half_characters():
    port, *_ = make()
    assert port.char_us == 1042 and port.bit_us == 105
    assert port.turnaround_us == 3647


def test_back_to_back_sends_keep_the_turnaround():
    port, uart, pin, clock, log = make(turnaround_us=2000)
    clock.t += 10_000
    port.send(b"a")
    end1 = de_edges(log)[-1][0]
    port.send(b"b")
    rise2 = de_edges(log)[-2][0]
    assert rise2 >= end1 + 2000


def test_partial_writes_and_stalls():
    port, uart, pin, clock, log = make(accept=7, stall=3)
    clock.t += 10_000
    data = bytes(range(30))
    assert port.send(data) == 30
    assert b"".join(d for _, _, d in uart.tx) == data
    check_timeline(uart, log, port.margin_us)


def test_write_that_never_progresses_gives_up_and_releases():
    port, uart, pin, clock, log = make(stall=10**6)
    clock.t += 10_000
    assert port.send(b"abc") == 0
    assert port.timeouts == 1 and pin.level == 0


def test_bus_released_when_write_raises():
    port, uart, pin, clock, log = make()

    def boom(buf):
        raise OSError(5)

    uart.write = boom
    with pytest.raises(OSError):
        port.send(b"abc")
    assert pin.level == 0


def test_automatic_direction_control_needs_no_pin():
    port, uart, pin, clock, log = make(de=False)
    clock.t += 10_000
    assert port.send(b"hello") == 5
    assert clock.t >= uart.tx[-1][1]  # still waits until sent, for the turnaround


def test_settle_time_before_the_first_start_bit():
    port, uart, pin, clock, log = make(settle_us=50)
    clock.t += 10_000
    port.send(b"z")
    rise = [t for t, v in de_edges(log) if v == 1][0]
    assert uart.tx[0][0] >= rise + 50


def test_clock_wrap():
    port, uart, pin, clock, log = make(turnaround_us=1000)
    clock.t = (1 << 30) - 100
    uart.rx += b"x"
    port.read()
    clock.t = 50  # wrapped: 150 us later
    port.send(b"y")
    rise = [t for t, v in de_edges(log) if v == 1][0]
    assert rise == 50 + 850


@pytest.mark.parametrize("baud,latency,expect", [(9600, 200, 320), (9600, 10, 64),
                                                 (115200, 100, 1728), (2400, 1000, 384)])
def test_rxbuf_for(baud, latency, expect):
    assert rs485.rxbuf_for(baud, latency) == expect
    chars = baud * latency / 10000
    assert expect >= chars * 1.5 or expect == 64


def test_char_us():
    assert rs485.char_us(9600) == 1042
    assert rs485.char_us(9600, 11) == 1146
    assert rs485.char_us(115200) == 87


class FakeMachine:
    def __init__(self):
        self.made = []
        outer = self

        class Pin:
            OUT = 1

            def __init__(self, n, mode=None):
                self.n, self.mode, self.v = n, mode, None
                outer.made.append(("pin", n, mode))

            def value(self, v):
                self.v = v

        class Signal:
            def __init__(self, pin, invert=False):
                self.pin, self.invert = pin, invert
                outer.made.append(("signal", pin.n, invert))

            def value(self, v):
                self.pin.value((1 - v) if self.invert else v)

        class UART:
            def __init__(self, n, **kw):
                self.n, self.kw = n, kw
                outer.made.append(("uart", n, sorted((k, v if isinstance(v, int) else v.n)
                                                    for k, v in kw.items())))

            def write(self, buf):
                return len(buf)

            def flush(self):
                pass

            def read(self):
                return None

        self.Pin, self.Signal, self.UART = Pin, Signal, UART


def board_rs485(name):
    # the RS485 literal of boards/<name>/board.py, read without running the board module
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[2] / "boards" / name / "board.py")
                     .read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RS485":
            return ast.literal_eval(node.value)
    raise AssertionError("no RS485 in board " + name)


@pytest.mark.parametrize("board", ["pico", "esp32"])
def test_open_port_from_board_facts(board):
    facts = board_rs485(board)
    m = FakeMachine()
    port = rs485.open_port(facts, machine=m)
    assert port.baud == facts["baud_default"]
    uart = [x for x in m.made if x[0] == "uart"][0]
    assert uart[1] == facts["uart"]
    assert dict(uart[2]) == {"baudrate": 9600, "tx": facts["tx"], "rx": facts["rx"],
                             "timeout": 0, "rxbuf": rs485.rxbuf_for(9600, 200)}
    assert ("signal", facts["de"], False) in m.made
    assert port.de.pin.v == 0  # released at once


def test_open_port_active_low_de_and_separate_re():
    facts = {"uart": 0, "tx": 1, "rx": 2, "de": 3, "re": 4, "de_active_high": False,
             "baud_default": 2400}
    m = FakeMachine()
    port = rs485.open_port(facts, baud=19200, machine=m, turnaround_us=10)
    assert port.baud == 19200 and port.turnaround_us == 10
    assert ("signal", 3, True) in m.made and ("signal", 4, True) in m.made
    assert port.de.a.pin.v == 1 and port.de.b.pin.v == 1  # inverted: physical high = released
    port.send(b"x")
    assert port.de.a.pin.v == 1 and port.de.b.pin.v == 1


def test_open_port_without_machine_module():
    with pytest.raises(ValueError):
        rs485.open_port({"uart": 0, "tx": 1, "rx": 2, "de": 3, "re": None,
                         "de_active_high": True, "baud_default": 9600})
