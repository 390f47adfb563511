# The LED pattern engine: which pattern each of the four front LEDs shows, and whether it is lit
# at a given millisecond. Pure (no I/O, no clock): the caller passes now_ms and drives the pins.
#
#   eng = LedEngine(now_ms)          boot sequence: all four blink for BOOT_MS, then all off
#   eng.set_state(op, wan, lmc, install, security, now_ms)   the host's STATE message
#   eng.wakeup(now_ms)               valid wake-up packet: TLS fast pulses for WAKEUP_MS
#   eng.flash_wmt(now_ms)            a wM-Bus telegram arrived: wMT lit for FLASH_MS
#   eng.link_lost(now_ms)            the host is gone: show what the firmware alone knows
#   eng.tick(now_ms) -> int          bit i set = LED i lit now (no allocation)
#   eng.changed / eng.patterns()     pattern codes changed since last patterns() / the codes
#
# docs/leds.md has the full table (LED x condition -> pattern -> seed manual) and the reasons
# behind every choice. Seeds: 000 = PPC manual §2.4/§2.6, 001 = Theben manual B-3/D-2,
# 002 = EMH manual §2.3.2/§8.
#
# Timing: now_ms is a wrapping millisecond counter (MicroPython time.ticks_ms(); CPython callers
# mask a monotonic ms clock to 30 bits). All comparisons go through _diff, so the counter may wrap
# at 2**30; tick() must be called at least once every few days (in practice every few ms).
# All intermediate values stay below 2**30 so they remain small ints on 32-bit ports (no heap).
from smgwfw import messages as m

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


# LED indices (also the bit numbers in tick()'s mask and the order in LEDS messages)
PWR = const(0)
TLS = const(1)
LMC = const(2)
WMT = const(3)

# Pattern codes. Stable: they travel to the host in LEDS messages (messages.K_LEDS_PATTERNS).
P_OFF = const(0)
P_ON = const(1)
P_BLINK_500 = const(2)  # 500 ms on / 500 ms off
P_BLINK_250 = const(3)  # 250 ms on / 250 ms off
P_BLINK_125 = const(4)  # 125 ms on / 125 ms off
P_BLINK_50 = const(5)  # 50 ms on / 50 ms off
P_HEARTBEAT = const(6)  # 150 on, 150 off, 150 on, 1550 off (two quick blinks, long pause)
P_FLASH = const(7)  # off; lit for FLASH_MS after each received telegram (retriggerable)
P_MAX = const(7)

BOOT_MS = const(3000)  # seed 000 §2.4: all four blink together for three seconds at power-up
WAKEUP_MS = const(3000)  # seed 001 B-3: 125 ms pulses for 3 s on a valid wake-up packet
FLASH_MS = const(250)  # seed 000 §2.4 "at most 250 ms"; inside seed 001 B-3's 500 +/- 250 ms
CYCLE_MS = const(2000)  # common multiple of all pattern periods (phase origin moves by this)

_MASK = const(0x3FFFFFFF)  # ticks wrap at 2**30
_HALF = const(0x20000000)

# Per pattern: cumulative segment ends within one period, alternating on, off, on, off ...
# (segment j is lit when j is even). The last entry is the period. Empty for the static codes.
_SEGS = (
    (),  # P_OFF
    (),  # P_ON
    (500, 1000),  # P_BLINK_500
    (250, 500),  # P_BLINK_250
    (125, 250),  # P_BLINK_125
    (50, 100),  # P_BLINK_50
    (150, 300, 450, 2000),  # P_HEARTBEAT
    (),  # P_FLASH
)
_PERIODS = (0, 0, 1000, 500, 250, 100, 2000, 0)
_NAMES = ("off", "on", "blink-500", "blink-250", "blink-125", "blink-50", "heartbeat", "flash")

# Security-violation code -> LEDs that blink (bit i = LED i). Seed 000 §2.4 lists the five
# patterns; PWR takes part in all of them. SEC_PWR_WMT blinks in phase (000 allows "together or
# offset"; together keeps one rule for all patterns).
_SEC_LEDS = bytes((0, 0x03, 0x05, 0x07, 0x09, 0x0F))

# what the engine renders besides the boot sequence
_M_NONE = const(0)  # no STATE since boot: all dark (seed 000 §2.4: off for the rest of start-up)
_M_HOST = const(1)  # the host's STATE is rendered
_M_LOST = const(2)  # the host went away (link_lost)


def _diff(a, b):
    # a - b on the 2**30 wrapping counter, in [-2**29, 2**29) (like time.ticks_diff)
    r = (a - b) & _MASK
    if r & _HALF:
        r = r - _MASK - 1
    return r


def _add(a, n):
    # a + n on the wrapping counter, 0 <= n < 2**29, without leaving small-int range
    return (a - _MASK - 1 + n) & _MASK


def pattern_name(code):
    # short English name for status displays; "unknown" for codes this build does not know
    if isinstance(code, int) and 0 <= code <= P_MAX:
        return _NAMES[code]
    return "unknown"


def _check(value, hi, what):
    # an int in 0..hi; a bool only where hi == 1 (the install flag). MicroPython's bool is no
    # int subclass, so bools are tested by identity on both interpreters.
    if value is True or value is False:
        if hi != 1:
            raise ValueError("bad " + what)
        return 1 if value else 0
    if not isinstance(value, int) or value < 0 or value > hi:
        raise ValueError("bad " + what)
    return value


class LedEngine:
    def __init__(self, now_ms):
        self._pat = bytearray(4)  # current pattern code per LED (returned by patterns())
        self.changed = True  # the codes differ from what patterns() last handed out
        self._origin = now_ms & _MASK  # common phase origin of every blinking LED
        self._boot = True
        self._boot_t = now_ms & _MASK
        self._wake = False
        self._wake_t = 0
        self._flash = False
        self._flash_t = 0
        self._mode = _M_NONE
        self._op = m.OP_BOOT
        self._wan = m.WAN_DOWN
        self._lmc = m.LMC_NONE
        self._install = False
        self._sec = m.SEC_NONE
        self._render(self._origin)
        self.changed = True

    # --- inputs ---------------------------------------------------------------------------

    def set_state(self, op, wan, lmc, install, security, now_ms):
        # all fields are checked before anything changes, so a bad STATE leaves the LEDs alone
        op = _check(op, m.OP_MAX, "op")
        wan = _check(wan, m.WAN_MAX, "wan")
        lmc = _check(lmc, m.LMC_MAX, "lmc")
        install = _check(install, 1, "install")
        security = _check(security, m.SEC_MAX, "security")
        self._op = op
        self._wan = wan
        self._lmc = lmc
        self._install = bool(install)
        self._sec = security
        self._mode = _M_HOST
        self._render(now_ms & _MASK)

    def wakeup(self, now_ms):
        # retriggerable: a second packet within the 3 s restarts the 3 s
        self._wake = True
        self._wake_t = now_ms & _MASK
        self._render(self._wake_t)

    def flash_wmt(self, now_ms):
        # retriggerable: the LED stays lit FLASH_MS after the last telegram; the pattern code
        # stays P_FLASH, so telegrams never cause LEDS messages
        self._flash = True
        self._flash_t = now_ms & _MASK

    def link_lost(self, now_ms):
        # The firmware still runs but has no gateway state: it shows "starting" (PWR blink-500)
        # and keeps flashing wMT for telegrams it receives itself; TLS and LMC go dark because
        # only the host knows them. A security violation (or OP_CEASED) already shown stays
        # latched: in that state the host may well fall silent, and the warning must remain.
        self._mode = _M_LOST
        self._install = False
        self._wake = False
        self._render(now_ms & _MASK)

    # --- outputs --------------------------------------------------------------------------

    def patterns(self):
        # the engine's own bytearray (PWR, TLS, LMC, wMT): copy it if it must outlive the call
        self.changed = False
        return self._pat

    def tick(self, now_ms):
        now = now_ms & _MASK
        if self._boot and _diff(now, self._boot_t) >= BOOT_MS:
            self._boot = False
            self._render(_add(self._boot_t, BOOT_MS))
        if self._wake and _diff(now, self._wake_t) >= WAKEUP_MS:
            self._wake = False
            self._render(_add(self._wake_t, WAKEUP_MS))
        lit_flash = False
        if self._flash:
            d = _diff(now, self._flash_t)
            if d >= FLASH_MS:
                self._flash = False
            elif d >= 0:
                lit_flash = True
        d = _diff(now, self._origin)
        if d >= CYCLE_MS:
            # move the origin forward by whole cycles so the phase survives counter wrap
            d = d % CYCLE_MS
            self._origin = (now - d) & _MASK
        elif d < 0:
            d = d % CYCLE_MS
        pat = self._pat
        mask = 0
        for i in range(4):
            c = pat[i]
            if c == P_ON:
                mask |= 1 << i
            elif c == P_FLASH:
                if lit_flash:
                    mask |= 1 << i
            elif c != P_OFF:
                seg = _SEGS[c]
                ph = d % _PERIODS[c]
                j = 0
                while ph >= seg[j]:
                    j += 1
                if not (j & 1):
                    mask |= 1 << i
        return mask

    # --- the rules ------------------------------------------------------------------------

    def _render(self, when):
        # Precedence (docs/leds.md): boot sequence > security violation > firmware install >
        # soft lock-down > per-LED state (with the wake-up pulses on TLS).
        op = self._op
        sec = self._sec
        if self._mode != _M_NONE and sec == m.SEC_NONE and op == m.OP_CEASED:
            sec = m.SEC_ALL  # ceased operation without a specific code: hard lock-down
        if self._boot:
            # seed 000 §2.4: all four blink together for three seconds at power-up
            pwr = tls = lmc = wmt = P_BLINK_250
        elif self._mode != _M_NONE and sec != m.SEC_NONE:
            # seed 000 §2.4 patterns, 50 ms rhythm of seed 001 B-3/D-2.1 secure states;
            # seed 002 §2.3.2: all four blink in hard lock-down
            leds = _SEC_LEDS[sec]
            pwr = P_BLINK_50 if leds & 1 else P_OFF
            tls = P_BLINK_50 if leds & 2 else P_OFF
            lmc = P_BLINK_50 if leds & 4 else P_OFF
            wmt = P_BLINK_50 if leds & 8 else P_OFF
        elif self._mode == _M_NONE or (self._mode == _M_HOST and op == m.OP_BOOT):
            pwr = tls = lmc = wmt = P_OFF
        elif self._mode == _M_LOST:
            pwr = P_BLINK_500
            tls = P_OFF
            lmc = P_OFF
            wmt = P_FLASH
        else:
            # PWR: seed 000 §2.4 / 001 B-3 / 002 §2.3.2 (blink while starting, steady when ready)
            if op == m.OP_STARTING:
                pwr = P_BLINK_500
            elif op == m.OP_RESTRICTED or op == m.OP_MINIMAL:
                pwr = P_BLINK_50  # seed 001 B-3/D-2.2: 50 ms blinking in the secure state
            elif op == m.OP_SOFT_LOCKDOWN:
                pwr = P_HEARTBEAT  # seed 002 §2.3.2/§8
            else:
                pwr = P_ON
            # TLS: seed 001 B-3 / 002 §2.3.2 (blink while connecting or with seal certificates)
            wan = self._wan
            if wan == m.WAN_UP:
                tls = P_ON
            elif wan == m.WAN_DOWN:
                tls = P_OFF
            else:
                tls = P_BLINK_250
            if self._wake:
                tls = P_BLINK_125
            # LMC: seed 000 §2.4 / 002 §2.3.2
            lmc = self._lmc
            if lmc == m.LMC_ADDRESSED:
                lmc = P_ON
            elif lmc == m.LMC_TIME_INVALID:
                lmc = P_BLINK_500
            elif lmc == m.LMC_BUS_OVERLOAD:
                lmc = P_HEARTBEAT
            else:
                lmc = P_OFF
            wmt = P_FLASH
            if self._install:
                # seed 000 §2.4: PWR, TLS and wMT blink together during a firmware install
                pwr = tls = wmt = P_BLINK_500
        pat = self._pat
        if pat[PWR] != pwr or pat[TLS] != tls or pat[LMC] != lmc or pat[WMT] != wmt:
            pat[PWR] = pwr
            pat[TLS] = tls
            pat[LMC] = lmc
            pat[WMT] = wmt
            # every change restarts the common phase: the new picture begins with an "on"
            # segment and all blinking LEDs switch together
            self._origin = when
            self.changed = True
