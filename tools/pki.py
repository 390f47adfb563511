"""Test SM-PKI for the bench: a root CA, a sub-CA and TLS/SIG/ENC certificate triples for the
gateway, the GWA and EMTs. See docs/pki-and-cms.md for the layout and profiles.

  python tools/pki.py init var/pki --gateway EOPN0000000001 --emt emt1 --emt emt2 --gwa gwa
  python tools/pki.py init var/pki --curve brainpoolP256r1 --gateway EOPN0000000001
  python tools/pki.py show var/pki

init creates the PKI if DIR holds none and issues every named triple that does not exist yet
(existing keys are never replaced). show prints subject, subjectKeyIdentifier, validity and key
usage of every certificate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from smgw.security.testpki import (
    CURVES,
    ROLES,
    PkiError,
    TestPki,
    curve_name,
    load_cert,
    ski_of,
)

_KU_NAMES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
              ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}


def _usage(cert: x509.Certificate) -> str:
    parts = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        parts += [n for n in _KU_NAMES if getattr(ku, n)]
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        parts += [_EKU_NAMES.get(u, u.dotted_string) for u in eku]
    except x509.ExtensionNotFound:
        pass
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            parts.append("CA" + (f"(pathlen {bc.path_length})" if bc.path_length is not None
                                 else ""))
    except x509.ExtensionNotFound:
        pass
    return ", ".join(parts) or "-"


def describe(label: str, cert: x509.Certificate) -> str:
    ski = ski_of(cert)
    return "\n".join((
        f"{label}",
        f"  subject   {cert.subject.rfc4514_string()}",
        f"  issuer    {cert.issuer.rfc4514_string()}",
        f"  SKI       {ski.hex() if ski else '-'}",
        f"  valid     {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} .. "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}",
        f"  curve     {curve_name(cert.public_key().curve)}",
        f"  usage     {_usage(cert)}",
    ))


def cmd_init(args) -> int:
    dir = Path(args.dir)
    if TestPki.exists(dir):
        pki = TestPki.load(dir)
        if args.curve and pki.curve != args.curve:
            print(f"pki: {dir} exists with curve {pki.curve}, not {args.curve}", file=sys.stderr)
            return 2
        print(f"PKI {dir} exists ({pki.curve})")
    else:
        pki = TestPki.create(dir, args.name, curve=args.curve or "P-256")
        print(f"PKI {dir} created ({pki.curve})")
    names = [*([args.gateway] if args.gateway else []), *(args.emt or []),
             *([args.gwa] if args.gwa else [])]
    for name in names:
        if pki.has_triple(name):
            print(f"  {name}: exists, kept")
        else:
            pki.issue_triple(name)
            print(f"  {name}: issued {', '.join(f'{name}/{r}.crt.pem' for r in ROLES)}")
    return 0


def cmd_show(args) -> int:
    dir = Path(args.dir)
    if not TestPki.exists(dir):
        print(f"pki: {dir} holds no PKI (no root.crt.pem)", file=sys.stderr)
        return 2
    print(describe("root.crt.pem", load_cert(dir / "root.crt.pem")))
    if (dir / "sub-ca.crt.pem").exists():
        print(describe("sub-ca.crt.pem", load_cert(dir / "sub-ca.crt.pem")))
    for sub in sorted(p for p in dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for cert_file in sorted(sub.glob("*.crt.pem")):
            print(describe(f"{sub.name}/{cert_file.name}", load_cert(cert_file)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pki.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init", help="create the PKI (if missing) and issue triples")
    i.add_argument("dir")
    i.add_argument("--gateway", metavar="ID", help="gateway id, e.g. EOPN0000000001")
    i.add_argument("--emt", metavar="NAME", action="extend", nargs="+",
                   help="EMT name(s); repeatable")
    i.add_argument("--gwa", metavar="NAME", help="GWA name")
    i.add_argument("--curve", choices=list(CURVES), default=None,
                   help="curve of a new PKI (default P-256)")
    i.add_argument("--name", default="SMGW Test-PKI", help="organisation name of a new PKI")
    i.set_defaults(func=cmd_init)
    s = sub.add_parser("show", help="print the certificates of a PKI directory")
    s.add_argument("dir")
    s.set_defaults(func=cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PkiError as e:
        print(f"pki: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
