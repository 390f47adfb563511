"""Two pseudo-terminal pairs joined back to back, like a UART cable between host and board.

Each end is a real tty device path (``/dev/pts/N``) that pyserial opens like any serial port.
The relay can damage the line on purpose (bit errors, dropped bytes) with a seeded generator, so
tests and bench users can watch the link recover. Like a real UART with nobody listening, bytes
for an end whose buffer is full are dropped, never queued without bound.
"""

from __future__ import annotations

import errno
import os
import random
import select
import threading
import tty
from dataclasses import dataclass, field


@dataclass
class LineStats:
    bytes_a_to_b: int = 0
    bytes_b_to_a: int = 0
    flipped: int = 0
    dropped: int = 0
    overflow: int = 0


@dataclass
class Noise:
    bit_error_rate: float = 0.0  # probability per byte that one bit flips
    drop_rate: float = 0.0  # probability per byte that it vanishes
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("bit_error_rate", "drop_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5, got {v}")
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return self.bit_error_rate > 0 or self.drop_rate > 0

    def apply(self, data: bytes, stats: LineStats) -> bytes:
        rng = self._rng
        out = bytearray()
        ber, drop = self.bit_error_rate, self.drop_rate
        for b in data:
            r = rng.random()
            if r < drop:
                stats.dropped += 1
                continue
            if r < drop + ber:
                b ^= 1 << rng.randrange(8)
                stats.flipped += 1
            out.append(b)
        return bytes(out)


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line discipline: bytes pass unchanged
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class PtyBridge:
    """``PtyBridge().start()`` gives ``port_a`` and ``port_b``: what one end writes, the other
    reads, through ``noise`` (a ``Noise`` or None)."""

    def __init__(self, noise: Noise | None = None) -> None:
        self.noise = noise
        self.stats = LineStats()
        self._ma, self._sa, self.port_a = _open_pty()
        self._mb, self._sb, self.port_b = _open_pty()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="pty-bridge", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> "PtyBridge":
        self._thread.start()
        return self

    def set_noise(self, noise: Noise | None) -> None:
        with self._lock:
            self.noise = noise

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._ma, self._sa, self._mb, self._sb, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "PtyBridge":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        peers = {self._ma: self._mb, self._mb: self._ma}
        while True:
            r, _, _ = select.select([self._ma, self._mb, self._stop_r], [], [], 1.0)
            if self._stop_r in r:
                return
            for src in r:
                try:
                    data = os.read(src, 65536)
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.EIO):
                        continue
                    raise
                if not data:
                    continue
                if src == self._ma:
                    self.stats.bytes_a_to_b += len(data)
                else:
                    self.stats.bytes_b_to_a += len(data)
                with self._lock:
                    noise = self.noise
                if noise is not None and noise.active:
                    data = noise.apply(data, self.stats)
                self._write(peers[src], data)

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                # the far end is not reading and its buffer is full: the line loses the rest
                self.stats.overflow += len(view)
                return
            view = view[n:]
