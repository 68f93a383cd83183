"""An async TCP client for a back end that speaks fixed-length records.

Mainframe style: a small pool of persistent connections, one request at a time on each (the
answer that comes back on a connection is the answer to the request just sent on it). Every call
has a mandatory timeout covering everything — waiting for a free connection, connecting,
sending and reading the answer. A connection whose call timed out, or that carried garbage, is
discarded and never reused: a late answer still on its way would otherwise be read as the answer
to the next request.

Every failure says whether the request left this process (``request_sent``): after a request
that changes money, a timeout, a dropped connection or a garbage answer with
``request_sent=True`` means the back end may have applied it — in doubt, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from channelhub.connectors.fixed.codec import Layout, Value, decode, encode
from channelhub.connectors.fixed.errors import (
    FixedDecodeError,
    FixedFrameError,
    FixedGarbage,
    FixedTimeout,
    FixedUnavailable,
)
from channelhub.connectors.fixed.framing import Framing, read_record
from channelhub.kit.logging import get_logger

__all__ = ["FixedClient"]

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def usable(self) -> bool:
        """Whether the peer has not closed it while it sat idle."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    def discard(self) -> None:
        """Close it at once, dropping whatever it still buffers."""
        self.writer.transport.abort()


class FixedClient:
    """Calls one fixed-record back end over a pool of persistent connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        framing: Framing | None = None,
        pool_size: int = 4,
    ) -> None:
        if pool_size < 1:
            raise ValueError("the pool holds at least one connection")
        self.host = host
        self.port = port
        self.framing = framing or Framing()
        self.pool_size = pool_size
        #: How many connections this client has opened (a discarded one is never reused).
        self.opened = 0
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []
        self._closed = False

    @property
    def idle(self) -> int:
        """Return how many open connections wait for a call."""
        return len(self._idle)

    async def call(
        self,
        request_layout: Layout,
        values: Mapping[str, Value],
        response_layout: Layout,
        *,
        timeout_seconds: float,
    ) -> dict[str, Value]:
        """Send one record of ``request_layout`` and return the answer's fields.

        Raises:
            FixedEncodeError: a value does not fit the request layout (nothing was sent).
            FixedTimeout: no answer within ``timeout_seconds``.
            FixedUnavailable: the connection was refused or closed before the answer.
            FixedGarbage: the answer is not a record of ``response_layout``.
        """
        record = encode(request_layout, values)
        return await self._exchange(
            record, lambda answer: decode(response_layout, answer), timeout_seconds
        )

    async def exchange(self, record: bytes, *, timeout_seconds: float) -> bytes:
        """Send one record's bytes and return the answer's bytes (no layout involved).

        Raises:
            FixedFrameError: the record is empty or too long to send (nothing was sent).
            FixedTimeout, FixedUnavailable, FixedGarbage: as ``call``.
        """
        return await self._exchange(record, lambda answer: answer, timeout_seconds)

    async def _exchange(
        self, record: bytes, read: Callable[[bytes], T], timeout_seconds: float
    ) -> T:
        if not timeout_seconds > 0:
            raise ValueError("a call's timeout is a positive number of seconds")
        if self._closed:
            raise FixedUnavailable("the client is closed", request_sent=False)
        frame = self.framing.frame(record)
        connection: _Connection | None = None
        sent = False
        try:
            async with asyncio.timeout(timeout_seconds), self._slots:
                connection = await self._acquire()
                # Set before draining: once written, the bytes may reach the back end even if
                # the drain is what times out.
                sent = True
                connection.writer.write(frame)
                await connection.writer.drain()
                result = read(await read_record(connection.reader, self.framing))
        except TimeoutError:
            self._discard(connection)
            log.warning("fixed_timeout", host=self.host, port=self.port, request_sent=sent)
            raise FixedTimeout(
                f"{self.host}:{self.port} did not answer within {timeout_seconds} s",
                request_sent=sent,
            ) from None
        except (OSError, asyncio.IncompleteReadError) as error:
            self._discard(connection)
            raise FixedUnavailable(
                f"{self.host}:{self.port} is unavailable: {error or type(error).__name__}",
                request_sent=sent,
            ) from None
        except (FixedFrameError, FixedDecodeError) as error:
            self._discard(connection)
            raise FixedGarbage(
                f"{self.host}:{self.port} answered garbage: {error.message}", cause=error
            ) from None
        except BaseException:
            self._discard(connection)
            raise
        self._release(connection)
        return result

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.discard()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return _Connection(reader, writer)

    def _release(self, connection: _Connection) -> None:
        if self._closed or not connection.usable:
            connection.discard()
        else:
            self._idle.append(connection)

    def _discard(self, connection: _Connection | None) -> None:
        if connection is not None:
            connection.discard()

    async def close(self) -> None:
        """Close every idle connection; calls after this are refused."""
        self._closed = True
        while self._idle:
            connection = self._idle.pop()
            connection.writer.close()
            # The peer may have gone first: closed all the same.
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
