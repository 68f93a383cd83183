"""The risk decisions lose their index on ``at``: nothing reads by it, and it was the third
index every money movement appended to at its right-hand end (with the primary key and
``txn_id``), where concurrent inserts queue for one page. A decision's id is a UUIDv7, in
the order decisions are made: a time range is a range of the primary key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_risk_decisions_at", table_name="risk_decisions")


def downgrade() -> None:
    op.create_index("ix_risk_decisions_at", "risk_decisions", ["at"])
