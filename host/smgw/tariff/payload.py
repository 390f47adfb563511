"""What the gateway sends a market participant for a set of derived values: the payload (a K461
COSEM XML document, :func:`smgw.formats.k461.values_document`) and the message id.

The message id is derived from what the message covers — profile, communication profile,
period and the keys of the values — never from a clock or a counter, so forming the same period
again after a restart yields the same id: the outbox then adds nothing twice, and a receiver can
drop a retransmission it already has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from smgw.tariff.model import DerivedValue

__all__ = ["NOT_BILLING_TAFS", "build_payload", "message_id"]

#: the cases whose values go out with the profile's pseudonym instead of the meter id
NOT_BILLING_TAFS = (9, 10, 14)


def message_id(profile: str, comm_profile: str, period_start_ms: int | None,
               period_end_ms: int | None, keys: Sequence[tuple[str, str, str, int]],
               extra: str = "") -> str:
    """SHA-256 (hex) over what a message covers; ``keys`` are :meth:`DerivedValue.key` tuples
    (their order does not matter). ``extra`` separates messages that cover the same values on
    purpose (an on-demand read-out repeated later)."""
    h = hashlib.sha256()

    def part(x: object) -> None:
        b = str(x).encode("utf-8")
        h.update(len(b).to_bytes(4, "big") + b)  # length-prefixed: no two inputs collide

    for x in ("smgw-msg-1", profile, comm_profile,
              "" if period_start_ms is None else period_start_ms,
              "" if period_end_ms is None else period_end_ms, extra, len(keys)):
        part(x)
    for k in sorted(keys):
        for x in k:
            part(x)
    return h.hexdigest()


def build_payload(values: Sequence[tuple[DerivedValue, bytes | None]], gateway_id: str,
                  taf: int, pseudonym: str | None) -> bytes:
    """The K461 document for ``values`` (with their value signatures); TAF 9/10/14 values go
    out under the profile's pseudonym where it has one."""
    from smgw.formats.k461 import values_document

    return values_document(values, gateway_id,
                           pseudonym=pseudonym if taf in NOT_BILLING_TAFS else None)
