"""Prometheus metrics of outbound calls: how each back end answers, how fast, and whether its
circuit is open."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BREAKER_STATE", "CALLS", "CALL_SECONDS", "RETRIES", "STATE_VALUES"]

CALLS = Counter(
    "channelhub_backend_calls",
    "Calls to back ends by back end, operation and outcome (ok, rejected, timeout, "
    "unavailable, bad_response, circuit_open, not_configured).",
    ["backend", "operation", "outcome"],
)
CALL_SECONDS = Histogram(
    "channelhub_backend_call_seconds",
    "Time of one attempt of a call to a back end, whatever its outcome.",
    ["backend", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RETRIES = Counter(
    "channelhub_backend_retries",
    "Attempts of idempotent operations sent again after a timeout or an unavailable back end.",
    ["backend", "operation"],
)
BREAKER_STATE = Gauge(
    "channelhub_backend_breaker_state",
    "Circuit breaker of each back end: 0 closed, 1 half-open (probing), 2 open.",
    ["backend"],
)

#: Breaker state name -> the gauge's value.
STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}
