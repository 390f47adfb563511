"""Host software integrity: a signed manifest of the installed host package.

An open project cannot ship a vendor-signed manifest: whoever builds the gateway builds it from
source, and no vendor key exists that the gateway could trust. So the gateway *seals its own
installation*: at its first start, and after every authorised update, it records the SHA-256 of
every ``.py`` file of the ``smgw`` package and the identity of the firmware release manifest
(``firmware/release.json``) and signs that record with its own key. From then on the self-test
(ST-SW) detects every change: a changed, missing or added file, a different firmware release,
an edited manifest, a bad signature.

What this does not protect against: an attacker who can use the gateway's signing key can also
re-seal. Keeping the key in a security module (which only signs on the gateway's behalf) is
what closes that gap; the signer is an argument for that reason.

    seal(data_dir, signer)              # writes software-manifest.json (manifest + signature)
    verify(data_dir, verifier) -> Check # ST-SW / ST-SW-SIG / ST-SW-NOSEAL

``signer.sign(data) -> bytes`` and ``verifier.verify(signature, data)`` (raises, or returns
False, when the signature is bad) are duck-typed, so the logbook's signing key can be passed;
:class:`EcdsaKey` is a plain ECDSA key with that interface.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import smgw
from smgw.fileio import atomic_write
from smgw.opstate import Cause
from smgw.selftest.checks import Check

MANIFEST_NAME = "software-manifest.json"
FORMAT = 1
PACKAGE = "smgw"


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, signature: bytes, data: bytes) -> Any: ...


class EcdsaKey:
    """An ECDSA key (brainpoolP256r1, SHA-256) with ``sign``/``verify``; a public key only
    verifies."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> EcdsaKey:
        return cls(ec.generate_private_key(ec.BrainpoolP256R1()))

    def public(self) -> EcdsaKey:
        key = self._key
        return EcdsaKey(key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey)
                        else key)

    def sign(self, data: bytes) -> bytes:
        if not isinstance(self._key, ec.EllipticCurvePrivateKey):
            raise TypeError("a public key cannot sign")
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, signature: bytes, data: bytes) -> None:
        pub = self.public()._key
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def package_dir() -> Path:
    """The directory of the installed ``smgw`` package (host/smgw in a checkout)."""
    return Path(smgw.__file__).resolve().parent


def default_release_manifest() -> Path | None:
    from smgw.firmware.ident import IdentError
    from smgw.firmware.manifest import manifest_path
    try:
        return manifest_path()
    except IdentError:
        return None


def file_hashes(pkg: Path) -> dict[str, str]:
    """``{"smgw/<relative path>": sha256}`` of every ``.py`` file below ``pkg``."""
    out: dict[str, str] = {}
    for p in sorted(pkg.rglob("*.py")):
        if "__pycache__" in p.parts or not p.is_file():
            continue
        rel = f"{PACKAGE}/{p.relative_to(pkg).as_posix()}"
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def release_identity(path: Path | None) -> dict[str, Any] | None:
    """The firmware release manifest's id and the SHA-256 of the file (None: no file)."""
    if path is None or not path.exists():
        return None
    raw = path.read_bytes()
    try:
        fid = json.loads(raw).get("firmware_id")
    except (ValueError, AttributeError):
        fid = None
    return {"firmware_id": fid, "sha256": hashlib.sha256(raw).hexdigest()}


def build(pkg: Path | None = None, release_manifest: Path | None = None, *,
          sealed_ms: int | None = None) -> dict[str, Any]:
    pkg = pkg or package_dir()
    rel = release_manifest if release_manifest is not None else default_release_manifest()
    return {
        "format": FORMAT,
        "package": PACKAGE,
        "version": smgw.VERSION,
        "sealed_ms": sealed_ms,
        "files": file_hashes(pkg),
        "firmware_release": release_identity(rel),
    }


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, ASCII only."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def is_sealed(directory: Path | str) -> bool:
    return (Path(directory) / MANIFEST_NAME).exists()


def seal(directory: Path | str, signer: Signer, *, pkg: Path | None = None,
         release_manifest: Path | None = None,
         clock: Callable[[], float] = time.time) -> Path:
    """Records and signs the installation; call at the first start and after an authorised
    update only (sealing over a tampered installation would make the tampering "genuine")."""
    manifest = build(pkg, release_manifest, sealed_ms=int(clock() * 1000))
    sig = signer.sign(canonical(manifest))
    doc = {"manifest": manifest, "signature": bytes(sig).hex()}
    path = Path(directory) / MANIFEST_NAME
    atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    return path


def _signature_ok(verifier: Verifier, sig: bytes, data: bytes) -> bool:
    try:
        return verifier.verify(sig, data) is not False
    except (InvalidSignature, ValueError, TypeError):
        return False


def verify(directory: Path | str, verifier: Verifier, *, pkg: Path | None = None,
           release_manifest: Path | None = None) -> Check:
    """ST-SW-NOSEAL (no manifest), ST-SW-SIG (unreadable or badly signed manifest), ST-SW
    (the installation differs: changed/missing/extra files, another firmware release)."""
    t0 = time.perf_counter()

    def done(code: str, ok: bool, detail: str, data: dict[str, Any] | None = None) -> Check:
        return Check(code, ok, detail, None if ok else Cause.SOFTWARE_INTEGRITY,
                     (time.perf_counter() - t0) * 1000, data or {})

    path = Path(directory) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return done("ST-SW-NOSEAL", False, f"{path} missing: the installation is not sealed")
    except OSError as e:
        return done("ST-SW-SIG", False, f"cannot read {path}: {e}")
    try:
        doc = json.loads(raw)
        manifest = doc["manifest"]
        sig = bytes.fromhex(doc["signature"])
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"not a software manifest of format {FORMAT}")
    except (ValueError, KeyError, TypeError) as e:
        return done("ST-SW-SIG", False, f"{path} is damaged: {e}")
    if not _signature_ok(verifier, sig, canonical(manifest)):
        return done("ST-SW-SIG", False, f"the signature of {path} is not valid")

    now = build(pkg, release_manifest)
    sealed_files: dict[str, str] = manifest.get("files") or {}
    files = now["files"]
    changed = sorted(f for f in sealed_files if f in files and files[f] != sealed_files[f])
    missing = sorted(f for f in sealed_files if f not in files)
    extra = sorted(f for f in files if f not in sealed_files)
    release_changed = manifest.get("firmware_release") != now["firmware_release"]
    data = {k: v for k, v in (("changed", changed), ("missing", missing), ("extra", extra))
            if v}
    if release_changed:
        data["firmware_release"] = {"sealed": manifest.get("firmware_release"),
                                    "now": now["firmware_release"]}
    if data:
        parts = [f"{len(v)} {k} ({', '.join(v[:5])}{', ...' if len(v) > 5 else ''})"
                 for k, v in data.items() if isinstance(v, list)]
        if release_changed:
            parts.append("the firmware release manifest differs")
        return done("ST-SW", False, "host software differs from the sealed installation: "
                    + "; ".join(parts), data)
    return done("ST-SW", True, f"{len(files)} files match the installation sealed at "
                f"{manifest.get('sealed_ms')}")
