"""The TCP listener of the ATM and POS channel (asyncio).

Each connection reads frames in a loop and answers each request in a task of its own, so a
terminal may pipeline requests (answers go back as they are ready; a terminal matches them by
STAN). What one connection may cost is bounded: a frame's size, the time its bytes may take,
how long it may stay silent, how many of its requests run at once, and how long an answer may
wait for a peer that does not read. A slow or half-open peer therefore holds only its own
connection; the number of connections is bounded too.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from channelhub.channels.iso8583.metrics import CONNECTIONS, REFUSED
from channelhub.channels.iso8583.processor import MessageProcessor
from channelhub.kit.iso8583 import FrameTooLarge, frame, read_frame
from channelhub.kit.logging import get_logger

__all__ = ["Iso8583Server", "ServerLimits"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one connection, and all of them, may cost (the ``iso8583`` settings)."""

    max_message_bytes: int = 4096
    read_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 300.0
    max_connections: int = 2_000
    max_in_flight: int = 32
    #: How long an answer may wait for a peer that does not read before the connection goes.
    write_timeout_seconds: float = 10.0


class Iso8583Server:
    """Accepts terminal connections and answers their requests with a ``MessageProcessor``."""

    def __init__(self, processor: MessageProcessor, limits: ServerLimits | None = None) -> None:
        self.processor = processor
        self.limits = limits or ServerLimits()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port listened on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the ISO 8583 server is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0 picks a free port); return the address."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=2**16)
        log.info("iso8583_listening", host=self.address[0], port=self.address[1])
        return self.address

    async def close(self) -> None:
        """Stop listening and close every connection; answers being computed are dropped
        (a terminal repeats or reverses a request it got no answer to)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.limits.max_connections or task is None:
            REFUSED.labels("too_many_connections").inc()
            writer.close()
            return
        self._connections.add(task)
        CONNECTIONS.inc()
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            CONNECTIONS.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        in_flight = asyncio.Semaphore(limits.max_in_flight)
        answering: set[asyncio.Task[None]] = set()
        closing = asyncio.Event()
        try:
            while not closing.is_set():
                try:
                    body = await read_frame(
                        reader,
                        max_bytes=limits.max_message_bytes,
                        idle_timeout=limits.idle_timeout_seconds,
                        read_timeout=limits.read_timeout_seconds,
                    )
                except FrameTooLarge:
                    REFUSED.labels("frame_too_large").inc()
                    break
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    REFUSED.labels("truncated_frame").inc()
                    break
                if body is None:
                    break
                # Reading stops while the connection has its fill of requests running.
                await in_flight.acquire()
                task = asyncio.create_task(self._answer(body, writer, in_flight, closing))
                answering.add(task)
                task.add_done_callback(answering.discard)
            # The peer is done sending: let what it asked for be answered, within bounds.
            if answering:
                await asyncio.wait(answering, timeout=limits.write_timeout_seconds * 3)
        finally:
            for task in answering:
                task.cancel()

    async def _answer(
        self,
        body: bytes,
        writer: asyncio.StreamWriter,
        in_flight: asyncio.Semaphore,
        closing: asyncio.Event,
    ) -> None:
        try:
            answer = await self.processor.answer(body)
            if answer is None:  # not a request at all: this peer does not speak the protocol
                closing.set()
                writer.close()
                return
            if writer.is_closing():
                return
            writer.write(frame(answer))
            async with asyncio.timeout(self.limits.write_timeout_seconds):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            REFUSED.labels("peer_not_reading").inc()
            closing.set()
            writer.close()
        except Exception:  # a bug costs this connection, never the server
            log.exception("iso8583_connection_failed")
            closing.set()
            writer.close()
        finally:
            in_flight.release()
