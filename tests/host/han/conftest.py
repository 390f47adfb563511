"""Fixtures of the HAN tests: the gateway's key store (one per session: making keys is the
slow part) and a directory with a consumer's client certificate."""

from __future__ import annotations

import pytest

from hankit import GATEWAY_ID
from smgw.han.accounts import make_client_identity
from smgw.security.keystore import KeyStore


@pytest.fixture(scope="session")
def keystore(tmp_path_factory):
    return KeyStore.load_or_create(tmp_path_factory.mktemp("pki"), GATEWAY_ID)


@pytest.fixture
def client_cert(tmp_path):
    """(cert_path, key_path, cert_pem) of a fresh self-signed client identity."""
    key_pem, cert_pem = make_client_identity("anna")
    cert, key = tmp_path / "anna.crt.pem", tmp_path / "anna.key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key, cert_pem
