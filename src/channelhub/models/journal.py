"""The transaction journal: one row per invocation of a service through a channel."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["TERMINAL_STATUSES", "TRANSACTION_STATUSES", "UNFINISHED", "JournalEntry"]

TRANSACTION_STATUSES = (
    "received",
    "processing",
    "succeeded",
    "failed",
    "reversed",
    "in_doubt",
    "in_review",
)
TERMINAL_STATUSES = ("succeeded", "failed", "reversed")
#: The rows the recovery worker looks at, as SQL: queries use this very text, with no bound
#: parameters, so that the planner can always use the partial index built on it.
UNFINISHED = "status IN ('processing', 'in_doubt')"


class JournalEntry(Base):
    """A transaction as the journal records it, from its opening to its terminal state."""

    __tablename__ = "transactions"
    __table_args__ = (
        # The idempotency guarantee: one transaction per channel and key (NULL keys never clash).
        UniqueConstraint("channel", "idempotency_key"),
        CheckConstraint(
            "status IN ('received', 'processing', 'succeeded', 'failed', 'reversed', 'in_doubt',"
            " 'in_review')",
            name="status_known",
        ),
        CheckConstraint("(amount_minor IS NULL) = (currency IS NULL)", name="amount_has_currency"),
        CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint(
            "(status IN ('succeeded', 'failed', 'reversed')) = (finished_at IS NOT NULL)",
            name="finished_when_terminal",
        ),
        # The recovery worker's query: unfinished transactions whose lease ran out.
        # Only unfinished rows, the recovery worker's: finished ones never enter it.
        Index(
            "ix_transactions_unfinished",
            "status",
            "lease_expires_at",
            postgresql_where=text(UNFINISHED),
            sqlite_where=text(UNFINISHED),
        ),
        Index("ix_transactions_service_created", "service_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[str] = mapped_column(String(128))
    service_version: Mapped[int]
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(512))
    # On PostgreSQL both are compressed with LZ4 when a row outgrows 2 KB (migration 0009).
    response: Mapped[dict[str, Any] | None]
    step_log: Mapped[list[Any]]
    node_id: Mapped[str] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    duration_ms: Mapped[int | None]
