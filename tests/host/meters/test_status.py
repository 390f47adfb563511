"""Meter status words (smgw.meters.status): which bits raise 10033 / 10037, layout detection,
the energy direction, and the status words of the real frames in tests/vectors/sml_dumps.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgw.meters.sml import decode_frame
from smgw.meters.status import (
    BZ_BITS,
    BZ_ERROR_BITS,
    BZ_FATAL_BITS,
    MeterStatus,
    classify,
    status_format,
)

VECTORS = {v["id"]: v for v in json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "sml_dumps.json").read_text("utf-8")
)["frames"]}

BZ = 0x04  # the identifying low byte of an FNN Basiszähler status word
VOLTAGES = 0x1C0000  # bits 18..20: voltage L1, L2, L3 present


def test_constants_match_the_bit_table():
    assert BZ_FATAL_BITS == 1 << 17
    assert BZ_ERROR_BITS == (1 << 9) | (1 << 10)
    assert sorted(BZ_BITS) == list(range(8, 21))


@pytest.mark.parametrize("status,fmt", [
    (None, "none"),
    (0x04, "fnn-bz"), (0x1C0104, "fnn-bz"), (0x1FFF04, "fnn-bz"), (0xFFFFFF04, "fnn-bz"),
    (0x010180, "edl21"), (0x0102A0, "edl21"), (0x182, "edl21"), (0x1B0, "edl21"),
    (0x0C, "unknown"),  # bit 2 set, other bits of the low byte too
    (0x1_0000_0004, "unknown"),  # wider than 32 bits
    (0x1000180, "unknown"),  # EDL21-like but 25 bits
    (-4, "unknown"), (1 << 64, "unknown"), (True, "unknown"), ("4", "unknown"),
])
def test_status_format(status, fmt):
    assert status_format(status) == fmt


def test_no_status_is_ok():
    s = classify(None)
    assert (s.severity, s.code, s.format, s.catalogue_id, s.is_error) == ("ok", 0, "none", None,
                                                                           False)
    assert s.text == "kein Statuswort"


def test_plain_bz_word_is_ok():
    s = classify(BZ | VOLTAGES | 1 << 8)
    assert (s.severity, s.code, s.format, s.direction) == ("ok", 0, "fnn-bz", "import")
    assert s.flags == ("Anlauf (Anlaufschwelle überschritten)", "Spannung L1 vorhanden",
                       "Spannung L2 vorhanden", "Spannung L3 vorhanden")
    assert s.text.startswith("kein Fehler (Anlauf")
    assert classify(BZ).text == "kein Fehler"


@pytest.mark.parametrize("bit,text", [(9, "magnetische Beeinflussung"),
                                      (10, "Manipulation (mechanische Beeinflussung)")])
def test_error_bits_give_10033(bit, text):
    s = classify(BZ | VOLTAGES | 1 << bit)
    assert (s.severity, s.code, s.text, s.catalogue_id) == ("error", 1 << bit, text, 10033)
    assert s.is_error and text in s.flags


def test_both_error_bits():
    s = classify(BZ | 1 << 9 | 1 << 10)
    assert (s.severity, s.code) == ("error", 0x600)
    assert s.text == "Manipulation (mechanische Beeinflussung); magnetische Beeinflussung"


def test_fatal_bit_gives_10037():
    s = classify(BZ | VOLTAGES | 1 << 17)
    assert (s.severity, s.code, s.text, s.catalogue_id) == ("fatal", 1 << 17, "fataler Fehler",
                                                            10037)


def test_fatal_wins_and_the_code_carries_every_error_bit():
    s = classify(BZ | 1 << 17 | 1 << 9 | 1 << 16 | 1 << 11)
    assert s.severity == "fatal"
    assert s.code == (1 << 17) | (1 << 9)  # not the back-stop (16) or direction (11) bits
    assert s.text == "fataler Fehler; magnetische Beeinflussung"
    assert s.direction == "export"


@pytest.mark.parametrize("bit", [b for b, (_, kind) in BZ_BITS.items()
                                 if kind in ("info", "direction")])
def test_state_bits_are_not_errors(bit):
    s = classify(BZ | 1 << bit)
    assert (s.severity, s.code) == ("ok", 0)
    assert s.flags == (BZ_BITS[bit][0],)


def test_direction_bit_11():
    assert classify(BZ | 1 << 11).direction == "export"
    assert classify(BZ | 1 << 12).direction == "import"  # a phase alone says nothing about the sum


def test_reserved_bits_are_reported_not_errors():
    s = classify(BZ | 1 << 25)
    assert (s.severity, s.format) == ("ok", "fnn-bz")
    assert s.flags == ("reservierte Bits 0x2000000",)


def test_edl21_words_never_raise_events():
    for status in (0x010180, 0x0102A0, 0x182, 0x1B0, 0xFFFFFB):
        for manufacturer in (None, "EMH", "EBZ", "ISK", "XYZ"):
            s = classify(status, manufacturer)
            assert (s.severity, s.code, s.format) == ("ok", 0, "edl21")


def test_edl21_direction_only_for_known_manufacturers():
    assert classify(0x0102A0, "EMH").direction == "export"
    assert classify(0x0102A0, "emh ").direction == "export"  # FLAG ids as sent, normalised
    assert classify(0x0102A0, "EMH").text == "kein Fehler (Energierichtung −A)"
    assert classify(0x010180, "EBZ").direction == "import"
    assert classify(0x0102A0, "XYZ").direction is None
    assert classify(0x0102A0).direction is None
    assert "keine Fehlerbits definiert" in classify(0x010180, "EBZ").text


def test_zero_and_unknown_words_are_ok():
    assert classify(0) == MeterStatus("ok", 0, "Statuswort 0 (keine Bits gesetzt)", "unknown")
    for status in (0x0C, -1, 1 << 70):
        s = classify(status)
        assert (s.severity, s.format) == ("ok", "unknown")
        assert "unbekanntem Format" in s.text


@settings(max_examples=500, deadline=None)
@given(st.none() | st.integers(-(1 << 70), 1 << 70), st.none() | st.text(max_size=5))
def test_classify_is_total(status, manufacturer):
    s = classify(status, manufacturer)
    assert s.severity in ("ok", "error", "fatal") and s.text
    assert (s.code == 0) == (s.severity == "ok")
    if s.severity != "ok":
        assert s.format == "fnn-bz"
        assert s.code == status & (BZ_ERROR_BITS | BZ_FATAL_BITS)
        assert (s.severity == "fatal") == bool(status & BZ_FATAL_BITS)


# ------------------------------------------------------------- the real frames (§4.7, §4.8)

def _entry(vid: str, obis: str):
    f = decode_frame(bytes.fromhex(VECTORS[vid]["hex"]))
    return f, {r.obis: r for r in f.readings}


def _manufacturer(vid: str, f) -> str:
    # ISK-key's server id is not in the DIN 43863-5 form; its manufacturer id entry says ISK
    return f.meter_id[1:4] if f.meter_id else {"ISK-key": "ISK"}[vid]


@pytest.mark.parametrize("vid,fmt", [
    ("S1", "edl21"), ("S2", "fnn-bz"), ("S3", "edl21"), ("S4", "fnn-bz"), ("S5", "fnn-bz"),
    ("S6", "fnn-bz"), ("HLY-2", "fnn-bz"), ("EMH-shortcut", "fnn-bz"), ("ISK-key", "edl21"),
])
def test_no_real_meter_reports_an_error(vid, fmt):
    f, by_obis = _entry(vid, "1-0:1.8.0")
    s = classify(by_obis["1-0:1.8.0"].status, _manufacturer(vid, f))
    assert (s.severity, s.format) == ("ok", fmt)


@pytest.mark.parametrize("vid", ["S1", "S2", "S3", "ISK-key", "EMH-shortcut", "S6", "HLY-2"])
def test_quirk6_status_direction_agrees_with_the_power_sign(vid):
    """§4.8 quirk 6: check the status word before trusting the sign. In every real frame that
    has both, the direction the status word gives matches the sign of 16.7.0."""
    f, by_obis = _entry(vid, "1-0:1.8.0")
    s = classify(by_obis["1-0:1.8.0"].status, _manufacturer(vid, f))
    power = by_obis["1-0:16.7.0"].raw
    assert s.direction == ("export" if power < 0 else "import"), (vid, power)


def test_s4_status_word_register():
    """The DTZ541 also sends the word as the value of 1-0:96.5.0: 4 = identification only."""
    _, by_obis = _entry("S4", "1-0:96.5.0")
    assert by_obis["1-0:96.5.0"].raw == 4
    assert classify(by_obis["1-0:96.5.0"].raw, "HLY").text == "kein Fehler"


def test_manufacturer_of():
    from smgw.meters.status import manufacturer_of

    assert manufacturer_of(bytes.fromhex("0901454d480000abd62a")) == "EMH"
    assert manufacturer_of(bytes.fromhex("0a01484c59020005dc4b")) == "HLY"
    assert manufacturer_of(bytes.fromhex("080535342d510177")) is None
    assert manufacturer_of(None) is None
