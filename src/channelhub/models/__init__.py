"""Every ORM model of channelhub, one module per aggregate."""

from channelhub.models.account import Account, Card, NumberSequence
from channelhub.models.base import Base
from channelhub.models.customer import Customer, CustomerUser, UserDevice
from channelhub.models.journal import TERMINAL_STATUSES, TRANSACTION_STATUSES, JournalEntry
from channelhub.models.ledger import Hold, LedgerAccount, LedgerEntry, Posting
from channelhub.models.limit import LIMIT_LEVELS, LIMIT_PERIODS, LimitDefinition, LimitUsage
from channelhub.models.organization import STAFF_ROLES, Branch, StaffMember
from channelhub.models.outbox import OutboxEvent
from channelhub.models.product import PRODUCT_TYPES, Product
from channelhub.models.risk import (
    RISK_OUTCOMES,
    RiskActivity,
    RiskDecision,
    RiskListEntry,
    RiskReview,
    RiskRule,
    RiskSighting,
)
from channelhub.models.security import (
    SUBJECT_KINDS,
    Approval,
    AuditRecord,
    AuthChallenge,
    Consent,
    Credential,
    LoginThrottle,
    PartnerApp,
    PartnerNonce,
    RefreshToken,
    RevokedSession,
    SigningKey,
    Terminal,
)

__all__ = [
    "LIMIT_LEVELS",
    "LIMIT_PERIODS",
    "PRODUCT_TYPES",
    "RISK_OUTCOMES",
    "STAFF_ROLES",
    "SUBJECT_KINDS",
    "TERMINAL_STATUSES",
    "TRANSACTION_STATUSES",
    "Account",
    "Approval",
    "AuditRecord",
    "AuthChallenge",
    "Base",
    "Branch",
    "Card",
    "Consent",
    "Credential",
    "Customer",
    "CustomerUser",
    "Hold",
    "JournalEntry",
    "LedgerAccount",
    "LedgerEntry",
    "LimitDefinition",
    "LimitUsage",
    "LoginThrottle",
    "NumberSequence",
    "OutboxEvent",
    "PartnerApp",
    "PartnerNonce",
    "Posting",
    "Product",
    "RefreshToken",
    "RevokedSession",
    "RiskActivity",
    "RiskDecision",
    "RiskListEntry",
    "RiskReview",
    "RiskRule",
    "RiskSighting",
    "SigningKey",
    "StaffMember",
    "Terminal",
    "UserDevice",
]
