"""pacs.008.001.08 as the interbank channel reads it: the shared reader in
``channelhub.kit.iso20022.pacs008`` (the simulated clearing house reads with it too)."""

from __future__ import annotations

from channelhub.kit.iso20022.pacs008 import (
    MAX_MESSAGE_BYTES,
    MAX_TRANSACTIONS,
    MESSAGE_NAME,
    NAMESPACE,
    CreditTransfer,
    CreditTransferMessage,
    MessageRejected,
    normalize_bic,
    parse_credit_transfers,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_TRANSACTIONS",
    "MESSAGE_NAME",
    "NAMESPACE",
    "CreditTransfer",
    "CreditTransferMessage",
    "MessageRejected",
    "normalize_bic",
    "parse_credit_transfers",
]
