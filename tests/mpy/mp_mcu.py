# Differential test: smgwfw.mcu, the driver layer of the real boards. validate() on the ESP32
# board's own facts (boards/esp32/board.py, executed with install() replaced) and on a Pico-like
# set, then on variants, broken or not (the error messages are printed); then install() on fake
# machine and rp2 modules: LED signals, the UART link with partial writes, reset causes, safe
# boot, firmware_files and the storage directory.
# mp-files: boards/esp32/board.py
import os
import sys

if sys.implementation.name == "micropython":
    INPUT = "/input"
else:
    INPUT = os.environ["MPY_INPUT"]

from smgwfw import mcu


def clone(v):
    if isinstance(v, dict):
        out = {}
        for k in v:
            out[k] = clone(v[k])
        return out
    if isinstance(v, list):
        return [clone(x) for x in v]
    return v


def show(v):
    # a canonical text of a fact value (dict order differs between the interpreters)
    if isinstance(v, dict):
        return "{" + ", ".join([repr(k) + ": " + show(v[k]) for k in sorted(v)]) + "}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join([show(x) for x in v]) + ")"
    return repr(v)


# ------------------------------------------------------------------ the ESP32 board's own file
seen = []
real_install = mcu.install
mcu.install = lambda ns: seen.append(mcu.validate(ns))
esp = {"__name__": "board"}
with open(INPUT + "/board.py") as f:
    exec(f.read(), esp)
mcu.install = real_install
print("esp32 board.py validated:", len(seen), seen[0] is esp)
ESP = {}
for k in esp:
    if k.isupper():
        ESP[k] = esp[k]
print("esp32 facts:", " ".join(sorted(ESP)))

PICO = {
    "BOARD_ID": "pico", "MCU": "RP2040", "MPY_ARCH": "armv6m", "FLASH_BYTES": 2 << 20,
    "RAM_BYTES": 264 << 10, "PIN_COUNT": 30, "UART_COUNT": 2, "REPL_UART": None,
    "RESERVED_PINS": (23, 24, 29), "INPUT_ONLY_PINS": (),
    "UART_PINS": {0: ((0, 12, 16, 28), (1, 13, 17, 29)), 1: ((4, 8, 20, 24), (5, 9, 21, 25))},
    "LINK_PORT": {"kind": "usb_cdc"},
    "LINK": {"window": 8, "max_payload": 1024, "rto_ms": 1017, "queue_len": 32,
             "queue_bytes": 16384},
    "RS485": {"uart": 1, "tx": 4, "rx": 5, "de": 6, "re": None, "de_active_high": True,
              "baud_default": 9600, "proto": "sml"},
    "RADIO": {"kind": "uart_module", "module": "amb8465", "uart": 0, "tx": 0, "rx": 1,
              "baud": 9600, "reset": 2},
    "LEDS": {"PWR": (25, True), "TLS": (10, True), "LMC": (11, True), "wMT": (12, True)},
    "SAFE_BOOT": {"kind": "bootsel", "window_ms": 30},
    "STORAGE": "/data", "JOURNAL_BYTES": 256 << 10,
}
print("pico valid:", mcu.validate(PICO) is PICO)


# ------------------------------------------------------------------ broken facts
def broken(base, path, value):
    f = clone(base)
    d = f
    for k in path[:-1]:
        d = d[k]
    if value is KeyError:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    try:
        mcu.validate(f)
        print("accepted:", ".".join(path), "=", show(value))
    except mcu.BoardError as e:
        print("rejected:", e.args[0], "| ValueError:", isinstance(e, ValueError))


CASES = (
    (PICO, ("BOARD_ID",), KeyError),
    (PICO, ("BOARD_ID",), 7),
    (PICO, ("MPY_ARCH",), "x86"),
    (PICO, ("PIN_COUNT",), True),
    (PICO, ("LEDS", "wMT"), KeyError),
    (PICO, ("LEDS", "pwr"), (13, True)),
    (PICO, ("LEDS", "PWR"), 25),
    (PICO, ("LEDS", "PWR"), (25, 1)),
    (PICO, ("LEDS", "TLS"), (5, True)),
    (PICO, ("LEDS", "TLS"), (29, True)),
    (PICO, ("RADIO", "reset"), 30),
    (PICO, ("RADIO", "reset"), -1),
    (PICO, ("RADIO", "uart"), 1),
    (PICO, ("RADIO", "module"), "rfm69"),
    (PICO, ("RADIO", "kind"), KeyError),
    (PICO, ("RS485", "uart"), 2),
    (PICO, ("RS485", "tx"), 8.0),
    (PICO, ("RS485", "rx"), 7),
    (PICO, ("RS485", "re"), 7),  # accepted: /RE on a pin of its own
    (PICO, ("RS485", "re"), 6),
    (PICO, ("RS485", "baud"), 9600),
    (PICO, ("RS485", "de_active_high"), KeyError),
    (PICO, ("LINK_PORT",), {"kind": "uart", "id": 1, "tx": 8, "rx": 9, "baudrate": 115200}),
    (PICO, ("LINK_PORT", "kind"), "spi"),
    (PICO, ("LINK", "rto"), 100),
    (PICO, ("LINK", "queue_bytes"), 1 << 20),
    (PICO, ("STORAGE",), "data"),
    (PICO, ("JOURNAL_BYTES",), 3 << 20),
    (PICO, ("SAFE_BOOT", "window_ms"), -5),
    (PICO, ("UART_PINS",), [1, 2]),
    (PICO, ("PIN_NOTES",), {99: "x"}),
    (ESP, ("LINK_PORT", "id"), 0),
    (ESP, ("LINK_PORT", "rx"), 3),
    (ESP, ("LEDS", "PWR"), (34, True)),
    (ESP, ("SAFE_BOOT", "pin"), 4),
    (ESP, ("SAFE_BOOT", "active_low"), "yes"),
    (ESP, ("RADIO", "cs"), 40),
    (ESP, ("RADIO", "miso"), 35),  # accepted: an input may be input-only
    (ESP, ("RADIO", "miso"), 6),
    (ESP, ("RADIO", "gdo2"), None),  # accepted: optional
)
for base, path, value in CASES:
    broken(base, path, value)


# ------------------------------------------------------------------ install on fake hardware
class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    PULL_DOWN = 3
    levels = {}

    def __init__(self, pin, mode=-1, pull=-1):
        self.pin = pin
        self.mode = mode
        self.pull = pull

    def value(self, v=None):
        if v is None:
            return Pin.levels.get(self.pin, 1)
        Pin.levels[self.pin] = v


class Signal:
    def __init__(self, pin, invert=False):
        self.pin = pin
        self.invert = invert
        self.v = None

    def value(self, v):
        self.v = v


class UART:
    def __init__(self, uart_id, **kw):
        self.uart_id = uart_id
        self.kw = kw
        self.rx = b""
        self.sent = bytearray()
        self.accept = [3, 0, None, 2]

    def read(self):
        data = self.rx
        self.rx = b""
        return data or None

    def write(self, buf):
        n = self.accept.pop(0) if self.accept else len(buf)
        if n:
            n = min(n, len(buf))
            self.sent += bytes(buf[:n])
        return n


class FakeMachine:
    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    DEEPSLEEP_RESET = 4
    SOFT_RESET = 5
    cause = 1

    @staticmethod
    def reset_cause():
        return FakeMachine.cause


FakeMachine.Pin = Pin
FakeMachine.Signal = Signal
FakeMachine.UART = UART


class FakeRp2:
    pressed = 0

    @staticmethod
    def bootsel_button():
        return FakeRp2.pressed


sys.modules["machine"] = FakeMachine
sys.modules["rp2"] = FakeRp2

ns = clone(ESP)
ns["STORAGE"] = INPUT + "/flash/data"
ns["__file__"] = INPUT + "/board.py"
ns["SAFE_BOOT"]["window_ms"] = 30
mcu.install(ns)
print("api:", " ".join([n for n in mcu.API if callable(ns[n])]))
print("storage made:", "data" in os.listdir(INPUT + "/flash"))
n = ns["nonce"]()
print("nonce in range:", 0 <= n < (1 << 30))

for code in (1, 2, 3, 4, 5, 42):
    FakeMachine.cause = code
    ns2 = clone(ESP)
    ns2["STORAGE"] = None
    ns2["JOURNAL_BYTES"] = 4096
    mcu.install(ns2)
    print("reset cause", code, ns2["reset_cause"](), ns2["reset_cause"]())

leds = ns["leds"]()
print("leds:", [(s.pin.pin, s.pin.mode, s.invert, s.v) for s in leds], leds is ns["leds"]())

link = ns["link_uart"]()
u = link.uart
print("uart", u.uart_id, show({k: (u.kw[k].pin if isinstance(u.kw[k], Pin) else u.kw[k])
                               for k in u.kw}))
print("read empty:", link.read())
u.rx = b"\x00\x03ab"
print("read:", link.read())
link.write(b"0123456789")
print("sent:", bytes(u.sent))
ns["wait"](0)
ns["wait"](2)
ns["release"]()

Pin.levels[0] = 1
print("safe boot (not pressed):", ns["safe_boot"](), "PWR after:", leds[0].v)
Pin.levels[0] = 0
print("safe boot (pressed):", ns["safe_boot"]())

pico = clone(PICO)
pico["STORAGE"] = None
pico["JOURNAL_BYTES"] = 4096
mcu.install(pico)
print("bootsel (not pressed):", pico["safe_boot"]())
FakeRp2.pressed = 1
print("bootsel (pressed):", pico["safe_boot"]())
print("rs485:", show(pico["rs485_facts"]()))
print("radio:", show(pico["radio_facts"]()))

with open(INPUT + "/main.py", "w") as f:
    f.write("import board\n")
files = ns["firmware_files"]()
names = [n for n, p in files]
print("files:", " ".join(names))
print("files are paths:", all([p.endswith(n.split("/")[-1]) for n, p in files]))
print("OK")
