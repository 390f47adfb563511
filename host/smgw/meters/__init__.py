"""Meter telegrams on the host: decoding, encoding and storing.

- :mod:`smgw.meters.sml`        SML transport v1 + messages -> readings (eHZ/mME/MSB meters)
- :mod:`smgw.meters.smlencode`  SML encoder (the simulators' answers, the gateway's requests)
- :mod:`smgw.meters.smlreq`     the GetList request the gateway sends to polled meters
- :mod:`smgw.meters.obis`       OBIS codes: parse/format ``1-0:1.8.0``, names
- :mod:`smgw.meters.units`      DLMS unit codes (IEC 62056-62) -> symbols
- :mod:`smgw.meters.status`     SML status words -> meter error / fatal error (10033, 10037)
- :mod:`smgw.meters.ingest`     frames and polled answers -> original values in the store
- :mod:`smgw.meters.cli`        the ``smgw decode sml`` command

See docs/sml.md. Submodules are imported where they are used; this package imports nothing.
"""
