"""The flow steps the security center offers the kernel: a customer's consents to partner
apps (grant, list, revoke). Each change is journaled by the kernel and audited here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.cau import service as cau
from channelhub.kernel.errors import ValidationFailed
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.ids import new_id
from channelhub.security import repository
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import ConsentInvalid
from channelhub.security.partners import consent_view

__all__: list[str] = []


async def _audit(ctx: StepContext, action: str, details: dict[str, Any]) -> None:
    principal = ctx.request.principal
    await record_audit(
        ctx.session,
        action=action,
        outcome="succeeded",
        actor_kind=principal.kind.value,
        actor_id=principal.attributes.get("username"),
        channel=ctx.request.channel,
        source_address=ctx.request.source_address,
        details=details,
        now=ctx.now,
    )


@registry.step("security.consent.grant")
async def consent_grant(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Grant a partner app access to some of the customer's accounts, for some scopes."""
    payload = ctx.request.payload
    customer_id = cau.acting_customer_id(ctx.request.principal)
    app = await repository.partner_app(ctx.session, str(payload["client_id"]))
    if app is None or app.status != "active":
        raise ConsentInvalid("no active partner app has this client id")
    scopes = sorted(set(payload["scopes"]))
    beyond = set(scopes) - set(app.scopes)
    if beyond:
        raise ValidationFailed(
            f"the app may not be granted {', '.join(sorted(beyond))}", details={"field": "scopes"}
        )
    accounts = sorted(set(payload["accounts"]))
    for number in accounts:  # each must be the customer's own
        await cau.owned_account(ctx.session, ctx.request.principal, number)
    consent_id = new_id()
    row = {
        "id": consent_id,
        "client_id": app.client_id,
        "customer_id": customer_id,
        "granted_by": uuid.UUID(str(ctx.request.principal.id)),
        "accounts": accounts,
        "scopes": scopes,
        "granted_at": ctx.now,
        "expires_at": ctx.now + dt.timedelta(days=int(payload.get("days", 90))),
        "revoked_at": None,
    }
    await repository.insert_consent(ctx.session, row)
    await _audit(ctx, "consent.grant", {"consent": str(consent_id), "client_id": app.client_id})
    ctx.data.update(consent_view(await repository.consent(ctx.session, consent_id), ctx.now))
    return {"consent": str(consent_id)}


@registry.step("security.consent.list")
async def consent_list(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """List the customer's consents, newest first."""
    customer_id = cau.acting_customer_id(ctx.request.principal)
    rows = await repository.consents_of_customer(ctx.session, customer_id)
    ctx.data["consents"] = [consent_view(row, ctx.now) for row in rows]


@registry.step("security.consent.revoke")
async def consent_revoke(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Revoke one of the customer's consents; the app is refused from now on."""
    customer_id = cau.acting_customer_id(ctx.request.principal)
    try:
        key = uuid.UUID(str(ctx.request.payload["consent"]))
    except ValueError:
        raise ConsentInvalid("no such consent") from None
    row = await repository.consent(ctx.session, key)
    if row is None or row.customer_id != customer_id:
        raise ConsentInvalid("no such consent")
    if not await repository.revoke_consent(ctx.session, key, ctx.now):
        raise ConsentInvalid("the consent was already revoked")
    await _audit(ctx, "consent.revoke", {"consent": str(key), "client_id": row.client_id})
    ctx.data.update(consent_view(await repository.consent(ctx.session, key), ctx.now))
