"""Evaluation profiles (Auswerteprofile) and communication profiles, read from TOML.

An **evaluation profile** binds meter channels to a tariff application case (TAF), a validity
interval, a registration period, billing periods, tariff stages with switching times (TAF 2),
recipients and sending rules. A **communication profile** names an external market participant
(EMT): where to push to and its certificate triple. The file format, every key and every rule are
in docs/tariffs.md; ``examples/profiles/`` has one file per TAF.

Layout (``[profile]`` holds the scalar settings, arrays of tables the lists)::

    [profile]
    kind = "evaluation"            # or "communication"
    name = "taf2-ht-nt"
    taf = 2
    ...
    [[channels]]   meter, obis, sign
    [[stages]]     number, name                       (TAF 2)
    [[switching]]  days, time, stage                  (TAF 2)
    [[special_days]] date, day                        (TAF 2)
    [[sending]]    trigger, period_s, offset_s, channel, above, below

Validation is strict: unknown keys are errors (with a suggestion), types are exact (``true`` is
not an integer), every problem is collected and reported at once, and each message starts with
the dotted key it is about (``stages[1].number: ...``; list indices count from 0).
:class:`ProfileError` carries the first key in ``.key`` and all problems in ``.errors``.

``to_json()`` returns the same document shape as the TOML file (times as ISO 8601 strings with
offset, certificate files inlined as PEM) and ``from_json()`` validates it again, so a stored
profile round-trips exactly.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from smgw.tariff.model import ERROR_STAGE
from smgw.tariff.periods import DAY_MS, iso, months_of, zone

DAY_TYPES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
WEEKDAYS: tuple[str, ...] = DAY_TYPES[:7]
DAY_ALIASES: dict[str, tuple[str, ...]] = {
    "all": DAY_TYPES,
    "weekdays": ("mon", "tue", "wed", "thu", "fri"),
    "weekend": ("sat", "sun"),
}
TAFS: tuple[int, ...] = (1, 2, 6, 7, 9, 10, 14)
BILLING_TAFS: tuple[int, ...] = (1, 2, 6, 7)
AGGREGATING_TAFS: tuple[int, ...] = (9, 10, 14)
AGGREGATIONS: tuple[str, ...] = ("min", "max", "mean")
TRIGGERS: tuple[str, ...] = ("periodic", "on-demand", "threshold", "adhoc")
ALLOWED_TRIGGERS: dict[int, tuple[str, ...]] = {
    1: ("periodic", "on-demand"),
    2: ("periodic", "on-demand"),
    6: ("on-demand",),
    7: ("periodic", "on-demand"),
    9: ("periodic", "on-demand", "threshold"),
    10: ("periodic", "on-demand", "threshold"),
    14: ("periodic", "adhoc", "threshold"),
}
MAX_STAGE = 20
TAF6_RETENTION_DAYS = 42

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_METER = re.compile(r"^(?:[0-9a-f]{2}){1,32}$")
_OBIS = re.compile(r"^(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ProfileError(ValueError):
    """A profile that cannot be used: the fault of whoever wrote it. ``key`` is the dotted key of
    the first problem, ``errors`` lists every ``(key, message)``; ``str()`` gives one line per
    problem, each ``key: message``."""

    def __init__(self, key: str, message: str = "",
                 errors: list[tuple[str, str]] | None = None, source: str | None = None):
        self.errors: list[tuple[str, str]] = errors if errors else [(key, message)]
        self.key: str = self.errors[0][0]
        self.source = source
        lines = [f"{k}: {m}" if k else m for k, m in self.errors]
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + ("\n" + prefix).join(lines))


# ------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Channel:
    """One meter channel the profile works on; ``sign`` (TAF 1 only) adds or subtracts it."""

    meter: str
    obis: str
    sign: int = 1


@dataclass(frozen=True)
class Stage:
    """A tariff stage (TAF 2): register ``1-0:C.D.<number>``; 63 is the error register."""

    number: int
    name: str


@dataclass(frozen=True)
class SwitchPoint:
    """From ``time`` (local wall clock) on the listed day types, ``stage`` applies."""

    days: frozenset[str]
    time: dt.time
    stage: int

    @property
    def seconds(self) -> int:
        return self.time.hour * 3600 + self.time.minute * 60 + self.time.second


@dataclass(frozen=True)
class SpecialDay:
    """Treat ``date`` as day type ``day`` (typically "holiday" or "sun")."""

    date: dt.date
    day: str


@dataclass(frozen=True)
class Sending:
    """When values go to the recipients (docs/tariffs.md, "Sending")."""

    trigger: str
    period_s: int | None = None
    offset_s: int = 0
    channel: int | None = None
    above: int | None = None
    below: int | None = None


@dataclass(frozen=True)
class EvaluationProfile:
    name: str
    taf: int
    usage_point: str
    consumer: str
    supplier: str
    recipients: tuple[str, ...]
    channels: tuple[Channel, ...]
    valid_from_ms: int
    valid_until_ms: int | None
    timezone: str = "Europe/Berlin"
    registration_period_s: int = 900
    billing_period: str | None = "month"
    stages: tuple[Stage, ...] = ()
    switching: tuple[SwitchPoint, ...] = ()
    special_days: tuple[SpecialDay, ...] = ()
    sending: tuple[Sending, ...] = ()
    aggregation: tuple[str, ...] = ()
    pseudonym: str | None = None
    retention_days: int | None = None

    kind: ClassVar[str] = "evaluation"

    @property
    def billing_relevant(self) -> bool:
        return self.taf in BILLING_TAFS

    def valid_at(self, t_ms: int) -> bool:
        """Is the profile in force at ``t_ms`` (``valid_from <= t < valid_until``)?"""
        return self.valid_from_ms <= t_ms and (self.valid_until_ms is None
                                               or t_ms < self.valid_until_ms)

    def stage(self, number: int) -> Stage | None:
        return next((s for s in self.stages if s.number == number), None)

    def to_json(self) -> dict[str, Any]:
        prof: dict[str, Any] = {
            "kind": "evaluation", "name": self.name, "taf": self.taf,
            "usage_point": self.usage_point, "consumer": self.consumer,
            "supplier": self.supplier, "recipients": list(self.recipients),
            "valid_from": iso(self.valid_from_ms, self.timezone),
            "timezone": self.timezone, "registration_period_s": self.registration_period_s,
        }
        if self.valid_until_ms is not None:
            prof["valid_until"] = iso(self.valid_until_ms, self.timezone)
        if self.billing_period is not None:
            prof["billing_period"] = self.billing_period
        if self.aggregation:
            prof["aggregation"] = list(self.aggregation)
        if self.pseudonym is not None:
            prof["pseudonym"] = self.pseudonym
        if self.retention_days is not None:
            prof["retention_days"] = self.retention_days
        doc: dict[str, Any] = {"profile": prof, "channels": [
            {"meter": c.meter, "obis": c.obis, "sign": c.sign} for c in self.channels]}
        if self.stages:
            doc["stages"] = [{"number": s.number, "name": s.name} for s in self.stages]
        if self.switching:
            doc["switching"] = [{"days": [d for d in DAY_TYPES if d in sp.days],
                                 "time": _fmt_time(sp.time), "stage": sp.stage}
                                for sp in self.switching]
        if self.special_days:
            doc["special_days"] = [{"date": sd.date.isoformat(), "day": sd.day}
                                   for sd in self.special_days]
        if self.sending:
            doc["sending"] = [_sending_json(s) for s in self.sending]
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvaluationProfile:
        p = _build(d, source=None, base_dir=None)
        if not isinstance(p, EvaluationProfile):
            raise ProfileError("profile.kind", "expected an evaluation profile, got "
                                               "a communication profile")
        return p

    def billing_parameters(self) -> dict[str, str]:
        """The calibration-relevant parameters as text (what log 10023 reports when one
        changes). Empty for profiles that are not billing relevant (TAF 9/10/14)."""
        if not self.billing_relevant:
            return {}
        out = {
            "taf": str(self.taf),
            "channels": "; ".join(f"{c.meter} {c.obis}" + (" (-)" if c.sign < 0 else "")
                                  for c in self.channels),
            "valid_from": iso(self.valid_from_ms, self.timezone),
            "valid_until": (iso(self.valid_until_ms, self.timezone)
                            if self.valid_until_ms is not None else "-"),
            "timezone": self.timezone,
            "registration_period_s": str(self.registration_period_s),
            "billing_period": self.billing_period or "-",
        }
        if self.taf == 2:
            out["stages"] = "; ".join(f"{s.number}={s.name}" for s in self.stages)
            out["switching"] = "; ".join(
                f"{','.join(d for d in DAY_TYPES if d in sp.days)} {_fmt_time(sp.time)}"
                f"={sp.stage}" for sp in self.switching)
            out["special_days"] = "; ".join(f"{sd.date.isoformat()}={sd.day}"
                                            for sd in self.special_days) or "-"
        if self.taf == 6:
            out["retention_days"] = str(self.retention_days)
        return out


@dataclass(frozen=True)
class CommunicationProfile:
    name: str
    url: str
    tls_cert: str
    sig_cert: str
    enc_cert: str
    root: str | None = None
    retry_min_s: int = 5
    retry_max_s: int = 3600
    fail_after: int = 5

    kind: ClassVar[str] = "communication"

    def to_json(self) -> dict[str, Any]:
        prof: dict[str, Any] = {"kind": "communication", "name": self.name, "url": self.url,
                                "tls_cert": self.tls_cert, "sig_cert": self.sig_cert,
                                "enc_cert": self.enc_cert}
        if self.root is not None:
            prof["root"] = self.root
        prof.update(retry_min_s=self.retry_min_s, retry_max_s=self.retry_max_s,
                    fail_after=self.fail_after)
        return {"profile": prof}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CommunicationProfile:
        p = _build(d, source=None, base_dir=None)
        if not isinstance(p, CommunicationProfile):
            raise ProfileError("profile.kind", "expected a communication profile, got "
                                               "an evaluation profile")
        return p


Profile = EvaluationProfile | CommunicationProfile


def profile_from_json(d: dict[str, Any]) -> Profile:
    """Either kind, from the dict ``to_json()`` made."""
    return _build(d, source=None, base_dir=None)


def parse_profile(text: str, source: str = "<text>",
                  base_dir: Path | None = None) -> Profile:
    """Parse and validate one profile from TOML text. ``base_dir`` resolves relative
    ``*_file`` keys of communication profiles (default: the current directory)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError("", f"not valid TOML: {e}", source=source) from None
    return _build(data, source=source, base_dir=base_dir)


def load_profile(path: Path) -> Profile:
    """Read, parse and validate the profile file ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError("", f"cannot read the profile: {e}", source=str(path)) from None
    return parse_profile(text, source=str(path), base_dir=path.parent)


# ------------------------------------------------------------------------------------ parsing

_PROFILE_KEYS_EVAL = ("kind", "name", "taf", "usage_point", "consumer", "supplier",
                      "recipients", "valid_from", "valid_until", "timezone",
                      "registration_period_s", "billing_period", "retention_days",
                      "pseudonym", "aggregation")
_PROFILE_KEYS_COMM = ("kind", "name", "url", "tls_cert", "tls_cert_file", "sig_cert",
                      "sig_cert_file", "enc_cert", "enc_cert_file", "root", "root_file",
                      "retry_min_s", "retry_max_s", "fail_after")
_TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "channels": ("meter", "obis", "sign"),
    "stages": ("number", "name"),
    "switching": ("days", "time", "stage"),
    "special_days": ("date", "day"),
    "sending": ("trigger", "period_s", "offset_s", "channel", "above", "below"),
}
_ALL_KEYS: dict[str, str] = {}
for _t, _ks in _TABLE_KEYS.items():
    for _k in _ks:
        _ALL_KEYS.setdefault(_k, f"{_t}[].{_k}")
for _k in _PROFILE_KEYS_EVAL + _PROFILE_KEYS_COMM:
    _ALL_KEYS.setdefault(_k, f"profile.{_k}")
_MISSING = object()


def _suggest(name: str, prefix: str, candidates: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f" (did you mean '{prefix}{close[0]}'?)"
    elsewhere = _ALL_KEYS.get(name)
    if elsewhere:
        return f" (it belongs in {elsewhere})"
    return ""


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {v}"
    if isinstance(v, str):
        return f"string {v!r}"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


class _Ctx:
    """Collects problems while reading one document."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def err(self, key: str, msg: str) -> None:
        self.errors.append((key, msg))

    def keys(self, table: dict[str, Any], prefix: str, allowed: tuple[str, ...]) -> None:
        for k in table:
            if k not in allowed:
                self.err(f"{prefix}{k}", "unknown key" + _suggest(k, prefix, allowed))

    def str_(self, t: dict[str, Any], key: str, prefix: str, *, required: bool = True,
             pattern: re.Pattern[str] | None = None, what: str = "",
             max_len: int = 256) -> str | None:
        v = t.get(key, _MISSING)
        if v is _MISSING:
            if required:
                self.err(prefix + key, "missing (required)")
            return None
        if not isinstance(v, str):
            self.err(prefix + key, f"must be a string, got {_type_name(v)}")
            return None
        if not v.strip():
            self.err(prefix + key, "must not be empty")
            return None
        if len(v) > max_len:
            self.err(prefix + key, f"longer than {max_len} characters")
            return None
        if pattern is not None and not pattern.match(v):
            self.err(prefix + key, f"{v!r} is not {what}")
            return None
        return v

    def int_(self, t: dict[str, Any], key: str, prefix: str, *, required: bool = False,
             lo: int | None = None, hi: int | None = None) -> int | None:
        v = t.get(key, _MISSING)
        if v is _MISSING:
            if required:
                self.err(prefix + key, "missing (required)")
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(prefix + key, f"must be an integer, got {_type_name(v)}")
            return None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = (f"between {lo} and {hi}" if lo is not None and hi is not None
                   else f"at least {lo}" if lo is not None else f"at most {hi}")
            self.err(prefix + key, f"must be {rng}, got {v}")
            return None
        return v

    def str_list(self, t: dict[str, Any], key: str, prefix: str, *,
                 required: bool = False) -> list[str] | None:
        v = t.get(key, _MISSING)
        if v is _MISSING:
            if required:
                self.err(prefix + key, "missing (required)")
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.err(prefix + key, f"must be an array of strings, got {_type_name(v)}")
            return None
        return list(v)

    def tables(self, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
        v = doc.get(key, _MISSING)
        if v is _MISSING:
            return []
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            self.err(key, f"must be an array of tables ([[{key}]]), got {_type_name(v)}")
            return []
        return v


def _instant(ctx: _Ctx, t: dict[str, Any], key: str, prefix: str, *,
             required: bool) -> int | None:
    v = t.get(key, _MISSING)
    if v is _MISSING:
        if required:
            ctx.err(prefix + key, "missing (required)")
        return None
    if isinstance(v, str):
        try:
            d = dt.datetime.fromisoformat(v)
        except ValueError:
            ctx.err(prefix + key, f"{v!r} is not an ISO 8601 date and time "
                                  f"(e.g. 2026-01-01T00:00:00+01:00)")
            return None
    elif isinstance(v, dt.datetime):
        d = v
    else:
        ctx.err(prefix + key, f"must be a date and time with offset, got {_type_name(v)}")
        return None
    if d.tzinfo is None or d.utcoffset() is None:
        ctx.err(prefix + key, f"{v!s} has no UTC offset (write e.g. "
                              f"{d.isoformat()}+01:00); local times are ambiguous")
        return None
    return (d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        milliseconds=1)


def _time(ctx: _Ctx, t: dict[str, Any], key: str, prefix: str) -> dt.time | None:
    v = t.get(key, _MISSING)
    if v is _MISSING:
        ctx.err(prefix + key, "missing (required)")
        return None
    if isinstance(v, dt.time):
        if v.tzinfo is not None or v.microsecond:
            ctx.err(prefix + key, "must be a local time of day in whole seconds")
            return None
        return v
    if isinstance(v, str):
        m = _TIME.match(v)
        if m:
            return dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    ctx.err(prefix + key, f"must be a local time of day \"HH:MM\" or \"HH:MM:SS\", "
                          f"got {_type_name(v)}")
    return None


def _date(ctx: _Ctx, t: dict[str, Any], key: str, prefix: str) -> dt.date | None:
    v = t.get(key, _MISSING)
    if v is _MISSING:
        ctx.err(prefix + key, "missing (required)")
        return None
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str) and _DATE.match(v):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    ctx.err(prefix + key, f"must be a date \"YYYY-MM-DD\", got {_type_name(v)}")
    return None


def _fmt_time(t: dt.time) -> str:
    return t.strftime("%H:%M") if t.second == 0 else t.strftime("%H:%M:%S")


def _sending_json(s: Sending) -> dict[str, Any]:
    d: dict[str, Any] = {"trigger": s.trigger}
    if s.period_s is not None:
        d["period_s"] = s.period_s
    if s.trigger == "periodic":
        d["offset_s"] = s.offset_s
    for k in ("channel", "above", "below"):
        if getattr(s, k) is not None:
            d[k] = getattr(s, k)
    return d


def _build(doc: Any, *, source: str | None, base_dir: Path | None) -> Profile:
    ctx = _Ctx()
    if not isinstance(doc, dict):
        raise ProfileError("", "a profile is a TOML document / JSON object", source=source)
    prof = doc.get("profile")
    if not isinstance(prof, dict):
        raise ProfileError("profile", "missing the [profile] table" if prof is None
                           else f"must be a table, got {_type_name(prof)}", source=source)
    kind = prof.get("kind", _MISSING)
    if kind not in ("evaluation", "communication"):
        msg = ("missing (required): \"evaluation\" or \"communication\"" if kind is _MISSING
               else f"must be \"evaluation\" or \"communication\", got {_type_name(kind)}")
        raise ProfileError("profile.kind", msg, source=source)
    if kind == "communication":
        ctx.keys(doc, "", ("profile",))
        p: Profile | None = _build_communication(ctx, prof, base_dir)
    else:
        ctx.keys(doc, "", ("profile",) + tuple(_TABLE_KEYS))
        p = _build_evaluation(ctx, doc, prof)
    if ctx.errors or p is None:
        raise ProfileError("", errors=ctx.errors or [("", "invalid profile")], source=source)
    return p


def _build_communication(ctx: _Ctx, prof: dict[str, Any],
                         base_dir: Path | None) -> CommunicationProfile | None:
    pre = "profile."
    ctx.keys(prof, pre, _PROFILE_KEYS_COMM)
    name = ctx.str_(prof, "name", pre, pattern=_NAME,
                    what="a profile name (letters, digits, '.', '_', '-'; at most 64)")
    url = ctx.str_(prof, "url", pre, max_len=2048)
    if url is not None:
        u = urlsplit(url)
        try:
            port_ok = u.port is None or 0 < u.port < 65536
        except ValueError:
            port_ok = False
        if u.scheme != "https" or not u.hostname or not port_ok:
            ctx.err(pre + "url", f"{url!r} is not an https:// URL with a host "
                                 f"(e.g. https://emt.example:443/smgw)")
            url = None
    certs: dict[str, str | None] = {}
    for key, required in (("tls_cert", True), ("sig_cert", True), ("enc_cert", True),
                          ("root", False)):
        certs[key] = _certificate(ctx, prof, key, base_dir, required=required)
    rmin = ctx.int_(prof, "retry_min_s", pre, lo=1, hi=86400)
    rmax = ctx.int_(prof, "retry_max_s", pre, lo=1, hi=7 * 86400)
    fail = ctx.int_(prof, "fail_after", pre, lo=1, hi=1000)
    rmin = 5 if rmin is None else rmin
    rmax = 3600 if rmax is None else rmax
    if rmax < rmin:
        ctx.err(pre + "retry_max_s", f"must not be smaller than retry_min_s ({rmin}), "
                                     f"got {rmax}")
    if ctx.errors or name is None or url is None:
        return None
    assert certs["tls_cert"] and certs["sig_cert"] and certs["enc_cert"]
    return CommunicationProfile(name=name, url=url, tls_cert=certs["tls_cert"],
                                sig_cert=certs["sig_cert"], enc_cert=certs["enc_cert"],
                                root=certs["root"], retry_min_s=rmin, retry_max_s=rmax,
                                fail_after=5 if fail is None else fail)


def _certificate(ctx: _Ctx, prof: dict[str, Any], key: str, base_dir: Path | None, *,
                 required: bool) -> str | None:
    pre = "profile."
    inline = key in prof
    file_key = f"{key}_file"
    if inline and file_key in prof:
        ctx.err(pre + key, f"give {key} (PEM text) or {file_key} (a file), not both")
        return None
    if not inline and file_key not in prof:
        if required:
            ctx.err(pre + key, f"missing (required): the PEM text, or {file_key} = a file")
        return None
    if inline:
        pem = ctx.str_(prof, key, pre, max_len=65536)
        where = pre + key
    else:
        fname = ctx.str_(prof, file_key, pre, max_len=4096)
        where = pre + file_key
        if fname is None:
            return None
        path = Path(fname).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        try:
            pem = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            ctx.err(where, f"cannot read {path}: {e}")
            return None
    if pem is None:
        return None
    pem = pem.strip() + "\n"
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as e:
        ctx.err(where, f"not a PEM X.509 certificate ({e})")
        return None
    return pem


def _build_evaluation(ctx: _Ctx, doc: dict[str, Any],
                      prof: dict[str, Any]) -> EvaluationProfile | None:
    pre = "profile."
    ctx.keys(prof, pre, _PROFILE_KEYS_EVAL)
    name = ctx.str_(prof, "name", pre, pattern=_NAME,
                    what="a profile name (letters, digits, '.', '_', '-'; at most 64)")
    taf = ctx.int_(prof, "taf", pre, required=True)
    if taf is not None and taf not in TAFS:
        ctx.err(pre + "taf", f"TAF {taf} is not supported (supported: "
                             f"{', '.join(map(str, TAFS))})")
        taf = None
    usage_point = ctx.str_(prof, "usage_point", pre, max_len=64)
    consumer = ctx.str_(prof, "consumer", pre, pattern=_CONSUMER,
                        what="a consumer id (letters, digits, '.', '_', '-'; at most 32)")
    supplier = ctx.str_(prof, "supplier", pre)
    recipients = ctx.str_list(prof, "recipients", pre, required=True)
    if recipients is not None:
        if not recipients:
            ctx.err(pre + "recipients", "must name at least one communication profile")
        for i, r in enumerate(recipients):
            if not _NAME.match(r):
                ctx.err(f"{pre}recipients[{i}]", f"{r!r} is not a profile name")
            elif r in recipients[:i]:
                ctx.err(f"{pre}recipients[{i}]", f"{r!r} is listed twice")
    valid_from = _instant(ctx, prof, "valid_from", pre, required=True)
    valid_until = _instant(ctx, prof, "valid_until", pre, required=False)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        ctx.err(pre + "valid_until", "must be after valid_from")
    tzname = ctx.str_(prof, "timezone", pre, required=False) or "Europe/Berlin"
    try:
        zone(tzname)
    except Exception:
        ctx.err(pre + "timezone", f"{tzname!r} is not a known IANA time zone "
                                  f"(e.g. Europe/Berlin)")
        tzname = "Europe/Berlin"
    reg = ctx.int_(prof, "registration_period_s", pre, lo=1, hi=86400)
    reg_given = reg is not None
    reg = 900 if reg is None else reg
    if DAY_MS % (reg * 1000):
        ctx.err(pre + "registration_period_s", f"must divide a day (86400 s), got {reg}")
    channels = _channels(ctx, doc, taf)
    stages = _stages(ctx, doc)
    switching = _switching(ctx, doc)
    special = _special_days(ctx, doc)
    sending = _sending(ctx, doc)
    aggregation = ctx.str_list(prof, "aggregation", pre)
    pseudonym = ctx.str_(prof, "pseudonym", pre, required=False, pattern=_NAME,
                         what="a pseudonym (letters, digits, '.', '_', '-'; at most 64)")
    retention = ctx.int_(prof, "retention_days", pre, lo=1, hi=3660)
    billing = prof.get("billing_period", _MISSING)
    if billing is not _MISSING and not isinstance(billing, str):
        ctx.err(pre + "billing_period", f"must be a string, got {_type_name(billing)}")
        billing = _MISSING

    if taf is None:       # the TAF rules below cannot run
        return None

    # --------------------------------------------------------------- rules per TAF
    if taf == 7 and reg_given and reg % 900:
        ctx.err(pre + "registration_period_s", f"TAF 7 needs 900 s (15 min) or a multiple "
                                               f"of it, got {reg}")
    if taf == 14 and reg < 60:
        ctx.err(pre + "registration_period_s", f"TAF 14: the smallest registration period "
                                               f"is 60 s, got {reg}")
    if taf in (1, 2, 6) and reg < 60:
        ctx.err(pre + "registration_period_s", f"TAF {taf} needs at least 60 s, got {reg}")

    bp: str | None
    if taf in (1, 2, 6):
        bp = (billing if billing is not _MISSING else ("day" if taf == 6 else "month"))
        if bp == "P1M":
            bp = "month"
        try:
            months_of(bp)
            ok = bp is not None
        except ValueError:
            ok = False
        if not ok:
            ctx.err(pre + "billing_period", f"must be \"month\", \"P<n>M\" (n months) or "
                                            f"\"day\", got {bp!r}")
        elif taf == 1 and bp == "day":
            ctx.err(pre + "billing_period", "TAF 1 needs a billing period of at least one "
                                            "month (\"month\" or \"P<n>M\"), got \"day\"")
        elif taf == 6 and bp != "day":
            ctx.err(pre + "billing_period", f"TAF 6 forms daily readings: the billing period "
                                            f"is \"day\", got {bp!r}")
    else:
        bp = None
        if billing is not _MISSING:
            ctx.err(pre + "billing_period", f"TAF {taf} has no billing period (remove it)")

    if taf == 6:
        retention = TAF6_RETENTION_DAYS if retention is None else retention
    elif retention is not None:
        ctx.err(pre + "retention_days", f"only TAF 6 keeps daily readings for a retention "
                                        f"time (this is TAF {taf})")
        retention = None

    if taf in AGGREGATING_TAFS:
        if aggregation is not None:
            for i, a in enumerate(aggregation):
                if a not in AGGREGATIONS:
                    ctx.err(f"{pre}aggregation[{i}]", f"{a!r} is not one of "
                                                      f"{', '.join(AGGREGATIONS)}")
                elif a in aggregation[:i]:
                    ctx.err(f"{pre}aggregation[{i}]", f"{a!r} is listed twice")
    else:
        if aggregation is not None:
            ctx.err(pre + "aggregation", f"only TAF 9, 10 and 14 aggregate values (this is "
                                         f"TAF {taf})")
        if pseudonym is not None:
            ctx.err(pre + "pseudonym", f"only TAF 9, 10 and 14 send pseudonymised values "
                                       f"(this is TAF {taf}: billing values need the meter "
                                       f"id)")
            pseudonym = None

    for i, c in enumerate(channels):
        if c.sign != 1 and taf != 1:
            ctx.err(f"channels[{i}].sign", f"only TAF 1 adds and subtracts channels (this is "
                                           f"TAF {taf}); remove sign or set it to 1")
        if taf == 2 and c.obis.rsplit(".", 1)[1] != "0":
            ctx.err(f"channels[{i}].obis", f"TAF 2 names its registers by replacing the E "
                                           f"group with the stage number, so the channel must "
                                           f"be a total register (E = 0), got {c.obis}")
    if taf == 2:
        seen: dict[str, int] = {}
        for i, c in enumerate(channels):
            if c.obis in seen:
                ctx.err(f"channels[{i}].obis", f"{c.obis} is already used by channels"
                                               f"[{seen[c.obis]}]; TAF 2 registers are named "
                                               f"after the OBIS code, so it must differ")
            seen.setdefault(c.obis, i)
        _check_taf2(ctx, stages, switching, special, reg)
    else:
        for key, items in (("stages", stages), ("switching", switching),
                           ("special_days", special)):
            if items:
                ctx.err(key, f"only TAF 2 has tariff stages and switching times (this is "
                             f"TAF {taf})")

    sending = _check_sending(ctx, sending, taf, reg, len(channels))

    if ctx.errors:
        return None
    assert name and usage_point and consumer and supplier and recipients is not None
    assert valid_from is not None
    return EvaluationProfile(
        name=name, taf=taf, usage_point=usage_point, consumer=consumer, supplier=supplier,
        recipients=tuple(recipients), channels=tuple(channels), valid_from_ms=valid_from,
        valid_until_ms=valid_until, timezone=tzname, registration_period_s=reg,
        billing_period=bp, stages=tuple(stages), switching=tuple(switching),
        special_days=tuple(special), sending=tuple(sending),
        aggregation=tuple(aggregation or ()), pseudonym=pseudonym, retention_days=retention)


def _channels(ctx: _Ctx, doc: dict[str, Any], taf: int | None) -> list[Channel]:
    tabs = ctx.tables(doc, "channels")
    if not tabs and "channels" not in doc:
        ctx.err("channels", "missing: at least one [[channels]] table (meter, obis)")
    elif not tabs and not any(k == "channels" for k, _ in ctx.errors):
        ctx.err("channels", "must name at least one channel")
    out: list[Channel] = []
    seen: dict[tuple[str, str], int] = {}
    for i, t in enumerate(tabs):
        pre = f"channels[{i}]."
        ctx.keys(t, pre, _TABLE_KEYS["channels"])
        meter = ctx.str_(t, "meter", pre, max_len=64)
        if meter is not None and not _METER.match(meter):
            hint = (" (write it in lower case)" if _METER.match(meter.lower()) else
                    " (an even number of hex digits, e.g. 0a01454d4800001234ab)")
            ctx.err(pre + "meter", f"{meter!r} is not a lower-case hex meter id{hint}")
            meter = None
        obis = ctx.str_(t, "obis", pre, max_len=32)
        if obis is not None:
            m = _OBIS.match(obis)
            if not m or any(int(g) > 255 or (len(g) > 1 and g[0] == "0") for g in m.groups()):
                ctx.err(pre + "obis", f"{obis!r} is not an OBIS code in the form A-B:C.D.E "
                                      f"(e.g. 1-0:1.8.0)")
                obis = None
        sign = ctx.int_(t, "sign", pre)
        if sign is not None and sign not in (1, -1):
            ctx.err(pre + "sign", f"must be 1 or -1, got {sign}")
        if meter is None or obis is None:
            continue
        if (meter, obis) in seen:
            ctx.err(pre + "obis", f"{meter} {obis} is already channels[{seen[(meter, obis)]}]")
            continue
        seen[(meter, obis)] = i
        out.append(Channel(meter, obis, 1 if sign is None else sign))
    return out


def _stages(ctx: _Ctx, doc: dict[str, Any]) -> list[Stage]:
    out: list[Stage] = []
    for i, t in enumerate(ctx.tables(doc, "stages")):
        pre = f"stages[{i}]."
        ctx.keys(t, pre, _TABLE_KEYS["stages"])
        number = ctx.int_(t, "number", pre, required=True)
        name = ctx.str_(t, "name", pre, max_len=64)
        if number is not None:
            if number == ERROR_STAGE:
                ctx.err(pre + "number", f"{ERROR_STAGE} is the error register (reserved)")
                number = None
            elif not 1 <= number <= MAX_STAGE:
                ctx.err(pre + "number", f"must be between 1 and {MAX_STAGE}, got {number}")
                number = None
            elif any(s.number == number for s in out):
                ctx.err(pre + "number", f"stage {number} is defined twice")
                number = None
        if name is not None and any(s.name == name for s in out):
            ctx.err(pre + "name", f"{name!r} is used by another stage")
        if number is not None and name is not None:
            out.append(Stage(number, name))
    return out


def _switching(ctx: _Ctx, doc: dict[str, Any]) -> list[SwitchPoint]:
    out: list[SwitchPoint] = []
    for i, t in enumerate(ctx.tables(doc, "switching")):
        pre = f"switching[{i}]."
        ctx.keys(t, pre, _TABLE_KEYS["switching"])
        days = ctx.str_list(t, "days", pre, required=True)
        dayset: set[str] = set()
        if days is not None:
            if not days:
                ctx.err(pre + "days", "must name at least one day type")
            for j, d in enumerate(days):
                if d in DAY_ALIASES:
                    dayset.update(DAY_ALIASES[d])
                elif d in DAY_TYPES:
                    dayset.add(d)
                else:
                    ctx.err(f"{pre}days[{j}]", f"{d!r} is not a day type ("
                            f"{', '.join(DAY_TYPES)}, or {', '.join(DAY_ALIASES)})"
                            + _suggest(d, "", DAY_TYPES + tuple(DAY_ALIASES)))
        tm = _time(ctx, t, "time", pre)
        stage = ctx.int_(t, "stage", pre, required=True)
        if dayset and tm is not None and stage is not None:
            out.append(SwitchPoint(frozenset(dayset), tm, stage))
        else:
            out.append(SwitchPoint(frozenset(), dt.time(), -1))   # placeholder keeps indices
    return out


def _special_days(ctx: _Ctx, doc: dict[str, Any]) -> list[SpecialDay]:
    out: list[SpecialDay] = []
    seen: dict[dt.date, int] = {}
    for i, t in enumerate(ctx.tables(doc, "special_days")):
        pre = f"special_days[{i}]."
        ctx.keys(t, pre, _TABLE_KEYS["special_days"])
        date = _date(ctx, t, "date", pre)
        day = ctx.str_(t, "day", pre)
        if day is not None and day not in DAY_TYPES:
            ctx.err(pre + "day", f"{day!r} is not a day type ({', '.join(DAY_TYPES)})")
            day = None
        if date is not None and date in seen:
            ctx.err(pre + "date", f"{date} is already special_days[{seen[date]}]")
            continue
        if date is not None and day is not None:
            seen[date] = i
            out.append(SpecialDay(date, day))
    return out


def _sending(ctx: _Ctx, doc: dict[str, Any]) -> list[tuple[int, Sending]]:
    out: list[tuple[int, Sending]] = []
    for i, t in enumerate(ctx.tables(doc, "sending")):
        pre = f"sending[{i}]."
        ctx.keys(t, pre, _TABLE_KEYS["sending"])
        trig = ctx.str_(t, "trigger", pre)
        if trig is not None and trig not in TRIGGERS:
            ctx.err(pre + "trigger", f"{trig!r} is not one of {', '.join(TRIGGERS)}"
                    + _suggest(trig, "", TRIGGERS))
            trig = None
        period = ctx.int_(t, "period_s", pre, lo=1)
        offset = ctx.int_(t, "offset_s", pre, lo=0)
        channel = ctx.int_(t, "channel", pre, lo=0)
        above = ctx.int_(t, "above", pre)
        below = ctx.int_(t, "below", pre)
        if trig is None:
            continue
        given = {k for k in ("period_s", "offset_s", "channel", "above", "below") if k in t}
        fields = {"periodic": {"period_s", "offset_s"}, "on-demand": set(), "adhoc": set(),
                  "threshold": {"channel", "above", "below"}}[trig]
        for k in sorted(given - fields):
            ctx.err(pre + k, f"does not apply to trigger \"{trig}\"")
        out.append((i, Sending(trig, period, offset or 0, channel, above, below)))
    return out


def _check_sending(ctx: _Ctx, items: list[tuple[int, Sending]], taf: int, reg: int,
                   n_channels: int) -> list[Sending]:
    if not items and not any(k.startswith("sending") for k, _ in ctx.errors):
        default = {1: Sending("periodic"), 2: Sending("periodic"), 6: Sending("on-demand"),
                   7: Sending("periodic", period_s=86400), 9: Sending("on-demand"),
                   10: Sending("on-demand"), 14: Sending("periodic", period_s=900)}[taf]
        if taf == 14 and 900 % reg:
            default = Sending("periodic", period_s=reg)
        return [default]
    allowed = ALLOWED_TRIGGERS[taf]
    out: list[Sending] = []
    once: dict[str, int] = {}
    for i, s in items:
        pre = f"sending[{i}]."
        if s.trigger not in allowed:
            ctx.err(pre + "trigger", f"TAF {taf} does not send \"{s.trigger}\" (allowed: "
                                     f"{', '.join(allowed)})")
            continue
        if s.trigger != "threshold":
            if s.trigger in once:
                ctx.err(pre + "trigger", f"\"{s.trigger}\" is already sending[{once[s.trigger]}]")
                continue
            once[s.trigger] = i
        if s.trigger == "periodic":
            if taf in (1, 2):
                if s.period_s is not None:
                    ctx.err(pre + "period_s", f"TAF {taf} sends once per billing period; "
                                              f"remove period_s")
                    continue
                if s.offset_s >= 86400 * 28:
                    ctx.err(pre + "offset_s", "must be shorter than a month")
            else:
                if s.period_s is None:
                    ctx.err(pre + "period_s", "missing (required for a periodic sending)")
                    continue
                ms = s.period_s * 1000
                if DAY_MS % ms and ms % DAY_MS:
                    ctx.err(pre + "period_s", f"must divide a day or be a multiple of a day "
                                              f"(86400 s), got {s.period_s}")
                elif s.period_s % reg:
                    ctx.err(pre + "period_s", f"must be a multiple of the registration "
                                              f"period ({reg} s), got {s.period_s}")
                elif s.offset_s >= s.period_s:
                    ctx.err(pre + "offset_s", f"must be shorter than period_s "
                                              f"({s.period_s}), got {s.offset_s}")
        if s.trigger == "threshold":
            if s.channel is None:
                ctx.err(pre + "channel", "missing: the index of the channel in [[channels]] "
                                         "whose value is watched")
                continue
            if s.channel >= n_channels:
                ctx.err(pre + "channel", f"there is no channels[{s.channel}] "
                                         f"({n_channels} channel(s))")
                continue
            if s.above is None and s.below is None:
                ctx.err(pre + "above", "a threshold needs above, below or both (raw units)")
                continue
        out.append(s)
    return out


def _check_taf2(ctx: _Ctx, stages: list[Stage], switching: list[SwitchPoint],
                special: list[SpecialDay], reg: int) -> None:
    if len(stages) < 2 and not any(k.startswith("stages") for k, _ in ctx.errors):
        ctx.err("stages", f"TAF 2 needs at least two tariff stages ([[stages]]), "
                          f"got {len(stages)}")
    numbers = {s.number for s in stages}
    if not switching and not any(k.startswith("switching") for k, _ in ctx.errors):
        ctx.err("switching", "TAF 2 needs switching times ([[switching]] days, time, stage)")
        return
    at: dict[tuple[str, int], int] = {}
    for i, sp in enumerate(switching):
        if sp.stage == -1:
            continue
        pre = f"switching[{i}]."
        if sp.stage == ERROR_STAGE:
            ctx.err(pre + "stage", f"{ERROR_STAGE} is the error register; it cannot be "
                                   f"switched to")
        elif sp.stage not in numbers and not any(k.startswith("stages") for k, _ in ctx.errors):
            ctx.err(pre + "stage", f"stage {sp.stage} is not defined in [[stages]] (defined: "
                                   f"{', '.join(map(str, sorted(numbers))) or 'none'})")
        if sp.seconds % reg:
            ctx.err(pre + "time", f"{_fmt_time(sp.time)} is not on the registration grid "
                                  f"({reg} s): tariffs switch only at registration period "
                                  f"boundaries")
        for d in sorted(sp.days, key=DAY_TYPES.index):
            if (d, sp.seconds) in at:
                ctx.err(pre + "days", f"{d} {_fmt_time(sp.time)} is already set by "
                                      f"switching[{at[(d, sp.seconds)]}]")
            else:
                at[(d, sp.seconds)] = i
    if any(sp.stage == -1 for sp in switching):
        return
    needed = list(WEEKDAYS)
    if any(sd.day == "holiday" for sd in special):
        needed.append("holiday")
    for d in needed:
        if (d, 0) not in at:
            why = (" (special_days map dates to it)" if d == "holiday" else "")
            ctx.err("switching", f"day type '{d}'{why} has no switching point at 00:00: "
                                 f"every day type needs its stage from midnight on")
