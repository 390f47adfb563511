"""The gateway's log-message catalogue (seed 000 §10, Tabelle 13/14) as ``EventDef`` objects.

Every message of Tabelle 13 has its id and level from the seed, a German text of our own wording
with ``{name}`` placeholders, the logbooks it goes to and where that routing comes from::

    from smgw.logbook.catalogue import event, format_event

    event(10263).logs                     # frozenset({'system', 'calibration', 'consumer'})
    format_event(10263, meter="1EMH0011261482")
    # 'Prüfsumme der Daten von Zähler 1EMH0011261482 ist ungültig.'

A missing placeholder raises :class:`MissingParameter`, an unknown one
:class:`UnexpectedParameter` (both ``KeyError``: a caller's bug), an unknown id
:class:`UnknownEvent`. The data lives in :mod:`smgw.logbook.catalogue_data`; ``markdown()``
renders docs/log-catalogue.md (``python -m smgw.logbook.catalogue --write`` updates it).

Routing (see also the doc): the system log gets every event; the calibration log (Eichlog) the
metrologically relevant ones (002 §5.4 and the reasons in ``CALIBRATION_REASONS``); the consumer
log the events of 002 §9.3 mapped to our ids by meaning, plus the few that 002 §5.2 describes.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from smgw.logbook import catalogue_data as _data

__all__ = [
    "CATALOGUE",
    "CONSUMER_002",
    "LEVELS",
    "LOGS",
    "PARAMS",
    "STATUSES",
    "CatalogueError",
    "Consumer002",
    "EventDef",
    "MissingParameter",
    "ParamDef",
    "UnexpectedParameter",
    "UnknownEvent",
    "event",
    "format_event",
    "markdown",
]

LEVELS = ("INFO", "WARNING", "ERROR", "FATAL")
LOGS = ("calibration", "system", "consumer")
STATUSES = ("successful", "failed")
DOC_PATH = Path("docs") / "log-catalogue.md"


class CatalogueError(KeyError):
    """Base of the catalogue's lookup errors; ``str()`` is the plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownEvent(CatalogueError):
    """No event with this id in the catalogue."""


class MissingParameter(CatalogueError):
    """A placeholder of the event's text was not given."""


class UnexpectedParameter(CatalogueError):
    """A parameter that the event's text does not have (most likely a typo)."""


@dataclass(frozen=True)
class ParamDef:
    """A placeholder name and what it means (Tabelle 14)."""

    name: str
    german_label: str  # the catalogue's name, e.g. "[Zählernummer]"
    description: str
    table14: bool = True  # False: named in Tabelle 13 only or added by us


@dataclass(frozen=True)
class EventDef:
    """One message of the catalogue."""

    id: int
    level: str  # INFO | WARNING | ERROR | FATAL (status "successful")
    text: str  # German, our wording, with {placeholders}
    params: tuple[str, ...]  # the placeholders, in text order
    logs: frozenset[str]  # subset of LOGS
    action: str  # what the service technician does, our wording
    source: str  # where the id/level and the routing come from
    frequent: bool = False  # one per telegram/request: DEBUG on the console
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}),
                                        hash=False)
    level_failed: str | None = None  # level when the status is "failed", if the seed has one

    @property
    def required(self) -> tuple[str, ...]:
        """The placeholders a caller must give."""
        return tuple(p for p in self.params if p not in self.defaults)

    def level_for(self, status: str = "successful") -> str:
        """The level to log at for ``status``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        return self.level_failed if status == "failed" and self.level_failed else self.level

    def format(self, **params: Any) -> str:
        """The text with ``params`` (and the defaults) filled in."""
        return self.text.format_map(self.resolve(params))

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the placeholders, defaults added (text order)."""
        extra = sorted(set(params) - set(self.params))
        if extra:
            raise UnexpectedParameter(
                f"event {self.id}: unexpected parameter(s) {', '.join(extra)}; "
                f"the text has {', '.join(self.params) or 'no placeholders'}")
        missing = [p for p in self.required if p not in params]
        if missing:
            raise MissingParameter(
                f"event {self.id}: missing parameter(s) {', '.join(missing)} "
                f"for {self.text!r}")
        return {p: params[p] if p in params else self.defaults[p] for p in self.params}


@dataclass(frozen=True)
class Consumer002:
    """An event of seed 002 §9.3 (consumer log) and the ids of ours that carry it."""

    event_id: int
    sub_id: int
    section: str
    gist: str
    ids: tuple[int, ...]
    note: str


def _placeholders(text: str) -> tuple[str, ...]:
    names: list[str] = []
    for _, name, spec, conv in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"placeholder {{{name}}} in {text!r} is not a plain identifier")
        if name not in names:
            names.append(name)
    return tuple(names)


def _build() -> tuple[dict[int, EventDef], dict[str, ParamDef], tuple[Consumer002, ...]]:
    params = {p[0]: ParamDef(*p) for p in _data.PARAMS}
    consumer = tuple(Consumer002(*c) for c in _data.CONSUMER_002)
    via_002: dict[int, list[str]] = {}
    for c in consumer:
        for i in c.ids:
            via_002.setdefault(i, []).append(f"{c.event_id}/{c.sub_id}")
    sections = {i: sorted({c.section for c in consumer if i in c.ids}) for i in via_002}
    events: dict[int, EventDef] = {}
    for row in _data.EVENTS:
        eid, level, level_failed, text, action, cal = row[:6]
        defaults = row[6] if len(row) > 6 else {}
        if eid in events:
            raise ValueError(f"event {eid} twice in the catalogue data")
        if level not in LEVELS or (level_failed is not None and level_failed not in LEVELS):
            raise ValueError(f"event {eid}: bad level {level!r}/{level_failed!r}")
        names = _placeholders(text)
        unknown = [n for n in (*names, *defaults) if n not in params]
        if unknown or set(defaults) - set(names):
            raise ValueError(f"event {eid}: parameters {unknown or list(defaults)} not in PARAMS "
                             f"or not in the text")
        logs = {"system"}
        source = ["000 T13", "system: all"]
        if cal is not None:
            logs.add("calibration")
            source.append(f"calibration: {_data.CALIBRATION_REASONS[cal][0]} [{cal}]")
        if eid in via_002:
            logs.add("consumer")
            secs = ", ".join(f"§{s}" for s in sections[eid])
            source.append(f"consumer: 002 {secs} {', '.join(via_002[eid])}")
        elif eid in _data.CONSUMER_EXTRA:
            key = _data.CONSUMER_EXTRA[eid]
            logs.add("consumer")
            source.append(f"consumer: {_data.CONSUMER_REASONS[key][0]} [{key}]")
        events[eid] = EventDef(
            id=eid, level=level, text=text, params=names, logs=frozenset(logs),
            action=_data.ACTIONS[action], source="; ".join(source),
            frequent=eid in _data.FREQUENT, defaults=MappingProxyType(dict(defaults)),
            level_failed=level_failed)
    for i in (*via_002, *_data.CONSUMER_EXTRA, *_data.FREQUENT):
        if i not in events:
            raise ValueError(f"id {i} is routed or flagged but not in the catalogue")
    return dict(sorted(events.items())), params, consumer


_EVENTS, _PARAMS, CONSUMER_002 = _build()
#: id -> EventDef, ascending ids (read-only)
CATALOGUE: Mapping[int, EventDef] = MappingProxyType(_EVENTS)
#: placeholder name -> ParamDef (read-only)
PARAMS: Mapping[str, ParamDef] = MappingProxyType(_PARAMS)


def event(id: int) -> EventDef:  # noqa: A002 - the catalogue's word
    """The catalogue entry ``id``; :class:`UnknownEvent` if there is none."""
    try:
        return _EVENTS[id]
    except (KeyError, TypeError):
        raise UnknownEvent(f"no event {id!r} in the log catalogue (seed 000 Tabelle 13)") \
            from None


def format_event(id: int, **params: Any) -> str:  # noqa: A002
    """The German text of event ``id`` with ``params`` filled in."""
    return event(id).format(**params)


# ---------------------------------------------------------------------------------------------
# docs/log-catalogue.md

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _logs(ev: EventDef) -> str:
    short = {"calibration": "Eich", "system": "Sys", "consumer": "LV"}
    return ", ".join(short[x] for x in LOGS if x in ev.logs)


def markdown() -> str:
    """docs/log-catalogue.md: the whole catalogue, the routing rules and the 002 §9.3 mapping."""
    n = len(_EVENTS)
    count = {x: sum(x in e.logs for e in _EVENTS.values()) for x in LOGS}
    out = [
        "# Log-message catalogue",
        "",
        "<!-- generated by smgw.logbook.catalogue.markdown(); do not edit by hand: run",
        "     `python -m smgw.logbook.catalogue --write` (a test checks this file is current) -->",
        "",
        f"All {n} messages of seed 000 §10 (Tabelle 13) with their id and level from the seed, "
        "a German text and",
        "a recommended action in our own words, the parameters of Tabelle 14 as placeholders, "
        "and the logbooks",
        "each goes to. Data: `host/smgw/logbook/catalogue_data.py`; "
        "API: `host/smgw/logbook/catalogue.py`,",
        "`smgw.events.emit(logger, id, status=..., context=..., **params)` (context: facts logged "
        "with the entry that are not placeholders of the text).",
        "",
        "## How the routing was decided",
        "",
        f"- **System log** (`Sys`, {count['system']} events): every event. It is the log of the "
        "gateway administrator",
        "  and the service technician (002 §5.3: \"jedes wichtige Ereignis\"; 000 §4.2/§10 show "
        "the technician all",
        "  messages of the table there).",
        f"- **Calibration log** (`Eich`, {count['calibration']} events): the metrologically "
        "relevant events. 002 §5.4 names",
        "  detected falsification of measurements, failed time synchronisation, time jumps and "
        "changes of tariff",
        "  profiles and other metrologically relevant parameters. From that and from the "
        "operating states of",
        "  000 §2.6 (Tabelle 8), 001 D-2 and 002 §8 we add: legal time, software updates and "
        "rollback, meter",
        "  errors and rejected meter data, meter keys and certificates, the meters and meter "
        "profiles that are",
        "  registered, self-test results, measuring stopped/resumed, storage and Eichlog "
        "capacity, start and",
        "  restart, deletion of measured values. Reasons (the `[key]` in the `Quelle` column):",
        "",
    ]
    for key, (_, why) in _data.CALIBRATION_REASONS.items():
        out.append(f"  - `[{key}]` {why}")
    out += [
        "",
        f"- **Consumer log** (`LV`, {count['consumer']} events): the events that seed 002 §9.3 "
        "lists for the consumer",
        "  log, each mapped to our ids by meaning (table below; 002 uses its own event ids), "
        "plus those that",
        "  002 §5.2 describes in general (\"wer, wann, welche Daten erhalten hat, oder ob "
        "benutzerbezogene Daten",
        "  (z. B. Profile) geändert bzw. hinzugefügt oder entfernt wurden\") and the capacity "
        "messages of the",
        "  consumer's own log. The gateway administrator may not read this log (002 §5.2).",
        "  Reasons of those not in 002 §9.3:",
        "",
        *(f"  - `[{key}]` {why}" for key, (_, why) in _data.CONSUMER_REASONS.items()),
        "",
        "The `Quelle` column reads: `000 T13` (id, level and parameters from seed 000 Tabelle "
        "13); `system: all`;",
        "`calibration: <refs> [<reason>]`; `consumer: 002 §9.3.x <002 event/sub id>` or "
        "`consumer: <refs> [<reason>]`.",
        "",
        "The status of an entry is *erfolgreich* (`successful`) or *fehlgeschlagen* (`failed`); "
        "where Tabelle 13",
        "gives a second level for a failed status (e.g. `INFO / ERROR`), the second one is "
        "logged then.",
        "Parameters marked `=default` may be left out by the caller. "
        "Events marked *(häufig)* are logged at",
        "DEBUG on the console (one per telegram or request) but go to the logbooks like the "
        "others.",
        "",
        "## Open points",
        "",
        "- 002 §5.3 keeps personal data out of the system log, yet some events name a consumer "
        "or user",
        "  (10008–10011, 10049, 10228, 10236–10238, 10253, 10255): the system log should store "
        "a pseudonym for",
        "  `consumer` / `user`. Not decided here.",
        "- Two events of 002 §9.3 have no message in Tabelle 13 (4294954294/0: time set from "
        "the RTC; 20020/0:",
        "  CLS-EMT connection torn down); until the catalogue has ids for them they are not "
        "logged.",
        "- Which consumer's log gets an event is the logbook's decision (from `consumer` or the "
        "profile);",
        "  events without such a parameter (operating state, time) concern every consumer.",
        "",
        "## Messages",
        "",
        "| ID | Level | Text | Parameter | Logs | Aktion | Quelle |",
        "|---|---|---|---|---|---|---|",
    ]
    for ev in _EVENTS.values():
        level = ev.level + (f" / {ev.level_failed}" if ev.level_failed else "")
        text = _cell(ev.text) + (" *(häufig)*" if ev.frequent else "")
        params = ", ".join(f"`{p}={ev.defaults[p]}`" if p in ev.defaults else f"`{p}`"
                           for p in ev.params)
        out.append(f"| {ev.id} | {level} | {text} | {params} | {_logs(ev)} | "
                   f"{_cell(ev.action)} | {_cell(ev.source)} |")
    out += [
        "",
        "## Parameters (Tabelle 14)",
        "",
        "| Name | im Katalog | Bedeutung | verwendet in |",
        "|---|---|---|---|",
    ]
    for p in sorted(_PARAMS.values(), key=lambda p: p.name):
        used = [str(e.id) for e in _EVENTS.values() if p.name in e.params]
        label = p.german_label + ("" if p.table14 else " (nicht in Tabelle 14)")
        out.append(f"| `{p.name}` | {_cell(label)} | {_cell(p.description)} | "
                   f"{', '.join(used) or '–'} |")
    out += [
        "",
        "## Seed 002 §9.3 (consumer log) → our ids",
        "",
        "| 002 event | § | meaning | our ids | note |",
        "|---|---|---|---|---|",
    ]
    for c in CONSUMER_002:
        ids = ", ".join(str(i) for i in c.ids) or "**none**"
        out.append(f"| {c.event_id}/{c.sub_id} | {c.section} | {_cell(c.gist)} | {ids} | "
                   f"{_cell(c.note)} |")
    return "\n".join(out) + "\n"


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    """``--write``: update docs/log-catalogue.md; ``--check``: exit 1 if it is stale;
    otherwise print the Markdown."""
    args = sys.argv[1:] if argv is None else argv
    doc = _repo_root() / DOC_PATH
    text = markdown()
    if "--write" in args:
        doc.write_text(text, encoding="utf-8")
        print(f"wrote {doc} ({len(_EVENTS)} events)")
        return 0
    if "--check" in args:
        current = doc.read_text(encoding="utf-8") if doc.exists() else ""
        if current != text:
            print(f"{doc} is out of date: run python -m smgw.logbook.catalogue --write")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
