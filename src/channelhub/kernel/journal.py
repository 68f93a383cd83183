"""Every SQL statement of the transaction journal and the outbox."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.models import JournalEntry, OutboxEvent

__all__ = [
    "add_event",
    "checkpoint",
    "claim_for_recovery",
    "close",
    "find_stale",
    "get",
    "get_by_key",
    "latest_events",
    "open_transaction",
]

_journal = cast(Table, JournalEntry.__table__)
_outbox = cast(Table, OutboxEvent.__table__)
_UNFINISHED = ("processing", "in_doubt")


async def open_transaction(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert the journal row; return False when the channel's idempotency key already exists.

    ``ON CONFLICT DO NOTHING`` makes a concurrent duplicate wait for the first insert's
    transaction to end (PostgreSQL) or for the write lock (SQLite), then see the first row.
    """
    conn = await session.connection()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_journal).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def get(session: AsyncSession, txn_id: uuid.UUID) -> Row[Any] | None:
    """Return the journal row of ``txn_id``."""
    conn = await session.connection()
    result = await conn.execute(select(_journal).where(_journal.c.id == txn_id))
    return result.first()


async def get_by_key(session: AsyncSession, channel: str, key: str) -> Row[Any] | None:
    """Return the transaction that holds ``key`` on ``channel``."""
    conn = await session.connection()
    result = await conn.execute(
        select(_journal).where(_journal.c.channel == channel, _journal.c.idempotency_key == key)
    )
    return result.first()


async def checkpoint(
    session: AsyncSession,
    txn_id: uuid.UUID,
    *,
    node_id: str,
    step_log: list[Any],
    lease_expires_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Record the step log and extend the lease; False if another node took the transaction."""
    conn = await session.connection()
    result = await conn.execute(
        update(_journal)
        .where(
            _journal.c.id == txn_id,
            _journal.c.node_id == node_id,
            _journal.c.status.in_(_UNFINISHED),
        )
        .values(step_log=step_log, lease_expires_at=lease_expires_at, updated_at=now)
    )
    return bool(result.rowcount)


async def close(
    session: AsyncSession,
    txn_id: uuid.UUID,
    *,
    node_id: str,
    status: str,
    code: str,
    message: str,
    response: dict[str, Any],
    step_log: list[Any],
    now: dt.datetime,
    duration_ms: int,
) -> bool:
    """Write the transaction's outcome; False if it is no longer this node's to close."""
    conn = await session.connection()
    terminal = status in ("succeeded", "failed", "reversed")
    result = await conn.execute(
        update(_journal)
        .where(
            _journal.c.id == txn_id,
            _journal.c.node_id == node_id,
            _journal.c.status.in_(_UNFINISHED),
        )
        .values(
            status=status,
            code=code,
            message=message[:512],
            response=response,
            step_log=step_log,
            updated_at=now,
            finished_at=now if terminal else None,
            duration_ms=duration_ms,
            lease_expires_at=None if terminal else now,
        )
    )
    return bool(result.rowcount)


async def find_stale(session: AsyncSession, *, now: dt.datetime, limit: int) -> Sequence[Row[Any]]:
    """Return unfinished transactions whose owner's lease ran out, oldest first."""
    conn = await session.connection()
    result = await conn.execute(
        select(_journal.c.id)
        .where(_journal.c.status.in_(_UNFINISHED), _journal.c.lease_expires_at < now)
        .order_by(_journal.c.lease_expires_at)
        .limit(limit)
    )
    return result.all()


async def claim_for_recovery(
    session: AsyncSession,
    txn_id: uuid.UUID,
    *,
    node_id: str,
    now: dt.datetime,
    lease_expires_at: dt.datetime,
) -> Row[Any] | None:
    """Take over a stale transaction (marking it in doubt); None if someone else was quicker."""
    conn = await session.connection()
    result = await conn.execute(
        update(_journal)
        .where(
            _journal.c.id == txn_id,
            _journal.c.status.in_(_UNFINISHED),
            _journal.c.lease_expires_at < now,
        )
        .values(
            status="in_doubt", node_id=node_id, lease_expires_at=lease_expires_at, updated_at=now
        )
        .returning(*_journal.c)
    )
    return result.first()


async def add_event(session: AsyncSession, event: dict[str, Any]) -> None:
    """Write one CloudEvent to the outbox, in the caller's transaction."""
    conn = await session.connection()
    await conn.execute(_outbox.insert().values(**event))


async def latest_events(session: AsyncSession, *, limit: int) -> Sequence[Row[Any]]:
    """Return the newest ``limit`` outbox events, oldest of them first."""
    conn = await session.connection()
    result = await conn.execute(select(_outbox).order_by(_outbox.c.id.desc()).limit(limit))
    return list(reversed(result.all()))
