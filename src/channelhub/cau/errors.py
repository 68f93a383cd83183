"""Errors of the customer-account-user center; each carries a catalog code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "AccountInactive",
    "AccountNotFound",
    "CardBlocked",
    "CardLost",
    "CardNotFound",
    "CardStatusInvalid",
    "NotYours",
    "ProductNotEligible",
    "ProductNotFound",
    "SelfTransfer",
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
