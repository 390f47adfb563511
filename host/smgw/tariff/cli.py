"""``smgw tariff replay --profile P.toml --readings R.csv [--from T] [--to T]``: compute what an
evaluation profile yields from a series of readings and print it as JSON (docs/tariffs.md).

The lead wires :func:`add_parser` into ``smgw.cli``: it adds the ``tariff`` command with
``replay`` under it and returns the ``tariff`` sub-command action, so that other modules can add
their own ``tariff`` sub-commands (``add_replay_parser`` adds only ``replay``). :func:`main`
runs it on its own: ``python -m smgw.tariff.cli replay --profile ... --readings ...``.

Exit status: 0 done (problems in the data are reported in the JSON), 1 the profile or the
readings file cannot be used (one message on stderr naming the key or line and column),
2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

PROG = "smgw tariff replay"


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--profile", required=True, metavar="PROFILE.toml",
                   help="the evaluation profile (TOML, see examples/profiles/)")
    p.add_argument("--readings", required=True, metavar="READINGS.csv",
                   help="readings: meter id, OBIS, capture time (ISO 8601 with offset), value, "
                        "unit, status")
    p.add_argument("--from", dest="from_", metavar="TIME",
                   help="start (ISO 8601; without offset: the profile's time zone; a date "
                        "alone: that day's start). Default: the first reading")
    p.add_argument("--to", metavar="TIME", help="end (exclusive), like --from. Default: the "
                                                "last reading")
    p.add_argument("--output", "-o", metavar="FILE", help="write the JSON here instead of "
                                                          "stdout")
    p.add_argument("--compact", action="store_true", help="JSON on one line")
    p.set_defaults(func=run)
    return p


def add_replay_parser(tariff_subparsers: Any) -> argparse.ArgumentParser:
    """Register ``replay`` on the ``tariff`` command's sub-parsers."""
    return _configure(tariff_subparsers.add_parser(
        "replay", help="what a profile yields from a readings file (JSON)",
        description="Compute the derived values of an evaluation profile from a CSV of "
                    "original readings, per billing period and tariff stage, without a "
                    "running gateway."))


def add_parser(subparsers: Any) -> Any:
    """Register ``tariff`` (with ``replay`` under it) on the ``smgw`` sub-command parsers and
    return the ``tariff`` sub-command action for further sub-commands."""
    t = subparsers.add_parser("tariff", help="tariff application cases: replay readings "
                                             "through a profile, derived values",
                              description="Tariff application cases (docs/tariffs.md).")
    actions = t.add_subparsers(dest="tariff_command", required=True, metavar="COMMAND")
    add_replay_parser(actions)
    return actions


def parse_time_arg(text: str, tzname: str) -> int:
    """``--from``/``--to``: ISO 8601 with offset; without, in zone ``tzname``; a bare date is
    that local day's start."""
    from smgw.tariff.periods import day_start_ms, zone

    s = text.strip()
    try:
        if len(s) == 10:
            return day_start_ms(dt.date.fromisoformat(s), tzname)
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=zone(tzname))
    return (d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        milliseconds=1)


def run(args: argparse.Namespace) -> int:
    from smgw.tariff.profile import EvaluationProfile, ProfileError, load_profile
    from smgw.tariff.replay import CsvError, read_readings_csv, replay

    def fail(msg: str) -> int:
        print(f"{PROG}: {msg}", file=sys.stderr)
        return 1

    try:
        p = load_profile(Path(args.profile))
    except ProfileError as e:
        return fail(str(e))
    if not isinstance(p, EvaluationProfile):
        return fail(f"{args.profile}: profile.kind: replay needs an evaluation profile, "
                    f"this is a communication profile")
    try:
        start = parse_time_arg(args.from_, p.timezone) if args.from_ else None
        end = parse_time_arg(args.to, p.timezone) if args.to else None
    except ValueError as e:
        return fail(f"--from/--to: {e}")
    try:
        readings = read_readings_csv(Path(args.readings))
    except CsvError as e:
        return fail(str(e))
    result = replay(p, readings, start, end)
    text = json.dumps(result, ensure_ascii=False,
                      indent=None if args.compact else 2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            return fail(f"cannot write {args.output}: {e}")
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="smgw tariff", description="Tariff application cases.")
    actions = p.add_subparsers(dest="tariff_command", required=True, metavar="COMMAND")
    add_replay_parser(actions)
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
