"""Gateway events with their catalogue ids (seed 000 §10, Tabelle 13/14).

Each event has the catalogue's id and level and a German message text of our own wording (what a
technician reads). The logbooks (calibration, system, consumer logs) that record them durably come
with their own module; until then events go to the structured process log with ``cat`` = id.
Only the ids in use so far are listed; the full catalogue is data added in one place, here.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple


class Event(NamedTuple):
    level: str  # INFO | WARNING | ERROR | FATAL
    text: str  # German, with {placeholders}
    frequent: bool = False  # one per meter telegram: kept out of the console at INFO


CATALOGUE: dict[int, Event] = {
    10020: Event("INFO", "Zähler {meter} wurde neu eingerichtet."),
    10022: Event("INFO", "Zähler {meter} wurde entfernt."),
    10033: Event("WARNING", "Zähler {meter} meldet einen Fehler (Code {code})."),
    10037: Event("ERROR", "Zähler {meter} meldet einen schwerwiegenden Fehler (Code {code})."),
    10164: Event("INFO", "Datenpaket von Zähler {meter} empfangen.", frequent=True),
    10175: Event("INFO", "Zähler {meter} hat die HDLC-Adresse {address} erhalten."),
    10186: Event("INFO", "Schlüsselaustausch mit Zähler {meter} durchgeführt "
                         "(Betriebsschlüssel {key_id})."),
    10198: Event("INFO", "Neues TLS-Zertifikat für die Verbindung zu Zähler {meter} erzeugt."),
    10207: Event("INFO", "Zählerprofil {profile} wurde angelegt."),
    10208: Event("INFO", "Zählerprofil {profile} wurde gelöscht."),
    10214: Event("ERROR", "Zähler {meter} konnte nicht mit dem SMGW {smgw} gepaart werden. "
                          "Grund: {reason}"),
    10263: Event("ERROR", "Prüfsumme der Daten von Zähler {meter} ist ungültig."),
    10274: Event("WARNING", "Telegramm von Zähler {meter} im Protokoll {protocol} hat eine "
                            "unverständliche Syntax und wurde verworfen ({reason})."),
}

_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "FATAL": logging.CRITICAL}


def emit(logger: logging.Logger, cat: int, **params: Any) -> str:
    """Logs catalogue event ``cat`` with its parameters; returns the German text."""
    ev = CATALOGUE[cat]
    text = ev.text.format(**params)
    level = logging.DEBUG if ev.frequent else _LEVELS[ev.level]
    logger.log(level, text, extra={"fields": {"cat": cat, "level": ev.level, **params}})
    return text
