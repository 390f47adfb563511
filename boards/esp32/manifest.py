# MicroPython build manifest: freezes the SMGW firmware into an ESP32-DevKitC image
# (ESP32-WROOM-32, 4 MiB flash).
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/repo/boards/esp32/manifest.py
#
# Layered as docs/reference/manifest.rst asks: the port's manifest first (what a stock image
# has), then this project's files. Relative paths are relative to this file's directory.
# No require(): the firmware needs nothing from micropython-lib (it ships its own CBOR codec,
# smgwfw/cbor.py, and uses no asyncio).
#
# Freeze only for production images. During development copy the files instead
# (mpremote cp -r firmware/smgwfw : + firmware/main.py and boards/esp32/board.py to the root):
# a frozen main.py runs in preference to /main.py on the filesystem, so a frozen image can only
# be changed by re-flashing (safe boot still keeps the REPL usable, see boards/README.md).
# Frozen firmware has no files to hash: firmware_files() returns [] and the image carries its
# identification in smgwfw/_ident.py instead (docs/firmware-identity.md). That module is
# generated into a build directory, never into firmware/; point SMGW_IDENT_DIR at the directory
# that holds smgwfw/_ident.py and it is frozen too.
metadata(description="Open SMGW metrology front-end, ESP32-DevKitC", version="0.1.0")

include("$(PORT_DIR)/boards/manifest.py")

package("smgwfw", base_path="../../firmware")
module("main.py", base_path="../../firmware")
module("board.py")

import os  # noqa: E402  (manifests are plain Python run by MicroPython's manifestfile.py)

if os.environ.get("SMGW_IDENT_DIR"):
    module("smgwfw/_ident.py", base_path=os.environ["SMGW_IDENT_DIR"])
