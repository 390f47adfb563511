"""The LMN service's side of the firmware link: malformed LMN_RX / LMN_DONE messages are named
(the link answers them with ERR_BAD_FIELD), never raised or passed into the bus master."""

from types import SimpleNamespace

import pytest

from smgw.lmn.service import LmnService
from smgwfw import messages as m


@pytest.fixture
def svc(tmp_path):
    link = SimpleNamespace(link=SimpleNamespace(up=True))
    ingest = SimpleNamespace(meters={})
    return LmnService(link, ingest, SimpleNamespace(update=lambda **kw: None), "EOPN0000000001",
                      tmp_path / "keys")


@pytest.mark.parametrize("msg", [
    {m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: "x", m.K_LMN_FRAME: b"\x7e", m.K_LMN_CHECK: "x25"},
    {m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: 1, m.K_LMN_FRAME: "7e", m.K_LMN_CHECK: "x25"},
    {m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: 1, m.K_LMN_FRAME: b"\x7e", m.K_LMN_CHECK: 1},
    {m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: 1, m.K_LMN_FRAME: b"\x7e", m.K_LMN_CHECK: "x25",
     m.K_LMN_AT: "soon"},
    {m.K_TYPE: m.T_LMN_DONE, m.K_LMN_ID: 1, m.K_LMN_COUNT: "2", m.K_LMN_SENT: True},
    {m.K_TYPE: m.T_LMN_DONE, m.K_LMN_ID: None, m.K_LMN_COUNT: 2, m.K_LMN_SENT: True},
    {m.K_TYPE: m.T_LMN_DONE, m.K_LMN_ID: 1, m.K_LMN_COUNT: 2, m.K_LMN_SENT: 1},
])
def test_malformed_messages_are_named(svc, msg):
    assert svc.on_message(msg)


def test_well_formed_messages_pass(svc):
    assert svc.on_message({m.K_TYPE: m.T_LMN_RX, m.K_LMN_ID: None, m.K_LMN_FRAME: b"\x7e\x7e",
                           m.K_LMN_CHECK: "bad_crc", m.K_LMN_AT: None}) is None
    assert svc.on_message({m.K_TYPE: m.T_LMN_DONE, m.K_LMN_ID: 3, m.K_LMN_COUNT: 0,
                           m.K_LMN_SENT: True}) is None
    assert svc.master.counters["unsolicited"] == 1
