"""The ``smgw`` command. Each subcommand is one function; later issues add more."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from smgw import VERSION


def _load(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    from smgw.config import ConfigError, load_config

    overrides: dict[str, Any] = dict(extra or {})
    if getattr(args, "data_dir", None):
        overrides["gateway.data_dir"] = args.data_dir
    if getattr(args, "port", None):
        overrides["link.port"] = args.port
    if getattr(args, "baudrate", None):
        overrides["link.baudrate"] = args.baudrate
    try:
        return load_config(Path(args.config) if args.config else None, overrides)
    except ConfigError as e:
        print(f"smgw: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from smgw.logs import setup_logging
    from smgw.service import run_gateway

    cfg = _load(args)
    setup_logging(cfg.log.level, cfg.log.format, Path(cfg.log.file) if cfg.log.file else None)
    print(f"smgw {VERSION}: gateway {cfg.gateway.id}, data in {cfg.gateway.data_dir}, "
          f"link {'simulated board' if cfg.link.port == 'sim' else cfg.link.port} "
          f"(Ctrl-C stops)", flush=True)
    return run_gateway(cfg)


def cmd_demo(args: argparse.Namespace) -> int:
    """A complete demo gateway on the simulated board: accounts, usage points and a week of
    values (smgw.han.demo), then the gateway with its HAN interface until Ctrl-C."""
    import time as _time

    from smgw.han.demo import prepare_demo, sim_meter_settings
    from smgw.logs import setup_logging
    from smgw.service import run_gateway

    overrides = {"han.listen": [f"{args.han_host}:{args.han_port}"], "han.enabled": True}
    cfg = _load(args, overrides)
    if cfg.link.port != "sim":
        raise SystemExit("smgw demo: runs on the simulated board only (link.port = \"sim\")")
    setup_logging(cfg.log.level, cfg.log.format, Path(cfg.log.file) if cfg.log.file else None)
    data_dir = Path(cfg.gateway.data_dir)
    now = _time.time_ns() // 1_000_000
    info = prepare_demo(data_dir, cfg.gateway.id, now, days=args.days,
                        consumer=cfg.logbook.consumers[0])
    print(f"smgw {VERSION}: demo gateway {cfg.gateway.id}, data in {data_dir} "
          f"({info.backfilled} readings backfilled; Ctrl-C stops)", flush=True)

    def started(gw: Any) -> None:
        urls = gw.han.urls if gw.han else []
        print(info.describe(urls) if urls else "HAN interface not available: "
              + str(gw.han.error if gw.han else "disabled"), flush=True)

    return run_gateway(cfg, on_started=started,
                       sim_meter=sim_meter_settings(data_dir, _time.time_ns() // 1_000_000))


def _request(args: argparse.Namespace, cmd: str, **kw: Any) -> Any:
    from smgw.control import ControlError, request

    cfg = _load(args)
    try:
        return request(Path(cfg.control.socket), cmd, **kw)
    except ControlError as e:
        print(f"smgw: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_status(args: argparse.Namespace) -> int:
    from smgw.service import status_line

    st = _request(args, "status")
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    print(status_line(st))
    fw = st.get("firmware") or {}
    print(f"gateway  id={st['gateway']['id']} version={st['gateway']['version']} "
          f"uptime={st['gateway']['uptime_s']}s wan={st['gateway']['wan']}")
    if fw:
        print(f"firmware version={fw['version']} board={fw['board']} boot={fw['boot']} "
              f"reset={fw['reset']} files={len(fw['files'])} "
              f"durable_outbox={fw['durable_outbox']}")
        integ = fw.get("integrity") or {}
        if integ:
            print("integrity " + (integ.get("summary") or integ.get("error") or str(integ)))
    c = st["host_counters"]
    print("link     host: " + " ".join(f"{k}={v}" for k, v in c.items() if v))
    fs = st.get("firmware_status") or {}
    if fs.get("counters"):
        print("link     firmware: " + " ".join(
            f"{k}={v}" for k, v in fs["counters"].items() if v))
    lt = st.get("linktest") or {}
    if lt.get("host_received") or lt.get("firmware_received"):
        print(f"linktest host received {lt.get('host_received')}; "
              f"firmware received {lt.get('firmware_received')}")
    return 0


def cmd_linktest(args: argparse.Namespace) -> int:
    before = _request(args, "status")
    res = _request(args, "linktest", count=args.count, size=args.size)
    print(f"queued {res['queued']} messages of {res['size']} bytes each way")
    if not args.wait:
        return 0
    base_fw = (before.get("linktest") or {}).get("firmware_received") or {}
    base_host = (before.get("linktest") or {}).get("host_received") or {}
    want_fw = (base_fw.get("received") or 0) + args.count
    want_host = (base_host.get("received") or 0) + args.count
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        _request(args, "refresh")
        time.sleep(0.5)
        lt = _request(args, "status")["linktest"]
        fw, host = lt.get("firmware_received") or {}, lt.get("host_received") or {}
        print(f"\rfirmware received {fw.get('received')}/{want_fw}, "
              f"host received {host.get('received')}/{want_host}", end="", flush=True)
        if (fw.get("received") or 0) >= want_fw and (host.get("received") or 0) >= want_host:
            print()
            ok = not fw.get("out_of_order") and not host.get("out_of_order") and \
                not fw.get("bad_data") and not host.get("bad_data")
            print("linktest " + ("passed: in order, intact" if ok else f"FAILED: {lt}"))
            return 0 if ok else 1
    print("\nlinktest timed out")
    return 1


def cmd_meter(args: argparse.Namespace) -> int:
    if args.action == "add":
        cert = Path(args.cert).read_text() if args.cert else None
        res = _request(args, "meter-add", id=args.id, protocol=args.protocol,
                       interface=args.interface, obis=args.obis or [], period_s=args.period,
                       key=args.key, cert=cert)
    elif args.action == "remove":
        res = _request(args, "meter-remove", id=args.id)
    else:
        res = _request(args, "meters")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    lmn = {x["id"]: x for x in ((res.get("lmn") or {}).get("meters") or [])}
    for mt in res["meters"]:
        chans = ",".join(mt["obis"]) or "all channels"
        line = (f"{mt['id']}  {mt['interface']} {mt['protocol']}  {chans}  "
                f"{mt['readings']} values stored")
        bus = lmn.get(mt["id"])
        if bus is not None:
            addr = "-" if bus["address"] is None else f"0x{bus['address']:02X}"
            line += (f"  HDLC {addr} {bus['state']}"
                     f"{' paired' if bus['paired'] else ' not paired'}"
                     f"{' TLS' if bus['tls'] else ''}")
        print(line)
    if not res["meters"]:
        print("no meters")
    for mid, n in res.get("unknown_meters", {}).items():
        print(f"{mid or '?'}  no profile: {n} frames kept raw, no values taken")
    return 0


def _ms(text: str | None, what: str) -> int | None:
    if not text:
        return None
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"smgw log: {what} must be ISO 8601 (2026-11-21T10:00), got {text!r}")
    return int(dt.timestamp() * 1000)


def cmd_log(args: argparse.Namespace) -> int:
    role = args.role or ("consumer" if args.log == "consumer" else "technician")
    consumer = args.consumer
    if args.log == "consumer" and consumer is None:
        consumer = _load(args).logbook.consumers[0]
    req = dict(log=args.log, role=role, consumer=consumer, since_ms=_ms(args.since, "--since"),
               until_ms=_ms(args.until, "--until"), level=args.level, limit=args.limit,
               after=args.after)
    if args.csv:
        res = _request(args, "log", csv=True, **req)
        Path(args.csv).write_text(res["csv"], encoding="utf-8")
        print(f"{res['rows']} entries written to {args.csv}")
        return 0
    res = _request(args, "log", **req)
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return 0
    for e in res["entries"]:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts_ms"] / 1000))
        flag = "" if e["time_valid"] else " (Zeit ungültig)"
        print(f"{e['seq']:>7} {ts}{flag} {e['event']} {e['level']:<7} {e['text']}")
    if res["next_after"] is not None:
        print(f"-- more: --after {res['next_after']}")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    res = _request(args, "selftest", role=args.role)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    for c in res["checks"]:
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['code']:<16} {c['detail']}")
    print("self-test passed" if res["ok"] else "self-test FAILED")
    return 0 if res["ok"] else 1


def cmd_opstate(args: argparse.Namespace) -> int:
    res = _request(args, "opstate-reset", by=args.reset) if args.reset else \
        _request(args, "opstate")
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return 0
    ops = res.get("operating_state") or {}
    print(f"state    {ops.get('state')}  causes: "
          f"{', '.join(c if isinstance(c, str) else str(c) for c in ops.get('causes', [])) or '-'}")
    t = res.get("time") or {}
    print(f"time     valid={t.get('valid')} last_sync={t.get('last_sync_ms')} "
          f"server={t.get('server') or t.get('last_server')}")
    st = res.get("selftest") or {}
    if st:
        print(f"selftest ok={st.get('ok')} trigger={st.get('trigger')} "
              f"checks={len(st.get('checks', []))}")
    for name, u in ((res.get("logbooks") or {}).get("logs") or {}).items():
        print(f"log      {name}: {u}")
    return 0


def cmd_readings(args: argparse.Namespace) -> int:
    from decimal import Decimal

    res = _request(args, "readings")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for mid, rows in res.items():
        print(f"meter {mid}")
        for r in rows:
            value = Decimal(r["raw"]).scaleb(r["scaler"] or 0)
            when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["capture_ms"] / 1000))
                    if r["capture_ms"] else "time unknown")
            print(f"  {r['obis']:<12} {value:>16} {r['unit'] or '':<4} status={r['status']} "
                  f"{when}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(json.dumps(cfg.to_dict(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smgw", description="Open Smart Meter Gateway")
    p.add_argument("--version", action="version", version=f"smgw {VERSION}")
    p.add_argument("-c", "--config", help="TOML configuration file (default: built-in defaults)")
    p.add_argument("--data-dir", help="override gateway.data_dir")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the gateway (default: on the simulated board)")
    r.add_argument("--port", help="serial port or pyserial URL of a real board, or 'sim'")
    r.add_argument("--baudrate", type=int, help="link UART baud rate")
    r.set_defaults(func=cmd_run)

    dm = sub.add_parser("demo", help="a complete demo gateway on the simulated board: HAN "
                                     "portal, M2M API and PPC CGI with a week of values")
    dm.add_argument("--han-port", type=int, default=8443, help="HAN HTTPS port (default 8443)")
    dm.add_argument("--han-host", default="127.0.0.1", help="HAN address (default 127.0.0.1)")
    dm.add_argument("--days", type=int, default=7, help="days of 15-minute values to backfill")
    dm.add_argument("--data-dir", default=argparse.SUPPRESS,
                    help="override gateway.data_dir (as before the command)")
    dm.set_defaults(func=cmd_demo)

    s = sub.add_parser("status", help="show the running gateway's state")
    s.add_argument("--json", action="store_true", help="everything, as JSON")
    s.set_defaults(func=cmd_status)

    lt = sub.add_parser("linktest", help="send test messages both ways over the firmware link")
    lt.add_argument("--count", type=int, default=1000)
    lt.add_argument("--size", type=int, default=100)
    lt.add_argument("--wait", action="store_true", help="wait until all arrived and check them")
    lt.add_argument("--timeout", type=float, default=300)
    lt.set_defaults(func=cmd_linktest)

    mt = sub.add_parser("meter", help="meter profiles: add, remove, list")
    mt.add_argument("action", choices=["add", "remove", "list"])
    mt.add_argument("id", nargs="?", default="", help="the meter's server id (hex)")
    mt.add_argument("--protocol", default="sml", choices=["sml", "sml-tls", "wmbus"],
                    help="sml: SML push (info interface); sml-tls: TR-03109 meter on the HDLC "
                         "bus, polled inside TLS (docs/lmn-wired.md); wmbus: wireless M-Bus/OMS "
                         "meter, id = its link address (docs/wmbus.md)")
    mt.add_argument("--key", help="sml-tls: the meter's 16-byte pairing key; wmbus: its AES "
                                  "key (hex)")
    mt.add_argument("--cert", help="sml-tls: the meter's LMN certificate (PEM file), if it is "
                                   "paired already")
    mt.add_argument("--interface", default="lmn-wired", choices=["lmn-wired", "lmn-wireless"])
    mt.add_argument("--obis", action="append", help="keep this channel (repeatable; default all)")
    mt.add_argument("--period", type=int, help="expected seconds between telegrams")
    mt.add_argument("--json", action="store_true")
    mt.set_defaults(func=cmd_meter)

    rd = sub.add_parser("readings", help="the newest value of each channel of each meter")
    rd.add_argument("--json", action="store_true")
    rd.set_defaults(func=cmd_readings)

    lg = sub.add_parser("log", help="read a logbook: calibration, system or a consumer log")
    lg.add_argument("log", choices=["calibration", "system", "consumer"])
    lg.add_argument("--role", default=None, choices=["gwa", "technician", "consumer"],
                    help="who reads (default: consumer for consumer logs, else technician)")
    lg.add_argument("--consumer", help="consumer log: whose (default: the first consumer)")
    lg.add_argument("--since", help="from this time (ISO 8601, e.g. 2026-11-21T10:00)")
    lg.add_argument("--until", help="up to this time (exclusive)")
    lg.add_argument("--level", choices=["INFO", "WARNING", "ERROR", "FATAL"])
    lg.add_argument("--limit", type=int, default=50, help="entries per page")
    lg.add_argument("--after", type=int, help="the next page: the seq the last one ended with")
    lg.add_argument("--csv", metavar="FILE", help="export the selection as CSV (calibration "
                                                   "log with hashes and signatures)")
    lg.add_argument("--json", action="store_true")
    lg.set_defaults(func=cmd_log)

    stt = sub.add_parser("selftest", help="run the self-test now and show the result")
    stt.add_argument("--role", default="technician", choices=["consumer", "technician", "gwa"])
    stt.add_argument("--json", action="store_true")
    stt.set_defaults(func=cmd_selftest)

    ops = sub.add_parser("opstate", help="operating state, legal time, last self-test, logs")
    ops.add_argument("--reset", metavar="WHO",
                     help="administrator reset (GWA): leave minimal/ceased operation")
    ops.add_argument("--json", action="store_true")
    ops.set_defaults(func=cmd_opstate)

    c = sub.add_parser("config", help="show the effective configuration")
    c.set_defaults(func=cmd_config)

    from smgw.logbook.verify_cli import add_parser as add_verify_log
    add_verify_log(sub)  # verify-log

    from smgw.firmware.cli import add_parser as add_fwinfo
    from smgw.flash.cli import add_parser as add_flash
    from smgw.meters.cli import add_parser as add_decode

    add_decode(sub)  # decode sml
    add_fwinfo(sub)
    add_flash(sub)  # flash and firmware

    from smgw.han.cli import add_parser as add_han
    from smgw.tariff.cli import add_parser as add_tariff
    from smgw.tariff.commands import add_parser as add_profile
    from smgw.tariff.commands import add_tariff_commands

    add_profile(sub)  # profile load|remove|list
    add_tariff_commands(add_tariff(sub))  # tariff replay|values|read|deliveries
    add_han(sub)  # han account add|list|passwd|cert|uncert|remove
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
