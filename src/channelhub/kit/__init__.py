"""Domain-agnostic building blocks: money, ids, time, errors, database, logging."""

from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money

__all__ = ["ChannelhubError", "Money"]
