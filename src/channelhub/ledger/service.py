"""The ledger's operations: post balanced entries, reverse them, hold and capture funds.

Nothing here commits: the caller (the kernel's flow, the seeder, a test) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.ids import new_id
from channelhub.kit.money import InvalidAmount, Money
from channelhub.ledger import repository
from channelhub.ledger.errors import (
    HoldNotActive,
    HoldNotFound,
    InsufficientFunds,
    LedgerAccountNotFound,
)
from channelhub.ledger.rules import check_balanced
from channelhub.ledger.schemas import Balance, Leg, PostedEntry, StatementLine, StatementPage

__all__ = [
    "GL_TYPES",
    "balances",
    "capture_hold",
    "gl_code",
    "hold_debits",
    "is_gl_code",
    "open_account",
    "place_hold",
    "post_entry",
    "post_held",
    "release_hold",
    "release_holds",
    "reverse_entry",
    "statement",
    "verify",
]

#: The general-ledger accounts the platform books against, one per currency (cash: per branch).
GL_TYPES = ("cash", "fee_income", "interest_expense", "clearing", "suspense")

# Untracked (general-ledger) accounts never become tracked, so once seen they are remembered:
# a transfer's fee leg then costs no look-up.
_UNTRACKED: set[tuple[str, str]] = set()


def gl_code(gl_type: str, currency: str, branch: str | None = None) -> str:
    """Return the code of a general-ledger account, e.g. ``GL-CASH-0101-CNY``."""
    middle = f"-{branch}" if branch else ""
    return f"GL-{gl_type.upper().replace('_', '-')}{middle}-{currency}"


async def open_account(
    session: AsyncSession,
    *,
    code: str,
    currency: str,
    now: dt.datetime,
    floor_minor: int | None = 0,
    gl_type: str | None = None,
    branch: str | None = None,
) -> None:
    """Open a ledger account: a tracked customer account, or (with ``gl_type``) a
    general-ledger account whose balance is the sum of its postings."""
    is_gl = gl_type is not None
    await repository.insert_account(
        session,
        {
            "id": new_id(),
            "code": code,
            "kind": "gl" if is_gl else "customer",
            "gl_type": gl_type,
            "branch_code": branch,
            "currency": currency,
            "tracked": not is_gl,
            "balance_minor": 0,
            "held_minor": 0,
            "floor_minor": None if is_gl else floor_minor,
            "posting_count": 0,
            "created_at": now,
            "updated_at": now,
        },
    )


async def post_entry(
    session: AsyncSession,
    *,
    legs: Sequence[Leg],
    kind: str,
    description: str,
    now: dt.datetime,
    value_date: dt.date,
    txn_id: uuid.UUID | None = None,
    check_floor: bool = True,
    release_held: dict[str, int] | None = None,
    reverses: uuid.UUID | None = None,
) -> PostedEntry:
    """Post one balanced entry; debits may not take an account below its floor.

    ``release_held`` frees held amounts in the same statements (a hold's capture).

    Raises:
        EntryUnbalanced: the legs do not net to zero per currency.
        InsufficientFunds: a debit would break its account's floor (``details['account']``).
        LedgerAccountNotFound: a leg names no account in its currency.
    """
    legs = list(legs)
    check_balanced(legs)
    entry_id = new_id()
    # One balance update per account, however many legs it has (a transfer and its fee):
    # each update is a new row version.
    net: dict[tuple[str, str], int] = {}
    count: dict[tuple[str, str], int] = {}
    for leg in legs:
        key = leg.account, leg.currency
        net[key] = net.get(key, 0) + leg.amount_minor
        count[key] = count.get(key, 0) + 1
    to_release = dict(release_held or {})
    # Tracked accounts are updated in code order, so two entries over the same accounts take
    # their row locks in the same order and cannot deadlock.
    moves = [
        repository.Move(
            code=account,
            currency=currency,
            delta=net[account, currency],
            held_delta=-to_release.get(account, 0),
            check_floor=check_floor and net[account, currency] < 0,
            postings=count[account, currency],
        )
        for account, currency in sorted(net)
        if (account, currency) not in _UNTRACKED
    ]
    moved_rows = await repository.move_many(session, moves, now=now)
    after: dict[str, Balance] = {}
    moved: dict[tuple[str, str], tuple[int, int]] = {}  # (account, currency) -> (seq, balance)
    for move in moves:
        row = moved_rows.get(move.code)
        if row is None:
            await _explain_refusal(session, move.code, move.currency)
            continue
        balance, held, posting_count = row
        moved[move.code, move.currency] = (posting_count - move.postings, balance - move.delta)
        after[move.code] = Balance(move.code, move.currency, balance, held)
    postings: list[dict[str, Any]] = []
    for leg in legs:
        seq = balance_after = None
        if (leg.account, leg.currency) in moved:
            # Number this account's legs one after another, with the balance after each.
            previous_seq, previous_balance = moved[leg.account, leg.currency]
            seq, balance_after = previous_seq + 1, previous_balance + leg.amount_minor
            moved[leg.account, leg.currency] = (seq, balance_after)
        postings.append(
            {
                "id": new_id(),
                "account_code": leg.account,
                "amount_minor": leg.amount_minor,
                "currency": leg.currency,
                "account_seq": seq,
                "balance_after_minor": balance_after,
                "narrative": (leg.narrative or description)[:200],
                "counterparty": leg.counterparty[:200] if leg.counterparty else None,
            }
        )
    entry = {
        "id": entry_id,
        "txn_id": txn_id,
        "kind": kind,
        "description": description[:200],
        "value_date": value_date,
        "booked_at": now,
        "reverses_id": reverses,
        "reversed_by_id": None,
    }
    await repository.book(session, entry, postings)
    return PostedEntry(entry_id, after)


async def _explain_refusal(session: AsyncSession, account: str, currency: str) -> None:
    """Work out why an account's conditional update touched no row; return if the account is
    simply untracked (a general-ledger account), raise otherwise."""
    found = (await repository.tracked_accounts(session, [account])).get(account)
    if found is None or found.currency != currency:
        raise LedgerAccountNotFound(
            f"no ledger account {account} in {currency}", details={"account": account}
        )
    if not found.tracked:
        _UNTRACKED.add((account, currency))
        return
    raise InsufficientFunds(
        "the account's available balance is not enough", details={"account": account}
    )


async def reverse_entry(
    session: AsyncSession,
    *,
    entry_id: uuid.UUID,
    now: dt.datetime,
    value_date: dt.date,
    txn_id: uuid.UUID | None = None,
    description: str = "Reversal",
) -> PostedEntry | None:
    """Post the mirror image of an entry; None if it was already reversed.

    A reversal restores what the entry took, so it does not check floors: the database's
    overdraft constraint still stands behind it.
    """
    postings = await repository.entry_postings(session, entry_id)
    if not postings:
        raise LedgerAccountNotFound(f"no entry {entry_id}", details={"entry": str(entry_id)})
    reversal_id = new_id()
    if not await repository.mark_reversed(session, entry_id, reversal_id):
        return None
    legs = [
        Leg(p.account_code, -p.amount_minor, p.currency, f"Reversal: {p.narrative}", p.counterparty)
        for p in postings
    ]
    return await post_entry(
        session,
        legs=legs,
        kind="reversal",
        description=description,
        now=now,
        value_date=value_date,
        txn_id=txn_id,
        check_floor=False,
        reverses=entry_id,
    )


async def balances(session: AsyncSession, codes: Sequence[str]) -> dict[str, Balance]:
    """Return the balances of the named accounts (those that exist)."""
    rows = await repository.balances(session, codes)
    return {code: Balance(code, currency, ledger, held) for code, currency, ledger, held in rows}


async def statement(
    session: AsyncSession,
    *,
    account: str,
    currency: str,
    start: dt.date,
    end: dt.date,
    page: int,
    page_size: int,
) -> StatementPage:
    """Return one page of an account's postings between two value dates, with running
    balances and the balances at both ends of the range."""
    rows = await repository.statement_lines(
        session, account, start, end, limit=page_size + 1, offset=(page - 1) * page_size
    )
    opening, closing = await repository.statement_opening(session, account, start, end)
    lines = [
        StatementLine(
            entry_id=row.entry_id,
            txn_id=row.txn_id,
            seq=int(row.account_seq),
            booked_at=row.booked_at,
            value_date=row.value_date,
            narrative=row.narrative,
            counterparty=row.counterparty,
            amount_minor=int(row.amount_minor),
            balance_after_minor=int(row.balance_after_minor),
        )
        for row in rows[:page_size]
    ]
    return StatementPage(account, currency, opening, closing, lines, len(rows) > page_size)


async def place_hold(
    session: AsyncSession,
    *,
    account: str,
    amount: Money,
    reference: str,
    now: dt.datetime,
    txn_id: uuid.UUID | None = None,
    expires_at: dt.datetime | None = None,
) -> uuid.UUID:
    """Reserve ``amount`` on a tracked account; return the hold's id.

    Raises:
        InsufficientFunds: the available balance is not enough.
        LedgerAccountNotFound: no such account in that currency.
    """
    _positive(amount)
    row = await repository.move_held(
        session, code=account, currency=amount.currency, held_delta=amount.minor, now=now
    )
    if row is None:
        await _explain_refusal(session, account, amount.currency)
        raise LedgerAccountNotFound(f"{account} cannot hold funds", details={"account": account})
    hold_id = new_id()
    await repository.insert_hold(
        session,
        {
            "id": hold_id,
            "account_code": account,
            "amount_minor": amount.minor,
            "currency": amount.currency,
            "status": "active",
            "captured_minor": 0,
            "reference": reference[:200],
            "txn_id": txn_id,
            "capture_entry_id": None,
            "created_at": now,
            "expires_at": expires_at,
            "closed_at": None,
        },
    )
    return hold_id


async def release_hold(
    session: AsyncSession, *, account: str, hold_id: uuid.UUID, now: dt.datetime
) -> None:
    """Give back what an active hold reserved.

    Raises:
        HoldNotFound: no such hold on this account.
        HoldNotActive: the hold was already captured or released.
    """
    hold = await _active_hold(session, account, hold_id)
    await repository.move_held(
        session, code=account, currency=hold.currency, held_delta=-hold.amount_minor, now=now
    )
    await repository.set_hold_status(
        session, hold_id, status="released", captured_minor=0, capture_entry_id=None, now=now
    )


async def capture_hold(
    session: AsyncSession,
    *,
    account: str,
    hold_id: uuid.UUID,
    amount: Money,
    counter_account: str,
    narrative: str,
    now: dt.datetime,
    value_date: dt.date,
    txn_id: uuid.UUID | None = None,
) -> PostedEntry:
    """Post up to the held amount from ``account`` to ``counter_account`` and free the hold
    (an unused remainder goes back to the available balance).

    Raises:
        HoldNotFound, HoldNotActive: as for ``release_hold``.
        InvalidAmount: the amount is not positive or exceeds the hold.
    """
    hold = await _active_hold(session, account, hold_id)
    _positive(amount)
    if amount.currency != hold.currency or amount.minor > hold.amount_minor:
        raise InvalidAmount("a capture cannot exceed its hold", details={"hold": str(hold_id)})
    posted = await post_entry(
        session,
        legs=[
            Leg(account, -amount.minor, amount.currency, narrative, counter_account),
            Leg(counter_account, amount.minor, amount.currency, narrative, account),
        ],
        kind="hold_capture",
        description=narrative,
        now=now,
        value_date=value_date,
        txn_id=txn_id,
        check_floor=False,  # the hold already reserved these funds
        release_held={account: hold.amount_minor},
    )
    await repository.set_hold_status(
        session,
        hold_id,
        status="captured",
        captured_minor=amount.minor,
        capture_entry_id=posted.entry_id,
        now=now,
    )
    return posted


def is_gl_code(code: str) -> bool:
    """Tell whether ``code`` names a general-ledger account (see ``gl_code``)."""
    return code.startswith("GL-")


async def hold_debits(
    session: AsyncSession,
    *,
    legs: Sequence[Leg],
    reference: str,
    now: dt.datetime,
    txn_id: uuid.UUID | None = None,
) -> dict[str, str]:
    """Hold on each customer account what ``legs`` would debit from it, instead of posting
    them (a transaction parked for review); return account -> hold id.

    Raises:
        InsufficientFunds: an account cannot cover its debits.
    """
    debits: dict[tuple[str, str], int] = {}
    for leg in legs:
        if leg.amount_minor < 0 and not is_gl_code(leg.account):
            key = leg.account, leg.currency
            debits[key] = debits.get(key, 0) - leg.amount_minor
    holds: dict[str, str] = {}
    for (account, currency), minor in sorted(debits.items()):  # code order: no deadlock
        hold_id = await place_hold(
            session,
            account=account,
            amount=Money(minor, currency),
            reference=reference,
            now=now,
            txn_id=txn_id,
        )
        holds[account] = str(hold_id)
    return holds


async def post_held(
    session: AsyncSession,
    *,
    legs: Sequence[Leg],
    holds: Mapping[str, str],
    kind: str,
    description: str,
    now: dt.datetime,
    value_date: dt.date,
    txn_id: uuid.UUID | None = None,
) -> PostedEntry:
    """Post the entry whose debits ``hold_debits`` held, freeing the holds in the same
    statements (the funds were reserved when the holds were placed).

    Raises:
        HoldNotFound, HoldNotActive: a hold was already released or captured.
    """
    release: dict[str, int] = {}
    for account, hold_id in sorted(holds.items()):
        hold = await _active_hold(session, account, uuid.UUID(hold_id))
        release[account] = hold.amount_minor
    posted = await post_entry(
        session,
        legs=legs,
        kind=kind,
        description=description,
        now=now,
        value_date=value_date,
        txn_id=txn_id,
        check_floor=False,
        release_held=release,
    )
    for account, hold_id in holds.items():
        await repository.set_hold_status(
            session,
            uuid.UUID(hold_id),
            status="captured",
            captured_minor=release[account],
            capture_entry_id=posted.entry_id,
            now=now,
        )
    return posted


async def release_holds(
    session: AsyncSession, *, holds: Mapping[str, str], now: dt.datetime
) -> None:
    """Give back what ``hold_debits`` held; holds no longer active are left alone."""
    for account, hold_id in sorted(holds.items()):
        hold = await repository.lock_hold(session, uuid.UUID(hold_id), account)
        if hold is not None and hold.status == "active":
            await release_hold(session, account=account, hold_id=hold.id, now=now)


async def _active_hold(session: AsyncSession, account: str, hold_id: uuid.UUID) -> Any:
    hold = await repository.lock_hold(session, hold_id, account)
    if hold is None:
        raise HoldNotFound(f"no hold {hold_id} on {account}", details={"hold": str(hold_id)})
    if hold.status != "active":
        raise HoldNotActive(f"the hold is {hold.status}", details={"hold": str(hold_id)})
    return hold


def _positive(amount: Money) -> None:
    if amount.minor <= 0:
        raise InvalidAmount("the amount must be positive", details={"field": "amount"})


# Each query returns rows that break an invariant; an empty result everywhere is a healthy
# ledger. They are for `channelhub ledger verify` and the tests, not for the hot path.
_CHECKS = {
    "postings of a currency do not sum to zero": """
        SELECT currency, SUM(amount_minor) FROM ledger_postings
        GROUP BY currency HAVING SUM(amount_minor) <> 0""",
    "an entry does not balance": """
        SELECT entry_id, currency, SUM(amount_minor) FROM ledger_postings
        GROUP BY entry_id, currency HAVING SUM(amount_minor) <> 0""",
    "a tracked balance differs from its postings": """
        SELECT a.code, a.balance_minor, COALESCE(SUM(p.amount_minor), 0)
        FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_code = a.code
        WHERE a.tracked GROUP BY a.code, a.balance_minor
        HAVING a.balance_minor <> COALESCE(SUM(p.amount_minor), 0)""",
    "a posting count differs from the postings": """
        SELECT a.code, a.posting_count, COUNT(p.id), MAX(p.account_seq)
        FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_code = a.code
        WHERE a.tracked GROUP BY a.code, a.posting_count
        HAVING a.posting_count <> COUNT(p.id)
            OR a.posting_count <> COALESCE(MAX(p.account_seq), 0)""",
    "a held amount differs from the active holds": """
        SELECT a.code, a.held_minor, COALESCE(SUM(h.amount_minor), 0)
        FROM ledger_accounts a LEFT JOIN ledger_holds h
            ON h.account_code = a.code AND h.status = 'active'
        WHERE a.tracked GROUP BY a.code, a.held_minor
        HAVING a.held_minor <> COALESCE(SUM(h.amount_minor), 0)""",
    "an available balance is below its floor": """
        SELECT code, balance_minor, held_minor, floor_minor FROM ledger_accounts
        WHERE tracked AND floor_minor IS NOT NULL AND floor_minor <= 0
          AND balance_minor - held_minor < floor_minor""",
}


async def verify(session: AsyncSession) -> list[str]:
    """Check every ledger invariant over the whole ledger; return one line per violation."""
    problems: list[str] = []
    for what, sql in _CHECKS.items():
        rows = (await session.execute(text(sql))).all()
        problems.extend(f"{what}: {', '.join(str(value) for value in row)}" for row in rows)
    return problems
