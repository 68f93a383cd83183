"""A node's background loops (kit.loops.Loops): a stop lets a round in progress end, wakes the
loops that wait, and cancels only a round still running when the grace period is over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from channelhub.kit.db import create_engine
from channelhub.kit.loops import Loops

pytestmark = pytest.mark.asyncio

# SQLite counts to two million in a fraction of a second: long enough to be stopped in.
_SLOW_COUNT = """
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)
SELECT count(*) FROM c
"""


async def test_a_round_in_progress_ends_before_the_stop_does() -> None:
    loops = Loops()
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def round_() -> None:
        started.set()
        await release.wait()
        finished.append("round")

    loops.every(3600, round_, name="work", first_after=0)
    await started.wait()
    stopping = asyncio.create_task(loops.stop(grace=30))
    await asyncio.sleep(0.05)
    assert not stopping.done(), "the stop did not wait for the round"
    release.set()
    assert await stopping == []
    assert finished == ["round"]


async def test_a_statement_running_at_the_stop_completes_on_sqlite(tmp_path: Path) -> None:
    """The reason for the grace: a cancelled SQLite statement runs on in aiosqlite's thread and
    hands its result to an event loop that may be closed by then."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'loops.db'}")
    loops = Loops()
    started = asyncio.Event()
    counted: list[int] = []

    async def round_() -> None:
        async with engine.connect() as conn:
            started.set()
            counted.append((await conn.execute(text(_SLOW_COUNT))).scalar_one())

    try:
        loops.every(3600, round_, name="count", first_after=0)
        await started.wait()
        assert await loops.stop(grace=60) == []
        assert counted == [2_000_000]
    finally:
        await engine.dispose()


async def test_a_stop_wakes_a_waiting_loop_without_cancelling_it() -> None:
    loops = Loops()
    rounds: list[int] = []

    async def round_() -> None:
        rounds.append(1)

    loops.every(3600, round_, name="hourly")
    await asyncio.sleep(0)
    # Had it to be cancelled, stop would name it; had it not woken, the test would time out.
    assert await loops.stop(grace=60) == []
    assert rounds == []


async def test_a_round_still_running_after_the_grace_is_cancelled() -> None:
    loops = Loops()
    started = asyncio.Event()
    outcome: list[str] = []

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    loops.every(3600, stuck, name="stuck", first_after=0)
    await started.wait()
    assert await loops.stop(grace=0.05) == ["stuck"]
    assert outcome == ["cancelled"]


async def test_a_failing_round_is_logged_and_the_loop_goes_on() -> None:
    loops = Loops()
    calls: list[int] = []
    second = asyncio.Event()

    async def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ConnectionError("the database hiccupped")
        second.set()

    loops.every(0.01, flaky, name="flaky", first_after=0)
    await asyncio.wait_for(second.wait(), timeout=30)
    assert await loops.stop() == []
    assert calls[:2] == [0, 1]


async def test_no_loop_starts_once_stopped() -> None:
    loops = Loops()
    await loops.stop()

    async def round_() -> None:
        raise AssertionError("never runs")

    with pytest.raises(RuntimeError, match="stopped"):
        loops.every(1, round_, name="late")
