"""Reverse a transaction that succeeded: its channel takes it back (an ATM that could not
dispense, a sale the POS cancelled, an authorization the merchant released).

A reversal is a transaction of its own, a service whose flow is the ``txn.reverse`` step, so
its journal row records that it was asked for, whatever it found, and a repeated reversal
(same idempotency key, same original) gets the first one's answer. The step finds the original
by the idempotency key its channel gave it, claims it (succeeded -> reversed in one statement,
so two reversals cannot both undo it), runs the compensations of its completed steps, newest
first, in the reversal's own database transaction, and writes the original's event. An
original never seen gets a placeholder under its key, so that if it arrives after its reversal
it is refused as a duplicate instead of executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelhub.kernel import journal
from channelhub.kernel.errors import TransactionInProgress
from channelhub.kernel.events import transaction_event
from channelhub.kernel.flow import FlowRunner, StepLog
from channelhub.kernel.model import Principal, PrincipalKind, TransactionRequest, TxnStatus
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.money import Money

__all__ = ["ReversalFailed", "reverse"]

#: The request hash of a placeholder: no request hashes to it, so a late original is refused.
_PLACEHOLDER_HASH = "reversed-before-received"


class ReversalFailed(ChannelhubError):
    """A step of the original could not be undone; nothing of the reversal is kept."""


async def _in_place(step_log: StepLog) -> None:
    """Run a compensation that calls another system (a card switch's reversal) in place,
    inside the reversal's database transaction: there is nothing to checkpoint, since the
    claim and the reversal's journal row commit together after it. If that commit fails, the
    other system has undone the step and the original still reads succeeded; the channel's
    repeat (an 0420 advice) claims it again and runs the compensation again, which every
    compensation must take (it is safe to run when the effect is already undone)."""


@registry.step("txn.reverse")
async def reverse(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Undo the succeeded transaction this channel knows under the idempotency key
    ``original``, if the same principal made it; say what was found in ``original``
    (``reversed``, ``unknown``, ``failed``, ``already_reversed``, ``in_review``).

    Not ``mutates``: nothing undoes a reversal, and its flow is atomic, so a failure rolls
    back every write of it with its own journal row.

    Raises:
        TransactionInProgress: the original is still running (or in doubt): retry later.
        ReversalFailed: a compensation failed.
    """
    key = str(ctx.request.payload["original"])
    request = ctx.request
    row = await journal.get_by_key(ctx.session, request.channel, key)
    if row is None and not await _placeholder(ctx, key):
        # The original was being recorded as we looked (its journal row not yet committed):
        # the placeholder's insert waited for that commit and found the key taken. Read it
        # again, now committed, and reverse it like any other.
        row = await journal.get_by_key(ctx.session, request.channel, key)
    if row is None or row.principal_id != request.principal.id:
        # Another principal's transaction is as good as unknown to this one.
        ctx.data["original"] = "unknown"
        return {"original": "unknown"}
    ctx.data["original_txn_id"] = str(row.id)
    status = TxnStatus(row.status)
    if status in (TxnStatus.PROCESSING, TxnStatus.IN_DOUBT, TxnStatus.RECEIVED):
        raise TransactionInProgress("the original transaction is still being processed")
    claimed = await journal.claim_for_reversal(ctx.session, row.id, now=ctx.now)
    if claimed is None:
        found = "already_reversed" if status is TxnStatus.REVERSED else status.value
        ctx.data["original"] = found
        return {"original": found, "txn_id": str(row.id)}
    await _undo(ctx, claimed)
    ctx.data["original"] = "reversed"
    return {"original": "reversed", "txn_id": str(row.id)}


async def _undo(ctx: StepContext, row: Any) -> None:
    step_log: StepLog = [dict(entry) for entry in row.step_log]
    original = _original_context(ctx, row)
    if not await FlowRunner(registry).compensate(original, step_log, _in_place):
        raise ReversalFailed("a step of the original transaction could not be undone")
    ctx.undo_outside.extend(original.undo_outside)
    await journal.set_step_log(ctx.session, row.id, step_log, now=ctx.now)
    amount = Money(row.amount_minor, row.currency) if row.amount_minor is not None else None
    await journal.add_event(
        ctx.session,
        transaction_event(
            txn_id=row.id,
            service_id=row.service_id,
            service_version=row.service_version,
            channel=row.channel,
            principal=original.request.principal,
            status=TxnStatus.REVERSED.value,
            code=row.code or "OK",
            amount=amount,
            duration_ms=int((ctx.now - row.created_at).total_seconds() * 1000),
            now=ctx.now,
        ),
    )


def _original_context(ctx: StepContext, row: Any) -> StepContext:
    # As in recovery and review, the original's request body is not kept: compensations work
    # from their step's parameters and output, which the step log holds. They run under the
    # original's transaction id, which its limit charges and ledger entries carry.
    principal = Principal(kind=PrincipalKind(row.principal_kind), id=row.principal_id)
    request = TransactionRequest(
        service_id=row.service_id, channel=row.channel, principal=principal, payload={}
    )
    return StepContext(
        txn_id=row.id,
        request=request,
        service=ctx.service,
        session=ctx.session,
        now=ctx.now,
        time_zone=ctx.time_zone,
        node_id=ctx.node_id,
        services=ctx.services,
    )


async def _placeholder(ctx: StepContext, key: str) -> bool:
    """Take the original's idempotency key, so that an original arriving after its reversal
    is answered as a duplicate and never executed; False if the key is taken meanwhile."""
    request, now = ctx.request, ctx.now
    return await journal.open_transaction(
        ctx.session,
        {
            "id": new_id(),
            "channel": request.channel,
            "service_id": ctx.service.id,
            "service_version": ctx.service.version,
            "principal_kind": request.principal.kind.value,
            "principal_id": request.principal.id,
            "idempotency_key": key,
            "request_hash": _PLACEHOLDER_HASH,
            "amount_minor": None,
            "currency": None,
            "status": TxnStatus.REVERSED.value,
            "code": "OK",
            "message": "Reversed before it was received",
            "response": {"code": "OK", "message": "", "data": {}, "details": {}},
            "step_log": [],
            "node_id": ctx.node_id,
            "lease_expires_at": None,
            "created_at": now,
            "updated_at": now,
            "finished_at": now,
            "duration_ms": 0,
        },
    )
