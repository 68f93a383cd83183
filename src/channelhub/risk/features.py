"""Velocity features, computed when a transaction is evaluated: counts and sums per
customer, device, beneficiary and source address over sliding windows of 5 minutes, 1 hour
and 24 hours; whether the beneficiary and the device are new to the customer.

Kept in the database (in the transaction's own database transaction, so a transaction that
fails leaves nothing counted), or in Redis when configured, shared by every node.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import Table, and_, false, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.ids import new_id
from channelhub.models import RiskActivity, RiskSighting

__all__ = [
    "DIMENSIONS",
    "WINDOWS",
    "Activity",
    "DatabaseFeatures",
    "FeatureStore",
    "empty_features",
]

DIMENSIONS = ("customer", "device", "beneficiary", "address")
#: Window name -> its length in seconds.
WINDOWS = {"5m": 300, "1h": 3600, "24h": 86400}
LONGEST = max(WINDOWS.values())
VELOCITY = tuple(
    f"{dim}_{what}_{window}"
    for dim in DIMENSIONS
    for window in WINDOWS
    for what in ("count", "sum")
)
SIGHTINGS = ("new_beneficiary", "new_device")
OTHER = ("minutes_since_password_change",)


def empty_features() -> dict[str, Any]:
    """Return every feature with its value for a customer never seen before."""
    values: dict[str, Any] = dict.fromkeys(VELOCITY, 0)
    values.update(dict.fromkeys(SIGHTINGS, False))
    values["minutes_since_password_change"] = 0
    return values


@dataclass(frozen=True, slots=True)
class Activity:
    """A money movement as the features count it."""

    txn_id: uuid.UUID
    customer: str
    device: str | None
    beneficiary: str | None
    address: str | None
    amount_minor: int
    currency: str
    at: dt.datetime

    def value(self, dimension: str) -> str | None:
        """Return this activity's customer, device, beneficiary or address."""
        return cast(str | None, getattr(self, dimension))


class FeatureStore(Protocol):
    """Computes velocity features and records what was evaluated."""

    #: True when the store lives outside the database transaction.
    outside: bool

    async def velocity(self, session: AsyncSession, activity: Activity) -> dict[str, int]:
        """Return the counts and sums (in the activity's currency) before this activity."""
        ...

    async def sightings(self, session: AsyncSession, activity: Activity) -> dict[str, bool]:
        """Return whether the beneficiary and the device are new to the customer."""
        ...

    async def record(self, session: AsyncSession, activity: Activity) -> None:
        """Count the activity, and remember its beneficiary and device for the customer."""
        ...

    async def forget(self, activity: Activity) -> None:
        """Undo ``record`` (outside stores only: the database rolls back by itself)."""
        ...


_activity = cast(Table, RiskActivity.__table__)
_sightings = cast(Table, RiskSighting.__table__)
_INSERT: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class DatabaseFeatures:
    """Features from the ``risk_activity`` and ``risk_sightings`` tables."""

    outside = False

    async def velocity(self, session: AsyncSession, activity: Activity) -> dict[str, int]:
        c = _activity.c
        matches = {
            dim: (c[f"{dim}_id" if dim == "customer" else dim] == value)
            if (value := activity.value(dim)) is not None
            else false()
            for dim in DIMENSIONS
        }
        columns = []
        for dim, match in matches.items():
            for window, seconds in WINDOWS.items():
                recent = and_(match, c.at > activity.at - dt.timedelta(seconds=seconds))
                columns.append(func.count().filter(recent).label(f"{dim}_count_{window}"))
                same = and_(recent, c.currency == activity.currency)
                total = func.coalesce(func.sum(c.amount_minor).filter(same), 0)
                columns.append(total.label(f"{dim}_sum_{window}"))
        query = select(*columns).where(
            c.at > activity.at - dt.timedelta(seconds=LONGEST), or_(*matches.values())
        )
        row = (await session.execute(query)).one()
        return {name: int(value or 0) for name, value in row._mapping.items()}

    async def sightings(self, session: AsyncSession, activity: Activity) -> dict[str, bool]:
        s = _sightings.c
        wanted = [
            and_(s.kind == kind, s.value == value)
            for kind, value in (("beneficiary", activity.beneficiary), ("device", activity.device))
            if value
        ]
        seen: set[str] = set()
        if wanted:
            result = await session.execute(
                select(s.kind).where(s.customer_id == activity.customer, or_(*wanted))
            )
            seen = {row.kind for row in result}
        return {
            "new_beneficiary": bool(activity.beneficiary) and "beneficiary" not in seen,
            "new_device": bool(activity.device) and "device" not in seen,
        }

    async def record(self, session: AsyncSession, activity: Activity) -> None:
        await session.execute(
            _activity.insert().values(
                id=new_id(),
                txn_id=activity.txn_id,
                customer_id=activity.customer,
                device=activity.device,
                beneficiary=activity.beneficiary,
                address=activity.address,
                amount_minor=activity.amount_minor,
                currency=activity.currency,
                at=activity.at,
            )
        )
        rows = [
            {
                "customer_id": activity.customer,
                "kind": kind,
                "value": value,
                "first_seen": activity.at,
            }
            for kind, value in (("beneficiary", activity.beneficiary), ("device", activity.device))
            if value
        ]
        if rows:
            conn = await session.connection()
            insert = _INSERT[conn.dialect.name](_sightings).values(rows)
            await conn.execute(insert.on_conflict_do_nothing())

    async def forget(self, activity: Activity) -> None:
        return None
