"""Typed gateway configuration loaded from a TOML file.

Usage::

    cfg = load_config(Path("/etc/smgw/smgw.toml"))
    cfg = load_config(None)                                   # all defaults
    cfg = load_config(path, overrides={"link.window": 4})     # dotted or nested overrides
    cfg = Config.default(data_dir=tmp_path)                   # tests

Every problem is reported as a :class:`ConfigError` whose message names the full
dotted key (``link.window: must be an integer between 1 and 32, got 40``).
Unknown sections and keys are errors, never ignored.

Relative paths are resolved against the directory of the config file (the
current working directory when there is no file).  Path defaults that mention
``<data_dir>`` are derived from the final ``gateway.data_dir``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

__all__ = [
    "BAUDRATES",
    "Config",
    "ConfigError",
    "ControlConfig",
    "GatewayConfig",
    "LineNoiseConfig",
    "LinkConfig",
    "LogConfig",
    "SimConfig",
    "auto_rto_ms",
    "load_config",
]

BAUDRATES: tuple[int, ...] = (
    9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000,
)
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[str, ...] = ("text", "json")
_GATEWAY_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,32}$")

# Bytes of framing overhead per link frame assumed by auto_rto_ms (header, CRC,
# COBS/escaping, delimiter).  Deliberately generous.
_FRAME_OVERHEAD = 32


class ConfigError(Exception):
    """Invalid configuration.  ``errors`` lists every problem found (one per line in str())."""

    def __init__(self, errors: list[str] | str, source: Path | None = None) -> None:
        if isinstance(errors, str):
            errors = [errors]
        self.errors: list[str] = list(errors)
        self.source = source
        super().__init__("\n".join(self.errors))


def auto_rto_ms(baudrate: int, window: int, max_payload: int) -> int:
    """Retransmission timeout used when ``link.rto_ms = "auto"``.

    One full frame takes ``(max_payload + overhead) * 10 / baud`` seconds on the
    wire (8N1).  A frame's acknowledgement can be queued behind a full window of
    our own frames plus one frame in each direction, so we allow ``window + 2``
    frame times plus 100 ms for USB latency and MicroPython scheduling, clamped to
    10..10000 ms.
    """
    frame_ms = (max_payload + _FRAME_OVERHEAD) * 10 * 1000 / baudrate
    return max(10, min(10000, math.ceil(frame_ms * (window + 2)) + 100))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class GatewayConfig:
    id: str = "EOPN0000000001"
    data_dir: Path = Path("var")


@dataclass(frozen=True)
class LinkConfig:
    port: str = "sim"
    baudrate: int = 115200
    window: int = 8
    max_payload: int = 1024
    rto_ms: int | Literal["auto"] = "auto"
    hello_interval_ms: int = 500

    @property
    def is_sim(self) -> bool:
        return self.port == "sim"

    @property
    def effective_rto_ms(self) -> int:
        """``rto_ms`` as a number (``auto`` computed from baud rate, window and payload)."""
        if self.rto_ms == "auto":
            return auto_rto_ms(self.baudrate, self.window, self.max_payload)
        return int(self.rto_ms)


@dataclass(frozen=True)
class LineNoiseConfig:
    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SimConfig:
    firmware_state_dir: Path = Path("var/sim-board")
    line_noise: LineNoiseConfig = field(default_factory=LineNoiseConfig)
    sml_meter: bool = True
    sml_meter_period_s: float = 2.0
    lmn_meters: int = 1
    lmn_baudrate: int = 115200
    wmbus_meters: int = 4
    wmbus_rate_per_s: float = 1.0


@dataclass(frozen=True)
class TimeConfig:
    server: str = "sim"
    sync_interval_s: float = 21600.0
    rtc_bridge_s: float = 172800.0
    smallest_period_s: float = 900.0


@dataclass(frozen=True)
class LogbookConfig:
    calibration_entries: int = 200_000
    system_entries: int = 200_000
    consumer_entries: int = 50_000
    consumers: tuple[str, ...] = ("LV1",)
    selftest_interval_s: float = 14400.0


@dataclass(frozen=True)
class LmnConfig:
    invite_s: float = 10.0
    keepalive_s: float = 5.0
    retry_s: float = 60.0
    listen_ms: int = 60
    max_misses: int = 3


@dataclass(frozen=True)
class TariffConfig:
    profiles_dir: Path | None = None
    tick_s: float = 5.0
    grace_s: float = 11.0
    sim_emt: bool = True


@dataclass(frozen=True)
class HanConfig:
    enabled: bool = True
    listen: tuple[str, ...] = ("127.0.0.1:8443",)
    idle_s: float = 600.0
    max_session_s: float = 172800.0
    lockout_failures: int = 5
    lockout_window_s: float = 300.0
    lockout_s: float = 300.0
    selftest_min_interval_s: float = 600.0


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    file: Path | None = None


@dataclass(frozen=True)
class ControlConfig:
    socket: Path = Path("var/smgw.sock")


@dataclass(frozen=True)
class Config:
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    lmn: LmnConfig = field(default_factory=LmnConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    logbook: LogbookConfig = field(default_factory=LogbookConfig)
    tariff: TariffConfig = field(default_factory=TariffConfig)
    han: HanConfig = field(default_factory=HanConfig)
    log: LogConfig = field(default_factory=LogConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    #: the file this configuration was loaded from (None = defaults only)
    source: Path | None = field(default=None, compare=False)

    @classmethod
    def default(
        cls, data_dir: Path | str | None = None, overrides: dict[str, Any] | None = None
    ) -> "Config":
        """All defaults, optionally with another data_dir and overrides (for tests)."""
        merged: dict[str, Any] = {}
        if data_dir is not None:
            merged["gateway.data_dir"] = str(data_dir)
        if overrides:
            merged.update(_flatten(overrides))
        return load_config(None, merged)

    @property
    def store_path(self) -> Path:
        """Location of the SQLite store inside data_dir."""
        return self.gateway.data_dir / "smgw.db"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (paths as str, unset optional keys as None).

        ``load_config(None, cfg.to_dict())`` reproduces ``cfg``.
        """
        out: dict[str, dict[str, Any]] = {}
        for section, spec in _SCHEMA.items():
            obj = getattr(self, section)
            out[section] = _obj_to_dict(obj, spec)
        return out

    def to_toml(self) -> str:
        """The configuration as TOML text (unset optional keys are left out)."""
        lines: list[str] = []

        def emit(prefix: str, table: dict[str, Any]) -> None:
            subtables = []
            lines.append(f"[{prefix}]")
            for key, value in table.items():
                if isinstance(value, dict):
                    subtables.append((f"{prefix}.{key}", value))
                elif value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
            for name, sub in subtables:
                emit(name, sub)

        for section, table in self.to_dict().items():
            emit(section, table)
        return "\n".join(lines)


def _obj_to_dict(obj: Any, spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in spec.items():
        value = getattr(obj, key)
        if isinstance(item, dict):
            out[key] = _obj_to_dict(value, item)
        elif isinstance(value, Path):
            out[key] = str(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


# --------------------------------------------------------------------------- validation

_MISSING = object()


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"got boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"got {value!r}"
    if isinstance(value, (int, float)):
        return f"got {value}"
    return f"got {_type_name(value)}"


class _Check:
    """Validator: returns the converted value or raises ValueError(problem)."""

    def __init__(self, fn: Callable[[Any, "_Ctx"], Any], optional: bool = False) -> None:
        self.fn = fn
        self.optional = optional


@dataclass
class _Ctx:
    base_dir: Path


def _int_range(lo: int, hi: int) -> _Check:
    def fn(v: Any, ctx: _Ctx) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"must be an integer between {lo} and {hi}, {_got(v)}")
        return v

    return _Check(fn)


def _any_int() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer, {_got(v)}")
        return v

    return _Check(fn)


def _float_range(lo: float, hi: float) -> _Check:
    def fn(v: Any, ctx: _Ctx) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"must be a number between {lo} and {hi}, {_got(v)}")
        return float(v)

    return _Check(fn)


def _choice(choices: tuple[Any, ...], what: str = "one of") -> _Check:
    def fn(v: Any, ctx: _Ctx) -> Any:
        if isinstance(v, bool) or v not in choices or type(v) is float:
            opts = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
            raise ValueError(f"must be {what} {opts}, {_got(v)}")
        return v

    return _Check(fn)


def _gateway_id() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str) or not _GATEWAY_ID_RE.match(v):
            raise ValueError(
                f"must be a string of 1 to 32 characters A-Z, a-z, 0-9 or '-', {_got(v)}"
            )
        return v

    return _Check(fn)


def _time_server() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f'must be "sim" or host[:port] of an NTP server, got {_got(v)}')
        host, _, port = v.strip().rpartition(":") if ":" in v else (v.strip(), "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"port must be 1..65535, got {port!r}")
        return v.strip()

    return _Check(fn)


def _names() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)) or not v or not all(
                isinstance(x, str) and x.strip() and x.isprintable() for x in v):
            raise ValueError(f"must be a non-empty list of names, got {_got(v)}")
        if len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return tuple(x.strip() for x in v)

    return _Check(fn)


def _listen() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f'must be a non-empty list of "host:port" addresses, {_got(v)}')
        out = []
        for item in v:
            host, _, port = str(item).rpartition(":")
            if not isinstance(item, str) or not host or not port.isdigit() \
                    or not 0 <= int(port) < 65536:
                raise ValueError(f'each address must be "host:port" with port 0..65535 '
                                 f'(0: any free port), got {item!r}')
            out.append(item)
        if len(set(out)) != len(out):
            raise ValueError("addresses must be unique")
        return tuple(out)

    return _Check(fn)


def _boolean() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, {_got(v)}")
        return v

    return _Check(fn)


def _port() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(
                f"must be \"sim\", a device path or a pyserial URL (non-empty string), {_got(v)}"
            )
        return v

    return _Check(fn)


def _rto() -> _Check:
    def fn(v: Any, ctx: _Ctx) -> int | str:
        if v == "auto" and isinstance(v, str):
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 10 <= v <= 10000:
            raise ValueError(f"must be \"auto\" or an integer between 10 and 10000, {_got(v)}")
        return v

    return _Check(fn)


def _path(optional: bool = False) -> _Check:
    def fn(v: Any, ctx: _Ctx) -> Path:
        if not isinstance(v, (str, os.PathLike)) or not str(v).strip():
            raise ValueError(f"must be a path (non-empty string), {_got(v)}")
        p = Path(os.path.expanduser(os.fspath(v)))
        if not p.is_absolute():
            p = ctx.base_dir / p
        return Path(os.path.normpath(p))

    return _Check(fn, optional=optional)


# section -> key -> (check, default) ; nested dict = sub-table.
# Defaults of None mean "derived" (see _derive_defaults) or "unset" for optional keys.
_SCHEMA: dict[str, dict[str, Any]] = {
    "gateway": {
        "id": (_gateway_id(), "EOPN0000000001"),
        "data_dir": (_path(), "./var"),
    },
    "link": {
        "port": (_port(), "sim"),
        "baudrate": (_choice(BAUDRATES, "one of the standard baud rates"), 115200),
        "window": (_int_range(1, 32), 8),
        "max_payload": (_int_range(256, 4096), 1024),
        "rto_ms": (_rto(), "auto"),
        "hello_interval_ms": (_int_range(50, 60000), 500),
    },
    "sim": {
        "firmware_state_dir": (_path(), None),  # <data_dir>/sim-board
        "line_noise": {
            "bit_error_rate": (_float_range(0.0, 0.1), 0.0),
            "drop_rate": (_float_range(0.0, 0.1), 0.0),
            "seed": (_any_int(), 0),
        },
        "sml_meter": (_boolean(), True),
        "sml_meter_period_s": (_float_range(0.05, 3600.0), 2.0),
        "lmn_meters": (_int_range(0, 8), 1),
        "lmn_baudrate": (_choice(BAUDRATES, "one of the standard baud rates"), 115200),
        "wmbus_meters": (_int_range(0, 64), 4),
        "wmbus_rate_per_s": (_float_range(0.01, 100.0), 1.0),
    },
    "lmn": {
        "invite_s": (_float_range(0.2, 3600.0), 10.0),
        "keepalive_s": (_float_range(0.1, 3600.0), 5.0),
        "retry_s": (_float_range(0.1, 86400.0), 60.0),
        "listen_ms": (_int_range(5, 5000), 60),
        "max_misses": (_int_range(1, 100), 3),
    },
    "time": {
        "server": (_time_server(), "sim"),
        "sync_interval_s": (_float_range(10.0, 86400.0), 21600.0),
        "rtc_bridge_s": (_float_range(0.0, 31536000.0), 172800.0),
        "smallest_period_s": (_float_range(1.0, 86400.0), 900.0),
    },
    "logbook": {
        "calibration_entries": (_int_range(10, 100_000_000), 200_000),
        "system_entries": (_int_range(10, 100_000_000), 200_000),
        "consumer_entries": (_int_range(10, 100_000_000), 50_000),
        "consumers": (_names(), ("LV1",)),
        "selftest_interval_s": (_float_range(60.0, 86400.0), 14400.0),
    },
    "tariff": {
        "profiles_dir": (_path(optional=True), None),
        "tick_s": (_float_range(0.1, 3600.0), 5.0),
        "grace_s": (_float_range(0.0, 3600.0), 11.0),
        "sim_emt": (_boolean(), True),
    },
    "han": {
        "enabled": (_boolean(), True),
        "listen": (_listen(), ("127.0.0.1:8443",)),
        "idle_s": (_float_range(10.0, 86400.0), 600.0),
        "max_session_s": (_float_range(60.0, 604800.0), 172800.0),
        "lockout_failures": (_int_range(1, 100), 5),
        "lockout_window_s": (_float_range(1.0, 86400.0), 300.0),
        "lockout_s": (_float_range(1.0, 86400.0), 300.0),
        "selftest_min_interval_s": (_float_range(0.0, 86400.0), 600.0),
    },
    "log": {
        "level": (_choice(LOG_LEVELS), "info"),
        "format": (_choice(LOG_FORMATS), "text"),
        "file": (_path(optional=True), None),
    },
    "control": {
        "socket": (_path(), None),  # <data_dir>/smgw.sock
    },
}

_CLASSES: dict[str, type] = {
    "gateway": GatewayConfig,
    "link": LinkConfig,
    "sim": SimConfig,
    "sim.line_noise": LineNoiseConfig,
    "lmn": LmnConfig,
    "time": TimeConfig,
    "logbook": LogbookConfig,
    "tariff": TariffConfig,
    "han": HanConfig,
    "log": LogConfig,
    "control": ControlConfig,
}


def _all_leaf_keys(spec: dict[str, Any] = _SCHEMA, prefix: str = "") -> list[str]:
    keys = []
    for k, v in spec.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            keys.extend(_all_leaf_keys(v, name + "."))
        else:
            keys.append(name)
    return keys


def _suggest(name: str, prefix: str, candidates: list[str]) -> str:
    """' (did you mean ...?)' for an unknown key ``name`` inside ``prefix``."""
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f" (did you mean '{prefix}{close[0]}'?)"
    # the key may exist in another section, e.g. 'link.level' -> 'log.level'
    elsewhere = [k for k in _all_leaf_keys() if k.rsplit(".", 1)[-1] == name]
    if elsewhere:
        return f" (did you mean '{elsewhere[0]}'?)"
    return ""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b": value}; keys may already be dotted."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any], errors: list[str]) -> None:
    for dotted, value in _flatten(overrides).items():
        parts = dotted.split(".")
        node = data
        ok = True
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                errors.append(
                    f"{'.'.join(parts[: i + 1])}: must be a table, got {_type_name(nxt)}"
                )
                ok = False
                break
            node = nxt
        if ok:
            if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
                continue  # empty table: nothing to override
            node[parts[-1]] = value


def _validate_table(
    data: Any,
    spec: dict[str, Any],
    prefix: str,
    ctx: _Ctx,
    errors: list[str],
) -> dict[str, Any]:
    """Validate one table; returns {key: converted value or _MISSING / sub-dict}."""
    out: dict[str, Any] = {}
    if not isinstance(data, dict):
        errors.append(f"{prefix.rstrip('.')}: must be a table, got {_type_name(data)}")
        data = {}
    for key in data:
        if key not in spec:
            kind = "section" if not prefix and isinstance(data[key], dict) else "key"
            errors.append(
                f"unknown {kind} '{prefix}{key}'{_suggest(key, prefix, list(spec))}"
            )
    for key, item in spec.items():
        value = data.get(key, _MISSING)
        if isinstance(item, dict):
            out[key] = _validate_table(
                {} if value is _MISSING else value, item, f"{prefix}{key}.", ctx, errors
            )
            continue
        check, default = item
        if value is _MISSING or (value is None and check.optional):
            out[key] = _MISSING
            continue
        try:
            out[key] = check.fn(value, ctx)
        except ValueError as exc:
            errors.append(f"{prefix}{key}: {exc}")
            out[key] = _MISSING
    return out


def _build(values: dict[str, Any], spec: dict[str, Any], name: str) -> Any:
    kwargs: dict[str, Any] = {}
    for key, item in spec.items():
        v = values[key]
        if isinstance(item, dict):
            kwargs[key] = _build(v, item, f"{name}.{key}")
        elif v is _MISSING:
            kwargs[key] = item[1]  # plain default (str/int/float/None)
        else:
            kwargs[key] = v
    return _CLASSES[name](**kwargs)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not valid UTF-8: {exc}", path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib messages end with "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {exc}", path) from None


def load_config(path: Path | str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate the configuration.

    ``path=None`` means all defaults.  ``overrides`` may be nested
    (``{"link": {"window": 4}}``) or dotted (``{"link.window": 4}``); they are
    applied on top of the file and validated the same way.  Relative override
    paths are resolved like paths in the file.
    """
    source: Path | None = None
    if path is not None:
        source = Path(path)
        data = _read_toml(source)
        base_dir = Path(os.path.abspath(source.parent))
    else:
        data = {}
        base_dir = Path.cwd()
    errors: list[str] = []
    if overrides:
        _apply_overrides(data, overrides, errors)
    ctx = _Ctx(base_dir=base_dir)
    values = _validate_table(data, _SCHEMA, "", ctx, errors)
    if errors:
        raise ConfigError(errors, source)

    # derived defaults
    gw = values["gateway"]
    if gw["data_dir"] is _MISSING:
        gw["data_dir"] = _SCHEMA["gateway"]["data_dir"][0].fn("./var", ctx)
    data_dir: Path = gw["data_dir"]
    if values["sim"]["firmware_state_dir"] is _MISSING:
        values["sim"]["firmware_state_dir"] = data_dir / "sim-board"
    if values["control"]["socket"] is _MISSING:
        values["control"]["socket"] = data_dir / "smgw.sock"
    sections = {name: _build(values[name], spec, name) for name, spec in _SCHEMA.items()}
    return Config(**sections, source=source)
