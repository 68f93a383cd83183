"""Cards count wrong PINs: the third wrong PIN in a row blocks the card; a right one resets
the count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(
            sa.Column("pin_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_check_constraint("pin_failures_not_negative", "pin_failures >= 0")


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_constraint(op.f("ck_cards_pin_failures_not_negative"), type_="check")
        batch.drop_column("pin_failures")
