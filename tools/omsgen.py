"""OMS telegram generator: builds (and encrypts) wireless M-Bus telegrams from a meter
description and prints them as hex, one per line. See docs/omsgen.md.

  python tools/omsgen.py --manufacturer ELS --id 12345678 --version 0x33 --type gas \\
      --mode 5 --key 0102030405060708090A0B0C0D0E0F11 --access 0x2A --sync --frame none \\
      --records 'volume=28504.27m3,type=bcd8' 'datetime=2008-05-31T23:50' 'error_flags=0'
  # prints vector V1 of meter-protocols.md

  python tools/omsgen.py --mode 7 --key 000102030405060708090A0B0C0D0E0F --counter 2739 \\
      --records 'energy=9341kWh' 'volume=1348.631m3'     # frame A with DLL CRCs
  python tools/omsgen.py --count 10 --random 7 --json    # random meters, with keys and values

  python tools/omsgen.py --radio pty --meters 4 --rate 70 --air T1
  # simulated meters behind a simulated AMB8465 module on a new pty (path printed first)

--count N without --random: N consecutive telegrams of the same meter (access number and, in
mode 7, the message counter count up). --json prints one JSON object per telegram: the hex, the
key and the records a correct decoder must report.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time

from smgw.wmbus.encode import (
    CFG_SYNC,
    DEVICE_TYPES,
    Meter,
    parse_record,
    random_meter,
    random_values,
    telegram,
)


def _int(text: str) -> int:
    return int(text, 0)


def _device_type(text: str) -> int:
    if text in DEVICE_TYPES:
        return DEVICE_TYPES[text]
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown device type {text!r}: a number or one of {', '.join(DEVICE_TYPES)}"
        ) from None


def _key(text: str) -> bytes:
    try:
        k = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("key must be 32 hex digits") from None
    if len(k) != 16:
        raise argparse.ArgumentTypeError("key must be 32 hex digits (16 bytes)")
    return k


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="omsgen",
        description="Build wireless M-Bus / OMS telegrams (security modes 0, 5, 7; frame A, B "
                    "or without CRCs) and print them as hex; or run simulated meters behind a "
                    "simulated AMB8465 radio module (--radio).")
    m = p.add_argument_group("meter")
    m.add_argument("--manufacturer", default="ELS", help="three letters (default ELS)")
    m.add_argument("--id", default="12345678", help="8 digits (default 12345678)")
    m.add_argument("--version", type=_int, default=0, help="version / generation (default 0)")
    m.add_argument("--type", type=_device_type, default=DEVICE_TYPES["water"],
                   help="device type: number or name (water, gas, heat, electricity, hca, "
                        "warm_water, cold_water, ...; default water)")
    m.add_argument("--mode", type=int, choices=(0, 5, 7), default=0,
                   help="security mode (default 0 = none)")
    m.add_argument("--key", type=_key, default=None, help="AES-128 key, 32 hex digits")
    m.add_argument("--header", choices=("short", "long", "none"), default="short",
                   help="transport header (default short; none only in mode 0)")
    m.add_argument("--frame", choices=("A", "B", "none"), default="A",
                   help="frame format A or B with DLL CRCs, or none = no CRCs, as a radio "
                        "module delivers it (default A)")
    t = p.add_argument_group("telegram")
    t.add_argument("--records", nargs="+", default=[], metavar="REC",
                   help="QUANTITY=VALUE[UNIT][,storage=N][,tariff=N][,subunit=N]"
                        "[,function=F][,type=T], e.g. 'volume=28504.27m3,type=bcd8'")
    t.add_argument("--clear-records", nargs="+", default=[], metavar="REC",
                   help="records sent unencrypted after the encrypted blocks")
    t.add_argument("--access", type=_int, default=0, help="access number 0..255 (default 0)")
    t.add_argument("--counter", type=_int, default=1,
                   help="mode 7 message counter (default 1)")
    t.add_argument("--c-field", type=_int, default=0x44, help="C-field (default 0x44 SND-NR)")
    t.add_argument("--status", type=_int, default=0, help="TPL status byte (default 0)")
    t.add_argument("--sync", action="store_true",
                   help="set the CFG bit S (synchronous transmission), as vector V1 does")
    t.add_argument("--ell", default="", metavar="HEX", help="raw ELL bytes after the DLL")
    t.add_argument("--count", type=int, default=1, help="number of telegrams (default 1)")
    t.add_argument("--random", type=int, default=None, metavar="SEED",
                   help="random meters and values from SEED (ignores the meter options)")
    t.add_argument("--json", action="store_true",
                   help="one JSON object per telegram: hex, key and expected records")
    r = p.add_argument_group("simulated radio (--radio)")
    r.add_argument("--radio", default=None, metavar="PORT",
                   help="run simulated meters behind a simulated AMB8465 on PORT ('pty' = a "
                        "new pty pair, its other end printed first)")
    r.add_argument("--meters", type=int, default=4, help="simulated meters (default 4)")
    r.add_argument("--rate", type=float, default=10.0,
                   help="telegrams per second, all meters together (default 10)")
    r.add_argument("--air", choices=("T1", "C1", "S1"), default="T1",
                   help="air mode the meters send in (default T1)")
    r.add_argument("--duplicates", type=float, default=0.0, metavar="P",
                   help="probability that a telegram is sent twice (default 0)")
    r.add_argument("--secret", default="smgw-sim",
                   help="derive the meters' keys from this text (default smgw-sim)")
    r.add_argument("--seconds", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    r.add_argument("--baud", type=int, default=9600, help="UART baud rate (default 9600)")
    return p


def _line(tg: bytes, meter: Meter, values, as_json: bool, **extra) -> str:
    if not as_json:
        return tg.hex().upper()
    return json.dumps({
        "telegram": tg.hex().upper(),
        "key": meter.key.hex().upper() if meter.key else None,
        "manufacturer": meter.manufacturer, "id": meter.id, "version": meter.version,
        "device_type": meter.device_type, "security_mode": meter.mode, "frame": meter.frame,
        **extra,
        "records": [v.expected() for v in values],
    }, ensure_ascii=False)


def generate(args: argparse.Namespace, out=None) -> int:
    out = out if out is not None else sys.stdout
    if args.random is not None:
        rng = random.Random(args.random)
        for _ in range(args.count):
            meter = random_meter(rng)
            values = random_values(rng)
            acc = rng.randrange(256)
            counter = rng.randrange(1 << 32) if meter.mode == 7 else None
            tg = telegram(meter, values, acc, counter=counter)
            print(_line(tg, meter, values, args.json, access_number=acc, counter=counter),
                  file=out)
        return 0
    meter = Meter(args.manufacturer.upper(), args.id, args.version, args.type, args.key,
                  args.mode, args.header, args.frame)
    values = [parse_record(s) for s in args.records]
    clear = [parse_record(s) for s in args.clear_records]
    if not values and not clear:
        raise ValueError("no records: give --records (or --random SEED)")
    ell = bytes.fromhex(args.ell) if args.ell else b""
    for k in range(args.count):
        acc = (args.access + k) & 0xFF
        counter = (args.counter + k) & 0xFFFFFFFF if meter.mode == 7 else None
        tg = telegram(meter, values, acc, counter=counter, c_field=args.c_field,
                      status=args.status, cfg_flags=CFG_SYNC if args.sync else 0,
                      clear_values=clear, ell=ell)
        print(_line(tg, meter, values + clear, args.json, access_number=acc, counter=counter),
              file=out)
    return 0


def run_radio(args: argparse.Namespace, stop_event: threading.Event | None = None) -> int:
    from smgw.sim.ptybridge import PtyBridge
    from smgw.sim.wmbusmeter import WmbusRadioSim, default_meters

    bridge = None
    port = args.radio
    if port == "pty":
        bridge = PtyBridge().start()
        port = bridge.port_a
        print(bridge.port_b, flush=True)
    meters = default_meters(args.meters, secret=args.secret.encode(),
                            frame="A" if args.air == "T1" else "B")
    sim = WmbusRadioSim(port, meters, rate_per_s=args.rate, mode=args.air,
                        duplicate_prob=args.duplicates, baud=args.baud)
    for info in sim.meters_info():
        print(f"meter {info['manufacturer']} {info['id']} type {info['device_type']} "
              f"mode {info['mode']} key {info['key']}", file=sys.stderr)
    stop = stop_event if stop_event is not None else threading.Event()
    sim.start()
    t_end = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            stop.wait(0.2 if t_end is None else max(0.0, min(0.2, t_end - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if bridge is not None:
            bridge.close()
        print(json.dumps(sim.stats()["radio"]), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, stop_event: threading.Event | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        if args.radio is not None:
            return run_radio(args, stop_event)
        return generate(args)
    except ValueError as e:
        print(f"omsgen: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
