"""SML push meter simulator: sends what an eHZ sends on its info interface, every --period
seconds, to a serial port (a pty, a USB-RS485 adapter, any pyserial URL).

  python tools/metersim.py --port pty                         # makes a pty pair, prints the path
  python tools/metersim.py --port /dev/ttyUSB0 --profile daily:7:pv=4000
  python tools/metersim.py --port pty --speed 60 --corrupt-every 10 --garbage-every 25

With --port pty the meter writes into one end of a pty pair and the path of the other end is
printed for the gateway to open; it runs until Ctrl-C (or --count pushes). See
docs/meter-simulator.md.
"""

from __future__ import annotations

import argparse
import sys
import threading

from smgw.sim.smlmeter import DEFAULT_SERVER_ID, SmlMeter, parse_profile


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metersim", description="Simulated SML push meter (eHZ info interface)."
    )
    p.add_argument("--port", required=True,
                   help="serial device / pyserial URL to write to, or 'pty' for a new pty pair")
    p.add_argument("--id", default=DEFAULT_SERVER_ID.hex(),
                   help="server ID in hex (default 0A0153494D0100003039 = 1SIM0100012345)")
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
    p.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    return p


def main(argv: list[str] | None = None, stop_event: threading.Event | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        server_id = bytes.fromhex(args.id)
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


if __name__ == "__main__":
    sys.exit(main())
