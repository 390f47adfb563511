# AMBER / Würth Elektronik AMB8465-M wireless M-Bus USB stick and module family (AMB8425-M,
# AMB8426-M, Metis-II): its UART command interface. A sans-I/O frame parser (Parser) and a thin
# driver (Amb8465) on the chip-independent base smgwfw.radio.Radio. The exact facts used (frame
# format, command codes, mode codes, parameter addresses, RSSI formula) and where they come from:
# docs/amb8465.md. A simulator of the module must keep to that page.
#
#   r = Amb8465(uart, reset=None)   uart: read side readinto(buf) -> n or None (never blocks),
#                                   write(data); machine.UART(timeout=0) or the sim board's port.
#                                   reset: an output pin wired to the module's /RESET, or None
#   r.set_mode("T1"); r.start_recv()
#   p = r.poll_recv(now_ms)         -> RxPacket or None (smgwfw.radio)
#
# Frames on the UART, both ways (command mode): 0xFF CMD LEN PAYLOAD[LEN] CS, where CS is the
# XOR of every byte from the 0xFF through the payload. A request CMD is answered by CMD | 0x80
# (the confirmation) with a status byte (0x00 = done) or the data asked for. A received
# telegram arrives unasked as CMD_DATA_IND (0x03): in our configuration its payload is the
# telegram from its L-field, DLL CRCs already checked and removed by the module (it does not
# deliver frames that fail them), followed by one RSSI byte (RSSI_Enable = 1).
#
# Start-up (start_recv, then driven by poll_recv, never blocking): pulse /RESET if wired; read
# UART_CMD_Out_Enable (0x05) and RSSI_Enable (0x45) with CMD_GET_REQ; write whichever is not 1
# with CMD_SET_REQ (non-volatile: only when needed, as the manual advises) and then restart the
# module with CMD_RESET_REQ so it takes them; finally CMD_SET_MODE_REQ (volatile) selects the
# receive mode. A GET that gets no answer counts as "write it"; a SET, RESET or SET_MODE that
# fails `retries` times makes the driver wait backoff_ms and start over. Telegrams that arrive
# before the mode is set are dropped (counted in "not_ready"): their mode is unknown.
#
# The parser checks CS on every frame, rejects frames with a command byte the module never sends
# or an impossible length, and resynchronises on the next 0xFF after the start of anything it
# rejected, so a frame hidden behind garbage that looked like a start is still found. A frame
# that stops arriving for timeout_ms is given up the same way. Its buffer holds one frame (the
# longest is 259 bytes) and never grows; the outcome does not depend on how the bytes were split
# into reads.
from smgwfw.radio import Radio, RxPacket, rssi_dbm

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


SOF = const(0xFF)
CNF = const(0x80)  # confirmation = request | CNF
CMD_DATA_REQ = const(0x00)
CMD_DATA_IND = const(0x03)
CMD_SET_MODE_REQ = const(0x04)
CMD_RESET_REQ = const(0x05)
CMD_SET_REQ = const(0x09)
CMD_GET_REQ = const(0x0A)
CMD_RSSI_REQ = const(0x0D)
PARAM_CMD_OUT = const(0x05)  # UART_CMD_Out_Enable: 1 = received telegrams as CMD_DATA_IND
PARAM_RSSI = const(0x45)  # RSSI_Enable: 1 = one RSSI byte after each received telegram
# CMD_SET_MODE_REQ codes of the receive modes that hear meters (wmbusmeters' table):
# S2 (0x03) hears S1/S1-m, T2-other (0x08) hears T1, C2-other (0x0E) hears C1
MODE_CODES = {"S1": 0x03, "T1": 0x08, "C1": 0x0E}
MAX_FRAME = const(259)  # 0xFF CMD LEN, 255 payload bytes, CS

# the command bytes a module sends: CMD_DATA_IND and the confirmations of the requests
_FROM_MODULE = b"\x03\x80\x82\x84\x85\x86\x89\x8a\x8b\x8c\x8d\x90\x91\xb0\xb1\xd0\xd1\xd2"
_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)

PARSER_COUNTERS = ("frames", "bad_cs", "bad_cmd", "bad_len", "timeouts", "garbage_bytes")
DRIVER_COUNTERS = ("not_ready", "bad_l", "unexpected", "retries", "config_writes", "resets",
                   "startup_failures")


def _tdiff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def checksum(data, start=0, end=-1):
    # XOR of data[start:end]
    if end < 0:
        end = len(data)
    x = 0
    for i in range(start, end):
        x ^= data[i]
    return x


def frame(cmd, payload=b""):
    # one command-mode frame: 0xFF CMD LEN PAYLOAD CS
    n = len(payload)
    out = bytearray(n + 4)
    out[0] = SOF
    out[1] = cmd
    out[2] = n
    out[3:3 + n] = payload
    out[n + 3] = checksum(out, 0, n + 3)
    return bytes(out)


def _len_ok(cmd, n):
    if cmd == CMD_DATA_IND:
        return n >= 10  # C, M, A (9 bytes) and the RSSI byte at least
    if cmd == CMD_GET_REQ | CNF:
        return 2 <= n <= 0x82  # memory position, count, up to 128 parameter bytes
    return 1 <= n <= 8  # a status byte, a serial number, a firmware version, an RSSI


class Parser:
    # Sans-I/O: feed() bytes, then read the completed frame and consume() it.
    #   i = p.feed(data, i, end, now_ms)   takes data[i:end] up to the end of the first complete
    #                                      frame; returns the index after the last byte taken
    #   p.ready                            a complete, checked frame is waiting
    #   p.cmd(), p.payload(), p.t0         its command byte, payload (a memoryview into the
    #                                      parser's buffer: copy it before consume()), and the
    #                                      now_ms of the feed() that brought its 0xFF
    #   p.consume()                        drop it (held bytes after it are scanned next)
    #   p.poll(now_ms)                     gives up a frame that stopped arriving
    def __init__(self, timeout_ms=250, counters=None):
        self.timeout_ms = timeout_ms
        self.counters = {} if counters is None else counters
        for name in PARSER_COUNTERS:
            self.counters[name] = 0
        self._buf = bytearray(MAX_FRAME)
        self._mv = memoryview(self._buf)
        self._n = 0  # bytes held; when > 0, _buf[0] is 0xFF
        self._need = 0  # length of the complete frame at the front, 0 while there is none
        self.t0 = 0
        self._last = 0

    @property
    def ready(self):
        return self._need != 0

    def cmd(self):
        return self._buf[1]

    def payload(self):
        return self._mv[3:self._need - 1]

    def held(self):
        return self._n

    def consume(self):
        if self._need:
            self._drop(self._need)
            self._need = 0
            self._settle()

    def feed(self, data, i=0, end=-1, now_ms=0):
        if end < 0:
            end = len(data)
        if self._need or i >= end:
            return i
        self._last = now_ms
        buf = self._buf
        while i < end:
            n = self._n
            if n == 0:
                k = i
                while k < end and data[k] != SOF:
                    k += 1
                if k > i:
                    self.counters["garbage_bytes"] += k - i
                if k == end:
                    return end
                buf[0] = SOF
                self._n = 1
                self.t0 = now_ms
                i = k + 1
                continue
            if n < 3:
                buf[n] = data[i]
                i += 1
                self._n = n + 1
            else:
                k = buf[2] + 4 - n  # bytes still missing from this frame (>= 1)
                if k > end - i:
                    k = end - i
                buf[n:n + k] = data[i:i + k]
                i += k
                self._n = n + k
            self._settle()
            if self._need:
                return i
        return i

    def poll(self, now_ms):
        # Nothing came for timeout_ms while a frame was incomplete: the module is not sending
        # it. Every held byte is that old, so the search goes on through all of them (a real
        # frame may be hidden behind a false start) until a frame is complete or none is left.
        if self._n and not self._need and _tdiff(now_ms, self._last) > self.timeout_ms:
            self.counters["timeouts"] += 1
            while self._n and not self._need:
                self._drop(1)
                self._settle()

    def _drop(self, k):
        # remove the first k held bytes (overlapping move: memmove on both interpreters)
        n = self._n - k
        if n > 0:
            self._buf[0:n] = self._mv[k:self._n]
        self._n = n if n > 0 else 0

    def _settle(self):
        # Brings the held bytes into one of two states: a complete, checked frame at the front
        # (_need set), or the valid beginning of one. What fails a check loses its 0xFF, and
        # the bytes after it are searched again for the next 0xFF.
        buf = self._buf
        c = self.counters
        while True:
            n = self._n
            if n == 0:
                return
            if buf[0] != SOF:
                k = 1
                while k < n and buf[k] != SOF:
                    k += 1
                c["garbage_bytes"] += k
                self._drop(k)
                continue
            if n < 2:
                return
            cmd = buf[1]
            if cmd not in _FROM_MODULE:
                c["bad_cmd"] += 1
                self._drop(1)
                continue
            if n < 3:
                return
            ln = buf[2]
            if not _len_ok(cmd, ln):
                c["bad_len"] += 1
                self._drop(1)
                continue
            need = ln + 4
            if n < need:
                return
            if checksum(buf, 0, need - 1) != buf[need - 1]:
                c["bad_cs"] += 1
                self._drop(1)
                continue
            self._need = need
            c["frames"] += 1
            return


# driver states
_S_IDLE = const(0)  # not started, or standby: indications are dropped
_S_PIN = const(1)  # /RESET held low until _t
_S_BOOT = const(2)  # the module restarts until _t
_S_CMD = const(3)  # a request is out; its confirmation is due by _t
_S_RX = const(4)  # configured: indications are telegrams
_S_BACKOFF = const(5)  # the start-up failed; it starts over at _t

# start-up phases: the request out (or next)
_P_BOOT = const(-1)  # after the /RESET pulse
_P_GET_OUT = const(0)
_P_GET_RSSI = const(1)
_P_SET_OUT = const(2)
_P_SET_RSSI = const(3)
_P_RESET = const(4)
_P_MODE = const(5)

_F_GET_OUT = frame(CMD_GET_REQ, bytes((PARAM_CMD_OUT, 1)))
_F_GET_RSSI = frame(CMD_GET_REQ, bytes((PARAM_RSSI, 1)))
_F_SET_OUT = frame(CMD_SET_REQ, bytes((PARAM_CMD_OUT, 1, 1)))
_F_SET_RSSI = frame(CMD_SET_REQ, bytes((PARAM_RSSI, 1, 1)))
_F_RESET = frame(CMD_RESET_REQ)
_EXPECT = (CMD_GET_REQ | CNF, CMD_GET_REQ | CNF, CMD_SET_REQ | CNF, CMD_SET_REQ | CNF,
           CMD_RESET_REQ | CNF, CMD_SET_MODE_REQ | CNF)

_RX_SLICE = const(256)  # bytes per UART read
_READS = const(4)  # UART reads per poll_recv at most (the rest waits in the UART's buffer)
_PIN_MS = const(2)


class Amb8465(Radio):
    MODULE = "amb8465"
    SUPPORTED = ("T1", "C1", "S1")

    def __init__(self, uart, reset=None, ticks_ms=None, l_field=True, cnf_ms=500,
                 boot_ms=500, backoff_ms=5000, retries=3, frame_ms=250):
        # l_field False: the module's indications carry no L-field (LEN stands in for it,
        # counting the RSSI byte); the driver then rebuilds it. docs/amb8465.md, "Open points".
        super().__init__(ticks_ms, DRIVER_COUNTERS)
        self.uart = uart
        self.reset_pin = reset
        self.l_field = l_field
        self.cnf_ms = cnf_ms
        self.boot_ms = boot_ms
        self.backoff_ms = backoff_ms
        self.retries = retries
        self.parser = Parser(frame_ms, self.counters)
        self._rx = bytearray(_RX_SLICE)
        self._rxmv = memoryview(self._rx)
        self._ri = 0
        self._rn = 0
        self._st = _S_IDLE
        self._phase = _P_BOOT
        self._t = 0
        self._tries = 0
        self._need_out = False
        self._need_rssi = False
        if reset is not None:
            reset.value(1)

    def ready(self):
        # True once the module is set up and its indications are telegrams
        return self._st == _S_RX

    # ------------------------------------------------------------------ the Radio API
    def start_recv(self, now_ms=None):
        now = self._now(now_ms)
        self._need_out = False
        self._need_rssi = False
        if self.reset_pin is not None:
            self.reset_pin.value(0)
            self._st = _S_PIN
            self._phase = _P_BOOT
            self._t = (now + _PIN_MS) & _MASK
        else:
            self._begin(_P_GET_OUT, now)

    def standby(self):
        # The module has no receiver-off command in our set: it keeps listening, and the driver
        # drops what it hears (start_recv() sets it up again).
        self._st = _S_IDLE

    def _mode_changed(self):
        if self._st == _S_RX or (self._st == _S_CMD and self._phase == _P_MODE):
            self._begin(_P_MODE, self._now(None))

    def poll_recv(self, now_ms=None):
        now = self._now(now_ms)
        pkt = self._pump(now, _READS)
        if pkt is not None:
            return pkt
        self.parser.poll(now)
        pkt = self._pump(now, 0)
        if pkt is not None:
            return pkt
        self._timers(now)
        return None

    # ------------------------------------------------------------------ bytes and frames
    def _pump(self, now, reads):
        # Frames out of the parser, bytes into it, UART reads when both are empty; returns at the
        # first telegram. Confirmations are handled on the way.
        p = self.parser
        while True:
            if p._need:
                pkt = self._frame(p, now)
                p.consume()
                if pkt is not None:
                    return pkt
            elif self._ri < self._rn:
                self._ri = p.feed(self._rxmv, self._ri, self._rn, now)
            elif reads > 0:
                reads -= 1
                n = self.uart.readinto(self._rx)
                if not n:
                    return None
                self._ri = 0
                self._rn = n
            else:
                return None

    def _frame(self, p, now):
        cmd = p.cmd()
        if cmd == CMD_DATA_IND:
            if self._st != _S_RX:
                self.counters["not_ready"] += 1
                return None
            return self._telegram(p.payload(), p.t0)
        if self._st == _S_CMD and cmd == _EXPECT[self._phase]:
            self._confirmed(p.payload(), now)
        else:
            self.counters["unexpected"] += 1
        return None

    def _telegram(self, pl, t0):
        n = len(pl)
        raw = pl[n - 1]
        if self.l_field:
            data = bytes(pl[0:n - 1])
            ok = data[0] == n - 2
            if not ok:
                self.counters["bad_l"] += 1
        else:
            b = bytearray(n)
            b[0] = n - 1
            b[1:n] = pl[0:n - 1]
            data = bytes(b)
            ok = True
        self.counters["telegrams"] += 1
        # the module removed the DLL CRCs and does not say which format arrived; T1 and S1
        # are always format A
        return RxPacket(data, rssi_dbm(raw), self.mode, "?" if self.mode == "C1" else "A", ok,
                        t0)

    # ------------------------------------------------------------------ the start-up
    def _begin(self, phase, now):
        self._phase = phase
        self._tries = 0
        self._send(now)

    def _send(self, now):
        ph = self._phase
        if ph == _P_GET_OUT:
            f = _F_GET_OUT
        elif ph == _P_GET_RSSI:
            f = _F_GET_RSSI
        elif ph == _P_SET_OUT:
            f = _F_SET_OUT
        elif ph == _P_SET_RSSI:
            f = _F_SET_RSSI
        elif ph == _P_RESET:
            f = _F_RESET
        else:
            f = frame(CMD_SET_MODE_REQ, bytes((MODE_CODES[self.mode],)))
        self._tries += 1
        self.uart.write(f)
        self._st = _S_CMD
        self._t = (now + self.cnf_ms) & _MASK

    def _confirmed(self, pl, now):
        ph = self._phase
        if ph == _P_GET_OUT or ph == _P_GET_RSSI:
            addr = PARAM_CMD_OUT if ph == _P_GET_OUT else PARAM_RSSI
            is_on = len(pl) == 3 and pl[0] == addr and pl[1] == 1 and pl[2] == 1
            if ph == _P_GET_OUT:
                self._need_out = not is_on
            else:
                self._need_rssi = not is_on
            self._next(now)
            return
        if len(pl) < 1 or pl[0] != 0:
            self._retry(now)  # the module refused (status != 0): try again
            return
        if ph == _P_SET_OUT or ph == _P_SET_RSSI:
            self.counters["config_writes"] += 1
            self._next(now)
        elif ph == _P_RESET:
            self.counters["resets"] += 1
            self._st = _S_BOOT
            self._t = (now + self.boot_ms) & _MASK
        else:
            self._st = _S_RX

    def _next(self, now):
        ph = self._phase
        if ph == _P_GET_OUT:
            nxt = _P_GET_RSSI
        elif ph == _P_GET_RSSI:
            nxt = _P_SET_OUT if self._need_out else (_P_SET_RSSI if self._need_rssi else _P_MODE)
        elif ph == _P_SET_OUT:
            nxt = _P_SET_RSSI if self._need_rssi else _P_RESET
        elif ph == _P_SET_RSSI:
            nxt = _P_RESET
        else:
            nxt = _P_MODE
        self._begin(nxt, now)

    def _retry(self, now):
        ph = self._phase
        if ph == _P_GET_OUT or ph == _P_GET_RSSI:
            # no answer to a read: write the parameter to be sure (no retries for reads)
            if ph == _P_GET_OUT:
                self._need_out = True
            else:
                self._need_rssi = True
            self._next(now)
        elif self._tries < self.retries:
            self.counters["retries"] += 1
            self._send(now)
        else:
            self.counters["startup_failures"] += 1
            self._st = _S_BACKOFF
            self._t = (now + self.backoff_ms) & _MASK

    def _timers(self, now):
        st = self._st
        if st == _S_IDLE or st == _S_RX or _tdiff(now, self._t) < 0:
            return
        if st == _S_PIN:
            self.reset_pin.value(1)
            self._st = _S_BOOT
            self._t = (now + self.boot_ms) & _MASK
        elif st == _S_BOOT:
            self._begin(_P_MODE if self._phase == _P_RESET else _P_GET_OUT, now)
        elif st == _S_CMD:
            self._retry(now)  # no confirmation in time
        else:
            self.start_recv(now)
