"""The log-message catalogue against the seeds it comes from.

The seed parsers here are independent of the catalogue data: they read seed 000 Tabelle 13/14 and
seed 002 §9.3 from the text files (PDF extraction: wrapped lines, hyphenated words) and the tests
compare. Without the seed files (``SMGW_SEEDS`` or ``../shared/seeds`` next to the repository)
those comparisons are skipped; the rest always runs.
"""

from __future__ import annotations

import difflib
import os
import re
import string
from pathlib import Path

import pytest

from smgw.logbook import catalogue as cat
from smgw.logbook.catalogue import (
    CATALOGUE,
    CONSUMER_002,
    PARAMS,
    MissingParameter,
    UnexpectedParameter,
    UnknownEvent,
    event,
    format_event,
)

REPO = Path(__file__).resolve().parents[3]
SEEDS = Path(os.environ.get("SMGW_SEEDS", REPO.parent / "shared" / "seeds"))
N_TABLE13 = 148  # distinct ids of seed 000 Tabelle 13 (checked against the seed when present)


def _seed(prefix: str) -> list[str]:
    files = sorted(SEEDS.glob(f"{prefix}_*.txt")) if SEEDS.is_dir() else []
    if not files:
        pytest.skip(f"seed {prefix} not found under {SEEDS}")
    return files[0].read_text(encoding="utf-8").splitlines()


def _dehyphenate(s: str) -> str:
    s = re.sub(r"(\w)- ([a-zäöüß])", r"\1\2", s)  # "Zähler- nummer" -> "Zählernummer"
    return re.sub(r"(\w)- (\w)", r"\1-\2", s)  # "WAN- Service" -> "WAN-Service"


def _table13() -> dict[int, dict]:
    """id -> {level, failed_level, message} from seed 000 §10."""
    lines = _seed("000")
    start = next(i for i, line in enumerate(lines) if line.startswith("10 Anhang: Logmeldungen"))
    end = next(i for i, line in enumerate(lines)
               if i > start and line.startswith("Folgende Nachrichtenparameter"))
    rows: dict[int, dict] = {}
    last = None
    for line in lines[start:end]:
        m = re.match(r"^(\d{5})\t(INFO|WARNING|ERROR|FATAL)\t([^\t]*)", line)
        if m:
            last = int(m.group(1))
            assert last not in rows, f"id {last} twice in Tabelle 13"
            rows[last] = {"level": m.group(2), "failed_level": None, "message": [m.group(3)]}
            continue
        if last is None or not line.startswith("\t"):
            continue
        cols = line.split("\t")[1:]
        lv = re.match(r"(INFO|WARNING|ERROR|FATAL) \(bei Status", cols[0])
        if lv:
            rows[last]["failed_level"] = lv.group(1)
        if len(cols) > 1 and cols[1]:
            rows[last]["message"].append(cols[1])
    for r in rows.values():
        r["message"] = _dehyphenate(" ".join(r["message"]))
    return rows


def _table14_labels() -> list[str]:
    lines = _seed("000")
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("Tabelle 14: Nachrichtenparameter"))
    labels = []
    for line in lines[start:]:
        if line.startswith("11 Anhang"):
            break
        if line.startswith("["):
            cell = _dehyphenate(line.split("\t")[0])
            labels += re.findall(r"\[[^\]]+\]", cell)
    return labels


def _consumer_events_002() -> list[tuple[int, int, str]]:
    """(event_id, sub_id, level) of every event listed in seed 002 §9.3."""
    lines = _seed("002")
    heads = [i for i, line in enumerate(lines)
             if line.startswith("9.3 Protokollierte Ereignisse im Letztverbraucher-Log")]
    start = heads[-1]  # the body, not the table of contents
    end = next(i for i, line in enumerate(lines)
               if i > start and line.startswith("9.4 Herstellerspezifische Fehlercodes"))
    out = []
    for line in lines[start:end]:
        m = re.match(r"^(\d+)\t(\d+)\t(\w+)\t", line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3).lower()))
    return out


def _norm(text: str) -> str:
    text = re.sub(r"\[[^\]]*\]|\{[^}]*\}", "<>", _dehyphenate(text))
    return re.sub(r"\s+", " ", text).strip().rstrip(".").lower()


# --- the catalogue against seed 000 Tabelle 13/14 ---------------------------------------------

def test_one_entry_per_id_of_table13():
    assert len(CATALOGUE) == N_TABLE13
    assert list(CATALOGUE) == sorted(CATALOGUE)
    t13 = _table13()
    assert len(t13) == N_TABLE13
    assert set(CATALOGUE) == set(t13)


def test_levels_match_table13_including_the_failed_status_level():
    for eid, row in _table13().items():
        ev = event(eid)
        assert ev.level == row["level"], eid
        assert ev.level_failed == row["failed_level"], eid
        assert ev.level_for("failed") == (row["failed_level"] or row["level"])


def test_texts_are_our_own_wording_not_the_seeds():
    t13 = _table13()
    for eid, ev in CATALOGUE.items():
        ours, seed = _norm(ev.text), _norm(t13[eid]["message"])
        assert ours != seed, eid
        # not a near-copy either (short factual messages stay below ~0.8)
        assert difflib.SequenceMatcher(None, ours, seed).ratio() < 0.85, (eid, ours, seed)


def test_actions_are_our_own_wording():
    seed_actions = {
        "Keine Aktion erforderlich.", "Bitte informieren Sie den GWA Ihres SMGWs.",
        "Falls möglich klären Sie bitte die aufgetretenen Fehler mit dem GWA.",
    }
    norm = {_norm(a) for a in seed_actions}
    for ev in CATALOGUE.values():
        assert ev.action and _norm(ev.action) not in norm, ev.id


def test_every_table14_parameter_has_a_name():
    fix = str.maketrans({"Т": "T", "у": "y", "р": "p", "е": "e"})  # Cyrillic in "[Туре]"
    ours = " ".join(p.german_label + " " + p.description for p in PARAMS.values()).lower()
    for label in _table14_labels():
        label = label.translate(fix).replace("-ld]", "-id]").replace("[Ip- ", "[Ip-")
        label = label.replace("[Transmission_Counter_1] / [Transmission_Counter_1]", "")
        assert label.lower() in ours, label


# --- routing ------------------------------------------------------------------------------------

def test_every_event_goes_to_the_system_log_and_logs_are_known():
    for ev in CATALOGUE.values():
        assert "system" in ev.logs and ev.logs <= {"calibration", "system", "consumer"}
        assert ev.source.startswith("000 T13; system: all"), ev.id
        if "calibration" in ev.logs:
            assert "calibration:" in ev.source, ev.id
        if "consumer" in ev.logs:
            assert "consumer:" in ev.source, ev.id


def test_every_consumer_event_of_002_is_mapped_and_reaches_the_consumer_log():
    listed = _consumer_events_002()
    assert len(listed) == 51
    mapped = {(c.event_id, c.sub_id): c for c in CONSUMER_002}
    assert set(mapped) == {(e, s) for e, s, _ in listed}
    for c in CONSUMER_002:
        assert c.ids or c.note.startswith("no id in 000 T13"), (c.event_id, c.sub_id)
        for i in c.ids:
            assert "consumer" in event(i).logs, i
            assert f"{c.event_id}/{c.sub_id}" in event(i).source, i


def test_consumer_events_keep_their_severity_class():
    # an error/fatal of 002 is not an INFO of ours, unless it is carried by status "failed"
    rank = {"info": 0, "warning": 1, "error": 2, "fatal": 3}
    ours = {"INFO": 0, "WARNING": 1, "ERROR": 2, "FATAL": 3}
    for eid, sub, level in _consumer_events_002():
        c = next(c for c in CONSUMER_002 if (c.event_id, c.sub_id) == (eid, sub))
        for i in c.ids:
            ev = event(i)
            best = max(ours[ev.level], ours.get(ev.level_failed or "", 0))
            if rank[level] >= 2:
                assert best >= 1, (eid, sub, i)


def test_the_issue_s_capacity_and_state_events_are_where_the_seeds_put_them():
    assert {"calibration", "consumer"} <= event(10098).logs  # 002 §9.3.7 19008
    assert event(10098).level == "FATAL"
    for eid in (10235, 10097):
        assert "calibration" in event(eid).logs
    for eid in (10236, 10237, 10238, 10253, 10255):
        assert "consumer" in event(eid).logs
    for eid in (10041, 10067, 10068, 10071, 10072, 10073, 10260, 10261, 10271, 30300,
                10064, 10065, 10140, 10143, 10262, 10263, 10264):
        assert "calibration" in event(eid).logs, eid
    assert event(10239).logs == {"system"}
    assert event(10254).logs == {"system"}
    assert event(10164).logs == {"system"}  # one per telegram: not in the signed log


# --- parameters and formatting ---------------------------------------------------------------

def test_placeholders_are_identifiers_and_described():
    for ev in CATALOGUE.values():
        names = [f for _, f, _, _ in string.Formatter().parse(ev.text) if f is not None]
        assert tuple(dict.fromkeys(names)) == ev.params
        for p in ev.params:
            assert p.isidentifier() and p == p.lower(), (ev.id, p)
            assert p in PARAMS, (ev.id, p)
        assert set(ev.defaults) <= set(ev.params)
    for name, pd in PARAMS.items():
        assert pd.name == name and name.isidentifier() and pd.german_label and pd.description


def test_every_text_formats_with_its_params():
    for ev in CATALOGUE.values():
        values = {p: f"<{p}>" for p in ev.params}
        text = format_event(ev.id, **values)
        assert "{" not in text and "}" not in text
        assert all(v in text for v in values.values())
        required = {p: f"<{p}>" for p in ev.required}
        assert "{" not in format_event(ev.id, **required)


def test_callers_ids_keep_their_placeholder_names():
    expected = {
        10020: {"meter"}, 10022: {"meter"}, 10033: {"meter", "code"},
        10037: {"meter", "code"}, 10164: {"meter"}, 10175: {"meter", "address"},
        10186: {"meter", "key_id"}, 10198: {"meter"}, 10207: {"profile"}, 10208: {"profile"},
        10214: {"meter", "smgw", "reason"}, 10263: {"meter"},
        10274: {"meter", "protocol", "reason"},
    }
    for eid, names in expected.items():
        assert set(event(eid).required) == names, eid
    assert event(10164).frequent
    assert set(event(10208).defaults) == {"n_errors", "errors"}
    assert set(event(10209).defaults) == {"n_errors", "errors"}


def test_format_errors_name_the_problem():
    with pytest.raises(MissingParameter, match="code"):
        format_event(10033, meter="M")
    with pytest.raises(UnexpectedParameter, match="adress"):
        format_event(10175, meter="M", address="0x10", adress="0x10")
    with pytest.raises(UnknownEvent, match="12345"):
        event(12345)
    with pytest.raises(KeyError):
        format_event(12345)
    assert str(UnknownEvent("plain")) == "plain"
    assert format_event(10208, profile="P", n_errors=2, errors="a; b") == \
        "Zählerprofil P wurde gelöscht (2 Fehler, Einzelheiten: a; b)."


def test_values_with_braces_are_not_reinterpreted():
    assert format_event(10263, meter="{x}") == "Prüfsumme der Daten von Zähler {x} ist ungültig."


# --- the generated doc --------------------------------------------------------------------------

def test_doc_is_up_to_date():
    doc = REPO / "docs" / "log-catalogue.md"
    assert doc.read_text(encoding="utf-8") == cat.markdown(), \
        "docs/log-catalogue.md is stale: run python -m smgw.logbook.catalogue --write"


def test_doc_lists_every_event_once():
    md = cat.markdown()
    rows = re.findall(r"^\| (\d{5}) \|", md, flags=re.M)
    assert sorted(map(int, rows)) == list(CATALOGUE)
