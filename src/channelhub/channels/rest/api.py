"""The REST channel for mobile and web: ``POST /api/v1/services/{service_id}``.

A plain Starlette route rather than a FastAPI one: this is the per-transaction path, and
FastAPI's request parsing would cost more than the kernel itself for small services.
"""

from __future__ import annotations

import re
from dataclasses import replace

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.channels.iso20022.camt053 import statement_document
from channelhub.channels.rest.envelope import error_response, result_response
from channelhub.channels.rest.openapi import openapi_document
from channelhub.kernel import ANONYMOUS, Principal, TransactionEngine, TransactionRequest
from channelhub.kernel.catalog import Catalog
from channelhub.kernel.model import StepUpProof
from channelhub.kit.clock import utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.security.service import SecurityCenter

__all__ = [
    "IDEMPOTENCY_KEY",
    "Refused",
    "bearer_principal",
    "decode_json",
    "idempotency_key",
    "locale_of",
    "read_body",
    "refusal_response",
    "routes",
]

log = get_logger(__name__)

# Visible ASCII only: a key is echoed into logs and compared byte for byte.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_REST_CHANNELS = ("mobile", "web")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_OTP = re.compile(r"[0-9]{6}")
_JSON_TYPES = ("application/json", "text/json")


#: Longer than any token this platform issues; a longer header is refused unread.
_MAX_TOKEN_LENGTH = 4096


class Refused(Exception):
    """A request the channel refuses before the kernel sees it, with its canonical code."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        self.code, self.message, self.details = code, message, details


async def bearer_principal(request: Request) -> Principal | None:
    """Return the principal of the request's ``Authorization: Bearer`` token; None without one.

    Raises:
        Refused: the header is malformed, or the token is not valid (TOKEN_INVALID).
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_LENGTH:
        raise Refused("TOKEN_INVALID", "send the access token as Authorization: Bearer <token>")
    security: SecurityCenter = request.app.state.security
    try:
        return await security.authenticate(token)
    except ChannelhubError as error:
        raise Refused(error.code, error.message) from None


def locale_of(header: str | None) -> str:
    return "zh" if header and header.strip().lower().startswith("zh") else "en"


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing early on a declared or actual larger body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused("MALFORMED_REQUEST", "Content-Length is not a number")
        if int(declared) > limit:
            raise Refused("PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes", limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused("PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes", limit=limit)
    return bytes(body)


def decode_json(request: Request, body: bytes) -> dict[str, object]:
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";", 1)[0].strip().lower() not in _JSON_TYPES:
        raise Refused("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    if not body.strip():
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Refused(
            "MALFORMED_REQUEST",
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})",
            line=error.lineno,
            column=error.colno,
        ) from None
    if not isinstance(payload, dict):
        raise Refused("MALFORMED_REQUEST", "the body must be a JSON object", field="(body)")
    return payload


def idempotency_key(request: Request) -> str | None:
    """Return the request's ``Idempotency-Key``, if it sent one.

    Raises:
        Refused: IDEMPOTENCY_KEY_INVALID, a key that is not 1 to 128 visible ASCII characters.
    """
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise Refused(
            "IDEMPOTENCY_KEY_INVALID",
            "Idempotency-Key must be 1 to 128 visible ASCII characters",
            field="Idempotency-Key",
        )
    return key


def _build_request(
    request: Request,
    payload: dict[str, object],
    principal: Principal | None,
    service_id: str | None = None,
) -> TransactionRequest:
    key = idempotency_key(request)
    header_channel = request.headers.get("x-channel")
    device_id = request.headers.get("x-device-id")
    if principal is None:
        channel = (header_channel or "web").strip().lower()
        if channel not in _REST_CHANNELS:
            raise Refused("VALIDATION_FAILED", "X-Channel must be mobile or web", field="X-Channel")
    else:
        # A logged-in caller's channel and device are the ones its token was issued for.
        channel = principal.attributes.get("channel", "")
        if channel not in _REST_CHANNELS:
            raise Refused("FORBIDDEN", "this token is not for the mobile or web channel")
        if header_channel is not None and header_channel.strip().lower() != channel:
            raise Refused(
                "FORBIDDEN", "X-Channel does not match the token's channel", field="X-Channel"
            )
        bound = principal.attributes.get("device_id")
        if bound is not None:
            if device_id is not None and device_id != bound:
                raise Refused(
                    "FORBIDDEN",
                    "X-Device-Id does not match the token's device",
                    field="X-Device-Id",
                )
            device_id = bound
    version_header = request.headers.get("x-service-version")
    version = None
    if version_header is not None:
        if not version_header.isdigit() or not 0 < int(version_header) < 1_000_000:
            raise Refused(
                "VALIDATION_FAILED",
                "X-Service-Version must be a positive integer",
                field="X-Service-Version",
            )
        version = int(version_header)
    return TransactionRequest(
        step_up=_step_up_proof(request),
        service_id=service_id or request.path_params["service_id"],
        channel=channel,
        principal=principal or ANONYMOUS,
        payload=payload,
        idempotency_key=key,
        service_version=version,
        device_id=device_id,
        source_address=request.client.host if request.client else None,
        locale=locale_of(request.headers.get("accept-language")),
    )


def _step_up_proof(request: Request) -> StepUpProof | None:
    """Return the answer to a step-up challenge the request carries, if any."""
    challenge = request.headers.get("x-step-up-challenge")
    otp = request.headers.get("x-step-up-otp")
    if challenge is None and otp is None:
        return None
    if challenge is None or not _CHALLENGE.fullmatch(challenge):
        raise Refused(
            "VALIDATION_FAILED",
            "X-Step-Up-Challenge must be the challenge the first answer gave",
            field="X-Step-Up-Challenge",
        )
    if otp is None or not _OTP.fullmatch(otp):
        raise Refused("VALIDATION_FAILED", "X-Step-Up-OTP must be 6 digits", field="X-Step-Up-OTP")
    return StepUpProof(challenge=challenge, otp=otp)


def refusal_response(
    request: Request, refusal: Refused, *, locale: str, event: str = "request_refused"
) -> Response:
    """Log a refused request under ``event`` and answer it with the envelope (and a
    ``Retry-After`` when the refusal says when to come back)."""
    refusal_id = new_id()
    log.info(event, txn_id=str(refusal_id), code=refusal.code, path=request.url.path[:200])
    retry = refusal.details.get("retry_after")
    return error_response(
        refusal_id,
        refusal.code,
        refusal.message,
        locale=locale,
        details=refusal.details,
        headers=None if retry is None else {"Retry-After": str(retry)},
    )


async def invoke_service(request: Request) -> Response:
    """Decode one REST call, run it through the kernel, and encode the envelope."""
    locale = locale_of(request.headers.get("accept-language"))
    try:
        principal = await bearer_principal(request)
        body = await read_body(request, request.app.state.max_body_bytes)
        transaction = _build_request(request, decode_json(request, body), principal)
    except Refused as refusal:
        return refusal_response(request, refusal, locale=locale)
    except ClientDisconnect:
        return Response(status_code=499)
    engine: TransactionEngine = request.app.state.engine
    return result_response(await engine.execute(transaction))


#: A camt.053 export reads the statement in pages of this many entries, at most this many.
_CAMT_PAGE_SIZE, _CAMT_MAX_PAGES = 200, 50


async def statement_camt053(request: Request) -> Response:
    """``GET /api/v1/accounts/{number}/statement.camt053?from=&to=``: the ``account.statement``
    service's answer, every page of it, as a camt.053.001.08 document."""
    locale = locale_of(request.headers.get("accept-language"))
    engine: TransactionEngine = request.app.state.engine
    try:
        unknown = set(request.query_params) - {"from", "to"}
        if unknown:
            raise Refused(
                "VALIDATION_FAILED", "only from and to may be given", field=sorted(unknown)[0]
            )
        payload: dict[str, object] = {
            "account": request.path_params["number"],
            **{name: request.query_params[name] for name in ("from", "to")
               if name in request.query_params},
            "page_size": _CAMT_PAGE_SIZE,
        }  # fmt: skip
        principal = await bearer_principal(request)
        template = _build_request(request, payload, principal, "account.statement")
    except Refused as refusal:
        return error_response(
            new_id(), refusal.code, refusal.message, locale=locale, details=refusal.details
        )
    pages = []
    for page in range(1, _CAMT_MAX_PAGES + 1):
        result = await engine.execute(
            replace(template, payload={**payload, "page": page}, idempotency_key=None)
        )
        if not result.ok:
            return result_response(result)
        pages.append(result)
        if not result.data["has_more"]:
            break
    else:
        return error_response(
            pages[0].txn_id,
            "VALIDATION_FAILED",
            f"more than {_CAMT_PAGE_SIZE * _CAMT_MAX_PAGES} entries: ask for fewer days",
            locale=locale,
            details={"field": "from"},
        )
    document = statement_document(
        pages[0].data,
        [entry for result in pages for entry in result.data["entries"]],
        message_id=pages[0].txn_id.hex,
        created_at=utc_now(),
    )
    return Response(
        document, media_type="application/xml", headers={"X-Txn-Id": str(pages[0].txn_id)}
    )


async def openapi(request: Request) -> Response:
    """Serve the OpenAPI document of every published REST service."""
    catalog: Catalog = request.app.state.runtime.catalog
    return Response(openapi_document(catalog), media_type="application/json")


routes = [
    Route("/api/v1/services/{service_id}", invoke_service, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/accounts/{number}/statement.camt053", statement_camt053, methods=["GET"]),
]
