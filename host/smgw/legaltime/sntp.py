"""SNTP client (RFC 4330, RFC 5905 client mode 3, version 4) over UDP.

Our own client, on the standard library's ``socket``, rather than ntplib: ntplib is barely
maintained and checks almost nothing of the answer (it accepts any mode, a kiss-o'-death, an
unsynchronised server, a zero transmit timestamp, and it does not match the originate timestamp,
so any packet from anywhere is taken as the time). The legal time of a meter gateway must not
be set by such an answer. This client checks what RFC 4330 §5 and RFC 5905 §8 ask of a client:

- length of at least 48 bytes (longer: extension fields or a MAC, which we ignore, but a
  multiple of 4) → ``short`` / ``bogus``;
- originate timestamp equal to our transmit timestamp, which is 64 random bits (RFC 9109's
  advice; our send time t1 is kept locally), answers that do not match are dropped and the
  client keeps listening until the timeout (a spoofed packet cannot stop the real answer) →
  ``bogus`` (or ``short``) if nothing matching came, ``timeout`` if nothing came at all;
- mode 4 (server) and version 3 or 4 → ``bogus``;
- stratum 0 is a kiss-o'-death: the kiss code (RATE, DENY, RSTR …) is reported → ``kiss``;
- leap indicator 3 (clock not synchronised) or stratum 16 or above → ``unsynchronised``;
- non-zero receive and transmit timestamps, a non-negative round-trip delay, and a root
  distance (root delay / 2 + root dispersion) below ``max_root_distance_s`` → ``bogus``.

Offset θ = ((t2 − t1) + (t3 − t4)) / 2 and delay δ = (t4 − t1) − (t3 − t2), with t1, t4 ours and
t2, t3 the server's. t4 is t1 plus the monotonic time elapsed, so a jump of the OS clock during
the query cannot distort θ or δ. NTP era: a timestamp with the top bit clear is in era 1
(2036-2104), as RFC 4330 §3 recommends.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

NTP_PACKET_LEN = 48
NTP_UNIX_DELTA = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_ERA = 1 << 32
_HEADER = struct.Struct("!BBbbII4s8s8s8s8s")

ERROR_CODES = ("timeout", "kiss", "unsynchronised", "bogus", "short", "network")


class TimeSourceError(Exception):
    """A query failed: ``code`` is one of :data:`ERROR_CODES`, ``reason`` says what happened
    (English, for the log parameters), ``kiss_code`` is set for ``kiss``."""

    def __init__(self, code: str, reason: str, kiss_code: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason, self.kiss_code = code, reason, kiss_code


@dataclass(frozen=True)
class TimeSample:
    """One good answer of a time source.

    ``offset_s`` is θ, the server's time minus the host's wall clock (``time.time`` unless the
    source was given another one); ``server_time_s`` is the server's time (Unix seconds) at the
    instant ``at_monotonic`` (the monotonic clock when the answer arrived, t4). A source that
    cannot give ``server_time_s`` leaves it None; the clock then uses wall + offset.
    """

    offset_s: float
    delay_s: float
    server: str
    stratum: int
    at_monotonic: float
    server_time_s: float | None = None


@runtime_checkable
class TimeSource(Protocol):
    """Where legal time comes from (SNTP now; the WAN work may add a TLS-protected source)."""

    def query(self) -> TimeSample: ...


def ntp_to_unix(raw: bytes) -> float:
    sec, frac = struct.unpack("!II", raw)
    if not sec & 0x8000_0000:
        sec += _ERA  # era 1: 2036-02-07 .. 2104
    return sec - NTP_UNIX_DELTA + frac / _ERA


def unix_to_ntp(t: float) -> bytes:
    sec = int(t // 1)
    frac = min(int((t - sec) * _ERA), _ERA - 1)
    return struct.pack("!II", (sec + NTP_UNIX_DELTA) % _ERA, frac)


class SntpSource:
    """Unicast SNTP client for one server; ``query()`` sends one request and checks the answer."""

    def __init__(self, host: str, port: int = 123, timeout: float = 2.0, *,
                 max_root_distance_s: float = 1.5,  # ntpd's default "maxdist"
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.max_root_distance_s = max_root_distance_s
        self._wall, self._mono = wall, monotonic
        self.server = host if port == 123 else f"{host}:{port}"

    def query(self) -> TimeSample:
        try:
            family, _, _, _, addr = socket.getaddrinfo(self.host, self.port,
                                                       type=socket.SOCK_DGRAM)[0]
        except OSError as e:
            raise TimeSourceError("network", f"cannot resolve {self.host}: {e}") from e
        nonce = secrets.token_bytes(8)
        request = bytes([0 << 6 | 4 << 3 | 3]) + bytes(39) + nonce  # LI 0, VN 4, mode 3
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(addr)  # the kernel drops datagrams from other addresses
                t1, m1 = self._wall(), self._mono()
                sock.send(request)
                data, m4 = self._receive(sock, nonce, m1)
            except OSError as e:  # e.g. ICMP port unreachable → ECONNREFUSED
                raise TimeSourceError("network", f"{self.server}: {e}") from e
        return self._check(data, t1, t1 + (m4 - m1), m4)

    def _receive(self, sock: socket.socket, nonce: bytes, m1: float) -> tuple[bytes, float]:
        deadline, dropped = m1 + self.timeout, None
        while (left := deadline - self._mono()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(1024)
            except socket.timeout:
                break
            m4 = self._mono()
            if data[24:32] != nonce:
                # stale, duplicated, spoofed or cut short before the originate field: not (as
                # far as we can tell) the answer to our request, so keep listening
                dropped = ("short", f"{len(data)}-byte answer from {self.server}") \
                    if len(data) < NTP_PACKET_LEN else \
                    ("bogus", f"answer from {self.server} with a wrong originate timestamp")
                continue
            if len(data) < NTP_PACKET_LEN:
                raise TimeSourceError("short", f"{len(data)}-byte answer from {self.server}")
            return data, m4
        if dropped:
            raise TimeSourceError(*dropped)
        raise TimeSourceError("timeout", f"no answer from {self.server} in {self.timeout} s")

    def _check(self, data: bytes, t1: float, t4: float, m4: float) -> TimeSample:
        (lvm, stratum, _poll, _prec, root_delay, root_disp, refid,
         _ref, _orig, recv, xmit) = _HEADER.unpack_from(data)
        li, version, mode = lvm >> 6, lvm >> 3 & 7, lvm & 7
        if len(data) % 4:
            raise TimeSourceError("bogus", f"answer length {len(data)} is not a multiple of 4")
        if mode != 4 or version not in (3, 4):
            raise TimeSourceError("bogus", f"mode {mode} version {version}, want server mode 4")
        if stratum == 0:
            kiss = refid.decode("ascii", "replace").rstrip("\x00") or "?"
            raise TimeSourceError("kiss", f"kiss-o'-death {kiss} from {self.server}",
                                  kiss_code=kiss)
        if li == 3 or stratum >= 16:
            raise TimeSourceError("unsynchronised", f"{self.server} is not synchronised "
                                                    f"(leap indicator {li}, stratum {stratum})")
        if recv == bytes(8) or xmit == bytes(8):
            raise TimeSourceError("bogus", "zero receive or transmit timestamp")
        root_distance = root_delay / 2 / 65536 + root_disp / 65536
        if root_distance > self.max_root_distance_s:
            raise TimeSourceError("bogus", f"root distance {root_distance:.3f} s exceeds "
                                           f"{self.max_root_distance_s} s")
        t2, t3 = ntp_to_unix(recv), ntp_to_unix(xmit)
        offset = ((t2 - t1) + (t3 - t4)) / 2
        delay = (t4 - t1) - (t3 - t2)
        if delay < -0.001:  # the server claims to have held our request longer than the trip
            raise TimeSourceError("bogus", f"negative round-trip delay {delay:.6f} s")
        return TimeSample(offset_s=offset, delay_s=max(delay, 0.0), server=self.server,
                          stratum=stratum, at_monotonic=m4, server_time_s=t4 + offset)
