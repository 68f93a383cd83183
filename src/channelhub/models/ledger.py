"""The built-in core ledger: ledger accounts, balanced entries, their postings, and holds.

Sign convention: a posting's amount is signed, credit positive, debit negative; an entry's
postings sum to zero in each currency. A customer account's balance is what the bank owes the
customer (positive); an asset such as branch cash shows a negative (debit) balance.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["Hold", "LedgerAccount", "LedgerEntry", "Posting"]


class LedgerAccount(Base):
    """An account of the ledger: a customer account (by its number) or a general-ledger account.

    ``tracked`` accounts keep their balance on this row, moved by conditional updates, with a
    per-account sequence on every posting. General-ledger accounts that every transfer touches
    (fee income, clearing) are not tracked: locking one row for each of them would serialise
    the whole bank. Their balance is the sum of their postings.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('customer', 'gl')", name="kind_known"),
        CheckConstraint("held_minor >= 0", name="held_not_negative"),
        # The overdraft floor, as a backstop of the conditional update that enforces it.
        CheckConstraint(
            "floor_minor IS NULL OR balance_minor - held_minor >= "
            "CASE WHEN floor_minor < 0 THEN floor_minor ELSE 0 END",
            name="within_overdraft",
        ),
        CheckConstraint("tracked OR (balance_minor = 0 AND held_minor = 0)", name="untracked_zero"),
        # Postings and holds name (code, currency): the database refuses a wrong-currency leg.
        UniqueConstraint("code", "currency"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: A customer account's number, or a general-ledger code such as ``GL-FEE-CNY``.
    code: Mapped[str] = mapped_column(String(34), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: For general-ledger accounts: cash, fee_income, interest_expense, clearing, suspense.
    gl_type: Mapped[str | None] = mapped_column(String(32))
    branch_code: Mapped[str | None] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    tracked: Mapped[bool]
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    held_minor: Mapped[int] = mapped_column(BigInteger)
    #: The lowest available balance a debit may leave; NULL for accounts without one.
    floor_minor: Mapped[int | None] = mapped_column(BigInteger)
    #: How many postings this account has had; each posting carries its number.
    posting_count: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class LedgerEntry(Base):
    """One balanced accounting event: a transfer, a fee, a deposit, a reversal ..."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_txn_id", "txn_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: The journal transaction that made it (none for seeds and batch jobs).
    txn_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(200))
    value_date: Mapped[dt.date]
    booked_at: Mapped[dt.datetime]
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entries.id"))
    reversed_by_id: Mapped[uuid.UUID | None]


class Posting(Base):
    """One leg of an entry: a signed amount on one ledger account."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="amount_not_zero"),
        CheckConstraint("(account_seq IS NULL) = (balance_after_minor IS NULL)", name="seq_pair"),
        # No two postings claim the same place in an account's history: a lost update would.
        UniqueConstraint("account_code", "account_seq"),
        ForeignKeyConstraint(
            ["account_code", "currency"], ["ledger_accounts.code", "ledger_accounts.currency"]
        ),
        Index("ix_ledger_postings_entry_id", "entry_id"),
        Index("ix_ledger_postings_statement", "account_code", "value_date", "account_seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_entries.id"))
    account_code: Mapped[str] = mapped_column(String(34))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: Tracked accounts only: the posting's place in the account's history and the balance after.
    account_seq: Mapped[int | None] = mapped_column(BigInteger)
    balance_after_minor: Mapped[int | None] = mapped_column(BigInteger)
    value_date: Mapped[dt.date]
    booked_at: Mapped[dt.datetime]
    narrative: Mapped[str] = mapped_column(String(200))
    counterparty: Mapped[str | None] = mapped_column(String(200))


class Hold(Base):
    """An amount reserved on an account (a card authorization): it reduces the available
    balance until it is captured (posted) or released."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('active', 'captured', 'released', 'expired')", name="status_known"
        ),
        CheckConstraint(
            "captured_minor >= 0 AND captured_minor <= amount_minor", name="capture_within"
        ),
        ForeignKeyConstraint(
            ["account_code", "currency"], ["ledger_accounts.code", "ledger_accounts.currency"]
        ),
        Index("ix_ledger_holds_account_status", "account_code", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_code: Mapped[str] = mapped_column(String(34))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    captured_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(200))
    txn_id: Mapped[uuid.UUID | None]
    capture_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entries.id"))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
