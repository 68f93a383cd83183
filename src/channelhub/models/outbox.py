"""The outbox: events written in the same database transaction as the change they describe."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = ["OutboxEvent"]


class OutboxEvent(Base):
    """A CloudEvents 1.0 event waiting to be (or already) published to the event bus."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's query: the oldest unpublished events first.
        Index("ix_outbox_unpublished", "published_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    time: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]]
    published_at: Mapped[dt.datetime | None]
