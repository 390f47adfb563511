"""A test EMT (external market participant): receives what gateways push, checks it the way a
market participant must, and writes down what it got.

For every POST (any path) it

1. has already required a TLS client certificate chaining to ``roots`` (handshake);
2. checks the headers: ``X-SMGW-Id`` must be the common name of that client certificate,
   ``X-SMGW-Message-Id`` a message id, ``Content-Type`` ``application/pkcs7-mime``;
3. answers ``200 duplicate`` for a message id of that gateway it already has;
4. opens the CMS (:func:`smgw.security.cms.unprotect`: signature of the gateway's SIG
   certificate chaining to ``gateway_sig_roots``, decryption with the EMT's ENC key) — the
   signer's common name must be the gateway id too;
5. parses the K461 document (:func:`smgw.formats.k461.parse_values`) and verifies the value
   signature of each value that carries one (:func:`smgw.security.valuesig.verify_value`, with
   the CMS signer certificate); a billing value without a valid signature is recorded with
   ``signature_ok`` false and counted in ``bad_signatures`` — the message is still taken, the
   EMT has to see it;
6. writes ``messages/<message_id>.json`` and appends one row per value to ``values.csv``,
   records the message id in ``received.db`` (SQLite, synchronous=FULL) and only then answers
   ``201``.

Answers: 201 new, 200 duplicate, 400 malformed (headers, CMS structure, payload), 413 body
larger than ``max_body``, 403 not authentic (wrong gateway, signature or certificate chain
failed, not encrypted for us); the body is one line of text saying why.

Crash safety: ``received.db`` records, with each message, how long ``values.csv`` was after its
rows. On start the CSV is cut back to the last recorded length, so rows of a message that was
never acknowledged (the gateway sends it again) do not stay twice.

Faults for tests: :meth:`EmtReceiver.fail_next` answers the next requests with an error status,
:meth:`EmtReceiver.drop_connection_next` closes the connection without an answer (before or
after the message was stored), :meth:`EmtReceiver.stall_next` stores and then never answers.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from smgw.fileio import atomic_write
from smgw.formats import k461
from smgw.security import cms, valuesig
from smgw.security.testpki import Triple
from smgw.tariff.model import DerivedValue, status_fnn
from smgw.wan.outbox import MESSAGE_ID_RE
from smgw.wan.push import CONTENT_TYPE, server_context

__all__ = ["CSV_COLUMNS", "EmtReceiver"]

log = logging.getLogger("smgw.wan.emt")

CSV_COLUMNS = ("message_id", "profile", "taf", "register", "owner", "period_start",
               "period_end", "target_time", "capture_time", "value", "scaler", "unit",
               "status_fnn", "time_valid", "billing", "signature_ok")

_GATEWAY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    gateway_id     TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    received_ms    INTEGER NOT NULL,
    n_values       INTEGER NOT NULL,
    bad_signatures INTEGER NOT NULL,
    csv_end        INTEGER NOT NULL,   -- length of values.csv after this message's rows
    PRIMARY KEY (gateway_id, message_id)
)
"""


def _iso_utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") \
        + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class EmtReceiver:
    """The receiver; ``identity`` is the EMT's triple (TLS for the server, ENC to decrypt),
    ``roots`` the trust anchors for gateway TLS client certificates, ``gateway_sig_roots`` those
    for the gateway's CMS signatures (default: ``roots``). ``on_message(info)`` is called after
    each stored message with the summary written to its JSON file (minus the values)."""

    def __init__(self, out_dir: Path, identity: Triple, roots: Sequence[x509.Certificate],
                 gateway_sig_roots: Sequence[x509.Certificate] | None = None, *,
                 on_message: Callable[[dict[str, Any]], None] | None = None,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self.out_dir = Path(out_dir)
        self.identity = identity
        self.roots = list(roots)
        self.gateway_sig_roots = list(gateway_sig_roots if gateway_sig_roots is not None
                                      else roots)
        self.on_message = on_message
        self.max_body = max_body
        self.stats = {"requests": 0, "received": 0, "duplicates": 0, "rejected": 0, "values": 0,
                      "bad_signatures": 0}
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._db: sqlite3.Connection | None = None
        self._fail: list[int] = []                 # statuses to answer next
        self._drop: list[str] = []                 # next drops: "before" | "after" | "stall"
        self._release = asyncio.Event()            # ends stalled requests (stop())

    # ------------------------------------------------------------------ fault injection

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` without looking at them."""
        self._fail.extend([int(status)] * n)

    def drop_connection_next(self, n: int, after_store: bool = False) -> None:
        """Close the connection of the next ``n`` requests without an answer; with
        ``after_store`` the message is stored first (the gateway then sends it again and gets
        ``200 duplicate``)."""
        self._drop.extend(["after" if after_store else "before"] * n)

    def stall_next(self, n: int) -> None:
        """Store the next ``n`` messages, then keep their connections open without an answer
        until :meth:`stop` (a gateway killed while waiting for the acknowledgement)."""
        self._drop.extend(["stall"] * n)

    # ------------------------------------------------------------------ files

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "values.csv"

    def _open_files(self) -> None:
        (self.out_dir / "messages").mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.out_dir / "received.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(_SCHEMA)
        self._db = db
        header = (",".join(CSV_COLUMNS) + "\r\n").encode("ascii")
        last = db.execute("SELECT csv_end FROM messages ORDER BY rowid DESC LIMIT 1").fetchone()
        end = None if last is None else last[0]
        path = self.csv_path
        if not path.exists() or path.stat().st_size == 0:
            if end is not None:
                log.warning("%s missing although %s has messages; starting a new file",
                            path, self.out_dir / "received.db")
            atomic_write(path, header)
            return
        size = path.stat().st_size
        keep = len(header) if end is None else int(end)
        if size > keep:
            # rows of a message that was never acknowledged: it comes again
            with open(path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
            log.info("cut %s back to %d bytes (rows of an unacknowledged message)", path, keep)
        elif size < keep:
            log.warning("%s is shorter (%d) than recorded (%d)", path, size, keep)

    def _known(self, gateway_id: str, message_id: str) -> bool:
        assert self._db is not None
        return self._db.execute(
            "SELECT 1 FROM messages WHERE gateway_id = ? AND message_id = ?",
            (gateway_id, message_id)).fetchone() is not None

    def received(self) -> list[tuple[str, str]]:
        """(gateway id, message id) of everything stored, in arrival order (also while the
        receiver is stopped)."""
        path = self.out_dir / "received.db"
        if self._db is None and not path.exists():
            return []
        db = self._db or sqlite3.connect(str(path))
        try:
            return [(g, m) for g, m in db.execute(
                "SELECT gateway_id, message_id FROM messages ORDER BY rowid")]
        finally:
            if db is not self._db:
                db.close()

    # ------------------------------------------------------------------ server

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = any free port); returns the URL to push to."""
        self._open_files()
        self._release = asyncio.Event()
        try:
            ctx = server_context(self.identity.tls, self.roots)
            app = web.Application(client_max_size=self.max_body)
            app.router.add_route("POST", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await self._runner.setup()
            await web.TCPSite(self._runner, host, port, ssl_context=ctx).start()
        except BaseException:
            await self.stop()
            raise
        bound_host, bound_port = self._runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"https://{shown}:{bound_port}/smgw/values"
        return self.url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        if self._fail:
            status = self._fail.pop(0)
            await request.read()
            return web.Response(status=status, text="injected failure\n")
        drop = self._drop.pop(0) if self._drop else None
        if drop == "before":
            return self._drop_connection(request)
        try:
            status, text = await self._receive(request)
        except _Reject as r:
            self.stats["rejected"] += 1
            log.warning("rejected: %s %s", r.status, r.reason,
                        extra={"fields": {"status": r.status,
                                          "message_id": request.headers.get(
                                              "X-SMGW-Message-Id", "")[:200]}})
            return web.Response(status=r.status, text=r.reason + "\n")
        if drop == "stall":
            await self._release.wait()
        if drop in ("after", "stall"):
            return self._drop_connection(request)
        return web.Response(status=status, text=text + "\n")

    @staticmethod
    def _drop_connection(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # nothing reaches the client; aiohttp discards the response of a closed connection
        return web.Response(status=500)

    # ------------------------------------------------------------------ checking

    async def _receive(self, request: web.Request) -> tuple[int, str]:
        gateway_id = request.headers.get("X-SMGW-Id", "")
        message_id = request.headers.get("X-SMGW-Message-Id", "")
        if not _GATEWAY_ID_RE.fullmatch(gateway_id):
            raise _Reject(400, "X-SMGW-Id missing or malformed")
        if not MESSAGE_ID_RE.fullmatch(message_id):
            raise _Reject(400, "X-SMGW-Message-Id missing or malformed")
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            raise _Reject(400, f"Content-Type {ctype or '(none)'}: expected {CONTENT_TYPE}")
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not der:
            raise _Reject(403, "no TLS client certificate")
        client_cn = _common_name(x509.load_der_x509_certificate(der))
        if client_cn != gateway_id:
            raise _Reject(403, f"X-SMGW-Id {gateway_id} is not the TLS client ({client_cn})")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Reject(413, f"body larger than {self.max_body} bytes") from None
        # from here on nothing awaits: checking, deduplicating and storing one message cannot
        # interleave with another
        if self._known(gateway_id, message_id):
            self.stats["duplicates"] += 1
            log.info("duplicate %s from %s", message_id, gateway_id)
            return 200, "duplicate"
        if not body:
            raise _Reject(400, "empty body")
        try:
            content, signer = cms.unprotect(body, self.identity.enc, self.gateway_sig_roots)
        except cms.CmsError as e:
            raise _Reject(self._cms_status(e), f"CMS: {e}") from None
        if _common_name(signer) != gateway_id:
            raise _Reject(403, f"CMS signed by {_common_name(signer)}, not by {gateway_id}")
        try:
            values = k461.parse_values(content)
        except k461.FormatError as e:
            raise _Reject(400, f"payload: {e}") from None
        if not values:
            raise _Reject(400, "payload: no values")
        self._store(gateway_id, message_id, signer, values)
        return 201, f"stored {len(values)} values"

    @staticmethod
    def _cms_status(e: Exception) -> int:
        """403 when the message is not authentic or not for us, 400 when it is malformed."""
        return 403 if isinstance(e, (cms.CmsVerifyError, cms.CmsDecryptError)) else 400

    # ------------------------------------------------------------------ storing

    def _store(self, gateway_id: str, message_id: str, signer: x509.Certificate,
               values: list[tuple[DerivedValue, bytes | None]]) -> None:
        assert self._db is not None
        rows: list[dict[str, Any]] = []
        bad = 0
        for v, sig in values:
            if sig is not None:
                try:
                    ok: bool | None = valuesig.verify_value(signer, v, gateway_id, sig)
                except ValueError:  # the signer certificate holds no EC key
                    ok = False
            else:
                ok = False if v.billing else None
            if ok is False:
                bad += 1
            rows.append({
                "message_id": message_id, "profile": v.profile, "taf": v.taf,
                "register": v.register, "owner": v.owner,
                "period_start": _iso_utc(v.period_start_ms),
                "period_end": _iso_utc(v.period_end_ms),
                "target_time": _iso_utc(v.target_ms), "capture_time": _iso_utc(v.capture_ms),
                "value": str(v.value), "scaler": v.scaler, "unit": v.unit,
                "status_fnn": status_fnn(v.status, v.meter_status),
                "time_valid": str(v.time_valid).lower(), "billing": str(v.billing).lower(),
                "signature_ok": "" if ok is None else str(ok).lower(),
                "stage": v.stage, "kind": v.kind, "meter_status": v.meter_status,
                "sources": list(v.sources), "signature": sig.hex() if sig else None,
            })
        now = time.time_ns() // 1_000_000
        info = {"message_id": message_id, "gateway_id": gateway_id,
                "received": _iso_utc(now), "signer": signer.subject.rfc4514_string(),
                "profiles": sorted({v.profile for v, _ in values}),
                "n_values": len(values), "bad_signatures": bad}
        atomic_write(self.out_dir / "messages" / f"{message_id}.json",
                     json.dumps({**info, "values": rows}, indent=1).encode("utf-8"))
        buf = io.StringIO()
        w = csv.writer(buf)
        for r in rows:
            w.writerow([r[c] for c in CSV_COLUMNS])
        with open(self.csv_path, "ab") as f:
            f.write(buf.getvalue().encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            end = f.tell()
        self._db.execute(
            "INSERT INTO messages (gateway_id, message_id, received_ms, n_values, "
            "bad_signatures, csv_end) VALUES (?, ?, ?, ?, ?, ?)",
            (gateway_id, message_id, now, len(values), bad, end))
        self.stats["received"] += 1
        self.stats["values"] += len(values)
        self.stats["bad_signatures"] += bad
        log.info("stored %s from %s: %d values, %d bad signatures", message_id, gateway_id,
                 len(values), bad)
        if self.on_message is not None:
            try:
                self.on_message(info)
            except Exception:  # noqa: BLE001 - a display callback must not lose the answer
                log.exception("on_message callback failed")
