"""The gateway's externally visible state, as the LEDs show it.

The host decides, the firmware renders (docs/leds.md): every change is sent to the firmware as a
STATE message. The operating states themselves (normal, restricted, minimal, ceased) and their
causes are decided elsewhere; this object only holds the current values and tells subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smgwfw import messages as m

OP_NAMES = {
    m.OP_BOOT: "boot", m.OP_STARTING: "starting", m.OP_NORMAL: "normal",
    m.OP_RESTRICTED: "restricted", m.OP_MINIMAL: "minimal", m.OP_CEASED: "ceased",
    m.OP_SOFT_LOCKDOWN: "soft-lockdown",
}
WAN_NAMES = {m.WAN_DOWN: "down", m.WAN_CONNECTING: "connecting", m.WAN_UP_SEAL: "up-seal",
             m.WAN_UP: "up"}
LMC_NAMES = {m.LMC_NONE: "none", m.LMC_ADDRESSED: "addressed",
             m.LMC_TIME_INVALID: "addressed-time-invalid", m.LMC_BUS_OVERLOAD: "bus-overload"}
SEC_NAMES = {m.SEC_NONE: "none", m.SEC_PWR_TLS: "pwr+tls", m.SEC_PWR_LMC: "pwr+lmc",
             m.SEC_PWR_TLS_LMC: "pwr+tls+lmc", m.SEC_PWR_WMT: "pwr+wmt", m.SEC_ALL: "all"}


class GatewayState:
    def __init__(self) -> None:
        self.op = m.OP_STARTING
        self.wan = m.WAN_DOWN
        self.lmc = m.LMC_NONE
        self.install = False
        self.security = m.SEC_NONE
        self._subscribers: list[Callable[[], None]] = []

    def subscribe(self, fn: Callable[[], None]) -> None:
        self._subscribers.append(fn)

    def update(self, **changes: Any) -> None:
        # all fields are checked before any is applied: a refused update changes nothing
        limits = {"op": m.OP_MAX, "wan": m.WAN_MAX, "lmc": m.LMC_MAX, "security": m.SEC_MAX}
        checked = {}
        for key, value in changes.items():
            if key == "install":
                value = bool(value)
            elif key in limits:
                if not isinstance(value, int) or isinstance(value, bool) or \
                        not 0 <= value <= limits[key]:
                    raise ValueError(f"gateway state {key}: {value!r} out of range")
            else:
                raise ValueError(f"unknown gateway state field {key!r}")
            checked[key] = value
        for key, value in checked.items():
            setattr(self, key, value)
        for fn in self._subscribers:
            fn()

    def to_message(self) -> dict[int, Any]:
        return {
            m.K_TYPE: m.T_STATE, m.K_STATE_OP: self.op, m.K_STATE_WAN: self.wan,
            m.K_STATE_LMC: self.lmc, m.K_STATE_INSTALL: self.install,
            m.K_STATE_SECURITY: self.security,
        }

    def describe(self) -> dict[str, Any]:
        return {"operating_state": OP_NAMES[self.op], "wan": WAN_NAMES[self.wan],
                "lmc": LMC_NAMES[self.lmc], "firmware_install": self.install,
                "security": SEC_NAMES[self.security]}
