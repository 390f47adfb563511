"""The firmware's bus timing for the HDLC LMN (smgwfw.lmnbus): one request at a time, a quiet
line before sending, answers attributed to the window they began in, late answers not cut."""

from __future__ import annotations

from smgwfw import lmnbus
from smgwfw.crc16 import x25
from smgwfw.lmn import CHECK_NAMES, HdlcDetector


def hdlc(dest: int, src: int, control: int, info: bytes = b"") -> bytes:
    # a small encoder of our own so this test does not depend on the host codec
    n = 2 + 1 + 1 + 1 + 2 + (len(info) + 2 if info else 0)
    head = bytes([0xA0 | (n >> 8), n & 0xFF, (dest << 1) | 1, (src << 1) | 1, control])
    body = head
    if info:
        h = x25(head)
        body = head + bytes([h & 0xFF, h >> 8]) + info
    f = x25(body)
    return b"\x7e" + body + bytes([f & 0xFF, f >> 8]) + b"\x7e"


class Line:
    """The bus as the firmware sees it: what it sent, and bytes scheduled to arrive at times."""

    baud = 115200

    def __init__(self):
        self.t = 0
        self.sent: list[tuple[int, bytes]] = []
        self.arrivals: list[tuple[int, bytes]] = []
        self.send_ms = 1  # a send blocks this long
        self.refuse = False

    def read(self):
        due = [d for t, d in self.arrivals if t <= self.t]
        self.arrivals = [(t, d) for t, d in self.arrivals if t > self.t]
        return b"".join(due) or None

    def send(self, data):
        if self.refuse:
            return 0
        self.t += self.send_ms
        self.sent.append((self.t, bytes(data)))
        return len(data)


def setup():
    line = Line()
    events = []
    bus = lmnbus.BusMaster(line, HdlcDetector(max_frame=1040, silence_ms=5), lambda: line.t,
                           lambda *e: events.append(e), line.baud)
    return line, bus, events


def run(line, bus, ms):
    for _ in range(ms):
        line.t += 1
        bus.step(line.t)


def test_request_is_sent_and_answers_in_the_window_are_attributed():
    line, bus, events = setup()
    poll = hdlc(0x10, 0x01, 0x11)
    answer = hdlc(0x01, 0x10, 0x11)
    assert bus.request(7, poll, 30)
    run(line, bus, 5)
    assert [d for _, d in line.sent] == [poll]
    sent_at = line.sent[0][0]
    line.arrivals.append((sent_at + 3, answer))
    run(line, bus, 40)
    rx = [e for e in events if e[0] == lmnbus.RX]
    assert rx == [(lmnbus.RX, 7, answer, 1, rx[0][4])] and CHECK_NAMES[rx[0][3]] == "x25"
    assert 2 <= rx[0][4] <= 5  # ms after the end of the transmission
    assert events[-1] == (lmnbus.DONE, 7, 1, True, 0)


def test_one_request_at_a_time_and_a_quiet_line_before_sending():
    line, bus, events = setup()
    a, b = hdlc(0x10, 0x01, 0x11), hdlc(0x11, 0x01, 0x11)
    bus.request(1, a, 10)
    bus.request(2, b, 10)
    run(line, bus, 3)
    assert len(line.sent) == 1  # the second waits for the first window
    run(line, bus, 20)
    assert [d for _, d in line.sent] == [a, b]
    assert line.sent[1][0] - line.sent[0][0] >= 10
    # bytes on the line hold the next send back until the line was quiet for 3 characters
    line.arrivals.append((line.t + 1, b"\x55" * 4))
    bus.request(3, a, 10)
    run(line, bus, 30)
    assert line.sent[-1][0] > line.sent[1][0] + 10


def test_an_answer_that_began_in_the_window_is_not_cut():
    line, bus, events = setup()
    bus.request(1, hdlc(0x7F, 0x01, 0x13, b"\x01\x04\x00\x05\x00\x01"), 20)
    run(line, bus, 2)
    t0 = line.sent[0][0]
    answer = hdlc(0x01, 0x7E, 0x13, b"\x02\x00\x01\x02\xab\xcd")
    # starts at the last moment of the window and ends after it
    line.arrivals.append((t0 + 19, answer[:5]))
    line.arrivals.append((t0 + 23, answer[5:]))
    run(line, bus, 40)
    assert [e[1] for e in events if e[0] == lmnbus.RX] == [1]
    assert events[-1][:3] == (lmnbus.DONE, 1, 1)


def test_frames_outside_a_window_are_reported_without_id():
    line, bus, events = setup()
    stray = hdlc(0x01, 0x12, 0x11)
    line.arrivals.append((3, stray))
    run(line, bus, 10)
    assert events == [(lmnbus.RX, None, stray, 1, None)]
    assert bus.counters["rx_unsolicited"] == 1


def test_a_full_queue_and_a_stuck_uart_are_reported():
    line, bus, events = setup()
    f = hdlc(0x10, 0x01, 0x11)
    assert all(bus.request(i, f, 5) for i in range(lmnbus.QUEUE_LEN))
    assert not bus.request(99, f, 5) and bus.counters["queue_full"] == 1
    line.refuse = True
    run(line, bus, 10)
    assert (lmnbus.DONE, 0, 0, False, 0) in events
    assert bus.counters["send_failed"] >= 1


def test_a_corrupted_answer_is_passed_up_with_its_check():
    line, bus, events = setup()
    bus.request(5, hdlc(0x10, 0x01, 0x11), 20)
    run(line, bus, 2)
    bad = bytearray(hdlc(0x01, 0x10, 0x32, b"\x02hello"))
    bad[-4] ^= 0xFF
    line.arrivals.append((line.t + 2, bytes(bad)))
    run(line, bus, 40)
    rx = [e for e in events if e[0] == lmnbus.RX]
    assert len(rx) == 1 and CHECK_NAMES[rx[0][3]] == "bad_crc"
