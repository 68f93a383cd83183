"""Every SQL statement of limit management."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import orjson
from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    column,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.db import FastStatement, Rider, fetch, pg_connection
from channelhub.limits.schemas import Charge
from channelhub.models import LimitDefinition, LimitUsage

__all__ = [
    "all_bank_limits",
    "bank_limits",
    "bank_limits_stamp",
    "book",
    "book_reading_own",
    "booked_by_rider",
    "booking_rider",
    "customer_limits",
    "give_back",
    "limit_by_id",
    "purge_expired",
    "retire_limit",
    "save_limit",
    "usage",
]

_defs = cast(Table, LimitDefinition.__table__)
_usage = cast(Table, LimitUsage.__table__)
_INSERT: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

_BANK_LIMITS = select(_defs).where(_defs.c.owner == "bank", _defs.c.status == "active")
# Changes are updates (a retired limit stays, retired), so the newest update time and the
# row count together tell whether anything changed since the last look.
_STAMP = select(func.count(), func.max(_defs.c.updated_at)).where(_defs.c.owner == "bank")


async def bank_limits(session: AsyncSession) -> Sequence[Row[Any]]:
    """Return the bank's active limits."""
    return (await session.execute(_BANK_LIMITS)).all()


async def bank_limits_stamp(session: AsyncSession) -> tuple[int, dt.datetime | None]:
    """Return what changes whenever a bank limit is set or retired."""
    row = (await session.execute(_STAMP)).one()
    return int(row[0]), row[1]


async def all_bank_limits(
    session: AsyncSession, *, include_retired: bool = False
) -> Sequence[Row[Any]]:
    """Return the bank's limits, active ones (or all), in a stable order."""
    query = select(_defs).where(_defs.c.owner == "bank")
    if not include_retired:
        query = query.where(_defs.c.status == "active")
    order = (_defs.c.service_group, _defs.c.currency, _defs.c.level, _defs.c.period)
    return (await session.execute(query.order_by(*order))).all()


# Read on every reservation: compiled once, sent to asyncpg as it is on PostgreSQL.
_CUSTOMER_LIMITS = FastStatement(
    select(_defs).where(
        _defs.c.level == "customer",
        _defs.c.subject == bindparam("b_customer"),
        _defs.c.owner == "customer",
        _defs.c.status == "active",
    )
)


async def customer_limits(session: AsyncSession, customer_id: str) -> Sequence[Any]:
    """Return the active limits a customer set on themself."""
    return await fetch(session, _CUSTOMER_LIMITS, {"b_customer": customer_id})


async def limit_by_id(session: AsyncSession, limit_id: uuid.UUID) -> Row[Any] | None:
    """Return one limit."""
    return (await session.execute(select(_defs).where(_defs.c.id == limit_id))).first()


async def save_limit(session: AsyncSession, values: Mapping[str, Any]) -> Row[Any]:
    """Insert a limit, or update the one with the same owner, target, scope, channel,
    currency and period (its version goes up); return it."""
    conn = await session.connection()
    insert = _INSERT[conn.dialect.name](_defs).values(dict(values))
    statement = insert.on_conflict_do_update(
        index_elements=[
            _defs.c.owner,
            _defs.c.level,
            _defs.c.subject,
            _defs.c.service_group,
            _defs.c.channel,
            _defs.c.currency,
            _defs.c.period,
        ],
        set_={
            "max_amount_minor": insert.excluded.max_amount_minor,
            "max_count": insert.excluded.max_count,
            "status": insert.excluded.status,
            "version": _defs.c.version + 1,
            "changed_by": insert.excluded.changed_by,
            "updated_at": insert.excluded.updated_at,
        },
    ).returning(*_defs.c)
    return (await conn.execute(statement)).one()


async def retire_limit(
    session: AsyncSession, target: Mapping[str, Any], *, changed_by: str, now: dt.datetime
) -> Row[Any] | None:
    """Retire the active limit ``target`` names (owner, level, subject, scope, channel,
    currency, period); return it, or None if there is none."""
    result = await session.execute(
        update(_defs)
        .where(*(_defs.c[name] == value for name, value in target.items()))
        .where(_defs.c.status == "active")
        .values(
            status="retired", version=_defs.c.version + 1, changed_by=changed_by, updated_at=now
        )
        .returning(*_defs.c)
    )
    return result.first()


def _booking(dialect: str) -> Any:
    insert = _INSERT[dialect](_usage)
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[_usage.c.limit_id, _usage.c.subject, _usage.c.bucket],
        set_={
            "used_minor": _usage.c.used_minor + new.used_minor,
            "used_count": _usage.c.used_count + new.used_count,
            "cap_minor": new.cap_minor,
            "cap_count": new.cap_count,
        },
        where=and_(
            or_(new.cap_minor.is_(None), _usage.c.used_minor + new.used_minor <= new.cap_minor),
            or_(new.cap_count.is_(None), _usage.c.used_count + new.used_count <= new.cap_count),
        ),
    ).returning(_usage.c.limit_id, _usage.c.subject, _usage.c.bucket)


# SQLite: built once and executed with a list of rows, SQLAlchemy sends one multi-row statement
# ("insertmanyvalues") from a cached compilation; a statement built with .values([...]) would
# be compiled again on every call, which costs more than the database's work.
_BOOK = _booking("sqlite")
# PostgreSQL: the same statement over the charges as one JSON array, one text whatever the
# number of charges, kept prepared by asyncpg (one JSON text costs the node far less to send
# than a column of arrays, whose every element asyncpg inspects). The rows are inserted in
# array order, so counters lock in that order.
_BOOKING_SQL = """
        INSERT INTO limit_usage AS u
            (limit_id, subject, bucket, used_minor, used_count, cap_minor, cap_count, expires_on)
        SELECT c.limit_id, c.subject, c.bucket, c.minor, c.count, c.cap_minor, c.cap_count,
               c.expires
        FROM json_to_recordset(CAST(:b_charges AS json)) AS c(
            limit_id uuid, subject varchar, bucket varchar, minor bigint, count integer,
            cap_minor bigint, cap_count integer, expires date)
        ON CONFLICT (limit_id, subject, bucket) DO UPDATE SET
            used_minor = u.used_minor + excluded.used_minor,
            used_count = u.used_count + excluded.used_count,
            cap_minor = excluded.cap_minor,
            cap_count = excluded.cap_count
        WHERE (excluded.cap_minor IS NULL
               OR u.used_minor + excluded.used_minor <= excluded.cap_minor)
          AND (excluded.cap_count IS NULL
               OR u.used_count + excluded.used_count <= excluded.cap_count)
        RETURNING limit_id, subject, bucket
"""
_BOOK_JSON = FastStatement(text(_BOOKING_SQL))
# The booking and the customer's own limits in one round trip (the common case: no own limit,
# and the booking is all that happens). The SELECT sees the database as it was when the
# statement began, which is all it reads: the definitions, not the counters it changes.
_READ_BOOKED_AND_OWN = """
        SELECT
            (SELECT coalesce(json_agg(json_build_array(limit_id, subject, bucket)), '[]')
             FROM booked) AS booked,
            (SELECT coalesce(json_agg(own), '[]')
             FROM (SELECT id, owner, level, subject, service_group, channel, currency, period,
                          max_amount_minor, max_count, version
                   FROM limit_definitions
                   WHERE level = 'customer' AND subject = :b_customer
                     AND owner = 'customer' AND status = 'active') AS own) AS own
"""
_BOOK_READING_OWN = FastStatement(
    # The f-string joins two constants: no value is ever formatted into SQL.
    text(f"WITH booked AS ({_BOOKING_SQL}) {_READ_BOOKED_AND_OWN}")
)
# The same as a rider (kit.db.Rider) of another statement: its bind names are its own.
_RIDER_BOOKED = (
    text(_BOOKING_SQL.replace(":b_", ":lim_"))
    .columns(column("limit_id"), column("subject"), column("bucket"))
    .cte("booked")
)
_RIDER_ROW = text(_READ_BOOKED_AND_OWN.replace(":b_", ":lim_")).columns(
    column("booked"), column("own")
)


def _charges_json(charges: Sequence[Charge]) -> str:
    return orjson.dumps(
        [
            {
                "limit_id": charge.limit.id_text,
                "subject": charge.subject,
                "bucket": charge.bucket,
                "minor": charge.amount_minor,
                "count": charge.count,
                "cap_minor": charge.limit.max_amount_minor,
                "cap_count": charge.limit.max_count,
                "expires": charge.expires_on,
            }
            for charge in charges
        ]
    ).decode()


def _booked_and_own(row: Any) -> tuple[set[tuple[str, str, str]], list[Any]]:
    booked = {(str(limit), subject, bucket) for limit, subject, bucket in _json(row[0])}
    own = [SimpleNamespace(**{**limit, "id": uuid.UUID(limit["id"])}) for limit in _json(row[1])]
    return booked, own


async def book_reading_own(
    session: AsyncSession, charges: Sequence[Charge], customer_id: str
) -> tuple[set[tuple[str, str, str]], list[Any]] | None:
    """On PostgreSQL, ``book`` the charges and return, besides the keys of the counters that
    took theirs, the active limits the customer set on themself, in one round trip; None on
    SQLite (the caller reads and books one after the other)."""
    driver = await pg_connection(session)
    if driver is None:
        return None
    params = {"b_charges": _charges_json(charges), "b_customer": customer_id}
    return _booked_and_own(
        await driver.fetchrow(_BOOK_READING_OWN.sql, *_BOOK_READING_OWN.arguments(params))
    )


def booking_rider(charges: Sequence[Charge], customer_id: str) -> Rider:
    """``book_reading_own`` as a rider of another statement (PostgreSQL)."""
    params = {"lim_charges": _charges_json(charges), "lim_customer": customer_id}
    return Rider("limits.booking", _RIDER_ROW, params, [_RIDER_BOOKED])


async def booked_by_rider(
    session: AsyncSession, rider: Rider
) -> tuple[set[tuple[str, str, str]], list[Any]]:
    """Return what ``book_reading_own`` would have, from the rider's answer."""
    return _booked_and_own(await rider.result(session))


def _json(value: Any) -> Any:
    # SQLAlchemy's asyncpg connection decodes json itself; a bare one hands back the text.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def book(session: AsyncSession, charges: Sequence[Charge]) -> set[tuple[str, str, str]]:
    """Add each charge to its counter, unless that would take the counter over its limit;
    return the keys of the counters that took their charge.

    One statement: on PostgreSQL each counter row is locked as it is updated and the limit
    is checked against the row as it is after any concurrent booking committed, so two
    reservations can never both take the last of a limit. Charges come sorted, so concurrent
    statements lock counters in the same order. A charge that alone exceeds its limit must be
    refused by the caller before (a new counter is inserted unchecked).
    """
    if not charges:
        return set()
    driver = await pg_connection(session)
    if driver is not None:
        params = {"b_charges": _charges_json(charges)}
        booked = await driver.fetch(_BOOK_JSON.sql, *_BOOK_JSON.arguments(params))
    else:
        conn = await session.connection()
        rows = [
            {
                "limit_id": charge.limit.id,
                "subject": charge.subject,
                "bucket": charge.bucket,
                "used_minor": charge.amount_minor,
                "used_count": charge.count,
                "cap_minor": charge.limit.max_amount_minor,
                "cap_count": charge.limit.max_count,
                "expires_on": charge.expires_on,
            }
            for charge in charges
        ]
        booked = list(await conn.execute(_BOOK, rows))
    return {(str(row[0]), row[1], row[2]) for row in booked}


async def usage(
    session: AsyncSession, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Return (amount, count) used on each counter that exists."""
    if not keys:
        return {}
    wanted = [(uuid.UUID(limit), subject, bucket) for limit, subject, bucket in keys]
    result = await session.execute(
        select(
            _usage.c.limit_id,
            _usage.c.subject,
            _usage.c.bucket,
            _usage.c.used_minor,
            _usage.c.used_count,
        ).where(tuple_(_usage.c.limit_id, _usage.c.subject, _usage.c.bucket).in_(wanted))
    )
    return {
        (str(row.limit_id), row.subject, row.bucket): (row.used_minor, row.used_count)
        for row in result
    }


async def give_back(session: AsyncSession, charges: Sequence[Mapping[str, Any]]) -> None:
    """Take booked charges off their counters (a failed or reversed transaction)."""
    for charge in sorted(charges, key=lambda c: (c["limit"], c["subject"], c["bucket"])):
        await session.execute(
            update(_usage)
            .where(
                _usage.c.limit_id == uuid.UUID(str(charge["limit"])),
                _usage.c.subject == charge["subject"],
                _usage.c.bucket == charge["bucket"],
            )
            .values(
                used_minor=_usage.c.used_minor - int(charge["amount_minor"]),
                used_count=_usage.c.used_count - int(charge["count"]),
            )
        )


async def purge_expired(session: AsyncSession, today: dt.date) -> int:
    """Delete the counters of periods over before ``today`` (the bank's date): their
    ``expires_on`` is the first day no longer in the period. Return how many went."""
    result = await session.execute(delete(_usage).where(_usage.c.expires_on <= today))
    return int(result.rowcount)  # type: ignore[attr-defined]
