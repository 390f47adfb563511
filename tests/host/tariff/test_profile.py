"""Evaluation and communication profiles (smgw.tariff.profile): TOML layout, strict validation
with the dotted key in every error, the rules of each TAF, JSON round trip."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tafcalc_helpers import METER, doc, ms

from smgw.tariff.profile import (
    Channel,
    CommunicationProfile,
    EvaluationProfile,
    ProfileError,
    Sending,
    SwitchPoint,
    load_profile,
    parse_profile,
    profile_from_json,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "profiles"


def self_signed_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """examples/pki-like layout: <dir>/emt1/{tls,sig,enc}.crt.pem and root.crt.pem."""
    d = tmp_path_factory.mktemp("pki")
    (d / "emt1").mkdir()
    for k in ("tls", "sig", "enc"):
        (d / "emt1" / f"{k}.crt.pem").write_text(self_signed_pem(f"emt1 {k}"))
    (d / "root.crt.pem").write_text(self_signed_pem("root"))
    return d


def err(d, **kw) -> ProfileError:
    with pytest.raises(ProfileError) as ei:
        EvaluationProfile.from_json(d)
    return ei.value


def keys(e: ProfileError) -> list[str]:
    return [k for k, _ in e.errors]


# ----------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("name", ["taf1-monthly", "taf2-ht-nt", "taf6-daily", "taf7-15min",
                                  "taf9-feedin", "taf10-grid", "taf14-hf"])
def test_example_profiles_load_and_round_trip(name):
    p = load_profile(EXAMPLES / f"{name}.toml")
    assert isinstance(p, EvaluationProfile) and p.name == name
    j = p.to_json()
    assert json.loads(json.dumps(j)) == j
    assert EvaluationProfile.from_json(j) == p
    assert profile_from_json(j) == p


def test_example_taf2_content():
    p = load_profile(EXAMPLES / "taf2-ht-nt.toml")
    assert p.taf == 2 and p.billing_relevant
    assert [(s.number, s.name) for s in p.stages] == [(1, "HT"), (2, "NT")]
    assert p.switching[0] == SwitchPoint(frozenset({"mon", "tue", "wed", "thu", "fri", "sat",
                                                    "sun", "holiday"}), dt.time(0), 2)
    assert p.switching[1].days == frozenset({"mon", "tue", "wed", "thu", "fri"})
    assert p.sending == (Sending("periodic", offset_s=300),)
    assert p.valid_from_ms == ms(2026, 1, 1) and p.valid_until_ms is None
    bp = p.billing_parameters()
    assert bp["taf"] == "2" and bp["billing_period"] == "day"
    assert bp["switching"].startswith("mon,tue,wed,thu,fri,sat,sun,holiday 00:00=2; ")
    assert bp["special_days"] == "2026-12-25=holiday; 2026-12-26=holiday"


def test_example_taf1_signs_and_taf9_not_billing():
    p = load_profile(EXAMPLES / "taf1-monthly.toml")
    assert [c.sign for c in p.channels] == [1, -1]
    assert "(-)" in p.billing_parameters()["channels"]
    q = load_profile(EXAMPLES / "taf9-feedin.toml")
    assert not q.billing_relevant and q.billing_parameters() == {}
    assert q.pseudonym == "pv-anlage-7f3a" and q.aggregation == ("min", "max", "mean")
    assert q.billing_period is None


def test_communication_profile_with_files_relative_to_the_profile(pki, tmp_path):
    prof_dir = tmp_path / "profiles"
    prof_dir.mkdir()
    shutil.copy(EXAMPLES / "emt1.toml", prof_dir / "emt1.toml")
    shutil.copytree(pki, tmp_path / "pki")
    p = load_profile(prof_dir / "emt1.toml")
    assert isinstance(p, CommunicationProfile)
    assert p.name == "emt1" and p.url.startswith("https://")
    assert p.tls_cert == (pki / "emt1" / "tls.crt.pem").read_text().strip() + "\n"
    assert (p.retry_min_s, p.retry_max_s, p.fail_after) == (5, 3600, 5)
    j = p.to_json()
    assert "tls_cert_file" not in j["profile"] and "BEGIN CERTIFICATE" in j["profile"]["tls_cert"]
    assert CommunicationProfile.from_json(j) == p
    with pytest.raises(ProfileError, match="expected an evaluation profile"):
        EvaluationProfile.from_json(j)


def test_communication_profile_inline_pem_and_errors(pki):
    tls = (pki / "emt1" / "tls.crt.pem").read_text()
    text = f'''
[profile]
kind = "communication"
name = "emt2"
url = "https://127.0.0.1:9443/smgw"
tls_cert = """{tls}"""
sig_cert_file = "{pki}/emt1/sig.crt.pem"
enc_cert_file = "{pki}/emt1/enc.crt.pem"
root_file = "{pki}/root.crt.pem"
retry_min_s = 10
'''
    p = parse_profile(text)
    assert p.root is not None and p.retry_min_s == 10
    bad = text.replace("https://127.0.0.1", "http://127.0.0.1").replace(
        f'enc_cert_file = "{pki}/emt1/enc.crt.pem"', 'enc_cert = "not a cert"').replace(
        "retry_min_s = 10", f'retry_min_s = 10\nretry_max_s = 5\ntls_cert_file = "{pki}/x.pem"')
    with pytest.raises(ProfileError) as ei:
        parse_profile(bad, "emt2.toml")
    assert keys(ei.value) == ["profile.url", "profile.tls_cert", "profile.enc_cert",
                              "profile.retry_max_s"]
    assert str(ei.value).startswith("emt2.toml: profile.url: ")
    missing = text.replace(f'sig_cert_file = "{pki}/emt1/sig.crt.pem"',
                           'sig_cert_file = "nowhere.pem"')
    with pytest.raises(ProfileError) as ei:
        parse_profile(missing)
    assert ei.value.key == "profile.sig_cert_file" and "cannot read" in str(ei.value)
    with pytest.raises(ProfileError) as ei:
        parse_profile('[profile]\nkind = "communication"\nname = "x"\nurl = "https://h/"\n'
                      'stages = 3\n')
    assert "profile.stages" in keys(ei.value) and "profile.sig_cert" in keys(ei.value)


# -------------------------------------------------------------------------- TOML specifics


def test_toml_native_datetime_time_and_date():
    text = (EXAMPLES / "taf2-ht-nt.toml").read_text()
    text = text.replace('valid_from = "2026-01-01T00:00:00+01:00"',
                        "valid_from = 2026-01-01T00:00:00+01:00")
    text = text.replace('time = "06:00"', "time = 06:00:00")
    text = text.replace('date = "2026-12-25"', "date = 2026-12-25")
    p = parse_profile(text)
    assert p == load_profile(EXAMPLES / "taf2-ht-nt.toml")


def test_toml_syntax_error_and_missing_kind():
    with pytest.raises(ProfileError, match="not valid TOML") as ei:
        parse_profile("[profile\nname=1", "x.toml")
    assert ei.value.source == "x.toml"
    with pytest.raises(ProfileError) as ei:
        parse_profile('[profile]\nname = "x"\n')
    assert ei.value.key == "profile.kind"
    with pytest.raises(ProfileError) as ei:
        parse_profile('name = "x"\n')
    assert ei.value.key == "profile"


def test_unknown_keys_are_errors_with_suggestions():
    d = doc(7, profile={"registraton_period_s": 900, "stage": 1})
    d["channels"][0]["obiss"] = "1-0:1.8.0"
    d["stagse"] = []
    e = err(d)
    msgs = dict(e.errors)
    assert "did you mean 'profile.registration_period_s'?" in msgs["profile.registraton_period_s"]
    assert "belongs in switching[].stage" in msgs["profile.stage"]
    assert "did you mean 'channels[0].obis'?" in msgs["channels[0].obiss"]
    assert "did you mean 'stages'?" in msgs["stagse"]


def test_all_problems_are_reported_at_once():
    d = doc(2, profile={"taf": 2, "consumer": "", "recipients": []})
    d["stages"][1]["number"] = 63
    e = err(d)
    assert {"profile.consumer", "profile.recipients", "stages[1].number"} <= set(keys(e))
    assert len(str(e).splitlines()) == len(e.errors)
    assert all(line.split(":")[0] in keys(e) for line in str(e).splitlines())


def test_strict_types():
    e = err(doc(True))  # type: ignore[arg-type]
    assert e.key == "profile.taf" and "boolean true" in str(e)
    e = err(doc(7, profile={"registration_period_s": 900.0}))
    assert e.key == "profile.registration_period_s" and "float" in str(e)
    e = err(doc(7, profile={"recipients": "emt1"}))
    assert e.key == "profile.recipients"


# ------------------------------------------------------------------------ the rules, one by one

RULES = [
    # (taf, profile keys, tables, expected key, message fragment)
    (3, {}, {}, "profile.taf", "not supported"),
    (1, {"billing_period": "day"}, {}, "profile.billing_period", "at least one month"),
    (1, {"billing_period": "P0M"}, {}, "profile.billing_period", "P<n>M"),
    (1, {}, {"stages": [{"number": 1, "name": "HT"}]}, "stages", "only TAF 2"),
    (2, {}, {"stages": [{"number": 1, "name": "HT"}],
             "switching": [{"days": ["all"], "time": "00:00", "stage": 1}]},
     "stages", "at least two"),
    (2, {}, {"stages": [{"number": 1, "name": "HT"}, {"number": 63, "name": "E"}]},
     "stages[1].number", "reserved"),
    (2, {}, {"stages": [{"number": 1, "name": "HT"}, {"number": 21, "name": "X"}]},
     "stages[1].number", "between 1 and 20"),
    (2, {}, {"stages": [{"number": 1, "name": "HT"}, {"number": 1, "name": "X"}]},
     "stages[1].number", "defined twice"),
    (2, {}, {"switching": [{"days": ["all"], "time": "00:00", "stage": 2},
                           {"days": ["mon"], "time": "06:10", "stage": 1}]},
     "switching[1].time", "registration grid"),
    (2, {}, {"switching": [{"days": ["weekdays"], "time": "00:00", "stage": 2},
                           {"days": ["sun"], "time": "00:00", "stage": 1}]},
     "switching", "'sat' has no switching point at 00:00"),
    (2, {}, {"special_days": [{"date": "2026-12-25", "day": "holiday"}],
             "switching": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                            "time": "00:00", "stage": 2}]},
     "switching", "'holiday'"),
    (2, {}, {"switching": [{"days": ["all"], "time": "00:00", "stage": 2},
                           {"days": ["mon"], "time": "06:00", "stage": 3}]},
     "switching[1].stage", "not defined"),
    (2, {}, {"switching": [{"days": ["all"], "time": "00:00", "stage": 2},
                           {"days": ["mon"], "time": "06:00", "stage": 63}]},
     "switching[1].stage", "error register"),
    (2, {}, {"switching": [{"days": ["all"], "time": "00:00", "stage": 2},
                           {"days": ["mon"], "time": "00:00", "stage": 1}]},
     "switching[1].days", "already set by switching[0]"),
    (2, {}, {"switching": [{"days": ["all"], "time": "00:00", "stage": 2},
                           {"days": ["monday"], "time": "06:00", "stage": 1}]},
     "switching[1].days[0]", "did you mean 'mon'"),
    (2, {}, {"switching": [{"days": ["all"], "time": "24:00", "stage": 2}]},
     "switching[0].time", "HH:MM"),
    (2, {}, {"special_days": [{"date": "2026-02-30", "day": "sun"}]},
     "special_days[0].date", "YYYY-MM-DD"),
    (2, {}, {"channels": [{"meter": METER, "obis": "1-0:1.8.1"}]},
     "channels[0].obis", "E = 0"),
    (2, {}, {"channels": [{"meter": METER, "obis": "1-0:1.8.0", "sign": -1}]},
     "channels[0].sign", "only TAF 1"),
    (6, {"billing_period": "month"}, {}, "profile.billing_period", "\"day\""),
    (7, {"retention_days": 42}, {}, "profile.retention_days", "only TAF 6"),
    (7, {"registration_period_s": 600}, {}, "profile.registration_period_s", "900"),
    (7, {"registration_period_s": 7000}, {}, "profile.registration_period_s", "divide a day"),
    (7, {"billing_period": "month"}, {}, "profile.billing_period", "no billing period"),
    (7, {"aggregation": ["min"]}, {}, "profile.aggregation", "only TAF 9, 10 and 14"),
    (1, {"pseudonym": "x"}, {}, "profile.pseudonym", "only TAF 9, 10 and 14"),
    (9, {"aggregation": ["min", "median"]}, {}, "profile.aggregation[1]", "not one of"),
    (10, {"aggregation": ["min", "min"]}, {}, "profile.aggregation[1]", "twice"),
    (14, {"registration_period_s": 30}, {}, "profile.registration_period_s", "60 s"),
    (7, {"recipients": []}, {}, "profile.recipients", "at least one"),
    (7, {"recipients": ["emt1", "emt1"]}, {}, "profile.recipients[1]", "twice"),
    (7, {"valid_from": "2026-01-01T00:00:00"}, {}, "profile.valid_from", "no UTC offset"),
    (7, {"valid_from": "yesterday"}, {}, "profile.valid_from", "ISO 8601"),
    (7, {"valid_until": "2025-01-01T00:00:00+01:00"}, {}, "profile.valid_until", "after"),
    (7, {"timezone": "Europe/Bonn"}, {}, "profile.timezone", "IANA"),
    (7, {"name": "a b"}, {}, "profile.name", "profile name"),
    (7, {"usage_point": None}, {}, "profile.usage_point", "missing"),
    (7, {}, {"channels": []}, "channels", "at least one"),
    (7, {}, {"channels": None}, "channels", "missing"),
    (7, {}, {"channels": [{"meter": "0A01454D48", "obis": "1-0:1.8.0"}]},
     "channels[0].meter", "lower case"),
    (7, {}, {"channels": [{"meter": "0a0", "obis": "1-0:1.8.0"}]},
     "channels[0].meter", "even number"),
    (7, {}, {"channels": [{"meter": METER, "obis": "1.8.0"}]}, "channels[0].obis", "A-B:C.D.E"),
    (7, {}, {"channels": [{"meter": METER, "obis": "1-0:1.8.256"}]}, "channels[0].obis",
     "A-B:C.D.E"),
    (7, {}, {"channels": [{"meter": METER, "obis": "1-0:1.8.0"},
                          {"meter": METER, "obis": "1-0:1.8.0"}]},
     "channels[1].obis", "already channels[0]"),
    (1, {}, {"channels": [{"meter": METER, "obis": "1-0:1.8.0", "sign": 2}]},
     "channels[0].sign", "1 or -1"),
    (1, {}, {"sending": [{"trigger": "threshold", "channel": 0, "above": 5}]},
     "sending[0].trigger", "does not send"),
    (1, {}, {"sending": [{"trigger": "periodic", "period_s": 86400}]},
     "sending[0].period_s", "once per billing period"),
    (7, {}, {"sending": [{"trigger": "periodic"}]}, "sending[0].period_s", "missing"),
    (7, {}, {"sending": [{"trigger": "periodic", "period_s": 1000}]}, "sending[0].period_s",
     "divide a day"),
    (7, {}, {"sending": [{"trigger": "on-demand", "period_s": 900}]}, "sending[0].period_s",
     "does not apply"),
    (7, {}, {"sending": [{"trigger": "periodic", "period_s": 900, "offset_s": 900}]},
     "sending[0].offset_s", "shorter"),
    (7, {}, {"sending": [{"trigger": "sometimes"}]}, "sending[0].trigger", "not one of"),
    (9, {}, {"sending": [{"trigger": "threshold", "above": 5}]}, "sending[0].channel",
     "missing"),
    (9, {}, {"sending": [{"trigger": "threshold", "channel": 3, "above": 5}]},
     "sending[0].channel", "no channels[3]"),
    (9, {}, {"sending": [{"trigger": "threshold", "channel": 0}]}, "sending[0].above",
     "above, below or both"),
    (9, {}, {"sending": [{"trigger": "adhoc"}]}, "sending[0].trigger", "does not send"),
    (6, {}, {"sending": [{"trigger": "on-demand"}, {"trigger": "on-demand"}]},
     "sending[1].trigger", "already"),
]


@pytest.mark.parametrize("taf,prof,tables,key,fragment", RULES,
                         ids=[f"{r[0]}-{r[3]}-{r[4]}" for r in RULES])
def test_rule(taf, prof, tables, key, fragment):
    e = err(doc(taf, profile=prof, **tables))
    assert key in keys(e), str(e)
    msgs = [m for k, m in e.errors if k == key]
    assert any(fragment in m for m in msgs), msgs


def test_defaults_per_taf():
    p6 = EvaluationProfile.from_json(doc(6))
    assert (p6.billing_period, p6.retention_days) == ("day", 42)
    assert p6.sending == (Sending("on-demand"),)
    p1 = EvaluationProfile.from_json(doc(1, profile={"billing_period": "P1M"}))
    assert p1.billing_period == "month" and p1.sending == (Sending("periodic"),)
    p7 = EvaluationProfile.from_json(doc(7, profile={"registration_period_s": 1800}))
    assert p7.billing_period is None and p7.sending == (Sending("periodic", period_s=86400),)
    p14 = EvaluationProfile.from_json(doc(14, profile={"registration_period_s": 60}))
    assert p14.sending == (Sending("periodic", period_s=900),)
    assert p14.channels == (Channel(METER, "1-0:1.8.0", 1),)
    assert not p14.billing_relevant and p7.billing_relevant
    assert p7.valid_at(ms(2026, 1, 1)) and not p7.valid_at(ms(2025, 12, 31, 23, 59))


def test_taf2_channels_need_distinct_obis():
    d = doc(2, channels=[{"meter": METER, "obis": "1-0:1.8.0"},
                         {"meter": "0a01454d4800000d3e4f", "obis": "1-0:1.8.0"}])
    e = err(d)
    assert e.key == "channels[1].obis"
