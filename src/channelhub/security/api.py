"""The security center's management routes for staff: password resets and the four-eyes
approval queue. Thin: each decodes, calls approvals.py, encodes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.kernel.codes import lookup
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.model import Principal, PrincipalKind
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.security import approvals
from channelhub.security.errors import TokenInvalid
from channelhub.security.schemas import ApprovalDecisionBody, PasswordResetBody
from channelhub.security.service import SecurityCenter

__all__ = ["routes"]

_MAX_BODY = 4096
_Body = TypeVar("_Body", bound=BaseModel)


class _BadRequest(ChannelhubError):
    code = "VALIDATION_FAILED"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(error: ChannelhubError) -> Response:
    entry = lookup(error.code)
    body: dict[str, Any] = {
        "txn_id": str(new_id()),
        "status": "failed",
        "code": entry.code,
        "message": error.message,
        "data": {},
    }
    if error.details:
        body["details"] = error.details
    return _json(body, entry.http_status)


async def _staff(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 4096:
        raise TokenInvalid("send a staff access token as Authorization: Bearer <token>")
    security: SecurityCenter = request.app.state.security
    principal = await security.authenticate(token.strip())
    if principal.kind is not PrincipalKind.STAFF:
        raise Forbidden("staff only")
    return principal


async def _body(request: Request, shape: type[_Body]) -> _Body:
    raw = bytearray()
    async for chunk in request.stream():  # never more than the limit in memory
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise _BadRequest(f"the body exceeds {_MAX_BODY} bytes")
    try:
        return shape.model_validate(orjson.loads(bytes(raw) or b"{}"))
    except (orjson.JSONDecodeError, ValidationError):
        raise _BadRequest(f"the body does not match {shape.__name__}") from None


async def _handle(request: Request, action: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await action()
    except ChannelhubError as error:
        return _error(error)


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


async def request_password_reset(request: Request) -> Response:
    """Ask for a customer user's password reset; a second staff member must approve it."""

    async def run() -> Response:
        principal = await _staff(request)
        body = await _body(request, PasswordResetBody)
        approval = await approvals.request(
            request.app.state.security,
            principal,
            "customer.password.reset",
            {"username": body.username},
            source_address=_source(request),
        )
        entry = lookup("APPROVAL_REQUIRED")
        return _json(
            {"code": entry.code, "message": entry.message_en, "approval": approval},
            entry.http_status,
        )

    return await _handle(request, run)


async def list_approvals(request: Request) -> Response:
    """The pending approvals."""

    async def run() -> Response:
        principal = await _staff(request)
        return _json({"approvals": await approvals.pending(request.app.state.security, principal)})

    return await _handle(request, run)


def _decision(approve: bool) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request) -> Response:
        async def run() -> Response:
            principal = await _staff(request)
            body = await _body(request, ApprovalDecisionBody)
            try:
                approval_id = uuid.UUID(request.path_params["approval_id"])
            except ValueError:
                raise approvals.NotFound("no such approval") from None
            approval, result = await approvals.decide(
                request.app.state.security,
                principal,
                approval_id,
                approve=approve,
                reason=body.reason,
                source_address=_source(request),
            )
            return _json({"approval": approval, "result": result})

        return await _handle(request, run)

    return decide


routes = [
    Route("/staff/v1/password-resets", request_password_reset, methods=["POST"]),
    Route("/staff/v1/approvals", list_approvals, methods=["GET"]),
    Route("/staff/v1/approvals/{approval_id}/approve", _decision(True), methods=["POST"]),
    Route("/staff/v1/approvals/{approval_id}/reject", _decision(False), methods=["POST"]),
]
