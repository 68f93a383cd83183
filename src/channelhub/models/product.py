"""The product catalog: what a customer can hold, and the parameters that drive its behaviour."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["PRODUCT_TYPES", "Product"]

PRODUCT_TYPES = ("current", "savings", "term_deposit", "loan", "debit_card")


class Product(Base):
    """A product; ``parameters`` and ``eligibility`` are validated by ``cau.schemas``."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint(
            "type IN ('current', 'savings', 'term_deposit', 'loan', 'debit_card')",
            name="type_known",
        ),
        CheckConstraint("status IN ('active', 'suspended', 'retired')", name="status_known"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity_ordered"),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[dt.date]
    valid_to: Mapped[dt.date | None]
    #: Interest rate, term, minimum balance, overdraft, fee schedule (``cau.schemas``).
    parameters: Mapped[dict[str, Any]]
    #: Which segments and KYC levels may hold it.
    eligibility: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
