"""Customers (parties), their users (login identities) and the devices those users registered."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["Customer", "CustomerUser", "UserDevice"]


class Customer(Base):
    """A person or a company the bank has a relationship with."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("kind IN ('person', 'company')", name="kind_known"),
        CheckConstraint("status IN ('active', 'frozen', 'closed')", name="status_known"),
        CheckConstraint("risk_rating IN ('low', 'medium', 'high')", name="risk_rating_known"),
        CheckConstraint("kyc_level BETWEEN 0 AND 3", name="kyc_level_range"),
        # A teller identifies a customer by the document they show.
        Index("ix_customers_id_document", "id_type", "id_number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: The business key, with a Luhn check digit.
    number: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    id_type: Mapped[str] = mapped_column(String(32))
    #: Stored whole (the bank must know it); every interface shows it masked.
    id_number: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    kyc_level: Mapped[int]
    segment: Mapped[str] = mapped_column(String(32))
    risk_rating: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    home_branch: Mapped[str] = mapped_column(ForeignKey("branches.code"))
    opened_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class CustomerUser(Base):
    """A login identity acting for a customer; a company may have several operators."""

    __tablename__ = "customer_users"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'operator', 'viewer')", name="role_known"),
        CheckConstraint("status IN ('active', 'locked', 'disabled')", name="status_known"),
        Index("ix_customer_users_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    #: The channels this user may log in through, e.g. ["mobile", "web"].
    channels: Mapped[list[Any]]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class UserDevice(Base):
    """A device a user registered (bound) for logging in."""

    __tablename__ = "user_devices"
    __table_args__ = (
        UniqueConstraint("user_id", "device_id"),
        CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer_users.id"))
    device_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime | None]
