import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import pki  # noqa: E402

from smgw.security.testpki import TestPki  # noqa: E402


def test_init_creates_pki_and_triples_then_keeps_them(tmp_path, capsys):
    d = tmp_path / "pki"
    assert pki.main(["init", str(d), "--gateway", "EOPN0000000001", "--emt", "emt1", "emt2",
                     "--emt", "emt3", "--gwa", "gwa"]) == 0
    out = capsys.readouterr().out
    assert "created (P-256)" in out and "emt3: issued" in out
    t = TestPki.load(d)
    assert set(t.names()) == {"EOPN0000000001", "emt1", "emt2", "emt3", "gwa"}
    before = (d / "emt1" / "sig.key.pem").read_bytes()
    assert pki.main(["init", str(d), "--emt", "emt1", "--emt", "emt4"]) == 0
    out = capsys.readouterr().out
    assert "emt1: exists, kept" in out and "emt4: issued" in out
    assert (d / "emt1" / "sig.key.pem").read_bytes() == before


def test_init_brainpool_and_curve_mismatch(tmp_path, capsys):
    d = tmp_path / "pki"
    assert pki.main(["init", str(d), "--curve", "brainpoolP256r1", "--gateway", "gw"]) == 0
    assert TestPki.load(d).curve == "brainpoolP256r1"
    assert pki.main(["init", str(d), "--curve", "P-256"]) == 2
    assert "exists with curve brainpoolP256r1" in capsys.readouterr().err


def test_show_prints_subjects_skis_and_validity(tmp_path):
    d = tmp_path / "pki"
    pki.main(["init", str(d), "--gateway", "EOPN0000000001", "--emt", "emt1"])
    r = subprocess.run([sys.executable, str(REPO / "tools" / "pki.py"), "show", str(d)],
                       capture_output=True, text=True, check=True)
    t = TestPki.load(d)
    assert "CN=SMGW Test-PKI Root-CA,O=SMGW Test-PKI,C=DE" in r.stdout
    assert "CN=emt1,OU=ENC,O=SMGW Test-PKI,C=DE" in r.stdout
    assert t.sub_ca.ski.hex() in r.stdout
    assert t.load_triple("emt1").tls.ski.hex() in r.stdout
    assert "serverAuth, clientAuth" in r.stdout and "key_agreement" in r.stdout
    assert r.stdout.count("  valid     ") == 2 + 6


@pytest.mark.parametrize("argv,msg", [(["show", "nowhere"], "holds no PKI"),
                                      (["init", "{d}", "--emt", "../x"], "bad entity name")])
def test_errors_are_reported_not_raised(tmp_path, capsys, argv, msg):
    argv = [a.format(d=tmp_path / "p") for a in argv]
    assert pki.main(argv) == 2
    assert msg in capsys.readouterr().err
