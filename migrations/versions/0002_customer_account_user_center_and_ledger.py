"""The customer-account-user center, the product catalog and the built-in ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "branches",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_branches")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=34), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("gl_type", sa.String(length=32), nullable=True),
        sa.Column("branch_code", sa.String(length=8), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tracked", sa.Boolean(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("floor_minor", sa.BigInteger(), nullable=True),
        sa.Column("posting_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('customer', 'gl')", name=op.f("ck_ledger_accounts_kind_known")
        ),
        sa.CheckConstraint(
            "floor_minor IS NULL OR balance_minor - held_minor >= "
            "CASE WHEN floor_minor < 0 THEN floor_minor ELSE 0 END",
            name=op.f("ck_ledger_accounts_within_overdraft"),
        ),
        sa.CheckConstraint("held_minor >= 0", name=op.f("ck_ledger_accounts_held_not_negative")),
        sa.CheckConstraint(
            "tracked OR (balance_minor = 0 AND held_minor = 0)",
            name=op.f("ck_ledger_accounts_untracked_zero"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", "currency", name=op.f("uq_ledger_accounts_code_currency")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("txn_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("booked_at", _time(), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("reversed_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_txn_id", "ledger_entries", ["txn_id"])

    op.create_table(
        "number_sequences",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_number_sequences")),
    )
    op.create_table(
        "products",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("parameters", _json, nullable=False),
        sa.Column("eligibility", _json, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'retired')", name=op.f("ck_products_status_known")
        ),
        sa.CheckConstraint(
            "type IN ('current', 'savings', 'term_deposit', 'loan', 'debit_card')",
            name=op.f("ck_products_type_known"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name=op.f("ck_products_validity_ordered")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_products")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id_type", sa.String(length=32), nullable=False),
        sa.Column("id_number", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("kyc_level", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("risk_rating", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("home_branch", sa.String(length=8), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint("kind IN ('person', 'company')", name=op.f("ck_customers_kind_known")),
        sa.CheckConstraint(
            "risk_rating IN ('low', 'medium', 'high')", name=op.f("ck_customers_risk_rating_known")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'frozen', 'closed')", name=op.f("ck_customers_status_known")
        ),
        sa.CheckConstraint("kyc_level BETWEEN 0 AND 3", name=op.f("ck_customers_kyc_level_range")),
        sa.ForeignKeyConstraint(
            ["home_branch"], ["branches.code"], name=op.f("fk_customers_home_branch_branches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("number", name=op.f("uq_customers_number")),
    )
    op.create_index("ix_customers_id_document", "customers", ["id_type", "id_number"])

    op.create_table(
        "ledger_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_code", sa.String(length=34), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("txn_id", sa.Uuid(), nullable=True),
        sa.Column("capture_entry_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("closed_at", _time(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'captured', 'released', 'expired')",
            name=op.f("ck_ledger_holds_status_known"),
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_ledger_holds_amount_positive")),
        sa.CheckConstraint(
            "captured_minor >= 0 AND captured_minor <= amount_minor",
            name=op.f("ck_ledger_holds_capture_within"),
        ),
        sa.ForeignKeyConstraint(
            ["account_code", "currency"],
            ["ledger_accounts.code", "ledger_accounts.currency"],
            name=op.f("fk_ledger_holds_account_code_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["capture_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_holds_capture_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_holds")),
    )
    op.create_index("ix_ledger_holds_account_status", "ledger_holds", ["account_code", "status"])

    op.create_table(
        "ledger_postings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("account_code", sa.String(length=34), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account_seq", sa.BigInteger(), nullable=True),
        sa.Column("balance_after_minor", sa.BigInteger(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("booked_at", _time(), nullable=False),
        sa.Column("narrative", sa.String(length=200), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "(account_seq IS NULL) = (balance_after_minor IS NULL)",
            name=op.f("ck_ledger_postings_seq_pair"),
        ),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_ledger_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_code", "currency"],
            ["ledger_accounts.code", "ledger_accounts.currency"],
            name=op.f("fk_ledger_postings_account_code_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_postings_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_postings")),
        sa.UniqueConstraint(
            "account_code", "account_seq", name=op.f("uq_ledger_postings_account_code_account_seq")
        ),
    )
    op.create_index("ix_ledger_postings_entry_id", "ledger_postings", ["entry_id"])
    op.create_index(
        "ix_ledger_postings_statement",
        "ledger_postings",
        ["account_code", "value_date", "account_seq"],
    )

    op.create_table(
        "staff",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("branch_code", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.CheckConstraint(
            "role IN ('teller', 'supervisor', 'operator', 'admin', 'auditor')",
            name=op.f("ck_staff_role_known"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'left')", name=op.f("ck_staff_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["branch_code"], ["branches.code"], name=op.f("fk_staff_branch_code_branches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_username")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=34), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("product_code", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("branch_code", sa.String(length=8), nullable=False),
        sa.Column("nickname", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("interest_rate_bps", sa.Integer(), nullable=True),
        sa.Column("maturity_on", sa.Date(), nullable=True),
        sa.Column("settlement_account", sa.String(length=34), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "(status = 'closed') = (closed_on IS NOT NULL)",
            name=op.f("ck_accounts_closed_has_date"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'dormant', 'frozen', 'closed')",
            name=op.f("ck_accounts_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["branch_code"], ["branches.code"], name=op.f("fk_accounts_branch_code_branches")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_accounts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["product_code"], ["products.code"], name=op.f("fk_accounts_product_code_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("number", name=op.f("uq_accounts_number")),
    )
    op.create_index("ix_accounts_customer_id", "accounts", ["customer_id"])

    op.create_table(
        "customer_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channels", _json, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'operator', 'viewer')", name=op.f("ck_customer_users_role_known")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'locked', 'disabled')",
            name=op.f("ck_customer_users_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_users_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_users")),
        sa.UniqueConstraint("username", name=op.f("uq_customer_users_username")),
    )
    op.create_index("ix_customer_users_customer_id", "customer_users", ["customer_id"])

    op.create_table(
        "cards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pan_hash", sa.String(length=64), nullable=False),
        sa.Column("pan_masked", sa.String(length=19), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("product_code", sa.String(length=32), nullable=False),
        sa.Column("expiry", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pin_verifier", sa.String(length=64), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'blocked', 'lost')", name=op.f("ck_cards_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_cards_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_cards_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["product_code"], ["products.code"], name=op.f("fk_cards_product_code_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
        sa.UniqueConstraint("pan_hash", name=op.f("uq_cards_pan_hash")),
    )
    op.create_index("ix_cards_customer_id", "cards", ["customer_id"])

    op.create_table(
        "user_devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("registered_at", _time(), nullable=False),
        sa.Column("last_seen_at", _time(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_user_devices_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["customer_users.id"], name=op.f("fk_user_devices_user_id_customer_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_devices")),
        sa.UniqueConstraint("user_id", "device_id", name=op.f("uq_user_devices_user_id_device_id")),
    )

    _ledger_guards()


# Postings are history: nobody rewrites one (a correction is a reversing entry).
_SQLITE_POSTINGS_APPEND_ONLY = """
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE ON ledger_postings
BEGIN
    SELECT RAISE(ABORT, 'ledger postings are append-only');
END
"""

_PG_POSTINGS_APPEND_ONLY = (
    """
CREATE FUNCTION ledger_postings_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger postings are append-only' USING ERRCODE = '23514';
END $$
""",
    """
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_postings_append_only()
""",
)

# Every entry balances per currency, checked by PostgreSQL at commit (a deferred constraint
# trigger, as django-hordak does): code that forgot a leg cannot commit. SQLite has no deferred
# triggers; there the ledger's own check, in the same transaction, is the guard.
_PG_ENTRY_BALANCES = (
    """
CREATE FUNCTION ledger_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_postings WHERE entry_id = NEW.entry_id
        GROUP BY currency HAVING SUM(amount_minor) <> 0
    ) THEN
        RAISE EXCEPTION 'ledger entry % does not balance', NEW.entry_id USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE CONSTRAINT TRIGGER ledger_entry_balances AFTER INSERT ON ledger_postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balances()
""",
)


def _ledger_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*_PG_POSTINGS_APPEND_ONLY, *_PG_ENTRY_BALANCES):
            op.execute(statement)
    else:
        op.execute(_SQLITE_POSTINGS_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_entry_balances ON ledger_postings")
        op.execute("DROP TRIGGER ledger_postings_append_only ON ledger_postings")
        op.execute("DROP FUNCTION ledger_entry_balances()")
        op.execute("DROP FUNCTION ledger_postings_append_only()")
    else:
        op.execute("DROP TRIGGER ledger_postings_append_only")
    op.drop_table("user_devices")
    op.drop_index("ix_cards_customer_id", table_name="cards")

    op.drop_table("cards")
    op.drop_index("ix_customer_users_customer_id", table_name="customer_users")

    op.drop_table("customer_users")
    op.drop_index("ix_accounts_customer_id", table_name="accounts")

    op.drop_table("accounts")
    op.drop_table("staff")
    op.drop_index("ix_ledger_postings_statement", table_name="ledger_postings")
    op.drop_index("ix_ledger_postings_entry_id", table_name="ledger_postings")

    op.drop_table("ledger_postings")
    op.drop_index("ix_ledger_holds_account_status", table_name="ledger_holds")

    op.drop_table("ledger_holds")
    op.drop_index("ix_customers_id_document", table_name="customers")

    op.drop_table("customers")
    op.drop_table("products")
    op.drop_table("number_sequences")
    op.drop_index("ix_ledger_entries_txn_id", table_name="ledger_entries")

    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
    op.drop_table("branches")
