"""Recovery: bring transactions abandoned by a dead node to a terminal state.

A transaction is only ever left unfinished after a checkpoint committed it (an external step
was about to be called). Its step log says what may have happened. When the external step it
stopped in has a resolution (a status inquiry), recovery first asks the other system: carried
out, and the flow's last step, the transaction succeeded after all; otherwise recovery
compensates what happened, newest first, and closes the transaction as failed with
TXN_ABORTED. While the other system cannot say, or a compensation fails, the transaction stays
in doubt, to be tried again on the next pass — never reported failed while it may have
happened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.kernel import journal
from channelhub.kernel.catalog import Catalog, CompiledService
from channelhub.kernel.catalog.compiled import CompiledStep
from channelhub.kernel.codes import lookup
from channelhub.kernel.engine import EngineSettings
from channelhub.kernel.events import transaction_event
from channelhub.kernel.flow import CALLING, DONE, FAILED, UNKNOWN, Checkpoint, FlowRunner, StepLog
from channelhub.kernel.model import Principal, PrincipalKind, TransactionRequest
from channelhub.kernel.steps import StepContext, StepRegistry
from channelhub.kit.clock import utc_now
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money

__all__ = ["RecoveryReport", "RecoveryWorker"]

log = get_logger(__name__)


@dataclass(slots=True)
class RecoveryReport:
    """What one recovery pass did."""

    found: int = 0
    aborted: list[str] = field(default_factory=list)
    #: Transactions whose last step, left in doubt, turned out to have been carried out.
    completed: list[str] = field(default_factory=list)
    still_in_doubt: list[str] = field(default_factory=list)


class RecoveryWorker:
    """Finds unfinished transactions whose lease ran out and compensates them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Callable[[], Catalog],
        registry: StepRegistry,
        settings: EngineSettings,
        clock: Callable[[], dt.datetime] = utc_now,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.runner = FlowRunner(registry)
        self.settings = settings
        self.clock = clock
        #: The node's domain services, handed to compensations and resolutions as to steps.
        self.services: Mapping[str, Any] = services if services is not None else {}

    async def run_once(self, *, limit: int = 100) -> RecoveryReport:
        """Recover up to ``limit`` abandoned transactions."""
        report = RecoveryReport()
        async with self.sessions() as session:
            stale = await journal.find_stale(session, now=self.clock(), limit=limit)
            await session.rollback()
        report.found = len(stale)
        for (txn_id,) in stale:
            settled = await self._recover(txn_id)
            if settled is None:
                continue
            {_SUCCEEDED: report.completed, _UNDONE: report.aborted}.get(
                settled, report.still_in_doubt
            ).append(str(txn_id))
        return report

    async def run_pass(self) -> None:
        """Run one pass and log what it found (the node's background loop, every
        ``recovery.interval_seconds``)."""
        report = await self.run_once()
        if report.found:
            log.info(
                "recovery_pass",
                found=report.found,
                aborted=len(report.aborted),
                completed=len(report.completed),
                in_doubt=len(report.still_in_doubt),
            )

    async def _recover(self, txn_id: Any) -> str | None:
        """Settle and close one transaction; None if another node claimed it first."""
        now = self.clock()
        async with self.sessions() as session:
            row = await journal.claim_for_recovery(
                session,
                txn_id,
                node_id=self.settings.node_id,
                now=now,
                lease_expires_at=now + dt.timedelta(seconds=self.settings.lease_seconds),
            )
            if row is None:
                await session.rollback()
                return None
            await session.commit()
            log.warning("recovering_transaction", txn_id=str(txn_id), service=row.service_id)
            step_log: StepLog = [dict(entry) for entry in row.step_log]
            ctx = self._context(session, row, now)

            async def checkpoint(entries: StepLog) -> None:
                await journal.checkpoint(
                    session,
                    row.id,
                    node_id=self.settings.node_id,
                    step_log=entries,
                    lease_expires_at=self.clock()
                    + dt.timedelta(seconds=self.settings.lease_seconds),
                    now=self.clock(),
                )
                await session.commit()

            settled = await self._settle(ctx, step_log, checkpoint)
            if settled == _SUCCEEDED:
                entry, status = lookup("OK"), "succeeded"
                data = _final_data(step_log)
            else:
                entry, data = lookup("TXN_ABORTED"), {}
                status = "failed" if settled == _UNDONE else "in_doubt"
            finished = self.clock()
            duration_ms = int((finished - row.created_at).total_seconds() * 1000)
            closed = await journal.close(
                session,
                row.id,
                node_id=self.settings.node_id,
                status=status,
                code=entry.code,
                message=entry.message_en,
                response={
                    "code": entry.code,
                    "message": entry.message_en,
                    "data": data,
                    "details": {},
                },
                step_log=step_log,
                now=finished,
                duration_ms=duration_ms,
            )
            if closed and settled != _IN_DOUBT:
                amount = (
                    Money(row.amount_minor, row.currency) if row.amount_minor is not None else None
                )
                await journal.add_event(
                    session,
                    transaction_event(
                        txn_id=row.id,
                        service_id=row.service_id,
                        service_version=row.service_version,
                        channel=row.channel,
                        principal=ctx.request.principal,
                        status=status,
                        code=entry.code,
                        amount=amount,
                        duration_ms=duration_ms,
                        now=finished,
                    ),
                )
            await session.commit()
            return settled

    async def _settle(self, ctx: StepContext, step_log: StepLog, checkpoint: Checkpoint) -> str:
        """Bring one transaction's effects to an end: ``_SUCCEEDED`` when its last step, left
        in doubt, turns out to have been carried out (nothing after it was left to run);
        ``_UNDONE`` when everything that happened is compensated; ``_IN_DOUBT`` while the
        other system cannot say, or a compensation fails (the next pass tries again)."""
        pending = _in_doubt_entry(step_log)
        if pending is not None and pending["step"] in self.runner.registry.resolutions:
            resolution = await self.runner.resolve(ctx, pending["step"], pending.get("params", {}))
            if resolution is None:
                return _IN_DOUBT
            pending["resolved"] = "done" if resolution.done else "not_done"
            if resolution.done:
                pending["state"] = DONE
                if resolution.output:
                    pending["output"] = dict(resolution.output)
                if _last_of_flow(ctx.service, pending):
                    return _SUCCEEDED
            else:
                pending["state"] = FAILED
        undone = await self.runner.compensate(ctx, step_log, checkpoint)
        return _UNDONE if undone else _IN_DOUBT

    def _context(self, session: AsyncSession, row: Any, now: dt.datetime) -> StepContext:
        # The request body is not kept (it may hold secrets): compensations work from their
        # step's parameters and output alone, which the step log holds.
        principal = Principal(kind=PrincipalKind(row.principal_kind), id=row.principal_id)
        request = TransactionRequest(
            service_id=row.service_id, channel=row.channel, principal=principal, payload={}
        )
        service = self.catalog().get(row.service_id, row.service_version)
        return StepContext(
            txn_id=row.id,
            request=request,
            service=service,  # type: ignore[arg-type]  # None when the definition was removed
            session=session,
            now=now,
            time_zone=self.settings.time_zone,
            node_id=self.settings.node_id,
            services=self.services,
        )


_SUCCEEDED, _UNDONE, _IN_DOUBT = "succeeded", "undone", "in_doubt"


def _in_doubt_entry(step_log: StepLog) -> dict[str, Any] | None:
    """Return the external step the transaction stopped in (its call may have happened)."""
    for entry in reversed(step_log):
        if entry.get("state") in (CALLING, UNKNOWN):
            return entry
    return None


def _last_of_flow(service: CompiledService | None, entry: dict[str, Any]) -> bool:
    """Tell whether ``entry`` is the flow's last step, so that once it is known to have been
    carried out nothing remains to be done: recovery cannot run later steps (it does not keep
    the request)."""
    if service is None or not service.flow:
        return False
    last = service.flow[-1]
    return isinstance(last, CompiledStep) and last.output_key == entry.get("id")


def _final_data(step_log: StepLog) -> dict[str, Any]:
    """Return the response data of a transaction recovery completed: what its steps had built
    before the call (kept with the call's entry), then what the call answered."""
    for entry in reversed(step_log):
        if entry.get("state") == DONE and entry.get("resolved") == "done":
            return {**(entry.pop("data", None) or {}), **(entry.get("output") or {})}
    return {}
