"""How the journal stores a long step log: whole, on both databases, and on PostgreSQL
compressed with LZ4 rather than pglz (migration 0009), which cost a transfer with limits and
risk about 2 % of the database's CPU."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text

from channelhub.kernel import journal
from channelhub.kit.ids import new_id
from channelhub.models import JournalEntry
from channelhub.runtime import Runtime

pytestmark = pytest.mark.asyncio

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def _long_step_log() -> list[dict[str, Any]]:
    """A step log of some 8 KB, repetitive as real ones are (ids, the same keys)."""
    return [
        {
            "id": f"step-{at}",
            "step": "limits.reserve",
            "state": "done",
            "output": {
                "charges": [
                    {"limit": str(new_id()), "subject": "c-1", "bucket": "2026-12-03", "count": 1}
                    for _ in range(3)
                ]
            },
        }
        for at in range(20)
    ]


async def test_a_long_step_log_is_kept_whole(runtime: Runtime) -> None:
    txn_id, step_log = new_id(), _long_step_log()
    values = {
        "id": txn_id,
        "channel": "web",
        "service_id": "test.flow",
        "service_version": 1,
        "principal_kind": "anonymous",
        "principal_id": None,
        "idempotency_key": None,
        "request_hash": "0" * 64,
        "amount_minor": None,
        "currency": None,
        "status": "processing",
        "step_log": step_log,
        "node_id": "test",
        "lease_expires_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    async with runtime.sessions() as session, session.begin():
        assert await journal.open_transaction(session, values)
    table = JournalEntry.__table__
    async with runtime.sessions() as session:
        stored = (
            await session.execute(select(table.c.step_log).where(table.c.id == txn_id))
        ).scalar_one()
        assert stored == step_log
        if (await session.connection()).dialect.name != "postgresql":
            return
        method = (
            await session.execute(
                text("SELECT pg_column_compression(step_log) FROM transactions WHERE id = :id"),
                {"id": txn_id},
            )
        ).scalar_one()
    assert method == "lz4"
