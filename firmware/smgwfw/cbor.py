# The CBOR subset both ends of the link speak (RFC 8949), encoder and strict decoder.
#
# Why our own and not micropython-lib's cbor2 on the device: that package cannot be installed
# where CI and the MicroPython VM tests run (mip needs micropython.org), and it has traps we would
# have to wrap anyway: it raises KeyError on tags and tuples, accepts trailing bytes after the item
# and fails without a message on half floats (docs/link-protocol.md, "CBOR subset"). The subset is
# small enough that a strict codec is shorter than the wrapper. The host decodes and encodes the
# same bytes with PyPI cbor2; tests/firmware/test_cbor.py proves both agree on every vector.
#
# The subset:
#   unsigned and negative integers up to 64 bits, byte strings, UTF-8 text strings,
#   definite-length arrays and maps (keys: integers or text, no duplicates; the encoder writes
#   them in deterministic order, the decoder accepts any order),
#   false, true, null, and finite floats as 8-byte doubles only.
# Rejected: indefinite lengths, tags, other simple values, half and single floats, trailing bytes,
# nesting deeper than MAX_DEPTH, and anything longer than the input that claims it.
import struct

MAX_DEPTH = 16
_INF = float("inf")


class CborError(ValueError):
    pass


# ---------------------------------------------------------------- encoding


def _head(out, major, n):
    m = major << 5
    if n < 24:
        out.append(m | n)
    elif n < 0x100:
        out.append(m | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(m | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(m | 26)
        out.extend(struct.pack(">I", n))
    elif n < 0x10000000000000000:
        out.append(m | 27)
        out.extend(struct.pack(">Q", n))
    else:
        raise CborError("integer out of range")


def _key_order(k):
    # the order of the keys' deterministic encodings: unsigned integers (by value), then
    # negative integers (by magnitude), then text strings (shorter first, then bytewise)
    if isinstance(k, int):
        return (0, k, b"") if k >= 0 else (1, -1 - k, b"")
    b = k.encode("utf-8")
    return (2, len(b), b)


def _enc(out, v, depth):
    if depth > MAX_DEPTH:
        raise CborError("nesting too deep")
    # bool before int: True is an int in Python
    if v is True:
        out.append(0xF5)
    elif v is False:
        out.append(0xF4)
    elif v is None:
        out.append(0xF6)
    elif isinstance(v, int):
        if v >= 0:
            _head(out, 0, v)
        else:
            _head(out, 1, -1 - v)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        _head(out, 2, len(v))
        out.extend(v)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        _head(out, 3, len(b))
        out.extend(b)
    elif isinstance(v, (list, tuple)):
        _head(out, 4, len(v))
        for x in v:
            _enc(out, x, depth + 1)
    elif isinstance(v, dict):
        _head(out, 5, len(v))
        for k in v:
            if k is True or k is False or not isinstance(k, (int, str)):
                raise CborError("map key must be an integer or text")
        # Deterministic encoding (RFC 8949 section 4.2.1): keys in the order of their encoded
        # bytes. MicroPython's dicts do not keep insertion order, so without this the same
        # message would have other bytes on the device than on the host.
        for k in sorted(v, key=_key_order):
            _enc(out, k, depth + 1)
            _enc(out, v[k], depth + 1)
    elif isinstance(v, float):
        if v != v or v in (_INF, -_INF):
            # PyPI cbor2 writes these as half floats, which the subset excludes
            raise CborError("NaN and infinity are not in the subset")
        out.append(0xFB)
        out.extend(struct.pack(">d", v))
    else:
        raise CborError("type not in the CBOR subset: " + type(v).__name__)


def dumps(v):
    out = bytearray()
    _enc(out, v, 0)
    return bytes(out)


# ---------------------------------------------------------------- decoding


def _arg(buf, i, n, info):
    # Returns (argument, next index) for the additional-information field of a head.
    if info < 24:
        return info, i
    if info == 24:
        if i + 1 > n:
            raise CborError("truncated")
        return buf[i], i + 1
    if info == 25:
        if i + 2 > n:
            raise CborError("truncated")
        return (buf[i] << 8) | buf[i + 1], i + 2
    if info == 26:
        if i + 4 > n:
            raise CborError("truncated")
        return struct.unpack_from(">I", buf, i)[0], i + 4
    if info == 27:
        if i + 8 > n:
            raise CborError("truncated")
        return struct.unpack_from(">Q", buf, i)[0], i + 8
    if info == 31:
        raise CborError("indefinite length not in the subset")
    raise CborError("reserved additional information")


def _dec(buf, i, n, depth):
    if depth > MAX_DEPTH:
        raise CborError("nesting too deep")
    if i >= n:
        raise CborError("truncated")
    ib = buf[i]
    major = ib >> 5
    info = ib & 0x1F
    i += 1
    if major == 7:
        if info == 20:
            return False, i
        if info == 21:
            return True, i
        if info == 22:
            return None, i
        if info == 27:
            if i + 8 > n:
                raise CborError("truncated")
            return struct.unpack_from(">d", buf, i)[0], i + 8
        if info == 25 or info == 26:
            raise CborError("only 8-byte floats are in the subset")
        raise CborError("simple value not in the subset")
    a, i = _arg(buf, i, n, info)
    if major == 0:
        return a, i
    if major == 1:
        return -1 - a, i
    if major == 2 or major == 3:
        if a > n - i:
            raise CborError("truncated")
        s = bytes(buf[i : i + a])
        if major == 3:
            try:
                s = s.decode("utf-8")
            except UnicodeError:
                raise CborError("invalid UTF-8 in text string")
        return s, i + a
    if major == 4:
        # each item takes at least one byte: a length beyond what is left is a lie, not a reason
        # to allocate
        if a > n - i:
            raise CborError("truncated")
        lst = []
        for _ in range(a):
            v, i = _dec(buf, i, n, depth + 1)
            lst.append(v)
        return lst, i
    if major == 5:
        if a > (n - i) // 2:
            raise CborError("truncated")
        d = {}
        for _ in range(a):
            k, i = _dec(buf, i, n, depth + 1)
            if k is True or k is False or not isinstance(k, (int, str)):
                raise CborError("map key must be an integer or text")
            if k in d:
                raise CborError("duplicate map key")
            v, i = _dec(buf, i, n, depth + 1)
            d[k] = v
        return d, i
    raise CborError("tags are not in the subset")


def loads(buf, start=0, end=-1):
    # Decodes exactly one item that must fill buf[start:end] (end=-1: the whole buffer).
    if end < 0:
        end = len(buf)
    try:
        v, i = _dec(buf, start, end, 0)
    except CborError:
        raise
    except (IndexError, ValueError, RuntimeError, MemoryError):
        # Every read is length-checked first, so these are a last line of defence: struct raises
        # ValueError on MicroPython (which has no struct.error), RuntimeError is the recursion
        # limit on small stacks, MemoryError a tiny heap.
        raise CborError("malformed item")
    if i != end:
        raise CborError("trailing bytes after the item")
    return v
