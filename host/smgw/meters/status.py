"""Meter status words -> "does the meter report an error?" (catalogue 10033 / 10037).

SML list entries carry an optional ``status`` (``SML_ListEntry.status``, Unsigned8..64); meters
put their status word there, usually in the entry of 1-0:1.8.0 (some also send it as the value of
1-0:96.5.0). Two layouts are in the field (sources and the evidence: docs/sml.md, "Meter status
words"):

``fnn-bz``
    The status word of the FNN "Lastenheft Basiszähler" / TR-03109 LMN meters (Basiszähler, the
    "BZ" half of the combined FNN status word that a gateway forwards). 32 bits, least significant
    byte fixed to ``0000 0100``: bit 2 set, bits 0, 1 and 3..7 clear. That fixed byte identifies
    the layout. Bits 8..20 carry the state below; 21..31 are reserved (0).
``edl21``
    The older status word of EDL21 meters (FNN "Lastenheft EDL" 1.0), e.g. EMH ED300L / eHZ-H,
    EBZ DD3, Iskra MT175 (values such as 0x010180, 0x0102A0, 0x182). No public source available
    to us documents error bits for it; only bit 5 (energy direction, −A) is reported by several
    projects. Such a word never raises an event here.

Severity (the PTB-A 50.8 classes TRuDI maps the FNN word to, reduced to the two catalogue events):

* ``fatal`` (10037, ERROR): bit 17 "fatal error" -- the meter is defective, this and all
  following values are invalid.
* ``error`` (10033, WARNING): bit 9 "magnetic influence" or bit 10 "manipulation" (mechanical
  influence; TRuDI names it "Manipulation_KD_PS") -- the current value is invalid and must not
  be used as a substitute value, the meter still works.
* ``ok``: everything else (direction, start-up, phase sequence, back-stop, voltages present are
  operating states, not errors), an EDL21 word, a word of neither layout, or no status at all.

``code`` is the status word masked to the error bits that are set (fatal and error bits
together, so one code says everything); 0 for ``ok``. ``text`` is a short German description of
those bits for the log; for ``ok`` it describes the state bits (or says there is no error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BZ_BITS",
    "BZ_ERROR_BITS",
    "BZ_FATAL_BITS",
    "EDL21_DIRECTION_BIT",
    "EDL21_DIRECTION_MANUFACTURERS",
    "MeterStatus",
    "classify",
    "manufacturer_of",
    "status_format",
]

# -------------------------------------------------------------------------- FNN Basiszähler

BZ_ID_MASK = 0xFF  # the least significant byte ...
BZ_ID_VALUE = 0x04  # ... is 0000 0100 in every FNN BZ status word
BZ_RESERVED = 0xFFE00000  # bits 21..31

# bit -> (German description, class): "info" | "error" | "fatal" | "direction"
BZ_BITS: dict[int, tuple[str, str]] = {
    8: ("Anlauf (Anlaufschwelle überschritten)", "info"),
    9: ("magnetische Beeinflussung", "error"),
    10: ("Manipulation (mechanische Beeinflussung)", "error"),
    11: ("Energierichtung −A (Summe)", "direction"),
    12: ("Energierichtung −A L1", "info"),
    13: ("Energierichtung −A L2", "info"),
    14: ("Energierichtung −A L3", "info"),
    15: ("Drehfeld nicht L1-L2-L3", "info"),
    16: ("Rücklaufsperre aktiv", "info"),
    17: ("fataler Fehler", "fatal"),
    18: ("Spannung L1 vorhanden", "info"),
    19: ("Spannung L2 vorhanden", "info"),
    20: ("Spannung L3 vorhanden", "info"),
}
BZ_FATAL_BITS = sum(1 << b for b, (_, kind) in BZ_BITS.items() if kind == "fatal")
BZ_ERROR_BITS = sum(1 << b for b, (_, kind) in BZ_BITS.items() if kind == "error")

# ---------------------------------------------------------------------------------- EDL21

# Bit 5 of an EDL21 status word (in the 1.8.0 entry): set while energy flows out (−A). Reported
# for EMH ED300L / eHZ-H (vzlogger, openHAB, Tasmota) and consistent with the EBZ and ISK frames
# in tests/vectors/sml_dumps.json. Only trusted for these manufacturers (FLAG ids).
EDL21_DIRECTION_BIT = 5
EDL21_DIRECTION_MANUFACTURERS = frozenset({"EMH", "EBZ", "ISK"})

MAX_STATUS = (1 << 64) - 1  # SML status words are Unsigned8..Unsigned64


@dataclass(frozen=True)
class MeterStatus:
    severity: str  # "ok" | "error" | "fatal"
    code: int  # the status bits that made it error/fatal; 0 for "ok"
    text: str  # German, short: what those bits mean (for the log)
    format: str = "none"  # "fnn-bz" | "edl21" | "unknown" | "none" (no status sent)
    flags: tuple[str, ...] = field(default=())  # every recognised bit that is set, German
    direction: str | None = None  # "import" | "export" | None (the word does not say)

    @property
    def catalogue_id(self) -> int | None:
        """10037 for ``fatal``, 10033 for ``error``, None for ``ok``."""
        return {"fatal": 10037, "error": 10033}.get(self.severity)

    @property
    def is_error(self) -> bool:
        return self.severity != "ok"


_NO_STATUS = MeterStatus("ok", 0, "kein Statuswort", "none")


def status_format(status: int | None) -> str:
    """Which layout ``status`` has: "fnn-bz", "edl21", "unknown" or "none"."""
    if status is None:
        return "none"
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= MAX_STATUS:
        return "unknown"
    if status & BZ_ID_MASK == BZ_ID_VALUE and status <= 0xFFFFFFFF:
        return "fnn-bz"
    # EDL21 words seen in the field are 16..24 bits with bit 2 clear; anything wider or
    # with bit 2 set belongs to no layout we know
    if status <= 0xFFFFFF and not status & 0x04:
        return "edl21"
    return "unknown"


def classify(status: int | None, manufacturer: str | None = None) -> MeterStatus:
    """Decide from a status word whether the meter reports an error (10033) or a fatal error
    (10037). ``manufacturer``: the meter's FLAG id ("EMH", from the server id / 96.50.1 /
    129-129:199.130.3); only used to read the energy direction of EDL21 words."""
    fmt = status_format(status)
    if fmt == "none":
        return _NO_STATUS
    assert status is not None
    if status == 0:
        return MeterStatus("ok", 0, "Statuswort 0 (keine Bits gesetzt)", "unknown")
    if fmt == "fnn-bz":
        return _classify_bz(status)
    if fmt == "edl21":
        direction = None
        flags: tuple[str, ...] = ()
        if (manufacturer or "").strip().upper() in EDL21_DIRECTION_MANUFACTURERS:
            export = bool(status >> EDL21_DIRECTION_BIT & 1)
            direction = "export" if export else "import"
            if export:
                flags = ("Energierichtung −A",)
        return MeterStatus("ok", 0, _ok_text(flags, f"EDL21-Statuswort 0x{status:X}, keine "
                                                    "Fehlerbits definiert"),
                           "edl21", flags, direction)
    shown = f"{status:#x}" if isinstance(status, int) and not isinstance(status, bool) \
        else repr(status)
    return MeterStatus("ok", 0, f"Statuswort {shown} in unbekanntem Format (nicht ausgewertet)",
                       "unknown")


def manufacturer_of(server_id: bytes | None) -> str | None:
    """The FLAG manufacturer id of a DIN 43863-5 server id (``0901 454D48 …`` -> "EMH"), the
    ``manufacturer`` argument of :func:`classify`; None for ids of another form."""
    from smgw.meters.sml import meter_id_text

    mid = meter_id_text(server_id)
    return mid[1:4] if mid else None


def _classify_bz(status: int) -> MeterStatus:
    flags = tuple(text for bit, (text, _) in sorted(BZ_BITS.items()) if status >> bit & 1)
    reserved = status & BZ_RESERVED
    if reserved:
        flags += (f"reservierte Bits 0x{reserved:X}",)
    direction = "export" if status >> 11 & 1 else "import"
    fatal = status & BZ_FATAL_BITS
    error = status & BZ_ERROR_BITS
    if not (fatal or error):
        return MeterStatus("ok", 0, _ok_text(flags, "kein Fehler"), "fnn-bz", flags, direction)
    code = fatal | error
    text = "; ".join(BZ_BITS[bit][0] for bit in sorted(BZ_BITS, reverse=True)
                     if code >> bit & 1)  # fatal (bit 17) first
    return MeterStatus("fatal" if fatal else "error", code, text, "fnn-bz", flags, direction)


def _ok_text(flags: tuple[str, ...], fallback: str) -> str:
    return "kein Fehler (" + ", ".join(flags) + ")" if flags else fallback
