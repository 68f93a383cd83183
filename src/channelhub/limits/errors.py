"""The refusals of limit management, each with its canonical code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = ["LimitAboveCeiling", "LimitCountExceeded", "LimitExceeded", "LimitUnknown"]


class LimitExceeded(ChannelhubError):
    """The amount would take a limit over its ceiling; ``details`` name the limit."""

    code = "LIMIT_EXCEEDED"


class LimitCountExceeded(ChannelhubError):
    """One more transaction would take a limit over its count."""

    code = "LIMIT_COUNT_EXCEEDED"


class LimitAboveCeiling(ChannelhubError):
    """A customer asked for a limit above the bank's."""

    code = "LIMIT_ABOVE_CEILING"


class LimitUnknown(ChannelhubError):
    """No such limit, or no such scope."""

    code = "VALIDATION_FAILED"
