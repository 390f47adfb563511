"""Shared test PKIs: made once per session (key generation is cheap, but hypothesis and the
openssl checks use them hundreds of times)."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from smgw.security.testpki import TestPki, Triple


@dataclass
class Bench:
    dir: Path
    pki: TestPki
    gw: Triple      # the gateway
    emt1: Triple
    emt2: Triple


def _bench(dir: Path, curve: str) -> Bench:
    pki = TestPki.create(dir, curve=curve)
    return Bench(dir, pki, pki.issue_triple("EOPN0000000001"), pki.issue_triple("emt1"),
                 pki.issue_triple("emt2"))


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Bench:
    return _bench(tmp_path_factory.mktemp("pki") / "pki", "P-256")


@pytest.fixture(scope="session")
def bp_bench(tmp_path_factory) -> Bench:
    return _bench(tmp_path_factory.mktemp("pki-bp") / "pki", "brainpoolP256r1")


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory) -> Bench:
    """A second, unrelated PKI with the same names (an attacker's look-alike)."""
    return _bench(tmp_path_factory.mktemp("pki-other") / "pki", "P-256")
