"""Prometheus metrics of the risk engine: what it decides, which rules fire (a shadow rule's
count is how often it would have acted), how long it takes, and how often it could not decide."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["DECISIONS", "EVALUATION_SECONDS", "RULES_FIRED", "UNAVAILABLE"]

DECISIONS = Counter(
    "channelhub_risk_decisions",
    "Risk decisions by channel kind and outcome.",
    ["channel", "outcome"],
)
RULES_FIRED = Counter(
    "channelhub_risk_rules_fired",
    "Rules that fired (or failed and counted as their fallback), by rule, version and mode.",
    ["rule", "version", "mode", "outcome"],
)
EVALUATION_SECONDS = Histogram(
    "channelhub_risk_evaluation_seconds",
    "Time to compute the features and evaluate the rules of one transaction.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
UNAVAILABLE = Counter(
    "channelhub_risk_unavailable",
    "Evaluations the engine could not finish (a feature store down or slow), by failure mode.",
    ["mode"],
)
