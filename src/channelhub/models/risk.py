"""Risk: rules, deny and watch lists, the activity velocity features count, what each
customer has been seen with, the decisions taken and the review queue."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = [
    "RISK_OUTCOMES",
    "RiskActivity",
    "RiskDecision",
    "RiskListEntry",
    "RiskReview",
    "RiskRule",
    "RiskSighting",
]

#: Mildest first: the severest outcome of the rules that fired is the decision.
RISK_OUTCOMES = ("allow", "challenge", "review", "deny")
_OUTCOME_SQL = "('allow', 'challenge', 'review', 'deny')"


class RiskRule(Base):
    """One version of a rule: a CEL condition, the outcome and score it yields when true.

    ``mode`` is ``active`` (enforced), ``shadow`` (evaluated and recorded, never enforced) or
    ``retired``; at most one version of a name is active.
    """

    __tablename__ = "risk_rules"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint(f"outcome IN {_OUTCOME_SQL}", name="outcome_known"),
        CheckConstraint(f"on_error IN {_OUTCOME_SQL}", name="on_error_known"),
        CheckConstraint("mode IN ('active', 'shadow', 'retired')", name="mode_known"),
        CheckConstraint("score >= 0 AND score <= 1000", name="score_in_range"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    description: Mapped[str] = mapped_column(String(500))
    expression: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    score: Mapped[int]
    #: What the rule counts as when it fails at run time (a missing field, a division by 0).
    on_error: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class RiskListEntry(Base):
    """A value on the deny or the watch list: an account, a device, an address, a name."""

    __tablename__ = "risk_lists"
    __table_args__ = (
        UniqueConstraint("list_name", "kind", "value"),
        CheckConstraint("list_name IN ('deny', 'watch')", name="list_known"),
        CheckConstraint(
            "kind IN ('account', 'device', 'address', 'beneficiary_name')", name="kind_known"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    list_name: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    #: Names are kept case-folded with spaces squeezed, so that lookups are exact.
    value: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class RiskActivity(Base):
    """One evaluated money movement, as the velocity features count it."""

    __tablename__ = "risk_activity"
    __table_args__ = (
        # The customer's velocity lookups read the primary key's (customer_id, at) prefix.
        PrimaryKeyConstraint("customer_id", "at", "id"),
        # A party the activity lacks is NULL, which no lookup matches: such rows are left out
        # of its index (a transfer without a device or an address writes two entries less).
        *(
            Index(
                f"ix_risk_activity_{column}_at",
                column,
                "at",
                postgresql_where=text(f"{column} IS NOT NULL"),
                sqlite_where=text(f"{column} IS NOT NULL"),
            )
            for column in ("device", "beneficiary", "address")
        ),
    )

    id: Mapped[uuid.UUID]
    txn_id: Mapped[uuid.UUID]
    customer_id: Mapped[str] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(128))
    beneficiary: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[dt.datetime]


class RiskSighting(Base):
    """The first time a customer was seen with a beneficiary or a device."""

    __tablename__ = "risk_sightings"
    __table_args__ = (CheckConstraint("kind IN ('beneficiary', 'device')", name="kind_known"),)

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen: Mapped[dt.datetime]


class RiskDecision(Base):
    """What the risk engine decided for a transaction, and why: the rules that fired (shadow
    ones included), their scores, the features it saw, the rules that failed."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        CheckConstraint(f"outcome IN {_OUTCOME_SQL}", name="outcome_known"),
        Index("ix_risk_decisions_txn_id", "txn_id"),
        # No index on ``at`` (migration 0008): the id is a UUIDv7, in the order of ``at``.
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    txn_id: Mapped[uuid.UUID]
    service_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    score: Mapped[int]
    #: [{"rule", "version", "outcome", "score", "shadow", "error"?}]
    fired: Mapped[list[Any]]
    features: Mapped[dict[str, Any]]
    #: Why the engine could not decide (``unavailable``, ``timeout``) and what the service's
    #: failure mode made of it; null when it decided.
    failure: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[dt.datetime]


class RiskReview(Base):
    """A transaction whose money is held until a staff member approves or rejects it."""

    __tablename__ = "risk_reviews"
    __table_args__ = (
        UniqueConstraint("txn_id"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
        CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)", name="decided_when_not_pending"
        ),
        Index("ix_risk_reviews_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    txn_id: Mapped[uuid.UUID]
    decision_id: Mapped[uuid.UUID]
    service_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))
