"""Raising the gateway's catalogue events (seed 000 §10, Tabelle 13/14).

``emit(log, 10263, meter="1EMH0011261482")`` formats the catalogue's German text
(:mod:`smgw.logbook.catalogue`), logs it to the structured process log with the fields ``cat``
(the id), ``level``, ``status`` and the parameters, and hands the entry to the logbook sink if
one is attached with :func:`set_sink`::

    set_sink(lambda cat, level, status, params, text: books.append(...))
    emit(log, 10207, profile="meter-1")                    # INFO, status "successful"
    emit(log, 10207, status="failed", profile="meter-1",   # ERROR (Tabelle 13's failed level)
         n_errors=1, errors="Schlüssel fehlt")

Events flagged ``frequent`` (one per telegram) go to the console log at DEBUG. A missing or
unknown parameter or an unknown id raises (``KeyError`` subclasses from the catalogue): that is
the caller's bug. A sink that raises is logged and does not stop the caller.

Facts that are not placeholders of the text (an offset in ms, a check code) go in ``context``:
they are logged and handed to the sink with the parameters, but never checked against or put
into the text::

    emit(log, 10072, context={"offset_ms": 812, "tolerance_ms": 27})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from smgw.logbook.catalogue import (
    CATALOGUE,
    EventDef,
    MissingParameter,
    UnexpectedParameter,
    UnknownEvent,
    event,
)

__all__ = [
    "CATALOGUE",
    "EventDef",
    "MissingParameter",
    "Sink",
    "UnexpectedParameter",
    "UnknownEvent",
    "emit",
    "get_sink",
    "set_sink",
]

#: sink(cat, level, status, params, text): called for every emitted event
Sink = Callable[[int, str, str, Mapping[str, Any], str], None]

_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "FATAL": logging.CRITICAL}
_log = logging.getLogger("smgw.events")
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    """Attach the logbooks (``None`` detaches). Called with ``(cat, level, status, params,
    text)``; ``params`` includes the defaults of optional parameters and the ``context``."""
    global _sink
    if sink is not None and not callable(sink):
        raise TypeError(f"sink must be callable or None, not {type(sink).__name__}")
    _sink = sink


def get_sink() -> Sink | None:
    """The attached sink, if any."""
    return _sink


def emit(logger: logging.Logger, cat: int, *, status: str = "successful",
         context: Mapping[str, Any] | None = None, **params: Any) -> str:
    """Logs catalogue event ``cat`` with ``status`` ("successful" | "failed") and its
    parameters (plus ``context``, see the module doc); returns the German text."""
    ev = event(cat)
    level = ev.level_for(status)
    values = ev.resolve(params)
    text = ev.text.format_map(values)
    if context:
        clash = sorted(set(context) & {*values, "cat", "level", "status"})
        if clash:
            raise ValueError(f"event {cat}: context repeats {', '.join(clash)}")
        values.update(context)
    py_level = logging.DEBUG if ev.frequent else _LEVELS[level]
    logger.log(py_level, text,
               extra={"fields": {"cat": cat, "level": level, "status": status, **values}})
    sink = _sink
    if sink is not None:
        try:
            sink(cat, level, status, dict(values), text)
        except Exception:  # noqa: BLE001 - the logbook must not break the caller
            _log.exception("logbook sink failed for event %s", cat,
                           extra={"fields": {"event": cat, "sink": repr(sink)}})
    return text



def emitter(logger: logging.Logger, fill: Mapping[str, Any] | None = None
            ) -> Callable[..., str]:
    """``fn(cat, params, status="successful")`` for modules that report events as one dict
    (legal time, self-test, operating states): the keys that are placeholders of the event's
    text fill it, missing optional ones take their defaults, the rest travel as context."""
    from smgw.logbook.catalogue import event as _event

    def fn(cat: int, params: Mapping[str, Any] | None = None, status: str = "successful") -> str:
        ev = _event(cat)
        params = dict(params or {})
        status = str(params.pop("status", status))
        names = set(ev.params)
        text_params = {k: v for k, v in params.items() if k in names}
        for k in ev.params:
            if k not in text_params and k not in ev.defaults:
                # a fact the reporting module does not know
                text_params[k] = (fill or {}).get(k, "-")
        context = {k: v for k, v in params.items() if k not in names}
        return emit(logger, cat, status=status, context=context or None, **text_params)

    return fn
