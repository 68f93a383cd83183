"""Limits: the ceilings on what moves through a service group, and what each period used."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["LIMIT_LEVELS", "LIMIT_PERIODS", "LimitDefinition", "LimitUsage"]

#: Whom a limit targets: everyone, one channel, a customer segment, one customer, one account,
#: one card.
LIMIT_LEVELS = ("global", "channel", "segment", "customer", "account", "card")
LIMIT_PERIODS = ("transaction", "daily", "monthly")


class LimitDefinition(Base):
    """A ceiling in amount and/or count on a service group, per period, for a subject.

    ``owner`` is ``bank`` for the bank's ceilings (changed through four-eyes) and ``customer``
    for the lower ones a customer set on themself, which never exceed the bank's.
    """

    __tablename__ = "limit_definitions"
    __table_args__ = (
        UniqueConstraint(
            "owner", "level", "subject", "service_group", "channel", "currency", "period"
        ),
        CheckConstraint(
            "level IN ('global', 'channel', 'segment', 'customer', 'account', 'card')",
            name="level_known",
        ),
        CheckConstraint("period IN ('transaction', 'daily', 'monthly')", name="period_known"),
        CheckConstraint("owner IN ('bank', 'customer')", name="owner_known"),
        CheckConstraint("status IN ('active', 'retired')", name="status_known"),
        CheckConstraint(
            "max_amount_minor IS NOT NULL OR max_count IS NOT NULL", name="has_a_ceiling"
        ),
        CheckConstraint(
            "max_amount_minor IS NULL OR max_amount_minor >= 0", name="amount_not_negative"
        ),
        CheckConstraint("max_count IS NULL OR max_count >= 0", name="count_not_negative"),
        CheckConstraint(
            "(level IN ('global', 'channel')) = (subject = '')", name="subject_only_when_targeted"
        ),
        CheckConstraint("level <> 'channel' OR channel <> 'all'", name="channel_named"),
        CheckConstraint("owner = 'bank' OR level = 'customer'", name="customer_owns_own"),
        Index("ix_limit_definitions_subject", "level", "subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    #: '' for global and channel limits; the segment, customer id, account number or card id.
    subject: Mapped[str] = mapped_column(String(64))
    #: A group such as ``transfer.outgoing``, or one service id.
    service_group: Mapped[str] = mapped_column(String(128))
    #: ``all``, or one channel kind (mobile, web, teller, atm, pos, partner, interbank).
    channel: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    period: Mapped[str] = mapped_column(String(16))
    max_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_count: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    changed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class LimitUsage(Base):
    """What one subject used of one limit in one period (a day or a month, bank time)."""

    __tablename__ = "limit_usage"
    __table_args__ = (
        CheckConstraint("used_minor >= 0", name="used_not_negative"),
        CheckConstraint("used_count >= 0", name="count_not_negative"),
    )

    limit_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: Whose usage: the customer id, or the account number or card id of such limits.
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``2026-12-01`` for a daily limit, ``2026-12`` for a monthly one.
    bucket: Mapped[str] = mapped_column(String(10), primary_key=True)
    used_minor: Mapped[int] = mapped_column(BigInteger)
    used_count: Mapped[int]
    #: The ceiling in force at the last charge: the conditional update checks against it.
    cap_minor: Mapped[int | None] = mapped_column(BigInteger)
    cap_count: Mapped[int | None]
    #: The first day no longer in the period: from that day on the purge deletes the row.
    #: Not indexed: the hourly purge scans, where an index would be written by every booking.
    expires_on: Mapped[dt.date]
