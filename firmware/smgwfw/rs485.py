# Half-duplex RS-485 port for the wired LMN: a UART plus the transceiver's driver-enable line.
#
#   port = Rs485(uart, de, baud)         uart: machine.UART (timeout=0) or any object with
#                                        write()/read() and optionally flush(); de: an object with
#                                        value(v) (a machine.Signal hides the polarity), or None
#                                        for a transceiver with automatic direction control
#   port.send(data)                      drive the bus, send, release it -> bytes written
#   data = port.read()                   bytes received so far, or None
#   port.measure_flush()                 calibrate the release margin on this port (below)
#   port = open_port(board.rs485_facts())  the same, built from a board's RS485 facts
#
# Hardware is passed in, so tests drive this module with a fake UART, pin and clock. Times are
# microseconds from ticks_us() (time.ticks_us by default; an injected clock must wrap at 2**30
# like MicroPython's, or not at all).
#
# Timing rules (style.md habit 6; pyserial serial/rs485.py has the same three knobs):
# 1. A character is bits_per_char bit times: 8N1 and 7E1 are 10 bits, 8E1 11. At 9600 Bd one
#    character takes 1042 us; n characters leave the UART in n * char_us.
# 2. Turnaround before driving: the bus must have been quiet for turnaround_us since the last
#    byte seen (by read()) or sent, so that the other station has released its driver. Default
#    3.5 character times, the silent interval Modbus RTU uses (3.6 ms at 9600 Bd). read()
#    stamps the time it saw bytes, which is later than their arrival: the wait errs long.
# 3. DE goes active settle_us before the first start bit (the transceiver's driver enable time:
#    well under 1 us on MAX3485/SP3485, so 0 here; interpreter latency covers it).
# 4. DE stays active until the last stop bit has left the shift register, not just the FIFO.
#    uart.flush() waits for that on rp2, stm32 and esp32 (MicroPython's own test
#    tests/extmod/machine_uart_tx.py allows 0.18 ms / 0.4 ms of slack there). On esp8266 and nrf
#    flush() returns while the last byte is still being sent (docs/library/machine.UART.rst),
#    so the margin defaults to one character on those ports and one bit time elsewhere, and
#    measure_flush() replaces it with what this port needs. A UART without flush() gets the
#    computed frame time len * char_us from the start of the write plus the margin.
# 5. DE is released immediately after that: a meter answering quickly would otherwise collide
#    with our still-active driver, or its first byte would be lost. measure_flush() also reports
#    how late flush() returns ("late_us"): that much of the meter's answer time is spent with
#    our driver still on.
# 6. A transceiver with automatic direction control (de=None) switches by itself: DE is a no-op,
#    send() still waits until the data has left so that rule 2 counts from the true end.
# With DE and /RE tied together (boards/pico), the receiver is off while we send: our own bytes
# are not echoed. A board with /RE on its own pin drives it to the same level as DE.
import sys
import time

_MASK = 0x3FFFFFFF
_HALF = 0x20000000
_EARLY_FLUSH_PORTS = ("esp8266", "nrf")  # flush() returns before the last byte has gone
_WRITE_STALL_CHARS = 64  # give up a write that takes no byte for this many character times

try:
    _ticks_us = time.ticks_us
    _sleep_us = time.sleep_us
    _ticks_diff = time.ticks_diff
except AttributeError:  # CPython (tests, the sim board)

    def _ticks_us():
        return (time.perf_counter_ns() // 1000) & _MASK

    def _sleep_us(us):
        time.sleep(us / 1000000)

    def _ticks_diff(a, b):
        return ((a - b + _HALF) & _MASK) - _HALF


def _diff30(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def char_us(baud, bits_per_char=10):
    # one character on the wire, rounded up to whole microseconds
    return (bits_per_char * 1000000 + baud - 1) // baud


def rxbuf_for(baud, latency_ms, bits_per_char=10):
    # UART receive buffer for a reader that may be away for latency_ms (scheduler latency plus
    # the polling period): the characters arriving in that time plus half again, rounded up to
    # 64 bytes, at least 64. 9600 Bd, 200 ms: 192 characters -> 320 bytes.
    chars = (baud * latency_ms + bits_per_char * 1000 - 1) // (bits_per_char * 1000)
    n = chars + chars // 2
    n = (n + 63) // 64 * 64
    return n if n > 64 else 64


class Rs485:
    def __init__(self, uart, de, baud, turnaround_us=None, margin_us=None, settle_us=0,
                 bits_per_char=10, ticks_us=None, sleep_us=None):
        self.uart = uart
        self.de = de
        self.baud = baud
        self.bits_per_char = bits_per_char
        self.char_us = char_us(baud, bits_per_char)
        self.bit_us = (1000000 + baud - 1) // baud
        self.turnaround_us = 35 * self.char_us // 10 if turnaround_us is None else turnaround_us
        if margin_us is None:
            margin_us = self.char_us if sys.platform in _EARLY_FLUSH_PORTS else self.bit_us
        self.margin_us = margin_us
        self.settle_us = settle_us
        if ticks_us is None:
            self._ticks = _ticks_us
            self._diff = _ticks_diff
        else:
            self._ticks = ticks_us
            self._diff = _diff30
        self._sleep = _sleep_us if sleep_us is None else sleep_us
        self._flush = getattr(uart, "flush", None)
        self._quiet_since = self._ticks()
        self.timeouts = 0  # sends abandoned because the UART took no bytes
        self._drive(0)

    def _drive(self, v):
        if self.de is not None:
            self.de.value(v)

    def frame_us(self, n):
        # time n characters take on the wire
        return n * self.char_us

    def _wait_until_quiet(self):
        left = self.turnaround_us - self._diff(self._ticks(), self._quiet_since)
        if left > 0:
            self._sleep(left)

    def _write_all(self, data):
        # UART.write with timeout=0 may take part of data or nothing (None) when its buffer is
        # full; returns the number of bytes taken
        mv = memoryview(data)
        done = 0
        stalled = 0
        while done < len(mv):
            k = self.uart.write(mv[done:])
            if k:
                done += k
                stalled = 0
            else:
                if stalled >= _WRITE_STALL_CHARS:
                    self.timeouts += 1
                    break
                self._sleep(self.char_us)
                stalled += 1
        return done

    def send(self, data):
        # Drives the bus, writes data, waits until its last stop bit has left, releases the bus.
        # Blocks for about len(data) character times. Returns the number of bytes sent.
        self._wait_until_quiet()
        self._drive(1)
        try:
            if self.settle_us:
                self._sleep(self.settle_us)
            t0 = self._ticks()
            n = self._write_all(data)
            if self._flush is not None:
                self._flush()
                if self.margin_us > 0:
                    self._sleep(self.margin_us)
            else:
                left = self.frame_us(n) + self.margin_us - self._diff(self._ticks(), t0)
                if left > 0:
                    self._sleep(left)
        finally:
            self._drive(0)
            self._quiet_since = self._ticks()
        return n

    def read(self):
        data = self.uart.read()
        if data:
            self._quiet_since = self._ticks()
            return data
        return None

    def measure_flush(self, ticks_us=None, sleep_us=None, n=32, rounds=3):
        # Times write() + flush() of n bytes 0xFF against the theoretical n * char_us and sets
        # margin_us to the largest shortfall seen plus one bit time (a flush() that returns
        # early needs that much extra before DE may drop). DE stays released meanwhile, so the
        # pattern does not reach the bus, except through a transceiver with automatic direction
        # control (de=None): calibrate those before the bus is in use. 0xFF sends one start bit
        # per character, the least disturbance. Without flush() there is nothing to measure:
        # the computed frame time is used and margin_us becomes one bit time.
        # Returns {"theory_us", "min_us", "max_us", "late_us", "margin_us"}.
        ticks = self._ticks if ticks_us is None else ticks_us
        sleep = self._sleep if sleep_us is None else sleep_us
        diff = self._diff if ticks_us is None else _diff30
        theory = self.frame_us(n)
        pattern = b"\xff" * n
        lo = -1
        hi = 0
        if self._flush is None:
            self.margin_us = self.bit_us
            return {"theory_us": theory, "min_us": 0, "max_us": 0, "late_us": 0,
                    "margin_us": self.margin_us}
        self._drive(0)
        for _ in range(rounds):
            t0 = ticks()
            self._write_all(pattern)
            self._flush()
            took = diff(ticks(), t0)
            if lo < 0 or took < lo:
                lo = took
            if took > hi:
                hi = took
            sleep(self.char_us)  # let the line idle between rounds
        short = theory - lo
        self.margin_us = (short if short > 0 else 0) + self.bit_us
        late = hi - theory
        self._quiet_since = ticks()
        return {"theory_us": theory, "min_us": lo, "max_us": hi,
                "late_us": late if late > 0 else 0, "margin_us": self.margin_us}


class _Both:
    # DE and /RE on separate pins, driven to the same level
    def __init__(self, a, b):
        self.a = a
        self.b = b

    def value(self, v):
        self.a.value(v)
        self.b.value(v)


def open_port(facts, baud=None, rxbuf=None, latency_ms=200, machine=None, **kw):
    # Builds an Rs485 from a board's RS485 facts (boards/README.md: uart, tx, rx, de, re,
    # de_active_high, baud_default). machine: the machine module (tests pass a fake).
    if machine is None:
        try:
            import machine
        except ImportError:  # CPython
            raise ValueError("open_port needs MicroPython's machine module (or machine=)")
    if baud is None:
        baud = facts["baud_default"]
    if rxbuf is None:
        rxbuf = rxbuf_for(baud, latency_ms)
    uart = machine.UART(facts["uart"], baudrate=baud, tx=machine.Pin(facts["tx"]),
                        rx=machine.Pin(facts["rx"]), timeout=0, rxbuf=rxbuf)
    invert = not facts["de_active_high"]
    de = machine.Signal(machine.Pin(facts["de"], machine.Pin.OUT), invert=invert)
    if facts.get("re") is not None:
        de = _Both(de, machine.Signal(machine.Pin(facts["re"], machine.Pin.OUT), invert=invert))
    return Rs485(uart, de, baud, **kw)
