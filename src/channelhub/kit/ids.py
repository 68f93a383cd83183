"""Time-ordered identifiers (UUIDv7) for transactions, events and every row we create."""

from __future__ import annotations

import uuid

from uuid_utils import compat

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    """Return a new UUIDv7: unique, and sortable by creation time."""
    return compat.uuid7()
