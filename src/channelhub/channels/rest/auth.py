"""The REST channels' login wire: ``/api/v1/auth/{login,mfa,refresh,logout}`` and the public
keys at ``/.well-known/jwks.json``. Every decision is the security center's; this module only
decodes bodies and encodes answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.channels.rest.api import (
    Refused,
    bearer_principal,
    decode_json,
    locale_of,
    read_body,
)
from channelhub.channels.rest.envelope import error_response
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.security.schemas import (
    ChangePasswordBody,
    LoginBody,
    LogoutBody,
    MfaBody,
    RefreshBody,
    StaffLoginBody,
    TotpConfirmBody,
)
from channelhub.security.service import SecurityCenter

__all__ = ["auth_routes"]

log = get_logger(__name__)

#: Login bodies are small; anything bigger is refused before it is parsed.
_MAX_AUTH_BODY = 4096
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1

_Body = TypeVar("_Body", bound=BaseModel)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=_NO_STORE
    )


async def _body(request: Request, shape: type[_Body]) -> _Body:
    payload = decode_json(request, await read_body(request, _MAX_AUTH_BODY))
    try:
        return shape.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(body)"
        # The message names the field and the rule, never the value sent.
        raise Refused("VALIDATION_FAILED", f"{field}: {first['msg']}", field=field) from None


def _refusal(request: Request, code: str, message: str, details: dict[str, Any]) -> Response:
    refusal_id = new_id()
    log.info("auth_refused", txn_id=str(refusal_id), code=code, path=request.url.path[:200])
    headers = dict(_NO_STORE)
    if "retry_after" in details:
        headers["Retry-After"] = str(details["retry_after"])
    return error_response(
        refusal_id,
        code,
        message,
        locale=locale_of(request.headers.get("accept-language")),
        details=details,
        headers=headers,
    )


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _handle(request: Request, action: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await action()
    except Refused as refusal:
        return _refusal(request, refusal.code, refusal.message, dict(refusal.details))
    except ChannelhubError as error:
        return _refusal(request, error.code, error.message, error.details)
    except ClientDisconnect:
        return Response(status_code=499)


async def login(request: Request) -> Response:
    """Password login; answers tokens or ``{"mfa_required": true, "mfa_token"}``."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        body = await _body(request, LoginBody)
        answer = await security.login(
            username=body.username,
            password=body.password,
            device_id=body.device_id,
            channel=body.channel,
            source_address=_source(request),
        )
        return _json(answer.wire())

    return await _handle(request, run)


async def staff_login(request: Request) -> Response:
    """Staff password login; always answers ``{"mfa_required": true, "mfa_token"}``."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        body = await _body(request, StaffLoginBody)
        answer = await security.login(
            username=body.username,
            password=body.password,
            device_id=body.device_id,
            channel=body.channel,
            kind="staff",
            source_address=_source(request),
        )
        return _json(answer.wire())

    return await _handle(request, run)


async def change_password(request: Request) -> Response:
    """Change a customer user's password with the current (or temporary) one."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        body = await _body(request, ChangePasswordBody)
        await security.change_password(
            username=body.username,
            password=body.password,
            new_password=body.new_password,
            source_address=_source(request),
        )
        return _json({"password_changed": True})

    return await _handle(request, run)


async def totp_enroll(request: Request) -> Response:
    """Start the logged-in customer's TOTP enrolment; answers the secret and its URI once."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        principal = await bearer_principal(request)
        if principal is None:
            raise Refused("UNAUTHENTICATED", "log in first")
        return _json(await security.enroll_totp(principal))

    return await _handle(request, run)


async def totp_confirm(request: Request) -> Response:
    """Confirm the pending enrolment with a first code: ``{"otp"}``."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        principal = await bearer_principal(request)
        if principal is None:
            raise Refused("UNAUTHENTICATED", "log in first")
        body = await _body(request, TotpConfirmBody)
        await security.confirm_totp(principal, body.otp)
        return _json({"totp_enrolled": True})

    return await _handle(request, run)


async def mfa(request: Request) -> Response:
    """The second factor of a login from a new device."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        body = await _body(request, MfaBody)
        pair = await security.complete_mfa(
            mfa_token=body.mfa_token, otp=body.otp, source_address=_source(request)
        )
        return _json(pair.wire())

    return await _handle(request, run)


async def refresh(request: Request) -> Response:
    """Trade a refresh token for a new pair (rotation)."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        body = await _body(request, RefreshBody)
        pair = await security.refresh(
            refresh_token=body.refresh_token, source_address=_source(request)
        )
        return _json(pair.wire())

    return await _handle(request, run)


async def logout(request: Request) -> Response:
    """End the session of the bearer token, or of the refresh token in the body."""
    security: SecurityCenter = request.app.state.security

    async def run() -> Response:
        principal = await bearer_principal(request)
        body = await _body(request, LogoutBody)
        if principal is None and body.refresh_token is None:
            raise Refused(
                "UNAUTHENTICATED", "send a bearer access token or the refresh token to log out"
            )
        ended = await security.logout(
            principal=principal,
            refresh_token=body.refresh_token,
            source_address=_source(request),
        )
        return _json({"logged_out": ended})

    return await _handle(request, run)


async def jwks(request: Request) -> Response:
    """The public keys access tokens are signed with (RFC 7517)."""
    security: SecurityCenter = request.app.state.security
    return Response(
        orjson.dumps(security.jwks()),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=60"},
    )


auth_routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/mfa", mfa, methods=["POST"]),
    Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/password", change_password, methods=["POST"]),
    Route("/api/v1/auth/totp/enroll", totp_enroll, methods=["POST"]),
    Route("/api/v1/auth/totp/confirm", totp_confirm, methods=["POST"]),
    Route("/staff/v1/auth/login", staff_login, methods=["POST"]),
    Route("/staff/v1/auth/mfa", mfa, methods=["POST"]),
    Route("/staff/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/staff/v1/auth/logout", logout, methods=["POST"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
]
