"""The delivery worker: pushes due messages of the outbox to their recipients until each one is
acknowledged.

- a message is pushed to the URL of its communication profile with the gateway's TLS identity;
  the server must chain to the profile's root (else the gateway's PKI root) and, as DS §13
  asks, present exactly the TLS certificate of the profile;
- acknowledged (2xx): marked delivered, event 10165 (system and consumer log);
- failed: ``attempts`` + 1 and the next attempt after ``retry_min_s * 2**(attempts-1)``
  seconds, capped at ``retry_max_s``, shortened by up to 10 % at random so that gateways do not
  retry in step; after ``fail_after`` failed attempts — or at once when the recipient refused
  the message (4xx other than 408/429) or the communication profile is missing — event 10269,
  once per message. The message stays in the outbox and keeps being retried at the capped
  interval: nothing undelivered is ever dropped;
- ``allowed()`` false (the operating state forbids sending): nothing is pushed;
- per round, a recipient that failed with a retryable error gets no further attempts in that
  round (its other messages stay due), so one unreachable EMT does not hold up the others for
  the length of many time-outs; recipients are served concurrently.

``emit`` has the shape of :func:`smgw.events.emitter`'s function, ``emit(id, params)`` (the
supervisor's ``emit``); params that are not placeholders of the text (message id, number of
values, attempts, error) travel as context. ``None``: ``events.emitter`` on the "smgw.wan" log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cryptography import x509

from smgw import events
from smgw.wan.outbox import Delivery, Outbox
from smgw.wan.push import PushError, push

if TYPE_CHECKING:  # pragma: no cover
    from smgw.security.keystore import KeyStore
    from smgw.tariff.profile import CommunicationProfile

__all__ = ["DeliveryWorker", "backoff_s", "EV_DELIVERED", "EV_NOT_DELIVERED"]

EV_DELIVERED = 10165
EV_NOT_DELIVERED = 10269

#: used when a message names a communication profile that does not exist (any more)
DEFAULT_RETRY_MIN_S = 5
DEFAULT_RETRY_MAX_S = 3600
DEFAULT_FAIL_AFTER = 5

log = logging.getLogger("smgw.wan")


def backoff_s(attempts: int, retry_min_s: float, retry_max_s: float,
              jitter: float = 0.0) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones (``jitter`` in [0, 1):
    the fraction by which it is shortened)."""
    n = max(1, attempts)
    base = min(float(retry_min_s) * 2 ** min(n - 1, 40), float(retry_max_s))
    return base * (1.0 - jitter)


def _iso_local(ms: int | None, tz: dt.tzinfo) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


class DeliveryWorker:
    """Pushes what is due in ``outbox``; see the module doc.

    ``comm_profile(name)`` returns the communication profile (None: unknown), ``keystore``
    gives the gateway's TLS identity and root, ``now_ms`` the gateway's clock. ``tz``: the time
    zone of the period times written into 10165/10269. ``consumer_of(profile)``: the consumer
    (LV) an evaluation profile belongs to; passed with the events as ``consumer`` so that the
    consumer-log entry goes to that consumer only. ``rng``: the jitter's random source.
    """

    def __init__(self, outbox: Outbox,
                 comm_profile: Callable[[str], "CommunicationProfile | None"],
                 keystore: "KeyStore", emit: Callable[..., Any] | None,
                 now_ms: Callable[[], int], allowed: Callable[[], bool] = lambda: True, *,
                 tz: str = "Europe/Berlin", jitter: float = 0.1, batch: int = 20,
                 timeout_s: float = 20, poll_s: float = 30.0,
                 consumer_of: Callable[[str], str | None] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter {jitter}: must be in [0, 1)")
        self.outbox = outbox
        self.comm_profile = comm_profile
        self.keystore = keystore
        self.emit = emit if emit is not None else events.emitter(log)
        self.now_ms = now_ms
        self.allowed = allowed
        self.tz = ZoneInfo(tz)
        self.jitter = jitter
        self.batch = batch
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.consumer_of = consumer_of
        self._rng = rng
        self._lock = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        #: counters since start: delivered, failed attempts, 10269 written
        self.counts = {"delivered": 0, "failed": 0, "failure_logged": 0}

    # ------------------------------------------------------------------ one round

    async def run_once(self) -> int:
        """Push every due message once (at most ``batch``); returns how many were
        acknowledged."""
        async with self._lock:
            if not self.allowed():
                return 0
            due = self.outbox.due(self.now_ms(), self.batch)
            by_recipient: dict[str, list[Delivery]] = {}
            for d in due:
                by_recipient.setdefault(d.comm_profile, []).append(d)
            results = await asyncio.gather(
                *(self._serve(name, items) for name, items in by_recipient.items()))
            return sum(results)

    async def _serve(self, name: str, items: list[Delivery]) -> int:
        cp = self.comm_profile(name)
        done = 0
        for d in items:
            if not self.allowed():
                break
            if cp is None:
                self._failed(d, None, PushError(
                    f"communication profile {name!r} is not installed", retryable=False))
                continue
            try:
                roots = ([x509.load_pem_x509_certificate(cp.root.encode("ascii"))]
                         if cp.root else [self.keystore.root])
                server = x509.load_pem_x509_certificate(cp.tls_cert.encode("ascii"))
            except ValueError as e:
                self._failed(d, cp, PushError(
                    f"communication profile {name!r}: unreadable certificate (tls_cert/root): "
                    f"{e}", retryable=False))
                continue
            try:
                await push(cp.url, d.content, message_id=d.message_id,
                                 gateway_id=self.keystore.gateway_id,
                                 client=self.keystore.tls, roots=roots,
                                 timeout_s=self.timeout_s, server_cert=server)
            except PushError as e:
                self._failed(d, cp, e)
                if e.retryable:
                    break  # this recipient is unreachable now; its other messages stay due
                continue
            self._delivered(d, cp)
            done += 1
        return done

    def _params(self, d: Delivery) -> dict[str, Any]:
        p = {"tariff_profile": d.profile,
             "start": _iso_local(d.period_start_ms, self.tz),
             "end": _iso_local(d.period_end_ms, self.tz),
             "comm_profile": d.comm_profile,
             "message_id": d.message_id, "n_values": d.n_values}
        consumer = self.consumer_of(d.profile) if self.consumer_of else None
        if consumer:
            p["consumer_log"] = consumer
        return p

    def _delivered(self, d: Delivery, cp: "CommunicationProfile") -> None:
        self.outbox.delivered(d.id, self.now_ms())
        self.counts["delivered"] += 1
        log.info("delivered %s to %s", d.message_id, d.comm_profile,
                 extra={"fields": {"message_id": d.message_id, "comm_profile": d.comm_profile,
                                   "url": cp.url, "attempts": d.attempts + 1}})
        self.emit(EV_DELIVERED, {**self._params(d), "attempts": d.attempts + 1})

    def _failed(self, d: Delivery, cp: "CommunicationProfile | None", e: PushError) -> None:
        rmin = cp.retry_min_s if cp else DEFAULT_RETRY_MIN_S
        rmax = cp.retry_max_s if cp else DEFAULT_RETRY_MAX_S
        fail_after = cp.fail_after if cp else DEFAULT_FAIL_AFTER
        attempts = d.attempts + 1
        # a refusal does not go away by itself: ask again only at the longest interval
        wait = backoff_s(attempts if e.retryable else 10**6, rmin, rmax,
                         self.jitter * self._rng())
        now = self.now_ms()
        attempts = self.outbox.failed(d.id, now, str(e), now + int(wait * 1000))
        self.counts["failed"] += 1
        log.warning("delivery of %s to %s failed (attempt %d): %s", d.message_id,
                    d.comm_profile, attempts, e,
                    extra={"fields": {"message_id": d.message_id,
                                      "comm_profile": d.comm_profile, "attempts": attempts,
                                      "retryable": e.retryable, "status": e.status,
                                      "next_s": round(wait, 1)}})
        if not d.failure_logged and (attempts >= fail_after or not e.retryable):
            # written first, marked second: a crash in between writes it twice, never not at all
            self.emit(EV_NOT_DELIVERED, {**self._params(d), "attempts": attempts,
                                         "error": str(e)[:200]})
            self.outbox.mark_failure_logged(d.id)
            self.counts["failure_logged"] += 1

    # ------------------------------------------------------------------ the loop

    def wake(self) -> None:
        """Run a round now (the engine added a message). Call from the loop's thread."""
        if self._wake is not None:
            self._wake.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        """Rounds until ``stop_event`` is set: after each one, sleep until the next message is
        due (at most ``poll_s``; sending may become allowed or a message be added meanwhile)."""
        self._wake = asyncio.Event()
        while not stop_event.is_set():
            self._wake.clear()
            try:
                await self.run_once()
                next_due = self.outbox.next_due_ms() if self.allowed() else None
            except Exception:  # noqa: BLE001 - a store or profile error must not end delivery
                log.exception("delivery round failed")
                next_due = None
            wait = self.poll_s
            if next_due is not None:
                wait = min(wait, max(0.05, (next_due - self.now_ms()) / 1000))
            waiters = [asyncio.ensure_future(stop_event.wait()),
                       asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
