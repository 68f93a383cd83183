"""The security center's management routes for staff: password resets and the four-eyes
approval queue. Thin: each decodes, calls approvals.py, encodes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.kernel.codes import lookup
from channelhub.security import approvals
from channelhub.security.http import handle, json_response, read_body, source_address, staff
from channelhub.security.schemas import ApprovalDecisionBody, PasswordResetBody

__all__ = ["routes"]


async def request_password_reset(request: Request) -> Response:
    """Ask for a customer user's password reset; a second staff member must approve it."""

    async def run() -> Response:
        principal = await staff(request)
        body = await read_body(request, PasswordResetBody)
        approval = await approvals.request(
            request.app.state.security,
            principal,
            "customer.password.reset",
            {"username": body.username},
            source_address=source_address(request),
        )
        entry = lookup("APPROVAL_REQUIRED")
        return json_response(
            {"code": entry.code, "message": entry.message_en, "approval": approval},
            entry.http_status,
        )

    return await handle(request, run)


async def list_approvals(request: Request) -> Response:
    """The pending approvals."""

    async def run() -> Response:
        principal = await staff(request)
        return json_response(
            {"approvals": await approvals.pending(request.app.state.security, principal)}
        )

    return await handle(request, run)


def _decision(approve: bool) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request) -> Response:
        async def run() -> Response:
            principal = await staff(request)
            body = await read_body(request, ApprovalDecisionBody)
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
                source_address=source_address(request),
            )
            return json_response({"approval": approval, "result": result})

        return await handle(request, run)

    return decide


routes = [
    Route("/staff/v1/password-resets", request_password_reset, methods=["POST"]),
    Route("/staff/v1/approvals", list_approvals, methods=["GET"]),
    Route("/staff/v1/approvals/{approval_id}/approve", _decision(True), methods=["POST"]),
    Route("/staff/v1/approvals/{approval_id}/reject", _decision(False), methods=["POST"]),
]
