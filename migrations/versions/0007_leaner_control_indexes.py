"""Fewer index writes per money movement, on the tables limits and risk control write to.

- risk_activity: the primary key is (customer_id, at, id), which serves the customer's
  velocity lookups, so the separate (customer_id, at) index goes; the device, beneficiary and
  address indexes leave out the rows without one (a NULL party matches no lookup).
- limit_usage: the expires_on index goes: nothing reads by it, and every booking wrote it.

On PostgreSQL the new primary key and indexes are built with risk_activity locked: on a large
database, upgrade in a quiet hour (the table grows with every money movement).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIES = ("device", "beneficiary", "address")


def upgrade() -> None:
    # The secondary indexes first: SQLite rebuilds the table to change its primary key.
    op.drop_index("ix_risk_activity_customer_at", table_name="risk_activity")
    for column in PARTIES:
        op.drop_index(f"ix_risk_activity_{column}_at", table_name="risk_activity")
    with op.batch_alter_table("risk_activity") as batch:
        batch.drop_constraint("pk_risk_activity", type_="primary")
        batch.create_primary_key("pk_risk_activity", ["customer_id", "at", "id"])
    for column in PARTIES:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_risk_activity_{column}_at",
            "risk_activity",
            [column, "at"],
            postgresql_where=where,
            sqlite_where=where,
        )
    op.drop_index("ix_limit_usage_expires_on", table_name="limit_usage")


def downgrade() -> None:
    op.create_index("ix_limit_usage_expires_on", "limit_usage", ["expires_on"])
    for column in PARTIES:
        op.drop_index(f"ix_risk_activity_{column}_at", table_name="risk_activity")
    with op.batch_alter_table("risk_activity") as batch:
        batch.drop_constraint("pk_risk_activity", type_="primary")
        batch.create_primary_key("pk_risk_activity", ["id"])
    op.create_index("ix_risk_activity_customer_at", "risk_activity", ["customer_id", "at"])
    for column in PARTIES:
        op.create_index(f"ix_risk_activity_{column}_at", "risk_activity", [column, "at"])
