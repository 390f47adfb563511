"""Knowing exactly which firmware runs.

- :mod:`smgw.firmware.ident`    the firmware identification (version + digest of the code)
- :mod:`smgw.firmware.manifest` the release manifest ``firmware/release.json`` and the check of
                                the file hashes a firmware reports in its link hello
- :mod:`smgw.firmware.fwinfo`   what a built firmware image (ELF) contains: sizes, frozen
                                modules, identification
- :mod:`smgw.firmware.cli`      the ``smgw fwinfo`` command

See docs/firmware-identity.md.
"""

from smgw.firmware.ident import FirmwareId, firmware_id, ident_module_source
from smgw.firmware.manifest import ManifestCheck, check_hello_files, load_manifest

__all__ = ["FirmwareId", "firmware_id", "ident_module_source", "ManifestCheck",
           "check_hello_files", "load_manifest"]
