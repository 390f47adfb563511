"""CSV export of a logbook and the standalone check of such an export (``smgw verify-log``).

The format (docs/logbooks.md, "CSV export"):

* a header line; the calibration log's ends in ``prev_hash,hash,signature``, a consumer log's in
  ``consumer``::

    seq,ts_ms,time,time_valid,event_id,level,status,params,text[,prev_hash,hash,signature]

* one row per entry in seq order: ``time`` is ``ts_ms`` as ISO 8601 UTC (for people; not
  signed), ``time_valid`` 1/0, ``params`` the canonical JSON object, hashes and signatures in
  lower-case hex;
* ``#export,<canonical JSON>,<signature hex>``: gateway, log, selection, number of rows and a
  digest of the rows, signed with the log key when the file was written;
* calibration log only: ``#head,<seq>,<hash hex>,<signature hex>``, the log's signed head at
  export time.

This module needs neither the database nor the gateway: :func:`verify_export` is what a third
party runs with the gateway's ``log-sign.crt.pem``.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

from . import chain as _chain
from .chain import Head, Problem, Signer, Verifier, VerifyResult, canonical_json

__all__ = [
    "BASE_HEADER",
    "ExportFormatError",
    "header_for",
    "iso_time",
    "verify_export",
    "write_export",
]

BASE_HEADER = ("seq", "ts_ms", "time", "time_valid", "event_id", "level", "status", "params",
               "text")
_HEADERS = {
    "calibration": BASE_HEADER + ("prev_hash", "hash", "signature"),
    "system": BASE_HEADER,
    "consumer": BASE_HEADER + ("consumer",),
}
EXPORT_LABEL = b"SMGW-LOG-EXPORT-v1"
FORMAT = "smgw-log-export"
_SELECTION_KEYS = ("since_ms", "until_ms", "level", "after_seq", "limit")


class ExportFormatError(ValueError):
    """The text is not an export of ours (the check cannot even start)."""


def header_for(log: str) -> tuple[str, ...]:
    return _HEADERS[log]


def iso_time(ts_ms: int) -> str:
    """``ts_ms`` as ``2026-01-30T12:42:37.123Z`` ("" when out of range)."""
    try:
        t = datetime.datetime.fromtimestamp(ts_ms / 1000, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return ""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row_digest(cells: list[str]) -> bytes:
    return hashlib.sha256(canonical_json(cells).encode("utf-8")).digest()


def export_digest(info_json: str) -> bytes:
    """What the ``#export`` signature covers."""
    return hashlib.sha256(EXPORT_LABEL + info_json.encode("utf-8")).digest()


def write_export(out: TextIO, log: str, gateway_id: str, entries: Iterable[Any], *,
                 signer: Signer, head: Head | None, consumer: str | None,
                 selection: dict[str, Any], prev_hash: Callable[[int], bytes] | None,
                 exported_ms: int) -> int:
    """Write ``entries`` (seq order) as CSV; returns the number of rows.

    ``prev_hash(seq)`` gives the hash of entry ``seq - 1`` (calibration log) where the previous
    row is not that entry.
    """
    if log not in _HEADERS:
        raise ValueError(f"unknown log {log!r}")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(_HEADERS[log])
    digest = hashlib.sha256()
    n = 0
    last_seq: int | None = None
    last_hash = b""
    for e in entries:
        cells = [str(e.seq), str(e.ts_ms), iso_time(e.ts_ms), "1" if e.time_valid else "0",
                 str(e.event_id), e.level, e.status, canonical_json(e.params), e.text]
        if log == "consumer":
            cells.append(e.consumer or "")
        elif log == "calibration":
            if last_seq is not None and e.seq == last_seq + 1:
                prev = last_hash
            else:
                prev = prev_hash(e.seq) if prev_hash else b""
            cells += [prev.hex(), bytes(e.hash).hex(), bytes(e.sig).hex()]
            last_seq, last_hash = e.seq, bytes(e.hash)
        w.writerow(cells)
        digest.update(_row_digest(cells))
        n += 1
    info = {"format": FORMAT, "version": 1, "gateway": gateway_id, "log": log,
            "consumer": consumer,
            "selection": {k: selection.get(k) for k in _SELECTION_KEYS},
            "rows": n, "digest": digest.hexdigest(), "exported_ms": exported_ms}
    info_json = canonical_json(info)
    w.writerow(["#export", info_json, signer.sign(export_digest(info_json)).hex()])
    if log == "calibration" and head is not None:
        w.writerow(["#head", str(head.seq), head.hash.hex(), head.sig.hex()])
    return n


# --------------------------------------------------------------------------------------------
# verification


@dataclass
class _Row:
    seq: int
    ts_ms: int
    time_valid: bool
    event_id: int
    level: str
    status: str
    params: dict[str, Any]
    text: str
    prev_hash: bytes | None = None
    hash: bytes | None = None
    sig: bytes | None = None


def _parse_row(cells: list[str], log: str) -> _Row:
    if len(cells) != len(_HEADERS[log]):
        raise ValueError(f"{len(cells)} fields instead of {len(_HEADERS[log])}")
    tv = cells[3]
    if tv not in ("0", "1"):
        raise ValueError(f"time_valid {tv!r} is not 0 or 1")
    params = json.loads(cells[7])
    if not isinstance(params, dict):
        raise ValueError("params is not a JSON object")
    row = _Row(int(cells[0]), int(cells[1]), tv == "1", int(cells[4]), cells[5], cells[6],
               params, cells[8])
    if log == "calibration":
        row.prev_hash = bytes.fromhex(cells[9])
        row.hash = bytes.fromhex(cells[10])
        row.sig = bytes.fromhex(cells[11])
    return row


def verify_export(csv_text: str, cert_pem: bytes | str, gateway_id: str, *,
                  max_problems: int = 1000) -> VerifyResult:
    """Check an export written by :meth:`Logbooks.export_csv` against the gateway's
    log-signature certificate.

    Calibration log: every row's hash (from its ``prev_hash`` and content) and signature, the
    links between consecutive rows, the order, gaps (unless the export selected by time or
    level), the signed head (a whole-log export must end there: a cut tail is ``truncated``),
    and the signed ``#export`` line (rows added, removed, changed or reordered since the
    export). Other logs: order, gaps and the ``#export`` line.

    Raises :class:`ExportFormatError` when the text is not one of our exports, ValueError for a
    certificate that cannot be read.
    """
    verifier = Verifier(cert_pem)
    if not isinstance(csv_text, str):
        raise ExportFormatError("the export must be text")
    try:
        rows = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"), newline="")))
    except csv.Error as exc:
        raise ExportFormatError(f"not CSV: {exc}") from None
    if not rows:
        raise ExportFormatError("empty file: not an smgw log export")
    log = next((name for name, h in _HEADERS.items() if tuple(rows[0]) == h), None)
    if log is None:
        raise ExportFormatError("not an smgw log export (the first line is not the header "
                                "seq,ts_ms,time,...)")

    problems: list[Problem] = []
    data: list[_Row] = []
    cells_all: list[list[str]] = []
    export_line: list[str] | None = None
    head_line: list[str] | None = None
    in_trailer = False
    for lineno, cells in enumerate(rows[1:], start=2):
        if not cells:
            continue
        if cells[0].startswith("#"):
            in_trailer = True
            if cells[0] == "#export" and export_line is None:
                export_line = cells
            elif cells[0] == "#head" and head_line is None:
                head_line = cells
            else:
                problems.append(Problem(None, "format", f"line {lineno}: unexpected line "
                                                        f"{cells[0]!r}"))
            continue
        if in_trailer:
            problems.append(Problem(None, "format", f"line {lineno}: entry after the "
                                                    "#export/#head lines"))
        cells_all.append(cells)
        try:
            row = _parse_row(cells, log)
        except (ValueError, TypeError) as exc:
            problems.append(Problem(None, "format", f"line {lineno}: unreadable entry ({exc})"))
            continue
        if cells[2] != iso_time(row.ts_ms):
            problems.append(Problem(row.seq, "time", "the time column does not match ts_ms"))
        data.append(row)

    # the signed #export line
    info: dict[str, Any] | None = None
    export_problems: list[Problem] = []
    export_sig_ok = False
    if export_line is None or len(export_line) != 3:
        export_problems.append(Problem(None, "export", "no signed #export line: rows removed or "
                                                       "added at the end cannot be ruled out"))
    else:
        try:
            info = json.loads(export_line[1])
            sig = bytes.fromhex(export_line[2])
        except ValueError:
            info, sig = None, b""
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            export_problems.append(Problem(None, "export", "the #export line is unreadable"))
            info = None
        else:
            export_sig_ok = verifier.verify(export_digest(export_line[1]), sig)
            if not export_sig_ok:
                export_problems.append(Problem(None, "export",
                                               "the #export line's signature is invalid"))
            else:
                if info.get("gateway") != gateway_id:
                    export_problems.append(Problem(
                        None, "gateway",
                        f"exported by gateway {info.get('gateway')!r}, not {gateway_id!r}"))
                if info.get("log") != log:
                    export_problems.append(Problem(
                        None, "export", f"the export is of the {info.get('log')} log but the "
                                        f"header is the {log} log's"))
                digest = hashlib.sha256()
                for cells in cells_all:
                    digest.update(_row_digest(cells))
                if info.get("rows") != len(cells_all) or info.get("digest") != digest.hexdigest():
                    export_problems.append(Problem(
                        None, "export",
                        f"the file's {len(cells_all)} entries are not the {info.get('rows')} "
                        "signed at export (entries removed, added, changed or reordered)"))

    sel = (info or {}).get("selection") if export_sig_ok else None
    if not isinstance(sel, dict):
        sel = {}
    complete = all(sel.get(k) is None for k in _SELECTION_KEYS)
    contiguous = all(sel.get(k) is None for k in ("since_ms", "until_ms", "level"))

    if log == "calibration":
        head: Head | None = None
        if head_line is not None:
            try:
                head = Head(int(head_line[1]), bytes.fromhex(head_line[2]),
                            bytes.fromhex(head_line[3]))
            except (ValueError, IndexError):
                problems.append(Problem(None, "head", "the #head line is unreadable"))
        res = _chain.verify(data, head, verifier, gateway_id, complete=complete,
                            contiguous=contiguous, max_problems=max_problems)
        if any(p.code == "key" for p in res.problems):
            export_problems = [p for p in export_problems
                               if not (p.code == "export" and "signature" in p.text)]
        problems += res.problems
        checked, head_seq = res.checked, res.head_seq
    else:
        checked, head_seq = len(data), None
        prev: int | None = None
        for row in data:
            if prev is not None and row.seq <= prev:
                problems.append(Problem(row.seq, "order", f"entry {row.seq} comes after "
                                                          f"entry {prev}"))
                continue
            if prev is not None and row.seq > prev + 1 and contiguous:
                problems.append(Problem(row.seq, "gap", f"entries {prev + 1} to {row.seq - 1} "
                                                        "missing"))
            prev = row.seq
    problems += export_problems
    if len(problems) > max_problems:
        extra = len(problems) - max_problems
        problems = problems[:max_problems] + [Problem(None, "more",
                                                      f"{extra} further problems not listed")]
    result = VerifyResult(not problems, checked, problems, head_seq)
    result.log = log
    return result
