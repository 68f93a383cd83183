"""HTTP helpers every staff management route shares: the staff principal from its bearer
token, a bounded JSON body checked against a Pydantic shape, and the envelope for answers
and refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from channelhub.kernel.codes import lookup
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.model import Principal, PrincipalKind
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.security.errors import TokenInvalid
from channelhub.security.service import SecurityCenter

__all__ = ["BadRequest", "handle", "json_response", "read_body", "source_address", "staff"]

_MAX_BODY = 4096
Shape = TypeVar("Shape", bound=BaseModel)


class BadRequest(ChannelhubError):
    """The body is too large or does not match its shape."""

    code = "VALIDATION_FAILED"


def json_response(body: dict[str, Any], status: int = 200) -> Response:
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
    return json_response(body, entry.http_status)


async def staff(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 4096:
        raise TokenInvalid("send a staff access token as Authorization: Bearer <token>")
    security: SecurityCenter = request.app.state.security
    principal = await security.authenticate(token.strip())
    if principal.kind is not PrincipalKind.STAFF:
        raise Forbidden("staff only")
    return principal


async def read_body(request: Request, shape: type[Shape], *, limit: int = _MAX_BODY) -> Shape:
    raw = bytearray()
    async for chunk in request.stream():  # never more than the limit in memory
        raw += chunk
        if len(raw) > limit:
            raise BadRequest(f"the body exceeds {limit} bytes")
    try:
        return shape.model_validate(orjson.loads(bytes(raw) or b"{}"))
    except (orjson.JSONDecodeError, ValidationError):
        raise BadRequest(f"the body does not match {shape.__name__}") from None


async def handle(request: Request, action: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await action()
    except ChannelhubError as error:
        return _error(error)


def source_address(request: Request) -> str | None:
    return request.client.host if request.client else None
