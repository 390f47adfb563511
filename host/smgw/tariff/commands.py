"""Tariff profiles and derived values at the control socket and on the command line.

Control commands (:func:`handlers`, merged into the gateway's handler table):

- ``profile-load`` ``{text, source}`` or ``{path}`` — validate and store a profile (TOML);
- ``profile-remove`` ``{name}``; ``profiles`` — the loaded profiles with the engine's state;
- ``tariff-values`` ``{profile, from, to, limit}`` — stored derived values (ms or ISO 8601);
- ``taf6-read`` ``{profile, day, recipient}`` — send stored values on demand: the TAF 6 reading
  of that day (also a TAF 7 day, a TAF 1/2 billing period);
- ``deliveries`` — the outbox: counts and the messages not yet acknowledged.

Command line (:func:`add_parser`, :func:`add_tariff_commands`): ``smgw profile load FILE...``,
``smgw profile remove NAME``, ``smgw profile list``, ``smgw tariff values PROFILE``,
``smgw tariff read PROFILE DAY``, ``smgw tariff deliveries``. They talk to the running gateway
through the control socket; the files are read here and sent as text.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_parser", "add_tariff_commands", "handlers", "run_profile", "run_tariff"]


# ---------------------------------------------------------------------- control socket


def _time_arg(v: Any, what: str, tz: str = "Europe/Berlin") -> int | None:
    """ms since the epoch from an int or an ISO 8601 text (without offset: local time in
    ``tz``; a date alone: that local day's start)."""
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"{what}: expected ms or ISO 8601, got {v!r}")
    if isinstance(v, int):
        return v
    from smgw.tariff.cli import parse_time_arg

    try:
        return parse_time_arg(v, tz)
    except ValueError as e:
        raise ValueError(f"{what}: {e} (2026-01-05 or 2026-01-05T10:00+01:00)") from None


def profile_summary(sp: Any, state: dict[str, Any] | None = None) -> dict[str, Any]:
    p = sp.profile
    out: dict[str, Any] = {"name": sp.name, "kind": sp.kind, "version": sp.version,
                           "active": sp.active, "created_ms": sp.created_ms,
                           "updated_ms": sp.updated_ms, "removed_ms": sp.removed_ms}
    if sp.kind == "evaluation":
        out.update(taf=p.taf, consumer=p.consumer, usage_point=p.usage_point,
                   supplier=p.supplier, recipients=list(p.recipients),
                   channels=[f"{c.meter}/{c.obis}" for c in p.channels],
                   valid_from_ms=p.valid_from_ms, valid_until_ms=p.valid_until_ms,
                   registration_period_s=p.registration_period_s,
                   billing_period=p.billing_period, state=state or {})
    else:
        out.update(url=p.url)
    return out


def value_dict(sv: Any) -> dict[str, Any]:
    v = sv.value
    return {"id": sv.id, "profile": v.profile, "taf": v.taf, "register": v.register,
            "owner": v.owner, "period_start_ms": v.period_start_ms,
            "period_end_ms": v.period_end_ms, "target_ms": v.target_ms,
            "capture_ms": v.capture_ms, "value": str(v.value), "scaler": v.scaler,
            "unit": v.unit, "status": v.status, "meter_status": v.meter_status,
            "time_valid": v.time_valid, "billing": v.billing, "stage": v.stage, "kind": v.kind,
            "sources": list(v.sources),
            "signature": None if sv.signature is None else sv.signature.hex(),
            "created_ms": sv.created_ms}


def handlers(engine: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Control commands over a :class:`smgw.tariff.engine.TariffEngine`."""
    tariff = engine.tariff

    def load(req: dict[str, Any]) -> dict[str, Any]:
        if req.get("text") is not None:
            sp = engine.load(str(req["text"]), str(req.get("source") or "<text>"))
        elif req.get("path"):
            sp = engine.load(Path(str(req["path"])))
        else:
            raise ValueError("profile-load needs 'text' (the profile's TOML) or 'path'")
        return profile_summary(sp, tariff.state(sp.name))

    def remove(req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("name") or "")
        if not engine.remove(name):
            raise ValueError(f"name: no profile {name!r}")
        return {"removed": name}

    def profiles(req: dict[str, Any]) -> dict[str, Any]:
        rows = tariff.profiles(kind=req.get("kind"), consumer=req.get("consumer"),
                               include_removed=bool(req.get("include_removed")))
        return {"profiles": [profile_summary(sp, tariff.state(sp.name)
                                             if sp.kind == "evaluation" else None)
                             for sp in rows],
                "errors": dict(engine.errors)}

    def values(req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("profile") or "")
        sp = tariff.profile(name)
        if sp is None or sp.kind != "evaluation":
            raise ValueError(f"profile: no evaluation profile {name!r}")
        tz = sp.profile.timezone
        limit = req.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"limit: expected a positive integer, got {limit!r}")
        rows = tariff.values(name, _time_arg(req.get("from"), "from", tz),
                             _time_arg(req.get("to"), "to", tz), register=req.get("register"),
                             limit=limit, newest_first=bool(req.get("newest_first")))
        return {"profile": name, "taf": sp.taf, "timezone": tz,
                "values": [value_dict(sv) for sv in rows]}

    def taf6_read(req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("profile") or "")
        sp = tariff.profile(name)
        if sp is None or sp.kind != "evaluation":
            raise ValueError(f"profile: no evaluation profile {name!r}")
        day = _time_arg(req.get("day"), "day", sp.profile.timezone)
        if day is None:
            raise ValueError("day: which day to read (2026-01-05)")
        n = engine.on_demand(name, day, req.get("recipient"))
        return {"profile": name, "queued": n}

    def deliveries(req: dict[str, Any]) -> dict[str, Any]:
        ob = engine.outbox
        limit = req.get("limit")
        if limit is None:
            limit = 100
        elif isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit: expected a positive integer, got {limit!r}")
        return {**ob.stats(), "messages": [
            {"id": d.id, "message_id": d.message_id, "profile": d.profile,
             "comm_profile": d.comm_profile, "period_start_ms": d.period_start_ms,
             "period_end_ms": d.period_end_ms, "n_values": d.n_values, "attempts": d.attempts,
             "next_attempt_ms": d.next_attempt_ms, "last_error": d.last_error}
            for d in ob.pending()[:limit]]}

    return {"profile-load": load, "profile-remove": remove, "profiles": profiles,
            "tariff-values": values, "taf6-read": taf6_read, "deliveries": deliveries}


# ---------------------------------------------------------------------- command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``smgw profile load|remove|list``."""
    pp = subparsers.add_parser("profile", help="evaluation and communication profiles: load, "
                                                "remove, list (docs/tariffs.md)")
    sub = pp.add_subparsers(dest="profile_action", required=True)
    ld = sub.add_parser("load", help="validate and install profiles (TOML files); "
                                     "communication profiles are loaded first")
    ld.add_argument("files", nargs="+", metavar="FILE")
    rm = sub.add_parser("remove", help="remove a profile (its values stay)")
    rm.add_argument("name")
    ls = sub.add_parser("list", help="the loaded profiles")
    ls.add_argument("--all", action="store_true", help="also removed profiles")
    for p in (ld, rm, ls):
        p.add_argument("--json", action="store_true")
    pp.set_defaults(func=run_profile)
    return pp


def add_tariff_commands(tariff_sub: Any) -> None:
    """``smgw tariff values|read|deliveries``, added to the ``tariff`` command's subparsers
    (``tariff replay`` lives in :mod:`smgw.tariff.cli`). Each sets ``func=run_tariff``."""
    v = tariff_sub.add_parser("values", help="derived values a profile formed")
    v.add_argument("profile")
    v.add_argument("--from", dest="from_", metavar="TIME",
                   help="from this target time (ISO 8601; local time of the profile)")
    v.add_argument("--to", metavar="TIME", help="up to this target time (exclusive)")
    v.add_argument("--register", help="only this register (OBIS)")
    v.add_argument("--limit", type=int)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_tariff, tariff_action="values")
    r = tariff_sub.add_parser("read", help="send stored values on demand: a day (TAF 6, 7) or "
                                           "the billing period containing it (TAF 1, 2)")
    r.add_argument("profile")
    r.add_argument("day", help="the local date (2026-01-05)")
    r.add_argument("--recipient", help="only to this communication profile")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_tariff, tariff_action="read")
    d = tariff_sub.add_parser("deliveries", help="messages for market participants not yet "
                                                 "acknowledged")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_tariff, tariff_action="deliveries")


def _request(args: argparse.Namespace, cmd: str, **kw: Any) -> Any:
    from smgw.cli import _request as request

    return request(args, cmd, **kw)


def _fmt_ms(ms: int | None, tz: str = "Europe/Berlin") -> str:
    if ms is None:
        return "-"
    from smgw.tariff.periods import iso

    return iso(int(ms), tz)


def _load_order(files: list[str]) -> list[tuple[str, str]]:
    """(source, text) with communication profiles first, so evaluation profiles in the same
    call find their recipients. A file that does not parse keeps its place: the gateway
    rejects it and logs why."""
    out = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SystemExit(f"smgw profile load: {f}: {e}") from None
        rank = 1
        try:
            from smgw.tariff.profile import CommunicationProfile, parse_profile

            rank = 0 if isinstance(parse_profile(text, f), CommunicationProfile) else 1
        except Exception:  # noqa: BLE001 - the gateway's answer says what is wrong
            pass
        out.append((rank, f, text))
    return [(f, t) for _, f, t in sorted(out, key=lambda x: x[0])]


def run_profile(args: argparse.Namespace) -> int:
    if args.profile_action == "load":
        from smgw.control import ControlError, request
        from smgw.cli import _load

        sock = Path(_load(args).control.socket)
        failed = 0
        for source, text in _load_order(args.files):
            try:
                res = request(sock, "profile-load", text=text,
                              source=str(Path(source).resolve()))
            except ControlError as e:
                print(f"{source}: rejected: {e}", file=sys.stderr)
                failed += 1
                continue
            if args.json:
                print(json.dumps(res, indent=2))
            else:
                print(f"{source}: {res['kind']} profile {res['name']} version {res['version']}")
        return 1 if failed else 0
    if args.profile_action == "remove":
        res = _request(args, "profile-remove", name=args.name)
        print(json.dumps(res) if args.json else f"profile {args.name} removed")
        return 0
    res = _request(args, "profiles", include_removed=args.all)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for p in res["profiles"]:
        if p["kind"] == "evaluation":
            st = p.get("state") or {}
            flag = "active" if p["active"] else "inactive"
            print(f"{p['name']:<20} TAF {p['taf']:<2} {flag:<8} v{p['version']} "
                  f"consumer={p['consumer']} to={','.join(p['recipients'])} "
                  f"formed until {_fmt_ms(st.get('formed_until'))}"
                  f"{' REMOVED' if p['removed_ms'] else ''}")
            err = res.get("errors", {}).get(p["name"])
            if err:
                print(f"{'':<20} error: {err}")
        else:
            print(f"{p['name']:<20} communication v{p['version']} {p['url']}"
                  f"{' REMOVED' if p['removed_ms'] else ''}")
    if not res["profiles"]:
        print("no profiles")
    return 0


def run_tariff(args: argparse.Namespace) -> int:
    if args.tariff_action == "values":
        res = _request(args, "tariff-values", profile=args.profile, limit=args.limit,
                       register=args.register, **{"from": args.from_, "to": args.to})
        if args.json:
            print(json.dumps(res, indent=2))
            return 0
        tz = res["timezone"]
        for v in res["values"]:
            value = Decimal(v["value"]).scaleb(v["scaler"])
            stage = "" if v["stage"] is None else f" stage={v['stage']}"
            print(f"{_fmt_ms(v['target_ms'], tz)}  {v['register']:<12} {v['owner']:<20} "
                  f"{value:>16} {v['unit']:<4} status={v['status']:08X}{stage}"
                  f"{'' if v['time_valid'] else ' time-invalid'}"
                  f"{' signed' if v['signature'] else ''}")
        if not res["values"]:
            print("no values")
        return 0
    if args.tariff_action == "read":
        res = _request(args, "taf6-read", profile=args.profile, day=args.day,
                       recipient=args.recipient)
        print(json.dumps(res) if args.json else f"{res['queued']} message(s) queued")
        return 0
    res = _request(args, "deliveries")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"pending={res['pending']} delivered={res['delivered']} failing={res['failing']}")
    for d in res["messages"]:
        print(f"{d['id']:>6} {d['profile']} -> {d['comm_profile']} "
              f"{_fmt_ms(d['period_start_ms'])} .. {_fmt_ms(d['period_end_ms'])} "
              f"values={d['n_values']} attempts={d['attempts']}"
              f"{' error: ' + d['last_error'] if d['last_error'] else ''}")
    return 0
