"""HTTP Digest access authentication, server side (RFC 7616), as the HAN clients speak it.

Only ``qop="auth"``; algorithms MD5 and SHA-256 (and their ``-sess`` variants, derived from the
same stored HA1). The server never keeps passwords: an account stores ``HA1 = H(user:realm:
password)`` per algorithm (:func:`ha1`), so the realm is fixed when the password is set.

Field notes from the clients (../shared/design/han-clients.md §A.2, §B.2, §B.3), which is why
this verifier is tolerant where RFC 7616 leaves room:

* node-red splits the challenge on commas and cuts after the last ``="``: every parameter of
  the challenge is double-quoted (``algorithm`` is a token and comes last but one), nothing
  contains a comma, ``qop`` is exactly ``"auth"``. Its answer has no spaces after commas and a
  quoted ``qop``.
* httpx, Go and .NET answer ``qop=auth`` unquoted with spaces after commas; aiohttp reads only
  the first ``WWW-Authenticate`` header (so the safest challenge is exactly one header).
* Some clients keep one nonce for a whole session and count ``nc`` up; others (curl
  ``--digest``, TRON4R) do a fresh handshake for every request. Both work: a nonce is valid
  until its lifetime ends, and any ``nc`` not used before with that nonce is accepted.
* ha-ppc-smgw's Theben client answers with MD5 whatever the challenge announced: the response is
  checked with the algorithm the *client* names, as long as an HA1 for it exists.
* httpx following the M2M root's 307 re-sends the same ``Authorization`` (uri of the root, same
  nonce and nc) to the new location: :meth:`DigestVerifier.verify` accepts exactly one such
  replay when the earlier use named one of the face's ``uri_paths``.
* An expired nonce (or one from before a restart: the signing key is per process) with an
  otherwise correct response is answered with ``stale=true``, so clients retry without asking
  the user again. Real PPC firmware answers 200 with an empty page instead; every client
  re-authenticates on a 401.

Nonces are stateless until used: ``base64url(time ‖ random ‖ HMAC-SHA-256(key, time ‖ random))``
where time is the verifier's clock. Only a successfully verified nonce gets state (the ``nc``
values seen), bounded in count and pruned when the nonce expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = [
    "ALGORITHMS",
    "DigestError",
    "DigestVerifier",
    "Outcome",
    "canonical_algorithm",
    "ha1",
    "parse_authorization",
    "request_digest",
]

#: the base algorithms an account stores an HA1 for, in the order we prefer them
ALGORITHMS: tuple[str, ...] = ("MD5", "SHA-256")
_HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_ALIASES = {"MD5": "MD5", "SHA-256": "SHA-256", "SHA256": "SHA-256"}

MAX_HEADER = 4096           # bytes of an Authorization header we parse at all
_TOKEN_END = set(' \t=,"')
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}\Z")
_REALM_RE = re.compile(r'[^",\\\x00-\x1f\x7f]+\Z')


class DigestError(ValueError):
    """The client's Authorization header is malformed or asks for something we do not do."""


def canonical_algorithm(name: str | None) -> tuple[str, bool]:
    """``(base, sess)`` for an ``algorithm`` value; absent means MD5 (RFC 7616 §3.3).
    Accepts the spellings clients use (case-insensitive, ``SHA256``)."""
    if name is None or name == "":
        return "MD5", False
    n = name.strip().upper()
    sess = n.endswith("-SESS")
    if sess:
        n = n[:-5]
    base = _ALIASES.get(n)
    if base is None:
        raise DigestError(f"algorithm {name!r} is not supported (MD5, SHA-256, with or "
                          "without -sess)")
    return base, sess


def _h(alg: str, text: str) -> str:
    return _HASH[alg](text.encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)`` in lower-case hex: what an account stores."""
    base, _ = canonical_algorithm(algorithm)
    return _h(base, f"{username}:{realm}:{password}")


def request_digest(algorithm: str, stored_ha1: str, *, nonce: str, nc: str, cnonce: str,
                   method: str, uri: str, qop: str = "auth") -> str:
    """The ``response`` value for ``qop=auth`` (RFC 7616 §3.4.1), from the stored HA1."""
    base, sess = canonical_algorithm(algorithm)
    a1 = stored_ha1.lower()
    if sess:
        a1 = _h(base, f"{a1}:{nonce}:{cnonce}")
    ha2 = _h(base, f"{method}:{uri}")
    return _h(base, f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a ``Digest`` credentials header, keys lower-case.

    Tolerant of what clients send: quoted or unquoted values, with or without spaces around
    ``=`` and after commas, commas inside quoted strings, backslash escapes, empty list
    elements. ``username*`` (RFC 5987 encoding) is decoded into ``username``. Raises
    :class:`DigestError` for another scheme, a repeated or unterminated parameter."""
    if len(value) > MAX_HEADER:
        raise DigestError(f"Authorization header longer than {MAX_HEADER} characters")
    s = value.strip()
    scheme, _, rest = s.partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest Authorization header (scheme {scheme[:20]!r})")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and rest[j] not in _TOKEN_END:
            j += 1
        key = rest[i:j].lower()
        if not key:
            raise DigestError(f"Authorization: parameter name expected at position {i}")
        while j < n and rest[j] in " \t":
            j += 1
        if j >= n or rest[j] != "=":
            raise DigestError(f"Authorization: parameter {key!r} has no value")
        j += 1
        while j < n and rest[j] in " \t":
            j += 1
        if j < n and rest[j] == '"':
            j += 1
            out = []
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(rest[j])
                j += 1
            if j >= n:
                raise DigestError(f"Authorization: quoted value of {key!r} is not terminated")
            val = "".join(out)
            j += 1
        else:
            k = j
            while j < n and rest[j] != ",":
                j += 1
            val = rest[k:j].strip()
        if key in params:
            raise DigestError(f"Authorization: parameter {key!r} given twice")
        params[key] = val
        i = j
    if "username*" in params:
        if "username" in params:
            raise DigestError("Authorization: both username and username* given")
        params["username"] = _ext_value(params.pop("username*"))
    return params


def _ext_value(v: str) -> str:
    # RFC 5987: charset'language'percent-encoded
    parts = v.split("'", 2)
    if len(parts) != 3 or parts[0].upper() not in ("UTF-8", "ISO-8859-1"):
        raise DigestError("Authorization: username* is not charset'lang'value encoded")
    enc = "utf-8" if parts[0].upper() == "UTF-8" else "latin-1"
    try:
        return unquote(parts[2], encoding=enc, errors="strict")
    except UnicodeDecodeError:
        raise DigestError("Authorization: username* is not valid in its charset") from None


def _path_of(uri: str) -> str:
    # the path of a request-target as clients put it into `uri` (origin or absolute form)
    if uri.startswith("/"):
        return uri.split("?", 1)[0].split("#", 1)[0]
    try:
        return urlsplit(uri).path or "/"
    except ValueError:
        return uri


@dataclass(frozen=True)
class Outcome:
    """What :meth:`DigestVerifier.verify` decided.

    ``status``: ``ok``; ``stale`` (right password, nonce expired or from an earlier run:
    challenge again with ``stale=true``); ``replay`` (this nc was used with this nonce already:
    challenge again, not a failed login); ``wrong`` (the response does not match: a failed
    login); ``unknown-user``; ``invalid`` (malformed or not what we offer: challenge again).
    """

    status: str
    username: str | None = None
    algorithm: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class _NonceUse:
    issued_ms: int
    max_nc: int = 0
    # nc -> [path the digest named, when, replays accepted]
    seen: dict[int, list] = field(default_factory=dict)


class DigestVerifier:
    """Challenges and verifies Digest credentials for one realm.

    ``clock_ms`` is a monotonic millisecond clock (injectable for tests); ``lifetime_s`` how
    long a nonce may be used after it was issued; ``nc_window`` how many nc values per nonce
    are remembered (an nc further back than that counts as a replay)."""

    def __init__(self, realm: str, *, lifetime_s: float = 600.0,
                 clock_ms: Callable[[], int] | None = None, key: bytes | None = None,
                 max_nonces: int = 10_000, nc_window: int = 256,
                 redirect_replay_s: float = 60.0) -> None:
        if not _REALM_RE.match(realm or ""):
            raise ValueError(f"realm {realm!r} must be non-empty, without quotes, commas, "
                             "backslashes or control characters")
        if lifetime_s <= 0:
            raise ValueError(f"lifetime_s must be positive, not {lifetime_s!r}")
        self.realm = realm
        self.lifetime_ms = int(lifetime_s * 1000)
        self.clock_ms = clock_ms or (lambda: time.monotonic_ns() // 1_000_000)
        self._key = key or os.urandom(32)
        self.max_nonces = max_nonces
        self.nc_window = nc_window
        self.redirect_replay_ms = int(redirect_replay_s * 1000)
        self._uses: OrderedDict[str, _NonceUse] = OrderedDict()
        self._last_prune = 0

    # ------------------------------------------------------------------ nonces

    def new_nonce(self) -> str:
        t = int(self.clock_ms())
        body = t.to_bytes(8, "big", signed=True) + os.urandom(10)
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:15]
        return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")

    def _nonce_state(self, nonce: str) -> tuple[str, int | None]:
        """("ok" | "stale" | "foreign", issued_ms)."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return "foreign", None
        if len(raw) != 33:
            return "foreign", None
        body, mac = raw[:18], raw[18:]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:15]):
            return "foreign", None
        issued = int.from_bytes(body[:8], "big", signed=True)
        now = int(self.clock_ms())
        if issued > now + 1000:
            return "foreign", None
        if now - issued > self.lifetime_ms:
            return "stale", issued
        return "ok", issued

    def challenge(self, algorithms: Sequence[str] = ("MD5",), *, stale: bool = False
                  ) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm in the given order (one fresh nonce
        for all). Every parameter except the ``algorithm``/``stale`` tokens is quoted and
        nothing contains a comma (node-red)."""
        if not algorithms:
            raise ValueError("at least one algorithm must be offered")
        nonce = self.new_nonce()
        out = []
        for a in algorithms:
            base, sess = canonical_algorithm(a)
            name = base + ("-sess" if sess else "")
            v = f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm={name}'
            if stale:
                v += ", stale=true"
            out.append(v)
        return out

    # ------------------------------------------------------------------ verification

    def verify(self, method: str, params: dict[str, str],
               ha1_of: Callable[[str, str], str | None], request_path: str,
               uri_paths: Collection[str] = ()) -> Outcome:
        """Check parsed credentials (:func:`parse_authorization`) of a request with
        ``method`` to ``request_path``. ``ha1_of(username, base_algorithm)`` gives the stored
        HA1 or None. ``uri_paths``: further paths the ``uri`` may name (a redirect root whose
        credentials clients carry along, see the module doc)."""
        self._maybe_prune()
        for k in ("username", "realm", "nonce", "uri", "response"):
            if not params.get(k):
                return Outcome("invalid", params.get("username"), detail=f"{k} missing")
        user = params["username"]
        if params["realm"] != self.realm:
            return Outcome("invalid", user, detail=f"realm {params['realm']!r} is not ours")
        qop = params.get("qop")
        if qop is None:
            return Outcome("invalid", user, detail='qop missing (only qop="auth" is offered)')
        if qop.strip().lower() != "auth":
            return Outcome("invalid", user, detail=f"qop {qop!r} is not offered (auth only)")
        if params.get("userhash", "false").lower() == "true":
            return Outcome("invalid", user, detail="userhash is not offered")
        try:
            base, sess = canonical_algorithm(params.get("algorithm"))
        except DigestError as e:
            return Outcome("invalid", user, detail=str(e))
        alg = base + ("-sess" if sess else "")
        nc_text, cnonce = params.get("nc", ""), params.get("cnonce", "")
        if not _NC_RE.match(nc_text) or int(nc_text, 16) == 0:
            return Outcome("invalid", user, alg, f"nc {nc_text!r} is not 8 hex digits > 0")
        if not cnonce:
            return Outcome("invalid", user, alg, "cnonce missing")
        uri = params["uri"]
        named = unquote(_path_of(uri))
        request_path = unquote(request_path)
        uri_paths = {unquote(u) for u in uri_paths}
        if named != request_path and named not in uri_paths:
            return Outcome("invalid", user, alg,
                           f"uri {uri!r} does not name the requested path {request_path!r}")
        stored = ha1_of(user, base)
        if stored is None:
            return Outcome("unknown-user", user, alg, "no such account or no password for "
                           f"{base}")
        expect = request_digest(alg, stored, nonce=params["nonce"], nc=nc_text, cnonce=cnonce,
                                method=method, uri=uri, qop="auth")
        if not hmac.compare_digest(expect, params["response"].strip().lower()):
            return Outcome("wrong", user, alg, "response does not match")
        state, issued = self._nonce_state(params["nonce"])
        if state != "ok":
            return Outcome("stale", user, alg, "nonce expired" if state == "stale"
                           else "nonce not issued by this server run")
        return self._count(params["nonce"], issued, int(nc_text, 16), named, request_path,
                           uri_paths, user, alg)

    def _count(self, nonce: str, issued: int, nc: int, named: str, request_path: str,
               uri_paths: Collection[str], user: str, alg: str) -> Outcome:
        now = int(self.clock_ms())
        use = self._uses.get(nonce)
        if use is None:
            use = _NonceUse(issued)
            self._uses[nonce] = use
            while len(self._uses) > self.max_nonces:
                self._uses.popitem(last=False)
        else:
            self._uses.move_to_end(nonce)
        prev = use.seen.get(nc)
        if prev is not None:
            first_path, first_ms, replays = prev
            # the redirect quirk: the same credentials, first for the root, now for the
            # location the root redirected to -- once, soon after
            if (first_path in uri_paths and request_path != first_path and replays == 0
                    and now - first_ms <= self.redirect_replay_ms):
                prev[2] = 1
                return Outcome("ok", user, alg, "credentials carried over a redirect")
            return Outcome("replay", user, alg, f"nc {nc:08x} was used with this nonce before")
        if nc <= use.max_nc - self.nc_window:
            return Outcome("replay", user, alg, f"nc {nc:08x} is too far behind")
        use.seen[nc] = [named, now, 0]
        use.max_nc = max(use.max_nc, nc)
        if len(use.seen) > self.nc_window:
            floor = use.max_nc - self.nc_window
            for k in [k for k in use.seen if k <= floor]:
                del use.seen[k]
        return Outcome("ok", user, alg)

    def _maybe_prune(self) -> None:
        now = int(self.clock_ms())
        if now - self._last_prune < 10_000:
            return
        self._last_prune = now
        for nonce in [k for k, u in self._uses.items() if now - u.issued_ms > self.lifetime_ms]:
            del self._uses[nonce]

    def tracked_nonces(self) -> int:
        """How many nonces have state (for status and tests)."""
        return len(self._uses)
