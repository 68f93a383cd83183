"""The transaction engine: from a canonical request to exactly one journaled outcome.

Path: resolve -> authorize -> validate (all in memory; a refusal here executes nothing and
writes nothing) -> journal.open (idempotency) -> flow -> journal.close + outbox event, the
last two in the same database transaction as every local step of the flow.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.kernel import journal
from channelhub.kernel.authorize import (
    Authorizer,
    StepUpGate,
    authorize,
    no_step_up,
    step_up_binding,
)
from channelhub.kernel.catalog import Catalog, CompiledService
from channelhub.kernel.codes import lookup
from channelhub.kernel.errors import (
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    StepUpRequired,
    TransactionInProgress,
)
from channelhub.kernel.events import transaction_event
from channelhub.kernel.flow import FlowOutcome, FlowRunner, StepLog
from channelhub.kernel.metrics import TRANSACTION_SECONDS, TRANSACTIONS
from channelhub.kernel.model import TransactionRequest, TransactionResult, TxnStatus
from channelhub.kernel.steps import StepContext, StepRegistry
from channelhub.kit.clock import utc_now
from channelhub.kit.db import DATABASE_ERRORS
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.kit.money import InvalidAmount, Money

__all__ = ["EngineSettings", "TransactionEngine", "request_hash"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What the engine needs to know about its node and its bank."""

    node_id: str
    time_zone: ZoneInfo
    #: How long a node may hold an unfinished transaction before recovery may take it over.
    lease_seconds: float = 60.0
    #: How long a duplicate request waits for the first one to finish.
    duplicate_wait_seconds: float = 10.0


def request_hash(request: TransactionRequest) -> str:
    """Return the fingerprint that tells a retry (same hash) from a reused key (another one)."""
    canonical = orjson.dumps(
        [request.service_id, request.principal.label, request.payload],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


class TransactionEngine:
    """Executes transactions; every channel adapter calls ``execute`` and nothing else."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Callable[[], Catalog],
        registry: StepRegistry,
        settings: EngineSettings,
        authorizer: Authorizer = authorize,
        step_up: StepUpGate = no_step_up,
        clock: Callable[[], dt.datetime] = utc_now,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.runner = FlowRunner(registry)
        self.settings = settings
        self.authorizer = authorizer
        self.step_up = step_up
        self.clock = clock
        #: The node's domain services, handed to every step (StepContext.services).
        self.services: dict[str, Any] = dict(services or {})
        bind = sessions.kw.get("bind")
        self._on_postgresql = bind is not None and bind.dialect.name == "postgresql"

    async def execute(self, request: TransactionRequest) -> TransactionResult:
        """Run ``request`` once, whatever number of times it arrives; return its outcome."""
        started = time.perf_counter()
        txn_id = new_id()
        structlog.contextvars.bind_contextvars(txn_id=str(txn_id))
        service_label = "(unknown)"
        try:
            try:
                service = self.catalog().resolve(
                    request.service_id, channel=request.channel, version=request.service_version
                )
                service_label = service.id
                amount = self._admit(service, request)
                binding = step_up_binding(service, request, amount)
                if binding is None and request.step_up is not None:
                    # The risk engine asked for a step-up on an earlier attempt.
                    binding = step_up_binding(service, request, amount, force=True)
                if binding is not None:
                    # Before the journal: a refused or pending step-up is not a transaction,
                    # so the retry that carries the code keeps its idempotency key.
                    await self.step_up(request, binding)
            except ChannelhubError as error:
                log.info("transaction_rejected", service=request.service_id[:128], code=error.code)
                result = _refusal(txn_id, error, request.locale)
                TRANSACTIONS.labels(request.channel, service_label, "rejected").inc()
                return result
            run = self._run_atomic if service.atomic else self._run
            result = await run(txn_id, service, request, amount, started, binding is not None)
            TRANSACTIONS.labels(request.channel, service.id, result.status.value).inc()
            TRANSACTION_SECONDS.labels(request.channel, service.id).observe(
                time.perf_counter() - started
            )
            return result
        finally:
            structlog.contextvars.unbind_contextvars("txn_id")

    def _admit(self, service: CompiledService, request: TransactionRequest) -> Money | None:
        """Check everything that needs no database; return the journal's amount, if any."""
        self.authorizer(service, request.principal)
        service.validate_input(request.payload)
        if service.definition.idempotency == "required" and not request.idempotency_key:
            raise IdempotencyKeyRequired(f"{service.id} needs an Idempotency-Key")
        fields = service.definition.amount
        if fields is None:
            return None
        amount = Money.parse(
            request.payload.get(fields.amount), request.payload.get(fields.currency)
        )
        if amount.minor <= 0:
            raise InvalidAmount("amount: must be more than zero", details={"field": fields.amount})
        return amount

    def _context(
        self,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        session: AsyncSession,
        now: dt.datetime,
        stepped_up: bool,
        amount: Money | None,
    ) -> StepContext:
        return StepContext(
            txn_id=txn_id,
            request=request,
            service=service,
            session=session,
            now=now,
            time_zone=self.settings.time_zone,
            node_id=self.settings.node_id,
            services=self.services,
            stepped_up=stepped_up,
            amount=amount,
            on_postgresql=self._on_postgresql,
        )

    async def _run_atomic(
        self,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        amount: Money | None,
        started: float,
        stepped_up: bool,
    ) -> TransactionResult:
        """Run an all-local flow and its journal row in one database transaction.

        The journal row is written once, finished, after the flow: its unique idempotency key
        is what makes a concurrent duplicate wait and then roll back its own work. A crash
        before the commit leaves nothing, so there is nothing to recover. A failed flow rolls
        back and its outcome is recorded in a second, short transaction.
        """
        now = self.clock()
        fingerprint = request_hash(request)
        ctx: StepContext | None = None
        committing = committed = False
        async with self.sessions() as session:
            try:
                ctx = self._context(txn_id, service, request, session, now, stepped_up, amount)
                outcome = await self.runner.run_atomic(ctx, service.flow)
                result = _result_of(txn_id, outcome, ctx, amount, request.locale)
                if not outcome.ok:
                    await session.rollback()
                    await _undo_outside(ctx)
                    if isinstance(outcome.error, StepUpRequired) and not stepped_up:
                        return await self._challenge(ctx, service, request, amount, result)
                duration_ms = int((time.perf_counter() - started) * 1000)
                # What steps keep goes with the journal row, in one statement.
                kept, ctx.keep = ctx.keep, []
                recorded = await self._record(
                    session,
                    txn_id,
                    service,
                    request,
                    amount,
                    fingerprint,
                    result,
                    outcome,
                    now,
                    duration_ms,
                    kept,
                )
                if not recorded:
                    await session.rollback()
                    if outcome.ok:
                        await _undo_outside(ctx)
                    assert request.idempotency_key is not None  # NULL keys never conflict
                    first = await journal.get_by_key(
                        session, request.channel, request.idempotency_key
                    )
                    await session.rollback()
                    return await self._answer_duplicate(first, fingerprint, request.locale)
                committing = True
                await session.commit()
                committed = True
                return result
            except asyncio.CancelledError:
                # The caller gave up (a terminal's connection closed mid-answer): the database
                # work rolls back with the session, and what was counted outside it (limits or
                # features in Redis) is given back too, whatever cancels next. Not once the
                # commit was sent: it may have happened, and a count kept is the safe side.
                if ctx is not None and not committing:
                    await asyncio.shield(_undo_outside(ctx))
                raise
            except DATABASE_ERRORS:
                log.exception("journal_unavailable", service=service.id)
                await session.rollback()
                if ctx is not None and not committed:
                    await _undo_outside(ctx)
                # Nothing was committed: nothing happened.
                entry = lookup("SERVICE_UNAVAILABLE")
                return TransactionResult(
                    txn_id, TxnStatus.FAILED, entry.code, entry.message(request.locale)
                )

    async def _record(
        self,
        session: AsyncSession,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        amount: Money | None,
        fingerprint: str,
        result: TransactionResult,
        outcome: FlowOutcome,
        opened: dt.datetime,
        duration_ms: int,
        kept: list[journal.KeptRow],
    ) -> bool:
        now = self.clock()
        row = self._opening_row(txn_id, service, request, amount, fingerprint, opened)
        row.update(
            status=result.status.value,
            code=result.code,
            message=result.message[:512],
            response=_response_of(result),
            step_log=outcome.step_log,
            lease_expires_at=None,
            updated_at=now,
            finished_at=now if result.status.terminal else None,
            duration_ms=duration_ms,
        )
        return await journal.record(
            session, row, self._event(txn_id, service, request, result, duration_ms, now), kept
        )

    def _event(
        self,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        result: TransactionResult,
        duration_ms: int,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return transaction_event(
            txn_id=txn_id,
            service_id=service.id,
            service_version=service.version,
            channel=request.channel,
            principal=request.principal,
            status=result.status.value,
            code=result.code,
            amount=result.amount,
            duration_ms=duration_ms,
            now=now,
        )

    async def _challenge(
        self,
        ctx: StepContext,
        service: CompiledService,
        request: TransactionRequest,
        amount: Money | None,
        refused: TransactionResult,
    ) -> TransactionResult:
        """A step (the risk engine) asked for a step-up: record what must be kept, then
        answer with a challenge bound to this transaction. Like a step-up the service itself
        demands, it is not journaled, so the confirmed retry keeps its idempotency key."""
        await _keep(ctx)
        await ctx.session.commit()
        binding = step_up_binding(service, request, amount, force=True)
        if binding is None:  # not a customer: nobody to challenge, so a refusal stands
            return refused
        try:
            await self.step_up(request, binding)
        except ChannelhubError as error:
            return _refusal(ctx.txn_id, error, request.locale)
        return refused  # pragma: no cover - a gate always raises without a proof

    async def _run(
        self,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        amount: Money | None,
        started: float,
        stepped_up: bool,
    ) -> TransactionResult:
        now = self.clock()
        fingerprint = request_hash(request)
        committed_once = False
        async with self.sessions() as session:
            try:
                opened = await journal.open_transaction(
                    session, self._opening_row(txn_id, service, request, amount, fingerprint, now)
                )
                if not opened:
                    assert request.idempotency_key is not None  # NULL keys never conflict
                    first = await journal.get_by_key(
                        session, request.channel, request.idempotency_key
                    )
                    await session.rollback()
                    return await self._answer_duplicate(first, fingerprint, request.locale)

                ctx = self._context(txn_id, service, request, session, now, stepped_up, amount)

                async def checkpoint(step_log: StepLog) -> None:
                    nonlocal committed_once
                    moment = self.clock()
                    await journal.checkpoint(
                        session,
                        txn_id,
                        node_id=self.settings.node_id,
                        step_log=step_log,
                        lease_expires_at=moment + dt.timedelta(seconds=self.settings.lease_seconds),
                        now=moment,
                    )
                    await session.commit()
                    committed_once = True

                outcome = await self.runner.run(ctx, service.flow, checkpoint)
                result = _result_of(txn_id, outcome, ctx, amount, request.locale)
                await _keep(ctx)
                duration_ms = int((time.perf_counter() - started) * 1000)
                closed = await self._close(
                    session, txn_id, service, request, result, outcome, duration_ms
                )
                if not closed:
                    # Recovery took the transaction over while we were calling out: its word stands.
                    await session.rollback()
                    return await self._current(txn_id, request.locale)
                await session.commit()
                return result
            except DATABASE_ERRORS:
                log.exception("journal_unavailable", service=service.id)
                await session.rollback()
                # Nothing was committed: nothing happened. After a checkpoint it may have.
                status = TxnStatus.IN_DOUBT if committed_once else TxnStatus.FAILED
                entry = lookup("SERVICE_UNAVAILABLE")
                return TransactionResult(txn_id, status, entry.code, entry.message(request.locale))

    def _opening_row(
        self,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        amount: Money | None,
        fingerprint: str,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "id": txn_id,
            "channel": request.channel,
            "service_id": service.id,
            "service_version": service.version,
            "principal_kind": request.principal.kind.value,
            "principal_id": request.principal.id,
            "idempotency_key": request.idempotency_key,
            "request_hash": fingerprint,
            "amount_minor": amount.minor if amount else None,
            "currency": amount.currency if amount else None,
            "status": TxnStatus.PROCESSING.value,
            "step_log": [],
            "node_id": self.settings.node_id,
            "lease_expires_at": now + dt.timedelta(seconds=self.settings.lease_seconds),
            "created_at": now,
            "updated_at": now,
        }

    async def _close(
        self,
        session: AsyncSession,
        txn_id: uuid.UUID,
        service: CompiledService,
        request: TransactionRequest,
        result: TransactionResult,
        outcome: FlowOutcome,
        duration_ms: int,
    ) -> bool:
        now = self.clock()
        closed = await journal.close(
            session,
            txn_id,
            node_id=self.settings.node_id,
            status=result.status.value,
            code=result.code,
            message=result.message,
            response=_response_of(result),
            step_log=outcome.step_log,
            now=now,
            duration_ms=duration_ms,
        )
        if closed and result.status.terminal:
            await journal.add_event(
                session, self._event(txn_id, service, request, result, duration_ms, now)
            )
        return closed

    async def _answer_duplicate(
        self, first: Any, fingerprint: str, locale: str
    ) -> TransactionResult:
        """Answer a request whose idempotency key is taken: the first one's result, or a refusal."""
        if first is None:  # the first was rolled back between our insert and our read: rare
            return _refusal(new_id(), TransactionInProgress("retry the request"), locale)
        if first.request_hash != fingerprint:
            # A fresh id: the first transaction's id is none of this caller's business.
            return _refusal(
                new_id(),
                IdempotencyKeyReused("the Idempotency-Key was already used for another request"),
                locale,
            )
        deadline = time.monotonic() + self.settings.duplicate_wait_seconds
        delay = 0.02
        row = first
        while not TxnStatus(row.status).settled:
            if time.monotonic() >= deadline:
                return _refusal(
                    first.id, TransactionInProgress("the first request is still running"), locale
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            async with self.sessions() as session:
                row = await journal.get(session, first.id)
            if row is None:
                return _refusal(first.id, TransactionInProgress("retry the request"), locale)
        return _from_row(row, replayed=True)

    async def _current(self, txn_id: uuid.UUID, locale: str) -> TransactionResult:
        async with self.sessions() as session:
            row = await journal.get(session, txn_id)
        if row is None or not TxnStatus(row.status).settled:
            entry = lookup("TXN_IN_PROGRESS")
            return TransactionResult(txn_id, TxnStatus.IN_DOUBT, entry.code, entry.message(locale))
        return _from_row(row, replayed=False)


async def _keep(ctx: StepContext) -> None:
    """Insert the rows steps asked to keep whatever the outcome, once."""
    kept, ctx.keep = ctx.keep, []
    await journal.keep(ctx.session, kept)


async def _undo_outside(ctx: StepContext) -> None:
    """Undo what steps did outside the database, now that their transaction is gone."""
    undo, ctx.undo_outside = ctx.undo_outside, []
    for action in reversed(undo):
        try:
            await action()
        except Exception:
            log.exception("undo_outside_failed")


#: Why a parked transaction waits, as its code says: the risk engine's review queue, or a
#: supervisor's approval of what is over a teller's authority.
PARKED_CODES = {"review": "REVIEW_PENDING", "approval": "APPROVAL_REQUIRED"}


def _result_of(
    txn_id: uuid.UUID,
    outcome: FlowOutcome,
    ctx: StepContext,
    amount: Money | None,
    locale: str,
) -> TransactionResult:
    if outcome.ok:
        # A parked transaction waits for a person; its money is held, not moved.
        entry = lookup(PARKED_CODES[ctx.parked] if ctx.parked else "OK")
        return TransactionResult(
            txn_id,
            TxnStatus.IN_REVIEW if ctx.parked else TxnStatus.SUCCEEDED,
            entry.code,
            entry.message(locale),
            dict(ctx.data),
            amount=amount,
        )
    error = outcome.error or ChannelhubError("flow stopped")
    status = TxnStatus.IN_DOUBT if outcome.in_doubt else TxnStatus.FAILED
    return TransactionResult(
        txn_id,
        status,
        lookup(error.code).code,
        _message(error, locale),
        details=error.details,
        amount=amount,
    )


def _response_of(result: TransactionResult) -> dict[str, Any]:
    return {
        "code": result.code,
        "message": result.message,
        "data": dict(result.data),
        "details": dict(result.details),
    }


def _refusal(txn_id: uuid.UUID, error: ChannelhubError, locale: str) -> TransactionResult:
    return TransactionResult(
        txn_id,
        TxnStatus.FAILED,
        lookup(error.code).code,
        _message(error, locale),
        details=error.details,
    )


def _message(error: ChannelhubError, locale: str) -> str:
    # Internal errors may describe our code; the caller gets the catalog's words instead.
    entry = lookup(error.code)
    if entry.code == "INTERNAL_ERROR" or locale != "en":
        return entry.message(locale)
    return error.message


def _from_row(row: Any, *, replayed: bool) -> TransactionResult:
    response = row.response or {}
    amount = Money(row.amount_minor, row.currency) if row.amount_minor is not None else None
    return TransactionResult(
        txn_id=row.id,
        status=TxnStatus(row.status),
        code=row.code or "INTERNAL_ERROR",
        message=row.message or "",
        data=response.get("data", {}),
        details=response.get("details", {}),
        amount=amount,
        replayed=replayed,
        finished_at=row.finished_at,
    )
