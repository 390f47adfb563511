"""Structured logging for the host.

Each module logs through ``logging.getLogger("smgw.<part>")`` (or
:func:`get_logger`).  Structured fields are attached either as
``log.info("link up", extra={"fields": {"fw_version": "0.1.0", "boot": 3}})`` or
with :func:`event`::

    event(log, "info", "link up", fw_version="0.1.0", boot=3)

Text format (one line per record)::

    2026-11-21T10:00:00.123Z INFO smgw.link link up fw_version=0.1.0 boot=3

JSON format (one object per line)::

    {"ts": "2026-11-21T10:00:00.123Z", "level": "INFO", "logger": "smgw.link",
     "msg": "link up", "fw_version": "0.1.0", "boot": 3}

The catalogue id of the gateway's log catalogue is the ordinary field ``cat``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "event",
    "format_fields",
    "get_logger",
    "setup_logging",
]

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")

#: keys of the JSON object that fields cannot override (colliding fields get a "field." prefix)
RESERVED_JSON_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})

_BARE_VALUE = re.compile(r"^[^\s\"=\\]+$")
_HANDLER_MARK = "_smgw_handler"


def get_logger(part: str) -> logging.Logger:
    """``logging.getLogger("smgw.<part>")`` (``part`` may already start with ``smgw``)."""
    if part == "smgw" or part.startswith("smgw."):
        return logging.getLogger(part)
    return logging.getLogger(f"smgw.{part}")


def event(logger: logging.Logger, level: int | str, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` at ``level`` ("info", logging.INFO, ...)."""
    lvl = LEVELS[level.lower()] if isinstance(level, str) else int(level)
    if logger.isEnabledFor(lvl):
        logger.log(lvl, msg, extra={"fields": fields}, stacklevel=2)


def format_ts(created: float) -> str:
    """UTC ISO 8601 with milliseconds: 2026-11-21T10:00:00.123Z."""
    # truncate to ms like logging's msecs; the epsilon absorbs float representation error
    secs, ms = divmod(int(created * 1000 + 1e-3), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def _text_value(value: Any) -> str:
    if value is None:
        s = "null"
    elif isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        s = bytes(value).hex()
    elif isinstance(value, (str, int, float)):
        s = str(value)
    else:
        s = str(value)
    if _BARE_VALUE.match(s):
        return s
    return json.dumps(s, ensure_ascii=False)  # quoted, with \" \n escapes


def format_fields(fields: dict[str, Any]) -> str:
    """``key=value`` pairs separated by spaces; values with spaces, quotes, '=' quoted."""
    return " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger> <msg> k=v ...`` (+ traceback lines)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [format_ts(record.created), record.levelname, record.name, record.getMessage()]
        fields = _record_fields(record)
        if fields:
            parts.append(format_fields(fields))
        line = " ".join(parts)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the fields (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": format_ts(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in _record_fields(record).items():
            key = str(k)
            obj[f"field.{key}" if key in RESERVED_JSON_KEYS else key] = v
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            obj["exc"] = record.exc_text
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, ensure_ascii=False, default=_json_default)


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "text":
        return TextFormatter()
    if fmt == "json":
        return JsonFormatter()
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    file: Path | str | None = None,
    *,
    stream: IO[str] | None = None,
    console: bool = True,
) -> None:
    """Configure the root logger: console (stderr or ``stream``) and optionally ``file``.

    Idempotent: handlers installed by an earlier call are replaced; handlers
    installed by others (e.g. pytest's caplog) are left alone.  The file is
    appended to and reopened if rotated away (WatchedFileHandler).
    """
    try:
        lvl = LEVELS[level.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"log level must be one of {', '.join(LEVELS)}, got {level!r}"
        ) from None
    formatter = make_formatter(fmt)

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
            h.close()

    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler(stream if stream is not None else sys.stderr))
    if file is not None:
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
    for h in handlers:
        setattr(h, _HANDLER_MARK, True)
        h.setFormatter(formatter)
        h.setLevel(lvl)
        root.addHandler(h)
    root.setLevel(lvl)
