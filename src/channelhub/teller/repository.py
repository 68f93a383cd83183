"""Every SQL statement of the teller desk."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.models import Approval, JournalEntry

__all__ = [
    "OPERATION",
    "approval",
    "cash_movements",
    "decide_approval",
    "insert_approval",
    "overdue_approvals",
    "pending_approvals",
]

#: The approvals row's ``operation`` for what is over a teller's authority.
OPERATION = "teller.override"

_approvals = cast(Table, Approval.__table__)
_journal = cast(Table, JournalEntry.__table__)


async def cash_movements(
    session: AsyncSession,
    *,
    teller_id: str,
    services: tuple[str, ...],
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[str, str, int]]:
    """Return (service, currency, amount) of every cash transaction a staff member completed
    at the teller desk between two instants (when it finished: an approved one counts on the
    day its cash moved)."""
    j = _journal.c
    query = select(j.service_id, j.currency, j.amount_minor).where(
        j.service_id.in_(services),
        j.channel == "teller",
        j.principal_kind == "staff",
        j.principal_id == teller_id,
        j.status == "succeeded",
        j.finished_at >= start,
        j.finished_at < end,
    )
    rows = (await session.execute(query)).all()
    return [(str(row[0]), str(row[1]), int(row[2])) for row in rows if row[1] is not None]


async def insert_approval(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a pending approval of a transaction over a teller's authority."""
    await session.execute(_approvals.insert(), row)


async def approval(
    session: AsyncSession, approval_id: uuid.UUID, *, for_update: bool = False
) -> Any | None:
    """Return a teller approval (its id is the transaction's)."""
    c = _approvals.c
    query = select(_approvals).where(c.id == approval_id, c.operation == OPERATION)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def overdue_approvals(session: AsyncSession, *, now: dt.datetime, limit: int) -> list[Any]:
    """Return the ids of pending teller approvals past their expiry, oldest first."""
    c = _approvals.c
    query = (
        select(c.id)
        .where(c.operation == OPERATION, c.status == "pending", c.expires_at <= now)
        .order_by(c.expires_at)
        .limit(limit)
    )
    return [row.id for row in (await session.execute(query)).all()]


async def pending_approvals(
    session: AsyncSession, *, branch: str | None, limit: int = 200
) -> list[Any]:
    """Return the pending teller approvals of a branch, oldest first."""
    c = _approvals.c
    query = (
        select(_approvals)
        .where(c.operation == OPERATION, c.status == "pending", c.branch_code == branch)
        .order_by(c.requested_at)
        .limit(limit)
    )
    return list((await session.execute(query)).all())


async def decide_approval(
    session: AsyncSession,
    approval_id: uuid.UUID,
    *,
    status: str,
    by: uuid.UUID | None,
    by_name: str | None,
    reason: str | None,
    now: dt.datetime,
) -> bool:
    """Record the decision on a pending approval; False if it was no longer pending."""
    c = _approvals.c
    result = await session.execute(
        update(_approvals)
        .where(c.id == approval_id, c.status == "pending")
        .values(
            status=status, decided_by=by, decided_by_name=by_name, decided_at=now, reason=reason
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
