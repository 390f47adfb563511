"""The control socket: a real ControlServer on a real Unix socket, driven with asyncio.run() (no
asyncio plugin here), with the blocking ``request()`` client in a worker thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from smgw.control import MAX_REQUEST, ControlError, ControlServer, request


class Bug(Exception):
    pass


def make_handlers(calls: list[str]) -> dict[str, Any]:
    def status(req: dict[str, Any]) -> dict[str, Any]:
        calls.append("status")
        return {"link": "up", "n": len(calls)}

    async def echo(req: dict[str, Any]) -> dict[str, Any]:
        calls.append("echo")
        await asyncio.sleep(0.01)
        return {k: v for k, v in req.items() if k != "cmd"}

    def refuse(req: dict[str, Any]) -> None:
        raise ValueError("count must be positive")

    async def bug(req: dict[str, Any]) -> None:
        raise Bug("boom in handler")

    def nothing(req: dict[str, Any]) -> None:
        return None

    return {"status": status, "echo": echo, "refuse": refuse, "bug": bug, "nothing": nothing}


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path can come close
    p = tmp_path / "c.sock"
    assert len(str(p)) < 100
    return p


def serve(sock: Path, body, handlers: dict[str, Any] | None = None) -> Any:
    """Runs ``await body(server)`` with a started server, then stops it."""

    async def main() -> Any:
        server = ControlServer(sock, handlers if handlers is not None else make_handlers([]))
        await server.start()
        try:
            return await body(server)
        finally:
            await server.stop()

    return asyncio.run(main())


async def ask(sock: Path, cmd: str, **kw: Any) -> Any:
    return await asyncio.to_thread(request, sock, cmd, 5.0, **kw)


class Conn:
    """A raw line-oriented client, to send what request() never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, sock: Path) -> "Conn":
        return cls(*await asyncio.open_unix_connection(str(sock)))

    async def send(self, raw: bytes) -> dict[str, Any]:
        self.writer.write(raw)
        await self.writer.drain()
        line = await asyncio.wait_for(self.reader.readline(), 5)
        assert line.endswith(b"\n"), line
        return json.loads(line)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass


# ------------------------------------------------------------------ answers


def test_status_sync_and_async_handlers(sock):
    calls: list[str] = []

    async def body(server):
        st = await ask(sock, "status")
        echoed = await ask(sock, "echo", count=3, name="x", nested={"a": [1, 2]})
        none = await ask(sock, "nothing")
        return st, echoed, none

    st, echoed, none = serve(sock, body, make_handlers(calls))
    assert st == {"link": "up", "n": 1}
    assert echoed == {"count": 3, "name": "x", "nested": {"a": [1, 2]}}
    assert none is None
    assert calls == ["status", "echo"]


def test_unknown_command_lists_the_commands(sock):
    async def body(server):
        c = await Conn.open(sock)
        ans = await c.send(b'{"cmd": "frobnicate"}\n')
        await c.close()
        with pytest.raises(ControlError) as ei:
            await ask(sock, "frobnicate")
        return ans, str(ei.value)

    ans, err = serve(sock, body)
    assert ans["ok"] is False
    assert "frobnicate" in ans["error"]
    assert ans["commands"] == ["bug", "echo", "nothing", "refuse", "status"]
    assert "unknown command" in err and "frobnicate" in err


def test_value_error_in_handler_is_the_answer(sock):
    async def body(server):
        with pytest.raises(ControlError) as ei:
            await ask(sock, "refuse")
        return str(ei.value), await ask(sock, "status")

    err, st = serve(sock, body)
    assert err == "count must be positive"
    assert st["link"] == "up"


def test_bug_in_handler_is_reported_and_the_server_survives(sock):
    async def body(server):
        c = await Conn.open(sock)
        ans = await c.send(b'{"cmd": "bug"}\n')
        after = await c.send(b'{"cmd": "status"}\n')  # same connection still served
        await c.close()
        return ans, after, await ask(sock, "status")

    ans, after, st = serve(sock, body)
    assert ans["ok"] is False
    assert "internal error" in ans["error"] and "boom in handler" in ans["error"]
    assert after["ok"] is True and after["result"]["link"] == "up"
    assert st["link"] == "up"


@pytest.mark.parametrize("raw", [
    b"this is not json\n",
    b"{\"cmd\": \n",
    b"\n",
    b"\xff\xfe\x00garbage\n",
    b"[\"status\"]\n",
    b"\"status\"\n",
    b"42\n",
    b"null\n",
    b"{}\n",
    b"{\"cmd\": 5}\n",
    b"{\"cmd\": null}\n",
    b"{\"command\": \"status\"}\n",
])
def test_malformed_requests_get_an_error_and_the_connection_keeps_working(sock, raw):
    async def body(server):
        c = await Conn.open(sock)
        bad = await c.send(raw)
        good = await c.send(b'{"cmd": "status"}\n')
        await c.close()
        return bad, good

    bad, good = serve(sock, body)
    assert bad["ok"] is False
    assert bad["error"].startswith("bad request"), bad
    assert good == {"ok": True, "result": {"link": "up", "n": 1}}


def test_several_requests_in_one_write_get_answers_in_order(sock):
    async def body(server):
        c = await Conn.open(sock)
        c.writer.write(b'{"cmd": "echo", "i": 1}\n{"cmd": "nope"}\n{"cmd": "echo", "i": 3}\n')
        await c.writer.drain()
        lines = [json.loads(await asyncio.wait_for(c.reader.readline(), 5)) for _ in range(3)]
        await c.close()
        return lines

    a, b, c = serve(sock, body)
    assert a == {"ok": True, "result": {"i": 1}}
    assert b["ok"] is False and "nope" in b["error"]
    assert c == {"ok": True, "result": {"i": 3}}


def test_oversized_request_is_refused_without_killing_the_server(sock):
    def send_huge() -> bytes:
        big = json.dumps({"cmd": "echo", "pad": "x" * (MAX_REQUEST + 1000)}).encode() + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(sock))
            try:
                s.sendall(big)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading and hung up: the answer is still queued
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                buf += chunk
            return buf

    async def body(server):
        answer = await asyncio.to_thread(send_huge)
        # a fresh connection is served normally, and a request just under the limit works
        st = await ask(sock, "status")
        under = await ask(sock, "echo", pad="y" * (MAX_REQUEST - 100))
        return answer, st, under

    answer, st, under = serve(sock, body)
    lines = answer.splitlines()
    assert len(lines) == 1, answer[:200]
    assert json.loads(lines[0]) == {"ok": False, "error": "request too long"}
    assert st["link"] == "up"
    assert len(under["pad"]) == MAX_REQUEST - 100


def test_client_that_hangs_up_early_does_not_disturb_others(sock):
    async def body(server):
        for _ in range(5):
            c = await Conn.open(sock)
            c.writer.write(b'{"cmd": "ec')  # half a request, then gone
            await c.writer.drain()
            await c.close()
        return await ask(sock, "status")

    assert serve(sock, body)["link"] == "up"


def test_large_answer_is_read_completely(sock):
    handlers = {"big": lambda req: {"data": "z" * 300_000}}

    async def body(server):
        return await ask(sock, "big")

    assert serve(sock, body, handlers)["data"] == "z" * 300_000


# ------------------------------------------------------------------ the socket file


def test_socket_file_mode_is_0600_and_removed_on_stop(sock):
    async def body(server):
        st = os.stat(sock)
        return stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode)

    is_sock, mode = serve(sock, body)
    assert is_sock
    assert mode == 0o600, oct(mode)
    assert not sock.exists()


def test_missing_parent_directory_is_created(tmp_path):
    p = tmp_path / "a" / "b" / "s.sock"

    async def body(server):
        return await ask(p, "status")

    assert serve(p, body)["link"] == "up"


def test_second_server_on_the_same_path_raises_control_error(sock):
    async def body(server):
        second = ControlServer(sock, {})
        with pytest.raises(ControlError) as ei:
            await second.start()
        # the first one is untouched and still answers
        return str(ei.value), await ask(sock, "status")

    err, st = serve(sock, body)
    assert "another gateway" in err and str(sock) in err
    assert st["link"] == "up"


def test_stale_socket_file_is_replaced(sock):
    # a gateway that was SIGKILLed leaves its socket file behind, with nobody listening
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.listen(1)
    s.close()
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    with pytest.raises(ControlError):
        request(sock, "status", timeout=2)  # really dead

    async def body(server):
        return await ask(sock, "status")

    assert serve(sock, body)["link"] == "up"


def test_regular_file_at_socket_path_is_not_deleted(tmp_path):
    victim = tmp_path / "smgw.db"
    victim.write_bytes(b"precious data")

    async def main():
        server = ControlServer(victim, {})
        try:
            with pytest.raises(ControlError):
                await server.start()
        finally:
            if server._server:
                server._server.close()
                await server._server.wait_closed()

    try:
        asyncio.run(main())
    finally:
        exists = victim.is_file()
    assert exists and victim.read_bytes() == b"precious data"


def test_stop_then_start_again_on_the_same_path(sock):
    async def main():
        results = []
        for _ in range(2):
            server = ControlServer(sock, {"status": lambda r: "hi"})
            await server.start()
            results.append(await ask(sock, "status"))
            await server.stop()
            results.append(sock.exists())
        return results

    assert asyncio.run(main()) == ["hi", False, "hi", False]


# ------------------------------------------------------------------ the client


def test_request_to_a_missing_socket_says_no_gateway_running(tmp_path):
    p = tmp_path / "nothing-here.sock"
    with pytest.raises(ControlError) as ei:
        request(p, "status", timeout=2)
    msg = str(ei.value)
    assert "no gateway running" in msg
    assert str(p) in msg


def test_request_to_a_dead_socket_file_raises_control_error(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()
    with pytest.raises(ControlError) as ei:
        request(sock, "status", timeout=2)
    assert "cannot reach the gateway" in str(ei.value)


def test_request_times_out_on_a_server_that_never_answers(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.listen(1)  # accepts (in the backlog) but never answers
    try:
        with pytest.raises(ControlError):
            request(sock, "status", timeout=0.5)
    finally:
        s.close()


def test_request_with_an_unreadable_answer(sock):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    srv.listen(1)

    async def main():
        def fake_server():
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"<html>not json</html>\n")

        task = asyncio.create_task(asyncio.to_thread(fake_server))
        with pytest.raises(ControlError) as ei:
            await ask(sock, "status")
        await task
        return str(ei.value)

    try:
        assert "unreadable" in asyncio.run(main())
    finally:
        srv.close()
