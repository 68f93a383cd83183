"""pacs.002.001.10 as the interbank channel answers: the shared writer in
``channelhub.kit.iso20022.pacs002``, and ``REASONS``, the one table that turns the platform's
canonical codes into ISO 20022 status reason codes (ExternalStatusReason1Code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelhub.kit.iso20022.pacs002 import (
    NAMESPACE,
    GroupStatus,
    TransactionStatus,
    group_status,
    status_report,
)

__all__ = [
    "NAMESPACE",
    "REASONS",
    "GroupStatus",
    "TransactionStatus",
    "group_status",
    "reason_for",
    "status_report",
]

#: Canonical code -> ISO 20022 status reason code.
REASONS: Mapping[str, str] = {
    "NOT_FOUND": "AC01",  # IncorrectAccountNumber: no account has this number
    "ACCOUNT_CLOSED": "AC04",  # ClosedAccountNumber
    "ACCOUNT_INACTIVE": "AC06",  # BlockedAccount: frozen or dormant
    "ACCOUNT_NOT_CREDITABLE": "AG01",  # TransactionForbidden on this type of account
    "CURRENCY_MISMATCH": "AM03",  # NotAllowedCurrency: the account holds another one
    "INVALID_AMOUNT": "AM09",  # WrongAmount: zero, or more decimals than the currency has
    "IDEMPOTENCY_KEY_REUSED": "DUPL",  # DuplicatePayment
    "VALIDATION_FAILED": "FF01",  # InvalidFileFormat
    "MALFORMED_REQUEST": "FF01",
    "FORBIDDEN": "AG01",
    "LIMIT_EXCEEDED": "AM02",  # NotAllowedAmount
    "RISK_DENIED": "AG01",
    "REVIEW_REJECTED": "AG01",
}
#: NotSpecifiedReasonAgentGenerated: any other refusal.
_UNSPECIFIED = "MS03"


def reason_for(code: str, details: Mapping[str, Any]) -> str:
    """Return the ISO reason code of a canonical refusal.

    An amount refused for its currency (not an ISO 4217 code the bank knows) is AM03, not AM09.
    """
    if code == "INVALID_AMOUNT" and details.get("field") == "currency":
        return "AM03"
    return REASONS.get(code, _UNSPECIFIED)
