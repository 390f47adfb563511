# ruff: noqa: E501  (table of expected messages reads better unwrapped)
import dataclasses
import tomllib
from pathlib import Path

import pytest

from smgw.config import (
    BAUDRATES,
    Config,
    ConfigError,
    auto_rto_ms,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "smgw.toml"


def write(tmp_path: Path, text: str, name: str = "smgw.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def err(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text))
    return str(ei.value)


# ---------------------------------------------------------------- defaults


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None)
    assert cfg.gateway.id == "EOPN0000000001"
    assert cfg.gateway.data_dir == tmp_path / "var"
    assert cfg.link.port == "sim" and cfg.link.is_sim
    assert cfg.link.baudrate == 115200
    assert cfg.link.window == 8
    assert cfg.link.max_payload == 1024
    assert cfg.link.rto_ms == "auto"
    assert cfg.link.hello_interval_ms == 500
    assert cfg.sim.firmware_state_dir == tmp_path / "var" / "sim-board"
    assert cfg.sim.line_noise.bit_error_rate == 0.0
    assert cfg.sim.line_noise.drop_rate == 0.0
    assert cfg.sim.line_noise.seed == 0
    assert cfg.log.level == "info" and cfg.log.format == "text" and cfg.log.file is None
    assert cfg.control.socket == tmp_path / "var" / "smgw.sock"
    assert cfg.source is None


def test_config_is_frozen(tmp_path):
    cfg = Config.default(data_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.link.window = 3  # type: ignore[misc]
    # but replace() works for tests
    cfg2 = dataclasses.replace(cfg, link=dataclasses.replace(cfg.link, window=3))
    assert cfg2.link.window == 3


def test_default_with_data_dir_derives_paths(tmp_path):
    cfg = Config.default(data_dir=tmp_path)
    assert cfg.gateway.data_dir == tmp_path
    assert cfg.sim.firmware_state_dir == tmp_path / "sim-board"
    assert cfg.control.socket == tmp_path / "smgw.sock"
    assert cfg.store_path == tmp_path / "smgw.db"


def test_default_with_overrides(tmp_path):
    cfg = Config.default(data_dir=tmp_path, overrides={"link": {"window": 4}, "log.level": "debug"})
    assert cfg.link.window == 4
    assert cfg.log.level == "debug"


def test_empty_file_is_all_defaults(tmp_path):
    p = write(tmp_path, "")
    cfg = load_config(p)
    assert cfg.gateway.data_dir == tmp_path / "var"
    assert cfg.source == p
    assert cfg == Config.default(data_dir=tmp_path / "var")


# ---------------------------------------------------------------- values and paths


def test_full_file(tmp_path):
    p = write(
        tmp_path,
        """
[gateway]
id = "EABC0123456789"
data_dir = "data"

[link]
port = "socket://localhost:7000"
baudrate = 921600
window = 32
max_payload = 4096
rto_ms = 250
hello_interval_ms = 1000

[sim]
firmware_state_dir = "/abs/board"

[sim.line_noise]
bit_error_rate = 0.001
drop_rate = 0
seed = -7

[log]
level = "debug"
format = "json"
file = "logs/smgw.log"

[control]
socket = "/run/smgw.sock"
""",
    )
    cfg = load_config(p)
    assert cfg.gateway.id == "EABC0123456789"
    assert cfg.gateway.data_dir == tmp_path / "data"
    assert cfg.link.port == "socket://localhost:7000" and not cfg.link.is_sim
    assert cfg.link.baudrate == 921600
    assert cfg.link.window == 32
    assert cfg.link.max_payload == 4096
    assert cfg.link.rto_ms == 250 and cfg.link.effective_rto_ms == 250
    assert cfg.link.hello_interval_ms == 1000
    assert cfg.sim.firmware_state_dir == Path("/abs/board")
    assert cfg.sim.line_noise.bit_error_rate == 0.001
    assert cfg.sim.line_noise.drop_rate == 0.0
    assert isinstance(cfg.sim.line_noise.drop_rate, float)
    assert cfg.sim.line_noise.seed == -7
    assert cfg.log.level == "debug" and cfg.log.format == "json"
    assert cfg.log.file == tmp_path / "logs" / "smgw.log"
    assert cfg.control.socket == Path("/run/smgw.sock")


def test_relative_paths_resolve_against_config_dir_not_cwd(tmp_path, monkeypatch):
    sub = tmp_path / "etc"
    sub.mkdir()
    p = write(sub, '[gateway]\ndata_dir = "../state"\n')
    monkeypatch.chdir(tmp_path / "etc")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    cfg = load_config(p)
    assert cfg.gateway.data_dir == tmp_path / "state"
    assert cfg.control.socket == tmp_path / "state" / "smgw.sock"


def test_relative_config_path_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[gateway]\ndata_dir = "d"\n')
    cfg = load_config(Path("smgw.toml"))
    assert cfg.gateway.data_dir == tmp_path / "d"
    assert cfg.gateway.data_dir.is_absolute()


def test_home_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(write(tmp_path, '[log]\nfile = "~/smgw.log"\n'))
    assert cfg.log.file == tmp_path / "smgw.log"


@pytest.mark.parametrize("port", ["sim", "/dev/ttyACM0", "COM3", "socket://h:1", "rfc2217://h:2"])
def test_ports(tmp_path, port):
    cfg = load_config(None, {"link.port": port})
    assert cfg.link.port == port


@pytest.mark.parametrize("baud", BAUDRATES)
def test_all_standard_baudrates(baud):
    assert load_config(None, {"link": {"baudrate": baud}}).link.baudrate == baud


def test_rto_auto_computed_from_baud():
    slow = load_config(None, {"link.baudrate": 9600}).link.effective_rto_ms
    default = load_config(None).link.effective_rto_ms
    fast = load_config(None, {"link.baudrate": 2000000}).link.effective_rto_ms
    assert 10 <= fast < default < slow <= 10000
    assert default == auto_rto_ms(115200, 8, 1024)
    # more window / bigger frames -> longer timeout
    assert auto_rto_ms(115200, 16, 1024) > auto_rto_ms(115200, 8, 1024)
    assert auto_rto_ms(115200, 8, 4096) > auto_rto_ms(115200, 8, 1024)


def test_nested_and_dotted_overrides_on_top_of_file(tmp_path):
    p = write(tmp_path, "[link]\nwindow = 4\nmax_payload = 512\n")
    cfg = load_config(p, {"link": {"window": 16}, "sim.line_noise.seed": 42})
    assert cfg.link.window == 16
    assert cfg.link.max_payload == 512  # from file, untouched
    assert cfg.sim.line_noise.seed == 42


def test_override_none_unsets_optional(tmp_path):
    p = write(tmp_path, '[log]\nfile = "x.log"\n')
    assert load_config(p).log.file == tmp_path / "x.log"
    assert load_config(p, {"log.file": None}).log.file is None


def test_to_dict_roundtrip(tmp_path):
    cfg = load_config(
        None,
        {"gateway.data_dir": str(tmp_path), "link.rto_ms": 300, "log.file": str(tmp_path / "l"),
         "tariff.profiles_dir": str(tmp_path / "p")},
    )
    d = cfg.to_dict()
    assert d["link"]["rto_ms"] == 300
    assert d["gateway"]["data_dir"] == str(tmp_path)
    assert d["sim"]["line_noise"]["seed"] == 0
    assert load_config(None, d) == cfg
    assert tomllib.loads(cfg.to_toml()) == d


def test_to_toml_omits_unset_optional(tmp_path):
    cfg = Config.default(data_dir=tmp_path)
    text = cfg.to_toml()
    parsed = tomllib.loads(text)
    assert "file" not in parsed["log"]
    p = write(tmp_path, text, "shown.toml")
    assert load_config(p) == cfg


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[link]\nwindow = 40\n", "link.window: must be an integer between 1 and 32, got 40"),
        ("[link]\nwindow = 0\n", "link.window: must be an integer between 1 and 32, got 0"),
        ("[link]\nwindow = true\n", "link.window: must be an integer between 1 and 32, got boolean true"),
        ("[link]\nwindow = 8.0\n", "link.window: must be an integer between 1 and 32, got 8.0"),
        ('[link]\nwindow = "8"\n', "link.window: must be an integer between 1 and 32, got '8'"),
        ("[link]\nmax_payload = 255\n", "link.max_payload: must be an integer between 256 and 4096, got 255"),
        ("[link]\nmax_payload = 4097\n", "link.max_payload: must be an integer between 256 and 4096"),
        ("[link]\nbaudrate = 115201\n", "link.baudrate: must be one of the standard baud rates"),
        ("[link]\nbaudrate = 115200.0\n", "link.baudrate: must be one of"),
        ("[link]\nbaudrate = true\n", "link.baudrate: must be one of"),
        ('[link]\nrto_ms = "fast"\n', "link.rto_ms: must be \"auto\" or an integer between 10 and 10000, got 'fast'"),
        ("[link]\nrto_ms = 5\n", "link.rto_ms: must be \"auto\" or an integer between 10 and 10000, got 5"),
        ("[link]\nrto_ms = false\n", "link.rto_ms: must be"),
        ("[link]\nhello_interval_ms = 0\n", "link.hello_interval_ms: must be an integer between"),
        ('[link]\nport = ""\n', "link.port: must be"),
        ("[link]\nport = 3\n", "link.port: must be"),
        ('[gateway]\nid = ""\n', "gateway.id: must be a string of 1 to 32 characters"),
        ('[gateway]\nid = "E ABC"\n', "gateway.id: must be"),
        (f'[gateway]\nid = "{"E" * 33}"\n', "gateway.id: must be"),
        ("[gateway]\nid = 12\n", "gateway.id: must be"),
        ("[gateway]\ndata_dir = 1\n", "gateway.data_dir: must be a path"),
        ('[gateway]\ndata_dir = ""\n', "gateway.data_dir: must be a path"),
        ("[sim.line_noise]\nbit_error_rate = 0.2\n", "sim.line_noise.bit_error_rate: must be a number between 0.0 and 0.1, got 0.2"),
        ("[sim.line_noise]\ndrop_rate = -0.01\n", "sim.line_noise.drop_rate: must be a number between"),
        ("[sim.line_noise]\ndrop_rate = nan\n", "sim.line_noise.drop_rate: must be a number between"),
        ("[sim.line_noise]\ndrop_rate = true\n", "sim.line_noise.drop_rate: must be a number"),
        ("[sim.line_noise]\nseed = 1.5\n", "sim.line_noise.seed: must be an integer, got 1.5"),
        ('[log]\nlevel = "verbose"\n', "log.level: must be one of 'debug', 'info', 'warning', 'error', got 'verbose'"),
        ('[log]\nlevel = "INFO"\n', "log.level: must be one of"),
        ('[log]\nformat = "xml"\n', "log.format: must be one of 'text', 'json', got 'xml'"),
        ("[log]\nfile = 3\n", "log.file: must be a path"),
        ("[control]\nsocket = []\n", "control.socket: must be a path (non-empty string), got array"),
        ("link = 5\n", "link: must be a table, got integer"),
        ("[sim]\nline_noise = 1\n", "sim.line_noise: must be a table, got integer"),
    ],
)
def test_value_errors_name_the_key(tmp_path, text, expected):
    assert expected in err(tmp_path, text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[link]\nwindw = 4\n", "unknown key 'link.windw' (did you mean 'link.window'?)"),
        ("[lnk]\nwindow = 4\n", "unknown section 'lnk' (did you mean 'link'?)"),
        ("[zzzzzz]\n", "unknown section 'zzzzzz'"),
        ("[link]\nlevel = 'info'\n", "unknown key 'link.level' (did you mean 'log.level'?)"),
        ("window = 4\n", "unknown key 'window' (did you mean 'link.window'?)"),
        ("[sim.line_noise]\nsed = 1\n", "unknown key 'sim.line_noise.sed' (did you mean 'sim.line_noise.seed'?)"),
        ("[sim.noise]\n", "unknown key 'sim.noise'"),
    ],
)
def test_unknown_keys_are_errors(tmp_path, text, expected):
    assert expected in err(tmp_path, text)


def test_unknown_key_without_suggestion_has_no_hint(tmp_path):
    msg = err(tmp_path, "[link]\nqqqqqqqq = 1\n")
    assert msg == "unknown key 'link.qqqqqqqq'"


def test_all_errors_reported_together(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, "[link]\nwindow = 40\nwindw = 1\n[log]\nlevel = 'x'\n"))
    e = ei.value
    assert len(e.errors) == 3
    assert any(m.startswith("link.window:") for m in e.errors)
    assert any("link.windw" in m for m in e.errors)
    assert any(m.startswith("log.level:") for m in e.errors)
    assert e.source == tmp_path / "smgw.toml"


def test_override_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^link\.window: must be an integer between 1 and 32, got 40$"):
        load_config(None, {"link.window": 40})
    with pytest.raises(ConfigError, match=r"unknown key 'link\.windw' \(did you mean 'link\.window'\?\)"):
        load_config(None, {"link": {"windw": 4}})
    with pytest.raises(ConfigError, match=r"unknown section 'lnk'"):
        load_config(None, {"lnk": {}})


def test_toml_syntax_error_names_file_line_and_column(tmp_path):
    msg = err(tmp_path, "[link]\nwindow = = 4\n")
    assert str(tmp_path / "smgw.toml") in msg
    assert "line 2" in msg and "column" in msg
    assert "TOML syntax error" in msg


def test_duplicate_key_is_syntax_error(tmp_path):
    msg = err(tmp_path, "[link]\nwindow = 4\nwindow = 5\n")
    assert "TOML syntax error" in msg and "line 3" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml")


def test_not_utf8(tmp_path):
    p = tmp_path / "smgw.toml"
    p.write_bytes(b'[gateway]\nid = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(p)


# ---------------------------------------------------------------- example file


def test_example_file_loads_and_matches_defaults():
    cfg = load_config(EXAMPLE)
    defaults = Config.default(data_dir=EXAMPLE.parent / "var")
    assert cfg == defaults


def test_example_documents_every_key():
    text = EXAMPLE.read_text()
    cfg = Config.default()
    for section, table in cfg.to_dict().items():
        assert f"[{section}]" in text
        for key, value in table.items():
            if isinstance(value, dict):
                assert f"[{section}.{key}]" in text
                for sub in value:
                    assert f"{sub} = " in text, f"{section}.{key}.{sub}"
            else:
                assert f"{key} = " in text, f"{section}.{key}"


def test_docs_document_every_key():
    text = (REPO / "docs" / "configuration.md").read_text()

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    for key in leaves(Config.default().to_dict()):
        assert f"`{key}`" in text, key
