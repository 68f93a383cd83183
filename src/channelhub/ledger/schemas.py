"""The shapes at the ledger's edge: legs to post, balances, statements."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

__all__ = ["Balance", "Leg", "PostedEntry", "StatementLine", "StatementPage"]


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry: a signed amount (credit positive) on a ledger account."""

    account: str
    amount_minor: int
    currency: str
    narrative: str = ""
    counterparty: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balances: ledger (all postings) and available (less holds)."""

    account: str
    currency: str
    ledger_minor: int
    held_minor: int

    @property
    def available_minor(self) -> int:
        """Return what may be spent now: the ledger balance less what holds reserve."""
        return self.ledger_minor - self.held_minor


@dataclass(frozen=True, slots=True)
class PostedEntry:
    """A committed entry and the balances of its tracked accounts right after it."""

    entry_id: uuid.UUID
    balances: dict[str, Balance]


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One posting on a statement, with the running balance after it."""

    entry_id: uuid.UUID
    txn_id: uuid.UUID | None
    seq: int
    booked_at: dt.datetime
    value_date: dt.date
    narrative: str
    counterparty: str | None
    amount_minor: int
    balance_after_minor: int


@dataclass(frozen=True, slots=True)
class StatementPage:
    """A page of an account's statement over a date range."""

    account: str
    currency: str
    opening_minor: int
    closing_minor: int
    lines: list[StatementLine]
    has_more: bool
