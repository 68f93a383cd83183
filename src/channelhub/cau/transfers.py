"""Plans for money movements on customer accounts: which legs, which fee, which interest.

A plan is a plain dict (it is kept in the transaction's step log, so the recovery worker can
see it) that the ledger's ``ledger.post`` step books. Part of the center's service room: other
packages call these through ``cau.service``'s neighbours, steps call them directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.cau import repository
from channelhub.cau.errors import (
    AccountInactive,
    AccountNotFound,
    NotYours,
    ProductNotEligible,
    SelfTransfer,
)
from channelhub.cau.rules import fee_for, interest
from channelhub.cau.schemas import ProductParameters
from channelhub.cau.service import (
    acting_customer_id,
    ensure_owned,
    open_account,
    owned_account,
    product_or_fail,
    require_active,
)
from channelhub.kernel.model import Principal
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import InvalidAmount, Money
from channelhub.ledger import service as ledger

__all__ = [
    "plan_card_payment",
    "plan_interbank",
    "plan_term_deposit",
    "plan_term_deposit_close",
    "plan_transfer",
]


#: Account types money may be transferred from and to.
TRANSFERABLE = frozenset({"current", "savings"})


def _positive_amount(payload: Mapping[str, Any]) -> Money:
    money = Money.parse(payload.get("amount"), payload.get("currency"))
    if money.minor <= 0:
        raise InvalidAmount("amount: must be more than zero", details={"field": "amount"})
    return money


def _require_transferable(row: Any, currency: str) -> None:
    """Refuse an account that is not active in ``currency``, or of a type no transfer takes."""
    require_active(row, currency=currency)
    if row.product_type not in TRANSFERABLE:
        raise AccountInactive(
            f"a {row.product_type} account cannot take part in a transfer",
            details={"account": row.number, "type": row.product_type},
        )


def _leg(
    account: str, minor: int, currency: str, narrative: str, other: str | None
) -> dict[str, Any]:
    return {
        "account": account,
        "amount_minor": minor,
        "currency": currency,
        "narrative": narrative[:200],
        "counterparty": other,
    }


async def plan_transfer(
    session: AsyncSession,
    principal: Principal,
    payload: Mapping[str, Any],
    *,
    own_only: bool,
    fee_service: str | None,
) -> dict[str, Any]:
    """Check a transfer between two accounts and return its plan, fee included.

    Raises:
        InvalidAmount, SelfTransfer, AccountNotFound, NotYours, AccountInactive,
        CurrencyMismatch: each naming the account or field at fault.
    """
    money = _positive_amount(payload)
    source, target = str(payload["from_account"]), str(payload["to_account"])
    if source == target:
        raise SelfTransfer("cannot transfer to the same account", details={"field": "to_account"})
    customer_id = acting_customer_id(principal)
    rows = await repository.accounts_by_number(session, [source, target])
    debit, credit = rows.get(source), rows.get(target)
    if debit is None:
        raise AccountNotFound(
            "no such account", details={"account": source, "field": "from_account"}
        )
    ensure_owned(principal, customer_id, debit.customer_id, "account", source)
    if credit is None:
        raise AccountNotFound("no such account", details={"account": target, "field": "to_account"})
    if own_only and credit.customer_id != customer_id:
        raise NotYours("the target account is not one of yours", details={"account": target})
    for row in (debit, credit):
        _require_transferable(row, money.currency)
    parameters = ProductParameters.model_validate(debit.product_parameters)
    fee = fee_for(parameters.fees.get(fee_service or ""), money.minor, money.currency)
    memo = str(payload.get("memo") or "")
    legs = [
        _leg(source, -money.minor, money.currency, memo or f"Transfer to {target}", target),
        _leg(target, money.minor, money.currency, memo or f"Transfer from {source}", source),
    ]
    if fee:
        legs += [
            _leg(source, -fee, money.currency, f"Fee: {fee_service}", None),
            _leg(ledger.gl_code("fee_income", money.currency), fee, money.currency, source, source),
        ]
    return {
        "kind": "transfer",
        "description": memo or "Transfer",
        "legs": legs,
        "from_account": source,
        "to_account": target,
        "currency": money.currency,
        "fee_minor": fee,
    }


async def plan_interbank(
    session: AsyncSession, principal: Principal, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """Check a transfer to an account at another bank and return its plan: the customer's
    account pays the amount into the clearing account of its currency (which settles with the
    clearing house) and the product's ``transfer.interbank`` fee into fee income.

    Raises:
        InvalidAmount, AccountNotFound, NotYours, AccountInactive, CurrencyMismatch: each
            naming the account or field at fault.
    """
    money = _positive_amount(payload)
    source = str(payload["from_account"])
    customer_id = acting_customer_id(principal)
    debit = await repository.account(session, source)
    if debit is None:
        raise AccountNotFound(
            "no such account", details={"account": source, "field": "from_account"}
        )
    ensure_owned(principal, customer_id, debit.customer_id, "account", source)
    _require_transferable(debit, money.currency)
    holder = await repository.customer(session, debit.customer_id)
    parameters = ProductParameters.model_validate(debit.product_parameters)
    fee = fee_for(parameters.fees.get("transfer.interbank"), money.minor, money.currency)
    creditor = str(payload["creditor_account"])
    memo = str(payload.get("memo") or "")
    clearing = ledger.gl_code("clearing", money.currency)
    legs = [
        _leg(source, -money.minor, money.currency, memo or f"Transfer to {creditor}", creditor),
        _leg(
            clearing, money.minor, money.currency, f"Outgoing credit transfer from {source}", source
        ),
    ]
    if fee:
        legs += [
            _leg(source, -fee, money.currency, "Fee: transfer.interbank", None),
            _leg(ledger.gl_code("fee_income", money.currency), fee, money.currency, source, source),
        ]
    return {
        "kind": "transfer",
        "description": memo or "Interbank transfer",
        "legs": legs,
        "from_account": source,
        "currency": money.currency,
        "fee_minor": fee,
        # What the pacs.008 says of the debtor: the account holder's name as the bank knows it.
        "debtor_name": (holder.name if holder is not None else "")[:140],
    }


async def plan_card_payment(
    session: AsyncSession, principal: Principal, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """Check a card payment at a merchant (a POS purchase, an authorization's hold) and return
    its plan: the customer's account pays the card clearing account of its currency, which
    settles with the merchant's acquirer.

    Raises:
        InvalidAmount, AccountNotFound, NotYours, AccountInactive, CurrencyMismatch.
    """
    money = _positive_amount(payload)
    number = str(payload["account"])
    row = await owned_account(session, principal, number)
    require_active(row, currency=money.currency)
    if row.product_type not in TRANSFERABLE:
        raise AccountInactive(
            f"a {row.product_type} account cannot pay by card",
            details={"account": number, "type": row.product_type},
        )
    merchant = str(payload.get("merchant") or "")
    narrative = str(payload.get("memo") or f"Card purchase {merchant}".strip())
    clearing = ledger.gl_code("clearing", money.currency)
    return {
        "kind": "card_payment",
        "description": narrative,
        "legs": [
            _leg(number, -money.minor, money.currency, narrative, merchant or None),
            _leg(clearing, money.minor, money.currency, narrative, number),
        ],
        "account": number,
        "currency": money.currency,
    }


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):  # the 31st of a short month is its last day
        try:
            return dt.date(year, month, candidate)
        except ValueError:
            continue
    raise ValueError(f"no date {months} months after {day}")  # unreachable: the 28th always exists


async def plan_term_deposit(
    session: AsyncSession,
    principal: Principal,
    payload: Mapping[str, Any],
    *,
    now: dt.datetime,
    today: dt.date,
) -> dict[str, Any]:
    """Open a term deposit account of an eligible product and return the plan that funds it
    from one of the customer's accounts.

    Raises:
        InvalidAmount: below the product's minimum amount, or not positive.
        ProductNotEligible, AccountNotFound, NotYours, AccountInactive, CurrencyMismatch.
    """
    money = _positive_amount(payload)
    source_number = str(payload["from_account"])
    source = await owned_account(session, principal, source_number)
    require_active(source, currency=money.currency)
    product = await product_or_fail(session, str(payload["product"]))
    if product.type != "term_deposit":
        raise ProductNotEligible(
            f"a {product.type} product is not a term deposit",
            details={"product": product.code, "reason": "type"},
        )
    if product.currency != money.currency:
        raise ProductNotEligible(
            f"the product is in {product.currency}",
            details={"product": product.code, "reason": "currency"},
        )
    parameters = ProductParameters.model_validate(product.parameters)
    minimum = Money.parse(parameters.minimum_amount, money.currency)
    if money.minor < minimum.minor:
        raise InvalidAmount(
            f"amount: the product's minimum is {minimum.to_decimal_string()}",
            details={"field": "amount", "minimum": minimum.to_decimal_string()},
        )
    rate, maturity = parameters.interest_rate_bps, _add_months(today, parameters.term_months or 12)
    number, _ = await open_account(
        session,
        principal,
        product_code=product.code,
        now=now,
        today=today,
        product_types=("term_deposit",),
        term=(rate, maturity, source_number),
    )
    expected = interest(money.minor, rate, (maturity - today).days, parameters.day_count)
    return {
        "kind": "term_deposit",
        "description": f"Term deposit {number}",
        "legs": [
            _leg(source_number, -money.minor, money.currency, f"Term deposit {number}", number),
            _leg(number, money.minor, money.currency, "Principal", source_number),
        ],
        "account": number,
        "from_account": source_number,
        "currency": money.currency,
        "maturity_on": maturity.isoformat(),
        "interest_rate_bps": rate,
        "expected_interest_minor": expected,
    }


async def plan_term_deposit_close(
    session: AsyncSession,
    principal: Principal,
    payload: Mapping[str, Any],
    *,
    now: dt.datetime,
    today: dt.date,
) -> dict[str, Any]:
    """Close a term deposit (marking it closed) and return the plan that pays principal and
    interest to its settlement account: the full rate at or after maturity, the product's
    early-withdrawal rate before it.

    Raises:
        AccountNotFound, NotYours, AccountInactive: as for any owned account.
        ProductNotEligible: the account is not a term deposit.
    """
    deposit = await owned_account(session, principal, str(payload["account"]))
    if deposit.product_type != "term_deposit":
        raise ProductNotEligible(
            "the account is not a term deposit",
            details={"account": deposit.number, "reason": "type"},
        )
    require_active(deposit)
    payee_number = str(payload.get("to_account") or deposit.settlement_account)
    payee = await owned_account(session, principal, payee_number)
    require_active(payee, currency=deposit.currency)
    parameters = ProductParameters.model_validate(deposit.product_parameters)
    principal_minor = (await ledger.balances(session, [deposit.number]))[
        deposit.number
    ].ledger_minor
    matured = deposit.maturity_on is not None and today >= deposit.maturity_on
    if matured:
        days, rate = (deposit.maturity_on - deposit.opened_on).days, deposit.interest_rate_bps or 0
    else:
        days, rate = (today - deposit.opened_on).days, parameters.early_withdrawal_rate_bps
    earned = interest(principal_minor, rate, days, parameters.day_count)
    if not await repository.set_account_status(
        session, deposit.number, expected="active", status="closed", closed_on=today, now=now
    ):
        raise ChannelhubError("the deposit changed while closing; retry", code="TXN_IN_PROGRESS")
    currency = deposit.currency
    legs = []
    if principal_minor:
        legs.append(
            _leg(deposit.number, -principal_minor, currency, "Principal repaid", payee_number)
        )
    if earned:
        legs.append(
            _leg(
                ledger.gl_code("interest_expense", currency),
                -earned,
                currency,
                "Interest",
                deposit.number,
            )
        )
    if principal_minor + earned:
        legs.append(
            _leg(
                payee_number,
                principal_minor + earned,
                currency,
                f"Term deposit {deposit.number}",
                deposit.number,
            )
        )
    return {
        "kind": "term_deposit_close",
        "description": f"Close term deposit {deposit.number}",
        "legs": legs,
        "account": deposit.number,
        "to_account": payee_number,
        "currency": currency,
        "principal_minor": principal_minor,
        "interest_minor": earned,
        "matured": matured,
    }
