"""The wired LMN (docs/lmn-wired.md): RS-485 meters behind HDLC, pairing and TLS.

Modules, from the wire up:

* ``hdlc``     -- HDLC frames (ISO/IEC 13239 format type 3, CRC-16/X-25 HCS/FCS).
* ``mgmt``     -- management UI frames: INVITE / REGISTER / ASSIGN / ASSIGNED.
* ``station``  -- the meter's side of a link (NRM, window 1) and the channel byte.
* ``security`` -- pairing (AES-CMAC under the meter key) and TLS 1.2 with pinned certificates.
* ``master``   -- the gateway's side: address assignment, polling, links per meter.

Nothing is imported here, so each layer can be imported (and replaced) on its own.
"""
