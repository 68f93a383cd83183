"""What every simulator shares: an asyncio TCP server that can be brought down and up.

A subclass says how it answers (``_serve``, one connection at a time) and which frame errors
end a connection; this class listens, keeps the address across a ``down`` and an ``up``,
counts and tracks connections, and closes them all on ``down`` or ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from channelhub.kit.logging import get_logger

__all__ = ["CommonFaults", "FaultsLike", "SimulatedServer", "Simulator", "serve_forever"]


@dataclasses.dataclass(frozen=True, slots=True)
class CommonFaults:
    """The faults every simulator has; each adds its own."""

    #: Delay each answer this many milliseconds.
    slow_ms: int = 0
    #: Apply requests but never answer them (which ones, the simulator says).
    drop: bool = False
    #: Apply requests and answer bytes that do not decode.
    garbage: bool = False
    #: Close every connection and refuse new ones.
    down: bool = False


class FaultsLike(Protocol):
    """What the server itself needs of a simulator's faults: a dataclass that says whether
    it is down."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def down(self) -> bool: ...


FaultsT = TypeVar("FaultsT", bound=FaultsLike)


class Simulator(Protocol):
    """What the command line needs of any simulator, TCP or HTTP: its kind, its faults, and
    to start and close it."""

    kind: ClassVar[str]

    @property
    def faults(self) -> FaultsLike: ...

    async def start(self, host: str = ..., port: int = ...) -> tuple[str, int]: ...

    async def close(self) -> None: ...


class SimulatedServer(Generic[FaultsT]):
    """An asyncio TCP server with switchable faults; subclasses answer the connections."""

    #: What the simulator is called in its log events and errors (``core``, ``switch``).
    kind: ClassVar[str]
    #: Errors that end one connection quietly: the peer left, went quiet or framed nonsense.
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        OSError,
        asyncio.IncompleteReadError,
        TimeoutError,
    )

    def __init__(self, faults: FaultsT) -> None:
        self.faults = faults
        #: How many connections the simulator has accepted.
        self.accepted = 0
        self._log = get_logger(type(self).__module__)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the simulator listens on (or would, when down)."""
        if self._address is None:
            raise RuntimeError(f"the simulated {self.kind} has not started")
        return self._address

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0 picks a free port) and return the address; a
        simulator started ``down`` keeps the address but refuses connections until brought up."""
        self._server = await asyncio.start_server(self._accept, host, port)
        bound = self._server.sockets[0].getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._log.info(
            f"{self.kind}_simulator_listening", host=self._address[0], port=self._address[1]
        )
        if self.faults.down:
            self._go_down()
        return self._address

    async def _change_faults(self, **changes: object) -> FaultsT:
        """Change the faults named (a None leaves one as it is), going down or coming back up
        as they say; return the faults now in force."""
        was_down = self.faults.down
        kept = {name: value for name, value in changes.items() if value is not None}
        faults = dataclasses.replace(self.faults, **kept)
        self.faults = faults
        if faults.down and not was_down:
            self._go_down()
        elif was_down and not faults.down and self._address is not None:
            host, port = self._address
            self._server = await asyncio.start_server(self._accept, host, port)
        self._log.info(f"{self.kind}_simulator_faults", faults=str(faults))
        return faults

    def _go_down(self) -> None:
        # ``close`` shuts the listening sockets at once. Not ``wait_closed``: from Python 3.12
        # it also waits for every connection's handler, a slow one included.
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._connections):
            writer.transport.abort()

    async def close(self) -> None:
        """Stop listening, close every connection and wait for their tasks to end."""
        self._stopped.set()
        self._go_down()
        # Not cancelled: asyncio's stream callback reports a cancelled connection task as an
        # error. Aborted connections and the set event end them promptly instead.
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.faults.down or task is None:
            writer.transport.abort()
            return
        self.accepted += 1
        self._connections.add(writer)
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except self.connection_errors:
            pass  # this connection ends; the simulator carries on
        finally:
            self._connections.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection until it ends."""
        raise NotImplementedError

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the simulator closes meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()


async def serve_forever(simulator: Simulator) -> None:
    """Run until cancelled, then close the simulator."""
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.close()
