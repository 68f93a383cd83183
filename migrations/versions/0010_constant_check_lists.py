"""CHECK constraints that name their allowed values (``status IN ('a', 'b')``) compare with a
constant list on PostgreSQL.

PostgreSQL keeps ``status IN ('a', 'b')`` as ``status = ANY (ARRAY['a'::varchar,
'b'::varchar]::text[])``: an array built from its elements, which every statement that writes
the table builds anew before its first row (measured, one insert into a one-column table:
~78 us with such a check, ~42 us with the same check on a constant array, ~34 us with none).
A transfer writes five such constraints (the journal's two, the ledger account's, the risk
sighting's and decision's), some 0.15 ms of the database's CPU.
Each is re-created reading ``status = ANY ('{a,b}'::text[])``, which allows and refuses the
same values. SQLite keeps the models' ``IN`` lists, which cost it nothing of the kind.

The new constraint is added NOT VALID and then validated: the validation reads the table once
(under the lock the swap takes), and cannot fail, since the old constraint held for every row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only values that need no quoting in an array literal (no quote, comma, brace, backslash or
# space); a constraint with any other value keeps its list as it is.
_VALUE = r"[^'\\{},\"\s]+"
# How PostgreSQL prints ``column IN ('a', 'b')`` of a varchar column, and the constant form.
_BUILT = re.compile(
    rf"\((\w+)\)::text = ANY \(\(ARRAY\[((?:'{_VALUE}'::character varying(?:, )?)+)\]\)::text\[\]\)"
)
_CONSTANT = re.compile(rf"\((\w+)\)::text = ANY \('\{{((?:{_VALUE},?)+)\}}'::text\[\]\)")


def _to_constant(match: re.Match[str]) -> str:
    values = re.findall(rf"'({_VALUE})'", match.group(2))
    return f"({match.group(1)})::text = ANY ('{{{','.join(values)}}}'::text[])"


def _to_list(match: re.Match[str]) -> str:
    values = ", ".join(f"'{value}'" for value in match.group(2).split(","))
    return f"({match.group(1)} IN ({values}))"


def _rewrite(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite evaluates an IN list as it is
    checks = bind.execute(
        text(
            """
            SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE c.contype = 'c' AND c.conrelid <> 0 AND n.nspname = current_schema()
            ORDER BY 1, 2
            """
        )
    ).all()
    for table, name, definition in checks:
        rewritten = pattern.sub(replace, definition)
        if rewritten == definition:
            continue
        # Names and definitions come from the catalog (quoted by it), not from any input.
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {name}, "
            f"ADD CONSTRAINT {name} {rewritten} NOT VALID"
        )
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def upgrade() -> None:
    _rewrite(_BUILT, _to_constant)


def downgrade() -> None:
    _rewrite(_CONSTANT, _to_list)
