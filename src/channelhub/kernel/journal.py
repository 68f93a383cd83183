"""Every SQL statement of the transaction journal and the outbox."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.db import FastStatement, pg_connection
from channelhub.models import JournalEntry, OutboxEvent
from channelhub.models.journal import UNFINISHED

__all__ = [
    "KeptRow",
    "add_event",
    "checkpoint",
    "claim_for_recovery",
    "claim_for_reversal",
    "claim_held",
    "close",
    "find_stale",
    "get",
    "get_by_key",
    "keep",
    "keep_held",
    "latest_events",
    "open_transaction",
    "record",
    "set_step_log",
    "succeeded_before",
]

_journal = cast(Table, JournalEntry.__table__)
_outbox = cast(Table, OutboxEvent.__table__)
_c = _journal.c

# Statements are built once: SQLAlchemy then reuses their compiled form on every transaction,
# which matters on the per-transaction path (see ECOSYSTEM.md on ORM and Core overhead).
_UNFINISHED = text(UNFINISHED)
_OWNED = and_(_c.id == bindparam("b_id"), _c.node_id == bindparam("b_node"), _UNFINISHED)
_OPEN = {
    "postgresql": postgresql.insert(_journal).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_journal).on_conflict_do_nothing(),
}
_GET = select(_journal).where(_c.id == bindparam("b_id"))
_GET_BY_KEY = select(_journal).where(
    _c.channel == bindparam("b_channel"), _c.idempotency_key == bindparam("b_key")
)
_CHECKPOINT = (
    update(_journal)
    .where(_OWNED)
    .values(
        step_log=bindparam("step_log"),
        lease_expires_at=bindparam("lease_expires_at"),
        updated_at=bindparam("updated_at"),
    )
)
_CLOSE = (
    update(_journal)
    .where(_OWNED)
    .values(
        {
            name: bindparam(name)
            for name in (
                "status",
                "code",
                "message",
                "response",
                "step_log",
                "updated_at",
                "finished_at",
                "duration_ms",
                "lease_expires_at",
            )
        }
    )
)
_ADD_EVENT = _outbox.insert()
_EVENT_COLUMNS = ("id", "type", "source", "subject", "time", "data", "published_at")
# A finished transaction and its event in one statement: the event row is only made when the
# journal row was (a taken idempotency key inserts neither).
_RECORDED = (
    postgresql.insert(_journal)
    .values({column.name: bindparam(column.name, type_=column.type) for column in _journal.c})
    .on_conflict_do_nothing()
    .returning(_c.id)
    .cte("recorded")
)
#: A row a step wants kept whatever the transaction's outcome (a risk decision): its table,
#: and its values by column name, every column given (on PostgreSQL the row is inserted by the
#: journal's statement, which applies no Python-side column default).
KeptRow = tuple[Table, Mapping[str, Any]]


@functools.cache
def _record_statement(kept: tuple[tuple[Table, tuple[str, ...]], ...]) -> FastStatement:
    """The journal row, its event, and the kept rows (``(table, columns)`` each) in one
    statement: one round trip instead of one per row. Compiled once per shape."""
    ctes = [
        postgresql.insert(table)
        .values(
            {column: bindparam(f"k{at}_{column}", type_=table.c[column].type) for column in columns}
        )
        .cte(f"kept_{at}")
        for at, (table, columns) in enumerate(kept)
    ]
    statement = (
        _outbox.insert()
        .from_select(
            _EVENT_COLUMNS,
            select(
                *(bindparam(f"e_{name}", type_=_outbox.c[name].type) for name in _EVENT_COLUMNS)
            ).select_from(_RECORDED),
        )
        .returning(_outbox.c.id)
    )
    return FastStatement(statement.add_cte(*ctes) if ctes else statement)


async def open_transaction(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert the journal row; return False when the channel's idempotency key already exists.

    ``ON CONFLICT DO NOTHING`` makes a concurrent duplicate wait for the first insert's
    transaction to end (PostgreSQL) or for the write lock (SQLite), then see the first row.
    """
    conn = await session.connection()
    result = await conn.execute(_OPEN[conn.dialect.name], values)
    return bool(result.rowcount)


async def record(
    session: AsyncSession,
    values: dict[str, Any],
    event: dict[str, Any],
    kept: Sequence[KeptRow] = (),
) -> bool:
    """Insert a finished transaction's journal row, its outbox event and the ``kept`` rows
    together (one statement on PostgreSQL).

    Returns False, inserting no journal row nor event, when the channel's idempotency key is
    already taken: on PostgreSQL the insert waits for a concurrent holder of the key to commit
    or roll back. The kept rows are then in the transaction too, which the caller rolls back.
    """
    driver = await pg_connection(session)
    if driver is not None:
        shape = tuple((table, tuple(row)) for table, row in kept)
        statement = _record_statement(shape)
        params = dict(values)
        params.update({f"e_{name}": value for name, value in event.items()})
        for at, (_, row) in enumerate(kept):
            params.update({f"k{at}_{column}": value for column, value in row.items()})
        return bool(await driver.fetch(statement.sql, *statement.arguments(params)))
    await keep(session, kept)
    conn = await session.connection()
    if not (await conn.execute(_OPEN[conn.dialect.name], values)).rowcount:
        return False
    await conn.execute(_ADD_EVENT, event)
    return True


async def keep(session: AsyncSession, kept: Sequence[KeptRow]) -> None:
    """Insert the ``kept`` rows on their own (where no journal row goes with them)."""
    if not kept:
        return
    conn = await session.connection()
    for table, row in kept:
        await conn.execute(table.insert(), dict(row))


async def get(session: AsyncSession, txn_id: uuid.UUID) -> Row[Any] | None:
    """Return the journal row of ``txn_id``."""
    conn = await session.connection()
    return (await conn.execute(_GET, {"b_id": txn_id})).first()


async def get_by_key(session: AsyncSession, channel: str, key: str) -> Row[Any] | None:
    """Return the transaction that holds ``key`` on ``channel``."""
    conn = await session.connection()
    return (await conn.execute(_GET_BY_KEY, {"b_channel": channel, "b_key": key})).first()


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
        _CHECKPOINT,
        {
            "b_id": txn_id,
            "b_node": node_id,
            "step_log": step_log,
            "lease_expires_at": lease_expires_at,
            "updated_at": now,
        },
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
        _CLOSE,
        {
            "b_id": txn_id,
            "b_node": node_id,
            "status": status,
            "code": code,
            "message": message[:512],
            "response": response,
            "step_log": step_log,
            "updated_at": now,
            "finished_at": now if terminal else None,
            "duration_ms": duration_ms,
            # An in-doubt transaction is handed to recovery at once: this node is done with it.
            # One in review waits for a person, not for recovery.
            "lease_expires_at": None if terminal or status == "in_review" else now,
        },
    )
    return bool(result.rowcount)


async def find_stale(session: AsyncSession, *, now: dt.datetime, limit: int) -> Sequence[Row[Any]]:
    """Return unfinished transactions whose owner's lease ran out, oldest first."""
    conn = await session.connection()
    result = await conn.execute(
        select(_journal.c.id)
        .where(_UNFINISHED, _c.lease_expires_at < now)
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
            _c.id == txn_id,
            _UNFINISHED,
            _c.lease_expires_at < now,
        )
        .values(
            status="in_doubt", node_id=node_id, lease_expires_at=lease_expires_at, updated_at=now
        )
        .returning(*_journal.c)
    )
    return result.first()


async def claim_held(
    session: AsyncSession, txn_id: uuid.UUID, *, node_id: str, now: dt.datetime
) -> Row[Any] | None:
    """Take a transaction waiting in review back into processing, locking its row; None if
    it is not (or no longer) in review. The caller concludes and closes it in the same
    database transaction, so a failure leaves it in review."""
    conn = await session.connection()
    result = await conn.execute(
        update(_journal)
        .where(_c.id == txn_id, _c.status == "in_review")
        .values(status="processing", node_id=node_id, lease_expires_at=now, updated_at=now)
        .returning(*_journal.c)
    )
    return result.first()


async def keep_held(
    session: AsyncSession,
    txn_id: uuid.UUID,
    step_log: list[Any],
    *,
    code: str,
    message: str,
    now: dt.datetime,
) -> None:
    """Put a claimed transaction back in review, with its step log (which records the gates
    already passed) and the code of what it still waits for."""
    conn = await session.connection()
    await conn.execute(
        update(_journal)
        .where(_c.id == txn_id, _c.status == "processing")
        .values(
            status="in_review",
            step_log=step_log,
            code=code,
            message=message,
            lease_expires_at=None,
            updated_at=now,
        )
    )


async def succeeded_before(
    session: AsyncSession, *, service_id: str, before: dt.datetime, limit: int
) -> Sequence[Row[Any]]:
    """Return the succeeded transactions of a service created before ``before``, oldest
    first."""
    conn = await session.connection()
    query = (
        select(_journal)
        .where(_c.service_id == service_id, _c.status == "succeeded", _c.created_at < before)
        .order_by(_c.created_at)
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def claim_for_reversal(
    session: AsyncSession, txn_id: uuid.UUID, *, now: dt.datetime
) -> Row[Any] | None:
    """Mark a succeeded transaction reversed, locking its row; None if it is not (or no
    longer) succeeded. The caller undoes its steps in the same database transaction."""
    conn = await session.connection()
    result = await conn.execute(
        update(_journal)
        .where(_c.id == txn_id, _c.status == "succeeded")
        .values(status="reversed", updated_at=now, finished_at=now)
        .returning(*_journal.c)
    )
    return result.first()


async def set_step_log(
    session: AsyncSession, txn_id: uuid.UUID, step_log: list[Any], *, now: dt.datetime
) -> None:
    """Record what was undone of a finished transaction (a reversal's compensations)."""
    conn = await session.connection()
    await conn.execute(
        update(_journal).where(_c.id == txn_id).values(step_log=step_log, updated_at=now)
    )


async def add_event(session: AsyncSession, event: dict[str, Any]) -> None:
    """Write one CloudEvent to the outbox, in the caller's transaction."""
    conn = await session.connection()
    await conn.execute(_ADD_EVENT, event)


async def latest_events(session: AsyncSession, *, limit: int) -> Sequence[Row[Any]]:
    """Return the newest ``limit`` outbox events, oldest of them first."""
    conn = await session.connection()
    result = await conn.execute(select(_outbox).order_by(_outbox.c.id.desc()).limit(limit))
    return list(reversed(result.all()))
