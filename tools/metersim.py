"""Meter simulator. Two modes:

SML push (default): sends what an eHZ sends on its info interface, every --period seconds, to a
serial port (a pty, a USB-RS485 adapter, any pyserial URL).

  python tools/metersim.py --port pty                         # makes a pty pair, prints the path
  python tools/metersim.py --port /dev/ttyUSB0 --profile daily:7:pv=4000
  python tools/metersim.py --port pty --speed 60 --corrupt-every 10 --garbage-every 25

Wired LMN (--lmn): --meters meters on one RS-485 bus that answer the gateway (registration,
HDLC link, pairing, TLS, SML GetList; docs/lmn-wired.md). One line per meter on stdout: its
server id, its pairing key (enter both into the gateway's meter profile) and the SHA-256
fingerprint of its certificate. --key-dir keeps keys, certificates and pairing state, so a
restarted simulator is still the meter the gateway paired with.

  python tools/metersim.py --lmn --port pty --meters 2 --key-dir var/lmnsim
  python tools/metersim.py --lmn --port /dev/ttyUSB1 --baud 115200 --key-dir var/lmnsim

With --port pty the simulator uses one end of a pty pair and prints the path of the other end
first, for the gateway to open; it runs until Ctrl-C (or --count pushes). See
docs/meter-simulator.md.
"""

from __future__ import annotations

import argparse
import sys
import threading

from smgw.sim.smlmeter import DEFAULT_SERVER_ID, DailyProfile, Profile, SmlMeter, parse_profile


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metersim",
        description="Simulated SML push meter (eHZ info interface), or with --lmn wired LMN "
                    "meters on an RS-485 bus (HDLC, pairing, TLS, SML GetList).",
    )
    p.add_argument("--port", required=True,
                   help="serial device / pyserial URL to write to, or 'pty' for a new pty pair")
    p.add_argument("--id", default=None,
                   help="server ID in hex (default 0A0153494D0100003039 = 1SIM0100012345; "
                        "--lmn: the first meter's, the others count up; default "
                        "0A0153494D0200000001 = 1SIM0200000001)")
    p.add_argument("--profile", default="constant:500",
                   help="constant:WATTS | daily:SEED[:pv=PEAK_W][:start=HHhMM] "
                        "(default constant:500)")
    p.add_argument("--period", type=float, default=2.0, help="seconds between pushes (default 2)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="time-lapse factor: simulated seconds per wall second (default 1)")
    p.add_argument("--count", type=int, default=None, help="stop after N pushes")
    p.add_argument("--start-wh", type=float, default=0.0, help="1.8.0 at start (Wh)")
    p.add_argument("--start-export-wh", type=float, default=0.0, help="2.8.0 at start (Wh)")
    p.add_argument("--two-way", action="store_true",
                   help="send 2.8.0 even if the profile never feeds in")
    p.add_argument("--kermit", action="store_true",
                   help="Holley DTZ541 style: CRC-16/KERMIT and its message layout")
    p.add_argument("--corrupt-every", type=int, default=None, metavar="N",
                   help="flip one byte in every N-th frame (CRC fails)")
    p.add_argument("--garbage-every", type=int, default=None, metavar="N",
                   help="send random bytes before every N-th frame")
    p.add_argument("--seed", type=int, default=0, help="seed for the fault generator")
    p.add_argument("--baud", type=int, default=None,
                   help="baud rate (default 9600; --lmn: 115200)")
    lmn = p.add_argument_group("wired LMN (--lmn)")
    lmn.add_argument("--lmn", action="store_true",
                     help="simulate wired LMN meters on an RS-485 bus instead of a push meter")
    lmn.add_argument("--meters", type=int, default=1, help="meters on the bus (default 1)")
    lmn.add_argument("--key-dir", default=None, metavar="DIR",
                     help="keep keys, certificates and pairing state here (created if needed)")
    lmn.add_argument("--key-secret", default=None, metavar="TEXT",
                     help="derive new pairing keys from TEXT instead of random ones")
    lmn.add_argument("--orphan", type=float, default=60.0, metavar="S",
                     help="a meter forgets its address after S seconds unpolled (default 60)")
    return p


def main(argv: list[str] | None = None, stop_event: threading.Event | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.lmn:
        return main_lmn(args, stop_event)
    if args.baud is None:
        args.baud = 9600
    try:
        server_id = bytes.fromhex(args.id or DEFAULT_SERVER_ID.hex())
        meter = SmlMeter(
            server_id,
            parse_profile(args.profile),
            period_s=args.period,
            start_wh=args.start_wh,
            start_export_wh=args.start_export_wh,
            two_way=True if args.two_way else None,
            kermit=args.kermit,
            corrupt_every=args.corrupt_every,
            garbage_every=args.garbage_every,
            fault_seed=args.seed,
        )
        if args.speed <= 0:
            raise ValueError("--speed must be > 0")
    except ValueError as e:
        print(f"metersim: {e}", file=sys.stderr)
        return 2

    bridge = None
    port = args.port
    if port == "pty":
        from smgw.sim.ptybridge import PtyBridge

        bridge = PtyBridge().start()
        port = bridge.port_a
        print(bridge.port_b, flush=True)
        print(f"metersim: meter {server_id.hex()} ({meter.profile!r}) pushing every "
              f"{meter.period_s:g} s; open {bridge.port_b} at {args.baud} Bd; Ctrl-C stops",
              file=sys.stderr, flush=True)
    try:
        n = meter.run(port, speed=args.speed, count=args.count, stop_event=stop_event,
                      baudrate=args.baud)
    except KeyboardInterrupt:
        n = meter.stats.frames
    finally:
        if bridge is not None:
            bridge.close()
    s = meter.stats
    print(f"metersim: {n} frames, {s.corrupted} corrupted, {s.garbage} garbage bursts, "
          f"{s.bytes} bytes", file=sys.stderr)
    return 0


def _profile_for(spec: str, n: int) -> Profile:
    # every meter its own household: daily:SEED gives meter n the seed SEED + n
    p = parse_profile(spec)
    if isinstance(p, DailyProfile) and n:
        return DailyProfile(p.seed + n, pv_peak_w=p.pv_peak_w, start_s=p.start_ms / 1000)
    return p


def main_lmn(args: argparse.Namespace, stop_event: threading.Event | None = None) -> int:
    from smgw.lmn.security import cert_fingerprint
    from smgw.meters.sml import meter_id_text
    from smgw.sim.lmnmeter import (
        LmnBus,
        LmnMeter,
        derive_pairing_key,
        load_or_create_meter,
        sim_sid,
    )

    baud = args.baud or 115200
    try:
        if not 1 <= args.meters <= 110:
            raise ValueError("--meters must be 1..110 (the addresses of one bus)")
        if args.speed <= 0:
            raise ValueError("--speed must be > 0")
        if baud <= 0:
            raise ValueError("--baud must be > 0")
        first = bytes.fromhex(args.id) if args.id else sim_sid(1)
        if not 5 <= len(first) <= 16:
            raise ValueError("--id must be 5..16 bytes")
        head, serial = first[:-4], int.from_bytes(first[-4:], "big")
        sids = [head + ((serial + n) & 0xFFFFFFFF).to_bytes(4, "big")
                for n in range(args.meters)]
        secret = args.key_secret.encode() if args.key_secret is not None else None
        meters = []
        for n, sid in enumerate(sids):
            kw = dict(profile=_profile_for(args.profile, n), start_wh=args.start_wh,
                      start_export_wh=args.start_export_wh, speed=args.speed, seed=args.seed,
                      orphan_s=args.orphan)
            if args.key_dir:
                meters.append(load_or_create_meter(args.key_dir, sid, secret=secret, **kw))
            else:
                key = derive_pairing_key(secret, sid) if secret is not None else None
                meters.append(LmnMeter(sid, pairing_key=key, **kw))
    except (ValueError, OSError) as e:
        print(f"metersim: {e}", file=sys.stderr)
        return 2

    bridge = None
    port = args.port
    if port == "pty":
        from smgw.sim.ptybridge import PtyBridge

        bridge = PtyBridge().start()
        port = bridge.port_a
        print(bridge.port_b, flush=True)
    for m in meters:
        st = m.station
        key = m.pairing_key.hex() if m.pairing_key is not None else "-"
        print(f"sid={m.sid.hex()} id={meter_id_text(m.sid)} key={key} "
              f"fingerprint={cert_fingerprint(m.identity.cert_der)} "
              f"paired={'yes' if st.paired else 'no'}", flush=True)
    where = bridge.port_b if bridge is not None else port
    print(f"metersim: {len(meters)} wired LMN meter(s) on {where} at {baud} Bd"
          f"{'' if args.key_dir else ' (no --key-dir: keys and certificates are new each run)'}"
          "; Ctrl-C stops", file=sys.stderr, flush=True)
    bus = LmnBus(port, meters, baud=baud)
    stop = stop_event if stop_event is not None else threading.Event()
    try:
        bus.run(stop)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"metersim: {e}", file=sys.stderr)
        return 1
    finally:
        if bridge is not None:
            bridge.close()
    if bus.error is not None:
        print(f"metersim: {bus.error}", file=sys.stderr)
        return 1
    s = bus.stats()
    b = s["bus"]
    print(f"metersim: {b['frames']} frames received, {b['errors']} bad, {b['tx_frames']} sent, "
          f"{b['collisions']} collisions", file=sys.stderr)
    for sid, m in s["meters"].items():
        print(f"metersim: {sid} address={m['address']} paired={m['paired']} "
              f"tls_sessions={m['tls_sessions']} polls={m['sml_requests']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
