"""Extended link layer, CI 0x8C..0x8F (design note ``meter-protocols.md`` §1.6, §1.8, §2.4).

=====  =======  ========================================================  ===========
CI     name     fields after the CI                                       header size
=====  =======  ========================================================  ===========
0x8C   ELL I    CC, ACC                                                   3
0x8D   ELL II   CC, ACC, SN (4), payload CRC (2)                          9
0x8E   ELL III  CC, ACC, M2 (2), A2 (6)                                   11
0x8F   ELL IV   CC, ACC, M2 (2), A2 (6), SN (4), payload CRC (2)          19
=====  =======  ========================================================  ===========

(sizes include the CI byte). ELL V (0x86, variable length) is not supported.

SN (session number, LE): bits 3..0 session counter, 28..4 minutes since meter start, 31..29 ENC
(0 none, 1 AES-128-CTR, others reserved). With ENC=1 everything from the payload CRC to the end
of the frame is encrypted (:func:`smgw.wmbus.security.decrypt_ell`); with ENC=0 the payload CRC
(CRC-16 EN 13757 over every byte after it, sent LE) is checked here (:func:`check_payload_crc`).
"""

from __future__ import annotations

from dataclasses import dataclass

from smgw.wmbus import WmbusCrc, WmbusShort, WmbusSyntax
from smgw.wmbus.link import Address, crc16

__all__ = ["ELL_CIS", "ENC_AES_CTR", "ENC_NONE", "Ell", "check_payload_crc", "parse_ell"]

# CI -> (name, size of the header including the CI and the payload CRC, has M2/A2, has SN)
ELL_CIS: dict[int, tuple[str, int, bool, bool]] = {
    0x8C: ("I", 3, False, False),
    0x8D: ("II", 9, False, True),
    0x8E: ("III", 11, True, False),
    0x8F: ("IV", 19, True, True),
}

ENC_NONE = 0
ENC_AES_CTR = 1


@dataclass(frozen=True, slots=True)
class Ell:
    """One ELL header. ``receiver``: M2/A2 (ELL III/IV); ``sn_raw``: the 4 SN bytes as sent
    (they go into the CTR counter block); ``payload_crc``: the CRC (after decryption when
    ENC=1; None before or when there is none); ``length``: header bytes including CI and CRC."""

    ci: int
    cc: int
    access_number: int
    receiver: Address | None
    sn_raw: bytes | None
    payload_crc: int | None
    length: int

    @property
    def name(self) -> str:
        return "ELL " + ELL_CIS[self.ci][0]

    @property
    def session_number(self) -> int | None:
        return None if self.sn_raw is None else int.from_bytes(self.sn_raw, "little")

    @property
    def enc(self) -> int:
        """SN bits 31..29: 0 no encryption, 1 AES-128-CTR (0 without SN)."""
        sn = self.session_number
        return 0 if sn is None else sn >> 29

    @property
    def encrypted(self) -> bool:
        return self.enc != ENC_NONE

    @property
    def session(self) -> int | None:
        sn = self.session_number
        return None if sn is None else sn & 0x0F

    @property
    def minutes(self) -> int | None:
        sn = self.session_number
        return None if sn is None else (sn >> 4) & 0x1FFFFFF

    @property
    def has_crc(self) -> bool:
        return ELL_CIS[self.ci][3]

    # CC bits
    @property
    def bidirectional(self) -> bool:
        return bool(self.cc & 0x80)

    @property
    def synchronous(self) -> bool:
        return bool(self.cc & 0x20)

    @property
    def hop_count(self) -> bool:
        return bool(self.cc & 0x10)

    @property
    def priority(self) -> bool:
        return bool(self.cc & 0x08)

    @property
    def accessibility(self) -> bool:
        return bool(self.cc & 0x04)

    @property
    def repeated_access(self) -> bool:
        return bool(self.cc & 0x02)

    def to_json(self) -> dict:
        d: dict = {"ci": self.ci, "cc": self.cc, "access_number": self.access_number}
        if self.receiver is not None:
            d["receiver"] = self.receiver.to_json()
        if self.sn_raw is not None:
            d["session_number"] = self.session_number
            d["encrypted"] = self.encrypted
        return d


def parse_ell(data: bytes, pos: int) -> Ell:
    """The ELL header at ``data[pos]`` (its CI). With ENC=0 the payload CRC is read (check it
    with :func:`check_payload_crc`); with ENC=1 it is still encrypted (``payload_crc`` None)."""
    ci = data[pos]
    spec = ELL_CIS.get(ci)
    if spec is None:
        if ci == 0x86:
            raise WmbusSyntax("ELL V (CI 0x86, variable length) is not supported", "unsupported",
                              pos)
        raise WmbusSyntax(f"CI 0x{ci:02x} is no ELL", offset=pos)
    _, size, has_addr, has_sn = spec
    if pos + size > len(data):
        raise WmbusShort(f"truncated ELL {spec[0]}: needs {size} bytes, {len(data) - pos} left",
                         offset=pos)
    cc, acc = data[pos + 1], data[pos + 2]
    p = pos + 3
    receiver = None
    if has_addr:
        receiver = Address.from_dll(data[p : p + 8])
        p += 8
    sn_raw = crc = None
    if has_sn:
        sn_raw = bytes(data[p : p + 4])
        enc = int.from_bytes(sn_raw, "little") >> 29
        if enc not in (ENC_NONE, ENC_AES_CTR):
            raise WmbusSyntax(f"ELL encryption ENC={enc} is reserved", "unsupported", p)
        if enc == ENC_NONE:
            crc = data[p + 4] | (data[p + 5] << 8)
    return Ell(ci, cc, acc, receiver, sn_raw, crc, size)


def check_payload_crc(ell: Ell, rest: bytes, offset: int | None = None) -> None:
    """Check an unencrypted ELL payload CRC against ``rest`` (every byte after the CRC)."""
    if ell.payload_crc is None:
        return
    computed = crc16(rest)
    if computed != ell.payload_crc:
        raise WmbusCrc("ell", ell.payload_crc, computed, offset=offset)
