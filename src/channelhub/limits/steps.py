"""The flow steps limit management offers the kernel: reserve a transaction against every
limit that governs it (and give it back), and a customer's own limits (set and list)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from channelhub.cau import service as cau
from channelhub.kernel.errors import ValidationFailed
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.db import Rider
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money
from channelhub.limits.schemas import TxnFacts
from channelhub.limits.service import LimitCenter

__all__ = ["channel_kind", "standing"]


def _center(ctx: StepContext) -> LimitCenter:
    center = ctx.services.get("limits")
    if center is None:
        raise ChannelhubError("limit management is not running on this node")
    return center  # type: ignore[no-any-return]


def channel_kind(channel: str) -> str:
    """Return the kind of a channel: ``partner:fintech-demo`` is a ``partner`` channel."""
    return channel.partition(":")[0]


async def standing(ctx: StepContext, customer_id: str) -> cau.CustomerStanding | None:
    """Return the customer's standing, looked up once per transaction."""
    if "standing" not in ctx.memo:
        ctx.memo["standing"] = await cau.customer_standing(ctx.session, customer_id)
    return ctx.memo["standing"]  # type: ignore[no-any-return]


def _amount(ctx: StepContext) -> Money:
    if ctx.amount is not None:
        return ctx.amount
    fields = ctx.service.definition.amount
    if fields is None:
        raise ChannelhubError(f"{ctx.service.id} has no amount for limits.reserve")
    payload = ctx.request.payload
    return Money.parse(payload.get(fields.amount), payload.get(fields.currency))


@functools.lru_cache(maxsize=256)
def _groups(service_id: str, group: str) -> frozenset[str]:
    """The service and the group it names, which its limits may be set on."""
    return frozenset({service_id, group})


def _facts(ctx: StepContext, params: Mapping[str, Any], segment: str | None) -> TxnFacts:
    amount = _amount(ctx)
    payload = ctx.request.payload
    account_field, card_field = str(params.get("account", "")), str(params.get("card", ""))
    return TxnFacts(
        groups=_groups(ctx.service.id, str(params.get("group", ctx.service.id))),
        channel=channel_kind(ctx.request.channel),
        currency=amount.currency,
        amount_minor=amount.minor,
        customer_id=ctx.request.principal.attributes.get("customer_id", ""),
        segment=segment,
        account=str(payload[account_field]) if account_field in payload else None,
        card=str(payload[card_field]) if card_field in payload else None,
    )


@registry.rider("limits.reserve")
def reserve_early(ctx: StepContext, params: Mapping[str, Any]) -> Rider | None:
    """The booking of ``limits.reserve``, made with the flow's first statement."""
    center = ctx.services.get("limits")
    if not isinstance(center, LimitCenter):
        return None
    facts = _facts(ctx, params, None)
    early = center.booking_rider(facts, ctx.now)
    if early is None:
        return None
    ctx.memo["limits.reserve"] = facts, early
    return early[1]


@registry.step("limits.reserve", mutates=True)
async def reserve(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Book the transaction's amount on every limit that governs it, or refuse it naming the
    tightest limit it would break.

    Params: ``group`` (the service group, e.g. ``transfer.outgoing``), ``account`` and
    ``card`` (the input fields naming the debited account and the card used, if any).
    """
    center = _center(ctx)
    built = ctx.memo.pop("limits.reserve", None) if "limits.reserve" in ctx.riders else None
    if built is not None:
        facts, early = built
    else:
        early, segment = None, None
        customer_id = ctx.request.principal.attributes.get("customer_id", "")
        if center.uses_segments and customer_id:
            found = await standing(ctx, customer_id)
            segment = found.segment if found is not None else None
        facts = _facts(ctx, params, segment)
    charges = await center.reserve(ctx.session, ctx.txn_id, facts, ctx.now, early=early)
    if center.counters.outside and charges:
        session, txn_id = ctx.session, ctx.txn_id

        async def give_back() -> None:
            await center.release(session, txn_id, charges)

        ctx.undo_outside.append(give_back)
    return {"charges": charges}


@registry.compensation("limits.release")
async def release(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Give back what ``limits.reserve`` booked (a failed, rejected or reversed transaction)."""
    charges = (output or {}).get("charges") or []
    if charges or _center(ctx).counters.outside:
        await _center(ctx).release(ctx.session, ctx.txn_id, charges)


@registry.step("limits.list")
async def list_limits(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Every limit that applies to the acting customer, with what is used and what remains."""
    customer_id = str(cau.acting_customer_id(ctx.request.principal))
    found = await standing(ctx, customer_id)
    ctx.data["limits"] = await _center(ctx).customer_limits(
        ctx.session,
        customer_id=customer_id,
        segment=found.segment if found is not None else None,
        accounts=await cau.customer_account_numbers(ctx.session, customer_id),
        cards=await cau.customer_card_ids(ctx.session, customer_id),
        now=ctx.now,
    )


# Like the consent steps, one step in an atomic flow: a failure rolls it back with the rest.
@registry.step("limits.set")
async def set_limit(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Set the acting customer's own limit on a scope, channel and period; never above the
    bank's."""
    payload = ctx.request.payload
    customer_id = str(cau.acting_customer_id(ctx.request.principal))
    amount = Money.parse(payload.get("amount"), payload.get("currency"))
    if amount.minor < 0:
        raise ValidationFailed("amount: must not be negative", details={"field": "amount"})
    found = await standing(ctx, customer_id)
    view = await _center(ctx).set_customer_limit(
        ctx.session,
        customer_id=customer_id,
        segment=found.segment if found is not None else None,
        scope=str(payload["scope"]),
        channel=str(payload.get("channel", "all")),
        period=str(payload["period"]),
        amount=amount,
        now=ctx.now,
        changed_by=ctx.request.principal.attributes.get("username", customer_id),
    )
    ctx.data["limit"] = view
    return {"limit": view["id"]}
