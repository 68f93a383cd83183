"""Customer accounts and the debit cards linked to them, and the counters that number them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["Account", "Card", "NumberSequence"]


class Account(Base):
    """A customer's account, as the customer-account-user center knows it.

    Its money lives in the ledger (``ledger_accounts``, same number); this row says whose it
    is, under which product, and whether it may be used.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'dormant', 'frozen', 'closed')", name="status_known"),
        CheckConstraint("(status = 'closed') = (closed_on IS NOT NULL)", name="closed_has_date"),
        Index("ix_accounts_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: The business key: branch, serial and ISO 7064 MOD 97-10 check digits.
    number: Mapped[str] = mapped_column(String(34), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    product_code: Mapped[str] = mapped_column(ForeignKey("products.code"))
    currency: Mapped[str] = mapped_column(String(3))
    branch_code: Mapped[str] = mapped_column(ForeignKey("branches.code"))
    nickname: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    opened_on: Mapped[dt.date]
    closed_on: Mapped[dt.date | None]
    #: Term deposits: the rate fixed at opening (basis points a year) and the maturity date.
    interest_rate_bps: Mapped[int | None]
    maturity_on: Mapped[dt.date | None]
    #: Term deposits: the account the principal came from and goes back to.
    settlement_account: Mapped[str | None] = mapped_column(String(34))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Card(Base):
    """A debit card. Its number is kept only as a keyed hash and a masked form; its PIN only as
    a keyed one-way value (the same idea as a PIN verification value)."""

    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'blocked', 'lost')", name="status_known"),
        CheckConstraint("pin_failures >= 0", name="pin_failures_not_negative"),
        Index("ix_cards_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pan_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pan_masked: Mapped[str] = mapped_column(String(19))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    product_code: Mapped[str] = mapped_column(ForeignKey("products.code"))
    #: Month of expiry, "YYMM" as on the card and in ISO 8583 field 14.
    expiry: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    pin_verifier: Mapped[str] = mapped_column(String(64))
    #: Wrong PINs in a row; the third blocks the card, a right PIN resets it.
    pin_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    issued_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class NumberSequence(Base):
    """A named counter for business keys (customer, account and card numbers)."""

    __tablename__ = "number_sequences"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)
