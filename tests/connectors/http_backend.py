"""A REST back end on a real loopback socket, for the http connector's tests.

It counts the requests each path receives and the TCP connections it accepts, and can be
told to be slow, to fail, to answer garbage or to refuse as a business answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["DroppingServer", "RestBackend", "free_port", "rest_backend"]


def free_port() -> int:
    """Return a loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class RestBackend:
    """What the test back end saw, and how it behaves."""

    port: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    bodies: list[Any] = field(default_factory=list)
    #: Answers 503 to this many requests of /flaky before it answers.
    failures_left: int = 0
    #: Slow handlers wait on it; set at the end so that nothing is left hanging.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/echo", self._echo)
        app.router.add_get("/accounts/{account}/balance", self._balance)
        app.router.add_post("/slow", self._slow)
        app.router.add_get("/slow", self._slow)
        app.router.add_post("/flaky", self._flaky)
        app.router.add_get("/flaky", self._flaky)
        app.router.add_post("/garbage", self._garbage)
        app.router.add_post("/list", self._list)
        app.router.add_post("/refuse", self._refuse)
        app.router.add_post("/teapot", self._teapot)
        app.router.add_post("/huge", self._huge)
        app.router.add_post("/crash", self._crash)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[request.path] += 1
        response: web.StreamResponse = await handler(request)
        return response

    async def _echo(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        return _json({"echo": body, "content_type": request.content_type})

    async def _balance(self, request: web.Request) -> web.Response:
        return _json(
            {
                "account": request.match_info["account"],
                "currency": request.query.get("currency", "CNY"),
                "balance": "1250.00",
            }
        )

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.wait_for(self.release.wait(), timeout=60)
        return _json({"late": True})

    async def _flaky(self, request: web.Request) -> web.Response:
        if self.failures_left > 0:
            self.failures_left -= 1
            return _json({"error": "busy"}, status=503)
        return _json({"ok": True})

    async def _garbage(self, request: web.Request) -> web.Response:
        return web.Response(body=b"<html>\x00\xff not json", content_type="text/html")

    async def _list(self, request: web.Request) -> web.Response:
        return _json([1, 2, 3])

    async def _refuse(self, request: web.Request) -> web.Response:
        return _json({"result": "51", "text": "insufficient funds"}, status=422)

    async def _teapot(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such page")

    async def _huge(self, request: web.Request) -> web.Response:
        return _json({"filler": "x" * 2_000_000})

    async def _crash(self, request: web.Request) -> web.Response:
        return _json({"error": "boom"}, status=500)


def _json(value: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


@asynccontextmanager
async def rest_backend(port: int = 0) -> AsyncIterator[RestBackend]:
    """Run a ``RestBackend`` on 127.0.0.1 (``port`` 0: a free one) until the block ends."""
    backend = RestBackend()
    runner = web.AppRunner(backend.app(), access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    backend.port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        yield backend
    finally:
        backend.release.set()
        await runner.cleanup()


@dataclass
class DroppingServer:
    """A back end that is down in the rudest way: it accepts and hangs up at once."""

    port: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.transport.abort()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
