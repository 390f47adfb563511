"""``smgw han account ...``: HAN accounts of consumers and service technicians.

    smgw han account add demo --role consumer --consumer LV1 --password-stdin
    smgw han account add service --role technician --cert service.crt.pem
    smgw han account add anna --role consumer --consumer LV2 --new-cert DIR   # key + cert + .p12
    smgw han account list [--json]
    smgw han account passwd demo [--password-stdin]
    smgw han account cert demo FILE.pem          # enrol another client certificate
    smgw han account uncert demo SHA256-PREFIX   # withdraw one
    smgw han account remove demo

The accounts live in ``<data_dir>/han-accounts.json``; a running gateway picks up changes with
its next connection or request (no restart). Exit status 0 done, 1 refused (the message says
why), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from smgw.fileio import atomic_write

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``han`` on the ``smgw`` sub-command parsers."""
    han = subparsers.add_parser("han", help="HAN interface: accounts of consumers and "
                                            "service technicians",
                                description=__doc__.splitlines()[0])
    hs = han.add_subparsers(dest="han_command", required=True)
    acc = hs.add_parser("account", help="add, list, change or remove HAN accounts")
    a = acc.add_subparsers(dest="action", required=True)

    def password_opts(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
        g.add_argument("--password", help="the password (visible in the process list: "
                                          "prefer --password-stdin or the prompt)")

    add = a.add_parser("add", help="a new account (password, client certificate or both)")
    add.add_argument("name", help="login name (letters, digits, . _ -); the M2M user id is "
                                  "<name>.sm")
    add.add_argument("--role", required=True, choices=["consumer", "technician"])
    add.add_argument("--consumer", help="consumer accounts: the consumer id of the logbooks "
                                        "(logbook.consumers, e.g. LV1)")
    password_opts(add)
    add.add_argument("--no-password", action="store_true",
                     help="certificate login only (needs --cert or --new-cert)")
    add.add_argument("--cert", metavar="FILE", help="enrol this client certificate (PEM)")
    add.add_argument("--new-cert", metavar="DIR",
                     help="make a key and a self-signed client certificate, enrol it and write "
                          "DIR/<name>.key.pem, .crt.pem and .p12 (for a browser)")
    add.add_argument("--p12-password", default="",
                     help="password of the .p12 file written by --new-cert (default: none)")

    a.add_parser("list", help="the accounts (no secrets)").add_argument(
        "--json", action="store_true")

    pw = a.add_parser("passwd", help="set a new password")
    pw.add_argument("name")
    password_opts(pw)
    pw.add_argument("--none", action="store_true", help="remove the password (certificate "
                                                        "login only)")

    c = a.add_parser("cert", help="enrol a further client certificate")
    c.add_argument("name")
    c.add_argument("file", help="the certificate (PEM)")

    u = a.add_parser("uncert", help="withdraw an enrolled client certificate")
    u.add_argument("name")
    u.add_argument("fingerprint", help="its SHA-256 fingerprint (a unique prefix suffices)")

    rm = a.add_parser("remove", help="delete an account (its sessions end)")
    rm.add_argument("name")
    han.set_defaults(func=run)
    return han


def _password(args: argparse.Namespace, name: str) -> str:
    if getattr(args, "password", None):
        return str(args.password)
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        pw = line.rstrip("\r\n")
        if not pw:
            raise _Usage("no password on standard input")
        return pw
    if not sys.stdin.isatty():
        raise _Usage("give the password with --password-stdin (stdin is not a terminal)")
    pw = getpass.getpass(f"Password for {name}: ")
    if pw != getpass.getpass("Again: "):
        raise _Usage("the passwords differ")
    return pw


class _Usage(Exception):
    pass


def _accounts(args: argparse.Namespace) -> Any:
    from smgw.cli import _load
    from smgw.han.accounts import Accounts

    cfg = _load(args)
    return Accounts.open(Path(cfg.gateway.data_dir), cfg.gateway.id)


def run(args: argparse.Namespace) -> int:
    from smgw.han.accounts import AccountError

    try:
        return _run(args)
    except AccountError as e:
        print(f"smgw han: {e}", file=sys.stderr)
        return 1
    except _Usage as e:
        print(f"smgw han: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"smgw han: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from smgw.han.accounts import make_client_identity, pkcs12

    accounts = _accounts(args)
    act = args.action
    if act == "list":
        items = [a.describe() for a in accounts.list()]
        if args.json:
            print(json.dumps({"realm": accounts.realm, "file": str(accounts.path),
                              "accounts": items}, indent=2))
            return 0
        if not items:
            print(f"no HAN accounts ({accounts.path})")
        for a in items:
            login = ", ".join(
                (["password"] if a["password"] else [])
                + [f"certificate {c['sha256'][:16]}… ({c['subject']}, until {c['not_after']})"
                   for c in a["certificates"]])
            who = f"consumer {a['consumer']}" if a["role"] == "consumer" else "technician"
            print(f"{a['name']:<20} {who:<22} {login}")
        return 0
    if act == "add":
        if args.cert and args.new_cert:
            raise _Usage("--cert and --new-cert exclude each other")
        cert_pem: bytes | None = None
        written: list[Path] = []
        if args.cert:
            cert_pem = Path(args.cert).read_bytes()
        elif args.new_cert:
            key_pem, cert_pem = make_client_identity(args.name)
        if args.no_password:
            if cert_pem is None:
                raise _Usage("--no-password needs --cert or --new-cert")
            password = None
        else:
            password = _password(args, args.name)
        acct = accounts.add(args.name, args.role, password, consumer=args.consumer,
                            cert_pem=cert_pem)
        if args.new_cert:
            d = Path(args.new_cert)
            for suffix, data, mode in (
                    (".key.pem", key_pem, 0o600), (".crt.pem", cert_pem, 0o644),
                    (".p12", pkcs12(key_pem, cert_pem, args.p12_password, args.name), 0o600)):
                atomic_write(d / f"{args.name}{suffix}", data, mode)
                written.append(d / f"{args.name}{suffix}")
        print(f"added {acct.role} account {acct.name}"
              + (f" (consumer {acct.consumer})" if acct.consumer else "")
              + f" to {accounts.path}")
        for p in written:
            print(f"  wrote {p}")
        return 0
    if act == "passwd":
        pw = None if args.none else _password(args, args.name)
        accounts.set_password(args.name, pw)
        print(f"{args.name}: password {'removed' if pw is None else 'set'}")
        return 0
    if act == "cert":
        a = accounts.add_cert(args.name, Path(args.file).read_bytes())
        print(f"{args.name}: certificate {a.certs[-1].sha256} enrolled")
        return 0
    if act == "uncert":
        accounts.remove_cert(args.name, args.fingerprint)
        print(f"{args.name}: certificate withdrawn")
        return 0
    if act == "remove":
        if not accounts.remove(args.name):
            print(f"smgw han: account {args.name}: no such account", file=sys.stderr)
            return 1
        print(f"removed account {args.name}")
        return 0
    raise _Usage(f"unknown action {act!r}")  # pragma: no cover - argparse restricts it
