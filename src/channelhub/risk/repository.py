"""Every SQL statement of the risk engine (velocity features live in features.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.models import RiskDecision, RiskListEntry, RiskReview, RiskRule

__all__ = [
    "DECISIONS",
    "add_list_entry",
    "decision",
    "decisions_of",
    "insert_review",
    "insert_rule",
    "list_entries",
    "remove_list_entry",
    "review",
    "reviews",
    "rules",
    "rules_stamp",
    "set_review",
    "set_rule_mode",
]

_rules = cast(Table, RiskRule.__table__)
_lists = cast(Table, RiskListEntry.__table__)
_decisions = cast(Table, RiskDecision.__table__)
#: Every money movement writes a decision, with its journal row (``StepContext.keep``).
DECISIONS = _decisions
_reviews = cast(Table, RiskReview.__table__)


async def rules(session: AsyncSession, *, include_retired: bool = False) -> Sequence[Row[Any]]:
    """Return the rules (active and shadow ones, or all), by name and version."""
    query = select(_rules).order_by(_rules.c.name, _rules.c.version)
    if not include_retired:
        query = query.where(_rules.c.mode != "retired")
    return (await session.execute(query)).all()


async def rules_stamp(session: AsyncSession) -> tuple[Any, ...]:
    """Return what changes whenever a rule or a list entry is added, switched or removed."""
    rule = (await session.execute(select(func.count(), func.max(_rules.c.updated_at)))).one()
    entries = (await session.execute(select(func.count(), func.max(_lists.c.created_at)))).one()
    return (*rule, *entries)


async def insert_rule(session: AsyncSession, values: Mapping[str, Any]) -> Row[Any]:
    """Add a rule version (the next one of its name); return it."""
    latest = await session.scalar(
        select(func.max(_rules.c.version)).where(_rules.c.name == values["name"])
    )
    row = {**values, "version": (latest or 0) + 1}
    await session.execute(insert(_rules).values(row))
    return (await session.execute(select(_rules).where(_rules.c.id == row["id"]))).one()


async def set_rule_mode(
    session: AsyncSession, name: str, version: int, mode: str, now: dt.datetime
) -> Row[Any] | None:
    """Switch a rule version; making one active retires the name's other active version."""
    if mode == "active":
        await session.execute(
            update(_rules)
            .where(_rules.c.name == name, _rules.c.mode == "active", _rules.c.version != version)
            .values(mode="retired", updated_at=now)
        )
    result = await session.execute(
        update(_rules)
        .where(_rules.c.name == name, _rules.c.version == version)
        .values(mode=mode, updated_at=now)
        .returning(*_rules.c)
    )
    return result.first()


async def list_entries(session: AsyncSession) -> Sequence[Row[Any]]:
    """Return every deny and watch list entry."""
    order = (_lists.c.list_name, _lists.c.kind, _lists.c.value)
    return (await session.execute(select(_lists).order_by(*order))).all()


async def add_list_entry(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Add an entry; False if it is already on the list."""
    exists = await session.scalar(
        select(func.count()).where(
            _lists.c.list_name == values["list_name"],
            _lists.c.kind == values["kind"],
            _lists.c.value == values["value"],
        )
    )
    if exists:
        return False
    await session.execute(insert(_lists).values(dict(values)))
    return True


async def remove_list_entry(session: AsyncSession, list_name: str, kind: str, value: str) -> bool:
    """Remove an entry; False if it was not on the list."""
    result = await session.execute(
        delete(_lists).where(
            _lists.c.list_name == list_name, _lists.c.kind == kind, _lists.c.value == value
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def decision(session: AsyncSession, decision_id: uuid.UUID) -> Row[Any] | None:
    """Return one decision."""
    return (await session.execute(select(_decisions).where(_decisions.c.id == decision_id))).first()


async def decisions_of(session: AsyncSession, txn_id: uuid.UUID) -> Sequence[Row[Any]]:
    """Return a transaction's decisions, oldest first (a retry after a step-up adds one)."""
    query = select(_decisions).where(_decisions.c.txn_id == txn_id).order_by(_decisions.c.at)
    return (await session.execute(query)).all()


async def insert_review(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Queue a transaction for review."""
    await session.execute(insert(_reviews).values(dict(values)))


async def review(
    session: AsyncSession, review_id: uuid.UUID, *, for_update: bool = False
) -> Row[Any] | None:
    """Return one review (locking it, to decide it)."""
    query = select(_reviews).where(_reviews.c.id == review_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def reviews(session: AsyncSession, *, status: str, limit: int) -> Sequence[Row[Any]]:
    """Return reviews in ``status``, oldest first."""
    query = (
        select(_reviews)
        .where(_reviews.c.status == status)
        .order_by(_reviews.c.created_at)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def set_review(
    session: AsyncSession,
    review_id: uuid.UUID,
    *,
    status: str,
    by: str,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """Record a review's decision."""
    await session.execute(
        update(_reviews)
        .where(_reviews.c.id == review_id, _reviews.c.status == "pending")
        .values(status=status, decided_by=by, decided_at=now, reason=reason)
    )
