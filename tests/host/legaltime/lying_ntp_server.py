"""A real NTP server on 127.0.0.1 for the tests, which can be told to lie.

Not a mock: it listens on a UDP socket and answers what the client really sent, so the client's
socket handling, packet layout and checks are exercised end to end. Each answer is built from
``server.lie`` (a :class:`Lie`), which a test changes between queries.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field

from smgw.legaltime.sntp import unix_to_ntp


@dataclass
class Lie:
    skew_s: float = 0.0  # the server's clock runs this far ahead of the host's
    li: int = 0
    version: int = 4
    mode: int = 4
    stratum: int = 2
    kiss: str | None = None  # answer stratum 0 with this kiss code in the reference id
    wrong_origin: bool = False  # echo something else than the client's transmit timestamp
    spoof_first: bool = False  # send a wrong-origin packet before the real answer
    truncate: int | None = None  # send only this many bytes
    append: bytes = b""  # extension fields / MAC after the 48-byte header
    silent: bool = False  # receive, never answer
    zero_transmit: bool = False
    root_delay_s: float = 0.002
    root_dispersion_s: float = 0.001
    claimed_hold_s: float = 0.0  # t3 − t2 the server claims (beyond the truth)


@dataclass
class Received:
    data: bytes
    at: float = field(default_factory=time.time)


class LyingNtpServer:
    """``with LyingNtpServer() as srv:`` then ``SntpSource("127.0.0.1", srv.port)``."""

    def __init__(self) -> None:
        self.lie = Lie()
        self.requests: list[Received] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                outer.requests.append(Received(data))
                for packet in outer._answers(data):
                    sock.sendto(packet, self.client_address)

        self._server = socketserver.UDPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LyingNtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _answers(self, request: bytes) -> list[bytes]:
        lie = self.lie
        if lie.silent or len(request) < 48:
            return []
        t2 = time.time() + lie.skew_s
        origin = request[40:48]
        refid = lie.kiss.encode("ascii").ljust(4, b"\0")[:4] if lie.kiss else b"GPS\0"
        stratum = 0 if lie.kiss else lie.stratum

        def packet(orig: bytes) -> bytes:
            t3 = time.time() + lie.skew_s + lie.claimed_hold_s
            head = struct.pack("!BBbbII4s", lie.li << 6 | lie.version << 3 | lie.mode, stratum,
                               6, -20, int(lie.root_delay_s * 65536),
                               int(lie.root_dispersion_s * 65536), refid)
            xmit = bytes(8) if lie.zero_transmit else unix_to_ntp(t3)
            raw = head + unix_to_ntp(t2 - 16) + orig + unix_to_ntp(t2) + xmit + lie.append
            return raw[:lie.truncate] if lie.truncate is not None else raw

        out = []
        if lie.spoof_first:
            out.append(packet(bytes(b ^ 0xFF for b in origin)))
        out.append(packet(bytes(b ^ 0xFF for b in origin) if lie.wrong_origin else origin))
        return out


def free_udp_port() -> int:
    """A port on 127.0.0.1 where nothing listens (the kernel answers port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
