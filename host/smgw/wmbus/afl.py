"""Authentication and fragmentation layer, CI 0x90 (design note ``meter-protocols.md`` §1.9).

Layout (the order of wmbusmeters' parser)::

    0x90 | AFLL | FCL (2, LE) | [MCL] | [KI (2, LE)] | [MCR (4, LE)] | [MAC (2..16)] | [ML (2, LE)]

AFLL counts the bytes after itself and must equal exactly the fields FCL announces. FCL: bit 14
MF (more fragments), 13 MCLP, 12 MLP, 11 MCRP, 10 MACP, 9 KIP, 7..0 fragment id. MCL: bits 3..0
AT (authentication type: 0 none, 3..7 AES-CMAC-128 truncated to 2/4/8/12/16 bytes, 8 AES-GMAC
12 bytes), bit 4 KIM, bit 5 MCMP, bit 6 MLMP. The MAC length comes from AT, so a MAC without MCL
is a syntax error. Fragmented messages (MF = 1) are not supported: a receive-only gateway sees
single-fragment OMS telegrams (FCL ``00 2C``: MCL, MCR and MAC present).
"""

from __future__ import annotations

from dataclasses import dataclass

from smgw.wmbus import WmbusShort, WmbusSyntax

__all__ = ["AFL_CI", "AT_GMAC", "MAC_LENGTHS", "Afl", "parse_afl"]

AFL_CI = 0x90

# authentication type -> MAC length
MAC_LENGTHS: dict[int, int] = {0: 0, 3: 2, 4: 4, 5: 8, 6: 12, 7: 16, 8: 12}
AT_GMAC = 8

_MF, _MCLP, _MLP, _MCRP, _MACP, _KIP = 0x4000, 0x2000, 0x1000, 0x0800, 0x0400, 0x0200


@dataclass(frozen=True, slots=True)
class Afl:
    """One AFL header. ``counter``: the message counter MCR (None if absent); ``mac``: the
    truncated MAC as sent; ``length``: header bytes including CI and AFLL."""

    fcl: int
    mcl: int | None
    key_info: int | None
    counter: int | None
    mac: bytes | None
    message_length: int | None
    length: int
    mac_prefix: bytes  # MCL | MCR | [ML] as sent: the start of the CMAC input

    @property
    def more_fragments(self) -> bool:
        return bool(self.fcl & _MF)

    @property
    def fragment_id(self) -> int:
        return self.fcl & 0xFF

    @property
    def auth_type(self) -> int:
        return 0 if self.mcl is None else self.mcl & 0x0F

    def to_json(self) -> dict:
        d: dict = {"fcl": self.fcl}
        if self.mcl is not None:
            d["mcl"] = self.mcl
        if self.key_info is not None:
            d["key_info"] = self.key_info
        if self.counter is not None:
            d["counter"] = self.counter
        if self.mac is not None:
            d["mac"] = self.mac.hex()
        if self.message_length is not None:
            d["message_length"] = self.message_length
        return d


def parse_afl(data: bytes, pos: int) -> Afl:
    """The AFL header at ``data[pos]`` (CI 0x90)."""
    if data[pos] != AFL_CI:
        raise WmbusSyntax(f"CI 0x{data[pos]:02x} is no AFL", offset=pos)
    if pos + 4 > len(data):
        raise WmbusShort("truncated AFL header", offset=pos)
    afll = data[pos + 1]
    end = pos + 2 + afll
    if end > len(data):
        raise WmbusShort(f"AFL length {afll} runs past the end of the telegram", offset=pos + 1)
    fcl = data[pos + 2] | (data[pos + 3] << 8)
    if fcl & _MF:
        raise WmbusSyntax("fragmented AFL message (MF set) is not supported", "unsupported",
                          pos + 2)
    p = pos + 4
    mcl = key_info = counter = mac = ml = None
    need = 2
    if fcl & _MCLP:
        need += 1
    if fcl & _KIP:
        need += 2
    if fcl & _MCRP:
        need += 4
    if fcl & _MLP:
        need += 2
    mac_len = 0
    if fcl & _MACP:
        if not fcl & _MCLP or afll < 3:
            raise WmbusSyntax("AFL MAC present without MCL (no MAC length)", offset=pos + 2)
        at = data[p] & 0x0F
        if at not in MAC_LENGTHS or at == 0:
            raise WmbusSyntax(f"AFL authentication type {at} is reserved or says no MAC",
                              offset=p)
        mac_len = MAC_LENGTHS[at]
        need += mac_len
    if need != afll:
        raise WmbusSyntax(f"AFL length {afll} but its fields (FCL 0x{fcl:04x}) need {need}",
                          offset=pos + 1)
    prefix = bytearray()
    if fcl & _MCLP:
        mcl = data[p]
        prefix.append(mcl)
        p += 1
    if fcl & _KIP:
        key_info = data[p] | (data[p + 1] << 8)
        p += 2
    if fcl & _MCRP:
        counter = int.from_bytes(data[p : p + 4], "little")
        prefix += data[p : p + 4]
        p += 4
    if fcl & _MACP:
        mac = bytes(data[p : p + mac_len])
        p += mac_len
    if fcl & _MLP:
        ml = data[p] | (data[p + 1] << 8)
        prefix += data[p : p + 2]
        p += 2
    return Afl(fcl, mcl, key_info, counter, mac, ml, 2 + afll, bytes(prefix))
