"""Every SQL statement of the ledger.

A tracked account's balance moves only by a conditional ``UPDATE ... RETURNING``: the floor is
checked by the same statement that moves the balance, so two concurrent debits can never both
pass a check that only one of them should (on PostgreSQL the row lock orders them; on SQLite
the single writer does).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.db import pg_connection
from channelhub.models import Hold, LedgerAccount, LedgerEntry, Posting

__all__ = [
    "Move",
    "balances",
    "book",
    "entry_postings",
    "get_hold",
    "insert_account",
    "insert_hold",
    "lock_hold",
    "mark_reversed",
    "move",
    "move_held",
    "move_many",
    "set_hold_status",
    "statement_lines",
    "statement_opening",
    "tracked_accounts",
]

_accounts = cast(Table, LedgerAccount.__table__)
_entries = cast(Table, LedgerEntry.__table__)
_postings = cast(Table, Posting.__table__)
_holds = cast(Table, Hold.__table__)
_a = _accounts.c
_p = _postings.c
_h = _holds.c

_THIS_ACCOUNT = and_(
    _a.code == bindparam("b_code"), _a.currency == bindparam("b_currency"), _a.tracked
)
_FLOOR_KEPT = or_(
    bindparam("b_check_floor") == False,  # noqa: E712  (SQL, not Python)
    _a.floor_minor.is_(None),
    _a.balance_minor - _a.held_minor + bindparam("b_delta") - bindparam("b_held_delta")
    >= _a.floor_minor,
)
_MOVE = (
    update(_accounts)
    .where(_THIS_ACCOUNT, _FLOOR_KEPT)
    .values(
        balance_minor=_a.balance_minor + bindparam("b_delta"),
        held_minor=_a.held_minor + bindparam("b_held_delta"),
        posting_count=_a.posting_count + bindparam("b_postings"),
        updated_at=bindparam("b_now"),
    )
    .returning(_a.balance_minor, _a.held_minor, _a.posting_count)
)
_TRACKED = select(_a.code, _a.tracked, _a.currency).where(
    _a.code.in_(bindparam("b_codes", expanding=True))
)
_BALANCES = select(_a.code, _a.currency, _a.balance_minor, _a.held_minor, _a.tracked).where(
    _a.code.in_(bindparam("b_codes", expanding=True))
)
_DERIVED_BALANCE = (
    select(_p.account_code, func.coalesce(func.sum(_p.amount_minor), 0))
    .where(_p.account_code.in_(bindparam("b_codes", expanding=True)))
    .group_by(_p.account_code)
)
_INSERT_ENTRY = _entries.insert()
_INSERT_POSTINGS = _postings.insert()
_ENTRY_POSTINGS = select(_postings).where(_p.entry_id == bindparam("b_entry")).order_by(_p.id)
_MARK_REVERSED = (
    update(_entries)
    .where(_entries.c.id == bindparam("b_entry"), _entries.c.reversed_by_id.is_(None))
    .values(reversed_by_id=bindparam("b_by"))
)
_STATEMENT = (
    select(
        _p.entry_id,
        _entries.c.txn_id,
        _p.account_seq,
        _p.booked_at,
        _p.value_date,
        _p.narrative,
        _p.counterparty,
        _p.amount_minor,
        _p.balance_after_minor,
    )
    .join(_entries, _entries.c.id == _p.entry_id)
    .where(
        _p.account_code == bindparam("b_code"),
        _p.value_date >= bindparam("b_from"),
        _p.value_date <= bindparam("b_to"),
    )
    .order_by(_p.value_date, _p.account_seq)
    .limit(bindparam("b_limit"))
    .offset(bindparam("b_offset"))
)
# The balance before the range: the last posting before its first day (seq orders history).
_OPENING = (
    select(_p.balance_after_minor)
    .where(_p.account_code == bindparam("b_code"), _p.value_date < bindparam("b_from"))
    .order_by(_p.value_date.desc(), _p.account_seq.desc())
    .limit(1)
)
_CLOSING = (
    select(_p.balance_after_minor)
    .where(_p.account_code == bindparam("b_code"), _p.value_date <= bindparam("b_to"))
    .order_by(_p.value_date.desc(), _p.account_seq.desc())
    .limit(1)
)

# PostgreSQL: all of an entry's tracked accounts move in one statement. The accounts are locked
# in code order first (a materialised CTE), so two entries over the same accounts queue instead
# of deadlocking; each row then moves only if its floor allows, as in _MOVE. {codes} is where
# the locked codes go (see _pg_move_many).
_PG_MOVE_MANY = """
WITH locked AS MATERIALIZED (
    SELECT id FROM ledger_accounts
    WHERE code {codes} AND tracked
    ORDER BY code
    FOR UPDATE
),
moves AS (
    SELECT * FROM unnest(
        $1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[], $5::boolean[], $6::bigint[]
    ) AS m(code, currency, delta, held_delta, check_floor, postings)
)
UPDATE ledger_accounts AS a
SET balance_minor = a.balance_minor + m.delta,
    held_minor = a.held_minor + m.held_delta,
    posting_count = a.posting_count + m.postings,
    updated_at = $7
FROM moves AS m, locked AS l
WHERE a.id = l.id AND a.code = m.code AND a.currency = m.currency
  AND (NOT m.check_floor OR a.floor_minor IS NULL
       OR a.balance_minor - a.held_minor + m.delta - m.held_delta >= a.floor_minor)
RETURNING a.code, a.balance_minor, a.held_minor, a.posting_count
"""
#: Up to this many accounts, the lock names each code with a parameter of its own.
_FEW_CODES = 4


@functools.cache
def _pg_move_many(count: int) -> str:
    """The move of ``count`` accounts. With ``code = ANY($1)`` PostgreSQL guesses ten codes,
    finds its generic plan dearer than one for the codes at hand and so plans the statement
    anew at every call (a quarter of a transfer's database time); ``code IN ($8, $9)`` says
    how many there are, and the plan is made once per connection."""
    if not 0 < count <= _FEW_CODES:
        return _PG_MOVE_MANY.format(codes="= ANY($1::varchar[])")
    codes = ", ".join(f"${8 + at}::varchar" for at in range(count))
    return _PG_MOVE_MANY.format(codes=f"IN ({codes})")


# PostgreSQL: an entry and its postings in one statement (the foreign key from the postings to
# the entry is checked at the end of the statement, when the entry is there).
_PG_BOOK = """
WITH entry AS (
    INSERT INTO ledger_entries
        (id, txn_id, kind, description, value_date, booked_at, reverses_id, reversed_by_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)
)
INSERT INTO ledger_postings
    (id, entry_id, account_code, amount_minor, currency, account_seq, balance_after_minor,
     value_date, booked_at, narrative, counterparty)
SELECT p.id, $1, p.code, p.amount, p.currency, p.seq, p.balance_after, $5, $6, p.narrative,
       p.counterparty
FROM unnest(
    $8::uuid[], $9::varchar[], $10::bigint[], $11::varchar[], $12::bigint[], $13::bigint[],
    $14::varchar[], $15::varchar[]
) AS p(id, code, amount, currency, seq, balance_after, narrative, counterparty)
"""
_POSTING_FIELDS = (
    "id",
    "account_code",
    "amount_minor",
    "currency",
    "account_seq",
    "balance_after_minor",
    "narrative",
    "counterparty",
)

_LOCK_HOLD = (
    select(_holds)
    .where(_h.id == bindparam("b_id"), _h.account_code == bindparam("b_code"))
    .with_for_update()
)
_GET_HOLD = select(_holds).where(_h.id == bindparam("b_id"))
_SET_HOLD = (
    update(_holds)
    .where(_h.id == bindparam("b_id"), _h.status == "active")
    .values(
        status=bindparam("b_status"),
        captured_minor=bindparam("b_captured"),
        capture_entry_id=bindparam("b_capture_entry"),
        closed_at=bindparam("b_now"),
    )
)


async def move(
    session: AsyncSession,
    *,
    code: str,
    currency: str,
    delta: int,
    held_delta: int = 0,
    check_floor: bool,
    posting_count: int,
    now: dt.datetime,
) -> Any | None:
    """Move a tracked account's balance (and held amount) if its floor allows; return
    (balance, held, posting_count) after, or None if the account is not there or the floor
    refused."""
    result = await session.execute(
        _MOVE,
        {
            "b_code": code,
            "b_currency": currency,
            "b_delta": delta,
            "b_held_delta": held_delta,
            "b_check_floor": check_floor,
            "b_postings": posting_count,
            "b_now": now,
        },
    )
    return result.first()


@dataclass(frozen=True, slots=True)
class Move:
    """One tracked account's part in an entry: its net change and how many postings it gets."""

    code: str
    currency: str
    delta: int
    held_delta: int
    check_floor: bool
    postings: int


async def move_many(
    session: AsyncSession, moves: Sequence[Move], *, now: dt.datetime
) -> dict[str, tuple[int, int, int]]:
    """Apply ``moves`` (sorted by code) where each floor allows; return (balance, held,
    posting_count) after, by code, of the accounts that moved.

    An account missing from the answer is untracked, unknown, or refused by its floor.
    """
    driver = await pg_connection(session)
    if driver is not None:
        codes = [m.code for m in moves]
        few = codes if len(codes) <= _FEW_CODES else []
        rows = await driver.fetch(
            _pg_move_many(len(codes)),
            codes,
            [m.currency for m in moves],
            [m.delta for m in moves],
            [m.held_delta for m in moves],
            [m.check_floor for m in moves],
            [m.postings for m in moves],
            now,
            *few,
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}
    moved: dict[str, tuple[int, int, int]] = {}
    for m in moves:  # in code order: see post_entry
        row = await move(
            session,
            code=m.code,
            currency=m.currency,
            delta=m.delta,
            held_delta=m.held_delta,
            check_floor=m.check_floor,
            posting_count=m.postings,
            now=now,
        )
        if row is not None:
            moved[m.code] = (row[0], row[1], row[2])
    return moved


async def move_held(
    session: AsyncSession, *, code: str, currency: str, held_delta: int, now: dt.datetime
) -> Any | None:
    """Reserve (positive) or free (negative) an amount of a tracked account, floor checked
    when reserving."""
    return await move(
        session,
        code=code,
        currency=currency,
        delta=0,
        held_delta=held_delta,
        check_floor=held_delta > 0,
        posting_count=0,
        now=now,
    )


async def tracked_accounts(session: AsyncSession, codes: Sequence[str]) -> dict[str, Any]:
    """Return (code, tracked, currency) of each existing account among ``codes``."""
    rows = (await session.execute(_TRACKED, {"b_codes": list(codes)})).all()
    return {row.code: row for row in rows}


async def balances(session: AsyncSession, codes: Sequence[str]) -> list[tuple[str, str, int, int]]:
    """Return (code, currency, balance, held) of each existing account among ``codes``; for
    untracked accounts the balance is summed from their postings."""
    rows = (await session.execute(_BALANCES, {"b_codes": list(codes)})).all()
    untracked = [row.code for row in rows if not row.tracked]
    sums: dict[str, int] = {}
    if untracked:
        result = await session.execute(_DERIVED_BALANCE, {"b_codes": untracked})
        sums = {str(code): int(total) for code, total in result.all()}
    return [
        (
            row.code,
            row.currency,
            int(row.balance_minor) if row.tracked else sums.get(row.code, 0),
            int(row.held_minor),
        )
        for row in rows
    ]


async def insert_account(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a ledger account."""
    await session.execute(_accounts.insert(), values)


async def book(
    session: AsyncSession, entry: dict[str, Any], postings: list[dict[str, Any]]
) -> None:
    """Insert an entry and its postings (each posting's entry, dates and booking time are the
    entry's)."""
    driver = await pg_connection(session)
    if driver is not None:
        await driver.execute(
            _PG_BOOK,
            entry["id"],
            entry["txn_id"],
            entry["kind"],
            entry["description"],
            entry["value_date"],
            entry["booked_at"],
            entry["reverses_id"],
            *([posting[name] for posting in postings] for name in _POSTING_FIELDS),
        )
        return
    await session.execute(_INSERT_ENTRY, entry)
    shared = {
        "entry_id": entry["id"],
        "value_date": entry["value_date"],
        "booked_at": entry["booked_at"],
    }
    await session.execute(_INSERT_POSTINGS, [{**posting, **shared} for posting in postings])


async def entry_postings(session: AsyncSession, entry_id: uuid.UUID) -> list[Any]:
    """Return an entry's postings."""
    return list((await session.execute(_ENTRY_POSTINGS, {"b_entry": entry_id})).all())


async def mark_reversed(session: AsyncSession, entry_id: uuid.UUID, by: uuid.UUID) -> bool:
    """Record that ``by`` reverses ``entry_id``; False if it was already reversed."""
    result = await session.execute(_MARK_REVERSED, {"b_entry": entry_id, "b_by": by})
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def statement_lines(
    session: AsyncSession, code: str, start: dt.date, end: dt.date, *, limit: int, offset: int
) -> list[Any]:
    """Return a page of an account's postings between two value dates, oldest first."""
    params = {"b_code": code, "b_from": start, "b_to": end, "b_limit": limit, "b_offset": offset}
    return list((await session.execute(_STATEMENT, params)).all())


async def statement_opening(
    session: AsyncSession, code: str, start: dt.date, end: dt.date
) -> tuple[int, int]:
    """Return the balance before ``start`` and at the end of ``end``."""
    opening = await session.scalar(_OPENING, {"b_code": code, "b_from": start})
    closing = await session.scalar(_CLOSING, {"b_code": code, "b_to": end})
    opening = int(opening or 0)
    return opening, int(closing) if closing is not None else opening


async def insert_hold(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a hold."""
    await session.execute(_holds.insert(), values)


async def lock_hold(session: AsyncSession, hold_id: uuid.UUID, code: str) -> Any | None:
    """Return the hold on ``code`` with this id, locked until the transaction ends."""
    return (await session.execute(_LOCK_HOLD, {"b_id": hold_id, "b_code": code})).first()


async def get_hold(session: AsyncSession, hold_id: uuid.UUID) -> Any | None:
    """Return a hold."""
    return (await session.execute(_GET_HOLD, {"b_id": hold_id})).first()


async def set_hold_status(
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    status: str,
    captured_minor: int,
    capture_entry_id: uuid.UUID | None,
    now: dt.datetime,
) -> bool:
    """Close an active hold; False if it was no longer active."""
    result = await session.execute(
        _SET_HOLD,
        {
            "b_id": hold_id,
            "b_status": status,
            "b_captured": captured_minor,
            "b_capture_entry": capture_entry_id,
            "b_now": now,
        },
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
