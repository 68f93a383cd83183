"""The teller desk's operations: identify the customer present, plan cash movements, park
what is over a teller's authority for a supervisor, onboard a customer, close an account,
and sum a teller's cash for the day. Nothing here commits but the desk's own edges
(``TellerDesk.identify`` reads in its own session; ``TellerDesk.decide`` owns the approver's
transaction).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import service as cau
from channelhub.cau.errors import AccountInactive
from channelhub.kernel.engine import TransactionEngine
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.held import conclude_held
from channelhub.kernel.model import Principal, PrincipalKind, TransactionResult
from channelhub.kit.clock import business_date, utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger
from channelhub.kit.money import InvalidAmount, Money
from channelhub.ledger import service as ledger
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import ApprovalNotPending, SameApprover
from channelhub.security.rbac import has_permission
from channelhub.teller import repository, rules
from channelhub.teller.errors import (
    AccountNotEmpty,
    ApprovalNotFound,
    CustomerExists,
    CustomerNotIdentified,
)
from channelhub.teller.schemas import Identification, TellerConfig

__all__ = [
    "APPROVE_PERMISSION",
    "DESK_PERMISSION",
    "TellerDesk",
    "approval_view",
    "cash_plan",
    "close_account",
    "onboard_customer",
    "park_for_approval",
    "teller_position",
]

log = get_logger(__name__)

#: Who may serve customers at the desk, and who may approve what is over a teller's authority.
DESK_PERMISSION = "teller.transact"
APPROVE_PERMISSION = "approval.teller_override"

#: The row's approve permission, which no role holds: the generic staff approval routes then
#: refuse to decide it (they would not complete the held transaction); the desk's own routes
#: check APPROVE_PERMISSION instead.
_DESK_ONLY = "teller.desk.approval"

#: Account types cash may be paid into and out of.
_CASH_ACCOUNTS = frozenset({"current", "savings"})


def _branch(principal: Principal) -> str:
    branch = principal.attributes.get("branch")
    if not branch:
        raise Forbidden("the desk or terminal belongs to no branch")
    return branch


def _positive(payload: Mapping[str, Any]) -> Money:
    money = Money.parse(payload.get("amount"), payload.get("currency"))
    if money.minor <= 0:
        raise InvalidAmount("amount: must be more than zero", details={"field": "amount"})
    return money


async def cash_plan(
    session: AsyncSession, principal: Principal, payload: Mapping[str, Any], *, direction: str
) -> dict[str, Any]:
    """Check a cash deposit or withdrawal on one of the acting customer's accounts and return
    its plan: the account against the cash account of the branch handling the cash.

    Raises:
        InvalidAmount, AccountNotFound, NotYours, AccountInactive, CurrencyMismatch.
        Forbidden: the principal belongs to no branch.
    """
    money = _positive(payload)
    account = await cau.owned_account(session, principal, str(payload["account"]))
    cau.require_active(account, currency=money.currency)
    if account.product_type not in _CASH_ACCOUNTS:
        raise AccountInactive(
            f"a {account.product_type} account takes no cash",
            details={"account": account.number, "type": account.product_type},
        )
    branch = _branch(principal)
    cash = ledger.gl_code("cash", money.currency, branch)
    memo = str(payload.get("memo") or "")
    withdraw = direction == "withdraw"
    sign = -1 if withdraw else 1
    narrative = memo or ("Cash withdrawal" if withdraw else "Cash deposit")
    where = f"Branch {branch} cash"
    legs = [
        _leg(account.number, sign * money.minor, money.currency, narrative, where),
        _leg(cash, -sign * money.minor, money.currency, narrative, account.number),
    ]
    return {
        "kind": "cash_withdrawal" if withdraw else "cash_deposit",
        "description": narrative,
        "legs": legs,
        "account": account.number,
        "currency": money.currency,
        "amount_minor": money.minor,
        "branch": branch,
        "cash_account": cash,
    }


def _leg(account: str, minor: int, currency: str, narrative: str, other: str) -> dict[str, Any]:
    return {
        "account": account,
        "amount_minor": minor,
        "currency": currency,
        "narrative": narrative[:200],
        "counterparty": other,
    }


def approval_view(row: Any) -> dict[str, Any]:
    """Return a teller approval as the desk shows it: both identities, and what it is for."""
    return {
        "txn_id": str(row.id),
        "status": row.status,
        "branch": row.branch_code,
        "requested_by": row.requested_by_name,
        "requested_at": row.requested_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "decided_by": row.decided_by_name,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "reason": row.reason,
        **dict(row.payload),
    }


async def park_for_approval(
    session: AsyncSession,
    *,
    txn_id: uuid.UUID,
    principal: Principal,
    service_id: str,
    amount: Money,
    payload: Mapping[str, Any],
    authority: int | None,
    now: dt.datetime,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """Record that a transaction over its teller's authority waits for a supervisor of the
    branch (the approval's id is the transaction's), and audit who asked; return what the
    teller is shown. An approval not decided by the end of the business day expires."""
    _, day_end = rules.business_day_bounds(business_date(now, zone), zone)
    requester = principal.attributes.get("username", "")
    details: dict[str, Any] = {
        "service": service_id,
        "amount": amount.to_decimal_string(),
        "currency": amount.currency,
        "authority": (
            Money(authority, amount.currency).to_decimal_string() if authority is not None else None
        ),
        "customer": principal.attributes.get("customer_id"),
        "input": {key: value for key, value in payload.items() if key != "memo"},
    }
    await repository.insert_approval(
        session,
        {
            "id": txn_id,
            "operation": repository.OPERATION,
            "payload": details,
            "approve_permission": _DESK_ONLY,
            "requested_by": uuid.UUID(str(principal.id)),
            "requested_by_name": requester,
            "branch_code": principal.attributes.get("branch"),
            "requested_at": now,
            "expires_at": day_end,
            "status": "pending",
            "decided_by": None,
            "decided_by_name": None,
            "decided_at": None,
            "reason": None,
        },
    )
    await record_audit(
        session,
        action="teller.approval.request",
        outcome="pending",
        actor_kind="staff",
        actor_id=requester,
        channel="teller",
        details={"txn_id": str(txn_id), **{k: v for k, v in details.items() if k != "input"}},
        now=now,
    )
    return {"approval": str(txn_id), "authority": details["authority"]}


async def withdraw_approval(session: AsyncSession, txn_id: uuid.UUID, *, now: dt.datetime) -> None:
    """Mark a still-pending approval rejected when its transaction is undone by other means
    (recovery); a supervisor's decision is recorded before it, so it stays as decided."""
    await repository.decide_approval(
        session,
        txn_id,
        status="rejected",
        by=None,
        by_name=None,
        reason="the transaction was undone",
        now=now,
    )


async def onboard_customer(
    session: AsyncSession,
    principal: Principal,
    payload: Mapping[str, Any],
    *,
    now: dt.datetime,
    today: dt.date,
) -> dict[str, Any]:
    """Make a new customer from the KYC data a teller took (home branch: the teller's) and
    open their first account of an eligible product; return both numbers.

    Raises:
        CustomerExists: the bank already has a customer with this document.
        ProductNotFound, ProductNotEligible: as for any account opening.
    """
    branch = _branch(principal)
    id_type, id_number = str(payload["id_type"]), str(payload["id_number"])
    if await cau.customer_by_document(session, id_type, id_number) is not None:
        raise CustomerExists(
            "a customer with this identity document already exists",
            details={"field": "id_number"},
        )
    values = {
        "kind": str(payload["kind"]),
        "name": str(payload["name"]),
        "id_type": id_type,
        "id_number": id_number,
        "phone": payload.get("phone"),
        "email": payload.get("email"),
        # The teller saw the original document: verified identity.
        "kyc_level": 2,
        "segment": str(payload["segment"]),
        "risk_rating": "low",
        "home_branch": branch,
    }
    customer_id, number = await cau.create_customer(session, values, now=now, today=today)
    acting = dataclasses.replace(
        principal, attributes={**principal.attributes, "customer_id": str(customer_id)}
    )
    account, product = await cau.open_account(
        session,
        acting,
        product_code=str(payload["product"]),
        nickname=payload.get("nickname"),
        now=now,
        today=today,
    )
    return {
        "customer_id": str(customer_id),
        "customer_number": number,
        "account": account,
        "currency": product.currency,
        "product": product.code,
        "home_branch": branch,
    }


async def void_customer(
    session: AsyncSession, output: Mapping[str, Any], *, now: dt.datetime, today: dt.date
) -> None:
    """Close the customer and account a failed onboarding made."""
    if output.get("account"):
        await cau.restore_account_status(
            session, str(output["account"]), current="active", previous="closed", now=now,
            today=today,
        )  # fmt: skip
    if output.get("customer_id"):
        await cau.set_customer_status(
            session, uuid.UUID(str(output["customer_id"])), status="closed", now=now
        )


async def close_account(
    session: AsyncSession,
    principal: Principal,
    number: str,
    *,
    now: dt.datetime,
    today: dt.date,
) -> dict[str, Any]:
    """Close one of the acting customer's accounts: it must hold nothing and have nothing on
    hold; the cards drawing on it are blocked.

    Raises:
        AccountNotFound, NotYours, AccountInactive: as for any owned account.
        AccountNotEmpty: a balance or a hold remains.
    """
    account = await cau.owned_account(session, principal, number)
    cau.require_active(account)
    balance = (await ledger.balances(session, [account.number])).get(account.number)
    if balance is not None and (balance.ledger_minor != 0 or balance.held_minor != 0):
        currency = account.currency
        raise AccountNotEmpty(
            "the account still holds money or has funds on hold: pay it out first",
            details={
                "account": account.number,
                "balance": Money(balance.ledger_minor, currency).to_decimal_string(),
                "held": Money(balance.held_minor, currency).to_decimal_string(),
            },
        )
    blocked = await cau.close_account(session, account, now=now, today=today)
    return {
        "account": account.number,
        "status": "closed",
        "closed_on": today.isoformat(),
        "cards_blocked": blocked,
    }


async def teller_position(
    session: AsyncSession, principal: Principal, *, day: dt.date, zone: ZoneInfo
) -> dict[str, Any]:
    """Return a teller's cash taken in and paid out at the desk on a business day, by
    currency.

    Raises:
        Forbidden: the caller is not a staff member.
    """
    if principal.kind is not PrincipalKind.STAFF or not principal.id:
        raise Forbidden("the cash position is a teller's")
    start, end = rules.business_day_bounds(day, zone)
    movements = await repository.cash_movements(
        session,
        teller_id=principal.id,
        services=(rules.CASH_IN, rules.CASH_OUT),
        start=start,
        end=end,
    )
    return {
        "teller": principal.attributes.get("username", ""),
        "branch": principal.attributes.get("branch"),
        "date": day.isoformat(),
        "positions": rules.cash_position(movements),
    }


class TellerDesk:
    """The desk's node-wide part: its configuration, identifying customers, and the
    supervisor's decisions."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], config: TellerConfig) -> None:
        self.sessions = sessions
        self.config = config

    def authority(self, currency: str) -> int | None:
        """Return a teller's authority in ``currency`` (minor units); None: none at all."""
        return self.config.authority.get(currency)

    async def identify(self, principal: Principal, identification: Identification) -> Principal:
        """Return the teller's principal acting for the customer identified.

        Raises:
            CustomerNotIdentified: unknown document, unknown card, wrong PIN, a card not
                active, or a customer not active; the reason goes to the log only.
        """
        async with self.sessions() as session:
            customer_id = await self._customer_of(session, identification)
        # The customer present, once identified, lets the teller read what they may read.
        return dataclasses.replace(
            principal,
            scopes=principal.scopes | cau.CUSTOMER_SCOPES,
            attributes={**principal.attributes, "customer_id": str(customer_id)},
        )

    async def _customer_of(
        self, session: AsyncSession, identification: Identification
    ) -> uuid.UUID:
        proof = identification.card_proof()
        if identification.id_document is not None:
            document = identification.id_document
            row = await cau.customer_by_document(session, document.type, document.number)
            if row is None or row.status != "active":
                return _unidentified("document")
            return uuid.UUID(str(row.id))
        assert proof is not None  # the shape demands a document or a card and PIN
        # The same check as at the ATM: expiry, status, and wrong PINs counted on the card
        # (committed whatever the answer), so three wrong PINs block it whichever channel.
        now = utc_now()
        try:
            holder = await cau.authenticate_card(
                session,
                key=self.config.data_key,
                pan=proof.card,
                pin_matches=lambda check: check(proof.pin),
                now=now,
                today=business_date(now, self.config.time_zone),
            )
        except ChannelhubError as error:
            await session.commit()
            return _unidentified(error.code.lower())
        await session.commit()
        standing = await cau.customer_standing(session, str(holder.customer_id))
        if standing is None or standing.status != "active":
            return _unidentified("customer_status")
        return holder.customer_id

    async def expire_overdue(self, kernel: TransactionEngine, *, now: dt.datetime) -> int:
        """Reject every approval nobody decided by the end of its business day: its held
        money is released and its limits given back, as a supervisor's rejection would.
        Return how many expired."""
        async with self.sessions() as session:
            overdue = await repository.overdue_approvals(session, now=now, limit=_EXPIRY_BATCH)
        expired = 0
        for txn_id in overdue:
            async with kernel.sessions() as session, session.begin():
                row = await repository.approval(session, txn_id, for_update=True)
                if row is None or row.status != "pending" or row.expires_at > now:
                    continue  # decided meanwhile
                await repository.decide_approval(
                    session,
                    txn_id,
                    status="expired",
                    by=None,
                    by_name=None,
                    reason="nobody decided it by the end of its business day",
                    now=now,
                )
                await conclude_held(
                    kernel, session, txn_id, approve=False, gate="approval", now=now
                )
                await record_audit(
                    session,
                    action="teller.approval.decide",
                    outcome="expired",
                    actor_kind="system",
                    actor_id=None,
                    details={"txn_id": str(txn_id), "branch": row.branch_code},
                    now=now,
                )
            expired += 1
        if expired:
            log.info("teller_approvals_expired", count=expired)
        return expired

    async def pending(self, principal: Principal) -> list[dict[str, Any]]:
        """Return the approvals waiting in the caller's branch, oldest first.

        Raises:
            Forbidden: the caller may not approve teller overrides.
        """
        if not has_permission(principal, APPROVE_PERMISSION):
            raise Forbidden(f"the approval queue needs {APPROVE_PERMISSION}")
        async with self.sessions() as session:
            rows = await repository.pending_approvals(
                session, branch=principal.attributes.get("branch")
            )
        return [approval_view(row) for row in rows]

    async def decide(
        self,
        kernel: TransactionEngine,
        principal: Principal,
        txn_id: uuid.UUID,
        *,
        approve: bool,
        reason: str | None = None,
        source_address: str | None = None,
    ) -> dict[str, Any]:
        """Approve (the held transaction completes) or reject (it is undone: holds released,
        limits given back) a transaction over a teller's authority, in one database
        transaction; both identities stay on the approval and in the audit log.

        Raises:
            Forbidden: the caller may not approve, or is of another branch.
            ApprovalNotFound: no such approval.
            SameApprover: the caller asked for it.
            ApprovalNotPending: decided already, expired (approving), or its transaction is
                no longer waiting.
        """
        # The engine's clock, which parked the transaction and set the approval's expiry.
        now = kernel.clock()
        approver = principal.attributes.get("username", "")
        refusal: ChannelhubError | None = None
        result: TransactionResult | None = None
        decided: Any = None
        async with kernel.sessions() as session, session.begin():
            row = await repository.approval(session, txn_id, for_update=True)
            if row is None:
                raise ApprovalNotFound("no such approval", details={"txn_id": str(txn_id)})
            if row.requested_by == uuid.UUID(str(principal.id)):
                # Kept: the attempt is part of the record, the refusal comes after the commit.
                await self._audit(session, approver, row, "same_approver", now, source_address)
                refusal = SameApprover("you asked for this; a second staff member must approve it")
            elif not has_permission(principal, APPROVE_PERMISSION):
                raise Forbidden(f"approving needs {APPROVE_PERMISSION}")
            elif row.branch_code != principal.attributes.get("branch"):
                raise Forbidden("the approval belongs to another branch")
            elif row.status != "pending":
                raise ApprovalNotPending(f"the approval is {row.status}")
            elif approve and row.expires_at <= now:
                raise ApprovalNotPending("the approval expired at the end of its business day")
            else:
                status = "approved" if approve else "rejected"
                # Decided first: the authority step's compensation then leaves it as it is.
                await repository.decide_approval(
                    session,
                    txn_id,
                    status=status,
                    by=uuid.UUID(str(principal.id)),
                    by_name=approver,
                    reason=(reason or "")[:200] or None,
                    now=now,
                )
                result = await conclude_held(
                    kernel, session, txn_id, approve=approve, gate="approval", now=now
                )
                if result is None:
                    raise ApprovalNotPending("the transaction is no longer waiting")
                await self._audit(session, approver, row, status, now, source_address)
                decided = await repository.approval(session, txn_id)
        if refusal is not None:
            raise refusal
        assert result is not None  # every other path returned a result or raised
        return approval_view(decided) | {
            "transaction": {
                "txn_id": str(result.txn_id),
                "status": result.status.value,
                "code": result.code,
                "data": dict(result.data),
            }
        }

    @staticmethod
    async def _audit(
        session: AsyncSession,
        approver: str,
        row: Any,
        outcome: str,
        now: dt.datetime,
        source_address: str | None,
    ) -> None:
        await record_audit(
            session,
            action="teller.approval.decide",
            outcome=outcome,
            actor_kind="staff",
            actor_id=approver,
            channel="teller",
            source_address=source_address,
            details={
                "txn_id": str(row.id),
                "service": row.payload.get("service"),
                "requested_by": row.requested_by_name,
                "decided_by": approver,
            },
            now=now,
        )


#: How many overdue approvals one round of the expiry loop handles.
_EXPIRY_BATCH = 100


def _unidentified(reason: str) -> uuid.UUID:
    log.info("teller_identification_refused", reason=reason)
    raise CustomerNotIdentified("the customer could not be identified with what was shown")
