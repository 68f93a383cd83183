"""CloudEvents 1.0 for transactions: what the outbox carries, with no secret in it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from channelhub.kernel.model import Principal
from channelhub.kit.ids import new_id
from channelhub.kit.money import Money

__all__ = ["cloudevent_json", "transaction_event"]

SOURCE = "/channelhub"


def transaction_event(
    *,
    txn_id: uuid.UUID,
    service_id: str,
    service_version: int,
    channel: str,
    principal: Principal,
    status: str,
    code: str,
    amount: Money | None,
    duration_ms: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """Return the outbox row of a transaction that reached ``status``.

    The payload names the parties by id only; request bodies are never copied into events,
    because they may hold passwords, OTPs or card numbers.
    """
    data: dict[str, Any] = {
        "txn_id": str(txn_id),
        "service": service_id,
        "service_version": service_version,
        "channel": channel,
        "principal": {"kind": principal.kind.value, "id": principal.id},
        "status": status,
        "code": code,
        "duration_ms": duration_ms,
    }
    if amount is not None:
        data["amount"] = amount.to_decimal_string()
        data["currency"] = amount.currency
    return {
        "id": new_id(),
        "type": f"channelhub.{service_id}.{status}",
        "source": SOURCE,
        "subject": str(txn_id),
        "time": now,
        "data": data,
        "published_at": None,
    }


def cloudevent_json(row: Any) -> dict[str, Any]:
    """Return an outbox row as a CloudEvents 1.0 JSON object."""
    time = row.time if row.time.tzinfo else row.time.replace(tzinfo=dt.UTC)
    return {
        "specversion": "1.0",
        "id": str(row.id),
        "source": row.source,
        "type": row.type,
        "subject": row.subject,
        "time": time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": row.data,
    }
