"""A pair of link endpoints joined by a simulated line (h11's ConnectionPair idea): what one
sends, the other receives, through optional deterministic damage."""

from __future__ import annotations

import random

from smgwfw import link as lk
from smgwfw import messages as m


class Line:
    def __init__(self, seed=0, ber=0.0, drop=0.0):
        self.rng = random.Random(seed)
        self.ber, self.drop = ber, drop
        self.cut = False  # cable unplugged: everything is lost

    def carry(self, data: bytes) -> bytes:
        if self.cut:
            return b""
        if not self.ber and not self.drop:
            return data
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                continue
            if r < self.drop + self.ber:
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
        return bytes(out)


class Side:
    """An endpoint plus the application around it: durable consumption into `stored`."""

    def __init__(self, role, stream, seed, cursors=None, incarnation=0, **kw):
        rng = random.Random(seed)
        self.link = lk.Link(role, stream, lambda: rng.getrandbits(30), info={"r": role},
                            cursors=dict(cursors or {}), incarnation=incarnation, **kw)
        self.stored: list[tuple[int, int]] = []  # (rid, n) durably consumed
        self.events: list[tuple] = []
        self.acked: list[int] = []

    def pump_events(self):
        while (ev := self.link.next_event()) is not None:
            kind, val = ev
            if kind == lk.EV_MESSAGE:
                if val[m.K_TYPE] == m.T_LINKTEST:
                    self.stored.append((val.get(m.K_RID, 0), val[m.K_LT_N]))
                self.link.consumed()
            elif kind == lk.EV_ACKED:
                self.acked.append(val)
            self.events.append(ev)


class Pair:
    def __init__(self, a: Side, b: Side, line_ab: Line | None = None, line_ba: Line | None = None):
        self.a, self.b = a, b
        self.ab = line_ab or Line()
        self.ba = line_ba or Line()
        self.now = 0

    def step(self, ms=1):
        self.now = (self.now + ms) & 0x3FFFFFFF
        for src, dst, line in ((self.a, self.b, self.ab), (self.b, self.a, self.ba)):
            while (f := src.link.poll(self.now)) is not None:
                data = line.carry(bytes(f))
                if data:
                    dst.link.receive(data, self.now)
            dst.pump_events()
            src.pump_events()

    def run_until(self, cond, limit_ms=200_000, ms=1):
        for _ in range(limit_ms // ms):
            if cond():
                return True
            self.step(ms)
        return cond()


def linktest_msg(n, size=50):
    return {m.K_TYPE: m.T_LINKTEST, m.K_LT_N: n, m.K_LT_DATA: bytes([n & 0xFF]) * size}
