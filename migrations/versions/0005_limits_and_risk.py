"""Limits and risk: limit definitions and usage, risk rules, lists, activity, sightings,
decisions and the review queue; a transaction may now wait ``in_review``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_OUTCOMES = "('allow', 'challenge', 'review', 'deny')"
_STATUSES = "('received', 'processing', 'succeeded', 'failed', 'reversed', 'in_doubt'{})"
_UNFINISHED = sa.text("status IN ('processing', 'in_doubt')")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _journal_statuses(extra: str) -> None:
    """Replace the journal's status CHECK; SQLite rebuilds the table to do it."""
    with op.batch_alter_table("transactions", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_transactions_status_known"), type_="check")
        batch.create_check_constraint("status_known", "status IN " + _STATUSES.format(extra))
    if op.get_bind().dialect.name == "sqlite":
        # The rebuilt table lost its partial index's WHERE clause: make it again.
        op.drop_index("ix_transactions_unfinished", table_name="transactions", if_exists=True)
        op.create_index(
            "ix_transactions_unfinished",
            "transactions",
            ["status", "lease_expires_at"],
            sqlite_where=_UNFINISHED,
        )


def upgrade() -> None:
    _journal_statuses(", 'in_review'")
    op.create_table(
        "limit_definitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("service_group", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("max_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("max_count", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "level IN ('global', 'channel', 'segment', 'customer', 'account', 'card')",
            name=op.f("ck_limit_definitions_level_known"),
        ),
        sa.CheckConstraint(
            "period IN ('transaction', 'daily', 'monthly')",
            name=op.f("ck_limit_definitions_period_known"),
        ),
        sa.CheckConstraint(
            "owner IN ('bank', 'customer')", name=op.f("ck_limit_definitions_owner_known")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'retired')", name=op.f("ck_limit_definitions_status_known")
        ),
        sa.CheckConstraint(
            "max_amount_minor IS NOT NULL OR max_count IS NOT NULL",
            name=op.f("ck_limit_definitions_has_a_ceiling"),
        ),
        sa.CheckConstraint(
            "max_amount_minor IS NULL OR max_amount_minor >= 0",
            name=op.f("ck_limit_definitions_amount_not_negative"),
        ),
        sa.CheckConstraint(
            "max_count IS NULL OR max_count >= 0",
            name=op.f("ck_limit_definitions_count_not_negative"),
        ),
        sa.CheckConstraint(
            "(level IN ('global', 'channel')) = (subject = '')",
            name=op.f("ck_limit_definitions_subject_only_when_targeted"),
        ),
        sa.CheckConstraint(
            "level <> 'channel' OR channel <> 'all'",
            name=op.f("ck_limit_definitions_channel_named"),
        ),
        sa.CheckConstraint(
            "owner = 'bank' OR level = 'customer'",
            name=op.f("ck_limit_definitions_customer_owns_own"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_definitions")),
        sa.UniqueConstraint(
            "owner",
            "level",
            "subject",
            "service_group",
            "channel",
            "currency",
            "period",
            name=op.f("uq_limit_definitions_owner"),
        ),
    )
    op.create_index("ix_limit_definitions_subject", "limit_definitions", ["level", "subject"])
    op.create_table(
        "limit_usage",
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=10), nullable=False),
        sa.Column("used_minor", sa.BigInteger(), nullable=False),
        sa.Column("used_count", sa.Integer(), nullable=False),
        sa.Column("cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("cap_count", sa.Integer(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.CheckConstraint("used_minor >= 0", name=op.f("ck_limit_usage_used_not_negative")),
        sa.CheckConstraint("used_count >= 0", name=op.f("ck_limit_usage_count_not_negative")),
        sa.PrimaryKeyConstraint("limit_id", "subject", "bucket", name=op.f("pk_limit_usage")),
    )
    op.create_index("ix_limit_usage_expires_on", "limit_usage", ["expires_on"])
    op.create_table(
        "risk_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("on_error", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(f"outcome IN {_OUTCOMES}", name=op.f("ck_risk_rules_outcome_known")),
        sa.CheckConstraint(f"on_error IN {_OUTCOMES}", name=op.f("ck_risk_rules_on_error_known")),
        sa.CheckConstraint(
            "mode IN ('active', 'shadow', 'retired')", name=op.f("ck_risk_rules_mode_known")
        ),
        sa.CheckConstraint(
            "score >= 0 AND score <= 1000", name=op.f("ck_risk_rules_score_in_range")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_risk_rules_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_rules")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_risk_rules_name")),
    )
    op.create_table(
        "risk_lists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("list_name", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.CheckConstraint("list_name IN ('deny', 'watch')", name=op.f("ck_risk_lists_list_known")),
        sa.CheckConstraint(
            "kind IN ('account', 'device', 'address', 'beneficiary_name')",
            name=op.f("ck_risk_lists_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_lists")),
        sa.UniqueConstraint("list_name", "kind", "value", name=op.f("uq_risk_lists_list_name")),
    )
    op.create_table(
        "risk_activity",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("txn_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=True),
        sa.Column("beneficiary", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_activity")),
    )
    for column in ("customer_id", "device", "beneficiary", "address"):
        short = column.removesuffix("_id")
        op.create_index(f"ix_risk_activity_{short}_at", "risk_activity", [column, "at"])
    op.create_table(
        "risk_sightings",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("first_seen", _time(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('beneficiary', 'device')", name=op.f("ck_risk_sightings_kind_known")
        ),
        sa.PrimaryKeyConstraint("customer_id", "kind", "value", name=op.f("pk_risk_sightings")),
    )
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("txn_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("fired", _json, nullable=False),
        sa.Column("features", _json, nullable=False),
        sa.Column("failure", sa.String(length=200), nullable=True),
        sa.Column("at", _time(), nullable=False),
        sa.CheckConstraint(f"outcome IN {_OUTCOMES}", name=op.f("ck_risk_decisions_outcome_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
    )
    op.create_index("ix_risk_decisions_txn_id", "risk_decisions", ["txn_id"])
    op.create_index("ix_risk_decisions_at", "risk_decisions", ["at"])
    op.create_table(
        "risk_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("txn_id", sa.Uuid(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", _time(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name=op.f("ck_risk_reviews_status_known"),
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)",
            name=op.f("ck_risk_reviews_decided_when_not_pending"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_reviews")),
        sa.UniqueConstraint("txn_id", name=op.f("uq_risk_reviews_txn_id")),
    )
    op.create_index("ix_risk_reviews_status_created", "risk_reviews", ["status", "created_at"])


def downgrade() -> None:
    for table in (
        "risk_reviews",
        "risk_decisions",
        "risk_sightings",
        "risk_activity",
        "risk_lists",
        "risk_rules",
        "limit_usage",
        "limit_definitions",
    ):
        op.drop_table(table)
    _journal_statuses("")
