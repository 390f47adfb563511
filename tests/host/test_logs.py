import io
import json
import logging
import re
from pathlib import Path

import pytest

from smgw.logs import (
    JsonFormatter,
    TextFormatter,
    event,
    format_fields,
    format_ts,
    get_logger,
    setup_logging,
)

# 2026-11-21T10:00:00.123Z
T0 = 1795255200.123


def make_record(msg="link up", fields=None, level=logging.INFO, name="smgw.link", args=()):
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.created = T0
    rec.msecs = 123.0
    if fields is not None:
        rec.fields = fields
    return rec


@pytest.fixture
def root_restored():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_timestamp_utc_iso_millis():
    assert format_ts(T0) == "2026-11-21T10:00:00.123Z"
    assert format_ts(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_ts(T0 + 0.5) == "2026-11-21T10:00:00.623Z"
    assert format_ts(1.999) == "1970-01-01T00:00:01.999Z"


def test_text_format_example():
    rec = make_record(fields={"fw_version": "0.1.0", "boot": 3})
    assert TextFormatter().format(rec) == (
        "2026-11-21T10:00:00.123Z INFO smgw.link link up fw_version=0.1.0 boot=3"
    )


def test_text_without_fields_and_with_args():
    rec = make_record("retransmit %d frames", args=(4,), level=logging.WARNING)
    assert TextFormatter().format(rec) == (
        "2026-11-21T10:00:00.123Z WARNING smgw.link retransmit 4 frames"
    )


def test_text_quoting():
    assert format_fields({"reason": "crc mismatch"}) == 'reason="crc mismatch"'
    assert format_fields({"a": ""}) == 'a=""'
    assert format_fields({"q": 'say "hi"'}) == r'q="say \"hi\""'
    assert format_fields({"eq": "a=b"}) == 'eq="a=b"'
    assert format_fields({"nl": "two\nlines"}) == r'nl="two\nlines"'
    assert format_fields({"tab": "a\tb"}) == r'tab="a\tb"'
    assert format_fields({"path": "/dev/ttyACM0"}) == "path=/dev/ttyACM0"
    assert format_fields({"u": "Zähler"}) == "u=Zähler"


def test_text_value_types():
    out = format_fields({"ok": True, "no": False, "none": None, "f": 0.5, "n": -3,
                         "b": b"\x01\xff", "p": Path("/a b")})
    assert out == 'ok=true no=false none=null f=0.5 n=-3 b=01ff p="/a b"'


def test_json_format():
    rec = make_record(fields={"fw_version": "0.1.0", "boot": 3, "cat": 1201,
                              "reason": "crc mismatch", "raw": b"\x00\x01"})
    obj = json.loads(JsonFormatter().format(rec))
    assert obj == {
        "ts": "2026-11-21T10:00:00.123Z",
        "level": "INFO",
        "logger": "smgw.link",
        "msg": "link up",
        "fw_version": "0.1.0",
        "boot": 3,
        "cat": 1201,
        "reason": "crc mismatch",
        "raw": "0001",
    }
    assert list(obj)[:4] == ["ts", "level", "logger", "msg"]


def test_json_is_one_line_and_reserved_keys_not_overridden():
    rec = make_record("multi\nline", fields={"msg": "sneaky", "level": 1, "x": "a\nb"})
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["msg"] == "multi\nline" and obj["level"] == "INFO"
    assert obj["field.msg"] == "sneaky" and obj["field.level"] == 1
    assert obj["x"] == "a\nb"


def test_exceptions_rendered():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    rec = make_record("failed", fields={"k": 1})
    rec.exc_info = exc_info
    text = TextFormatter().format(rec)
    assert text.splitlines()[0].endswith("failed k=1")
    assert "RuntimeError: boom" in text
    rec2 = make_record("failed")
    rec2.exc_info = exc_info
    obj = json.loads(JsonFormatter().format(rec2))
    assert "RuntimeError: boom" in obj["exc"]


def test_get_logger():
    assert get_logger("link").name == "smgw.link"
    assert get_logger("smgw.store").name == "smgw.store"
    assert get_logger("smgw").name == "smgw"


def test_setup_text_and_event(root_restored):
    buf = io.StringIO()
    setup_logging("info", "text", None, stream=buf)
    log = get_logger("link")
    event(log, "info", "link up", fw_version="0.1.0", boot=3)
    log.info("hello", extra={"fields": {"cat": 1001, "peer": "sim board"}})
    log.debug("hidden")
    event(log, "debug", "hidden too", x=1)
    event(log, logging.ERROR, "bad", code=7)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(ts + r" INFO smgw\.link link up fw_version=0\.1\.0 boot=3", lines[0])
    assert re.fullmatch(ts + r' INFO smgw\.link hello cat=1001 peer="sim board"', lines[1])
    assert re.fullmatch(ts + r" ERROR smgw\.link bad code=7", lines[2])


def test_setup_json_to_file_and_idempotent(tmp_path, root_restored):
    buf = io.StringIO()
    logfile = tmp_path / "logs" / "smgw.log"
    setup_logging("debug", "json", logfile, stream=buf)
    setup_logging("debug", "json", logfile, stream=buf)  # replaces, does not duplicate
    mine = [h for h in logging.getLogger().handlers if getattr(h, "_smgw_handler", False)]
    assert len(mine) == 2
    event(get_logger("store"), "debug", "opened", path="/x y", version=1)
    for h in mine:
        h.flush()
    console = [json.loads(x) for x in buf.getvalue().splitlines()]
    filed = [json.loads(x) for x in logfile.read_text(encoding="utf-8").splitlines()]
    assert console == filed
    assert len(filed) == 1
    assert filed[0]["logger"] == "smgw.store" and filed[0]["level"] == "DEBUG"
    assert filed[0]["path"] == "/x y" and filed[0]["version"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", filed[0]["ts"])


def test_setup_leaves_foreign_handlers(root_restored):
    foreign = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(foreign)
    try:
        setup_logging("warning", "text", stream=io.StringIO())
        setup_logging("warning", "text", stream=io.StringIO())
        assert foreign in logging.getLogger().handlers
        assert logging.getLogger().level == logging.WARNING
    finally:
        logging.getLogger().removeHandler(foreign)


def test_setup_rejects_bad_values(root_restored):
    with pytest.raises(ValueError, match="level"):
        setup_logging("verbose", "text")
    with pytest.raises(ValueError, match="format"):
        setup_logging("info", "xml")
