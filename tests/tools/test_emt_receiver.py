"""tools/emt_receiver.py as a bench user runs it: a process that issues its triple, listens,
prints each message and a summary on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from smgw.formats import k461
from smgw.security import cms, valuesig
from smgw.security.keystore import KeyStore
from smgw.security.testpki import read_triple
from smgw.tariff.model import DerivedValue
from smgw.wan.push import push

REPO = Path(__file__).resolve().parents[2]
GW = "EOPN0000000001"


def test_receiver_tool_prints_what_it_stores(tmp_path: Path) -> None:
    ks = KeyStore.load_or_create(tmp_path / "pki", GW)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "emt_receiver.py"), "--pki", str(tmp_path / "pki"),
         "--name", "emt1", "--port", "0", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("issued a certificate triple for emt1")
        line = proc.stdout.readline()
        assert "listening on https://127.0.0.1:" in line
        url = line.split("listening on ")[1].split(";")[0]
        emt = read_triple(tmp_path / "pki", "emt1")
        v = DerivedValue(profile="taf1-lv1", taf=1, register="1-0:1.8.1", owner="taf1-lv1",
                         period_start_ms=0, period_end_ms=86_400_000, target_ms=86_400_000,
                         value=42, scaler=0, unit="Wh")
        doc = k461.values_document([(v, valuesig.sign_value(ks.sig, v, GW))], GW)
        status = asyncio.run(push(url, cms.protect(doc, ks.sig, emt.enc.cert),
                                  message_id="tool-1", gateway_id=GW, client=ks.tls,
                                  roots=ks.roots, server_cert=emt.tls.cert))
        assert status == 201
        assert proc.stdout.readline().strip() == \
            f"received tool-1 from {GW}: 1 values (taf1-lv1)"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped: 1 messages, 1 values, 0 duplicates, 0 rejected, 0 bad signatures" in out
    assert (tmp_path / "out" / "messages" / "tool-1.json").exists()


def test_receiver_tool_names_a_missing_pki(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "emt_receiver.py"), "--pki",
                        str(tmp_path / "nope"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no test PKI here" in r.stderr
