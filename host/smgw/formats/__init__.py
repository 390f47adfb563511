"""Exchange formats of the gateway's measured and derived values (docs/formats.md).

* :mod:`smgw.formats.k461` — DKE K461 COSEM XML (``profile_generic``): the payload the gateway
  sends to market participants (inside CMS) and the signed HAN exports of values and logs.
* :mod:`smgw.formats.trudi` — VDE AR 2418-6 XML, what the consumer's transparency software
  (TRuDI) reads, with our own schema for it.

Both raise :class:`FormatError` for anything they cannot build or accept.
"""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """A document (or the data for one) is not what the format allows.

    ``where`` names the element or field at fault (``"values[3].owner"``, ``"line 12:
    /UsagePoints/UsagePoint/usagePointId"``); the message says what is wrong with it. Raised for
    a peer's bad document and for a caller's bad data alike: the message tells which by naming
    the input (``values[...]`` = the caller's, an element path or line = the document's)."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message
