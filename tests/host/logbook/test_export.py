"""CSV export of the logbooks and the standalone check of an export (smgw.logbook.export)."""

import csv
import io

import pytest

from smgw.logbook import chain as ch
from smgw.logbook.chain import Signer
from smgw.logbook.export import ExportFormatError, header_for, verify_export
from smgw.logbook.store import Logbooks, LogLimits

GW = "EPPC0012345678"
T0 = 1_767_225_600_000
TEXTS = ["Uhrzeit über ntp-1 synchronisiert; Abweichung 2 s", 'Parameter "Tarif" geändert',
         "zwei\nZeilen, mit Komma", "=SUMME(A1)"]


@pytest.fixture(scope="module")
def signer():
    return Signer.generate(GW)


@pytest.fixture(scope="module")
def other():
    return Signer.generate(GW)  # same CN, another key: what a forger would make


@pytest.fixture
def lb(tmp_path, signer):
    lb = Logbooks.open(tmp_path / "logs.db", GW, signer, LogLimits(),
                       clock=lambda: T0 + 10**9)
    for i in range(30):
        lb.append(10067 + i % 3, ("INFO", "WARNING", "ERROR")[i % 3], "successful",
                  {"comm_profile": "ntp-1", "n": i, "x": "ä,\"q\""}, TEXTS[i % 4],
                  ["calibration", "system", "consumer"], ["lv-1"] if i % 2 else ["lv-2"],
                  ts_ms=T0 + i * 60_000, time_valid=i != 7)
    yield lb
    lb.close()


def export(lb, log="calibration", **kw) -> str:
    buf = io.StringIO(newline="")
    n = lb.export_csv(log, buf, **kw)
    text = buf.getvalue()
    assert n == sum(1 for r in csv.reader(io.StringIO(text, newline=""))
                    if r and not r[0].startswith("#")) - 1
    return text


def rows_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def text_of(rows):
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


def data_index(rows, seq):
    return next(i for i, r in enumerate(rows) if r and r[0] == str(seq))


def check(text, signer, gateway_id=GW):
    return verify_export(text, signer.cert_pem, gateway_id)


def found(result):
    return {(p.seq, p.code) for p in result.problems}


# ---------------------------------------------------------------- the format


def test_calibration_export_layout(lb, signer):
    text = export(lb)
    rows = rows_of(text)
    assert tuple(rows[0]) == header_for("calibration")
    assert rows[0][-3:] == ["prev_hash", "hash", "signature"]
    assert [r[0] for r in rows[1:31]] == [str(i) for i in range(1, 31)]
    assert rows[-2][0] == "#export" and rows[-1][0] == "#head"
    assert rows[-1][1] == "30"
    first = rows[1]
    assert first[1] == str(T0) and first[2] == "2026-01-01T00:00:00.000Z"
    assert first[7] == '{"comm_profile":"ntp-1","n":0,"x":"ä,\\"q\\""}'
    assert bytes.fromhex(first[9]) == ch.genesis(GW)
    assert rows[8][3] == "0"  # entry 8 was written with invalid time
    assert rows[3][8] == "zwei\nZeilen, mit Komma"  # text survives CSV quoting
    assert text.endswith("\r\n")


def test_exports_verify(lb, signer):
    r = check(export(lb), signer)
    assert r.ok and r.checked == 30 and r.head_seq == 30 and r.log == "calibration"
    assert Logbooks.verify_export(export(lb), signer.cert_pem.decode(), GW).ok
    for kw in ({"after_seq": 10}, {"after_seq": 10, "limit": 5}, {"limit": 3},
               {"since_ms": T0 + 5 * 60_000, "until_ms": T0 + 9 * 60_000}, {"level": "ERROR"},
               {"level": "WARNING", "since_ms": T0 + 10 * 60_000}):
        r = check(export(lb, **kw), signer)
        assert r.ok, (kw, r.problems)
    r = check(export(lb, "system"), signer)
    assert r.ok and r.log == "system" and r.checked == 30
    r = check(export(lb, "consumer", consumer="lv-1"), signer)
    assert r.ok and r.checked == 15
    assert rows_of(export(lb, "consumer", consumer="lv-1"))[1][-1] == "lv-1"


def test_empty_calibration_log_exports_and_verifies(tmp_path, signer):
    with Logbooks.open(tmp_path / "logs.db", GW, signer) as lb:
        text = export(lb)
    assert len(rows_of(text)) == 3
    assert check(text, signer).ok


# ---------------------------------------------------------------- tampering with the file


def test_edited_field_is_detected(lb, signer):
    rows = rows_of(export(lb))
    rows[data_index(rows, 5)][8] = "harmloser Text"
    r = check(text_of(rows), signer)
    assert (5, "hash") in found(r) and (None, "export") in found(r)
    rows = rows_of(export(lb))
    rows[data_index(rows, 6)][7] = '{"comm_profile":"ntp-2","n":5,"x":"ä,\\"q\\""}'
    assert (6, "hash") in found(check(text_of(rows), signer))
    rows = rows_of(export(lb))
    assert rows[data_index(rows, 8)][3] == "0"
    rows[data_index(rows, 8)][3] = "1"  # pretend the time was valid
    assert (8, "hash") in found(check(text_of(rows), signer))


def test_edited_time_column_is_detected(lb, signer):
    rows = rows_of(export(lb))
    rows[data_index(rows, 4)][2] = "2026-01-01T00:00:00.000Z"
    assert (4, "time") in found(check(text_of(rows), signer))


def test_deleted_row_is_detected(lb, signer):
    rows = rows_of(export(lb))
    del rows[data_index(rows, 12)]
    r = check(text_of(rows), signer)
    assert (13, "gap") in found(r) and (None, "export") in found(r)


def test_deleted_row_of_a_selection_is_detected(lb, signer):
    rows = rows_of(export(lb, level="ERROR"))
    del rows[2]
    r = check(text_of(rows), signer)
    assert not r.ok and found(r) == {(None, "export")}


def test_swapped_rows_are_detected(lb, signer):
    rows = rows_of(export(lb))
    i, j = data_index(rows, 20), data_index(rows, 21)
    rows[i], rows[j] = rows[j], rows[i]
    r = check(text_of(rows), signer)
    assert (20, "order") in found(r) and not r.ok


def test_cut_tail_is_detected(lb, signer):
    rows = rows_of(export(lb))
    trailer = rows[-2:]
    cut = rows[:data_index(rows, 26)] + trailer
    r = check(text_of(cut), signer)
    assert (None, "truncated") in found(r)
    assert any("ends at entry 25" in p.text for p in r.problems)
    # cut together with the trailer lines: no signed head, no signed export line
    r = check(text_of(rows[:data_index(rows, 26)]), signer)
    assert {(None, "head"), (None, "export")} <= found(r)


def test_forged_signature_is_detected(lb, signer, other):
    rows = rows_of(export(lb))
    row = rows[data_index(rows, 10)]
    row[8] = "gefälscht"
    e = type("E", (), {})()
    e.seq, e.ts_ms, e.time_valid, e.event_id = int(row[0]), int(row[1]), row[3] == "1", int(row[4])
    e.level, e.status, e.params, e.text = row[5], row[6], {"n": 9}, row[8]
    row[7] = '{"n":9}'
    h = ch.chain_hash(bytes.fromhex(row[9]), ch.entry_bytes(e))
    row[10], row[11] = h.hex(), other.sign(h).hex()
    r = check(text_of(rows), signer)
    assert (10, "signature") in found(r)
    assert (10, "hash") not in found(r)  # the forger got the hash right ...
    assert (11, "chain") in found(r)  # ... but cannot re-sign what follows


def test_file_signed_throughout_with_another_key(lb, signer, other, tmp_path):
    # a complete forgery: same gateway id, every signature made with the forger's key
    with Logbooks.open(tmp_path / "forged.db", GW, other) as forged:
        for i in range(5):
            forged.append(10067, "INFO", "successful", {}, "x", ["calibration"])
        text = export(forged)
    assert check(text, other).ok
    r = check(text, signer)  # checked against the real gateway's certificate
    assert found(r) == {(None, "key")}


def test_wrong_gateway_id(lb, signer):
    r = check(export(lb), signer, gateway_id="EOTHER")
    assert (1, "chain") in found(r) and (None, "gateway") in found(r)


def test_edited_system_export_is_detected(lb, signer):
    rows = rows_of(export(lb, "system"))
    rows[data_index(rows, 3)][8] = "anders"
    assert found(check(text_of(rows), signer)) == {(None, "export")}
    rows = rows_of(export(lb, "system"))
    del rows[data_index(rows, 3)]
    assert {(4, "gap"), (None, "export")} <= found(check(text_of(rows), signer))


def test_unreadable_row_is_a_problem_not_a_crash(lb, signer):
    rows = rows_of(export(lb))
    rows[data_index(rows, 3)][0] = "drei"
    r = check(text_of(rows), signer)
    assert any(p.code == "format" and "line 4" in p.text for p in r.problems)


@pytest.mark.parametrize("text", ["", "a,b,c\r\n1,2,3\r\n", "seq,ts_ms\r\n"])
def test_not_an_export(text, signer):
    with pytest.raises(ExportFormatError):
        verify_export(text, signer.cert_pem, GW)


def test_bad_certificate(lb):
    with pytest.raises(ValueError):
        verify_export(export(lb), b"not a certificate", GW)
