# cpython-only
# The simulated board: the real firmware runs under CPython with the hardware replaced.
#
# - The link UART is a serial port opened with pyserial: a pseudo-terminal that the host's
#   simulator bridges to the host (or any pyserial URL), from SMGW_SIM_PORT.
# - The four LEDs are recorded: every level change is appended to "<state>/leds.log" as
#   "<ticks_ms> <LED> <0|1>" so tests and tools can check the patterns a real board would show.
# - Storage is a directory (SMGW_SIM_STATE), standing in for the board's littlefs flash, so the
#   outbox journal survives a killed firmware process exactly as it survives a reset on a board.
import os
import select
import time

import serial

BOARD_ID = "sim"
LED_NAMES = ("PWR", "TLS", "LMC", "wMT")
BAUDRATE = int(os.environ.get("SMGW_SIM_BAUD", "115200"))
STORAGE = os.environ.get("SMGW_SIM_STATE", "var/sim-board")
JOURNAL_BYTES = int(os.environ.get("SMGW_SIM_JOURNAL_BYTES", str(4 * 1024 * 1024)))
# link parameters: a pty has no baud-rate delay, so the retransmit timer can be short
LINK = {
    "window": 8,
    "max_payload": 1024,
    "rto_ms": int(os.environ.get("SMGW_SIM_RTO_MS", "100")),
    "queue_len": 32,
    "queue_bytes": 32768,
}

_T0 = time.monotonic()
os.makedirs(STORAGE, exist_ok=True)


def ticks_ms():
    return int((time.monotonic() - _T0) * 1000) & 0x3FFFFFFF


def nonce():
    return int.from_bytes(os.urandom(4), "big")


def reset_cause():
    return "power-on"


def firmware_files():
    import smgwfw

    d = os.path.dirname(smgwfw.__file__)
    names = sorted(n for n in os.listdir(d) if n.endswith((".py", ".mpy")))
    return [("smgwfw/" + n, os.path.join(d, n)) for n in names]


class _Uart:
    def __init__(self, port):
        self._s = serial.serial_for_url(port, baudrate=BAUDRATE, timeout=0, write_timeout=5)
        try:
            self._fd = self._s.fileno()
        except Exception:
            self._fd = None

    def read(self):
        n = self._s.in_waiting
        return self._s.read(n) if n else None

    def write(self, data):
        self._s.write(data)

    def wait(self, ms):
        if ms <= 0:
            return
        if self._fd is not None:
            select.select([self._fd], [], [], ms / 1000)
        else:
            time.sleep(ms / 1000)


_uart = None


def link_uart():
    global _uart
    if _uart is None:
        _uart = _Uart(os.environ["SMGW_SIM_PORT"])
    return _uart


def wait(ms):
    # sleep until either port has bytes, or ms
    if ms <= 0:
        return
    fds = [f for f in (link_uart()._fd, _lmn._s.fileno() if _lmn is not None else None,
                       _bus._s.fileno() if _bus is not None else None,
                       _radio_port._s.fileno() if _radio_port is not None else None)
           if f is not None]
    if fds:
        select.select(fds, [], [], ms / 1000)
    else:
        time.sleep(ms / 1000)


class _Led:
    def __init__(self, name, log):
        self.name = name
        self._log = log
        self._v = None

    def value(self, v):
        if v != self._v:
            self._v = v
            self._log.write("%d %s %d\n" % (ticks_ms(), self.name, v))
            self._log.flush()


_leds = None


def leds():
    global _leds
    if _leds is None:
        log = open(os.path.join(STORAGE, "leds.log"), "a", buffering=1)
        _leds = tuple(_Led(n, log) for n in LED_NAMES)
    return _leds


# LMN-1, the wired meter bus: on the sim board a serial port (a pty to the meter simulator, or a
# USB-RS485 adapter on a bench) from SMGW_SIM_METER_PORT; none when it is not set.
METER_BAUDRATE = int(os.environ.get("SMGW_SIM_METER_BAUD", "9600"))
_lmn = None


class _MeterPort:
    def __init__(self, port):
        self._s = serial.serial_for_url(port, baudrate=METER_BAUDRATE, timeout=0)

    def read(self):
        n = self._s.in_waiting
        return self._s.read(n) if n else None

    def write(self, data):
        self._s.write(data)


def lmn_port():
    global _lmn
    port = os.environ.get("SMGW_SIM_METER_PORT")
    if not port:
        return None
    if _lmn is None:
        _lmn = _MeterPort(port)
    return _lmn


# The RS-485 bus of TR-03109 meters (HDLC, docs/lmn-wired.md): a serial port from
# SMGW_SIM_LMN_PORT (a pty to `tools/metersim.py --lmn`, or a USB-RS485 adapter, whose driver
# switches direction itself); none when it is not set.
LMN_BAUDRATE = int(os.environ.get("SMGW_SIM_LMN_BAUD", "115200"))
_bus = None


class _BusPort(_MeterPort):
    def __init__(self, port):
        self._s = serial.serial_for_url(port, baudrate=LMN_BAUDRATE, timeout=0,
                                        write_timeout=2)
        self.baud = LMN_BAUDRATE

    def send(self, data):
        # blocks until the bytes have left (tcdrain), as the RS-485 driver does before it
        # releases the line; 0 when the port took nothing
        try:
            n = self._s.write(data)
            self._s.flush()
        except serial.SerialTimeoutException:
            return 0
        return n or 0


def lmn_bus():
    global _bus
    port = os.environ.get("SMGW_SIM_LMN_PORT")
    if not port:
        return None
    if _bus is None:
        _bus = _BusPort(port)
    return _bus


# LMN-A, the wireless meters: an AMBER AMB8465-M wM-Bus stick speaking its UART command
# protocol (docs/amb8465.md), on a serial port from SMGW_SIM_RADIO_PORT (a pty to the radio
# simulator, or the stick itself on a bench: /dev/ttyUSB0); none when it is not set.
RADIO_BAUDRATE = int(os.environ.get("SMGW_SIM_RADIO_BAUD", "9600"))
_radio = None
_radio_port = None  # its serial port, so that wait() wakes when a telegram arrives


class _RadioPort:
    # what smgwfw.amb8465 needs of a UART: readinto() without blocking, write()
    def __init__(self, port):
        self._s = serial.serial_for_url(port, baudrate=RADIO_BAUDRATE, timeout=0,
                                        write_timeout=2)

    def readinto(self, buf):
        n = self._s.in_waiting
        if not n:
            return None
        data = self._s.read(min(n, len(buf)))
        buf[:len(data)] = data
        return len(data)

    def write(self, data):
        try:
            return self._s.write(data)
        except serial.SerialTimeoutException:
            return 0


def radio():
    global _radio
    port = os.environ.get("SMGW_SIM_RADIO_PORT")
    if not port:
        return None
    if _radio is None:
        from smgwfw.amb8465 import Amb8465

        global _radio_port
        _radio_port = _RadioPort(port)
        _radio = Amb8465(_radio_port, ticks_ms=ticks_ms)
        # the air mode the module listens in (T1 by default; C1 for compact-mode meters)
        _radio.set_mode(os.environ.get("SMGW_SIM_RADIO_MODE", "T1"))
    return _radio
