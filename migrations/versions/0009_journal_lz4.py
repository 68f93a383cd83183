"""The journal's step log and response are compressed with LZ4 (PostgreSQL) instead of
PostgreSQL's own pglz.

A row over about 2 KB has its largest values compressed before it is stored. A transfer with
limits and risk writes a step log just over that size, and pglz spent about 2 % of the
database's CPU on it; LZ4 compresses as well for a tenth of the time, and reads back faster.
Only new values are compressed so; the rows there are stay as they are (nothing is rewritten,
the lock is held a moment). A server built without LZ4 keeps pglz.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("step_log", "response")


def _compress_with(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite compresses nothing
    columns = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in _COLUMNS)
    # A server built without LZ4 refuses the method (feature_not_supported): pglz stays.
    op.execute(
        f"""
        DO $$
        BEGIN
            ALTER TABLE transactions {columns};
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'this server has no LZ4: the journal keeps pglz';
        END
        $$
        """
    )


def upgrade() -> None:
    _compress_with("lz4")


def downgrade() -> None:
    _compress_with("pglz")
