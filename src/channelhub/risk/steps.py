"""The flow step the risk engine offers the kernel: ``risk.evaluate``.

It decides ``allow``, ``challenge`` (the customer confirms with a one-time code, then the
transaction goes on), ``review`` (the transaction is parked: later steps only hold the money,
and a staff member decides) or ``deny``. The decision is recorded whatever happens next.

An engine that cannot decide (its Redis down, or slower than the time budget) follows the
service's ``on_failure``: ``closed`` (the default) refuses the transaction, ``open`` lets it
through and records that it went unchecked. Statements on the transaction's own database
connection are never cut short: cancelling one would abort the whole transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from channelhub.kernel.errors import StepUpRequired
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.db import Rider
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money
from channelhub.risk import repository
from channelhub.risk.errors import RiskDenied, RiskUnavailable
from channelhub.risk.features import Activity
from channelhub.risk.metrics import DECISIONS, EVALUATION_SECONDS, RULES_FIRED, UNAVAILABLE
from channelhub.risk.rules import Evaluation
from channelhub.risk.service import Assessment, RiskEngine, TxnRisk, activity_of

__all__: list[str] = []

log = get_logger(__name__)

#: The least time a store outside the database gets to take back a rolled-back activity.
_FORGET_SECONDS = 1.0


def _engine(ctx: StepContext) -> RiskEngine:
    engine = ctx.services.get("risk")
    if engine is None:
        raise ChannelhubError("the risk engine is not running on this node")
    return engine  # type: ignore[no-any-return]


def _txn(ctx: StepContext, params: Mapping[str, Any]) -> TxnRisk:
    fields = ctx.service.definition.amount
    if fields is None:
        raise ChannelhubError(f"{ctx.service.id} has no amount for risk.evaluate")
    payload = ctx.request.payload
    amount = ctx.amount or Money.parse(payload.get(fields.amount), payload.get(fields.currency))
    principal = ctx.request.principal
    beneficiary, account = str(params.get("beneficiary", "")), str(params.get("account", ""))
    return TxnRisk(
        txn_id=ctx.txn_id,
        service=ctx.service.id,
        channel=ctx.request.channel.partition(":")[0],
        amount_minor=amount.minor,
        currency=amount.currency,
        customer=principal.attributes.get("customer_id", ""),
        user=principal.id if principal.kind.value == "customer" else None,
        beneficiary=str(payload[beneficiary]) if beneficiary in payload else None,
        account=str(payload[account]) if account in payload else None,
        device=ctx.request.device_id,
        address=ctx.request.source_address,
        now=ctx.now,
    )


def _keep_decision(
    ctx: StepContext, txn: TxnRisk, assessment: Assessment, failure: str | None
) -> uuid.UUID:
    decision_id = new_id()
    evaluation = assessment.evaluation
    row = {
        "id": decision_id,
        "txn_id": ctx.txn_id,
        "service_id": ctx.service.id,
        "channel": ctx.request.channel,
        "customer_id": txn.customer or None,
        "outcome": evaluation.outcome,
        "score": evaluation.score,
        "fired": [fired.as_dict() for fired in evaluation.fired],
        "features": assessment.features,
        "failure": failure,
        "at": ctx.now,
    }

    # Kept whatever the transaction's outcome: a denied or failed one is recorded too.
    ctx.keep.append((repository.DECISIONS, row))
    return decision_id


#: Channels where the card and its PIN, checked for this very transaction, are the customer's
#: two factors (what a challenge would ask for), and where nobody can wait for a review.
_CARD_PRESENT = frozenset({"atm", "pos"})


@registry.rider("risk.evaluate")
def evaluate_early(ctx: StepContext, params: Mapping[str, Any]) -> Rider | None:
    """The features of ``risk.evaluate``, read and recorded with the flow's first statement."""
    engine = ctx.services.get("risk")
    if not isinstance(engine, RiskEngine):
        return None
    txn = _txn(ctx, params)
    early = engine.features_rider(txn)
    if early is None:
        return None
    ctx.memo["risk.evaluate"] = txn, early
    return early.rider


@registry.step("risk.evaluate")
async def evaluate(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Decide on the transaction by the bank's rules; record why.

    Params: ``beneficiary`` and ``account`` (the input fields naming where the money goes and
    where it comes from), ``on_failure`` (``closed``, the default, or ``open``).
    """
    engine = _engine(ctx)
    built = ctx.memo.pop("risk.evaluate", None) if "risk.evaluate" in ctx.riders else None
    txn, early = built if built is not None else (_txn(ctx, params), None)
    fail_open = params.get("on_failure", "closed") == "open"
    if engine.features.outside:
        # The store counts the activity as it reads the features: if the transaction does not
        # go on (denied, challenged, failed, or the engine timed out), take it back.
        _forget_on_rollback(ctx, engine, activity_of(txn))
    started = asyncio.get_running_loop().time()
    try:
        assessment = await engine.assess(
            ctx.session, txn, deadline=started + engine.timeout, early=early
        )
    except ChannelhubError:
        raise
    except Exception as error:  # down or slow: the service's failure mode decides
        return _unchecked(ctx, txn, error, fail_open)
    EVALUATION_SECONDS.observe(asyncio.get_running_loop().time() - started)
    evaluation = assessment.evaluation
    _count(txn, evaluation)
    decision = _keep_decision(ctx, txn, assessment, None)
    outcome = evaluation.outcome
    card_present = ctx.request.channel in _CARD_PRESENT
    if outcome == "deny" or (outcome == "review" and card_present):
        # A terminal cannot wait for a reviewer: its customer walks away, and cash dispensed
        # later than the answer is no cash at all. What a reviewer would have looked at is
        # declined there (the decision says "review", the answer is a refusal).
        raise RiskDenied("the transaction was refused", details={"decision": str(decision)})
    if outcome == "challenge" and not (ctx.stepped_up or card_present):
        raise StepUpRequired(
            "confirm this transaction with a one-time code", details={"decision": str(decision)}
        )
    if outcome == "review":
        await _park(ctx, txn, decision)
        # The gate a reviewer opens (kernel/held.py): with a supervisor's approval also
        # pending, the transaction completes only once both are given.
        return {
            "decision": str(decision),
            "outcome": outcome,
            "score": evaluation.score,
            "gate": "review",
        }
    return {"decision": str(decision), "outcome": outcome, "score": evaluation.score}


def _count(txn: TxnRisk, evaluation: Evaluation) -> None:
    DECISIONS.labels(txn.channel, evaluation.outcome).inc()
    for fired in evaluation.fired:
        mode = "shadow" if fired.shadow else "active"
        RULES_FIRED.labels(fired.rule, str(fired.version), mode, fired.outcome).inc()


def _unchecked(
    ctx: StepContext, txn: TxnRisk, error: Exception, fail_open: bool
) -> Mapping[str, Any]:
    """Record that the engine could not decide; refuse (fail closed) or let it through."""
    reason = "timeout" if isinstance(error, TimeoutError) else type(error).__name__
    log.warning("risk_unavailable", reason=reason, fail_open=fail_open)
    UNAVAILABLE.labels("open" if fail_open else "closed").inc()
    outcome = "allow" if fail_open else "deny"
    failure = f"{reason}: failed {'open' if fail_open else 'closed'}"
    decision = _keep_decision(ctx, txn, Assessment(Evaluation(outcome, 0)), failure)
    if not fail_open:
        raise RiskUnavailable(
            "risk control could not check this transaction", details={"decision": str(decision)}
        )
    return {"decision": str(decision), "outcome": outcome, "unchecked": True}


def _forget_on_rollback(ctx: StepContext, engine: RiskEngine, activity: Activity) -> None:
    features = engine.features
    # A store that hangs must not hold the answer for long: an activity left counted only
    # makes later checks stricter (and the kernel logs the failure).
    budget = max(engine.timeout, _FORGET_SECONDS)

    async def forget() -> None:
        async with asyncio.timeout(budget):
            await features.forget(activity)

    ctx.undo_outside.append(forget)


async def _park(ctx: StepContext, txn: TxnRisk, decision: uuid.UUID) -> None:
    review_id = new_id()
    await repository.insert_review(
        ctx.session,
        {
            "id": review_id,
            "txn_id": ctx.txn_id,
            "decision_id": decision,
            "service_id": ctx.service.id,
            "channel": ctx.request.channel,
            "customer_id": txn.customer or None,
            "amount_minor": txn.amount_minor,
            "currency": txn.currency,
            "status": "pending",
            "created_at": ctx.now,
            "decided_by": None,
            "decided_at": None,
            "reason": None,
        },
    )
    ctx.parked = "review"
    ctx.data["review"] = str(review_id)
