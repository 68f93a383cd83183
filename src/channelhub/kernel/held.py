"""Transactions parked in review: conclude one when a staff member decides.

A step (the risk engine) parks a transaction; the steps after it only hold what they would
have moved, and the transaction waits ``in_review``. Approving runs each completed step's
resumption (the ledger posts against its holds); rejecting compensates the steps, newest
first (the holds are released, the limits given back). Either way the transaction ends in
its terminal state, in the caller's database transaction: a failure leaves it in review.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kernel import journal
from channelhub.kernel.codes import lookup
from channelhub.kernel.engine import PARKED_CODES, TransactionEngine
from channelhub.kernel.events import transaction_event
from channelhub.kernel.flow import DONE, StepLog
from channelhub.kernel.model import (
    Principal,
    PrincipalKind,
    TransactionRequest,
    TransactionResult,
    TxnStatus,
)
from channelhub.kernel.steps import StepContext
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money

__all__ = ["conclude_held"]


class CompensationFailed(ChannelhubError):
    """A step of a rejected transaction could not be undone; it stays in review."""


async def _no_checkpoint(step_log: StepLog) -> None:
    raise ChannelhubError("a parked transaction has no external step to undo")


async def conclude_held(
    engine: TransactionEngine,
    session: AsyncSession,
    txn_id: uuid.UUID,
    *,
    approve: bool,
    gate: str,
    now: dt.datetime,
) -> TransactionResult | None:
    """Decide one gate of a transaction in review; None if it is not in review.

    A transaction may wait at several gates at once (the risk engine's ``review`` and a
    supervisor's ``approval`` over a teller's authority): each step that parked it says so in
    its output (``{"gate": ...}``). Approving one gate completes the transaction only when no
    other gate still waits; until then it stays in review and the answer says what it waits
    for. Rejecting any gate undoes it.

    Runs in ``session``'s transaction, which the caller commits.

    Raises:
        ChannelhubError: a resumption or compensation failed; roll back, it stays in review.
    """
    row = await journal.claim_held(session, txn_id, node_id=engine.settings.node_id, now=now)
    if row is None:
        return None
    step_log: StepLog = [dict(entry) for entry in row.step_log]
    ctx = _context(engine, session, row, step_log, now)
    response: dict[str, Any] = dict(row.response or {})
    ctx.data.update(response.get("data") or {})
    if approve:
        waiting = _pass_gate(step_log, gate)
        if waiting is not None:
            entry = lookup(PARKED_CODES[waiting])
            await journal.keep_held(
                session, txn_id, step_log, code=entry.code, message=entry.message_en, now=now
            )
            amount = Money(row.amount_minor, row.currency) if row.amount_minor is not None else None
            return TransactionResult(
                row.id, TxnStatus.IN_REVIEW, entry.code, entry.message_en, amount=amount
            )
    if approve:
        await _resume(engine, ctx, step_log)
        status, entry = TxnStatus.SUCCEEDED, lookup("OK")
    else:
        if not await engine.runner.compensate(ctx, step_log, _no_checkpoint):
            raise CompensationFailed("a step of the transaction could not be undone")
        status, entry = TxnStatus.FAILED, lookup("REVIEW_REJECTED")
    data = dict(ctx.data) if approve else {}
    duration_ms = int((now - row.created_at).total_seconds() * 1000)
    await journal.close(
        session,
        txn_id,
        node_id=engine.settings.node_id,
        status=status.value,
        code=entry.code,
        message=entry.message_en,
        response={"code": entry.code, "message": entry.message_en, "data": data, "details": {}},
        step_log=step_log,
        now=now,
        duration_ms=duration_ms,
    )
    amount = Money(row.amount_minor, row.currency) if row.amount_minor is not None else None
    await journal.add_event(
        session,
        transaction_event(
            txn_id=row.id,
            service_id=row.service_id,
            service_version=row.service_version,
            channel=row.channel,
            principal=ctx.request.principal,
            status=status.value,
            code=entry.code,
            amount=amount,
            duration_ms=duration_ms,
            now=now,
        ),
    )
    return TransactionResult(
        row.id, status, entry.code, entry.message_en, data, amount=amount, finished_at=now
    )


def _pass_gate(step_log: StepLog, gate: str) -> str | None:
    """Mark ``gate`` passed in the step log; return a gate that still waits, if any."""
    waiting = None
    for entry in step_log:
        output = entry.get("output")
        parked = output.get("gate") if isinstance(output, dict) else None
        if parked is None or entry.get("state") != DONE:
            continue
        if parked == gate:
            entry["passed"] = True
        elif not entry.get("passed"):
            waiting = str(parked)
    return waiting


async def _resume(engine: TransactionEngine, ctx: StepContext, step_log: StepLog) -> None:
    resumptions = engine.runner.registry.resumptions
    for entry in step_log:
        spec = resumptions.get(str(entry.get("step")))
        if spec is None or entry.get("state") != DONE:
            continue
        output = await spec.fn(ctx, entry.get("params", {}), entry.get("output"))
        if output:
            entry["output"] = dict(output)
            ctx.outputs[str(entry["id"])] = entry["output"]
        entry["resumed"] = True


def _context(
    engine: TransactionEngine,
    session: AsyncSession,
    row: Any,
    step_log: StepLog,
    now: dt.datetime,
) -> StepContext:
    # As in recovery, the request body is not kept: steps resume from their own parameters
    # and the outputs of the steps before them, which the step log holds.
    principal = Principal(kind=PrincipalKind(row.principal_kind), id=row.principal_id)
    request = TransactionRequest(
        service_id=row.service_id, channel=row.channel, principal=principal, payload={}
    )
    ctx = StepContext(
        txn_id=row.id,
        request=request,
        service=engine.catalog().get(row.service_id, row.service_version),  # type: ignore[arg-type]
        session=session,
        now=now,
        time_zone=engine.settings.time_zone,
        node_id=engine.settings.node_id,
        services=engine.services,
    )
    for entry in step_log:
        if entry.get("state") == DONE and entry.get("output") is not None:
            ctx.outputs[str(entry.get("id"))] = entry["output"]
    return ctx
