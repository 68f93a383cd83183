"""The flow steps the customer-account-user center offers the kernel.

Every step reads its input from the request's payload (already checked against the service's
schema) and acts for the customer the principal acts for; none trusts an id in the payload to
say whose data it is.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.cau import inbound, repository, service, transfers
from channelhub.cau.errors import CardNotFound
from channelhub.kernel.errors import ValidationFailed
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.clock import business_date
from channelhub.kit.money import Money
from channelhub.ledger import service as ledger
from channelhub.ledger.schemas import Balance

__all__: list[str] = []

#: The longest date range one statement request may cover.
MAX_STATEMENT_DAYS = 366


def _today(ctx: StepContext) -> dt.date:
    return business_date(ctx.now, ctx.time_zone)


def _decimal(minor: int, currency: str) -> str:
    return Money(minor, currency).to_decimal_string()


@registry.step("cau.products.list")
async def products_list(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """List the products on offer, optionally of one type or currency."""
    wanted_type = ctx.request.payload.get("type")
    wanted_currency = ctx.request.payload.get("currency")
    rows = await repository.products(ctx.session)
    ctx.data["products"] = [
        service.product_view(row)
        for row in rows
        if row.status == "active"
        and (wanted_type is None or row.type == wanted_type)
        and (wanted_currency is None or row.currency == wanted_currency)
    ]


@registry.step("cau.products.detail")
async def products_detail(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show one product with its parameters and eligibility."""
    row = await service.product_or_fail(ctx.session, str(ctx.request.payload["product"]))
    ctx.data.update(service.product_view(row))


@registry.step("cau.customer.profile")
async def customer_profile(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show the acting customer's profile, identity data masked."""
    ctx.data.update(await service.customer_profile(ctx.session, ctx.request.principal))


@registry.step("cau.accounts.list")
async def accounts_list(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """List the acting customer's accounts with their balances."""
    ctx.data["accounts"] = await service.customer_accounts(ctx.session, ctx.request.principal)


@registry.step("cau.accounts.owned")
async def accounts_owned(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Check that the account in the request is one of the acting customer's (and open)."""
    await _owned(ctx)


@registry.step("cau.accounts.balance")
async def accounts_balance(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show one of the acting customer's accounts' balances."""
    row, balance = await _owned_with_balance(ctx)
    view = service.account_view(row, balance)
    ctx.data.update(
        {key: view[key] for key in ("number", "currency", "available_balance", "ledger_balance")}
    )


@registry.step("cau.accounts.detail")
async def accounts_detail(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show one of the acting customer's accounts in full."""
    row, balance = await _owned_with_balance(ctx)
    view = service.account_view(row, balance)
    rate = row.interest_rate_bps
    view.update(
        held=_decimal(balance.held_minor if balance else 0, row.currency),
        branch=row.branch_code,
        opened_on=row.opened_on.isoformat(),
        closed_on=row.closed_on.isoformat() if row.closed_on else None,
        interest_rate=service.rate_text(rate) if rate is not None else None,
        maturity_on=row.maturity_on.isoformat() if row.maturity_on else None,
        settlement_account=row.settlement_account,
    )
    ctx.data.update(view)


async def _owned(ctx: StepContext) -> Any:
    """Return the request's account, refused unless the acting customer holds it; looked up
    once per transaction (an ownership check, then the balance, share it)."""
    number = str(ctx.request.payload["account"])
    key = f"owned_account:{number}"
    row = ctx.memo.get(key)
    if row is None:
        row = await service.owned_account(ctx.session, ctx.request.principal, number)
        ctx.memo[key] = row
    return row


async def _owned_with_balance(ctx: StepContext) -> tuple[Any, Balance | None]:
    row = await _owned(ctx)
    return row, (await ledger.balances(ctx.session, [row.number])).get(row.number)


@registry.step("cau.accounts.statement")
async def accounts_statement(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Show a page of an account's postings over a date range, with running balances."""
    payload = ctx.request.payload
    row = await service.owned_account(ctx.session, ctx.request.principal, str(payload["account"]))
    today = _today(ctx)
    end = _date(payload.get("to"), "to") or today
    start = _date(payload.get("from"), "from") or end - dt.timedelta(days=30)
    if start > end:
        raise ValidationFailed(
            "from: must not be after to", details={"field": "from", "reason": "after to"}
        )
    if (end - start).days > MAX_STATEMENT_DAYS:
        raise ValidationFailed(
            f"to: a statement covers at most {MAX_STATEMENT_DAYS} days",
            details={"field": "to", "reason": "range too long"},
        )
    page, size = int(payload.get("page", 1)), int(payload.get("page_size", 50))
    statement = await ledger.statement(
        ctx.session,
        account=row.number,
        currency=row.currency,
        start=start,
        end=end,
        page=page,
        page_size=size,
    )
    currency = row.currency
    ctx.data.update(
        account=row.number,
        currency=currency,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        opening_balance=_decimal(statement.opening_minor, currency),
        closing_balance=_decimal(statement.closing_minor, currency),
        page=page,
        page_size=size,
        has_more=statement.has_more,
        entries=[
            {
                "booked_at": line.booked_at.isoformat().replace("+00:00", "Z"),
                "value_date": line.value_date.isoformat(),
                "description": line.narrative,
                "counterparty": line.counterparty,
                "amount": _decimal(line.amount_minor, currency),
                "balance": _decimal(line.balance_after_minor, currency),
                "entry_id": str(line.entry_id),
                "txn_id": str(line.txn_id) if line.txn_id else None,
            }
            for line in statement.lines
        ],
    )


def _date(value: Any, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(
            f"{field}: not a date (YYYY-MM-DD)", details={"field": field, "reason": "not a date"}
        ) from None


@registry.step("cau.accounts.open", mutates=True)
async def accounts_open(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Open a current or savings account of an eligible product for the acting customer."""
    payload = ctx.request.payload
    number, _ = await service.open_account(
        ctx.session,
        ctx.request.principal,
        product_code=str(payload["product"]),
        nickname=payload.get("nickname"),
        now=ctx.now,
        today=_today(ctx),
    )
    row = await service.owned_account(ctx.session, ctx.request.principal, number)
    ctx.data.update(service.account_view(row, None))
    return {"account": number}


@registry.compensation("cau.accounts.void")
async def accounts_void(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Close an account a failed transaction opened."""
    if output and output.get("account"):
        await service.restore_account_status(
            ctx.session,
            str(output["account"]),
            current="active",
            previous="closed",
            now=ctx.now,
            today=_today(ctx),
        )


@registry.step("cau.transfer.prepare")
async def transfer_prepare(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check a transfer (ownership, status, currency) and plan its legs and product fee.

    Params: ``beneficiary`` (``own`` or ``any``), ``fee`` (the service whose fee applies).
    """
    plan = await transfers.plan_transfer(
        ctx.session,
        ctx.request.principal,
        ctx.request.payload,
        own_only=params.get("beneficiary", "own") == "own",
        fee_service=params.get("fee"),
    )
    ctx.data["fee"] = _decimal(plan["fee_minor"], plan["currency"])
    ctx.data["currency"] = plan["currency"]
    return plan


@registry.step("cau.interbank.prepare")
async def interbank_prepare(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check a transfer to another bank (ownership, status, currency) and plan its debit into
    the clearing account, with the product's fee."""
    plan = await transfers.plan_interbank(ctx.session, ctx.request.principal, ctx.request.payload)
    ctx.data["fee"] = _decimal(plan["fee_minor"], plan["currency"])
    ctx.data["currency"] = plan["currency"]
    return plan


@registry.step("cau.card_payment.prepare")
async def card_payment_prepare(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check a card payment from one of the acting customer's accounts and plan its legs."""
    request = ctx.request
    plan = await transfers.plan_card_payment(ctx.session, request.principal, request.payload)
    ctx.data["currency"] = plan["currency"]
    return plan


@registry.step("cau.inbound.prepare")
async def inbound_prepare(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check that a payment from another bank may be credited and plan its legs."""
    plan = await inbound.plan_inbound_credit(
        ctx.session, ctx.request.principal, ctx.request.payload
    )
    ctx.data.update(creditor_account=plan["to_account"], currency=plan["currency"])
    return plan


@registry.step("cau.term_deposit.open", mutates=True)
async def term_deposit_open(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Open a term deposit from an eligible product and plan its funding."""
    plan = await transfers.plan_term_deposit(
        ctx.session, ctx.request.principal, ctx.request.payload, now=ctx.now, today=_today(ctx)
    )
    currency = plan["currency"]
    rate = plan["interest_rate_bps"]
    ctx.data.update(
        account=plan["account"],
        currency=currency,
        maturity_on=plan["maturity_on"],
        interest_rate=service.rate_text(rate),
        expected_interest=_decimal(plan["expected_interest_minor"], currency),
    )
    return plan


@registry.step("cau.term_deposit.close", mutates=True)
async def term_deposit_close(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Close a term deposit and plan the payout of principal and interest."""
    plan = await transfers.plan_term_deposit_close(
        ctx.session, ctx.request.principal, ctx.request.payload, now=ctx.now, today=_today(ctx)
    )
    currency = plan["currency"]
    ctx.data.update(
        account=plan["account"],
        paid_to=plan["to_account"],
        currency=currency,
        principal=_decimal(plan["principal_minor"], currency),
        interest=_decimal(plan["interest_minor"], currency),
        total=_decimal(plan["principal_minor"] + plan["interest_minor"], currency),
        matured=plan["matured"],
    )
    return plan


@registry.compensation("cau.accounts.reopen")
async def accounts_reopen(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Reopen an account a failed transaction closed."""
    if output and output.get("account"):
        await service.restore_account_status(
            ctx.session,
            str(output["account"]),
            current="closed",
            previous="active",
            now=ctx.now,
            today=_today(ctx),
        )


@registry.step("cau.cards.list")
async def cards_list(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """List the acting customer's cards, numbers masked."""
    customer_id = service.acting_customer_id(ctx.request.principal)
    rows = await repository.cards_of_customer(ctx.session, customer_id)
    ctx.data["cards"] = [service.card_view(row) for row in rows]


#: What each card operation may change, and into what.
_CARD_CHANGES = {
    "block": (("active",), "blocked"),
    "lost": (("active", "blocked"), "lost"),
    "unblock": (("blocked",), "active"),
}


@registry.step("cau.cards.set_status", mutates=True)
async def cards_set_status(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Block, report lost or unblock one of the acting customer's cards.

    Params: ``change`` (``block`` or ``unblock``); a block with ``reason: lost`` reports the
    card lost, which no unblock undoes.
    """
    change = str(params["change"])
    if change == "block" and ctx.request.payload.get("reason") == "lost":
        change = "lost"
    allowed, status = _CARD_CHANGES[change]
    card = str(ctx.request.payload["card"])
    previous = await service.change_card_status(
        ctx.session,
        ctx.request.principal,
        card_id=card,
        allowed_from=allowed,
        status=status,
        now=ctx.now,
    )
    ctx.data.update(card=card, status=status)
    return {"card": card, "previous": previous, "status": status}


@registry.compensation("cau.cards.restore")
async def cards_restore(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Put a card back in the status a failed transaction changed."""
    if not output:
        return

    try:
        key = uuid.UUID(str(output["card"]))
    except ValueError:
        raise CardNotFound("no such card") from None
    await repository.set_card_status(
        ctx.session,
        key,
        expected=str(output["status"]),
        status=str(output["previous"]),
        now=ctx.now,
    )
