"""The bank's own organisation: branches and the staff who work in them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["STAFF_ROLES", "Branch", "StaffMember"]

STAFF_ROLES = ("teller", "supervisor", "operator", "admin", "auditor")


class Branch(Base):
    """A branch: where tellers work and where each branch's cash is accounted."""

    __tablename__ = "branches"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime]


class StaffMember(Base):
    """A member of the bank's staff. Credentials live in the security center, not here."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(
            "role IN ('teller', 'supervisor', 'operator', 'admin', 'auditor')", name="role_known"
        ),
        CheckConstraint("status IN ('active', 'suspended', 'left')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    branch_code: Mapped[str] = mapped_column(ForeignKey("branches.code"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime]
