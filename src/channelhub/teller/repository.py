"""Every SQL statement of the teller desk."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.models import Approval, Card, Customer, JournalEntry

__all__ = [
    "OPERATION",
    "approval",
    "block_cards_of_account",
    "card_by_fingerprint",
    "cash_movements",
    "customer_by_document",
    "decide_approval",
    "insert_approval",
    "pending_approvals",
    "set_customer_status",
]

#: The approvals row's ``operation`` for what is over a teller's authority.
OPERATION = "teller.override"

_approvals = cast(Table, Approval.__table__)
_cards = cast(Table, Card.__table__)
_customers = cast(Table, Customer.__table__)
_journal = cast(Table, JournalEntry.__table__)


async def customer_by_document(session: AsyncSession, id_type: str, id_number: str) -> Any | None:
    """Return the customer holding this identity document (type and number), if any."""
    c = _customers.c
    query = select(c.id, c.number, c.name, c.status).where(
        c.id_type == id_type, c.id_number == id_number
    )
    return (await session.execute(query)).first()


async def card_by_fingerprint(session: AsyncSession, pan_hash: str) -> Any | None:
    """Return the card whose number has this keyed hash, with its owner's status."""
    c = _cards.c
    query = (
        select(c.id, c.customer_id, c.status, c.pin_verifier, _customers.c.status.label("held_by"))
        .join(_customers, _customers.c.id == c.customer_id)
        .where(c.pan_hash == pan_hash)
    )
    return (await session.execute(query)).first()


async def set_customer_status(
    session: AsyncSession, customer_id: uuid.UUID, *, status: str, now: dt.datetime
) -> None:
    """Change a customer's status (a failed onboarding closes the customer it made)."""
    c = _customers.c
    await session.execute(
        update(_customers).where(c.id == customer_id).values(status=status, updated_at=now)
    )


async def block_cards_of_account(
    session: AsyncSession, account_id: uuid.UUID, *, now: dt.datetime
) -> int:
    """Block every active card drawing on an account; return how many."""
    c = _cards.c
    result = await session.execute(
        update(_cards)
        .where(c.account_id == account_id, c.status == "active")
        .values(status="blocked", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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
