"""The pty 'cable' between host and sim firmware: real pseudo-terminals, opened with pyserial the
way the host and the sim board open them."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest
import serial

from smgw.sim.ptybridge import LineStats, Noise, PtyBridge

ALL_BYTES = bytes(range(256))


@pytest.fixture
def bridge():
    b = PtyBridge().start()
    yield b
    b.close()


def open_port(port: str, timeout: float = 2.0) -> serial.Serial:
    return serial.serial_for_url(port, timeout=timeout, write_timeout=10)


def read_exactly(port: serial.Serial, n: int, timeout: float = 5.0) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < n and time.monotonic() < deadline:
        buf += port.read(n - len(buf))
    return bytes(buf)


def read_until_quiet(port: serial.Serial, quiet: float = 0.5, limit: float = 20.0) -> bytes:
    """Reads until nothing arrived for ``quiet`` seconds."""
    buf = bytearray()
    port.timeout = quiet
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        chunk = port.read(65536)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------ transparent relay


def test_ports_are_distinct_tty_devices(bridge):
    assert bridge.port_a != bridge.port_b
    assert bridge.port_a.startswith("/dev/") and bridge.port_b.startswith("/dev/")


@pytest.mark.parametrize("direction", ["a_to_b", "b_to_a"])
def test_every_byte_value_passes_unchanged(bridge, direction):
    a, b = open_port(bridge.port_a), open_port(bridge.port_b)
    try:
        src, dst = (a, b) if direction == "a_to_b" else (b, a)
        # control characters a cooked tty would eat or translate: ^C (INTR), ^D (EOF), ^Q/^S
        # (XON/XOFF), CR/LF, DEL, NUL, and 0xff (PARMRK escape)
        payload = ALL_BYTES + b"\x03\x00\x03\x04\x11\x13\r\n\x7f\xff\x00" + ALL_BYTES[::-1]
        src.write(payload)
        got = read_exactly(dst, len(payload))
        assert got == payload
        # raw mode: nothing echoed back to the writer, nothing extra on the reader
        src.timeout = 0.3
        dst.timeout = 0.3
        assert src.read(4096) == b""
        assert dst.read(4096) == b""
        if direction == "a_to_b":
            assert bridge.stats.bytes_a_to_b == len(payload)
            assert bridge.stats.bytes_b_to_a == 0
        else:
            assert bridge.stats.bytes_b_to_a == len(payload)
            assert bridge.stats.bytes_a_to_b == 0
        assert bridge.stats.overflow == 0
    finally:
        a.close()
        b.close()


def test_both_directions_at_once_stay_separate_and_intact(bridge):
    a, b = open_port(bridge.port_a), open_port(bridge.port_b)
    rng = random.Random(5)
    to_b = rng.randbytes(50_000)
    to_a = rng.randbytes(40_000)
    got: dict[str, bytes] = {}

    def reader(name: str, port: serial.Serial) -> None:
        got[name] = read_until_quiet(port, quiet=1.0)

    threads = [threading.Thread(target=reader, args=("b", b)),
               threading.Thread(target=reader, args=("a", a))]
    try:
        for t in threads:
            t.start()
        # paced (still ~250 kB/s, far above any UART): the pty buffers only a few kB and the
        # bridge drops what does not fit, by design, so an unpaced burst can overflow them
        for i in range(0, 50_000, 500):
            a.write(to_b[i:i + 500])
            b.write(to_a[i:i + 500])
            time.sleep(0.002)
        for t in threads:
            t.join(15)
        st = bridge.stats
        # whatever happened, every byte is accounted for
        assert len(got["a"]) + len(got["b"]) + st.overflow == len(to_a) + len(to_b), st
        assert st.overflow == 0, st
        assert got["b"] == to_b
        assert got["a"] == to_a
        assert st.bytes_a_to_b == len(to_b)
        assert st.bytes_b_to_a == len(to_a)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ noise


def test_noise_with_a_seed_is_deterministic():
    data = random.Random(1).randbytes(20_000)
    outs = []
    for _ in range(2):
        stats = LineStats()
        outs.append((Noise(0.01, 0.01, seed=42).apply(data, stats), vars(stats)))
    assert outs[0] == outs[1]
    other = Noise(0.01, 0.01, seed=43).apply(data, LineStats())
    assert other != outs[0][0]  # the seed matters


def test_noise_is_independent_of_how_the_stream_is_chunked():
    data = random.Random(2).randbytes(30_000)
    whole = Noise(0.02, 0.02, seed=9).apply(data, LineStats())
    n = Noise(0.02, 0.02, seed=9)
    parts = b"".join(n.apply(data[i:i + 777], LineStats()) for i in range(0, len(data), 777))
    assert parts == whole


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    expected = n * p
    return abs(count - expected) <= sigmas * math.sqrt(n * p * (1 - p))


def test_bit_errors_flip_exactly_one_bit_at_the_configured_rate():
    data = random.Random(3).randbytes(100_000)
    stats = LineStats()
    out = Noise(bit_error_rate=0.01, seed=4).apply(data, stats)
    assert len(out) == len(data)  # no drops configured
    diffs = [x ^ y for x, y in zip(data, out) if x != y]
    assert len(diffs) == stats.flipped
    assert all(bin(d).count("1") == 1 for d in diffs)
    assert within(stats.flipped, len(data), 0.01), stats
    assert stats.dropped == 0


def test_drops_remove_bytes_at_the_configured_rate_and_keep_the_rest_in_order():
    data = random.Random(6).randbytes(100_000)
    stats = LineStats()
    out = Noise(drop_rate=0.02, seed=8).apply(data, stats)
    assert len(out) == len(data) - stats.dropped
    assert within(stats.dropped, len(data), 0.02), stats
    assert stats.flipped == 0
    # the output is a subsequence of the input: nothing altered, reordered or invented
    it = iter(data)
    assert all(any(b == x for x in it) for b in out)


def test_combined_rates():
    data = bytes(100_000)
    stats = LineStats()
    out = Noise(bit_error_rate=0.05, drop_rate=0.1, seed=1).apply(data, stats)
    assert within(stats.dropped, len(data), 0.1), stats
    assert within(stats.flipped, len(data), 0.05), stats
    assert len(out) == len(data) - stats.dropped
    assert sum(1 for b in out if b) == stats.flipped  # zeros in: every non-zero byte is a flip


def test_zero_rates_are_inactive_and_change_nothing():
    n = Noise(seed=5)
    assert not n.active
    assert Noise(bit_error_rate=0.001).active and Noise(drop_rate=0.001).active
    stats = LineStats()
    assert n.apply(ALL_BYTES, stats) == ALL_BYTES
    assert stats == LineStats()


@pytest.mark.parametrize("kw", [
    {"bit_error_rate": -0.01}, {"bit_error_rate": 0.51}, {"drop_rate": -1e-9},
    {"drop_rate": 1.0}, {"bit_error_rate": float("nan")}, {"drop_rate": float("inf")},
])
def test_invalid_rates_raise_value_error(kw):
    with pytest.raises(ValueError):
        Noise(**kw)


def test_rates_at_the_limits_are_accepted():
    Noise(bit_error_rate=0.0, drop_rate=0.5)
    Noise(bit_error_rate=0.5, drop_rate=0.0)


def test_noise_through_the_bridge_matches_the_offline_model(bridge):
    seed = 1234
    bridge.set_noise(Noise(bit_error_rate=0.01, drop_rate=0.02, seed=seed))
    data = random.Random(11).randbytes(100_000)
    a, b = open_port(bridge.port_a), open_port(bridge.port_b)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(read_until_quiet(b, quiet=1.0)))
    try:
        t.start()
        for i in range(0, len(data), 1024):
            a.write(data[i:i + 1024])
            time.sleep(0.002)
        t.join(30)
        assert not t.is_alive()
    finally:
        a.close()
        b.close()
    st = bridge.stats
    assert st.overflow == 0
    assert st.bytes_a_to_b == len(data)
    assert within(st.flipped, len(data), 0.01), st
    assert within(st.dropped, len(data), 0.02), st
    assert len(got[0]) == len(data) - st.dropped
    # the bridge draws one random number per byte whatever the chunking: same seed, same damage
    assert got[0] == Noise(bit_error_rate=0.01, drop_rate=0.02, seed=seed).apply(data, LineStats())


def test_set_noise_none_restores_a_clean_line(bridge):
    bridge.set_noise(Noise(bit_error_rate=0.5, seed=1))
    bridge.set_noise(None)
    a, b = open_port(bridge.port_a), open_port(bridge.port_b)
    try:
        a.write(ALL_BYTES * 8)
        assert read_exactly(b, 2048) == ALL_BYTES * 8
        assert bridge.stats.flipped == 0
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ an end nobody reads


def test_unread_end_does_not_block_the_bridge(bridge):
    a, b = open_port(bridge.port_a), open_port(bridge.port_b)
    flood = 1_000_000
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            a.write(b"\x55" * flood)  # port_b is open but never read
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        done.set()

    try:
        t = threading.Thread(target=writer)
        t.start()
        # while (and after) the flood goes a -> b, b -> a keeps working
        for i in range(20):
            msg = b"ping %d\n" % i
            b.write(msg)
            assert a.read_until(b"\n") == msg
        assert done.wait(15), "writing to port_a blocked: the bridge stopped draining it"
        t.join()
        assert not errors
        time.sleep(0.3)
        st = bridge.stats
        assert st.bytes_a_to_b == flood
        # the far end buffers a few kB at most; everything else is counted as lost
        assert st.overflow >= flood - 200_000, st
        assert st.overflow <= flood
        b.write(b"still alive\n")
        assert a.read_until(b"\n") == b"still alive\n"
        # what port_b does hold is the start of the flood, unchanged
        b.timeout = 0.5
        held = b.read(flood)
        assert held == b"\x55" * len(held)
        assert len(held) + st.overflow == flood
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ shutdown


def test_close_returns_promptly_and_stops_the_thread():
    b = PtyBridge().start()
    time.sleep(0.1)  # the relay thread is now inside select() with its 1 s timeout
    t0 = time.monotonic()
    b.close()
    assert time.monotonic() - t0 < 0.5
    assert not b._thread.is_alive()


def test_close_while_relaying_returns_promptly():
    b = PtyBridge().start()
    a = open_port(b.port_a)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            try:
                a.write(b"x" * 4096)
            except (serial.SerialException, OSError):
                return

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    b.close()
    assert time.monotonic() - t0 < 1.0
    assert not b._thread.is_alive()
    stop.set()
    t.join(5)  # the masters are gone, so the writer's next write fails at once
    assert not t.is_alive()
    a.close()


def test_context_manager_starts_and_closes():
    with PtyBridge() as b:
        a, bb = open_port(b.port_a), open_port(b.port_b)
        a.write(b"hello")
        assert read_exactly(bb, 5) == b"hello"
        a.close()
        bb.close()
    assert not b._thread.is_alive()
