# Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so that 0x00 can mark frame
# boundaries on the wire. A receiver that starts mid-stream, or loses bytes, resynchronises at the
# next 0x00. Overhead is one byte per 254 bytes of payload plus the delimiter.
#
# Both functions work on caller-owned buffers so the firmware allocates nothing per frame.


class CobsError(ValueError):
    pass


def max_encoded_len(n):
    return n + n // 254 + 1


def encode_into(src, n, dst, pos):
    # Encodes src[0:n] into dst starting at pos; returns the index after the last byte written.
    # dst must have room for max_encoded_len(n) bytes from pos. No delimiter is written.
    code_pos = pos
    out = pos + 1
    code = 1
    i = 0
    while i < n:
        b = src[i]
        if b == 0:
            dst[code_pos] = code
            code_pos = out
            out += 1
            code = 1
        else:
            dst[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                dst[code_pos] = code
                code_pos = out
                out += 1
                code = 1
        i += 1
    dst[code_pos] = code
    return out


def decode_in_place(buf, n):
    # Decodes buf[0:n] (one frame, without its delimiter) in place; returns the decoded length.
    # Decoding never writes ahead of what it has read, so in-place is safe.
    if n == 0:
        raise CobsError("empty frame")
    i = 0
    out = 0
    while i < n:
        code = buf[i]
        if code == 0:
            raise CobsError("zero byte inside frame")
        i += 1
        end = i + code - 1
        if end > n:
            raise CobsError("code byte points past the frame end")
        while i < end:
            b = buf[i]
            if b == 0:
                raise CobsError("zero byte inside frame")
            buf[out] = b
            out += 1
            i += 1
        if code != 0xFF and i < n:
            buf[out] = 0
            out += 1
    return out
