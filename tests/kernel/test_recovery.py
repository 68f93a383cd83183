"""Recovery: transactions a node left unfinished are compensated and closed by another."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text

from channelhub.kernel import ANONYMOUS, RecoveryWorker, TransactionRequest, TxnStatus
from channelhub.models import JournalEntry
from channelhub.runtime import Runtime
from tests.support.flow_steps import CALLS

pytestmark = pytest.mark.asyncio


async def _row(runtime: Runtime) -> Any:
    async with runtime.db.connect() as conn:
        return (await conn.execute(select(JournalEntry.__table__))).one()


def _worker(runtime: Runtime, *, minutes_later: float) -> RecoveryWorker:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes_later)
    return RecoveryWorker(
        sessions=runtime.sessions,
        catalog=lambda: runtime.catalog,
        registry=runtime.engine.runner.registry,
        settings=runtime.engine.settings,
        clock=lambda: later,
    )


async def test_in_doubt_transaction_is_compensated_by_recovery(runtime: Runtime) -> None:
    request = TransactionRequest(
        service_id="test.timeout", channel="web", principal=ANONYMOUS, payload={}
    )
    result = await runtime.engine.execute(request)
    assert result.status is TxnStatus.IN_DOUBT

    # The node gave up on it, so its lease ends at once: the next recovery pass takes it.
    report = await _worker(runtime, minutes_later=0.01).run_once()
    assert report.aborted == [str(result.txn_id)]
    # The unknown call is cancelled, then the completed local step undone: newest first.
    assert [(a, n) for a, n, _ in CALLS] == [
        ("do", "before"),
        ("cancel", "timeout"),
        ("undo", "before"),
    ]
    row = await _row(runtime)
    assert (row.status, row.code) == ("failed", "TXN_ABORTED")
    assert row.finished_at is not None

    # A second pass finds nothing: every transaction ends in exactly one terminal state.
    again = await _worker(runtime, minutes_later=10).run_once()
    assert again.found == 0
    assert len([c for c in CALLS if c[0] == "undo"]) == 1
    async with runtime.db.connect() as conn:
        events = (await conn.execute(text("SELECT type FROM outbox"))).scalars().all()
    assert events == ["channelhub.test.timeout.failed"]


async def test_replay_of_a_recovered_transaction_returns_its_terminal_result(
    runtime: Runtime,
) -> None:
    request = TransactionRequest(
        service_id="test.timeout",
        channel="web",
        principal=ANONYMOUS,
        payload={},
        idempotency_key="r-1",
    )
    first = await runtime.engine.execute(request)
    await _worker(runtime, minutes_later=5).run_once()
    retry = await runtime.engine.execute(request)
    assert retry.replayed
    assert (retry.txn_id, retry.status, retry.code) == (
        first.txn_id,
        TxnStatus.FAILED,
        "TXN_ABORTED",
    )
    assert len([c for c in CALLS if c[0] == "do"]) == 1
