"""Errors of the customer-account-user center; each carries a catalog code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "AccountClosed",
    "AccountInactive",
    "AccountNotCreditable",
    "AccountNotFound",
    "CardBlocked",
    "CardExpired",
    "CardLost",
    "CardNotFound",
    "CardStatusInvalid",
    "NotYours",
    "PinInvalid",
    "PinTriesExceeded",
    "ProductNotEligible",
    "ProductNotFound",
    "SelfTransfer",
    "UnknownCard",
]


class AccountNotFound(ChannelhubError):
    """No account has this number."""

    code = "NOT_FOUND"


class NotYours(ChannelhubError):
    """The object exists but belongs to another customer than the one the caller acts for."""

    code = "FORBIDDEN"


class AccountInactive(ChannelhubError):
    """The account is frozen, dormant or closed and may not take part."""

    code = "ACCOUNT_INACTIVE"


class AccountClosed(ChannelhubError):
    """The account is closed: nothing may be paid into it any more."""

    code = "ACCOUNT_CLOSED"


class AccountNotCreditable(ChannelhubError):
    """The account's kind (a term deposit, a loan) does not take payments from outside."""

    code = "ACCOUNT_NOT_CREDITABLE"


class SelfTransfer(ChannelhubError):
    """A transfer names the same account on both sides."""

    code = "SELF_TRANSFER"


class ProductNotFound(ChannelhubError):
    """No product has this code."""

    code = "NOT_FOUND"


class ProductNotEligible(ChannelhubError):
    """The product is not open to this customer (segment, KYC level, kind, validity, type)."""

    code = "PRODUCT_NOT_ELIGIBLE"


class CardNotFound(ChannelhubError):
    """No card has this id."""

    code = "NOT_FOUND"


class CardStatusInvalid(ChannelhubError):
    """The card's status does not allow the change (e.g. unblocking a lost card)."""

    code = "CARD_STATUS_INVALID"


class CardBlocked(ChannelhubError):
    """The card is blocked."""

    code = "CARD_BLOCKED"


class CardLost(ChannelhubError):
    """The card is reported lost."""

    code = "CARD_LOST"


class UnknownCard(ChannelhubError):
    """No card has the number a terminal read."""

    code = "CARD_NOT_FOUND"


class CardExpired(ChannelhubError):
    """The card is past its month of expiry."""

    code = "CARD_EXPIRED"


class PinInvalid(ChannelhubError):
    """The PIN entered is not the card's."""

    code = "PIN_INVALID"


class PinTriesExceeded(ChannelhubError):
    """Too many wrong PINs in a row: the card is blocked."""

    code = "PIN_TRIES_EXCEEDED"
