# The MicroPython driver layer shared by every real board (boards/pico, boards/esp32, ...).
#
# A board module is facts only (plain literals: pins, UART numbers, sizes) followed by
#     from smgwfw.mcu import install
#     install(globals())
# install() checks every fact (validate) and then adds the board API that smgwfw.app needs to the
# board module's globals: link_uart(), wait(ms), leds(), ticks_ms(), nonce(), reset_cause(),
# firmware_files(), release(), plus safe_boot(), rs485_facts() and radio_facts() for main.py and
# the meter drivers. A board may define any of these functions itself before calling install();
# install() keeps a name that is already there. boards/README.md documents every fact.
#
# This module imports under CPython (tests validate the boards' facts there): machine, rp2,
# micropython and select are imported inside the functions that need them, behind
# try/except ImportError. Nothing here names a pin: every number comes from the board's facts.
import os
import sys
import time

LED_NAMES = ("PWR", "TLS", "LMC", "wMT")  # the order leds() returns them in (smgwfw.leds bits)
ARCHES = ("armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa", "xtensawin", "rv32imc")
# what the meters on the RS485 bus speak: SML push (eHZ info interface, read-only) or HDLC
# with TLS (TR-03109 LMN meters, docs/lmn-wired.md), where the gateway is the bus master
LMN_PROTOS = ("sml", "hdlc")
RADIO_MODULES = ("amb8465", "im871a")  # wM-Bus modules with a UART command interface
RADIO_CHIPS = ("cc1101",)  # transceivers driven over SPI
API = ("link_uart", "wait", "leds", "ticks_ms", "nonce", "reset_cause", "firmware_files",
       "release", "safe_boot", "lmn_port", "lmn_bus", "rs485_facts", "radio_facts", "radio")
RADIO_SPI_HZ = 4000000  # CC1101: <= 10 MHz single access, <= 6.5 MHz burst (datasheet §10)

_MASK30 = 0x3FFFFFFF
_WRITE_STALL_MS = 1000  # a link write that makes no progress for this long is abandoned


class BoardError(ValueError):
    # A fact in a board module is missing or wrong; the message names the board and the fact.
    pass


# ============================================================================== the fact schema
# Value kinds:  "uart" a UART number (0..UART_COUNT-1, not REPL_UART, each used once)
#               "spi"  an SPI bus number      "out" a GPIO the MCU drives   "in" a GPIO it reads
#               "pos"  an integer > 0         "ms"  an integer >= 0          "bool" True/False
#               a tuple: one of these strings
# A trailing "?" makes the key optional (missing or None). Keys are checked in this order, so
# the first error reported is the same on every interpreter.
_LINK_PORT = {
    # a dedicated UART (never the REPL's); rxbuf/txbuf are the driver's ring buffers in bytes
    "uart": (("id", "uart"), ("tx", "out"), ("rx", "in"), ("baudrate", "pos"),
             ("rxbuf", "pos?"), ("txbuf", "pos?")),
    # the REPL's USB CDC used as a binary channel; rxbuf: most bytes one read() returns
    "usb_cdc": (("rxbuf", "pos?"),),
}
_RS485 = {
    # half-duplex transceiver: DE high (de_active_high) drives the bus; /RE is active low and
    # is either tied to DE ("re": None) or on its own pin, driven to the same level as DE
    None: (("uart", "uart"), ("tx", "out"), ("rx", "in"), ("de", "out"), ("re", "out?"),
           ("de_active_high", "bool"), ("baud_default", "pos"), ("proto", LMN_PROTOS)),
}
_RADIO = {
    "uart_module": (("module", RADIO_MODULES), ("uart", "uart"), ("tx", "out"), ("rx", "in"),
                    ("baud", "pos"), ("reset", "out?")),
    "spi": (("chip", RADIO_CHIPS), ("spi", "spi"), ("sck", "out"), ("mosi", "out"),
            ("miso", "in"), ("cs", "out"), ("gdo0", "in"), ("gdo2", "in?")),
}
_SAFE_BOOT = {
    # window_ms: how long after start a press still counts (the button may not be held while
    # the board resets: BOOTSEL/BOOT held at reset start the ROM bootloader instead)
    "bootsel": (("window_ms", "ms?"),),
    "pin": (("pin", "in"), ("active_low", "bool"), ("window_ms", "ms?")),
}
_LINK = (("window", "pos"), ("max_payload", "pos"), ("rto_ms", "pos"), ("queue_len", "pos"),
         ("queue_bytes", "pos"))


class _Check:
    def __init__(self, ns):
        self.ns = ns
        bid = ns.get("BOARD_ID")
        self.board = bid if isinstance(bid, str) and bid else "?"
        self.pins = {}  # pin -> where it is used ("RS485.de")
        self.uarts = {}  # UART number -> where it is used

    def fail(self, where, problem):
        raise BoardError("board '%s': %s: %s" % (self.board, where, problem))

    def get(self, name, optional=False):
        if name not in self.ns or (optional and self.ns[name] is None):
            if optional:
                return None
            self.fail(name, "missing")
        return self.ns[name]

    def integer(self, where, v, low):
        if type(v) is not int or v < low:
            self.fail(where, "must be an integer >= %d, got %r" % (low, v))
        return v

    def text(self, where, v):
        if not isinstance(v, str) or not v:
            self.fail(where, "must be a non-empty string, got %r" % (v,))
        return v

    def pin_list(self, name):
        v = self.get(name, True)
        if v is None:
            return ()
        if not isinstance(v, (list, tuple)):
            self.fail(name, "must be a tuple of pin numbers")
        for p in v:
            self.integer(name, p, 0)
        return v

    def pin(self, where, v, output):
        if type(v) is not int:
            self.fail(where, "pin must be an integer, got %r" % (v,))
        if v < 0 or v >= self.pin_count:
            self.fail(where, "pin %d out of range 0..%d" % (v, self.pin_count - 1))
        if v in self.reserved:
            self.fail(where, "pin %d is reserved on this board (RESERVED_PINS)" % v)
        if output and v in self.input_only:
            self.fail(where, "pin %d is input-only (INPUT_ONLY_PINS) but must be an output" % v)
        if v in self.pins:
            self.fail(where, "pin %d already used by %s" % (v, self.pins[v]))
        self.pins[v] = where

    def value(self, where, kind, v):
        if isinstance(kind, tuple):
            if v not in kind:
                self.fail(where, "must be one of %s, got %r" % (", ".join(kind), v))
        elif kind == "out" or kind == "in":
            self.pin(where, v, kind == "out")
        elif kind == "uart":
            self.integer(where, v, 0)
            if v >= self.uart_count:
                self.fail(where, "UART %d does not exist (UART_COUNT is %d)"
                          % (v, self.uart_count))
            if v == self.repl_uart:
                self.fail(where, "UART %d carries the REPL (REPL_UART)" % v)
            if v in self.uarts:
                self.fail(where, "UART %d already used by %s" % (v, self.uarts[v]))
            self.uarts[v] = where
        elif kind == "spi" or kind == "ms":
            self.integer(where, v, 0)
        elif kind == "pos":
            self.integer(where, v, 1)
        elif kind == "bool":
            if v is not True and v is not False:
                self.fail(where, "must be True or False, got %r" % (v,))

    def table(self, name, schemas, optional):
        # One dict fact (LINK_PORT, RS485, RADIO, SAFE_BOOT) against its schema.
        d = self.get(name, optional)
        if d is None:
            return None
        if not isinstance(d, dict):
            self.fail(name, "must be a dict")
        if None in schemas:
            kind = None
            known = []
        else:
            kind = d.get("kind")
            if kind not in schemas:
                self.fail(name + ".kind", "must be one of %s, got %r"
                          % (", ".join(sorted(schemas)), kind))
            known = ["kind"]
        schema = schemas[kind]
        for key, _ in schema:
            known.append(key)
        for key in sorted(d):
            if key not in known:
                self.fail(name, "unknown key %r" % (key,))
        for key, t in schema:
            where = name + "." + key
            opt = not isinstance(t, tuple) and t.endswith("?")
            if d.get(key) is None:
                if not opt:
                    self.fail(where, "missing")
                continue
            self.value(where, t[:-1] if opt else t, d[key])
        return d

    def uart_pins(self, name, d):
        # RP2040-style fixed pin muxing: UART_PINS = {id: (tx pins, rx pins)}
        table = self.get("UART_PINS", True)
        if table is None or d is None:
            return
        key = "id" if "id" in d else "uart"
        if key not in d:
            return
        u = d[key]
        ok = table.get(u)
        if ok is None:
            self.fail(name + "." + key, "UART %d missing from UART_PINS" % u)
        if d["tx"] not in ok[0]:
            self.fail(name + ".tx", "UART%d TX cannot be on pin %d (UART_PINS allows %s)"
                      % (u, d["tx"], _ints(ok[0])))
        if d["rx"] not in ok[1]:
            self.fail(name + ".rx", "UART%d RX cannot be on pin %d (UART_PINS allows %s)"
                      % (u, d["rx"], _ints(ok[1])))

    def run(self):
        g = self.get
        self.text("BOARD_ID", g("BOARD_ID"))
        self.text("MCU", g("MCU"))
        arch = g("MPY_ARCH")
        if arch not in ARCHES:
            self.fail("MPY_ARCH", "must be one of %s, got %r" % (", ".join(ARCHES), arch))
        flash = self.integer("FLASH_BYTES", g("FLASH_BYTES"), 1)
        ram = self.integer("RAM_BYTES", g("RAM_BYTES"), 1)
        self.pin_count = self.integer("PIN_COUNT", g("PIN_COUNT"), 1)
        self.uart_count = self.integer("UART_COUNT", g("UART_COUNT"), 1)
        repl = g("REPL_UART", True)
        self.repl_uart = None if repl is None else self.integer("REPL_UART", repl, 0)
        self.reserved = self.pin_list("RESERVED_PINS")
        self.input_only = self.pin_list("INPUT_ONLY_PINS")
        up = g("UART_PINS", True)
        if up is not None and not isinstance(up, dict):
            self.fail("UART_PINS", "must be a dict {uart: (tx pins, rx pins)}")

        notes = g("PIN_NOTES", True)
        if notes is not None:
            if not isinstance(notes, dict):
                self.fail("PIN_NOTES", "must be a dict {pin: text}")
            for p in sorted(notes):
                if type(p) is not int or p < 0 or p >= self.pin_count:
                    self.fail("PIN_NOTES", "%r is not a pin number" % (p,))
                self.text("PIN_NOTES", notes[p])

        store = g("STORAGE")
        if store is not None and (not isinstance(store, str) or not store.startswith("/")):
            self.fail("STORAGE", "must be an absolute directory path or None, got %r" % (store,))
        jb = self.integer("JOURNAL_BYTES", g("JOURNAL_BYTES"), 1)
        if jb * 2 > (flash if store else ram):
            # the journal is rewritten through a temporary copy, so twice its size must fit
            self.fail("JOURNAL_BYTES", "%d is more than half of %s" % (
                jb, "FLASH_BYTES" if store else "RAM_BYTES"))

        link = g("LINK")
        if not isinstance(link, dict):
            self.fail("LINK", "must be a dict")
        for key in sorted(link):
            if key not in [k for k, _ in _LINK]:
                self.fail("LINK", "unknown key %r" % (key,))
        for key, t in _LINK:
            if key not in link:
                self.fail("LINK." + key, "missing")
            self.value("LINK." + key, t, link[key])
        if link["queue_bytes"] * 4 > ram:
            self.fail("LINK.queue_bytes", "%d is more than a quarter of RAM_BYTES" %
                      link["queue_bytes"])

        # pins and UARTs: the order here decides which of two users is named as "already"
        port = self.table("LINK_PORT", _LINK_PORT, False)
        if port["kind"] == "uart":
            self.uart_pins("LINK_PORT", port)
        rs = self.table("RS485", _RS485, True)
        self.uart_pins("RS485", rs)
        radio = self.table("RADIO", _RADIO, True)
        if radio is not None and radio["kind"] == "uart_module":
            self.uart_pins("RADIO", radio)
        self.leds()
        self.table("SAFE_BOOT", _SAFE_BOOT, True)

    def leds(self):
        leds = self.get("LEDS")
        if not isinstance(leds, dict):
            self.fail("LEDS", "must be a dict {name: (pin, active_high)}")
        if sorted(leds) != sorted(LED_NAMES):
            self.fail("LEDS", "must name exactly %s, got %s" % (
                ", ".join(LED_NAMES), ", ".join(sorted(str(k) for k in leds))))
        for name in LED_NAMES:
            v = leds[name]
            where = "LEDS." + name
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                self.fail(where, "must be (pin, active_high), got %r" % (v,))
            self.pin(where, v[0], True)
            self.value(where, "bool", v[1])


def _ints(seq):
    return ", ".join([str(x) for x in seq])


def validate(ns):
    # Checks a board's facts (its module globals, or any dict); raises BoardError naming the
    # board and the first bad fact. Returns ns.
    _Check(ns).run()
    return ns


# ================================================================================ installation

def install(ns):
    # Validates the facts in ns (a board module's globals()) and adds the board API to it.
    validate(ns)
    mcu = Mcu(ns)
    if "ticks_ms" not in ns:
        try:
            ns["ticks_ms"] = time.ticks_ms  # wraps at 2**30 like the link's clock arithmetic
        except AttributeError:  # CPython (tests): Mcu.ticks_ms below
            pass
    for name in API:
        if name not in ns:
            ns[name] = getattr(mcu, name)
    if ns["STORAGE"]:
        _makedirs(ns["STORAGE"])
    ns["_mcu"] = mcu
    return mcu


def _machine():
    try:
        import machine
    except ImportError:  # CPython
        raise BoardError("smgwfw.mcu drives MicroPython hardware: no machine module here")
    return machine


def _sleep_ms(ms):
    try:
        time.sleep_ms(ms)
    except AttributeError:  # CPython
        time.sleep(ms / 1000)


def _dirname(path):
    i = path.rfind("/")
    if i < 0:
        return ""
    return path[:i] if i else "/"


def _join(d, name):
    if not d:
        return name
    return d + name if d.endswith("/") else d + "/" + name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _makedirs(path):
    # os.makedirs does not exist on MicroPython
    d = ""
    for part in path.split("/"):
        if not part:
            continue
        d += "/" + part
        if not _exists(d):
            os.mkdir(d)


class Mcu:
    # The board API on MicroPython hardware; install() binds its methods into the board module.

    def __init__(self, ns):
        self.ns = ns
        self._link = None
        self._leds = None
        self._cause = None
        self._lmn = None
        self._radio = None

    # ------------------------------------------------------------------ time and identity
    def ticks_ms(self):
        # only used where time.ticks_ms is missing (CPython tests); install() prefers it
        try:
            return time.ticks_ms()
        except AttributeError:  # CPython
            return int(time.time() * 1000) & _MASK30

    def nonce(self):
        # 30 random bits for the link's session nonces and journal stream ids
        try:
            return int.from_bytes(os.urandom(4), "big") & _MASK30
        except (AttributeError, OSError):
            pass
        try:
            import random

            return random.getrandbits(30)
        except (ImportError, AttributeError, OSError):
            pass
        return (time.ticks_us() * 2654435761) & _MASK30  # last resort: the microsecond clock

    def reset_cause(self):
        # machine.reset_cause() as a short string. On rp2 a soft reset (Ctrl-D) keeps the
        # hardware's last cause, so "power-on" there can also mean "soft".
        if self._cause is None:
            machine = _machine()
            c = machine.reset_cause()
            self._cause = "unknown"
            for attr, name in (("PWRON_RESET", "power-on"), ("WDT_RESET", "watchdog"),
                               ("SOFT_RESET", "soft"), ("DEEPSLEEP_RESET", "deep-sleep"),
                               ("HARD_RESET", "hard")):
                if getattr(machine, attr, None) == c:
                    self._cause = name
                    break
        return self._cause

    def firmware_files(self):
        # [(name, path)] of the installed firmware for the hello hashes: smgwfw/*.py|*.mpy next
        # to smgwfw.__file__, then main.py and board.py from the directory of the board module.
        # Frozen firmware (boards/*/manifest.py) has no files to read: then this returns [] and
        # the image is identified by the frozen identification module smgwfw/_ident.py (IDENT,
        # docs/firmware-identity.md) instead.
        try:
            import smgwfw

            pkg = _dirname(smgwfw.__file__)
        except (ImportError, AttributeError):
            return []
        if pkg.startswith(".frozen") or "/.frozen" in pkg:
            return []
        try:
            names = os.listdir(pkg or ".")
        except OSError:
            return []
        out = []
        for n in sorted(names):
            if n.endswith(".py") or n.endswith(".mpy"):
                out.append(("smgwfw/" + n, _join(pkg, n)))
        root = _dirname(self.ns.get("__file__") or "")
        for n in ("main.py", "board.py"):
            p = _join(root, n)
            if _exists(p):
                out.append((n, p))
        return out

    # ------------------------------------------------------------------ the link to the host
    def link_uart(self):
        if self._link is None:
            port = self.ns["LINK_PORT"]
            if port["kind"] == "uart":
                self._link = _Uart(port)
            else:
                self._link = _UsbCdc(port)
        return self._link

    def wait(self, ms):
        # sleep until link input arrives or ms pass
        if ms <= 0:
            return
        if self._link is None:
            _sleep_ms(ms)
        else:
            self._link.wait(ms)

    def release(self):
        # the host sent RELEASE: hand USB CDC back to the REPL (mpremote) before it flashes
        if self._link is not None:
            self._link.release()

    # ------------------------------------------------------------------ LEDs and buttons
    def leds(self):
        # four objects with value(v), in LED_NAMES order; Signal hides each LED's polarity
        if self._leds is None:
            machine = _machine()
            out = []
            for name in LED_NAMES:
                pin, active_high = self.ns["LEDS"][name]
                s = machine.Signal(machine.Pin(pin, machine.Pin.OUT), invert=not active_high)
                s.value(0)
                out.append(s)
            self._leds = tuple(out)
        return self._leds

    def safe_boot(self):
        # True when the safe-boot button is pressed within SAFE_BOOT["window_ms"] (default
        # 1000) after start; main.py then leaves the REPL alone. The PWR LED is lit during the
        # window as the cue to press.
        sb = self.ns.get("SAFE_BOOT")
        if not sb:
            return False
        if sb["kind"] == "bootsel":
            try:
                import rp2
            except ImportError:  # not an RP2040/RP2350
                return False

            def pressed():
                return rp2.bootsel_button() == 1

        else:
            machine = _machine()
            low = sb["active_low"]
            pin = machine.Pin(sb["pin"], machine.Pin.IN,
                              machine.Pin.PULL_UP if low else machine.Pin.PULL_DOWN)
            level = 0 if low else 1

            def pressed():
                return pin.value() == level

        window = sb.get("window_ms")
        if window is None:
            window = 1000
        pwr = self.leds()[0]
        pwr.value(1)
        held = 0
        waited = 0
        try:
            while True:
                held = held + 1 if pressed() else 0
                if held >= 3:  # three samples 10 ms apart: not a bounce
                    return True
                if waited >= window:
                    return False
                _sleep_ms(10)
                waited += 10
        finally:
            pwr.value(0)

    # ------------------------------------------------------------------ meter interfaces
    def lmn_port(self):
        # LMN-1: the RS485 meter bus as a half-duplex port (smgwfw.rs485), or None when the
        # board has no RS485 facts. The port is opened once; its flush() margin is measured.
        rs = self.ns.get("RS485")
        if self._lmn is None and rs and rs["proto"] == "sml":
            from smgwfw import rs485

            self._lmn = rs485.open_port(self.ns["RS485"])
            self._lmn.measure_flush()
        return self._lmn

    def lmn_bus(self):
        # LMN-1 as the HDLC bus of TR-03109 meters (smgwfw.lmnbus drives it), or None
        rs = self.ns.get("RS485")
        if self._lmn is None and rs and rs["proto"] == "hdlc":
            from smgwfw import rs485

            self._lmn = rs485.open_port(rs)
            self._lmn.measure_flush()
        return self._lmn if rs and rs["proto"] == "hdlc" else None

    def rs485_facts(self):
        # the validated RS485 dict (uart, tx, rx, de, re, de_active_high, baud_default) or None
        return self.ns.get("RS485")

    def radio_facts(self):
        # the validated RADIO dict (kind "uart_module" or "spi") or None
        return self.ns.get("RADIO")

    def radio(self):
        # LMN-A: the wM-Bus receiver built from the RADIO facts (docs/radio.md), once; None when
        # the board has none or its part has no driver yet (im871a). Nothing is sent to the
        # part here: smgwfw.app calls start_recv().
        r = self.ns.get("RADIO")
        if not r:
            return None
        if self._radio is None:
            machine = _machine()
            if r["kind"] == "uart_module":
                if r["module"] != "amb8465":
                    return None
                from smgwfw.amb8465 import Amb8465

                # the receive buffer holds what arrives in 200 ms, and half again
                rxbuf = (r["baud"] * 3 // 100 + 63) // 64 * 64
                uart = machine.UART(r["uart"], baudrate=r["baud"], tx=machine.Pin(r["tx"]),
                                    rx=machine.Pin(r["rx"]), timeout=0,
                                    rxbuf=rxbuf if rxbuf > 256 else 256)
                reset = None
                if r.get("reset") is not None:
                    reset = machine.Pin(r["reset"], machine.Pin.OUT, value=1)
                self._radio = Amb8465(uart, reset)
            else:
                from smgwfw.cc1101 import CC1101

                spi = machine.SPI(r["spi"], baudrate=RADIO_SPI_HZ, polarity=0, phase=0,
                                  sck=machine.Pin(r["sck"]), mosi=machine.Pin(r["mosi"]),
                                  miso=machine.Pin(r["miso"]))
                cs = machine.Pin(r["cs"], machine.Pin.OUT, value=1)
                gdo0 = machine.Pin(r["gdo0"], machine.Pin.IN)
                gdo2 = None
                if r.get("gdo2") is not None:
                    gdo2 = machine.Pin(r["gdo2"], machine.Pin.IN)
                self._radio = CC1101(spi, cs, gdo0, gdo2)
        return self._radio


def _poller(stream):
    # select.poll on stream, or None where the stream cannot be polled
    try:
        import select

        p = select.poll()
        p.register(stream, select.POLLIN)
        return p
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return None


def _wait_on(poller, ms):
    if poller is None:
        _sleep_ms(ms)
    else:
        poller.poll(ms)


class _Uart:
    # A dedicated machine.UART (validate() refuses the REPL's). timeout=0: read() never blocks.
    def __init__(self, port):
        machine = _machine()
        kw = {"baudrate": port["baudrate"], "tx": machine.Pin(port["tx"]),
              "rx": machine.Pin(port["rx"]), "timeout": 0, "rxbuf": port.get("rxbuf") or 1024}
        if port.get("txbuf"):
            kw["txbuf"] = port["txbuf"]
        self.uart = machine.UART(port["id"], **kw)
        self._poll = _poller(self.uart)

    def read(self):
        data = self.uart.read()
        return data if data else None

    def write(self, buf):
        _write_all(self.uart.write, buf)

    def wait(self, ms):
        _wait_on(self._poll, ms)

    def release(self):
        pass  # the REPL has its own port on these boards


class _UsbCdc:
    # The REPL's USB CDC (/dev/ttyACM0) as a binary channel, for boards without a spare UART
    # adapter (the Pico). While the link owns it:
    # - micropython.kbd_intr(-1): a 0x03 byte inside a frame must not raise KeyboardInterrupt
    #   (so Ctrl-C does not stop the firmware either: the host sends RELEASE, see release());
    # - nothing may print(): every byte on stdout goes to the host as link input. An uncaught
    #   exception's traceback also lands there; the host's deframer skips it as garbage.
    # sys.stdin.buffer.readinto(n bytes) blocks until n bytes came, so read() takes one byte per
    # poll that reports input, up to rxbuf bytes per call.
    def __init__(self, port):
        try:
            import micropython

            micropython.kbd_intr(-1)
        except (ImportError, AttributeError):  # CPython tests
            pass
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = _poller(sys.stdin)
        self._buf = bytearray(port.get("rxbuf") or 256)
        self._one = bytearray(1)
        self.released = False

    def read(self):
        if self._poll is None:
            return None
        buf = self._buf
        one = self._one
        rd = self._in.readinto
        poll = self._poll.poll
        n = 0
        while n < len(buf) and poll(0):
            if not rd(one):
                break
            buf[n] = one[0]
            n += 1
        return bytes(memoryview(buf)[:n]) if n else None

    def write(self, buf):
        _write_all(self._out.write, buf)

    def wait(self, ms):
        _wait_on(self._poll, ms)

    def release(self):
        # give Ctrl-C back so mpremote can interrupt and take over the REPL
        if self.released:
            return
        self.released = True
        try:
            import micropython

            micropython.kbd_intr(3)
        except (ImportError, AttributeError):  # CPython tests
            pass


def _write_all(write, buf):
    # UART.write with timeout=0 may take only part of buf (or None) when its ring buffer is full
    mv = memoryview(buf)
    stalled = 0
    while len(mv):
        n = write(mv)
        if n:
            mv = mv[n:]
            stalled = 0
        else:
            if stalled >= _WRITE_STALL_MS:
                return  # the link layer retransmits; the deframer resyncs on the next frame
            _sleep_ms(1)
            stalled += 1
