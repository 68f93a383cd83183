"""Seed the demo bank: branches, staff, products, named customers with several months of
history, and as many generated customers as asked.

Everything is deterministic: the same seed, run on the same day, writes the same rows, and a
second run adds nothing that is already there.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import repository as cau_repository
from channelhub.cau.numbers import account_number, customer_number, mask_pan, pan
from channelhub.cau.rules import floor_of
from channelhub.cau.schemas import ProductParameters
from channelhub.cau.service import pan_fingerprint, pin_verifier
from channelhub.demo.catalog import (
    BRANCHES,
    CURRENCIES,
    DEMO_CUSTOMERS,
    PRODUCTS,
    STAFF,
    DemoCustomer,
)
from channelhub.kit.ids import new_id
from channelhub.kit.money import Money
from channelhub.ledger import service as ledger
from channelhub.ledger.schemas import Leg
from channelhub.models import Branch, LedgerAccount, LedgerEntry, NumberSequence, Posting

__all__ = [
    "DEMO_PIN",
    "SeedContext",
    "card_expiry",
    "generated_count",
    "seed_bank",
    "seed_customers",
]

#: Every demo card's PIN.
DEMO_PIN = "1234"
_GENERATED = "demo.generated_customers"
_PARAMETERS = {row["code"]: ProductParameters.model_validate(row["parameters"]) for row in PRODUCTS}
_PRODUCTS = {row["code"]: row for row in PRODUCTS}


@dataclass(frozen=True)
class SeedContext:
    """What seeding needs to know: the time, the bank's zone and the card data key."""

    now: dt.datetime
    time_zone: ZoneInfo
    key: bytes

    @property
    def today(self) -> dt.date:
        """Return the bank's business date."""
        return self.now.astimezone(self.time_zone).date()


async def seed_bank(sessions: async_sessionmaker[AsyncSession], ctx: SeedContext) -> bool:
    """Seed the fixed part of the demo bank; return False if it was already there."""
    async with sessions() as session, session.begin():
        if await session.scalar(select(func.count()).select_from(Branch)):
            return False
        await _reference_data(session, ctx)
        for customer in DEMO_CUSTOMERS:
            await _named_customer(session, ctx, customer)
    return True


async def _reference_data(session: AsyncSession, ctx: SeedContext) -> None:
    now = ctx.now
    await cau_repository.insert(
        session,
        "branches",
        [
            {"code": code, "name": name, "city": city, "status": "open", "created_at": now}
            for code, name, city in BRANCHES
        ],
    )
    await cau_repository.insert(
        session,
        "staff",
        [
            {
                "id": new_id(),
                "username": username,
                "name": name,
                "role": role,
                "branch_code": branch,
                "status": "active",
                "created_at": now,
            }
            for username, name, role, branch in STAFF
        ],
    )
    await cau_repository.insert(
        session, "products", [{**row, "created_at": now, "updated_at": now} for row in PRODUCTS]
    )
    for currency in CURRENCIES:
        for gl_type in ("fee_income", "interest_expense", "clearing", "suspense"):
            await ledger.open_account(
                session,
                code=ledger.gl_code(gl_type, currency),
                currency=currency,
                gl_type=gl_type,
                now=now,
            )
        for branch, _, _ in BRANCHES:
            await ledger.open_account(
                session,
                code=ledger.gl_code("cash", currency, branch),
                currency=currency,
                gl_type="cash",
                branch=branch,
                now=now,
            )


def _customer_row(
    ctx: SeedContext, serial: int, spec: DemoCustomer, opened_on: dt.date
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "number": customer_number(serial),
        "kind": spec.kind,
        "name": spec.name,
        "id_type": spec.id_type,
        "id_number": spec.id_number,
        "phone": spec.phone,
        "email": spec.email,
        "kyc_level": spec.kyc_level,
        "segment": spec.segment,
        "risk_rating": "low",
        "status": "active",
        "home_branch": spec.branch,
        "opened_on": opened_on,
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }


def _user_row(ctx: SeedContext, username: str, customer_id: Any, role: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "username": username,
        "customer_id": customer_id,
        "role": role,
        "status": "active",
        "channels": ["mobile", "web"],
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }


def _account_row(
    ctx: SeedContext, number: str, customer_id: Any, product: str, branch: str, opened_on: dt.date
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "number": number,
        "customer_id": customer_id,
        "product_code": product,
        "currency": _PRODUCTS[product]["currency"],
        "branch_code": branch,
        "nickname": None,
        "status": "active",
        "opened_on": opened_on,
        "closed_on": None,
        "interest_rate_bps": None,
        "maturity_on": None,
        "settlement_account": None,
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }


def card_expiry(issued_on: dt.date, years: int = 5) -> str:
    """Return the ``YYMM`` expiry of a card issued on ``issued_on``: the same month ``years``
    later (only the month counts, so a card issued on 29 February expires fine)."""
    return f"{(issued_on.year + years) % 100:02d}{issued_on.month:02d}"


def _card_row(
    ctx: SeedContext, serial: int, customer_id: Any, account_id: Any, issued_on: dt.date
) -> dict[str, Any]:
    number = pan(serial)
    return {
        "id": new_id(),
        "pan_hash": pan_fingerprint(ctx.key, number),
        "pan_masked": mask_pan(number),
        "customer_id": customer_id,
        "account_id": account_id,
        "product_code": "CARD-DEBIT-CNY",
        "expiry": card_expiry(issued_on),
        "status": "active",
        "pin_verifier": pin_verifier(ctx.key, number, DEMO_PIN),
        "issued_on": issued_on,
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }


async def _named_customer(session: AsyncSession, ctx: SeedContext, spec: DemoCustomer) -> None:
    start = ctx.today - dt.timedelta(days=100)
    serial = await cau_repository.next_serial(session, "customer")
    customer = _customer_row(ctx, serial, spec, start)
    await cau_repository.insert(session, "customers", [customer])
    users = [_user_row(ctx, spec.username, customer["id"], "owner")]
    users += [_user_row(ctx, name, customer["id"], "operator") for name in spec.operators]
    await cau_repository.insert(session, "customer_users", users)
    for holding in spec.accounts:
        number = account_number(spec.branch, await cau_repository.next_serial(session, "account"))
        row = _account_row(ctx, number, customer["id"], holding.product, spec.branch, start)
        await cau_repository.insert(session, "accounts", [row])
        currency = row["currency"]
        floor = floor_of(_PARAMETERS[holding.product], currency)
        await ledger.open_account(
            session, code=number, currency=currency, floor_minor=floor, now=ctx.now
        )
        if holding.card:
            card_serial = await cau_repository.next_serial(session, "card")
            await cau_repository.insert(
                session, "cards", [_card_row(ctx, card_serial, customer["id"], row["id"], start)]
            )
        target = Money.parse(holding.balance, currency).minor
        events = (
            _history(spec.username, number, currency, start, ctx.today) if holding.history else []
        )
        await _book(session, ctx, number, currency, spec.branch, start, target, events)


def _history(
    username: str, number: str, currency: str, start: dt.date, today: dt.date
) -> list[tuple[dt.date, int, str, str]]:
    """Return (date, signed amount, narrative, counterparty) events of a lived-in account."""
    rng = random.Random(f"{username}:{number}")
    events: list[tuple[dt.date, int, str, str]] = []
    day = start + dt.timedelta(days=1)
    merchants = ("Metro Card Top-up", "FamilyMart", "Starbucks", "JD.com", "Hema Fresh", "Didi")
    while day < today:
        if day.day == 10:
            events.append((day, 1_850_000, "Salary", "ACME TRADING CO LTD"))
        if day.day == 15:
            events.append((day, -450_000, "Rent", "Shanghai Homes Ltd"))
        if day.day == 20:
            events.append((day, -rng.randrange(20_000, 60_000), "Utilities", "State Grid Shanghai"))
        if rng.random() < 0.35:
            merchant = rng.choice(merchants)
            events.append(
                (day, -rng.randrange(1_500, 80_000), f"Card purchase {merchant}", merchant)
            )
        day += dt.timedelta(days=1)
    return events


async def _book(
    session: AsyncSession,
    ctx: SeedContext,
    number: str,
    currency: str,
    branch: str,
    start: dt.date,
    target: int,
    events: list[tuple[dt.date, int, str, str]],
) -> None:
    """Book an opening cash deposit and the events so that the account ends at ``target``."""
    opening = target - sum(amount for _, amount, _, _ in events)
    if opening <= 0:
        raise ValueError(f"demo history of {number} spends more than it ends with")
    cash = ledger.gl_code("cash", currency, branch)
    clearing = ledger.gl_code("clearing", currency)
    booked = [(start, opening, "Cash deposit", "Branch cash desk", cash)]
    booked += [(day, amount, narrative, name, clearing) for day, amount, narrative, name in events]
    for day, amount, narrative, name, other in booked:
        when = dt.datetime.combine(day, dt.time(10, 0), ctx.time_zone).astimezone(dt.UTC)
        await ledger.post_entry(
            session,
            legs=[
                Leg(number, amount, currency, narrative, name),
                Leg(other, -amount, currency, narrative, number),
            ],
            kind="demo",
            description=narrative,
            now=min(when, ctx.now),
            value_date=day,
        )


async def generated_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Return how many generated demo customers exist."""
    async with sessions() as session:
        value = await session.scalar(
            select(NumberSequence.next_value).where(NumberSequence.name == _GENERATED)
        )
    return int(value or 1) - 1


_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu")
_GIVEN = ("Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Jun", "Hao", "Xin", "Ying", "Tao", "Qiang")


async def seed_customers(
    sessions: async_sessionmaker[AsyncSession],
    ctx: SeedContext,
    *,
    count: int,
    batch: int = 2000,
    advance: Callable[[int], None] = lambda _: None,
) -> int:
    """Make sure ``count`` generated customers exist, each with a funded CNY current account
    and a debit card (every fourth also a USD savings account); return how many were added.

    Rows go in with bulk inserts, a batch per database transaction, so a large bank seeds in
    minutes; ``advance`` is told how many customers each batch added.
    """
    existing = await generated_count(sessions)
    added = 0
    while existing + added < count:
        size = min(batch, count - existing - added)
        async with sessions() as session, session.begin():
            first = await cau_repository.next_serial(session, _GENERATED, size)
            await _generated_batch(session, ctx, first, size)
        added += size
        advance(size)
    return added


async def _generated_batch(session: AsyncSession, ctx: SeedContext, first: int, size: int) -> None:
    customer_serial = await cau_repository.next_serial(session, "customer", size)
    account_serial = await cau_repository.next_serial(session, "account", size * 2)
    card_serial = await cau_repository.next_serial(session, "card", size)
    rows: dict[str, list[dict[str, Any]]] = {
        name: [] for name in ("customers", "customer_users", "accounts", "cards")
    }
    ledger_accounts: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    postings: list[dict[str, Any]] = []
    opened_on = ctx.today - dt.timedelta(days=30)
    for offset in range(size):
        index = first + offset
        rng = random.Random(index)
        branch = BRANCHES[index % len(BRANCHES)][0]
        spec = DemoCustomer(
            username=f"customer{index:06d}",
            name=f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}",
            kind="person",
            id_type="resident_id",
            id_number=f"3101011980{index:08d}",
            phone=f"+86139{index:08d}",
            email=f"customer{index:06d}@example.com",
            segment="premier" if index % 10 == 0 else "retail",
            kyc_level=2,
            branch=branch,
            accounts=(),
        )
        customer = _customer_row(ctx, customer_serial + offset, spec, opened_on)
        rows["customers"].append(customer)
        rows["customer_users"].append(_user_row(ctx, spec.username, customer["id"], "owner"))
        holdings = [("CUR-CNY", rng.randrange(100_000, 10_000_000))]
        if index % 4 == 0:
            holdings.append(("SAV-USD", rng.randrange(10_000, 2_000_000)))
        for slot, (product, balance) in enumerate(holdings):
            number = account_number(branch, account_serial + 2 * offset + slot)
            account = _account_row(ctx, number, customer["id"], product, branch, opened_on)
            rows["accounts"].append(account)
            currency = account["currency"]
            ledger_accounts.append(
                {
                    "id": new_id(),
                    "code": number,
                    "kind": "customer",
                    "gl_type": None,
                    "branch_code": None,
                    "currency": currency,
                    "tracked": True,
                    "balance_minor": balance,
                    "held_minor": 0,
                    "floor_minor": floor_of(_PARAMETERS[product], currency),
                    "posting_count": 1,
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                }
            )
            entry_id = new_id()
            entries.append(
                {
                    "id": entry_id,
                    "txn_id": None,
                    "kind": "demo",
                    "description": "Opening deposit",
                    "value_date": opened_on,
                    "booked_at": ctx.now,
                    "reverses_id": None,
                    "reversed_by_id": None,
                }
            )
            cash = ledger.gl_code("cash", currency, branch)
            for code, amount, seq, other in (
                (number, balance, 1, cash),
                (cash, -balance, None, number),
            ):
                postings.append(
                    {
                        "id": new_id(),
                        "entry_id": entry_id,
                        "account_code": code,
                        "amount_minor": amount,
                        "currency": currency,
                        "account_seq": seq,
                        "balance_after_minor": balance if seq else None,
                        "value_date": opened_on,
                        "booked_at": ctx.now,
                        "narrative": "Opening deposit",
                        "counterparty": other,
                    }
                )
            if slot == 0:
                rows["cards"].append(
                    _card_row(ctx, card_serial + offset, customer["id"], account["id"], opened_on)
                )
    for table in ("customers", "customer_users", "accounts", "cards"):
        await cau_repository.insert(session, table, rows[table])
    await session.execute(cast(Table, LedgerAccount.__table__).insert(), ledger_accounts)
    await session.execute(cast(Table, LedgerEntry.__table__).insert(), entries)
    await session.execute(cast(Table, Posting.__table__).insert(), postings)
