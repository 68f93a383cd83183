"""Prometheus metrics of the transaction engine."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["TRANSACTIONS", "TRANSACTION_SECONDS"]

TRANSACTIONS = Counter(
    "channelhub_transactions",
    "Transactions by channel, service and final status (rejected: refused before the journal).",
    ["channel", "service", "status"],
)
TRANSACTION_SECONDS = Histogram(
    "channelhub_transaction_duration_seconds",
    "Time from a channel's request to the kernel's result.",
    ["channel", "service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
