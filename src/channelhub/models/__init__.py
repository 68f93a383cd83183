"""Every ORM model of channelhub, one module per aggregate."""

from channelhub.models.account import Account, Card, NumberSequence
from channelhub.models.base import Base
from channelhub.models.customer import Customer, CustomerUser, UserDevice
from channelhub.models.journal import TERMINAL_STATUSES, TRANSACTION_STATUSES, JournalEntry
from channelhub.models.ledger import Hold, LedgerAccount, LedgerEntry, Posting
from channelhub.models.organization import STAFF_ROLES, Branch, StaffMember
from channelhub.models.outbox import OutboxEvent
from channelhub.models.product import PRODUCT_TYPES, Product

__all__ = [
    "PRODUCT_TYPES",
    "STAFF_ROLES",
    "TERMINAL_STATUSES",
    "TRANSACTION_STATUSES",
    "Account",
    "Base",
    "Branch",
    "Card",
    "Customer",
    "CustomerUser",
    "Hold",
    "JournalEntry",
    "LedgerAccount",
    "LedgerEntry",
    "NumberSequence",
    "OutboxEvent",
    "Posting",
    "Product",
    "StaffMember",
    "UserDevice",
]
