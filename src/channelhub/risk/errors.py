"""The refusals of the risk engine, each with its canonical code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = ["ReviewNotPending", "RiskDenied", "RiskUnavailable", "RuleInvalid"]


class RiskDenied(ChannelhubError):
    """A rule denied the transaction. The caller is not told which: a fraudster would learn
    the rules from it; the decision record tells the bank."""

    code = "RISK_DENIED"


class RiskUnavailable(ChannelhubError):
    """The risk engine could not decide in time, and the service fails closed."""

    code = "RISK_UNAVAILABLE"


class RuleInvalid(ChannelhubError):
    """A rule does not compile, or fails on a well-formed transaction."""

    code = "RULE_INVALID"


class ReviewNotPending(ChannelhubError):
    """The review was already decided (or its transaction is no longer in review)."""

    code = "REVIEW_NOT_PENDING"
