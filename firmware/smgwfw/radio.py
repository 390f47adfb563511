# The chip-independent part of the wireless M-Bus receivers (LMN-A), in the style of
# micropython-lib's lora package (style.md habit 4): this base holds state and pure helpers, each
# driver (smgwfw.amb8465, smgwfw.cc1101) implements a few non-blocking primitives, and the
# hardware (UART, SPI, pins) is passed in. docs/radio.md describes the API and the settings.
#
#   r = Amb8465(uart, reset=None)   or   CC1101(spi, cs, gdo0=None, gdo2=None)
#   r.set_mode("T1")                "T1", "C1" or "S1" (what the driver supports: r.SUPPORTED);
#                                   a ConfigError (ValueError) names an unknown or unsupported one
#   r.start_recv()                  begin listening (the driver's start-up runs in poll_recv)
#   p = r.poll_recv(now_ms)         one step: an RxPacket, or None; call it often, and again at
#                                   once after a packet (several may be waiting)
#   r.standby()                     stop listening; start_recv() resumes
#   r.counters                      dict of event counts, never reset here
#   r.MODULE                        "amb8465" / "cc1101": names the receiver in the meta data
#
# An RxPacket: data (bytes: the telegram from its L-field, DLL CRCs removed), rssi_dbm (int),
# mode ("T1"/"C1"/"S1": what was received), frame ("A", "B", or "?" where the receiver does
# not say), crc_ok (the DLL CRCs, or the module's own check, passed) and tick_ms (the
# millisecond counter when the telegram began to arrive). A radio never raises from poll_recv
# for anything the air or the module sends: it counts it and carries on.
import time

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


MODES = ("T1", "C1", "S1")
_MASK = const(0x3FFFFFFF)


class ConfigError(ValueError):
    # A setting the radio cannot take; the message names it (as lora's ConfigError does).
    pass


class RxPacket:
    def __init__(self, data, rssi_dbm, mode, frame, crc_ok, tick_ms):
        self.data = data
        self.rssi_dbm = rssi_dbm
        self.mode = mode
        self.frame = frame
        self.crc_ok = crc_ok
        self.tick_ms = tick_ms


def rssi_dbm(raw, offset=74):
    # A received-signal byte in two's complement, half-dB steps, as the CC1101 (datasheet
    # §17.3) and the Amber modules (manual, CMD_RSSI_REQ) report it:
    #   dBm = raw / 2 - 74 (raw < 128),  (raw - 256) / 2 - 74 (raw >= 128)
    # The half is truncated toward zero, as C's "/" (and wmbusmeters) does, so 0xFF -> -74 and
    # 0x08 -> -70. An integer dBm d in -138..-11 is sent as (2 * (d + 74)) & 0xFF and comes back
    # exactly.
    s = raw - 256 if raw >= 128 else raw
    h = s // 2 if s >= 0 else -((-s) // 2)
    return h - offset


try:
    _ticks_ms = time.ticks_ms
except AttributeError:  # CPython

    def _ticks_ms():
        return int(time.monotonic() * 1000) & _MASK


class Radio:
    MODULE = "?"
    SUPPORTED = MODES

    def __init__(self, ticks_ms=None, counters=()):
        # ticks_ms: the millisecond clock (wrapping at 2**30), for poll_recv(None) and timeouts
        self._ticks = ticks_ms or _ticks_ms
        self.mode = self.SUPPORTED[0]
        self.counters = {"telegrams": 0}
        for name in counters:
            self.counters[name] = 0

    def set_mode(self, mode):
        if mode not in MODES:
            raise ConfigError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        if mode not in self.SUPPORTED:
            raise ConfigError("%s does not receive mode %s" % (self.MODULE, mode))
        self.mode = mode
        self._mode_changed()

    def _mode_changed(self):
        # the driver applies a new mode (at once while receiving, else at start_recv)
        pass

    def start_recv(self):
        raise NotImplementedError

    def poll_recv(self, now_ms=None):
        raise NotImplementedError

    def standby(self):
        raise NotImplementedError

    def _now(self, now_ms):
        return self._ticks() & _MASK if now_ms is None else now_ms & _MASK
