# The firmware application: joins the link core, the durable outbox, the LED engine and the
# board's drivers. One cooperative loop, no threads and no asyncio, so it runs the same on every
# port and under CPython on the sim board:
#   read the link UART -> link.receive -> handle events -> move journal entries into the link
#   -> write frames -> render LEDs -> sleep until the next deadline or input.
#
# The board module (boards/<name>/board.py) is the only place that knows hardware: it provides
# BOARD_ID, link_uart() (read()/write()/wait(ms)), leds() (four objects with value(v)), ticks_ms(),
# nonce(), reset_cause(), STORAGE (a directory path, or None for RAM-only boards), JOURNAL_BYTES
# and firmware_files() (names and paths of the firmware's own files, for the hello hashes).
import gc
import hashlib

from smgwfw import VERSION, cbor
from smgwfw import link as lk
from smgwfw import messages as m
from smgwfw.journal import FileJournal, JournalFull, RamJournal, State
from smgwfw.leds import LedEngine

_MASK = 0x3FFFFFFF
_GEN_PER_PASS = 8
_LMN_SLICE = 64  # bytes fed to the frame detector between two drains of its queue
_RADIO_PER_PASS = 32  # telegrams taken from the radio per pass (70/s arrive at full rate)
RADIO_DUP_MS = 5000  # a telegram's second copy within this time is marked "dup"


def file_hashes(files):
    # {name: sha256 digest} of each firmware file, read in small chunks (no whole-file buffers)
    out = {}
    buf = bytearray(256)
    for name, path in files:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(memoryview(buf)[:n])
        except OSError:
            continue
        out[name] = h.digest()
    return out


class App:
    def __init__(self, board):
        self.board = board
        now = board.ticks_ms()
        self.leds = LedEngine(now)
        self._led_objs = board.leds()
        self._led_mask = -1
        store = board.STORAGE
        self.state = State(store + "/state.bin" if store else None)
        self.state.v["boot"] += 1
        self.state.save()
        if store:
            self.journal = FileJournal(store + "/outbox.bin", board.JOURNAL_BYTES, board.nonce)
        else:
            self.journal = RamJournal(board.JOURNAL_BYTES, (board.nonce() & 0x7FFFFFFF) or 1)
        self.uart = board.link_uart()
        # LMN-1, the wired meter bus: optional (a board or a bench may have no meter attached)
        lmn_port = getattr(board, "lmn_port", None)
        self.lmn = lmn_port() if lmn_port is not None else None
        self.sml = None
        if self.lmn is not None:
            from smgwfw.lmn import CHECK_NAMES, SmlDetector

            self.sml = SmlDetector(max_pad=4)  # DZG meters send PP=4 (seen in real frames)
            self._check_names = CHECK_NAMES
        # the RS-485 bus of TR-03109 meters (HDLC), where the board has one set up for it
        lmn_bus = getattr(board, "lmn_bus", None)
        bus_port = lmn_bus() if lmn_bus is not None else None
        self.bus = None
        if bus_port is not None:
            from smgwfw.lmn import CHECK_NAMES, HdlcDetector, silence_ms_for
            from smgwfw.lmnbus import BusMaster

            baud = getattr(bus_port, "baud", 115200)
            self._check_names = CHECK_NAMES
            self.bus = BusMaster(bus_port, HdlcDetector(max_frame=1040,
                                                        silence_ms=silence_ms_for(baud, 20)),
                                 board.ticks_ms, self._bus_event, baud)
        # LMN-A, the wireless meters (docs/radio.md): optional like the wired port
        self.radio = None
        self.radio_error = None
        radio = getattr(board, "radio", None)
        if radio is not None:
            self._start_radio(radio)
        cursors = {}
        if self.state.v["host_stream"]:
            cursors[self.state.v["host_stream"]] = self.state.v["host_cursor"]
        info = {
            "fw": VERSION,
            "board": board.BOARD_ID,
            "boot": self.state.v["boot"],
            "reset": board.reset_cause(),
            "files": file_hashes(board.firmware_files()),
            "durable": store is not None,
        }
        lp = board.LINK
        self.link = lk.Link(
            "fw",
            self.journal.stream,
            board.nonce,
            info=info,
            cursors=cursors,
            incarnation=self.state.v["boot"],
            window=lp.get("window", 8),
            max_payload=lp.get("max_payload", 1024),
            rto_ms=lp.get("rto_ms", 200),
            queue_len=lp.get("queue_len", 32),
            queue_bytes=lp.get("queue_bytes", 16384),
        )
        self.dropped = 0
        self._drop_reported = 0
        self._reconcile_generator()
        self.time_offset = None  # unix ms - ticks at the last TIME message
        self.release_requested = False
        self._boot_tick = now
        self._boot_event_sent = False
        if self.journal.__class__ is FileJournal and self.journal.truncated_bytes:
            self._event(m.EV_STORAGE_ERROR, ["journal tail cut", self.journal.truncated_bytes])
        if self.radio_error is not None:
            self._event(m.EV_RADIO_ERROR, self.radio_error)

    def _start_radio(self, make):
        # A radio that cannot be built or does not answer must not stop the gateway: it runs
        # without LMN-A and says why (EV_RADIO_ERROR, once the host is there).
        try:
            r = make()
            if r is None:
                return
            r.start_recv()
        except Exception as e:  # OSError (no chip), ValueError (bad pins), ... from drivers
            self.radio_error = [type(e).__name__, str(e)]
            return
        from smgwfw.wmbus import Dedup

        self.radio = r
        self.dedup = Dedup(RADIO_DUP_MS, 16)

    # ---------------------------------------------------------------- the loop

    def run(self):
        # Returns only when the host asked for the port (RELEASE), after the acknowledgement of
        # that request and everything before it has gone out; the board's release() then hands
        # the port back to the REPL so mpremote can reach the board.
        b = self.board
        released_at = None
        while True:
            now = b.ticks_ms()
            wait = self.step(now)
            if self.release_requested:
                if released_at is None:
                    released_at = now
                elif (now - released_at) & _MASK > 300 or self.link.idle():
                    break
            b.wait(wait)
        release = getattr(b, "release", None)
        if release is not None:
            release()

    def step(self, now):
        # One pass; returns ms the caller may sleep (input wakes it earlier on boards that can).
        data = self.uart.read()
        if data:
            self.link.receive(data, now)
        if self.lmn is not None:
            self._read_lmn(now)
        if self.bus is not None:
            self.bus.step(now)
        if self.radio is not None:
            self._read_radio(now)
        self._handle_events(now)
        self._feed_link()
        self._generate()
        while True:
            f = self.link.poll(now)
            if f is None:
                break
            self.uart.write(f)
        self._handle_events(now)
        self._render_leds(now)
        wait = self.link.next_deadline(now)
        v = self.state.v
        if v["gen_n"] < v["gen_target"] and self.journal.used() < self.journal.capacity:
            wait = 0
        return 20 if wait > 20 else wait  # LED patterns need ~20 ms resolution

    def _read_lmn(self, now):
        # Every complete frame goes to the journal at once, with the time it began to arrive
        # and the detector's own check result; the host decodes it.
        det = self.sml
        data = self.lmn.read()
        if not data:
            det.poll(now)
            self._drain_lmn()
            return
        # in slices that cannot hold more frames than the detector queues (a UART buffer read
        # late may hold many; the shortest SML frame is 16 bytes and the queue holds 4)
        n = len(data)
        i = 0
        while i < n:
            det.feed(data[i:i + _LMN_SLICE], now)
            i += _LMN_SLICE
            self._drain_lmn()

    def _drain_lmn(self):
        det = self.sml
        while True:
            f = det.next_frame()
            if f is None:
                return
            frame, check, t0 = f
            self.capture({
                m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRED, m.K_REC_TICK: t0,
                m.K_REC_TIME: None if self.time_offset is None else self.time_offset + t0,
                m.K_REC_BODY: frame,
                m.K_REC_META: {"proto": "sml", "check": self._check_names[check]},
            })

    def _read_radio(self, now):
        # Every telegram goes to the journal at once (durable T_RECORD), with what the receiver
        # knows about it; the host decodes it. A bounded number per pass, so the link and the
        # LEDs are served in between: the rest waits in the UART's or the driver's buffer.
        r = self.radio
        for _ in range(_RADIO_PER_PASS):
            p = r.poll_recv(now)
            if p is None:
                return
            t0 = p.tick_ms
            dup = self.dedup.check(p.data, t0) if p.crc_ok else False
            self.capture({
                m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRELESS, m.K_REC_TICK: t0,
                m.K_REC_TIME: None if self.time_offset is None else self.time_offset + t0,
                m.K_REC_BODY: p.data,
                m.K_REC_META: {"proto": "wmbus", "mode": p.mode, "frame": p.frame,
                               "rssi": p.rssi_dbm, "crc": "ok" if p.crc_ok else "bad",
                               "dup": dup, "module": r.MODULE},
            })
            # the LED engine's wMT flash: lit FLASH_MS after the last telegram (retriggered)
            self.leds.flash_wmt(now)

    def _bus_event(self, kind, rid, a, b, c):
        # LMN traffic goes to the host only while it is there: a link that restarts drops the
        # bus exchanges in flight, and the host's master starts them again
        if not self.link.up:
            return
        if kind == 1:  # lmnbus.RX
            self.link.send({m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: rid, m.K_LMN_FRAME: a,
                            m.K_LMN_CHECK: self._check_names[b], m.K_LMN_AT: c,
                            m.K_LMN_TICK: self.board.ticks_ms()})
        else:
            self.link.send({m.K_TYPE: m.T_LMN_DONE, m.K_LMN_ID: rid, m.K_LMN_COUNT: a,
                            m.K_LMN_SENT: b})

    def _on_lmn_tx(self, msg):
        t = m.T_LMN_TX
        if self.bus is None:
            self.link.reject(m.ERR_NOT_SUPPORTED, "no LMN bus on this board", t)
            return
        rid = msg.get(m.K_LMN_ID)
        frame = msg.get(m.K_LMN_FRAME)
        listen = msg.get(m.K_LMN_LISTEN)
        if (not isinstance(rid, int) or not isinstance(frame, bytes) or not 0 < len(frame) <= 1040
                or not isinstance(listen, int) or not 0 <= listen <= m.LMN_LISTEN_MAX):
            self.link.reject(m.ERR_BAD_FIELD, "lmn_tx: id, frame (1..1040 bytes), listen", t)
            return
        if not self.bus.request(rid, frame, listen):
            self._bus_event(2, rid, 0, False, 0)

    def _render_leds(self, now):
        mask = self.leds.tick(now)
        if mask != self._led_mask:
            for i in range(4):
                self._led_objs[i].value((mask >> i) & 1)
            self._led_mask = mask
        if self.leds.changed and self.link.up:
            pats = list(self.leds.patterns())  # clears leds.changed
            if not self.link.send({m.K_TYPE: m.T_LEDS, m.K_LEDS_PATTERNS: pats}):
                self.leds.changed = True  # queue full: report it on a later pass

    # ---------------------------------------------------------------- outbox

    def capture(self, msg):
        # Puts a durable message (a dict) into the journal; False (and counted) when it is full.
        try:
            self._journal_put(msg)
            return True
        except JournalFull:
            self.dropped += 1
            return False

    def _journal_put(self, msg):
        j = self.journal
        msg[m.K_RID] = j.next_rid()
        j.append(cbor.dumps(msg), msg[m.K_RID])

    def _feed_link(self):
        j = self.journal
        link = self.link
        while True:
            e = j.next_unfed()
            if e is None or not link.can_send(len(e[1])):
                return
            link.send(e[1], e[0])
            j.fed()

    def _generate(self):
        # Linktest generator: as many records as the journal takes now. Each record is in the
        # journal before the generator's position is saved; a reset in between is repaired at
        # the next boot from the journal's newest entry, so no number is made twice or skipped.
        # A few per pass: the loop must keep serving the link (and the LEDs) in between.
        v = self.state.v
        budget = _GEN_PER_PASS
        while v["gen_n"] < v["gen_target"] and budget:
            budget -= 1
            n = v["gen_n"] + 1
            msg = {m.K_TYPE: m.T_LINKTEST, m.K_LT_N: n, m.K_LT_DATA: pattern(n, v["gen_size"])}
            try:
                self._journal_put(msg)
            except JournalFull:
                return
            v["gen_n"] = n
            self.state.save()

    def _reconcile_generator(self):
        last = self.journal.last_payload()
        if last is None:
            return
        try:
            msg = cbor.loads(last)
        except cbor.CborError:
            return
        n = msg.get(m.K_LT_N) if msg.get(m.K_TYPE) == m.T_LINKTEST else None
        if isinstance(n, int) and n > self.state.v["gen_n"]:
            self.state.v["gen_n"] = n
            self.state.save()

    # ---------------------------------------------------------------- events

    def _event(self, code, params):
        # queued also while the link is down: it goes out once the host is there
        return self.link.send({m.K_TYPE: m.T_EVENT, m.K_EVENT_CODE: code,
                               m.K_EVENT_PARAMS: params})

    def _handle_events(self, now):
        link = self.link
        acked = 0
        while True:
            ev = link.next_event()
            if ev is None:
                break
            kind, val = ev
            if kind == lk.EV_MESSAGE:
                try:
                    self._on_message(val, now)
                    rid = val.get(m.K_RID, 0)
                    if rid:
                        # a durable message's effect and the cursor that says it was consumed
                        # are saved together, before its acknowledgement can go out
                        self.state.v["host_stream"] = link.peer_stream()
                        self.state.v["host_cursor"] = rid
                        self.state.save()
                finally:
                    link.consumed()
            elif kind == lk.EV_ACKED:
                # one ack frame often covers several records: one flash write for all of them
                acked = val if val > acked else acked
            elif kind == lk.EV_UP:
                self._on_up(val, now)
            elif kind == lk.EV_DOWN:
                self.leds.link_lost(now)
        if acked:
            self.journal.ack(acked)
        if self.dropped != self._drop_reported and link.up:
            if self._event(m.EV_OUTBOX_DROP, [self.dropped, self.journal.used()]):
                self._drop_reported = self.dropped

    def _on_up(self, hello, now):
        if not self._boot_event_sent:
            self._boot_event_sent = True
            self._event(m.EV_BOOT, [self.state.v["boot"], self.board.reset_cause()])
        self.leds.changed = True
        self.link.send(self.status())

    def _on_message(self, msg, now):
        t = msg[m.K_TYPE]
        link = self.link
        if t == m.T_STATE:
            try:
                self.leds.set_state(
                    _int(msg, m.K_STATE_OP), _int(msg, m.K_STATE_WAN), _int(msg, m.K_STATE_LMC),
                    msg.get(m.K_STATE_INSTALL, False), _int(msg, m.K_STATE_SECURITY, 0),
                    now,
                )
                if msg.get(m.K_STATE_WAKEUP):
                    self.leds.wakeup(now)
            except (ValueError, TypeError) as e:
                link.reject(m.ERR_BAD_FIELD, "state: " + str(e), t)
        elif t == m.T_TIME:
            try:
                self.time_offset = _int(msg, m.K_TIME_UNIX_MS) - now
            except (ValueError, TypeError) as e:
                link.reject(m.ERR_BAD_FIELD, "time: " + str(e), t)
        elif t == m.T_GET_STATUS:
            link.send(self.status())
            link.send(self.linktest_report())
        elif t == m.T_LINKTEST:
            self._on_linktest(msg)
        elif t == m.T_LINKTEST_GEN:
            try:
                count = _int(msg, m.K_LTG_COUNT)
                size = _int(msg, m.K_LTG_SIZE)
                if count < 0 or size < 0 or size > link.max_payload - 32:
                    raise ValueError("count or size out of range")
            except (ValueError, TypeError) as e:
                link.reject(m.ERR_BAD_FIELD, "linktest_gen: " + str(e), t)
                return
            v = self.state.v
            # saved with the cursor right after this handler, before the acknowledgement
            v["gen_target"] = max(v["gen_target"], v["gen_n"]) + count
            v["gen_size"] = size
        elif t == m.T_RELEASE:
            self.release_requested = True
        elif t == m.T_LMN_TX:
            self._on_lmn_tx(msg)
        elif t == m.T_ERROR:
            self._event(m.EV_PEER_ERROR, [msg.get(m.K_ERROR_CODE, -1), str(msg.get(m.K_ERROR_DETAIL, ""))])
        elif t in (m.T_LEDS, m.T_STATUS, m.T_EVENT, m.T_RECORD, m.T_LINKTEST_REPORT,
                   m.T_LMN_RX, m.T_LMN_DONE):
            link.reject(m.ERR_NOT_SUPPORTED, "host may not send this type", t)
        else:
            link.reject(m.ERR_UNKNOWN_TYPE, "unknown message type", t)

    def _on_linktest(self, msg):
        v = self.state.v
        n = msg.get(m.K_LT_N)
        data = msg.get(m.K_LT_DATA)
        if not isinstance(n, int) or not isinstance(data, bytes):
            self.link.reject(m.ERR_BAD_FIELD, "linktest: n and data required", m.T_LINKTEST)
            return
        v["lt_received"] += 1
        if n != v["lt_last"] + 1:
            v["lt_ooo"] += 1
        v["lt_last"] = n
        if data != pattern(n, len(data)):
            v["lt_bad"] += 1

    def status(self):
        c = {}
        for k in self.link.counters:
            c[k] = self.link.counters[k]
        c["dropped"] = self.dropped
        c["journal_pending"] = self.journal.pending()
        if self.radio is not None:
            rc = self.radio.counters
            for k in rc:
                c["radio_" + k] = rc[k]
            c["radio_dups"] = self.dedup.dups
        try:
            free = gc.mem_free()
        except AttributeError:  # CPython
            free = -1
        return {
            m.K_TYPE: m.T_STATUS,
            m.K_STATUS_UPTIME: (self.board.ticks_ms() - self._boot_tick) & _MASK,
            m.K_STATUS_COUNTERS: c,
            m.K_STATUS_OUTBOX: [self.journal.pending(), self.journal.used(), self.journal.capacity,
                                self.dropped],
            m.K_STATUS_MEM_FREE: free,
        }

    def linktest_report(self):
        v = self.state.v
        return {
            m.K_TYPE: m.T_LINKTEST_REPORT,
            m.K_LTR_RECEIVED: v["lt_received"],
            m.K_LTR_LAST: v["lt_last"],
            m.K_LTR_OUT_OF_ORDER: v["lt_ooo"],
            m.K_LTR_BAD_DATA: v["lt_bad"],
        }


def _int(msg, key, default=None):
    v = msg.get(key, default)
    if v is None or not isinstance(v, int) or v is True or v is False:
        raise ValueError("field %d must be an integer" % key)
    return v


def pattern(n, size):
    # linktest payload: bytes derived from n, so a receiver can check content as well as order
    b = bytearray(size)
    x = n & 0xFF
    for i in range(size):
        b[i] = (x + i * 7) & 0xFF
    return bytes(b)


def run(board):
    App(board).run()
