import logging
import re

import pytest

from smgw.events import CATALOGUE, emit


def test_every_event_formats_with_its_placeholders_and_is_german(caplog):
    log = logging.getLogger("smgw.test")
    caplog.set_level(logging.DEBUG)
    for cat, ev in CATALOGUE.items():
        params = {k: f"<{k}>" for k in re.findall(r"{(\w+)}", ev.text)}
        text = emit(log, cat, **params)
        assert "{" not in text and all(v in text for v in params.values())
        assert any(w in text for w in ("Zähler", "Zählerprofil"))
    rec = caplog.records[-1]
    assert rec.fields["cat"] == list(CATALOGUE)[-1]


def test_missing_parameter_is_a_bug_not_a_silent_gap():
    with pytest.raises(KeyError):
        emit(logging.getLogger("x"), 10263)
