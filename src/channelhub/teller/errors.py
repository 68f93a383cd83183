"""Errors of the teller desk; each carries a catalog code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = ["AccountNotEmpty", "ApprovalNotFound", "CustomerExists", "CustomerNotIdentified"]


class CustomerNotIdentified(ChannelhubError):
    """No active customer matches the document shown, or the card and PIN do not match.

    One answer for every reason, so the desk cannot be used to probe who banks here.
    """

    code = "CUSTOMER_NOT_IDENTIFIED"


class CustomerExists(ChannelhubError):
    """Onboarding a document the bank already has a customer for."""

    code = "CUSTOMER_EXISTS"


class AccountNotEmpty(ChannelhubError):
    """An account to close still holds money or has funds on hold."""

    code = "ACCOUNT_NOT_EMPTY"


class ApprovalNotFound(ChannelhubError):
    """No teller approval has this transaction id."""

    code = "NOT_FOUND"
