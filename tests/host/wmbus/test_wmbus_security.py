"""OMS security (smgw.wmbus.security through smgw.wmbus.decode): CMAC / KDF-A check values,
mode-5 IVs, wrong keys, clear telegrams where encryption is expected, missing keys, partial
encryption, MAC coverage, unsupported modes (design note meter-protocols.md §2, §6.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smgw.wmbus import (
    CATALOGUE_DECRYPT,
    WmbusCrc,
    WmbusDecrypt,
    WmbusError,
    WmbusNoKey,
    WmbusNotEncrypted,
    WmbusReplay,
    WmbusShort,
    WmbusSyntax,
)
from smgw.wmbus.decode import decode
from smgw.wmbus.link import crc16, strip_crcs
from smgw.wmbus.security import (
    aes_cbc_encrypt,
    aes_ctr,
    check_key,
    cmac,
    decrypt_mode5,
    ell_counter_block,
    kdf_a,
    mode5_iv,
)
from smgw.wmbus.tpl import parse_tpl

VECTORS = {v["name"]: v for v in json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wmbus_vectors.json").read_text("utf-8")
)["vectors"]}


def vec(name: str) -> tuple[bytes, bytes | None]:
    v = VECTORS[name]
    return bytes.fromhex(v["hex"]), (bytes.fromhex(v["key"]) if v["key"] else None)


def relen(t: bytes | bytearray) -> bytes:
    t = bytearray(t)
    t[0] = len(t) - 1
    return bytes(t)


V1, K1 = vec("V1")
V2, K2 = vec("V2")
V3, K3 = vec("V3")
V4, K4 = vec("V4")
V6B, K6 = vec("V6")
V6 = strip_crcs(V6B)[0]
WRONG = b"\xaa" * 16


# ------------------------------------------------------------------------------- primitives

def test_cmac_rfc4493():
    k = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert cmac(k, b"").hex().upper() == "BB1D6929E95937287FA37D129B756746"
    assert cmac(k, bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")).hex().upper() == (
        "070A16B46B4D4144F79BDD9DD04A287C")


def test_kdf_a_cen_tr_17167_f3():
    k = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    ident = bytes.fromhex("78563412")
    assert kdf_a(k, 0x00, 2739, ident).hex().upper() == VECTORS["V2"]["kenc"]
    assert kdf_a(k, 0x01, 2739, ident).hex().upper() == VECTORS["V2"]["kmac"]
    assert VECTORS["V2"]["kenc"] == "ECCF39D475D730B8284FDFDC1995D52F"


def test_mode5_iv_v1_and_counter_block_v4():
    assert mode5_iv(V1[2:10], 0x2A).hex().upper() == VECTORS["V1"]["iv"]
    assert ell_counter_block(V4[2:10], 0x20, bytes.fromhex("D37CAC21")).hex().upper() == (
        "2D2C998734761B1620D37CAC21000000")
    assert ell_counter_block(V4[2:10], 0xFF, bytes(4))[8] == 0xED  # H and R forced to 0


def test_check_key():
    assert check_key(None) is None
    assert check_key("00" * 16) == bytes(16)
    assert check_key(bytearray(16)) == bytes(16)
    for bad in (b"\x00" * 15, "00" * 17, "zz" * 16):
        with pytest.raises(ValueError):
            check_key(bad)
    with pytest.raises(ValueError):
        decode(V1, b"short")


# --------------------------------------------------------------------------- mode 5 and IVs

def test_mode5_long_header_iv_uses_the_tpl_address():
    """V3: only the long TPL's address (QDS 55667788 / 0x55 / 0x08) decrypts, not the DLL's
    (QDS 11223344 / 0x55 / 0x37). Both start with the same M, so the DLL IV still yields 2F2F
    but garbles bytes 2..7 of the first block."""
    t = decode(V3, K3, decode_apl=False)
    assert t.payload.startswith(bytes.fromhex("2F2F0B6E341200426CFE04"))
    assert VECTORS["V3"]["iv"] == mode5_iv(t.tpl.meter.raw, 0).hex().upper()
    tpl = parse_tpl(V3, 13)
    wrong = decrypt_mode5(K3, tpl, V3[2:10], V3[13 + tpl.length:])
    assert wrong[8:] == t.payload[8:]
    assert [i for i in range(8) if wrong[i] != t.payload[i]] == [2, 3, 4, 5, 7]  # ID, type


def test_partial_encryption_keeps_the_clear_tail():
    t = decode(V3, K3, decode_apl=False)
    assert t.tpl.encrypted_blocks == 1
    assert t.payload[16:] == bytes.fromhex(VECTORS["V3"]["clear_tail"]) == V3[-7:]
    t = decode(V6B, K6, decode_apl=False)
    assert t.payload.endswith(bytes.fromhex(VECTORS["V6"]["clear_tail"]))
    assert len(t.payload) == 9 * 16 + 11


@pytest.mark.parametrize("name, code", [
    ("V1", "no_2f2f"), ("V3", "no_2f2f"), ("V2", "mac"), ("V6", "mac"), ("V4", "ell_crc"),
    ("V11", "ell_crc"), ("V10", "no_2f2f"),
])
def test_wrong_key(name, code):
    data, _ = vec(name)
    with pytest.raises(WmbusDecrypt) as e:
        decode(data, WRONG)
    assert e.value.code == code and e.value.catalogue_id == CATALOGUE_DECRYPT == 10262
    assert not isinstance(e.value, WmbusNotEncrypted)


def test_truncated_encrypted_blocks():
    with pytest.raises(WmbusShort):
        decode(relen(V1[:-1]), K1)  # 2 blocks announced, 31 bytes left


def test_mode5_zero_blocks_means_every_whole_block():
    t = bytearray(V1)
    t[13] = 0x00  # CFG 0x2500: N = 0
    assert decode(bytes(t), K1, decode_apl=False).payload[:2] == b"\x2f\x2f"
    short = relen(bytearray(t[:15]) + b"\x01\x02")  # not even one block
    with pytest.raises(WmbusNotEncrypted):
        decode(short, K1)


# ------------------------------------------------------------------------------------ mode 7

def test_mode7_mac_covers_the_clear_tail():
    bad = bytearray(V6)
    bad[-1] ^= 0x01  # last byte of the clear tail (parameter-set id)
    with pytest.raises(WmbusDecrypt) as e:
        decode(bytes(bad), K6, frame="none")
    assert e.value.code == "mac"


def test_mode7_mac_covers_the_counter_and_the_tpl_header():
    # V2 layout: DLL 10 | ELL III 11 | AFL 17 (MCR at 21..24 + 5) | TPL long from 38
    for pos in (26, 38, 45, 47, 51):  # MCR byte, TPL CI, TPL version, TPL ACC, CFG ext
        bad = bytearray(V2)
        bad[pos] ^= 0x01
        with pytest.raises(WmbusError):
            decode(bytes(bad), K2)


def test_mode7_without_afl():
    no_afl = relen(V2[:21] + V2[38:])
    with pytest.raises(WmbusSyntax, match="without AFL"):
        decode(no_afl, K2)


def test_mode7_gmac_and_persistent_key_unsupported():
    # AT 8 (AES-GMAC, 12-byte MAC): AFLL 0x13
    gmac = relen(V2[:22] + b"\x13\x00\x2c\x28" + V2[26:30] + V2[30:38] + b"\x00" * 4 + V2[38:])
    with pytest.raises(WmbusDecrypt) as e:
        decode(gmac, K2)
    assert e.value.code == "unsupported"
    kdf0 = bytearray(V2)
    kdf0[51] = 0x00  # extension byte: KDF 00 (persistent key)
    with pytest.raises(WmbusDecrypt) as e:
        decode(bytes(kdf0), K2)
    assert e.value.code == "unsupported"


# --------------------------------------------------------------------------------------- ELL

def test_ell_unencrypted_payload_crc_checked():
    """ELL II with ENC=0: the payload CRC is checked in clear (10263 on mismatch)."""
    t = decode(V4, K4, decode_apl=False)
    plain = bytes([0x78]) + t.payload
    sn = bytes.fromhex("03000000")  # ENC = 0
    good = relen(V4[:13] + sn + crc16(plain).to_bytes(2, "little") + plain)
    t2 = decode(good, decode_apl=False)
    assert not t2.encrypted and t2.payload == t.payload and t2.ell.payload_crc == crc16(plain)
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(WmbusCrc) as e:
        decode(bytes(bad))
    assert e.value.block == "ell" and e.value.catalogue_id == 10263


def test_ell_reserved_enc():
    bad = bytearray(V4)
    bad[16] = (bad[16] & 0x1F) | 0x40  # ENC = 2
    with pytest.raises(WmbusSyntax):
        decode(bytes(bad), K4)


# -------------------------------------------------------------- clear telegrams and no keys

def _v1_in_clear(cfg: bytes) -> bytes:
    plain = decode(V1, K1, decode_apl=False).payload
    return V1[:13] + cfg + plain


def test_clear_telegram_rejected_when_a_key_is_configured():
    clear = _v1_in_clear(b"\x00\x00")  # mode 0
    t = decode(clear, decode_apl=False)
    assert t.security_mode == 0 and not t.encrypted
    with pytest.raises(WmbusNotEncrypted) as e:
        decode(clear, K1)
    assert e.value.catalogue_id == 10262 and e.value.code == "not_encrypted"
    with pytest.raises(WmbusNotEncrypted):
        decode(clear, expect_encrypted=True)
    assert decode(clear, K1, expect_encrypted=False, decode_apl=False).payload == t.payload


def test_already_decrypted_data_with_mode5_bits_rejected():
    spoof = _v1_in_clear(b"\x20\x25")  # CFG still says mode 5, N = 2
    with pytest.raises(WmbusNotEncrypted, match="already in clear"):
        decode(spoof, K1)


def test_already_decrypted_ell_rejected():
    plain = decode(V4, K4, decode_apl=False).payload
    body = bytes([0x78]) + plain
    spoof = V4[:17] + crc16(body).to_bytes(2, "little") + body  # ENC=1 still set
    with pytest.raises(WmbusNotEncrypted):
        decode(spoof, K4)


@pytest.mark.parametrize("name, mode", [("V1", 5), ("V2", 7), ("V4", 0), ("V3", 5)])
def test_no_key(name, mode):
    data, _ = vec(name)
    with pytest.raises(WmbusNoKey) as e:
        decode(data)
    assert e.value.catalogue_id == 10262
    partial = e.value.telegram
    assert partial.payload is None and partial.encrypted
    v = VECTORS[name]
    assert partial.link.id == v["link"]["id"]
    if partial.tpl is not None:
        assert partial.security_mode == mode and partial.id == v["json"]["id"]


def test_unsupported_security_mode():
    t = bytearray(V1)
    t[14] = 0x23  # mode 3 (DES with IV)
    with pytest.raises(WmbusDecrypt) as e:
        decode(bytes(t), K1)
    assert e.value.code == "unsupported" and "mode 3" in str(e.value)
    t[14] = 0x21  # mode 1 without a key
    with pytest.raises(WmbusNoKey):
        decode(bytes(t))


def test_replay_error_shape():
    e = WmbusReplay(2739, 2738)
    assert e.catalogue_id == 10264 and e.code == "replay"
    assert (e.expected, e.received) == (2739, 2738) and "expected 2739" in str(e)
    assert isinstance(e, ValueError)


# ------------------------------------------------------------- encrypt helpers round trip

def test_mode5_encrypt_round_trip():
    """A telegram built with the security primitives decodes back (mode 5, long header)."""
    plain = bytes.fromhex("2F2F0C1399999999") + b"\x2f" * 8
    header = bytes.fromhex("449315785634123303") + bytes.fromhex("72785634129315330301001005")
    iv = mode5_iv(bytes.fromhex("9315785634123303"), 0x01)
    t = relen(b"\x00" + header + aes_cbc_encrypt(K1, iv, plain))
    assert decode(t, K1, decode_apl=False).payload == plain
    assert aes_ctr(K1, bytes(16), aes_ctr(K1, bytes(16), plain)) == plain


# ------------------------------------------------------------------- key lookup by address

def test_key_lookup_gets_the_right_address():
    """A function as key is asked with the meter's address (long TPL: V2's ELS meter behind the
    RAD converter) for the TPL, and with the DLL's for ELL encryption (V4)."""
    asked = []

    def lookup(addr):
        asked.append((addr.manufacturer, addr.id))
        return {("ELS", "12345678"): K2, ("KAM", "76348799"): K4}.get((addr.manufacturer,
                                                                        addr.id))

    assert decode(V2, lookup).records[0].value == "28504.27"
    assert asked == [("ELS", "12345678")]
    asked.clear()
    assert decode(V4, lookup).payload.startswith(bytes.fromhex("02FF20"))
    assert asked == [("KAM", "76348799")]
    with pytest.raises(WmbusDecrypt):
        decode(V1, lookup)  # also ELS 12345678, but V1 was encrypted with another key
    with pytest.raises(WmbusNoKey):
        decode(V3, lookup)
    # a clear telegram from a meter that has a key is rejected; from one without, accepted
    clear = _v1_in_clear(b"\x00\x00")
    with pytest.raises(WmbusNotEncrypted):
        decode(clear, lambda a: K1)
    assert decode(clear, lambda a: None, decode_apl=False).payload[:2] == b"\x2f\x2f"
    with pytest.raises(ValueError):
        decode(V1, lambda a: b"bad")
