"""Prometheus metrics of the ATM and POS channel: messages by MTI and answer, connections
open, and frames refused before they were messages."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CONNECTIONS", "MESSAGES", "MESSAGE_SECONDS", "REFUSED"]

MESSAGES = Counter(
    "channelhub_iso8583_messages",
    "ISO 8583 requests answered, by request MTI and field 39 of the answer.",
    ["mti", "response_code"],
)
MESSAGE_SECONDS = Histogram(
    "channelhub_iso8583_message_seconds",
    "Time from a request's last byte to its answer, by request MTI.",
    ["mti"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REFUSED = Counter(
    "channelhub_iso8583_refused",
    "Frames or connections refused without an answer, by reason.",
    ["reason"],
)
CONNECTIONS = Gauge("channelhub_iso8583_connections", "Terminal connections open.")
