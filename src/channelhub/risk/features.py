"""Velocity features, computed when a transaction is evaluated: counts and sums per
customer, device, beneficiary and source address over sliding windows of 5 minutes, 1 hour
and 24 hours; whether the beneficiary and the device are new to the customer.

Kept in the database (in the transaction's own database transaction, so a transaction that
fails leaves nothing counted), or in Redis when configured, shared by every node.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import String, Table, and_, bindparam, delete, func, literal, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.db import FastStatement, Rider, fetch, pg_connection
from channelhub.kit.ids import new_id
from channelhub.models import RiskActivity, RiskSighting

__all__ = [
    "ALL_VELOCITY",
    "DIMENSIONS",
    "WINDOWS",
    "Activity",
    "DatabaseFeatures",
    "FeatureStore",
    "dimensions_of",
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
#: Every velocity feature, for a caller that wants them all.
ALL_VELOCITY = frozenset(VELOCITY)
_WINDOW_DELTAS = {window: dt.timedelta(seconds=seconds) for window, seconds in WINDOWS.items()}


@functools.lru_cache(maxsize=64)
def _needs(names: frozenset[str]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], bool]:
    """What reading ``names`` binds: the dimensions, the windows (with their parameter's
    name) and whether a sum (and so the currency) is among them."""
    windows = tuple(
        (window, f"b_since_{window}")
        for window in WINDOWS
        if any(name.endswith(f"_{window}") for name in names)
    )
    return dimensions_of(names), windows, any("_sum_" in name for name in names)


def dimensions_of(names: AbstractSet[str]) -> tuple[str, ...]:
    """Return the dimensions (in ``DIMENSIONS`` order) whose velocity features ``names`` has."""
    return tuple(dim for dim in DIMENSIONS if any(name.startswith(f"{dim}_") for name in names))


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
        """Return the counts and sums (in the activity's currency) before this activity: all
        24 of them."""
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

    async def purge(self, session: AsyncSession, before: dt.datetime) -> int:
        """Delete the activity older than ``before``, which no window reads any more; return
        how many went (a store whose entries expire by themselves deletes nothing)."""
        ...

    async def read(
        self,
        session: AsyncSession,
        activity: Activity,
        *,
        velocity: AbstractSet[str],
        sightings: bool,
        record: bool = False,
    ) -> dict[str, Any]:
        """Return the velocity features named in ``velocity`` (at least those) and/or the
        sightings as they were before the activity, in as few round trips as the store can;
        with ``record``, count the activity too (as ``record`` would, after the read)."""
        ...


_activity = cast(Table, RiskActivity.__table__)
_sightings = cast(Table, RiskSighting.__table__)
_COLUMN = {"customer": "customer_id", "device": "device", "beneficiary": "beneficiary"}


def _velocity_query(names: AbstractSet[str] = ALL_VELOCITY) -> Any:
    """One SELECT of the velocity numbers in ``names`` (in ``VELOCITY`` order), over only the
    dimensions and the longest window they need: a rule set that reads the customer's
    5-minute count scans five minutes of one index, not a day of four. A dimension the
    activity lacks is bound to NULL, which equals nothing, so it counts zero."""
    c = _activity.c
    dims = dimensions_of(names)
    matches = {dim: c[_COLUMN.get(dim, dim)] == bindparam(f"b_{dim}") for dim in dims}
    columns = []
    for dim, match in matches.items():
        for window in WINDOWS:
            recent = and_(match, c.at > bindparam(f"b_since_{window}", type_=c.at.type))
            if f"{dim}_count_{window}" in names:
                columns.append(func.count().filter(recent).label(f"{dim}_count_{window}"))
            if f"{dim}_sum_{window}" in names:
                same = and_(recent, c.currency == bindparam("b_currency"))
                total = func.coalesce(func.sum(c.amount_minor).filter(same), 0)
                columns.append(total.label(f"{dim}_sum_{window}"))
    longest = max(
        (window for window in WINDOWS if any(name.endswith(f"_{window}") for name in names)),
        key=WINDOWS.__getitem__,
    )
    return select(*columns).where(
        c.at > bindparam(f"b_since_{longest}", type_=c.at.type), or_(*matches.values())
    )


# Compiled once, sent to asyncpg as they are on PostgreSQL: building and compiling a
# statement costs more CPU than the database's work on it.
_VELOCITY = FastStatement(_velocity_query())
_SEEN = FastStatement(
    select(_sightings.c.kind).where(
        _sightings.c.customer_id == bindparam("b_customer"),
        or_(
            and_(
                _sightings.c.kind == "beneficiary",
                _sightings.c.value == bindparam("b_beneficiary"),
            ),
            and_(_sightings.c.kind == "device", _sightings.c.value == bindparam("b_device")),
        ),
    )
)
_RECORD = _activity.insert()
_SIGHT = sqlite.insert(_sightings).on_conflict_do_nothing()


def _seen_columns() -> list[Any]:
    """Whether the customer saw the beneficiary and the device before: two counts."""
    return [
        select(func.count())
        .where(
            _sightings.c.customer_id == bindparam("b_customer"),
            _sightings.c.kind == kind,
            _sightings.c.value == bindparam(f"b_seen_{kind}", type_=String),
        )
        .scalar_subquery()
        .label(f"seen_{kind}")
        for kind in ("beneficiary", "device")
    ]


# PostgreSQL: read and record in one statement. Every part of a statement sees the database
# as it was when the statement began, so the SELECT does not count the activity its own WITH
# inserts: the numbers are those before this activity, as the separate read gives them.
_RECORDED = (
    postgresql.insert(_activity)
    .values({c.name: bindparam(f"r_{c.name}", type_=c.type) for c in _activity.c})
    .cte("recorded")
)
_SIGHTED = (
    postgresql.insert(_sightings)
    .from_select(
        ["customer_id", "kind", "value", "first_seen"],
        union_all(
            *(
                select(
                    bindparam("r_customer_id", type_=_activity.c.customer_id.type),
                    literal(kind, String),
                    bindparam(f"b_seen_{kind}", type_=String),
                    bindparam("r_at", type_=_activity.c.at.type),
                ).where(bindparam(f"b_seen_{kind}", type_=String).is_not(None))
                for kind in ("beneficiary", "device")
            )
        ),
    )
    .on_conflict_do_nothing()
    .cte("sighted")
)


@functools.lru_cache(maxsize=64)
def _read_query(names: frozenset[str], sightings: bool) -> Any:
    """The SELECT (one row) of ``names`` and/or the sightings; None when there is nothing to
    read. One per rule set's needs, built once."""
    query: Any = _velocity_query(names) if names else None
    if sightings:
        seen = _seen_columns()
        query = select(*seen) if query is None else query.add_columns(*seen)
    return query


@functools.lru_cache(maxsize=64)
def _read_statement(names: frozenset[str], sightings: bool, record: bool) -> FastStatement | None:
    """The one statement that reads ``names`` and/or the sightings (PostgreSQL: recording the
    activity too, with ``record``); None when there is nothing to read. Compiled once."""
    query = _read_query(names, sightings)
    if record:
        if query is None:
            query = select(literal(1))
        query = query.add_cte(_RECORDED, _SIGHTED)
    return None if query is None else FastStatement(query)


def _found(
    row: Mapping[str, Any], names: frozenset[str], sightings: bool, activity: Activity
) -> dict[str, Any]:
    found: dict[str, Any] = {name: int(row[name] or 0) for name in names}
    if sightings:
        found["new_beneficiary"] = bool(activity.beneficiary) and not row["seen_beneficiary"]
        found["new_device"] = bool(activity.device) and not row["seen_device"]
    return found


class DatabaseFeatures:
    """Features from the ``risk_activity`` and ``risk_sightings`` tables."""

    outside = False

    async def read(
        self,
        session: AsyncSession,
        activity: Activity,
        *,
        velocity: AbstractSet[str],
        sightings: bool,
        record: bool = False,
    ) -> dict[str, Any]:
        names = frozenset(velocity) & ALL_VELOCITY
        # PostgreSQL: everything in one round trip, the activity recorded by the same
        # statement. SQLite: the read, then the record.
        together = record and await pg_connection(session) is not None
        statement = _read_statement(names, sightings, record=together)
        found: dict[str, Any] = {}
        if statement is not None:
            params = self._velocity_params(activity, names)
            params["b_seen_beneficiary"] = activity.beneficiary or None
            params["b_seen_device"] = activity.device or None
            if together:
                params.update(self._cte_params(activity))
            row = (await fetch(session, statement, params))[0]._asdict()
            found = _found(row, names, sightings, activity)
        if record and not together:
            await self.record(session, activity)
        return found

    def rider(self, activity: Activity, *, velocity: AbstractSet[str], sightings: bool) -> Rider:
        """``read`` with ``record``, as a rider of another statement (PostgreSQL): its answer
        goes to ``found``."""
        names = frozenset(velocity) & ALL_VELOCITY
        query = _read_query(names, sightings)
        # The record's parameters hold the sightings' too (``b_seen_*``).
        params = self._velocity_params(activity, names)
        params.update(self._cte_params(activity))
        row = select(literal(1).label("recorded")) if query is None else query
        return Rider(("risk.features", names, sightings), row, params, [_RECORDED, _SIGHTED])

    @staticmethod
    def found(
        row: Any, activity: Activity, *, velocity: AbstractSet[str], sightings: bool
    ) -> dict[str, Any]:
        """Return what ``read`` would have, from the answer of its ``rider``."""
        names = frozenset(velocity) & ALL_VELOCITY
        return _found(row._asdict(), names, sightings, activity)

    @classmethod
    def _row(cls, activity: Activity) -> dict[str, Any]:
        """The ``risk_activity`` row of ``activity`` (SQLite's separate insert)."""
        params = cls._cte_params(activity)
        return {name[2:]: value for name, value in params.items() if name.startswith("r_")}

    @staticmethod
    def _cte_params(activity: Activity) -> dict[str, Any]:
        """The parameters of the ``recorded`` and ``sighted`` inserts: the activity's row,
        each column as ``r_<column>``, and the values sighted."""
        return {
            "r_id": new_id(),
            "r_txn_id": activity.txn_id,
            "r_customer_id": activity.customer,
            "r_device": activity.device,
            "r_beneficiary": activity.beneficiary,
            "r_address": activity.address,
            "r_amount_minor": activity.amount_minor,
            "r_currency": activity.currency,
            "r_at": activity.at,
            "b_seen_beneficiary": activity.beneficiary or None,
            "b_seen_device": activity.device or None,
        }

    @staticmethod
    def _velocity_params(
        activity: Activity, names: frozenset[str] = ALL_VELOCITY
    ) -> dict[str, Any]:
        """The parameters of the velocity numbers ``names``: their dimensions' values (the
        customer always: the sightings read by it too), their windows' starts, and the
        currency with any sum."""
        dims, windows, sums = _needs(names)
        params: dict[str, Any] = {f"b_{dim}": getattr(activity, dim) for dim in dims}
        params["b_customer"] = activity.customer
        if sums:
            params["b_currency"] = activity.currency
        for window, since in windows:
            params[since] = activity.at - _WINDOW_DELTAS[window]
        return params

    async def velocity(self, session: AsyncSession, activity: Activity) -> dict[str, int]:
        row = (await fetch(session, _VELOCITY, self._velocity_params(activity)))[0]
        return {name: int(value or 0) for name, value in zip(VELOCITY, row, strict=True)}

    async def sightings(self, session: AsyncSession, activity: Activity) -> dict[str, bool]:
        seen: set[str] = set()
        if activity.beneficiary or activity.device:
            params = {
                "b_customer": activity.customer,
                # Empty values are never seen: NULL matches nothing.
                "b_beneficiary": activity.beneficiary or None,
                "b_device": activity.device or None,
            }
            seen = {row.kind for row in await fetch(session, _SEEN, params)}
        return {
            "new_beneficiary": bool(activity.beneficiary) and "beneficiary" not in seen,
            "new_device": bool(activity.device) and "device" not in seen,
        }

    async def record(self, session: AsyncSession, activity: Activity) -> None:
        driver = await pg_connection(session)
        if driver is not None:
            both = _read_statement(frozenset(), sightings=False, record=True)
            assert both is not None
            await driver.execute(both.sql, *both.arguments(self._cte_params(activity)))
            return
        conn = await session.connection()
        await conn.execute(_RECORD, self._row(activity))
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
            await conn.execute(_SIGHT, rows)

    async def forget(self, activity: Activity) -> None:
        return None

    async def purge(self, session: AsyncSession, before: dt.datetime) -> int:
        # Only the activity: the sightings say "first seen", which stays true for good.
        result = await session.execute(delete(_activity).where(_activity.c.at < before))
        return int(result.rowcount)  # type: ignore[attr-defined]
