"""Risk activity: the device, beneficiary and address indexes leave out the rows without
one. A NULL party matches no lookup, so those entries only cost every transfer a write.

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

COLUMNS = ("device", "beneficiary", "address")


def upgrade() -> None:
    for column in COLUMNS:
        name = f"ix_risk_activity_{column}_at"
        op.drop_index(name, table_name="risk_activity")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            name,
            "risk_activity",
            [column, "at"],
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in COLUMNS:
        name = f"ix_risk_activity_{column}_at"
        op.drop_index(name, table_name="risk_activity")
        op.create_index(name, "risk_activity", [column, "at"])
