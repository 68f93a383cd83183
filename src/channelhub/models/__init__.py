"""Every ORM model of channelhub, one module per aggregate."""

from channelhub.models.base import Base
from channelhub.models.journal import TERMINAL_STATUSES, TRANSACTION_STATUSES, JournalEntry
from channelhub.models.outbox import OutboxEvent

__all__ = ["TERMINAL_STATUSES", "TRANSACTION_STATUSES", "Base", "JournalEntry", "OutboxEvent"]
