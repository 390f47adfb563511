import logging
import re

import pytest

from smgw import events
from smgw.events import CATALOGUE, emit


@pytest.fixture(autouse=True)
def _no_sink():
    events.set_sink(None)
    yield
    events.set_sink(None)


def test_every_event_formats_with_its_placeholders(caplog):
    log = logging.getLogger("smgw.test")
    caplog.set_level(logging.DEBUG)
    for cat, ev in CATALOGUE.items():
        params = {k: f"<{k}>" for k in re.findall(r"{(\w+)}", ev.text)}
        text = emit(log, cat, **params)
        assert "{" not in text and all(v in text for v in params.values())
        assert ev.level in ("INFO", "WARNING", "ERROR", "FATAL")
    rec = caplog.records[-1]
    assert rec.fields["cat"] == list(CATALOGUE)[-1]


def test_missing_parameter_is_a_bug_not_a_silent_gap():
    with pytest.raises(KeyError, match="meter"):
        emit(logging.getLogger("x"), 10263)
    with pytest.raises(events.MissingParameter):
        emit(logging.getLogger("x"), 10263)


def test_unknown_parameter_and_unknown_event_raise():
    with pytest.raises(events.UnexpectedParameter, match="metre"):
        emit(logging.getLogger("x"), 10263, meter="m", metre="m")
    with pytest.raises(events.UnknownEvent, match="99999"):
        emit(logging.getLogger("x"), 99999)
    with pytest.raises(ValueError, match="status"):
        emit(logging.getLogger("x"), 10263, status="ok", meter="m")


def test_record_fields_level_and_status(caplog):
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("smgw.test")
    text = emit(log, 10207, profile="P1")
    rec = caplog.records[-1]
    assert rec.levelno == logging.INFO and rec.getMessage() == text
    assert rec.fields == {"cat": 10207, "level": "INFO", "status": "successful",
                          "profile": "P1", "n_errors": 0, "errors": "keine"}
    emit(log, 10207, status="failed", profile="P1", n_errors=1, errors="Schlüssel fehlt")
    rec = caplog.records[-1]
    assert rec.levelno == logging.ERROR and rec.fields["level"] == "ERROR"
    assert rec.fields["status"] == "failed" and "Schlüssel fehlt" in rec.getMessage()
    emit(log, 10098)
    assert caplog.records[-1].levelno == logging.CRITICAL


def test_frequent_event_is_debug_on_the_console(caplog):
    caplog.set_level(logging.DEBUG)
    emit(logging.getLogger("smgw.test"), 10164, meter="M1")
    rec = caplog.records[-1]
    assert rec.levelno == logging.DEBUG and rec.fields["level"] == "INFO"


def test_sink_gets_every_event_with_effective_level_and_params():
    got = []
    events.set_sink(lambda *a: got.append(a))
    text = emit(logging.getLogger("x"), 10208, status="failed", profile="P2")
    assert got == [(10208, "ERROR", "failed", {"profile": "P2", "n_errors": 0,
                                               "errors": "keine"}, text)]
    assert events.get_sink() is not None
    events.set_sink(None)
    emit(logging.getLogger("x"), 10208, profile="P2")
    assert len(got) == 1


def test_failing_sink_is_logged_and_emit_goes_on(caplog):
    def broken(*_):
        raise OSError("disk full")

    events.set_sink(broken)
    caplog.set_level(logging.DEBUG)
    text = emit(logging.getLogger("smgw.test"), 10263, meter="M3")
    assert "M3" in text
    errs = [r for r in caplog.records if r.name == "smgw.events"]
    assert errs and errs[0].levelno == logging.ERROR
    assert isinstance(errs[0].exc_info[1], OSError)


def test_bad_parameters_never_reach_the_sink():
    got = []
    events.set_sink(lambda *a: got.append(a))
    with pytest.raises(KeyError):
        emit(logging.getLogger("x"), 10263)
    assert got == []


def test_context_is_logged_and_sunk_but_not_checked_against_the_text(caplog):
    got = []
    events.set_sink(lambda *a: got.append(a))
    caplog.set_level(logging.DEBUG)
    text = emit(logging.getLogger("smgw.test"), 10072, context={"offset_ms": 812})
    assert "812" not in text
    assert caplog.records[-1].fields["offset_ms"] == 812
    assert got[-1][3] == {"offset_ms": 812}
    with pytest.raises(ValueError, match="meter"):
        emit(logging.getLogger("x"), 10263, meter="m", context={"meter": "n"})
    with pytest.raises(events.UnexpectedParameter):  # a placeholder typo still raises
        emit(logging.getLogger("x"), 10263, metre="m", context={"x": 1})


def test_set_sink_rejects_non_callables():
    with pytest.raises(TypeError):
        events.set_sink("not callable")  # type: ignore[arg-type]


def test_emitter_splits_placeholders_from_context_and_fills_gateway_facts(caplog):
    from smgw.events import emitter

    caplog.set_level(logging.DEBUG)
    seen = []
    events.set_sink(lambda *a: seen.append(a))
    try:
        fn = emitter(logging.getLogger("smgw.test"), fill={"smgw": "EOPN0000000001"})
        text = fn(10041, {"power_off_s": 200000})
    finally:
        events.set_sink(None)
    assert "EOPN0000000001" in text
    cat, level, status, params, _ = seen[0]
    assert cat == 10041 and params["power_off_s"] == 200000 and params["smgw"] == "EOPN0000000001"
