"""Errors of the ledger; each carries a code from the error-code catalog."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "EntryUnbalanced",
    "HoldNotActive",
    "HoldNotFound",
    "InsufficientFunds",
    "LedgerAccountNotFound",
]


class InsufficientFunds(ChannelhubError):
    """A debit would take the account's available balance below its floor."""

    code = "INSUFFICIENT_FUNDS"


class LedgerAccountNotFound(ChannelhubError):
    """No ledger account has this code in this currency."""

    code = "NOT_FOUND"


class EntryUnbalanced(ChannelhubError):
    """An entry's postings do not sum to zero in every currency: a bug in the caller."""

    code = "LEDGER_UNBALANCED"


class HoldNotFound(ChannelhubError):
    """No hold has this id on this account."""

    code = "NOT_FOUND"


class HoldNotActive(ChannelhubError):
    """The hold was already captured, released or expired."""

    code = "HOLD_NOT_ACTIVE"
