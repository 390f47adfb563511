"""A small SNTP server (RFC 4330 server mode 4) on a local UDP port: the simulated GWA time
service for ``make run``. It answers from this machine's clock, with stratum 2 and a reference
id of "SIM", plus an adjustable offset so a bench can watch the gateway correct its time.

    srv = NtpServer(offset_s=0.0).start()      # srv.port: the UDP port on 127.0.0.1
    srv.offset_s = 5.0                         # from now on it serves time 5 s ahead
    srv.stop()
"""

from __future__ import annotations

import socket
import struct
import threading
import time

NTP_EPOCH = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def to_ntp(t: float) -> bytes:
    secs = int(t) + NTP_EPOCH
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", secs & 0xFFFFFFFF, frac)


class NtpServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.answered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "NtpServer":
        self._thread = threading.Thread(target=self._run, name="sim-ntp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            t_rx = time.time() + self.offset_s
            if len(data) < 48 or data[0] & 0x07 != 3:  # only client requests
                continue
            version = (data[0] >> 3) & 0x07
            head = bytes([(0 << 6) | (version << 3) | 4, 2, data[2], 0xEC])  # LI 0, mode 4
            reply = (head + struct.pack("!II", 0, 0x0100) + b"SIM\x00" + to_ntp(t_rx - 16)
                     + data[40:48] + to_ntp(t_rx) + to_ntp(time.time() + self.offset_s))
            try:
                self.sock.sendto(reply, peer)
                self.answered += 1
            except OSError:
                pass
