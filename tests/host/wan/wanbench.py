"""Shared pieces of the WAN tests: a real test PKI with the gateway's key store and an EMT
triple, real protected messages (signed values, K461 document, CMS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from smgw.formats import k461
from smgw.security import cms, valuesig
from smgw.security.keystore import KeyStore
from smgw.security.testpki import Identity, Triple
from smgw.tariff.model import DerivedValue, smgw_status
from smgw.tariff.profile import CommunicationProfile
from smgw.wan.emtserver import EmtReceiver

GW = "EOPN0000000001"
DAY_MS = 86_400_000
# 2026-03-01 00:00 and 2026-04-01 00:00 Europe/Berlin (UTC+1, then UTC+2)
MARCH_MS = 1_772_319_600_000
APRIL_MS = 1_774_994_400_000


def taf1_values(profile: str = "taf1-lv1", start_ms: int = MARCH_MS, end_ms: int = APRIL_MS,
                n: int = 2) -> list[DerivedValue]:
    """Billing registers of one TAF 1 period (the sum register and its parts)."""
    out = []
    for i in range(n):
        out.append(DerivedValue(
            profile=profile, taf=1, register=f"1-0:1.8.{i + 1}", owner=profile,
            period_start_ms=start_ms, period_end_ms=end_ms, target_ms=end_ms,
            value=123_456 + 1000 * i, scaler=0, unit="Wh",
            status=smgw_status(), sources=("1emh0011261482",)))
    return out


@dataclass
class Env:
    """The gateway's key store (in ``tmp/pki``) and the EMT ``emt1`` of the same PKI."""

    tmp: Path
    keystore: KeyStore
    emt: Triple

    def signed(self, values: Sequence[DerivedValue], signer: Identity | None = None
               ) -> list[tuple[DerivedValue, bytes | None]]:
        sig = signer or self.keystore.sig
        return [(v, valuesig.sign_value(sig, v, GW) if v.billing else None) for v in values]

    def message(self, values: Sequence[DerivedValue] | None = None, *,
                pairs: Sequence[tuple[DerivedValue, bytes | None]] | None = None,
                signer: Identity | None = None, recipient: Identity | None = None) -> bytes:
        """What the engine would queue: CMS(sign(encrypt(K461(values with signatures))))."""
        if pairs is None:
            pairs = self.signed(values if values is not None else taf1_values(), signer)
        doc = k461.values_document(list(pairs), GW)
        return cms.protect(doc, signer or self.keystore.sig,
                           (recipient or self.emt.enc).cert)

    def comm_profile(self, url: str, **kw) -> CommunicationProfile:
        cp = CommunicationProfile(
            name="emt1", url=url, tls_cert=self.emt.tls.cert_pem().decode(),
            sig_cert=self.emt.sig.cert_pem().decode(),
            enc_cert=self.emt.enc.cert_pem().decode())
        return replace(cp, **kw) if kw else cp

    def receiver(self, name: str = "emt-out", **kw) -> EmtReceiver:
        return EmtReceiver(self.tmp / name, self.emt, self.keystore.roots, **kw)
