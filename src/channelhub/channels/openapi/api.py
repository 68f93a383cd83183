"""The partner channel: ``POST /oauth/token`` (client credentials) and
``POST /open/v1/services/{service_id}``, every call signed (see docs/partners.md).

The security center checks the token, the signature, the nonce, the address and the consent;
this module turns the HTTP request into what it signs and the kernel's answer into the same
envelope the REST channels use.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.channels.rest.api import (
    Refused,
    decode_json,
    idempotency_key,
    locale_of,
    read_body,
    refusal_response,
)
from channelhub.channels.rest.envelope import result_response
from channelhub.channels.rest.openapi import partner_openapi_document
from channelhub.channels.rest.signed import bearer_token, signed_partner
from channelhub.kernel import TransactionEngine, TransactionRequest
from channelhub.kit.errors import ChannelhubError
from channelhub.security.partners import client_token
from channelhub.security.service import SecurityCenter

__all__ = ["routes"]


_MAX_FORM = 4096
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(error: str, description: str, status: int) -> Response:
    """An RFC 6749 §5.2 error answer."""
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="channelhub"'
    return Response(
        orjson.dumps({"error": error, "error_description": description}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


async def token(request: Request) -> Response:
    """The OAuth 2 client-credentials grant (RFC 6749 §4.4), form-encoded, with the client's
    credentials in HTTP Basic or in the form."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _oauth_error("invalid_request", "send application/x-www-form-urlencoded", 400)
    try:
        raw = await read_body(request, _MAX_FORM)
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
    except (Refused, UnicodeDecodeError):
        return _oauth_error("invalid_request", "the form is too large or malformed", 400)
    except ClientDisconnect:
        return Response(status_code=499)
    if form.get("grant_type") != "client_credentials":
        return _oauth_error("unsupported_grant_type", "only client_credentials is offered", 400)
    credentials = _basic_credentials(request.headers.get("authorization")) or (
        form.get("client_id", ""),
        form.get("client_secret", ""),
    )
    if not credentials[0] or not credentials[1] or len(credentials[1]) > 256:
        return _oauth_error("invalid_client", "client authentication failed", 401)
    security: SecurityCenter = request.app.state.security
    try:
        answer = await client_token(
            security,
            client_id=credentials[0],
            client_secret=credentials[1],
            scope=form.get("scope"),
            source_address=request.client.host if request.client else None,
        )
    except ValueError:
        return _oauth_error("invalid_scope", "a requested scope is not granted to this app", 400)
    except ChannelhubError as error:
        if error.code == "ADDRESS_NOT_ALLOWED":
            return _oauth_error("unauthorized_client", "calls from this address are refused", 403)
        return _oauth_error("invalid_client", "client authentication failed", 401)
    return Response(orjson.dumps(answer), media_type="application/json", headers=_NO_STORE)


async def invoke_service(request: Request) -> Response:
    """Run one signed partner call through the kernel."""
    locale = locale_of(request.headers.get("accept-language"))
    try:
        body = await read_body(request, request.app.state.max_body_bytes)
        bearer = bearer_token(request, "the app's")
        key = idempotency_key(request)
        consent = request.headers.get("x-consent-id")
        principal = await signed_partner(request, body, bearer, consent_id=consent)
        transaction = TransactionRequest(
            service_id=request.path_params["service_id"],
            channel="partner",
            principal=principal,
            payload=decode_json(request, body),
            idempotency_key=key,
            source_address=request.client.host if request.client else None,
            locale=locale,
        )
    except Refused as refusal:
        return refusal_response(request, refusal, locale=locale, event="partner_request_refused")
    except ClientDisconnect:
        return Response(status_code=499)
    engine: TransactionEngine = request.app.state.engine
    return result_response(await engine.execute(transaction))


async def openapi(request: Request) -> Response:
    """Serve the OpenAPI document of exactly what partners can call."""
    return Response(
        partner_openapi_document(request.app.state.runtime.catalog),
        media_type="application/json",
    )


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/open/v1/services/{service_id}", invoke_service, methods=["POST"]),
    Route("/open/v1/openapi.json", openapi, methods=["GET"]),
]
