"""Four-eyes: a sensitive operation asked for by one staff member runs only when a second,
different one, holding the operation's approval permission, approves it. Both identities stay
on the approval and in the audit log.

Each operation registers what permission asking takes, what permission approving takes, and
what running it does. Running happens in the approver's transaction; a secret it makes (a
temporary password) is handed back once and stored nowhere.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.cau import service as cau
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.model import Principal
from channelhub.kit.clock import utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.security import repository
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import ApprovalNotPending, SameApprover
from channelhub.security.rbac import has_permission
from channelhub.security.service import SecurityCenter

__all__ = [
    "OPERATIONS",
    "NotFound",
    "Operation",
    "approval_view",
    "decide",
    "pending",
    "register",
    "request",
]

#: An approval nobody decided within a day expires.
_APPROVAL_LIFETIME = dt.timedelta(hours=24)

Execute = Callable[
    [SecurityCenter, AsyncSession, Mapping[str, Any], dt.datetime], Awaitable[dict[str, Any]]
]


class NotFound(ChannelhubError):
    """What the operation names does not exist."""

    code = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class Operation:
    """A sensitive operation: who may ask, who may approve, and what it does."""

    request_permission: str
    approve_permission: str
    #: Checks the payload when asked; returns what the approver is shown.
    prepare: Callable[[AsyncSession, Mapping[str, Any]], Awaitable[dict[str, Any]]]
    execute: Execute


def _temporary_password() -> str:
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(14))
    return f"{body}-{secrets.choice(string.digits)}{secrets.choice(string.ascii_uppercase)}"


async def _prepare_reset(session: AsyncSession, payload: Mapping[str, Any]) -> dict[str, Any]:
    username = str(payload.get("username", ""))[:64]
    identity = await cau.login_identity(session, "customer", username)
    if identity is None:
        raise NotFound("no customer user has this username", details={"username": username})
    return {"username": identity.username, "user_id": str(identity.id)}


async def _reset_password(
    center: SecurityCenter, session: AsyncSession, payload: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    subject = uuid.UUID(str(payload["user_id"]))
    temporary = _temporary_password()
    await center.set_password(
        session, "customer", subject, str(payload["username"]), temporary, must_change=True, now=now
    )
    await center.end_sessions(session, "customer", subject, reason="password_reset", now=now)
    await repository.clear_failures(session, center.throttle_key("customer", payload["username"]))
    # Shown once to the approver, who hands it to the customer; never stored or logged.
    return {"temporary_password": temporary}


OPERATIONS: dict[str, Operation] = {
    "customer.password.reset": Operation(
        request_permission="customer.password.reset",
        approve_permission="approval.password_reset",
        prepare=_prepare_reset,
        execute=_reset_password,
    ),
}


def register(name: str, operation: Operation) -> None:
    """Make ``name`` a four-eyes operation (other domains register theirs: limit changes,
    risk list changes)."""
    existing = OPERATIONS.get(name)
    if existing is not None and existing != operation:
        raise ValueError(f"approval operation {name!r} is registered twice")
    OPERATIONS[name] = operation


def _staff_id(principal: Principal) -> uuid.UUID:
    return uuid.UUID(str(principal.id))


def approval_view(row: Any) -> dict[str, Any]:
    """Return an approval as the management API shows it."""
    return {
        "id": str(row.id),
        "operation": row.operation,
        "payload": dict(row.payload),
        "status": row.status,
        "requested_by": row.requested_by_name,
        "requested_at": row.requested_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "decided_by": row.decided_by_name,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "reason": row.reason,
    }


async def request(
    center: SecurityCenter,
    principal: Principal,
    operation: str,
    payload: Mapping[str, Any],
    *,
    source_address: str | None = None,
) -> dict[str, Any]:
    """Ask for a sensitive operation; return the pending approval.

    Raises:
        Forbidden: the caller may not ask for it.
        NotFound: what the payload names does not exist.
    """
    spec = OPERATIONS.get(operation)
    if spec is None or not has_permission(principal, spec.request_permission):
        raise Forbidden(f"you may not request {operation}")
    now = utc_now()
    async with center.sessions() as session, session.begin():
        prepared = await spec.prepare(session, payload)
        approval_id = new_id()
        requester = principal.attributes.get("username", "")
        row: dict[str, Any] = {
            "id": approval_id,
            "operation": operation,
            "payload": prepared,
            "approve_permission": spec.approve_permission,
            "requested_by": _staff_id(principal),
            "requested_by_name": requester,
            "branch_code": principal.attributes.get("branch"),
            "requested_at": now,
            "expires_at": now + _APPROVAL_LIFETIME,
            "status": "pending",
            "decided_by": None,
            "decided_by_name": None,
            "decided_at": None,
            "reason": None,
        }
        await repository.insert_approval(session, row)
        await record_audit(
            session,
            action="approval.request",
            outcome="pending",
            actor_kind="staff",
            actor_id=requester,
            channel=principal.attributes.get("channel"),
            source_address=source_address,
            details={"approval": str(approval_id), "operation": operation, **prepared},
            now=now,
        )
        return approval_view(await repository.approval(session, approval_id))


async def pending(center: SecurityCenter, principal: Principal) -> list[dict[str, Any]]:
    """Return the pending approvals the caller may see."""
    if not has_permission(principal, "approval.read"):
        raise Forbidden("you may not read approvals")
    async with center.sessions() as session:
        return [approval_view(row) for row in await repository.pending_approvals(session)]


async def decide(
    center: SecurityCenter,
    principal: Principal,
    approval_id: uuid.UUID,
    *,
    approve: bool,
    reason: str | None = None,
    source_address: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Approve (and run) or reject a pending operation; return the approval and what the
    operation hands back once (empty on a rejection).

    Raises:
        NotFound: no such approval.
        SameApprover: the caller asked for it.
        Forbidden: the caller lacks the operation's approval permission.
        ApprovalNotPending: already decided, or expired.
    """
    now = utc_now()
    async with center.sessions() as session, session.begin():
        row = await repository.approval(session, approval_id, for_update=True)
        if row is None:
            raise NotFound("no such approval", details={"approval": str(approval_id)})
        if row.requested_by == _staff_id(principal):
            await _audit_decision(session, principal, row, "same_approver", now, source_address)
            refusal: ChannelhubError | None = SameApprover(
                "you asked for this; a second staff member must approve it"
            )
        elif not has_permission(principal, row.approve_permission):
            refusal = Forbidden(f"approving {row.operation} needs {row.approve_permission}")
        elif row.status != "pending" or row.expires_at <= now:
            refusal = ApprovalNotPending(f"the approval is {row.status}")
        else:
            refusal = None
        if refusal is not None:
            failed = refusal
        else:
            failed = None
            shown: dict[str, Any] = {}
            if approve:
                # The operation sees who asked and who approved, for its own records.
                payload = {
                    **row.payload,
                    "requested_by": row.requested_by_name,
                    "approved_by": principal.attributes.get("username", ""),
                }
                shown = await OPERATIONS[row.operation].execute(center, session, payload, now)
            await repository.decide_approval(
                session,
                approval_id,
                status="approved" if approve else "rejected",
                by=_staff_id(principal),
                by_name=principal.attributes.get("username", ""),
                reason=(reason or "")[:200] or None,
                now=now,
            )
            outcome = "approved" if approve else "rejected"
            await _audit_decision(session, principal, row, outcome, now, source_address)
            decided = approval_view(await repository.approval(session, approval_id))
    if failed is not None:
        raise failed
    return decided, shown


async def _audit_decision(
    session: AsyncSession,
    principal: Principal,
    row: Any,
    outcome: str,
    now: dt.datetime,
    source_address: str | None,
) -> None:
    await record_audit(
        session,
        action="approval.decide",
        outcome=outcome,
        actor_kind="staff",
        actor_id=principal.attributes.get("username"),
        channel=principal.attributes.get("channel"),
        source_address=source_address,
        details={
            "approval": str(row.id),
            "operation": row.operation,
            "requested_by": row.requested_by_name,
        },
        now=now,
    )
