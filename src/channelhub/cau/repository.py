"""Every SQL statement of the customer-account-user center."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ARRAY, String, Table, and_, any_, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit import db
from channelhub.kit.db import FastStatement
from channelhub.models import (
    Account,
    Branch,
    Card,
    Customer,
    CustomerUser,
    NumberSequence,
    Product,
    StaffMember,
    UserDevice,
)

__all__ = [
    "TABLES",
    "account",
    "accounts_by_number",
    "accounts_of_customer",
    "bind_device",
    "block_cards_of_account",
    "card_by_pan_hash",
    "card_for_update",
    "cards_of_customer",
    "count_pin_failure",
    "customer",
    "customer_by_document",
    "device",
    "insert",
    "next_serial",
    "product",
    "products",
    "reset_pin_failures",
    "set_account_status",
    "set_card_status",
    "set_customer_status",
    "staff_by_id",
    "staff_by_username",
    "user_by_id",
    "user_by_username",
]

_accounts = cast(Table, Account.__table__)
_products = cast(Table, Product.__table__)
_cards = cast(Table, Card.__table__)
_customers = cast(Table, Customer.__table__)
_users = cast(Table, CustomerUser.__table__)
_sequences = cast(Table, NumberSequence.__table__)
_a, _p, _c = _accounts.c, _products.c, _cards.c

#: The tables the seeder and onboarding insert into, by name.
TABLES: dict[str, Table] = {
    "branches": cast(Table, Branch.__table__),
    "staff": cast(Table, StaffMember.__table__),
    "customers": _customers,
    "customer_users": _users,
    "user_devices": cast(Table, UserDevice.__table__),
    "products": _products,
    "accounts": _accounts,
    "cards": _cards,
}

# An account with what its product says about it: one query serves every account step.
_ACCOUNT_COLUMNS = (
    _a.id,
    _a.number,
    _a.customer_id,
    _a.currency,
    _a.status,
    _a.branch_code,
    _a.nickname,
    _a.opened_on,
    _a.closed_on,
    _a.interest_rate_bps,
    _a.maturity_on,
    _a.settlement_account,
    _a.product_code,
    _p.name.label("product_name"),
    _p.type.label("product_type"),
    _p.parameters.label("product_parameters"),
)
_ACCOUNTS_BY_NUMBER = FastStatement(
    select(*_ACCOUNT_COLUMNS)
    .join(_products, _p.code == _a.product_code)
    .where(_a.number.in_(bindparam("b_numbers", expanding=True))),
    postgresql=select(*_ACCOUNT_COLUMNS)
    .join(_products, _p.code == _a.product_code)
    .where(_a.number == any_(bindparam("b_numbers", type_=ARRAY(String)))),
)
#: Up to this many numbers, one statement per count: ``number IN ($1, $2)``.
_FEW_NUMBERS = 4


@functools.cache
def _accounts_by_numbers(count: int) -> FastStatement:
    """The look-up of ``count`` accounts with a parameter each. PostgreSQL plans a prepared
    statement once for good only when that plan is estimated no dearer than planning it for
    the values at hand; for ``= ANY(array)`` it guesses ten elements and so plans anew at every
    call (as dear as the look-up), whereas ``IN ($1, $2)`` says how many there are."""
    return FastStatement(
        select(*_ACCOUNT_COLUMNS)
        .join(_products, _p.code == _a.product_code)
        .where(_a.number.in_([bindparam(f"b_number_{at}", type_=String) for at in range(count)]))
    )


_ACCOUNTS_OF_CUSTOMER = (
    select(*_ACCOUNT_COLUMNS)
    .join(_products, _p.code == _a.product_code)
    .where(_a.customer_id == bindparam("b_customer"))
    .order_by(_a.opened_on, _a.number)
)
_SET_ACCOUNT_STATUS = (
    update(_accounts)
    .where(_a.number == bindparam("b_number"), _a.status == bindparam("b_expected"))
    .values(
        status=bindparam("b_status"),
        closed_on=bindparam("b_closed_on"),
        updated_at=bindparam("b_now"),
    )
)
_CARDS_OF_CUSTOMER = (
    select(_cards, _a.number.label("account_number"))
    .join(_accounts, _a.id == _c.account_id)
    .where(_c.customer_id == bindparam("b_customer"))
    .order_by(_c.issued_on, _c.pan_masked)
)
_CARD_FOR_UPDATE = select(_cards).where(_c.id == bindparam("b_id")).with_for_update()
_SET_CARD_STATUS = (
    update(_cards)
    .where(_c.id == bindparam("b_id"), _c.status == bindparam("b_expected"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
# A card presented at a terminal, found by its number's keyed hash: one round trip on the
# ISO 8583 hot path.
_CARD_BY_PAN_HASH = FastStatement(
    select(
        _c.id,
        _c.customer_id,
        _c.status,
        _c.expiry,
        _c.pin_verifier,
        _c.pin_failures,
        _a.number.label("account_number"),
        _a.currency.label("account_currency"),
    )
    .join(_accounts, _a.id == _c.account_id)
    .where(_c.pan_hash == bindparam("b_hash"))
)
# One more wrong PIN; the one that reaches the maximum blocks an active card, in the same
# statement, so that concurrent wrong PINs cannot both slip under the maximum.
_COUNT_PIN_FAILURE = FastStatement(
    update(_cards)
    .where(_c.id == bindparam("b_id"))
    .values(
        pin_failures=_c.pin_failures + 1,
        status=case(
            (
                and_(_c.status == "active", _c.pin_failures + 1 >= bindparam("b_max")),
                "blocked",
            ),
            else_=_c.status,
        ),
        updated_at=bindparam("b_now"),
    )
    .returning(_c.pin_failures, _c.status)
)
_RESET_PIN_FAILURES = FastStatement(
    update(_cards)
    .where(_c.id == bindparam("b_id"), _c.pin_failures > 0)
    .values(pin_failures=0, updated_at=bindparam("b_now"))
    .returning(_c.id)
)
_NEXT_SERIAL = (
    update(_sequences)
    .where(_sequences.c.name == bindparam("b_name"))
    .values(next_value=_sequences.c.next_value + bindparam("b_count"))
    .returning(_sequences.c.next_value)
)
_CREATE_SEQUENCE = {
    "postgresql": postgresql.insert(_sequences).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_sequences).on_conflict_do_nothing(),
}


async def accounts_by_number(session: AsyncSession, numbers: Sequence[str]) -> dict[str, Any]:
    """Return the accounts among ``numbers`` that exist, with their products, by number."""
    if 0 < len(numbers) <= _FEW_NUMBERS:
        params = {f"b_number_{at}": number for at, number in enumerate(numbers)}
        rows = await db.fetch(session, _accounts_by_numbers(len(numbers)), params)
    else:
        rows = await db.fetch(session, _ACCOUNTS_BY_NUMBER, {"b_numbers": list(numbers)})
    return {row.number: row for row in rows}


async def account(session: AsyncSession, number: str) -> Any | None:
    """Return one account with its product."""
    return (await accounts_by_number(session, [number])).get(number)


async def accounts_of_customer(session: AsyncSession, customer_id: uuid.UUID) -> list[Any]:
    """Return every account of a customer, oldest first, with its product."""
    return list((await session.execute(_ACCOUNTS_OF_CUSTOMER, {"b_customer": customer_id})).all())


async def set_account_status(
    session: AsyncSession,
    number: str,
    *,
    expected: str,
    status: str,
    closed_on: dt.date | None,
    now: dt.datetime,
) -> bool:
    """Change an account's status if it is still ``expected``; False otherwise."""
    result = await session.execute(
        _SET_ACCOUNT_STATUS,
        {
            "b_number": number,
            "b_expected": expected,
            "b_status": status,
            "b_closed_on": closed_on,
            "b_now": now,
        },
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def customer(session: AsyncSession, customer_id: uuid.UUID) -> Any | None:
    """Return a customer."""
    query = select(_customers).where(_customers.c.id == customer_id)
    return (await session.execute(query)).first()


async def user_by_username(session: AsyncSession, username: str) -> Any | None:
    """Return a customer user by login name."""
    query = select(_users).where(_users.c.username == username)
    return (await session.execute(query)).first()


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> Any | None:
    """Return a customer user by id."""
    return (await session.execute(select(_users).where(_users.c.id == user_id))).first()


async def staff_by_id(session: AsyncSession, staff_id: uuid.UUID) -> Any | None:
    """Return a staff member by id."""
    staff = TABLES["staff"]
    return (await session.execute(select(staff).where(staff.c.id == staff_id))).first()


async def staff_by_username(session: AsyncSession, username: str) -> Any | None:
    """Return a staff member by login name."""
    staff = TABLES["staff"]
    return (await session.execute(select(staff).where(staff.c.username == username))).first()


async def device(session: AsyncSession, user_id: uuid.UUID, device_id: str) -> Any | None:
    """Return a device a user registered, whatever its status."""
    devices = TABLES["user_devices"]
    query = select(devices).where(devices.c.user_id == user_id, devices.c.device_id == device_id)
    return (await session.execute(query)).first()


async def bind_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: str, *, name: str, now: dt.datetime
) -> None:
    """Register (or re-activate) a device for a user and note that it was seen now."""
    devices = TABLES["user_devices"]
    values = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "device_id": device_id,
        "name": name,
        "status": "active",
        "registered_at": now,
        "last_seen_at": now,
    }
    upsert: Any = (
        postgresql.insert(devices)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(devices)
    )
    await session.execute(
        upsert.values(values).on_conflict_do_update(
            index_elements=["user_id", "device_id"],
            set_={"status": "active", "last_seen_at": now},
        )
    )


async def products(session: AsyncSession) -> list[Any]:
    """Return every product, by code."""
    return list((await session.execute(select(_products).order_by(_p.code))).all())


async def product(session: AsyncSession, code: str) -> Any | None:
    """Return one product."""
    return (await session.execute(select(_products).where(_p.code == code))).first()


async def cards_of_customer(session: AsyncSession, customer_id: uuid.UUID) -> list[Any]:
    """Return a customer's cards with their accounts' numbers."""
    return list((await session.execute(_CARDS_OF_CUSTOMER, {"b_customer": customer_id})).all())


async def card_for_update(session: AsyncSession, card_id: uuid.UUID) -> Any | None:
    """Return a card, locked until the transaction ends."""
    return (await session.execute(_CARD_FOR_UPDATE, {"b_id": card_id})).first()


async def card_by_pan_hash(session: AsyncSession, pan_hash: str) -> Any | None:
    """Return the card whose number hashes to ``pan_hash``, with its account's number."""
    rows = await db.fetch(session, _CARD_BY_PAN_HASH, {"b_hash": pan_hash})
    return rows[0] if rows else None


async def count_pin_failure(
    session: AsyncSession, card_id: uuid.UUID, *, max_failures: int, now: dt.datetime
) -> tuple[int, str]:
    """Count a wrong PIN (blocking an active card at ``max_failures``); return the count and
    the card's status after it."""
    rows = await db.fetch(
        session, _COUNT_PIN_FAILURE, {"b_id": card_id, "b_max": max_failures, "b_now": now}
    )
    return int(rows[0].pin_failures), str(rows[0].status)


async def reset_pin_failures(session: AsyncSession, card_id: uuid.UUID, now: dt.datetime) -> None:
    """Forget a card's wrong PINs (a right PIN was entered)."""
    await db.fetch(session, _RESET_PIN_FAILURES, {"b_id": card_id, "b_now": now})


async def set_card_status(
    session: AsyncSession, card_id: uuid.UUID, *, expected: str, status: str, now: dt.datetime
) -> bool:
    """Change a card's status if it is still ``expected``; False otherwise."""
    result = await session.execute(
        _SET_CARD_STATUS,
        {"b_id": card_id, "b_expected": expected, "b_status": status, "b_now": now},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def customer_by_document(session: AsyncSession, id_type: str, id_number: str) -> Any | None:
    """Return the customer holding this identity document (type and number), if any."""
    c = _customers.c
    query = select(c.id, c.number, c.name, c.status).where(
        c.id_type == id_type, c.id_number == id_number
    )
    return (await session.execute(query)).first()


async def set_customer_status(
    session: AsyncSession, customer_id: uuid.UUID, *, status: str, now: dt.datetime
) -> None:
    """Change a customer's status."""
    await session.execute(
        update(_customers)
        .where(_customers.c.id == customer_id)
        .values(status=status, updated_at=now)
    )


async def block_cards_of_account(
    session: AsyncSession, account_id: uuid.UUID, *, now: dt.datetime
) -> int:
    """Block every active card drawing on an account; return how many."""
    result = await session.execute(
        update(_cards)
        .where(_c.account_id == account_id, _c.status == "active")
        .values(status="blocked", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def next_serial(session: AsyncSession, name: str, count: int = 1) -> int:
    """Take ``count`` consecutive serials of the named counter; return the first."""
    params = {"b_name": name, "b_count": count}
    value = await session.scalar(_NEXT_SERIAL, params)
    if value is None:
        dialect = session.get_bind().dialect.name
        await session.execute(_CREATE_SEQUENCE[dialect], {"name": name, "next_value": 1})
        value = await session.scalar(_NEXT_SERIAL, params)
    return int(value) - count


async def insert(session: AsyncSession, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows into one of the center's tables (in one statement)."""
    if rows:
        await session.execute(TABLES[table].insert(), rows)
