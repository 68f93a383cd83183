"""The REST channel for mobile and web: ``POST /api/v1/services/{service_id}``.

A plain Starlette route rather than a FastAPI one: this is the per-transaction path, and
FastAPI's request parsing would cost more than the kernel itself for small services.
"""

from __future__ import annotations

import re

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.channels.rest.envelope import error_response, result_response
from channelhub.channels.rest.openapi import openapi_document
from channelhub.kernel import ANONYMOUS, TransactionEngine, TransactionRequest
from channelhub.kernel.catalog import Catalog
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger

__all__ = ["routes"]

log = get_logger(__name__)

# Visible ASCII only: a key is echoed into logs and compared byte for byte.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_REST_CHANNELS = ("mobile", "web")
_JSON_TYPES = ("application/json", "text/json")


class _Refused(Exception):
    def __init__(self, code: str, message: str, **details: object) -> None:
        self.code, self.message, self.details = code, message, details


def _locale(header: str | None) -> str:
    return "zh" if header and header.strip().lower().startswith("zh") else "en"


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing early on a declared or actual larger body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused("MALFORMED_REQUEST", "Content-Length is not a number")
        if int(declared) > limit:
            raise _Refused("PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes", limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _Refused("PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes", limit=limit)
    return bytes(body)


def _decode(request: Request, body: bytes) -> dict[str, object]:
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";", 1)[0].strip().lower() not in _JSON_TYPES:
        raise _Refused("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    if not body.strip():
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _Refused(
            "MALFORMED_REQUEST",
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})",
            line=error.lineno,
            column=error.colno,
        ) from None
    if not isinstance(payload, dict):
        raise _Refused("MALFORMED_REQUEST", "the body must be a JSON object", field="(body)")
    return payload


def _build_request(request: Request, payload: dict[str, object]) -> TransactionRequest:
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise _Refused(
            "IDEMPOTENCY_KEY_INVALID",
            "Idempotency-Key must be 1 to 128 visible ASCII characters",
            field="Idempotency-Key",
        )
    channel = request.headers.get("x-channel", "web").strip().lower()
    if channel not in _REST_CHANNELS:
        raise _Refused("VALIDATION_FAILED", "X-Channel must be mobile or web", field="X-Channel")
    version_header = request.headers.get("x-service-version")
    version = None
    if version_header is not None:
        if not version_header.isdigit() or not 0 < int(version_header) < 1_000_000:
            raise _Refused(
                "VALIDATION_FAILED",
                "X-Service-Version must be a positive integer",
                field="X-Service-Version",
            )
        version = int(version_header)
    return TransactionRequest(
        service_id=request.path_params["service_id"],
        channel=channel,
        # Authentication arrives with the security center; until then every caller is anonymous.
        principal=ANONYMOUS,
        payload=payload,
        idempotency_key=key,
        service_version=version,
        device_id=request.headers.get("x-device-id"),
        source_address=request.client.host if request.client else None,
        locale=_locale(request.headers.get("accept-language")),
    )


async def invoke_service(request: Request) -> Response:
    """Decode one REST call, run it through the kernel, and encode the envelope."""
    locale = _locale(request.headers.get("accept-language"))
    try:
        body = await _read_body(request, request.app.state.max_body_bytes)
        transaction = _build_request(request, _decode(request, body))
    except _Refused as refusal:
        refusal_id = new_id()
        log.info(
            "request_refused",
            txn_id=str(refusal_id),
            code=refusal.code,
            path=request.url.path[:200],
        )
        return error_response(
            refusal_id, refusal.code, refusal.message, locale=locale, details=refusal.details
        )
    except ClientDisconnect:
        return Response(status_code=499)
    engine: TransactionEngine = request.app.state.engine
    return result_response(await engine.execute(transaction))


async def openapi(request: Request) -> Response:
    """Serve the OpenAPI document of every published REST service."""
    catalog: Catalog = request.app.state.runtime.catalog
    return Response(openapi_document(catalog), media_type="application/json")


routes = [
    Route("/api/v1/services/{service_id}", invoke_service, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
