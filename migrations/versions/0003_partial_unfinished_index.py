"""Index only unfinished transactions for the recovery worker.

Almost every transaction is written once, already finished: a partial index over the
unfinished ones stays tiny and costs those inserts nothing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNFINISHED = sa.text("status IN ('processing', 'in_doubt')")


def upgrade() -> None:
    op.drop_index("ix_transactions_unfinished", table_name="transactions")
    op.create_index(
        "ix_transactions_unfinished",
        "transactions",
        ["status", "lease_expires_at"],
        postgresql_where=_UNFINISHED,
        sqlite_where=_UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_unfinished", table_name="transactions")
    op.create_index("ix_transactions_unfinished", "transactions", ["status", "lease_expires_at"])
