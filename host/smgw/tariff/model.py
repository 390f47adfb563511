"""The values tariff application cases work on and produce, shared by the pure TAF calculations
(:mod:`smgw.tariff.cases`), the engine that runs them in the gateway, the delivery to market
participants and the HAN faces that show them.

Times are Unix milliseconds (UTC); local calendar time only exists inside the calendar and period
code, which converts with the profile's time zone. Values are integers with a power-of-ten scaler
(as meters send them): ``value * 10**scaler`` in ``unit`` (a DLMS unit symbol such as ``"Wh"``).

Status: :class:`DerivedValue.status` is the 32-bit SMGW status word of TR-03109-1 DS v2.0
Table 15.1 (bit 0 and 2 always set; bit 1 "not for billing"; bit 8 fatal; bit 9 system time
invalid; bit 12 warning; bit 13 no meter value in the receive window; bit 14 manipulation; bit 16
threshold marker). ``meter_status`` is the meter's own word as it arrived (FNN basic-meter
layout for wired meters), or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# SMGW status word bits (TR-03109-1 DS v2.0 Table 15.1)
SMGW_ID_BITS = 0x00000005          # bits 0 and 2: identification, always set
SMGW_NOT_BILLING = 1 << 1          # value not validated for billing (transparency bit)
SMGW_FATAL = 1 << 8                # the gateway detected a fatal error
SMGW_TIME_INVALID = 1 << 9         # the gateway's system time was invalid at capture
SMGW_WARNING = 1 << 12
SMGW_NO_VALUE = 1 << 13            # no meter value within the receive window
SMGW_MANIPULATION = 1 << 14        # magnetic/mechanical/electrical manipulation at the meter
SMGW_OMS_ERROR = 1 << 15
SMGW_THRESHOLD = 1 << 16           # sent because a threshold was crossed
SMGW_OMS_METER_WORD = 1 << 17      # the meter word is an OMS word (wireless meter)

# meter status word bits that make a value unusable (FNN basic meter: 9 magnetic, 10 mechanical
# manipulation; 17 metrologically relevant fatal error)
METER_MANIPULATION_BITS = (1 << 9) | (1 << 10)
METER_FATAL_BIT = 1 << 17

ERROR_STAGE = 63  # TAF 2: the error register (OBIS E = 63) takes energy of unusable periods


@dataclass(frozen=True)
class Reading:
    """One original measured value of one meter channel (a row of the store's readings)."""

    meter: str              # the meter's id (lower-case hex server id)
    obis: str               # "1-0:1.8.0"
    capture_ms: int         # when the gateway captured it (legal time)
    value: int              # raw integer
    scaler: int = 0
    unit: str = "Wh"
    status: int | None = None   # the meter's status word, if it sent one
    time_valid: bool = True     # legal time was valid at capture

    def usable(self) -> bool:
        """May this value be used for billing at all? (not with invalid time, a fatal meter
        error or a manipulation flag)"""
        if not self.time_valid:
            return False
        st = self.status or 0
        return not (st & (METER_FATAL_BIT | METER_MANIPULATION_BITS))


@dataclass(frozen=True)
class DerivedValue:
    """A value a tariff application case formed: a register per billing period and tariff
    stage (TAF 1/2), a daily (TAF 6) or per-registration-period (TAF 7) reading, or an aggregate
    (TAF 9/10/14)."""

    profile: str            # evaluation profile name (tariffName)
    taf: int
    register: str           # OBIS of the register: "1-0:1.8.0" (TAF 1/6/7), "1-0:1.8.1" stage 1..
    owner: str              # the meter id for readings, the profile name for computed registers
    period_start_ms: int    # the billing/registration period the value belongs to
    period_end_ms: int
    target_ms: int          # the grid time the value stands for (period end for registers)
    value: int
    scaler: int
    unit: str
    status: int = SMGW_ID_BITS          # SMGW status word
    meter_status: int | None = None
    capture_ms: int | None = None       # capture time of the reading behind it (TAF 6/7)
    time_valid: bool = True
    billing: bool = True                # billing relevant -> signed by the gateway
    stage: int | None = None            # TAF 2 tariff stage (ERROR_STAGE for the error register)
    kind: str = "register"              # "register" | "reading" | "min" | "max" | "mean" | "sum"
    sources: tuple[str, ...] = field(default=())  # meters that contributed (TAF 1 sums)

    def key(self) -> tuple[str, str, str, int]:
        """What makes a derived value unique: forming it again must not double it."""
        return (self.profile, self.register, self.owner, self.target_ms)


def smgw_status(*, time_valid: bool = True, billing: bool = True, no_value: bool = False,
                meter_status: int | None = None, fatal: bool = False,
                threshold: bool = False, oms: bool = False) -> int:
    """The SMGW status word for a value with these properties."""
    st = SMGW_ID_BITS
    if not billing:
        st |= SMGW_NOT_BILLING
    if not time_valid:
        st |= SMGW_TIME_INVALID
    if no_value:
        st |= SMGW_NO_VALUE
    if fatal or (meter_status or 0) & METER_FATAL_BIT:
        st |= SMGW_FATAL
    if (meter_status or 0) & METER_MANIPULATION_BITS:
        st |= SMGW_MANIPULATION
    if threshold:
        st |= SMGW_THRESHOLD
    if oms:
        st |= SMGW_OMS_METER_WORD
    return st


def lsb_first_hex(word: int) -> str:
    """A 32-bit status word as TRuDI's statusFNN writes it: bit order reversed, 8 hex digits
    (0x00000005 -> 'A0000000')."""
    return f"{int(f'{word & 0xFFFFFFFF:032b}'[::-1], 2):08X}"


def status_fnn(smgw: int, meter: int | None) -> str:
    """The 16-hex-digit combined status (SMGW word then meter word, both LSB first); a missing
    meter word is the basic meter's identification word 0x00000004."""
    return lsb_first_hex(smgw) + lsb_first_hex(0x00000004 if meter is None else meter)


def status_ptb(smgw: int, meter: int | None) -> int:
    """PTB-A 50.8 class 0..4 from the two words (TRuDI's mapping)."""
    m = meter or 0
    if smgw & SMGW_FATAL or m & METER_FATAL_BIT:
        return 4
    if smgw & (SMGW_TIME_INVALID | SMGW_MANIPULATION) or m & METER_MANIPULATION_BITS:
        return 3
    if smgw & SMGW_NO_VALUE:
        return 2
    if smgw & SMGW_WARNING:
        return 1
    return 0
