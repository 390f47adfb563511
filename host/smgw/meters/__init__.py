"""Meter telegram decoding on the host.

- :mod:`smgw.meters.sml`   SML transport v1 + messages -> readings (eHZ/mME/MSB meters)
- :mod:`smgw.meters.obis`  OBIS codes: parse/format ``1-0:1.8.0``, names
- :mod:`smgw.meters.units` DLMS unit codes (IEC 62056-62) -> symbols
- :mod:`smgw.meters.cli`   the ``smgw decode sml`` command

See docs/sml.md. Submodules are imported where they are used; this package imports nothing.
"""
