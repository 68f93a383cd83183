"""Limit management's staff routes: read the bank's limits, and ask for a change, which a
second staff member approves through ``/staff/v1/approvals`` (four-eyes). Thin: each
decodes, calls the service, encodes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.kernel.codes import lookup
from channelhub.kernel.errors import Forbidden
from channelhub.limits import service
from channelhub.limits.schemas import LimitChangeBody
from channelhub.security import approvals
from channelhub.security.http import handle, json_response, read_body, source_address, staff
from channelhub.security.rbac import has_permission

__all__ = ["routes"]


async def list_limits(request: Request) -> Response:
    """The bank's limits; ``?all=1`` includes retired ones."""

    async def run() -> Response:
        principal = await staff(request)
        if not has_permission(principal, "limit.read"):
            raise Forbidden("reading limits needs limit.read")
        include_retired = request.query_params.get("all") in ("1", "true")
        async with request.app.state.security.sessions() as session:
            limits = await service.bank_limits(session, include_retired=include_retired)
        return json_response({"limits": limits})

    return await handle(request, run)


async def request_change(request: Request) -> Response:
    """Ask to set or retire a bank limit; it applies once a second staff member approves."""

    async def run() -> Response:
        principal = await staff(request)
        body = await read_body(request, LimitChangeBody)
        approval = await approvals.request(
            request.app.state.security,
            principal,
            "limit.change",
            body.model_dump(),
            source_address=source_address(request),
        )
        entry = lookup("APPROVAL_REQUIRED")
        return json_response(
            {"code": entry.code, "message": entry.message_en, "approval": approval},
            entry.http_status,
        )

    return await handle(request, run)


routes = [
    Route("/staff/v1/limits", list_limits, methods=["GET"]),
    Route("/staff/v1/limits", request_change, methods=["POST"]),
]
