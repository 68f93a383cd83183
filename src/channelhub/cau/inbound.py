"""Plans for money that arrives from another bank: a credit to a customer's account, funded
from the clearing account through which the banks settle.

Like ``transfers``, a plan is a plain dict the ledger's ``ledger.post`` step books. The
sending bank is the principal (an interbank participant); nobody here acts for a customer, so
the creditor account is found by its number alone and checked for whether it may receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.cau import repository
from channelhub.cau.errors import (
    AccountClosed,
    AccountInactive,
    AccountNotCreditable,
    AccountNotFound,
)
from channelhub.cau.service import USABLE
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.model import Principal, PrincipalKind
from channelhub.kit.money import CurrencyMismatch, InvalidAmount, Money
from channelhub.ledger import service as ledger

__all__ = ["CREDITABLE", "plan_inbound_credit"]

#: Account types a payment from another bank may credit.
CREDITABLE = frozenset({"current", "savings"})


def _sending_bank(principal: Principal) -> str:
    """Return the BIC of the bank the principal is; refuse anyone else."""
    bic = principal.attributes.get("bic")
    if principal.kind is not PrincipalKind.PARTNER or not bic:
        raise Forbidden("only an interbank participant may send a payment from another bank")
    return bic


async def plan_inbound_credit(
    session: AsyncSession, principal: Principal, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """Check that the creditor account may receive the payment and return the plan that
    debits the clearing account and credits it.

    Raises:
        Forbidden: the caller is not an interbank participant.
        InvalidAmount: not positive money of the currency.
        AccountNotFound: no account has the number.
        AccountClosed: the account is closed.
        AccountInactive: the account is frozen or dormant.
        CurrencyMismatch: the account holds another currency.
        AccountNotCreditable: a term deposit, a loan, a card account.
    """
    sender = _sending_bank(principal)
    money = Money.parse(payload.get("amount"), payload.get("currency"))
    if money.minor <= 0:
        raise InvalidAmount("amount: must be more than zero", details={"field": "amount"})
    number = str(payload["creditor_account"])
    row = await repository.account(session, number)
    if row is None:
        raise AccountNotFound(
            "no such account", details={"account": number, "field": "creditor_account"}
        )
    if row.status == "closed":
        raise AccountClosed("the account is closed", details={"account": number})
    if row.status not in USABLE:
        raise AccountInactive(
            f"the account is {row.status}", details={"account": number, "status": row.status}
        )
    if row.currency != money.currency:
        raise CurrencyMismatch(
            f"the account holds {row.currency}, not {money.currency}",
            details={"account": number, "currency": row.currency},
        )
    if row.product_type not in CREDITABLE:
        raise AccountNotCreditable(
            f"a {row.product_type} account does not take payments from other banks",
            details={"account": number, "type": row.product_type},
        )
    debtor = str(payload.get("debtor_name") or payload.get("debtor_account") or sender)
    remittance = str(payload.get("remittance") or "")
    narrative = remittance or f"Payment from {debtor}"
    clearing = ledger.gl_code("clearing", money.currency)
    reference = str(payload.get("end_to_end_id") or payload.get("tx_id") or "")
    return {
        "kind": "transfer_in",
        "description": f"Interbank credit {reference}".strip(),
        "legs": [
            {
                "account": clearing,
                "amount_minor": -money.minor,
                "currency": money.currency,
                "narrative": f"From {sender} for {number}"[:200],
                "counterparty": sender,
            },
            {
                "account": number,
                "amount_minor": money.minor,
                "currency": money.currency,
                "narrative": narrative[:200],
                "counterparty": debtor[:200],
            },
        ],
        "to_account": number,
        "currency": money.currency,
        "sending_bank": sender,
    }
