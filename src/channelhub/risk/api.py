"""The risk engine's staff routes: rules (versions, shadow mode), lists (changes through
four-eyes), decisions and the review queue. Thin: each decodes, calls the service, encodes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.kernel.codes import lookup
from channelhub.kernel.errors import Forbidden
from channelhub.kit.clock import utc_now
from channelhub.risk import repository, service
from channelhub.risk.schemas import ListChangeBody, ReviewDecisionBody, RuleBody, RuleModeBody
from channelhub.security import approvals
from channelhub.security.http import handle, json_response, read_body, source_address, staff
from channelhub.security.rbac import has_permission

__all__ = ["routes"]

#: A rule's expression may be 4,000 characters and its description 500, escaped in JSON.
_RULE_BODY_BYTES = 16_384


def _uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise approvals.NotFound(f"no such {name.removesuffix('_id')}") from None


async def list_rules(request: Request) -> Response:
    """Every rule version; ``?all=1`` includes retired ones."""

    async def run() -> Response:
        principal = await staff(request)
        if not has_permission(principal, "risk.read"):
            raise Forbidden("reading rules needs risk.read")
        everything = request.query_params.get("all") in ("1", "true")
        async with request.app.state.security.sessions() as session:
            rows = await repository.rules(session, include_retired=everything)
        return json_response({"rules": [service.rule_view(row) for row in rows]})

    return await handle(request, run)


async def add_rule(request: Request) -> Response:
    """Save a rule as its name's next version (shadow unless ``mode: active``); a rule that
    does not compile is refused with its line and column."""

    async def run() -> Response:
        principal = await staff(request)
        if not has_permission(principal, "risk.rules.manage"):
            raise Forbidden("changing rules needs risk.rules.manage")
        body = await read_body(request, RuleBody, limit=_RULE_BODY_BYTES)
        engine = request.app.state.runtime.risk
        async with request.app.state.security.sessions() as session, session.begin():
            rule = await service.save_rule(
                session,
                body,
                by=principal.attributes.get("username", ""),
                now=utc_now(),
                error_outcome=engine.error_outcome,
            )
        engine.invalidate()
        return json_response({"rule": rule}, 201)

    return await handle(request, run)


async def switch_rule(request: Request) -> Response:
    """Switch a rule version on, to shadow, or off."""

    async def run() -> Response:
        principal = await staff(request)
        if not has_permission(principal, "risk.rules.manage"):
            raise Forbidden("changing rules needs risk.rules.manage")
        body = await read_body(request, RuleModeBody)
        try:
            version = int(request.path_params["version"])
        except ValueError:
            raise approvals.NotFound("no such rule version") from None
        async with request.app.state.security.sessions() as session, session.begin():
            rule = await service.switch_rule(
                session, request.path_params["name"], version, body.mode, utc_now()
            )
        request.app.state.runtime.risk.invalidate()
        return json_response({"rule": rule})

    return await handle(request, run)


async def list_lists(request: Request) -> Response:
    """Every deny and watch list entry."""

    async def run() -> Response:
        principal = await staff(request)
        async with request.app.state.security.sessions() as session:
            return json_response({"entries": await service.lists(session, principal)})

    return await handle(request, run)


async def change_list(request: Request) -> Response:
    """Ask to add to or remove from a list; a second staff member approves it."""

    async def run() -> Response:
        principal = await staff(request)
        body = await read_body(request, ListChangeBody)
        approval = await approvals.request(
            request.app.state.security,
            principal,
            "risk.list.change",
            body.model_dump(),
            source_address=source_address(request),
        )
        entry = lookup("APPROVAL_REQUIRED")
        return json_response(
            {"code": entry.code, "message": entry.message_en, "approval": approval},
            entry.http_status,
        )

    return await handle(request, run)


async def list_reviews(request: Request) -> Response:
    """The review queue, oldest first, each with why it was held."""

    async def run() -> Response:
        principal = await staff(request)
        async with request.app.state.security.sessions() as session:
            return json_response({"reviews": await service.pending_reviews(session, principal)})

    return await handle(request, run)


def _review_decision(approve: bool) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request) -> Response:
        async def run() -> Response:
            principal = await staff(request)
            body = await read_body(request, ReviewDecisionBody)
            review = await service.decide_review(
                request.app.state.engine,
                principal,
                _uuid(request, "review_id"),
                approve=approve,
                reason=body.reason,
                source_address=source_address(request),
            )
            return json_response({"review": review})

        return await handle(request, run)

    return decide


async def transaction_decisions(request: Request) -> Response:
    """Every risk decision on a transaction, with the rules fired and the features seen."""

    async def run() -> Response:
        principal = await staff(request)
        if not has_permission(principal, "risk.read"):
            raise Forbidden("reading decisions needs risk.read")
        txn_id = _uuid(request, "txn_id")
        async with request.app.state.security.sessions() as session:
            rows = await repository.decisions_of(session, txn_id)
        return json_response({"decisions": [service.decision_view(row) for row in rows]})

    return await handle(request, run)


routes = [
    Route("/staff/v1/risk/rules", list_rules, methods=["GET"]),
    Route("/staff/v1/risk/rules", add_rule, methods=["POST"]),
    Route("/staff/v1/risk/rules/{name}/{version}/mode", switch_rule, methods=["POST"]),
    Route("/staff/v1/risk/lists", list_lists, methods=["GET"]),
    Route("/staff/v1/risk/lists", change_list, methods=["POST"]),
    Route("/staff/v1/risk/reviews", list_reviews, methods=["GET"]),
    Route("/staff/v1/risk/reviews/{review_id}/approve", _review_decision(True), methods=["POST"]),
    Route("/staff/v1/risk/reviews/{review_id}/reject", _review_decision(False), methods=["POST"]),
    Route("/staff/v1/risk/transactions/{txn_id}/decisions", transaction_decisions, methods=["GET"]),
]
