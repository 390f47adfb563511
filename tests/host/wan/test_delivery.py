"""The delivery worker with a real outbox (SQLite), real TLS and the real test EMT: back-off,
10165 / 10269, the operating state's veto, duplicates, and a worker killed while waiting for the
acknowledgement."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from smgw.store import Store
from smgw.wan.delivery import DeliveryWorker, backoff_s
from smgw.wan.outbox import Outbox
from wanbench import APRIL_MS, GW, MARCH_MS, Env, taf1_values

T0 = 1_775_000_000_000      # the gateway's clock in these tests (moved by hand)
FACTOR = 0.95               # jitter 0.1 with rng() = 0.5: every wait is 95 % of the nominal


class Bench:
    """Store + outbox + receiver + worker on a hand-moved clock."""

    def __init__(self, env: Env, emit, **cp) -> None:
        self.env = env
        self.now = T0
        self.store = Store.open(env.tmp / "smgw.db")
        self.outbox = Outbox(self.store)
        self.rx = env.receiver()
        self.cp_args = {"retry_min_s": 5, "retry_max_s": 60, "fail_after": 3, **cp}
        self.profiles: dict = {}
        self.permit = True
        self.worker = DeliveryWorker(self.outbox, self.profiles.get, env.keystore, emit,
                                     lambda: self.now, lambda: self.permit, jitter=0.1,
                                     rng=lambda: 0.5, timeout_s=10,
                                     consumer_of={"taf1-lv1": "LV1"}.get)

    async def __aenter__(self) -> "Bench":
        url = await self.rx.start()
        self.profiles["emt1"] = self.env.comm_profile(url, **self.cp_args)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.rx.stop()
        self.store.close()

    def add(self, message_id: str = "msg-1", comm: str = "emt1", values=None) -> None:
        assert self.outbox.add(message_id, "taf1-lv1", comm, MARCH_MS, APRIL_MS, 2,
                               self.env.message(values), self.now)

    def one(self):
        [d] = self.outbox.pending() or [self.outbox.by_message_id("msg-1")]
        return d

    def csv_rows(self) -> list[dict]:
        with open(self.rx.csv_path, newline="") as f:
            return list(csv.DictReader(f))


def ids(raised) -> list[int]:
    return [cat for cat, _ in raised if cat in (10165, 10269)]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff_s(10**6, 5, 3600) == 3600
    assert backoff_s(1, 5, 60, jitter=0.1) == pytest.approx(4.5)


def test_delivered_message_logs_10165_with_local_times(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.add()
            assert await b.worker.run_once() == 1
            assert await b.worker.run_once() == 0
            return b.one(), dict(b.rx.stats)

    d, stats = asyncio.run(main())
    assert d.delivered_ms == T0 and d.attempts == 0
    assert stats["received"] == 1 and stats["requests"] == 1
    [(cat, params)] = raised
    assert cat == 10165
    assert params["tariff_profile"] == "taf1-lv1" and params["comm_profile"] == "emt1"
    assert params["start"] == "2026-03-01T00:00:00+01:00"
    assert params["end"] == "2026-04-01T00:00:00+02:00"
    assert params["message_id"] == "msg-1" and params["n_values"] == 2
    assert params["consumer_log"] == "LV1"


def test_503_is_retried_with_backoff(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.rx.fail_next(2, status=503)
            b.add()
            assert await b.worker.run_once() == 0
            d = b.one()
            assert (d.attempts, d.next_attempt_ms) == (1, T0 + 5000 * FACTOR)
            assert "HTTP 503" in d.last_error
            b.now += 1000                       # not due yet: nothing is sent
            assert await b.worker.run_once() == 0
            assert b.rx.stats["requests"] == 1
            b.now = d.next_attempt_ms
            assert await b.worker.run_once() == 0
            d = b.one()
            assert (d.attempts, d.next_attempt_ms) == (2, b.now + 10_000 * FACTOR)
            b.now = d.next_attempt_ms
            assert await b.worker.run_once() == 1
            return b.outbox.by_message_id("msg-1"), dict(b.rx.stats)

    d, stats = asyncio.run(main())
    assert d.delivered_ms is not None and d.attempts == 2 and not d.failure_logged
    assert stats["requests"] == 3 and stats["received"] == 1
    assert ids(raised) == [10165]


def test_dropped_connection_is_retried(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.rx.drop_connection_next(1)
            b.add()
            assert await b.worker.run_once() == 0
            assert "closed before a complete answer" in b.one().last_error
            b.now = b.one().next_attempt_ms
            assert await b.worker.run_once() == 1
            return b.rx.stats["received"]

    assert asyncio.run(main()) == 1
    assert ids(raised) == [10165]


def test_10269_once_after_fail_after_attempts_and_the_message_stays(env: Env, emit,
                                                                    raised) -> None:
    async def main():
        async with Bench(env, emit, retry_max_s=20) as b:
            b.rx.fail_next(6, status=503)
            b.add()
            waits, logged = [], []
            for _ in range(6):
                before = b.now
                assert await b.worker.run_once() == 0
                d = b.one()
                waits.append(d.next_attempt_ms - before)
                logged.append(ids(raised).count(10269))
                b.now = d.next_attempt_ms
            assert b.one().failure_logged and b.one().delivered_ms is None
            assert await b.worker.run_once() == 1
            return waits, logged, b.one().attempts

    waits, logged, attempts = asyncio.run(main())
    assert waits == [int(w * 1000 * FACTOR) for w in (5, 10, 20, 20, 20, 20)]
    assert logged == [0, 0, 1, 1, 1, 1]
    assert attempts == 6
    assert ids(raised) == [10269, 10165]
    params = dict(raised)[10269]
    assert params["attempts"] == 3 and "HTTP 503" in params["error"]
    assert params["start"] == "2026-03-01T00:00:00+01:00"


def test_refusal_logs_10269_at_once_and_keeps_the_message(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.rx.fail_next(1, status=403)
            b.add()
            assert await b.worker.run_once() == 0
            d = b.one()
            # a refusal is asked again only at the longest interval
            assert d.next_attempt_ms == T0 + int(60_000 * FACTOR) and d.failure_logged
            assert b.outbox.retry_now("emt1", b.now) == 1   # the operator fixed the EMT
            assert await b.worker.run_once() == 1

    asyncio.run(main())
    assert ids(raised) == [10269, 10165]


def test_unknown_communication_profile_logs_10269_and_keeps_the_message(env: Env, emit,
                                                                       raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.add(comm="emt9")
            assert await b.worker.run_once() == 0
            return b.one(), b.rx.stats["requests"]

    d, requests = asyncio.run(main())
    assert requests == 0 and d.delivered_ms is None and d.failure_logged
    assert "'emt9' is not installed" in d.last_error
    assert ids(raised) == [10269]


def test_nothing_is_sent_while_the_operating_state_forbids_it(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.add()
            b.permit = False
            assert await b.worker.run_once() == 0
            d = b.one()
            assert (d.attempts, b.rx.stats["requests"]) == (0, 0)
            b.permit = True
            assert await b.worker.run_once() == 1

    asyncio.run(main())
    assert ids(raised) == [10165]


def test_lost_acknowledgement_gives_a_duplicate_not_a_second_copy(env: Env, emit,
                                                                  raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.rx.drop_connection_next(1, after_store=True)
            b.add()
            assert await b.worker.run_once() == 0
            b.now = b.one().next_attempt_ms
            assert await b.worker.run_once() == 1
            return dict(b.rx.stats), b.csv_rows()

    stats, rows = asyncio.run(main())
    assert stats["received"] == 1 and stats["duplicates"] == 1
    assert len(rows) == 2
    assert ids(raised) == [10165]


def test_an_unreachable_recipient_does_not_hold_up_the_others(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            dead = env.comm_profile("https://127.0.0.1:1/smgw", retry_min_s=5, retry_max_s=60)
            b.profiles["dead"] = dead
            b.add("dead-1", comm="dead")
            b.add("dead-2", comm="dead")
            b.add("live-1")
            b.add("live-2", values=taf1_values(profile="taf1-lv2"))
            assert await b.worker.run_once() == 2
            return {d.message_id: d.attempts for d in b.outbox.pending()}

    # one attempt for the unreachable recipient in that round; its other message stays due
    assert asyncio.run(main()) == {"dead-1": 1, "dead-2": 0}
    assert ids(raised) == [10165, 10165]


def test_run_loop_delivers_what_is_added_and_stops(env: Env, emit, raised) -> None:
    async def main():
        async with Bench(env, emit) as b:
            b.worker.now_ms = b.store.now_ms    # the real clock for the loop
            stop = asyncio.Event()
            task = asyncio.create_task(b.worker.run(stop))
            await asyncio.sleep(0)
            b.add()
            b.worker.wake()
            async with asyncio.timeout(60):
                while b.outbox.pending():
                    await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 60)
            return b.rx.stats["received"]

    assert asyncio.run(main()) == 1
    assert ids(raised) == [10165]


CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from smgw.security.keystore import KeyStore
    from smgw.store import Store
    from smgw.tariff.profile import CommunicationProfile
    from smgw.wan.delivery import DeliveryWorker
    from smgw.wan.outbox import Outbox

    db, pki, gw, cp = sys.argv[1:5]
    store = Store.open(db)
    profile = CommunicationProfile.from_json(json.loads(cp))
    worker = DeliveryWorker(Outbox(store), {profile.name: profile}.get,
                            KeyStore.load_or_create(Path(pki), gw), lambda cat, params: None,
                            store.now_ms)
    print("sending", flush=True)
    asyncio.run(worker.run_once())
    print("returned", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_worker_killed_while_waiting_for_the_ack_resends_once(env: Env, emit, raised) -> None:
    """A gateway process pushes, the EMT stores the message but has not answered yet, the
    process is killed. A new worker over the same database file sends it again; the EMT keeps
    one copy and acknowledges it as a duplicate."""
    db = env.tmp / "smgw.db"

    async def main():
        async with Bench(env, emit) as b:
            b.add()
            b.rx.stall_next(1)
            cp = json.dumps(b.profiles["emt1"].to_json())
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, str(db), str(env.keystore.pki_dir), GW, cp,
                stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(
                    Path(__file__).resolve().parents[3] / "host")})
            try:
                async with asyncio.timeout(60):
                    while b.rx.stats["received"] == 0 and child.returncode is None:
                        await asyncio.sleep(0.02)
                assert b.rx.stats["received"] == 1, "the child never reached the EMT"
            finally:
                child.send_signal(signal.SIGKILL)
                out, _ = await child.communicate()
            assert b"returned" not in out
            b.store.close()

            b.store = Store.open(db)                    # the gateway starts again
            b.outbox = Outbox(b.store)
            [d] = b.outbox.pending()
            assert d.attempts == 0 and d.delivered_ms is None
            worker = DeliveryWorker(b.outbox, b.profiles.get, env.keystore, emit,
                                    lambda: b.now)
            assert await worker.run_once() == 1
            return dict(b.rx.stats), b.csv_rows(), b.rx.received()

    stats, rows, received = asyncio.run(main())
    assert stats["received"] == 1 and stats["duplicates"] == 1
    assert received == [(GW, "msg-1")] and len(rows) == 2
    assert ids(raised) == [10165]
