# The gateway's side of the wired LMN bus timing (docs/lmn-wired.md section 7): the host decides
# what to send, this module decides when, and what came back in which window.
#
#   bus = BusMaster(port, detector, ticks_ms, emit)
#   bus.request(rid, frame, listen_ms)   -> False when the queue is full (the host retries)
#   bus.step(now_ms)                     read the line, run the window, send when the line is idle
#
# port: read() -> bytes or None, send(data) blocking until the last stop bit left and the
# driver is released (smgwfw.rs485.Rs485, or the sim board's serial port), baud.
# detector: a smgwfw.lmn.HdlcDetector. ticks_ms(): the board's millisecond counter (read again
# after a blocking send). emit(kind, rid, a, b, c): what happened, for the host:
#   emit(RX, rid, frame, check, at_ms)   a frame that began inside request rid's window
#                                        (rid None: outside any window), at_ms after the end
#                                        of the transmission (None outside a window)
#   emit(DONE, rid, count, sent, 0)      the window closed: count frames; sent False when the
#                                        request could not be sent (nothing taken by the UART)
#
# One request at a time: RS-485 is one shared medium and the gateway is its only master. A
# window stays open while a frame that began inside it is still arriving, so a late but valid
# answer is never cut. Before sending, the line must have been quiet for IDLE_CHARS character
# times, so the gateway never talks into a meter's answer. Buffers: the detector's, allocated
# once; the queue holds QUEUE_LEN requests (the host master keeps at most one in flight).
try:
    from micropython import const
except ImportError:

    def const(value):
        return value


RX = const(1)
DONE = const(2)
QUEUE_LEN = const(4)
IDLE_CHARS = const(3)
_SLICE = const(64)  # bytes fed to the detector between two drains of its frame queue

_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def _tdiff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


class BusMaster:
    def __init__(self, port, detector, ticks_ms, emit, baud=None):
        self.port = port
        self.det = detector
        self.ticks_ms = ticks_ms
        self.emit = emit
        baud = baud or getattr(port, "baud", None) or getattr(port, "baudrate", 115200)
        # whole milliseconds, at least 1: the quiet time before the gateway may talk
        self.idle_ms = (IDLE_CHARS * 10000 + baud - 1) // baud + 1
        self.queue = []
        self.rid = None  # the request whose window is open
        self.tx_end = 0
        self.deadline = 0
        self.count = 0
        self.last_rx = ticks_ms()
        self.counters = {"requests": 0, "sent": 0, "rx_in_window": 0, "rx_unsolicited": 0,
                         "queue_full": 0, "send_failed": 0}

    def request(self, rid, frame, listen_ms):
        if len(self.queue) >= QUEUE_LEN:
            self.counters["queue_full"] += 1
            return False
        self.queue.append((rid, frame, listen_ms))
        self.counters["requests"] += 1
        return True

    def busy(self):
        return self.rid is not None or len(self.queue) > 0

    def step(self, now):
        data = self.port.read()
        if data:
            self.last_rx = now
            n = len(data)
            i = 0
            while i < n:
                self.det.feed(data[i:i + _SLICE], now)
                i += _SLICE
                self._drain()
        else:
            self.det.poll(now)
            self._drain()
        if self.rid is not None:
            if _tdiff(now, self.deadline) >= 0 and not self.det.in_frame():
                rid = self.rid
                self.rid = None
                self.emit(DONE, rid, self.count, True, 0)
            return
        if self.queue and _tdiff(now, self.last_rx) >= self.idle_ms and not self.det.in_frame():
            self._send(now)

    def _send(self, now):
        rid, frame, listen_ms = self.queue.pop(0)
        sent = self.port.send(frame)
        if not sent:
            self.counters["send_failed"] += 1
            self.emit(DONE, rid, 0, False, 0)
            return
        self.counters["sent"] += 1
        end = self.ticks_ms()
        self.rid = rid
        self.count = 0
        self.tx_end = end
        self.deadline = (end + listen_ms) & _MASK

    def _drain(self):
        det = self.det
        while True:
            f = det.next_frame()
            if f is None:
                return
            frame, check, t0 = f[0], f[1], f[2]
            if self.rid is not None and _tdiff(t0, self.deadline) <= 0:
                self.count += 1
                self.counters["rx_in_window"] += 1
                at = _tdiff(t0, self.tx_end)
                self.emit(RX, self.rid, frame, check, at if at > 0 else 0)
            else:
                self.counters["rx_unsolicited"] += 1
                self.emit(RX, None, frame, check, None)
