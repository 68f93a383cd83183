"""The flow engine: run a service's steps in order, and undo the completed ones on failure.

Every step leaves an entry in the step log, which the journal keeps: what ran, in which order,
what it returned, and whether it was undone. The recovery worker compensates from that log
alone, so a compensation is looked up by name and gets only the step's parameters and output.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from channelhub.kernel.catalog.compiled import CompiledBranch, CompiledNode, CompiledStep
from channelhub.kernel.steps import OutcomeUnknown, Resolution, StepContext, StepRegistry
from channelhub.kit.db import ride
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger

__all__ = ["Checkpoint", "FlowOutcome", "FlowRunner", "StepLog"]

log = get_logger(__name__)

#: One entry per step: {"step", "id", "state", "compensation", "external", "params", "output" ...}.
StepLog = list[dict[str, Any]]

#: Persist the step log and commit, before an external call: what is committed is recoverable.
Checkpoint = Callable[[StepLog], Awaitable[None]]

# Entry states. "calling" is committed before an external call and means "may have happened".
# "rolled_back": the step completed, then the flow failed and its database transaction, which
# held every effect of the step, was rolled back (an atomic flow needs no compensation).
DONE, CALLING, FAILED, SKIPPED = "done", "calling", "failed", "skipped"
UNKNOWN, COMPENSATED, COMPENSATION_FAILED = "unknown", "compensated", "compensation_failed"
ROLLED_BACK = "rolled_back"
_TO_UNDO = (DONE, CALLING, UNKNOWN, COMPENSATION_FAILED)


@dataclass(slots=True)
class FlowOutcome:
    """How a flow ended: succeeded, failed and fully undone, or left in doubt."""

    error: ChannelhubError | None = None
    in_doubt: bool = False
    step_log: StepLog = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether every step completed."""
        return self.error is None and not self.in_doubt


class _Stop(Exception):
    def __init__(self, error: ChannelhubError, *, in_doubt: bool = False) -> None:
        self.error = error
        self.in_doubt = in_doubt


class FlowRunner:
    """Runs compiled flows against a step registry."""

    def __init__(self, registry: StepRegistry) -> None:
        self.registry = registry

    async def run_atomic(self, ctx: StepContext, nodes: tuple[CompiledNode, ...]) -> FlowOutcome:
        """Run an all-local flow inside the caller's database transaction.

        Nothing is compensated and no step gets a savepoint: on a failure the caller rolls the
        one transaction back, which undoes every step at once (DESIGN.md, "Transactions").
        """
        outcome = FlowOutcome()
        self._send_riders(ctx, nodes)
        try:
            await self._run_nodes(ctx, nodes, outcome.step_log, _no_checkpoint, atomic=True)
        except _Stop as stop:
            outcome.error = stop.error
            for entry in outcome.step_log:
                if entry.get("state") == DONE:
                    entry["state"] = ROLLED_BACK
        return outcome

    def _send_riders(self, ctx: StepContext, nodes: tuple[CompiledNode, ...]) -> None:
        """Have the steps that offer a rider build their statements now, to go with the
        flow's first statement (kit.db.Rider): one round trip each the less.

        Only where it changes nothing but the timing: in one database transaction with no
        call out (an inquiry may end a read-only transaction half-way), for steps the flow
        always reaches unless it fails (top level, no ``when``), each step's first use only.
        """
        if not self.registry.riders or not ctx.on_postgresql:
            return
        if any(_calls_out(node) for node in nodes):
            return
        seen: set[str] = set()
        for node in nodes:
            if not isinstance(node, CompiledStep):
                seen.update(_step_names(node))  # a use in a branch comes first
                continue
            name = node.spec.name
            first, build = name not in seen, self.registry.riders.get(name)
            seen.add(name)
            if build is None or not first or node.when is not None:
                continue
            try:
                rider = build(ctx, node.params)
            except Exception:  # the step will run its statement itself
                log.exception("rider_failed", step=name)
                continue
            if rider is not None:
                ctx.riders[name] = rider
                ride(ctx.session, rider)

    async def run(
        self, ctx: StepContext, nodes: tuple[CompiledNode, ...], checkpoint: Checkpoint
    ) -> FlowOutcome:
        """Run ``nodes``; on a failure, compensate what completed, newest first."""
        outcome = FlowOutcome()
        try:
            await self._run_nodes(ctx, nodes, outcome.step_log, checkpoint, atomic=False)
        except _Stop as stop:
            outcome.error = stop.error
            if stop.in_doubt:
                # The last external call may or may not have happened: recovery decides later.
                outcome.in_doubt = True
                return outcome
            outcome.in_doubt = not await self.compensate(ctx, outcome.step_log, checkpoint)
        return outcome

    async def _run_nodes(
        self,
        ctx: StepContext,
        nodes: tuple[CompiledNode, ...],
        step_log: StepLog,
        checkpoint: Checkpoint,
        *,
        atomic: bool,
    ) -> None:
        for node in nodes:
            if isinstance(node, CompiledBranch):
                taken = _holds(node.condition, node.source, ctx)
                step_log.append({"branch": node.source, "taken": "then" if taken else "else"})
                await self._run_nodes(
                    ctx, node.then if taken else node.otherwise, step_log, checkpoint, atomic=atomic
                )
                continue
            entry: dict[str, Any] = {
                "step": node.spec.name,
                "id": node.output_key,
                "state": SKIPPED,
                "compensation": node.compensation.name if node.compensation else None,
                "external": node.spec.external,
                "params": dict(node.params),
            }
            step_log.append(entry)
            if node.when is not None and not _holds(node.when, "when", ctx):
                continue
            await self._run_step(ctx, node, entry, step_log, checkpoint, atomic=atomic)

    async def _run_step(
        self,
        ctx: StepContext,
        node: CompiledStep,
        entry: dict[str, Any],
        step_log: StepLog,
        checkpoint: Checkpoint,
        *,
        atomic: bool,
    ) -> None:
        started = time.perf_counter()
        if node.spec.external and not atomic:
            # What is committed is recoverable: "calling" means "may have happened", and what
            # the earlier steps did is on record should this node die during the call. The
            # data built so far goes with it, for a transaction recovery completes.
            entry.update(state=CALLING, data=dict(ctx.data))
            await checkpoint(step_log)
        elif node.spec.external:
            # An inquiry in an all-local flow: nothing to record. If nothing was written yet,
            # end the read transaction, so that the call does not hold a database connection.
            await _release_if_read_only(ctx, step_log, self.registry)
        # In a flow that calls out, a state-changing local step runs under a savepoint so that,
        # if it fails half-way, its own partial writes go and only completed steps are left to
        # compensate. An atomic flow rolls everything back instead.
        savepoint = (
            await ctx.session.begin_nested()
            if node.spec.mutates and not node.spec.external and not atomic
            else None
        )
        try:
            output = await node.spec.fn(ctx, node.params)
        except OutcomeUnknown as error:
            # Ask the other system at once what became of it; only if it cannot say either
            # does the transaction stay in doubt, for the recovery worker. The step is on
            # record as unknown first, with a fresh lease: asking may take a while.
            entry.update(state=UNKNOWN, code=error.code)
            if not atomic:
                await checkpoint(step_log)
            resolution = await self.resolve(ctx, node.spec.name, node.params)
            if resolution is None:
                entry.update(state=UNKNOWN, code=error.code, ms=_ms(started))
                raise _Stop(error, in_doubt=True) from None
            entry["resolved"] = "done" if resolution.done else "not_done"
            if not resolution.done:
                entry.update(state=FAILED, code=error.code, ms=_ms(started))
                raise _Stop(error) from None
            output = resolution.output
        except ChannelhubError as error:
            if savepoint is not None:
                await savepoint.rollback()
            entry.update(state=FAILED, code=error.code, ms=_ms(started))
            raise _Stop(error) from None
        except Exception as error:  # a bug in a step: log it whole, undo, answer INTERNAL_ERROR
            if savepoint is not None:
                await savepoint.rollback()
            log.exception("step_crashed", step=node.spec.name)
            entry.update(state=FAILED, code="INTERNAL_ERROR", ms=_ms(started))
            raise _Stop(
                ChannelhubError(f"step {node.spec.name} failed: {type(error).__name__}")
            ) from None
        if savepoint is not None:
            await savepoint.commit()
        rider = ctx.riders.get(node.spec.name)
        if rider is not None and not rider.delivered:
            # A rider left behind would go with a later statement: its work twice.
            entry.update(state=FAILED, code="INTERNAL_ERROR", ms=_ms(started))
            log.error("rider_unused", step=node.spec.name)
            raise _Stop(ChannelhubError(f"step {node.spec.name} left its rider unused"))
        entry.pop("data", None)  # only recovery needs it, and only while the call is open
        entry.update(state=DONE, ms=_ms(started))
        if output:
            entry["output"] = dict(output)
            ctx.outputs[node.output_key] = entry["output"]

    async def resolve(
        self, ctx: StepContext, step: str, params: Mapping[str, Any]
    ) -> Resolution | None:
        """Find out what became of external step ``step`` left in doubt; None while nobody
        can tell (no resolution registered, or the other system still does not answer)."""
        spec = self.registry.resolutions.get(step)
        if spec is None:
            return None
        try:
            resolution: Resolution = await spec.fn(ctx, params)
        except OutcomeUnknown as error:
            log.warning("resolution_unknown", step=step, code=error.code)
            return None
        except Exception:
            log.exception("resolution_failed", step=step)
            return None
        return resolution

    async def compensate(self, ctx: StepContext, step_log: StepLog, checkpoint: Checkpoint) -> bool:
        """Undo, newest first, every entry of ``step_log`` that may have had an effect.

        Returns False when a compensation failed: the transaction then stays in doubt and the
        recovery worker tries again from the log, which records what is already undone.
        """
        for entry in reversed(step_log):
            if entry.get("state") not in _TO_UNDO or not entry.get("compensation"):
                continue
            spec = self.registry.compensations.get(entry["compensation"])
            if spec is None:
                log.error("compensation_unknown", compensation=entry["compensation"])
                entry["state"] = COMPENSATION_FAILED
                return False
            if spec.external:
                await checkpoint(step_log)
            savepoint = None if spec.external else await ctx.session.begin_nested()
            try:
                await spec.fn(ctx, entry.get("params", {}), entry.get("output"))
            except Exception:
                if savepoint is not None:
                    await savepoint.rollback()
                log.exception("compensation_failed", compensation=spec.name, step=entry["step"])
                entry["state"] = COMPENSATION_FAILED
                return False
            if savepoint is not None:
                await savepoint.commit()
            entry["state"] = COMPENSATED
        return True


async def _release_if_read_only(
    ctx: StepContext, step_log: StepLog, registry: StepRegistry
) -> None:
    """End the session's transaction if no step of it has written anything yet."""
    for entry in step_log:
        spec = registry.steps.get(str(entry.get("step")))
        if entry.get("state") == DONE and (spec is None or spec.mutates):
            return
    if ctx.keep or ctx.undo_outside:
        return
    await ctx.session.rollback()


async def _no_checkpoint(step_log: StepLog) -> None:
    raise AssertionError("an atomic flow has no external step to checkpoint before")


def _holds(program: Any, source: str, ctx: StepContext) -> bool:
    try:
        value = program.execute(ctx.condition_vars())
    except Exception as error:  # cel raises ValueError/TypeError/RuntimeError for bad data
        raise _Stop(
            ChannelhubError(f"condition {source!r} could not be evaluated: {error}")
        ) from None
    if not isinstance(value, bool):
        raise _Stop(ChannelhubError(f"condition {source!r} did not yield true or false"))
    return value


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _step_names(node: CompiledNode) -> set[str]:
    if isinstance(node, CompiledBranch):
        return {name for child in (*node.then, *node.otherwise) for name in _step_names(child)}
    return {node.spec.name}


def _calls_out(node: CompiledNode) -> bool:
    if isinstance(node, CompiledBranch):
        return any(_calls_out(child) for child in (*node.then, *node.otherwise))
    return node.spec.external
