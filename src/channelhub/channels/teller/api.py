"""The teller desk's wire: ``POST /teller/v1/services/{service_id}``.

A staff member (a teller, or a supervisor serving at the desk) logged in for the ``teller``
channel calls any service released on it, for the customer standing at the counter::

    {"customer": {"id_document": {"type": "resident_id", "number": "..."}},
     "input": {...the service's input...}}

or ``"customer": {"card": "<card number>", "pin": "<PIN>"}``. The desk identifies the
customer first; the kernel then runs the service for the teller's principal carrying the
customer's id, so every service's object-level checks hold the teller to that customer.
The PIN is checked against the card's verifier and is never logged, stored or echoed.

Supervisors decide what is over a teller's authority at ``/teller/v1/approvals``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
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
from channelhub.kernel import Principal, TransactionEngine, TransactionRequest
from channelhub.kernel.model import PrincipalKind
from channelhub.kit.errors import ChannelhubError
from channelhub.security import http
from channelhub.security.service import SecurityCenter
from channelhub.teller.errors import ApprovalNotFound
from channelhub.teller.schemas import DecisionBody, Identification
from channelhub.teller.service import DESK_PERMISSION, TellerDesk

__all__ = ["routes"]


CHANNEL = "teller"
#: Longer than any token this platform issues; a longer header is refused unread.
_MAX_TOKEN_LENGTH = 4096
_BODY_KEYS = frozenset({"customer", "input"})


async def _teller(request: Request) -> Principal:
    """Return the staff principal of a desk token.

    Raises:
        Refused: no token (UNAUTHENTICATED), a bad or expired one (TOKEN_INVALID), or one
            that is not a desk staff member's (FORBIDDEN).
    """
    header = request.headers.get("authorization")
    if header is None:
        raise Refused("UNAUTHENTICATED", "send a staff access token as Authorization: Bearer")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_LENGTH:
        raise Refused("TOKEN_INVALID", "send the access token as Authorization: Bearer <token>")
    security: SecurityCenter = request.app.state.security
    try:
        principal = await security.authenticate(token)
    except ChannelhubError as error:
        raise Refused(error.code, error.message) from None
    if principal.kind is not PrincipalKind.STAFF:
        raise Refused("FORBIDDEN", "the teller desk is for staff")
    if principal.attributes.get("channel") != CHANNEL:
        raise Refused("FORBIDDEN", "this token is not for the teller channel")
    if DESK_PERMISSION not in principal.scopes:
        raise Refused("FORBIDDEN", f"serving at the desk needs {DESK_PERMISSION}")
    return principal


def _split(wire: dict[str, object]) -> tuple[dict[str, object], Identification | None]:
    """Return the service input and how the customer was identified, if they were."""
    unknown = sorted(set(wire) - _BODY_KEYS)
    if unknown:
        raise Refused(
            "VALIDATION_FAILED", f"{unknown[0]}: not a field of the desk's request",
            field=unknown[0],
        )  # fmt: skip
    payload = wire.get("input", {})
    if not isinstance(payload, dict):
        raise Refused("VALIDATION_FAILED", "input: must be an object", field="input")
    customer = wire.get("customer")
    if customer is None:
        return payload, None
    try:
        return payload, Identification.model_validate(customer)
    except ValidationError as error:
        # Only where and what: pydantic's own text would echo the value, a PIN included.
        first = error.errors()[0]
        where = ".".join(str(part) for part in ("customer", *first["loc"]))
        reason = "is invalid" if first["type"] != "value_error" else first["msg"][13:]
        raise Refused("VALIDATION_FAILED", f"{where}: {reason}", field=where) from None


def _build_request(
    request: Request, payload: dict[str, object], principal: Principal
) -> TransactionRequest:
    key = idempotency_key(request)
    return TransactionRequest(
        service_id=request.path_params["service_id"],
        channel=CHANNEL,
        principal=principal,
        payload=payload,
        idempotency_key=key,
        device_id=principal.attributes.get("device_id"),
        source_address=request.client.host if request.client else None,
        locale=locale_of(request.headers.get("accept-language")),
    )


def _desk(request: Request) -> TellerDesk:
    engine: TransactionEngine = request.app.state.engine
    return engine.services["teller"]  # type: ignore[no-any-return]


async def invoke_service(request: Request) -> Response:
    """Decode one desk call, identify the customer, run the service, encode the envelope."""
    locale = locale_of(request.headers.get("accept-language"))
    try:
        principal = await _teller(request)
        body = await read_body(request, request.app.state.max_body_bytes)
        payload, identification = _split(decode_json(request, body))
        if identification is not None:
            try:
                principal = await _desk(request).identify(principal, identification)
            except ChannelhubError as error:
                raise Refused(error.code, error.message) from None
        transaction = _build_request(request, payload, principal)
    except Refused as refusal:
        return refusal_response(request, refusal, locale=locale)
    except ClientDisconnect:
        return Response(status_code=499)
    engine: TransactionEngine = request.app.state.engine
    return result_response(await engine.execute(transaction))


def _txn_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["txn_id"])
    except ValueError:
        raise ApprovalNotFound("no such approval") from None


async def list_approvals(request: Request) -> Response:
    """``GET /teller/v1/approvals``: what waits for a supervisor of the caller's branch."""

    async def run() -> Response:
        principal = await http.staff(request)
        return http.json_response({"approvals": await _desk(request).pending(principal)})

    return await http.handle(request, run)


def _decision(approve: bool) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request) -> Response:
        async def run() -> Response:
            principal = await http.staff(request)
            body = await http.read_body(request, DecisionBody)
            approval = await _desk(request).decide(
                request.app.state.engine,
                principal,
                _txn_id(request),
                approve=approve,
                reason=body.reason,
                source_address=http.source_address(request),
            )
            return http.json_response({"approval": approval})

        return await http.handle(request, run)

    return decide


routes = [
    Route("/teller/v1/services/{service_id}", invoke_service, methods=["POST"]),
    Route("/teller/v1/approvals", list_approvals, methods=["GET"]),
    Route("/teller/v1/approvals/{txn_id}/approve", _decision(True), methods=["POST"]),
    Route("/teller/v1/approvals/{txn_id}/reject", _decision(False), methods=["POST"]),
]
