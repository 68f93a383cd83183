"""The flow steps the ledger offers the kernel: book a plan, and reverse what was booked.

A transaction parked for review (``ctx.parked``) only holds what it would debit; approving it
posts the plan against those holds, rejecting it releases them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.clock import business_date
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money
from channelhub.ledger import service
from channelhub.ledger.schemas import Leg, PostedEntry

__all__: list[str] = []


def _plan(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    plan = ctx.outputs.get(str(params["plan"]))
    if not plan:
        raise ChannelhubError(f"ledger.post: no plan from step {params['plan']!r}")
    return dict(plan)


def _report(
    ctx: StepContext, params: Mapping[str, Any], plan: Mapping[str, Any], posted: PostedEntry
) -> None:
    for field, plan_key in (params.get("report") or {}).items():
        balance = posted.balances.get(str(plan.get(plan_key)))
        if balance is not None:
            ctx.data[field] = Money(balance.available_minor, balance.currency).to_decimal_string()
    ctx.data["entry_id"] = str(posted.entry_id)


@registry.step("ledger.post", mutates=True)
async def post(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Book the legs an earlier step planned, as one balanced entry.

    Params: ``plan`` (the id of the step whose output holds ``kind``, ``description`` and
    ``legs``); ``report`` maps response fields to plan fields naming accounts whose available
    balance after the entry the response shows, e.g. ``{from_available_balance: from_account}``.
    """
    plan = _plan(ctx, params)
    legs = [Leg(**leg) for leg in plan["legs"]]
    if not legs:
        return {}
    if ctx.parked:
        holds = await service.hold_debits(
            ctx.session,
            legs=legs,
            reference=f"{ctx.parked}: {ctx.txn_id}",
            now=ctx.now,
            txn_id=ctx.txn_id,
        )
        return {"held": holds}
    posted = await service.post_entry(
        ctx.session,
        legs=legs,
        kind=str(plan["kind"]),
        description=str(plan["description"]),
        now=ctx.now,
        value_date=business_date(ctx.now, ctx.time_zone),
        txn_id=ctx.txn_id,
    )
    _report(ctx, params, plan, posted)
    return {"entry_id": str(posted.entry_id)}


@registry.step("ledger.hold", mutates=True)
async def hold(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Hold on each customer account what the plan would debit, posting nothing (a card
    authorization: the money is reserved until captured or released); ``ledger.reverse``
    releases the holds.

    Params: ``plan`` and ``report`` as for ``ledger.post`` (balances after the holds).
    """
    plan = _plan(ctx, params)
    legs = [Leg(**leg) for leg in plan["legs"]]
    holds = await service.hold_debits(
        ctx.session,
        legs=legs,
        reference=f"authorization: {ctx.txn_id}",
        now=ctx.now,
        txn_id=ctx.txn_id,
    )
    wanted = {field: str(plan.get(key)) for field, key in (params.get("report") or {}).items()}
    found = await service.balances(ctx.session, list(wanted.values()))
    for field, account in wanted.items():
        if account in found:
            balance = found[account]
            ctx.data[field] = Money(balance.available_minor, balance.currency).to_decimal_string()
    return {"held": holds}


@registry.resumption("ledger.post")
async def post_held(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """Post the plan of an approved transaction against the holds its review placed."""
    if not output or "held" not in output:
        return output
    plan = _plan(ctx, params)
    posted = await service.post_held(
        ctx.session,
        legs=[Leg(**leg) for leg in plan["legs"]],
        holds=output["held"],
        kind=str(plan["kind"]),
        description=str(plan["description"]),
        now=ctx.now,
        value_date=business_date(ctx.now, ctx.time_zone),
        txn_id=ctx.txn_id,
    )
    _report(ctx, params, plan, posted)
    return {"entry_id": str(posted.entry_id), "held": dict(output["held"])}


@registry.compensation("ledger.reverse")
async def reverse(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Book the mirror image of the entry ``ledger.post`` made (once, however often asked),
    or release what it only held."""
    if not output:
        return
    if output.get("entry_id"):
        await service.reverse_entry(
            ctx.session,
            entry_id=uuid.UUID(str(output["entry_id"])),
            now=ctx.now,
            value_date=business_date(ctx.now, ctx.time_zone),
            txn_id=ctx.txn_id,
        )
    elif output.get("held"):
        await service.release_holds(ctx.session, holds=output["held"], now=ctx.now)
