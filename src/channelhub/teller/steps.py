"""The flow steps the teller desk offers the kernel.

``teller.cash.prepare`` plans a cash deposit or withdrawal (the teller desk's and the ATM's);
``teller.authority`` parks a transaction a teller may not complete alone, so that the steps
after it only hold the money until a supervisor decides; the others serve the desk's own
services.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.kernel.errors import ValidationFailed
from channelhub.kernel.model import PrincipalKind
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.clock import business_date
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money
from channelhub.teller import rules, service
from channelhub.teller.service import TellerDesk

__all__: list[str] = []


def _today(ctx: StepContext) -> dt.date:
    return business_date(ctx.now, ctx.time_zone)


def _desk(ctx: StepContext) -> TellerDesk:
    desk = ctx.services.get("teller")
    if desk is None:
        raise ChannelhubError("the teller desk is not running on this node")
    return desk  # type: ignore[no-any-return]


@registry.step("teller.cash.prepare")
async def cash_prepare(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check a cash deposit or withdrawal and plan it against the branch's cash account.

    Params: ``direction`` (``deposit`` or ``withdraw``).
    """
    direction = str(params.get("direction", ""))
    if direction not in ("deposit", "withdraw"):
        raise ChannelhubError(f"teller.cash.prepare: unknown direction {direction!r}")
    plan = await service.cash_plan(
        ctx.session, ctx.request.principal, ctx.request.payload, direction=direction
    )
    ctx.data.update(
        account=plan["account"],
        currency=plan["currency"],
        amount=Money(plan["amount_minor"], plan["currency"]).to_decimal_string(),
        branch=plan["branch"],
    )
    return plan


@registry.step("teller.authority", mutates=True)
async def authority(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Park a teller's transaction whose amount is over the teller's authority: it waits for
    a supervisor of the branch, its money held. Anyone else (a supervisor at the desk, a
    terminal, a customer's own login) passes."""
    principal = ctx.request.principal
    if principal.kind is not PrincipalKind.STAFF or principal.attributes.get("role") != "teller":
        return {}
    fields = ctx.service.definition.amount
    if fields is None:
        raise ChannelhubError(f"{ctx.service.id} has no amount for teller.authority")
    payload = ctx.request.payload
    amount = Money.parse(payload.get(fields.amount), payload.get(fields.currency))
    limit = _desk(ctx).authority(amount.currency)
    if not rules.over_authority(amount, {} if limit is None else {amount.currency: limit}):
        return {}
    shown = await service.park_for_approval(
        ctx.session,
        txn_id=ctx.txn_id,
        principal=principal,
        service_id=ctx.service.id,
        amount=amount,
        payload=payload,
        authority=limit,
        now=ctx.now,
        zone=ctx.time_zone,
    )
    # A transaction the risk engine parked for review stays so; it needs this approval too,
    # and completes only once both gates are passed (kernel/held.py).
    ctx.parked = ctx.parked or "approval"
    ctx.data.update(shown)
    return {"approval": shown["approval"], "gate": "approval"}


@registry.compensation("teller.authority.withdraw")
async def authority_withdraw(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Close the approval of a transaction undone before a supervisor decided it."""
    if output and output.get("approval"):
        await service.withdraw_approval(
            ctx.session, uuid.UUID(str(output["approval"])), now=ctx.now
        )


@registry.step("teller.customer.onboard", mutates=True)
async def customer_onboard(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Make a customer from the KYC data the teller took, with a first account."""
    made = await service.onboard_customer(
        ctx.session, ctx.request.principal, ctx.request.payload, now=ctx.now, today=_today(ctx)
    )
    ctx.data.update({key: value for key, value in made.items() if key != "customer_id"})
    return made


@registry.compensation("teller.customer.void")
async def customer_void(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Close the customer and account a failed onboarding made."""
    if output:
        await service.void_customer(ctx.session, output, now=ctx.now, today=_today(ctx))


@registry.step("teller.account.close", mutates=True)
async def account_close(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Close one of the customer's accounts, empty and with nothing on hold."""
    closed = await service.close_account(
        ctx.session,
        ctx.request.principal,
        str(ctx.request.payload["account"]),
        now=ctx.now,
        today=_today(ctx),
    )
    ctx.data.update(closed)
    return {"account": closed["account"]}


@registry.step("teller.cash.position")
async def cash_position(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show the calling teller's cash taken in and paid out on a business day, by currency."""
    wanted = ctx.request.payload.get("date")
    try:
        day = dt.date.fromisoformat(str(wanted)) if wanted is not None else _today(ctx)
    except ValueError:
        raise ValidationFailed(
            "date: not a date (YYYY-MM-DD)", details={"field": "date", "reason": "not a date"}
        ) from None
    ctx.data.update(
        await service.teller_position(
            ctx.session, ctx.request.principal, day=day, zone=ctx.time_zone
        )
    )
