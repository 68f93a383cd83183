"""A node's background loops: periodic work that stops between rounds, not in the middle of one.

Cancelling a task that is waiting on a database statement does not stop the statement: with
SQLite it runs on in the driver's thread, which then hands its result to an event loop that may
be closed by then. So a stop wakes each loop from its wait and lets a round in progress finish;
only a loop still busy when the grace period ends is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from channelhub.kit.logging import get_logger

__all__ = ["Loops"]

log = get_logger(__name__)


class Loops:
    """The periodic work of one node, started one by one and stopped together."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def every(
        self,
        seconds: float,
        work: Callable[[], Awaitable[object]],
        *,
        name: str,
        first_after: float | None = None,
    ) -> None:
        """Run ``work`` every ``seconds`` (the first time after ``first_after``, by default
        after ``seconds``) until stopped. A round that raises is logged as ``<name>_failed``
        and the loop goes on: it must outlive a database hiccup."""
        if self._stopping.is_set():
            raise RuntimeError("the loops are stopped")
        first = seconds if first_after is None else first_after
        task = asyncio.create_task(self._run(seconds, work, name, first), name=name)
        self._tasks.append(task)

    async def stop(self, *, grace: float = 10.0) -> list[str]:
        """Stop every loop: wait up to ``grace`` seconds for rounds in progress to end, then
        cancel what is left; return the names of the loops cancelled."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return []
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            log.warning("loop_cancelled", loop=task.get_name(), grace_seconds=grace)
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return sorted(task.get_name() for task in late)

    async def _run(
        self, seconds: float, work: Callable[[], Awaitable[object]], name: str, first: float
    ) -> None:
        failed = f"{name}_failed"
        delay = first
        while not await self._stopped_within(delay):
            try:
                await work()
            except Exception:
                log.exception(failed)
            delay = seconds

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if a stop comes; return whether it came."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()
        return self._stopping.is_set()
