"""A bare Starlette app answering like channelhub's echo service, with no kernel and no database.

It is the baseline of ``bench/kernel.py``: the same HTTP server settings as ``channelhub serve``
(uvicorn, one worker, no access log, no server header), the same request and the same answer
shape, so the ratio of the two throughputs shows what the kernel, the journal and the outbox cost.

Run it on its own with ``python bench/bare_app.py [--host 127.0.0.1] [--port 0]``; once listening
it prints ``bare listening on http://HOST:PORT`` on stdout, like ``channelhub serve`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import uuid

import orjson
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["app", "echo"]


async def echo(request: Request) -> Response:
    """Return the JSON body inside channelhub's answer envelope, under a fresh transaction id."""
    data = orjson.loads(await request.body())
    txn_id = str(uuid.uuid4())
    envelope = {
        "txn_id": txn_id,
        "status": "succeeded",
        "code": "OK",
        "message": "Completed",
        "data": data,
    }
    return Response(
        orjson.dumps(envelope),
        media_type="application/json",
        headers={"x-txn-id": txn_id},
    )


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its address on stdout once it listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then announce ``bare listening on http://HOST:PORT``."""
        await super().startup(sockets=sockets)
        if self.started:
            address = self.servers[0].sockets[0].getsockname()
            print(f"bare listening on http://{address[0]}:{address[1]}", flush=True)


async def serve(host: str, port: int) -> None:
    """Serve ``app`` with the uvicorn settings of ``channelhub serve`` until stopped."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    await AnnouncingServer(config).serve()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    args = parser.parse_args(argv)
    try:
        # The same event loop as `channelhub serve`: uvloop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
