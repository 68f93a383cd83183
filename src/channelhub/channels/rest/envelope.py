"""The REST channels' response envelope: ``{"txn_id", "status", "code", "message", "data"}``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from channelhub.kernel import TransactionResult, lookup

__all__ = ["error_response", "result_response"]


def _response(status: int, body: dict[str, Any], headers: Mapping[str, str]) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=dict(headers)
    )


def result_response(result: TransactionResult) -> Response:
    """Encode a kernel result; the HTTP status follows the canonical code."""
    body: dict[str, Any] = {
        "txn_id": str(result.txn_id),
        "status": result.status.value,
        "code": result.code,
        "message": result.message,
        "data": dict(result.data),
    }
    if result.details:
        body["details"] = dict(result.details)
    headers = {"X-Txn-Id": str(result.txn_id)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _response(lookup(result.code).http_status, body, headers)


def error_response(
    txn_id: uuid.UUID,
    code: str,
    message: str,
    *,
    locale: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Encode a refusal the channel itself made, before the kernel saw the request."""
    entry = lookup(code)
    body: dict[str, Any] = {
        "txn_id": str(txn_id),
        "status": "failed",
        "code": entry.code,
        "message": message if locale == "en" else entry.message(locale),
        "data": {},
    }
    if details:
        body["details"] = dict(details)
    extra = dict(headers or {})
    if entry.code == "TOKEN_INVALID":
        extra["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return _response(entry.http_status, body, {"X-Txn-Id": str(txn_id), **extra})
