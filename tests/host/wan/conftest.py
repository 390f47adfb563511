"""Fixtures of the WAN tests (the pieces are in wanbench.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smgw import events
from smgw.security.keystore import KeyStore
from wanbench import GW, Env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    ks = KeyStore.load_or_create(tmp_path / "pki", GW)
    return Env(tmp_path, ks, ks.issue_emt("emt1"))


@pytest.fixture
def raised():
    """The catalogue events raised during the test: [(id, params)] (through the real
    emitter and catalogue, into a sink instead of the logbooks)."""
    got: list[tuple[int, dict]] = []
    old = events.get_sink()
    events.set_sink(lambda cat, level, status, params, text: got.append((cat, dict(params))))
    yield got
    events.set_sink(old)


@pytest.fixture
def emit():
    return events.emitter(logging.getLogger("test.wan"), fill={"smgw": GW})
