"""Serial transport: any pyserial URL or device path, read by one thread, written from asyncio.

pyserial's ``serial_for_url`` takes device paths (``/dev/ttyACM0``, a pty) as well as
``socket://``, ``rfc2217://`` and ``spy://`` URLs, so a bench user can put a board behind a
network serial server or hex-dump the traffic without touching the code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import serial

log = logging.getLogger("smgw.link")


class PortError(Exception):
    """The serial port could not be opened or failed while in use (the user's or the cable's
    fault, not the protocol's)."""


class SerialPort:
    def __init__(self, url: str, baudrate: int) -> None:
        self.url = url
        try:
            # exclusive: a second program (mpremote, another gateway) on the same board fails
            # at once instead of both reading half of each other's bytes
            self._ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05,
                                              write_timeout=2, exclusive=True)
        except (serial.SerialException, ValueError) as e:
            raise PortError(f"cannot open serial port {url!r}: {e}") from None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.failed: str | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_data: Callable[[bytes], None],
              on_error: Callable[[str], None]) -> None:
        def reader() -> None:
            ser = self._ser
            while not self._stop.is_set():
                try:
                    data = ser.read(max(1, ser.in_waiting))
                except (serial.SerialException, OSError) as e:
                    if self._stop.is_set():
                        return
                    self.failed = str(e)
                    loop.call_soon_threadsafe(on_error, str(e))
                    return
                if data:
                    loop.call_soon_threadsafe(on_data, data)

        self._thread = threading.Thread(target=reader, name=f"serial-rx {self.url}", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        try:
            self._ser.write(data)
        except serial.SerialTimeoutException:
            # nobody drains the line (board unplugged, bridge full): the frame is lost on the
            # wire, which the link's retransmission already covers
            log.warning("serial write timed out; frame dropped", extra={"fields": {"port": self.url}})
        except (serial.SerialException, OSError) as e:
            raise PortError(f"writing to {self.url!r} failed: {e}") from None

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        try:
            self._ser.close()
        except Exception:  # closing a port that already failed
            pass
