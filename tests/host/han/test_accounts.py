"""HAN accounts: the file, validation, client certificates, and the `smgw han account` CLI."""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import NameOID

from hankit import GATEWAY_ID
from smgw.han import cli as han_cli
from smgw.han.accounts import (
    AccountError,
    Accounts,
    cert_fingerprint,
    make_client_identity,
)
from smgw.han.digest import ha1

REALM = GATEWAY_ID.lower()


def accounts(tmp_path):
    return Accounts.open(tmp_path, GATEWAY_ID)


def test_absent_file_is_empty_and_realm_is_the_lower_case_gateway_id(tmp_path):
    a = accounts(tmp_path)
    assert len(a) == 0 and a.realm == REALM
    assert a.path == tmp_path / "han-accounts.json"


def test_add_stores_ha1_never_the_password(tmp_path):
    a = accounts(tmp_path)
    acct = a.add("demo", "consumer", "Sehr-geheim", consumer="LV1")
    text = (tmp_path / "han-accounts.json").read_text()
    assert "Sehr-geheim" not in text
    assert acct.ha1 == {"MD5": ha1("MD5", "demo", REALM, "Sehr-geheim"),
                        "SHA-256": ha1("SHA-256", "demo", REALM, "Sehr-geheim")}
    assert stat.S_IMODE(os.stat(a.path).st_mode) == 0o600
    again = accounts(tmp_path)
    assert again.get("demo") == acct
    assert again.ha1("demo", "md5") == acct.ha1["MD5"]
    assert again.ha1("nobody", "MD5") is None


@pytest.mark.parametrize("kw,match", [
    (dict(name="a b", role="consumer", password="x", consumer="LV1"), "name 'a b'"),
    (dict(name="x", role="admin", password="x"), "role"),
    (dict(name="x", role="consumer", password="x"), "consumer id"),
    (dict(name="x", role="technician", password="x", consumer="LV1"), "no consumer id"),
    (dict(name="x", role="consumer", consumer="LV1"), "password, a client certificate"),
    (dict(name="x", role="consumer", password="", consumer="LV1"), "non-empty"),
    (dict(name="x", role="consumer", password="a\nb", consumer="LV1"), "control"),
])
def test_add_validation_names_the_problem(tmp_path, kw, match):
    with pytest.raises(AccountError, match=match):
        accounts(tmp_path).add(**kw)


def test_duplicate_name_and_remove(tmp_path):
    a = accounts(tmp_path)
    a.add("demo", "consumer", "pw", consumer="LV1")
    with pytest.raises(AccountError, match="exists already"):
        a.add("demo", "technician", "pw")
    assert a.remove("demo") and not a.remove("demo")
    assert accounts(tmp_path).get("demo") is None


def test_other_process_changes_are_picked_up(tmp_path):
    a = accounts(tmp_path)
    assert not a.reload_if_changed()
    b = accounts(tmp_path)
    b.add("service", "technician", "pw")
    assert a.reload_if_changed()
    assert a.get("service").role == "technician"
    assert not a.reload_if_changed()


def test_realm_mismatch_is_refused_with_the_reason(tmp_path):
    accounts(tmp_path).add("demo", "consumer", "pw", consumer="LV1")
    with pytest.raises(AccountError, match="realm.*gateway.id changed"):
        Accounts.open(tmp_path, "EOPN0000000002")


def test_broken_file_names_the_entry(tmp_path):
    accounts(tmp_path).add("demo", "consumer", "pw", consumer="LV1")
    p = tmp_path / "han-accounts.json"
    doc = json.loads(p.read_text())
    doc["accounts"][0]["role"] = "boss"
    p.write_text(json.dumps(doc))
    with pytest.raises(AccountError, match=r"accounts\[0\]\.role"):
        accounts(tmp_path)


def test_client_certificate_enrolment(tmp_path):
    a = accounts(tmp_path)
    key_pem, cert_pem = make_client_identity("anna")
    acct = a.add("anna", "consumer", None, consumer="LV2", cert_pem=cert_pem)
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    assert acct.certs[0].sha256 == cert_fingerprint(der)
    assert not acct.has_password
    assert a.by_cert_der(der) == acct
    assert a.client_cert_pems() == [cert_pem.decode()]
    with pytest.raises(AccountError, match="enrolled for 'anna'"):
        a.add("bert", "consumer", "pw", consumer="LV3", cert_pem=cert_pem)
    # a second certificate, then withdraw the first
    _, cert2 = make_client_identity("anna-phone")
    a.add_cert("anna", cert2)
    a.remove_cert("anna", acct.certs[0].sha256[:12])
    assert a.by_cert_der(der) is None
    with pytest.raises(AccountError, match="no way to log in"):
        a.remove_cert("anna", a.get("anna").certs[0].sha256)
    with pytest.raises(AccountError, match="0 certificates match"):
        a.remove_cert("anna", "")


def _cert(days_from=-1, days_to=30, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now + datetime.timedelta(days=days_from))
            .not_valid_after(now + datetime.timedelta(days=days_to))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()).public_bytes(Encoding.PEM))


@pytest.mark.parametrize("pem,match", [
    (_cert(-30, -1), "expired"), (_cert(1, 30), "valid only from"),
    (_cert(ca=True), "CA certificate"), (b"-----BEGIN CERTIFICATE-----\nxx\n", "not a PEM")])
def test_unusable_certificates_are_refused(tmp_path, pem, match):
    with pytest.raises(AccountError, match=match):
        accounts(tmp_path).add("x", "consumer", None, consumer="LV1", cert_pem=pem)


def test_password_change_keeps_the_certificates(tmp_path):
    a = accounts(tmp_path)
    _, cert = make_client_identity("demo")
    a.add("demo", "consumer", "old", consumer="LV1", cert_pem=cert)
    a.set_password("demo", "new")
    assert a.ha1("demo", "MD5") == ha1("MD5", "demo", REALM, "new")
    assert len(a.get("demo").certs) == 1
    a.set_password("demo", None)
    assert not a.get("demo").has_password


# ----------------------------------------------------------------------------- CLI

def cli(tmp_path, *argv, stdin=""):
    p = argparse.ArgumentParser(prog="smgw")
    p.add_argument("-c", "--config")
    p.add_argument("--data-dir")
    sub = p.add_subparsers(dest="command", required=True)
    han_cli.add_parser(sub)
    args = p.parse_args(["--data-dir", str(tmp_path), *argv])
    return args.func(args)


def test_cli_add_list_passwd_remove(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-1\n"))
    assert cli(tmp_path, "han", "account", "add", "demo", "--role", "consumer",
               "--consumer", "LV1", "--password-stdin") == 0
    assert "added consumer account demo (consumer LV1)" in capsys.readouterr().out
    assert cli(tmp_path, "han", "account", "add", "service", "--role", "technician",
               "--password", "s") == 0
    assert cli(tmp_path, "han", "account", "list", "--json") == 0
    out = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert out["realm"] == REALM
    assert [(x["name"], x["role"], x["consumer"]) for x in out["accounts"]] == [
        ("demo", "consumer", "LV1"), ("service", "technician", None)]
    assert "ha1" not in json.dumps(out)
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-2\n"))
    assert cli(tmp_path, "han", "account", "passwd", "demo", "--password-stdin") == 0
    assert Accounts.open(tmp_path, GATEWAY_ID).ha1("demo", "MD5") == ha1("MD5", "demo", REALM,
                                                                          "pw-2")
    assert cli(tmp_path, "han", "account", "remove", "demo") == 0
    assert cli(tmp_path, "han", "account", "remove", "demo") == 1
    assert "no such account" in capsys.readouterr().err


def test_cli_refusals_exit_1_usage_exit_2(tmp_path, monkeypatch, capsys):
    assert cli(tmp_path, "han", "account", "add", "x", "--role", "consumer",
               "--password", "p") == 1
    assert "consumer id" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli(tmp_path, "han", "account", "add", "x", "--role", "technician",
               "--password-stdin") == 2
    assert cli(tmp_path, "han", "account", "add", "x", "--role", "technician",
               "--no-password") == 2


def test_cli_new_cert_writes_key_cert_and_p12(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(tmp_path, "han", "account", "add", "anna", "--role", "consumer", "--consumer",
               "LV2", "--no-password", "--new-cert", str(out), "--p12-password", "pin") == 0
    crt = (out / "anna.crt.pem").read_bytes()
    assert stat.S_IMODE(os.stat(out / "anna.key.pem").st_mode) == 0o600
    key, cert, _ = pkcs12.load_key_and_certificates((out / "anna.p12").read_bytes(), b"pin")
    assert cert.public_bytes(Encoding.PEM) == crt
    a = Accounts.open(tmp_path, GATEWAY_ID)
    assert a.by_cert_der(cert.public_bytes(Encoding.DER)).name == "anna"
    # enrol a further certificate from a file, list shows both
    _, c2 = make_client_identity("anna2")
    (tmp_path / "c2.pem").write_bytes(c2)
    assert cli(tmp_path, "han", "account", "cert", "anna", str(tmp_path / "c2.pem")) == 0
    assert cli(tmp_path, "han", "account", "list") == 0
    assert capsys.readouterr().out.count("certificate ") >= 2
