"""The local control socket: how ``smgw status`` and friends talk to a running gateway.

A Unix domain socket in the data directory (only the gateway's own user can reach it), one JSON
request per line, one JSON answer per line: ``{"cmd": "status"}`` -> ``{"ok": true, "result":
{...}}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("smgw.control")

MAX_REQUEST = 64 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]


class ControlError(Exception):
    """The control request could not be answered (no gateway running, or it said no)."""


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                # never delete what is not ours: a misconfigured path could name the database
                raise ControlError(f"control socket path {self.path} exists and is not a socket")
            if _alive(self.path):
                raise ControlError(f"another gateway is running on {self.path}")
            self.path.unlink()  # a socket left behind by a gateway that was killed
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                       limit=MAX_REQUEST)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await _reply(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                await _reply(writer, await self._answer(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ValueError("a request is a JSON object with a string 'cmd'")
        except ValueError as e:
            return {"ok": False, "error": f"bad request: {e}"}
        handler = self.handlers.get(req["cmd"])
        if handler is None:
            return {"ok": False, "error": f"unknown command {req['cmd']!r}",
                    "commands": sorted(self.handlers)}
        try:
            result = handler(req)
            if asyncio.iscoroutine(result):
                result = await result
        except (ValueError, TypeError) as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # a bug in a handler must not take the gateway down
            log.exception("control command failed", extra={"fields": {"cmd": req["cmd"]}})
            return {"ok": False, "error": f"internal error: {e}"}
        return {"ok": True, "result": result}


async def _reply(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj, default=str).encode() + b"\n")
    await writer.drain()


def _alive(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
        return True
    except OSError:
        return False


def request(path: Path, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
    """Sends one command to the gateway at ``path`` and returns its result."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except FileNotFoundError:
        raise ControlError(f"no gateway running (no control socket at {path})") from None
    except OSError as e:
        raise ControlError(f"cannot reach the gateway at {path}: {e}") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError("the gateway sent an unreadable answer") from None
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "request refused"))
    return answer.get("result")
