"""Prometheus metrics of limit management: refusals by the limit that refused."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["REFUSALS"]

REFUSALS = Counter(
    "channelhub_limit_refusals",
    "Transactions refused by a limit, by its level, period, channel and how it broke it.",
    ["level", "period", "channel", "by"],
)
