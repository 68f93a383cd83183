"""The flow steps the ledger offers the kernel: book a plan, and reverse what was booked."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.clock import business_date
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money
from channelhub.ledger import service
from channelhub.ledger.schemas import Leg

__all__: list[str] = []


@registry.step("ledger.post", mutates=True)
async def post(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Book the legs an earlier step planned, as one balanced entry.

    Params: ``plan`` (the id of the step whose output holds ``kind``, ``description`` and
    ``legs``); ``report`` maps response fields to plan fields naming accounts whose available
    balance after the entry the response shows, e.g. ``{from_available_balance: from_account}``.
    """
    plan = ctx.outputs.get(str(params["plan"]))
    if not plan:
        raise ChannelhubError(f"ledger.post: no plan from step {params['plan']!r}")
    legs = [Leg(**leg) for leg in plan["legs"]]
    if not legs:
        return {}
    posted = await service.post_entry(
        ctx.session,
        legs=legs,
        kind=str(plan["kind"]),
        description=str(plan["description"]),
        now=ctx.now,
        value_date=business_date(ctx.now, ctx.time_zone),
        txn_id=ctx.txn_id,
    )
    for field, plan_key in (params.get("report") or {}).items():
        balance = posted.balances.get(str(plan.get(plan_key)))
        if balance is not None:
            ctx.data[field] = Money(balance.available_minor, balance.currency).to_decimal_string()
    ctx.data["entry_id"] = str(posted.entry_id)
    return {"entry_id": str(posted.entry_id)}


@registry.compensation("ledger.reverse")
async def reverse(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Book the mirror image of the entry ``ledger.post`` made (once, however often asked)."""
    if not output or not output.get("entry_id"):
        return
    await service.reverse_entry(
        ctx.session,
        entry_id=uuid.UUID(str(output["entry_id"])),
        now=ctx.now,
        value_date=business_date(ctx.now, ctx.time_zone),
        txn_id=ctx.txn_id,
    )
