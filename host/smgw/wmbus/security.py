"""OMS / EN 13757-7 security (design note ``meter-protocols.md`` §2): TPL security modes 5 and 7
and the ELL's AES-128-CTR. AES and AES-CMAC come from ``cryptography``.

* **Mode 5** (:func:`decrypt_mode5`): AES-128-CBC over the first N x 16 bytes after the TPL
  header, IV = ``M (2) | ID (4) | version | type | ACC x 8`` with the *long TPL's* address when
  the header is long, else the DLL's. Key check: the plaintext starts with 2F 2F.
* **Mode 7** (:func:`decrypt_mode7`): KDF-A (:func:`kdf_a`) derives Kenc/Kmac from the master
  key, the AFL message counter and the meter ID (long TPL's, else DLL's); the AFL MAC
  (AES-CMAC over ``MCL | MCR | [ML] | TPL CI .. end``, truncated) must match before anything is
  decrypted; then AES-128-CBC with IV 0 over N x 16 bytes after the TPL header; 2F 2F again.
* **ELL** (:func:`decrypt_ell`): AES-128-CTR from the payload CRC to the end of the frame,
  counter block ``M | A (DLL) | CC & ~0x12 | SN | 00 00 | 00``; the decrypted payload CRC is the
  key check.

Only the first N x 16 bytes are encrypted; the rest of the APL stays clear and is appended
unchanged. N = 0 with mode 5/7 means "everything after the header, rounded down to whole
blocks" (wmbusmeters' fallback).

A wrong key raises :class:`WmbusDecrypt`; a "ciphertext" that was clear all along (it already
starts with 2F 2F, or its ELL payload CRC already matches, but decrypting breaks that) raises
:class:`WmbusNotEncrypted` -- a replayed, already decrypted log.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from smgw.wmbus import WmbusDecrypt, WmbusNotEncrypted, WmbusShort, WmbusSyntax
from smgw.wmbus.afl import AT_GMAC, Afl
from smgw.wmbus.ell import Ell
from smgw.wmbus.link import crc16
from smgw.wmbus.tpl import Tpl

__all__ = [
    "DC_KENC",
    "DC_KMAC",
    "IDLE",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_ctr",
    "check_key",
    "cmac",
    "decrypt_ell",
    "decrypt_mode5",
    "decrypt_mode7",
    "ell_counter_block",
    "encrypted_length",
    "kdf_a",
    "mode5_iv",
]

IDLE = b"\x2f\x2f"
DC_KENC = 0x00  # meter -> partner, encryption
DC_KMAC = 0x01  # meter -> partner, MAC
_ZERO_IV = bytes(16)


def check_key(key: bytes | bytearray | str | None) -> bytes | None:
    """A 16-byte AES key (bytes or hex text) or None; anything else is a ``ValueError``."""
    if key is None:
        return None
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key)
        except ValueError:
            raise ValueError("key must be 32 hex digits") from None
    key = bytes(key)
    if len(key) != 16:
        raise ValueError(f"key must be 16 bytes (AES-128), not {len(key)}")
    return key


# ------------------------------------------------------------------------------- primitives

def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def aes_ctr(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    """AES-128-CTR (encrypt = decrypt); the 128-bit counter block counts up big-endian, which
    for a telegram (< 256 blocks) is the ELL's block-counter byte counting up."""
    c = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return c.update(data) + c.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (RFC 4493), 16 bytes."""
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def kdf_a(key: bytes, dc: int, counter: int, id_raw: bytes) -> bytes:
    """KDF-A: ``CMAC(K, DC | MCR (4, LE) | ID (4, as sent) | 07 x 7)``. ``dc`` 0x00 Kenc,
    0x01 Kmac (meter -> partner), 0x10 / 0x11 the other direction."""
    return cmac(key, bytes([dc]) + counter.to_bytes(4, "little") + bytes(id_raw) + b"\x07" * 7)


def mode5_iv(address_raw: bytes, access_number: int) -> bytes:
    """``M | ID | version | type`` (8 bytes, DLL order) and the ACC eight times."""
    return bytes(address_raw) + bytes([access_number]) * 8


def ell_counter_block(address_raw: bytes, cc: int, sn_raw: bytes) -> bytes:
    return bytes(address_raw) + bytes([cc & ~0x12 & 0xFF]) + bytes(sn_raw) + b"\x00\x00\x00"


def encrypted_length(tpl: Tpl, available: int) -> int:
    """Bytes encrypted after the TPL header: N x 16, or with N = 0 every whole block."""
    n = tpl.encrypted_blocks * 16
    if n == 0:
        n = available - available % 16
        if n == 0:
            raise WmbusNotEncrypted(
                f"security mode {tpl.security_mode} but no encrypted block in the telegram")
    elif n > available:
        raise WmbusShort(f"truncated: {tpl.encrypted_blocks} encrypted blocks ({n} bytes) "
                         f"announced, {available} bytes left")
    return n


def _cbc_2f2f(key: bytes, iv: bytes, data: bytes, n: int, mode: int) -> bytes:
    cipher = data[:n]
    plain = aes_cbc_decrypt(key, iv, cipher)
    if plain[:2] != IDLE:
        if cipher[:2] == IDLE:
            raise WmbusNotEncrypted(f"security mode {mode} but the data is already in clear "
                                    "(starts with 2F2F before decryption)")
        raise WmbusDecrypt(f"mode {mode}: no 2F2F after decryption (wrong key?)", "no_2f2f")
    return plain + bytes(data[n:])


# ------------------------------------------------------------------------------------ modes

def decrypt_mode5(key: bytes, tpl: Tpl, address_raw: bytes, data: bytes) -> bytes:
    """Mode 5: ``data`` is everything after the TPL header; ``address_raw`` the 8 address bytes
    in DLL order of the long TPL (if long) else of the DLL. Returns the APL (decrypted blocks
    and the clear rest)."""
    n = encrypted_length(tpl, len(data))
    return _cbc_2f2f(key, mode5_iv(address_raw, tpl.access_number or 0), data, n, 5)


def decrypt_mode7(key: bytes, afl: Afl | None, tpl: Tpl, id_raw: bytes, tpl_to_end: bytes,
                  data: bytes) -> bytes:
    """Mode 7: ``id_raw`` the meter ID as sent (long TPL's, else DLL's); ``tpl_to_end`` every
    byte from the TPL CI to the end of the telegram (the MAC input after the AFL fields);
    ``data`` everything after the TPL header."""
    if afl is None:
        raise WmbusSyntax("security mode 7 without AFL (no message counter, no MAC)")
    if afl.counter is None or afl.mac is None or afl.mcl is None:
        raise WmbusSyntax("security mode 7 needs AFL MCL, message counter and MAC")
    if afl.auth_type == AT_GMAC:
        raise WmbusDecrypt("AFL AES-GMAC is not supported", "unsupported")
    if tpl.kdf != 1:
        raise WmbusDecrypt(f"mode 7 key derivation {tpl.kdf} is not supported (only KDF-A)",
                           "unsupported")
    n = encrypted_length(tpl, len(data))
    kmac = kdf_a(key, DC_KMAC, afl.counter, id_raw)
    mac = cmac(kmac, afl.mac_prefix + bytes(tpl_to_end))[: len(afl.mac)]
    if not hmac.compare_digest(mac, afl.mac):
        raise WmbusDecrypt("mode 7: AFL MAC mismatch (wrong key or altered telegram)", "mac")
    kenc = kdf_a(key, DC_KENC, afl.counter, id_raw)
    return _cbc_2f2f(kenc, _ZERO_IV, data, n, 7)


def decrypt_ell(key: bytes, address_raw: bytes, ell: Ell, data: bytes) -> tuple[bytes, int]:
    """ELL AES-128-CTR: ``data`` runs from the (encrypted) payload CRC to the end of the frame;
    ``address_raw`` the DLL's M and A fields. Returns ``(plaintext after the CRC, CRC)``."""
    if len(data) < 2:
        raise WmbusShort("truncated ELL: no payload CRC")
    plain = aes_ctr(key, ell_counter_block(address_raw, ell.cc, ell.sn_raw or bytes(4)), data)
    crc = plain[0] | (plain[1] << 8)
    if crc16(plain[2:]) != crc:
        if crc16(data[2:]) == data[0] | (data[1] << 8):
            raise WmbusNotEncrypted("ELL says AES-CTR but the payload is already in clear "
                                    "(its CRC matches before decryption)")
        raise WmbusDecrypt("ELL payload CRC mismatch after decryption (wrong key?)", "ell_crc")
    return plain[2:], crc
