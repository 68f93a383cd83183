"""The risk engine of a node: rules and lists kept in memory (re-read within seconds of a
change made anywhere), the assessment of a transaction, and the review queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import service as cau
from channelhub.kernel.engine import TransactionEngine
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.held import conclude_held
from channelhub.kernel.model import Principal
from channelhub.kit.clock import utc_now
from channelhub.kit.db import Rider
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money
from channelhub.risk import repository
from channelhub.risk.errors import ReviewNotPending, RuleInvalid
from channelhub.risk.features import (
    ALL_VELOCITY,
    LONGEST,
    SIGHTINGS,
    Activity,
    DatabaseFeatures,
    FeatureStore,
)
from channelhub.risk.rules import Evaluation, Rule, RuleError, RuleSet, check_rule
from channelhub.risk.schemas import ListChangeBody, RuleBody
from channelhub.security import approvals
from channelhub.security import service as security
from channelhub.security.audit_trail import record_audit
from channelhub.security.rbac import has_permission

__all__ = [
    "Assessment",
    "EarlyRead",
    "RiskEngine",
    "TxnRisk",
    "decide_review",
    "decision_view",
    "lists",
    "normalize_name",
    "pending_reviews",
    "review_view",
    "rule_view",
    "save_rule",
    "switch_rule",
]

log = get_logger(__name__)

#: How long activity is kept past the longest feature window: nodes' clocks may differ.
PURGE_MARGIN = dt.timedelta(hours=1)


def normalize_name(value: str) -> str:
    """Return a name as lists keep it: case-folded, with runs of spaces squeezed."""
    return " ".join(value.split()).casefold()


@dataclass(frozen=True, slots=True)
class TxnRisk:
    """What the engine is told about a transaction."""

    txn_id: uuid.UUID
    service: str
    channel: str
    amount_minor: int
    currency: str
    customer: str
    #: The acting user (its password age is a feature).
    user: str | None
    beneficiary: str | None
    account: str | None
    device: str | None
    address: str | None
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class EarlyRead:
    """Features read and recorded by a rider of another statement, for these rules."""

    rules: RuleSet
    rider: Rider
    #: The activity the rider counts.
    activity: Activity


@dataclass(slots=True)
class Assessment:
    """The engine's verdict on a transaction, with everything it saw."""

    evaluation: Evaluation
    features: dict[str, Any] = field(default_factory=dict)


def activity_of(txn: TxnRisk) -> Activity:
    """Return the money movement the features count for a transaction."""
    return Activity(
        txn_id=txn.txn_id,
        customer=txn.customer,
        device=txn.device,
        beneficiary=txn.beneficiary,
        address=txn.address,
        amount_minor=txn.amount_minor,
        currency=txn.currency,
        at=txn.now,
    )


def rule_view(row: Any) -> dict[str, Any]:
    """Return a rule version as the staff API shows it."""
    return {
        "name": row.name,
        "version": row.version,
        "description": row.description,
        "expression": row.expression,
        "outcome": row.outcome,
        "score": row.score,
        "on_error": row.on_error,
        "mode": row.mode,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


class RiskEngine:
    """One node's risk engine."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        zone: ZoneInfo,
        features: FeatureStore | None = None,
        timeout_ms: int = 250,
        error_outcome: str = "review",
        sync_seconds: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.zone = zone
        self.features: FeatureStore = features or DatabaseFeatures()
        self.timeout = timeout_ms / 1000
        self.error_outcome = error_outcome
        self.sync_seconds = sync_seconds
        self.rules = RuleSet(())
        #: list name -> kind -> values
        self.lists: dict[str, dict[str, frozenset[str]]] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._stale = True

    async def refresh(self, session: AsyncSession | None = None) -> bool:
        """Re-read rules and lists if any changed; return whether they did."""
        if session is None:
            async with self.sessions() as own:
                return await self.refresh(own)
        stamp = await repository.rules_stamp(session)
        if stamp == self._stamp and not self._stale:
            return False
        rows = await repository.rules(session)
        entries = await repository.list_entries(session)
        rules = []
        for row in rows:
            try:
                check_rule(row.expression)
            except RuleError as error:  # saved before a CEL upgrade changed its meaning
                log.error(
                    "risk_rule_unusable", rule=row.name, version=row.version, error=str(error)
                )
                continue
            rules.append(
                Rule(
                    row.name,
                    row.version,
                    row.expression,
                    row.outcome,
                    row.score,
                    row.on_error,
                    row.mode,
                )
            )
        lists: dict[str, dict[str, set[str]]] = {}
        for entry in entries:
            lists.setdefault(entry.list_name, {}).setdefault(entry.kind, set()).add(entry.value)
        self.rules = RuleSet(rules)
        self.lists = {
            name: {kind: frozenset(values) for kind, values in kinds.items()}
            for name, kinds in lists.items()
        }
        self._stamp, self._stale = stamp, False
        return True

    def invalidate(self) -> None:
        """Make the next evaluation on this node re-read rules and lists."""
        self._stale = True

    async def sync(self) -> None:
        """Pick up rule and list changes made through any node (a background loop, every
        ``sync_seconds``)."""
        if await self.refresh():
            log.info("risk_reloaded", rules=len(self.rules.rules))

    async def purge(self, now: dt.datetime) -> int:
        """Delete the activity no feature window reads any more (kept an hour past the
        longest, for nodes whose clocks differ); return how many went."""
        before = now - dt.timedelta(seconds=LONGEST) - PURGE_MARGIN
        async with self.sessions() as session, session.begin():
            return await self.features.purge(session, before)

    def features_rider(self, txn: TxnRisk) -> EarlyRead | None:
        """Return the rider (kit.db.Rider) that reads and records the features the rules
        read with another statement, and the rules it read for; None where ``assess`` must
        read itself (a store outside the database, rules not loaded yet)."""
        store = self.features
        if self._stale or not isinstance(store, DatabaseFeatures):
            return None
        rules, activity = self.rules, activity_of(txn)
        rider = store.rider(
            activity,
            velocity=rules.features & ALL_VELOCITY,
            sightings=not rules.features.isdisjoint(SIGHTINGS),
        )
        return EarlyRead(rules, rider, activity)

    async def assess(
        self,
        session: AsyncSession,
        txn: TxnRisk,
        *,
        deadline: float | None = None,
        early: EarlyRead | None = None,
    ) -> Assessment:
        """Compute what the rules read and evaluate them.

        ``deadline`` (event-loop time) bounds the calls to a feature store outside the
        database, which may be cancelled safely; statements on ``session`` are never cut
        short (a cancelled statement would poison the transaction): the caller compares the
        time taken with its budget afterwards.

        ``early``: the features were read and recorded by a rider (``features_rider``), for
        the rules it carries.

        Raises:
            TimeoutError: the outside store did not answer before ``deadline``.
        """
        if early is None and self._stale:
            await self.refresh(session)
        rules = self.rules if early is None else early.rules
        activity = activity_of(txn) if early is None else early.activity
        features: dict[str, Any] = {}
        store = self.features
        # Only the numbers the rules read: the store computes no other.
        velocity = rules.features & ALL_VELOCITY
        sightings = not rules.features.isdisjoint(SIGHTINGS)
        # The store counts this activity in the same round trip as it reads the features for
        # it. A transaction that does not go on takes the count back: the database's with its
        # rollback, Redis' through the forget the step registered beforehand.
        if early is not None:
            row = await early.rider.result(session)
            read = DatabaseFeatures.found(row, activity, velocity=velocity, sightings=sightings)
        else:
            async with asyncio.timeout_at(deadline if store.outside else None):
                read = await store.read(
                    session, activity, velocity=velocity, sightings=sightings, record=True
                )
        features.update(read)
        if "minutes_since_password_change" in rules.features:
            changed = (
                await security.password_changed_at(session, "customer", txn.user)
                if txn.user
                else None
            )
            minutes = int((txn.now - changed).total_seconds() // 60) if changed else 0
            features["minutes_since_password_change"] = minutes
        customer = await self._customer(session, txn) if rules.reads_customer else {}
        local = txn.now.astimezone(self.zone)
        activation = {
            "txn": {
                "service": txn.service,
                "channel": txn.channel,
                "amount": txn.amount_minor,
                "currency": txn.currency,
                "beneficiary": txn.beneficiary or "",
                "device": txn.device or "",
                "address": txn.address or "",
                "hour": local.hour,
                "minute": local.minute,
                "weekday": local.isoweekday(),
            },
            "customer": customer,
            "features": features,
            "lists": await self._lists(session, txn),
        }
        # Only what the rules read: handing values to CEL is most of an evaluation's time.
        evaluation = rules.evaluate(rules.trim(activation), error_outcome=self.error_outcome)
        seen = {**features, **{f"list_{k}": v for k, v in activation["lists"].items() if v}}
        return Assessment(evaluation, seen)

    async def _customer(self, session: AsyncSession, txn: TxnRisk) -> dict[str, Any]:
        standing = await cau.customer_standing(session, txn.customer)
        today = txn.now.astimezone(self.zone).date()
        opened = await cau.account_facts(session, txn.account) if txn.account else None
        return {
            "segment": standing.segment if standing else "",
            "kyc_level": standing.kyc_level if standing else 0,
            "risk_rating": standing.risk_rating if standing else "",
            "customer_age_days": (today - standing.opened_on).days if standing else 0,
            "account_age_days": (today - opened[0]).days if opened else 0,
        }

    async def _lists(self, session: AsyncSession, txn: TxnRisk) -> dict[str, Any]:
        if not self.lists:  # nothing listed: nothing to look up
            return {"deny": False, "deny_hits": [], "watch": False, "watch_hits": []}
        parties = {
            "account": [value for value in (txn.account, txn.beneficiary) if value],
            "device": [txn.device] if txn.device else [],
            "address": [txn.address] if txn.address else [],
        }
        wants_names = any("beneficiary_name" in kinds for kinds in self.lists.values())
        if wants_names and txn.beneficiary:
            holder = await cau.account_facts(session, txn.beneficiary)
            parties["beneficiary_name"] = [normalize_name(holder[1])] if holder else []
        view: dict[str, Any] = {}
        for name in ("deny", "watch"):
            kinds = self.lists.get(name, {})
            hits = sorted(
                kind
                for kind, values in parties.items()
                if any(value in kinds.get(kind, ()) for value in values)
            )
            view[name] = bool(hits)
            view[f"{name}_hits"] = hits
        return view


async def save_rule(
    session: AsyncSession, body: RuleBody, *, by: str, now: dt.datetime, error_outcome: str
) -> dict[str, Any]:
    """Check a rule and save it as the next version of its name (in shadow unless asked).

    Raises:
        RuleInvalid: it does not compile (``details`` carry line and column) or fails on a
            well-formed transaction.
    """
    try:
        check_rule(body.expression)
    except RuleError as error:
        details: dict[str, Any] = {"field": "expression", "reason": error.reason}
        if error.line is not None:
            details.update(line=error.line, column=error.column)
        raise RuleInvalid(str(error), details=details) from None
    row = await repository.insert_rule(
        session,
        {
            "id": new_id(),
            "name": body.name,
            "description": body.description,
            "expression": body.expression,
            "outcome": body.outcome,
            "score": body.score,
            "on_error": body.on_error or error_outcome,
            "mode": "shadow",
            "created_by": by[:64],
            "created_at": now,
            "updated_at": now,
        },
    )
    if body.mode == "active":
        switched = await repository.set_rule_mode(session, row.name, row.version, "active", now)
        row = switched or row
    return rule_view(row)


async def switch_rule(
    session: AsyncSession, name: str, version: int, mode: str, now: dt.datetime
) -> dict[str, Any]:
    """Switch a rule version on (``active``, retiring the name's other active version), to
    ``shadow``, or off (``retired``)."""
    row = await repository.set_rule_mode(session, name, version, mode, now)
    if row is None:
        raise approvals.NotFound("no such rule version", details={"rule": name})
    return rule_view(row)


def list_view(row: Any) -> dict[str, Any]:
    """Return a list entry as the staff API shows it."""
    return {
        "list": row.list_name,
        "kind": row.kind,
        "value": row.value,
        "reason": row.reason,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "created_at": row.created_at.isoformat(),
    }


async def lists(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    """Return every list entry (staff with ``risk.read``)."""
    if not has_permission(principal, "risk.read"):
        raise Forbidden("reading the risk lists needs risk.read")
    return [list_view(row) for row in await repository.list_entries(session)]


def _list_value(change: ListChangeBody) -> str:
    return normalize_name(change.value) if change.kind == "beneficiary_name" else change.value


async def _prepare_list_change(session: AsyncSession, payload: Mapping[str, Any]) -> dict[str, Any]:
    try:
        change = ListChangeBody.model_validate(dict(payload))
    except ValidationError as error:
        raise RuleInvalid(f"the change is not valid: {error.errors()[0]['msg']}") from None
    return change.model_dump() | {"value": _list_value(change)}


async def _execute_list_change(
    center: Any, session: AsyncSession, payload: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    fields = {k: v for k, v in payload.items() if k in ListChangeBody.model_fields}
    change = ListChangeBody.model_validate(fields)
    value = _list_value(change)
    if change.action == "remove":
        done = await repository.remove_list_entry(session, change.list, change.kind, value)
    else:
        done = await repository.add_list_entry(
            session,
            {
                "id": new_id(),
                "list_name": change.list,
                "kind": change.kind,
                "value": value,
                "reason": change.reason,
                "requested_by": str(payload.get("requested_by", ""))[:64],
                "approved_by": str(payload.get("approved_by", ""))[:64],
                "created_at": now,
            },
        )
    return {"changed": done}


approvals.register(
    "risk.list.change",
    approvals.Operation(
        request_permission="risk.list.change",
        approve_permission="approval.risk_list",
        prepare=_prepare_list_change,
        execute=_execute_list_change,
    ),
)


def review_view(row: Any) -> dict[str, Any]:
    """Return a review as the staff API shows it."""
    amount = (
        Money(row.amount_minor, row.currency).to_decimal_string()
        if row.amount_minor is not None and row.currency
        else None
    )
    return {
        "id": str(row.id),
        "txn_id": str(row.txn_id),
        "decision": str(row.decision_id),
        "service": row.service_id,
        "channel": row.channel,
        "customer": row.customer_id,
        "amount": amount,
        "currency": row.currency,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "reason": row.reason,
    }


def decision_view(row: Any) -> dict[str, Any]:
    """Return a decision with why it was taken: rules fired, scores, features seen."""
    return {
        "id": str(row.id),
        "txn_id": str(row.txn_id),
        "service": row.service_id,
        "channel": row.channel,
        "outcome": row.outcome,
        "score": row.score,
        "fired": list(row.fired),
        "features": dict(row.features),
        "failure": row.failure,
        "at": row.at.isoformat(),
    }


async def pending_reviews(
    session: AsyncSession, principal: Principal, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Return the review queue with each transaction's decision (staff with risk.review)."""
    if not has_permission(principal, "risk.review"):
        raise Forbidden("the review queue needs risk.review")
    views = []
    for row in await repository.reviews(session, status="pending", limit=limit):
        decision = await repository.decision(session, row.decision_id)
        views.append(review_view(row) | {"why": decision_view(decision) if decision else None})
    return views


async def decide_review(
    kernel: TransactionEngine,
    principal: Principal,
    review_id: uuid.UUID,
    *,
    approve: bool,
    reason: str | None = None,
    source_address: str | None = None,
) -> dict[str, Any]:
    """Approve (the held transaction completes) or reject (it is undone: holds released,
    limits given back) a transaction in review.

    Raises:
        Forbidden: the caller lacks risk.review.
        NotFound: no such review.
        ReviewNotPending: it was already decided.
    """
    if not has_permission(principal, "risk.review"):
        raise Forbidden("deciding a review needs risk.review")
    now = utc_now()
    reviewer = principal.attributes.get("username", "")
    async with kernel.sessions() as session, session.begin():
        row = await repository.review(session, review_id, for_update=True)
        if row is None:
            raise approvals.NotFound("no such review", details={"review": str(review_id)})
        if row.status != "pending":
            raise ReviewNotPending(f"the review is {row.status}")
        result = await conclude_held(
            kernel, session, row.txn_id, approve=approve, gate="review", now=now
        )
        if result is None:
            raise ReviewNotPending("the transaction is no longer in review")
        status = "approved" if approve else "rejected"
        text = (reason or "")[:200] or None
        await repository.set_review(
            session, review_id, status=status, by=reviewer, reason=text, now=now
        )
        await record_audit(
            session,
            action="risk.review",
            outcome=status,
            actor_kind="staff",
            actor_id=reviewer,
            channel=principal.attributes.get("channel"),
            source_address=source_address,
            details={
                "review": str(review_id),
                "txn_id": str(row.txn_id),
                "service": row.service_id,
            },
            now=now,
        )
        decided = await repository.review(session, review_id)
    return review_view(decided) | {
        "transaction": {
            "txn_id": str(result.txn_id),
            "status": result.status.value,
            "code": result.code,
            "data": dict(result.data),
        }
    }
