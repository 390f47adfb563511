"""Test EMT: receives what gateways push, verifies it and writes it down (docs/emt-delivery.md).

  python tools/emt_receiver.py --pki DATA/pki --name emt1 --port 9443 --out /tmp/emt1

--pki is a test PKI directory (tools/pki.py, or a gateway's <data_dir>/pki); the EMT's triple
<pki>/<name>/ is used (issued there first if the PKI has its CA keys and the name has none).
Gateways' TLS client certificates and CMS signatures are checked against the PKI's root. Runs
until Ctrl-C and prints one line per message; everything received is under --out:
messages/<message id>.json, values.csv, received.db.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from smgw.security.testpki import ROOT_CERT, PkiError, TestPki, load_cert, read_triple
from smgw.wan.emtserver import EmtReceiver


def _print(info: dict) -> None:
    bad = info["bad_signatures"]
    print(f"received {info['message_id']} from {info['gateway_id']}: {info['n_values']} values "
          f"({', '.join(info['profiles'])})" + (f", {bad} BAD SIGNATURES" if bad else ""),
          flush=True)


async def _serve(args: argparse.Namespace) -> int:
    pki_dir = Path(args.pki)
    try:
        if not TestPki.exists(pki_dir):
            raise PkiError(f"{pki_dir}: no test PKI here (create one with tools/pki.py init)")
        if (pki_dir / args.name).is_dir():
            pki = None
            triple = read_triple(pki_dir, args.name)
        else:
            pki = TestPki.load(pki_dir)
            triple = pki.issue_triple(args.name)
            print(f"issued a certificate triple for {args.name} in {pki_dir / args.name}")
        root = pki.root if pki is not None else load_cert(pki_dir / ROOT_CERT)
    except PkiError as e:
        print(f"emt_receiver: {e}", file=sys.stderr)
        return 2
    receiver = EmtReceiver(Path(args.out), triple, [root], on_message=_print)
    try:
        url = await receiver.start(args.host, args.port)
    except OSError as e:
        print(f"emt_receiver: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    print(f"EMT {args.name} listening on {url}; writing to {args.out}; Ctrl-C stops",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await receiver.stop()
    s = receiver.stats
    print(f"stopped: {s['received']} messages, {s['values']} values, {s['duplicates']} "
          f"duplicates, {s['rejected']} rejected, {s['bad_signatures']} bad signatures")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pki", required=True, help="test PKI directory")
    ap.add_argument("--name", default="emt1", help="the EMT's entity name in the PKI")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9443)
    ap.add_argument("--out", required=True, help="directory for what is received")
    return asyncio.run(_serve(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
