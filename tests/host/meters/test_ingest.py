"""From captured frames and polled answers to original values in the store (smgw.meters.ingest):
profiles, values stored once, rejected frames logged with their catalogue ids, meter error
status words logged as 10033/10037 when they start, not for every telegram."""

from __future__ import annotations

import logging

import pytest

from smgw.meters.ingest import MeterIngest
from smgw.meters import smlencode as enc
from smgw.store import Store
from smgwfw import messages as m

SID = bytes.fromhex("0a0145534d0000000042")


def frame(value: int, status: int = 0x000004, sec: int = 1) -> bytes:
    return enc.encode_file(SID, [{"obis": "1-0:1.8.0", "value": value, "scaler": -1,
                                  "unit": 30, "status": status}],
                           transaction_id=sec * 3, act_sensor_time=sec)


def record(value: int, **kw) -> dict:
    return {m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRED, m.K_REC_TICK: 5,
            m.K_REC_TIME: 1_700_000_000_000, m.K_REC_BODY: frame(value, **kw),
            m.K_REC_META: {"proto": "sml", "check": "x25"}}


@pytest.fixture
def ingest(tmp_path):
    store = Store.open(tmp_path / "s.db")
    yield MeterIngest(store)
    store.close()


def cats(caplog) -> list[int]:
    return [r.fields["cat"] for r in caplog.records if "cat" in getattr(r, "fields", {})]


def test_push_frames_are_stored_once_with_their_values(ingest, caplog):
    caplog.set_level(logging.DEBUG)
    ingest.add_meter(SID.hex(), obis=["1-0:1.8.0"])
    assert cats(caplog) == [10207, 10020]
    assert ingest.record(7, 1, record(100))
    assert not ingest.record(7, 1, record(100))  # a retransmission after a lost ack
    assert ingest.record(7, 2, record(101))
    (mt,) = ingest.store.meters()
    assert [raw for _, raw, _ in ingest.store.readings_of(mt.id, "1-0:1.8.0")] == ["100", "101"]
    assert ingest.status()["meters"][0]["readings"] == 2


def test_damaged_and_unreadable_frames_are_kept_raw_and_logged(ingest, caplog):
    caplog.set_level(logging.INFO)
    ingest.add_meter(SID.hex())
    bad = record(1)
    bad[m.K_REC_META] = {"proto": "sml", "check": "bad_crc"}
    assert ingest.record(7, 1, bad)  # the raw frame is kept ...
    garbage = record(1)
    garbage[m.K_REC_BODY] = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01\x99" + bytes(7)
    assert ingest.record(7, 2, garbage)
    assert ingest.store.count_readings() == 0  # ... but no values from it
    assert 10263 in cats(caplog) and ingest.status()["frames_rejected"] == 2


def test_meter_error_status_is_logged_when_it_starts_and_when_it_changes(ingest, caplog):
    caplog.set_level(logging.INFO)
    ingest.add_meter(SID.hex())
    caplog.clear()
    ingest.record(7, 1, record(1, status=0x000004))
    ingest.record(7, 2, record(2, status=0x000204))  # magnetic influence: an error
    ingest.record(7, 3, record(3, status=0x000204))  # still: not logged again
    ingest.record(7, 4, record(4, status=0x020004))  # fatal
    ingest.record(7, 5, record(5, status=0x000004))  # fine again
    ingest.record(7, 6, record(6, status=0x000204))  # and the error again
    assert [c for c in cats(caplog) if c in (10033, 10037)] == [10033, 10037, 10033]
    assert ingest.store.count_readings() == 6  # values are stored all the same


def test_polled_answers_are_stored_once_per_sec_index(ingest, caplog):
    caplog.set_level(logging.INFO)
    ingest.add_meter(SID.hex(), protocol="sml-tls", key=bytes(16))
    assert ingest.polled(SID.hex(), frame(10, sec=0))  # secIndex 0 is a valid first answer
    assert ingest.polled(SID.hex(), frame(11, sec=5))
    assert not ingest.polled(SID.hex(), frame(11, sec=5))  # repeated by the meter
    assert not ingest.polled(SID.hex(), frame(9, sec=3))  # older than what is stored
    other = enc.encode_file(b"\x0a\x01\x02", [{"obis": "1-0:1.8.0", "value": 1}],
                            transaction_id=3, act_sensor_time=9)
    assert not ingest.polled(SID.hex(), other)  # another meter's answer on this link
    assert 10274 in cats(caplog)
    assert ingest.store.count_readings() == 2


def test_profile_checks_name_the_problem(ingest):
    with pytest.raises(ValueError, match="pairing key or its LMN certificate"):
        ingest.add_meter(SID.hex(), protocol="sml-tls")
    with pytest.raises(ValueError, match="16 bytes"):
        ingest.add_meter(SID.hex(), protocol="sml-tls", key=b"short")
    with pytest.raises(ValueError, match="sml-tls and wmbus meters only"):
        ingest.add_meter(SID.hex(), key=bytes(16))
    with pytest.raises(ValueError, match="not supported"):
        ingest.add_meter(SID.hex(), protocol="dlms")
    with pytest.raises(ValueError, match="server id in hex"):
        ingest.add_meter("xyz")


def test_values_of_a_message_with_a_wrong_crc_are_not_taken(ingest, caplog):
    caplog.set_level(logging.INFO)
    ingest.add_meter(SID.hex())
    # damage the GetList.Res message's CRC and mend the transport CRC around it
    from smgw.meters import sml

    good = frame(77)
    file = bytearray(sml.decode_transport(good).payload)
    f = sml.decode_frame(good)
    gl = f.messages[1]
    end = f.messages[2].offset
    file[end - 2] ^= 0xFF  # the last CRC byte before endOfSmlMsg
    assert gl.type == "GetList.Res"
    bad = enc.transport_frame(bytes(file))
    rec = record(0)
    rec[m.K_REC_BODY] = bad
    assert ingest.record(7, 1, rec)
    assert ingest.store.count_readings() == 0 and 10263 in cats(caplog)


def test_values_captured_while_the_legal_time_is_invalid_are_flagged(tmp_path):
    store = Store.open(tmp_path / "t.db")
    try:
        ingest = MeterIngest(store, time_valid=lambda ts: ts is not None and ts >= 2_000)
        ingest.add_meter(SID.hex())
        for rid, t in ((1, 1_000), (2, 3_000)):
            rec = record(rid)
            rec[m.K_REC_TIME] = t
            ingest.record(7, rid, rec)
        rec = record(3)
        rec[m.K_REC_TIME] = None  # the front-end had no time at all
        ingest.record(7, 3, rec)
        assert store.count_readings(time_valid=True) == 1
        assert store.count_readings(time_valid=False) == 2
    finally:
        store.close()


def wm_record(tg: bytes, dup: bool = False) -> dict:
    return {m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRELESS, m.K_REC_TICK: 5,
            m.K_REC_TIME: 1_700_000_000_000, m.K_REC_BODY: tg,
            m.K_REC_META: {"proto": "wmbus", "mode": "T1", "frame": "A", "rssi": -70,
                           "crc": "ok", "dup": dup, "module": "amb8465"}}


def test_wireless_telegrams_are_decrypted_stored_and_replays_rejected(ingest, caplog):
    from smgw.wmbus.encode import Meter, Value, telegram

    caplog.set_level(logging.INFO)
    key = bytes(range(1, 17))
    mt = Meter("ELS", "12345678", version=0x33, device_type=0x07, key=key, mode=5,
               frame="none")
    meter_id = telegram(mt, [Value("volume", "m3", "1.000")], 1)[2:10].hex()
    ingest.add_meter(meter_id, protocol="wmbus", key=key)

    def tg(acc: int, litres: int) -> bytes:
        return telegram(mt, [Value("volume", "m3", f"{litres / 1000:.3f}")], acc)

    assert ingest.record(9, 1, wm_record(tg(10, 28504)))
    assert ingest.record(9, 2, wm_record(tg(10, 28504), dup=True))  # the meter's 2nd copy
    assert ingest.record(9, 3, wm_record(tg(11, 28510)))
    assert ingest.record(9, 4, wm_record(tg(9, 1)))  # an old telegram played back
    (row,) = ingest.store.meters()
    rows = ingest.store.readings_of(row.id, "volume/s0/t0/u0/instantaneous")
    assert [(raw, rec) for rec, raw, _ in rows] == [("28504", 1), ("28510", 3)]
    assert ingest.status()["duplicates"] == 1 and ingest.status()["replays"] == 1
    replay = [r for r in caplog.records if getattr(r, "fields", {}).get("cat") == 10264]
    assert replay and replay[0].fields["counter_expected"] == 12
    assert replay[0].fields["counter_received"] == 9
    # the replay state survives a restart: the same old telegram is refused again
    again = MeterIngest(ingest.store)
    again.record(9, 5, wm_record(tg(9, 1)))
    assert again.status()["replays"] == 1


def test_wireless_wrong_key_and_clear_telegram_are_rejected(ingest, caplog):
    from smgw.wmbus.encode import Meter, Value, telegram

    caplog.set_level(logging.INFO)
    key = bytes(range(1, 17))
    mt = Meter("ELS", "12345679", version=0x33, device_type=0x07, key=bytes(16), mode=5,
               frame="none")
    clear = Meter("ELS", "12345679", version=0x33, device_type=0x07, mode=0, frame="none")
    tg = telegram(mt, [Value("volume", "m3", "1.000")], 1)
    ingest.add_meter(tg[2:10].hex(), protocol="wmbus", key=key)
    ingest.record(9, 1, wm_record(tg))  # encrypted with another key
    ingest.record(9, 2, wm_record(telegram(clear, [Value("volume", "m3", "2.000")], 2)))
    assert ingest.store.count_readings() == 0
    assert [c for c in cats(caplog) if c == 10262] == [10262, 10262]
