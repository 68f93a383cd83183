"""The step registry: the named operations a service's flow is made of.

Domain packages offer steps (``limits.reserve``, ``ledger.post`` ...) by registering them here;
a service definition names them. A step that changes state says so (``mutates``), and the
catalog then insists that the definition names its compensation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kernel.journal import KeptRow
from channelhub.kernel.model import TransactionRequest
from channelhub.kit.db import Rider
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money

if TYPE_CHECKING:
    from channelhub.kernel.catalog.compiled import CompiledService

__all__ = [
    "CompensationFn",
    "OutcomeUnknown",
    "Resolution",
    "ResolutionFn",
    "ResumptionFn",
    "RiderFn",
    "StepContext",
    "StepFn",
    "StepRegistry",
    "StepSpec",
    "registry",
]


class OutcomeUnknown(ChannelhubError):
    """An external step cannot tell whether its effect happened (e.g. a back end timed out).

    The transaction is left ``in_doubt`` and the recovery worker compensates it, the in-flight
    step included, which is why an external step's compensation must be safe to run even when
    the effect never happened.
    """

    code = "BACKEND_TIMEOUT"


@dataclass(slots=True)
class StepContext:
    """What a step sees: the request, the open database session, and what earlier steps made."""

    txn_id: uuid.UUID
    request: TransactionRequest
    service: CompiledService
    session: AsyncSession
    now: dt.datetime
    time_zone: ZoneInfo
    node_id: str
    #: The response ``data`` being built; steps add to it.
    data: dict[str, Any] = field(default_factory=dict)
    #: Each completed step's output, by the step's id.
    outputs: dict[str, Any] = field(default_factory=dict)
    #: The node's domain services steps may need (``limits``, ``risk`` ...), by name.
    services: Mapping[str, Any] = field(default_factory=dict)
    #: Look-ups several steps share within this transaction (the customer's facts ...).
    memo: dict[str, Any] = field(default_factory=dict)
    #: Rows that must outlive the flow's rollback (a risk decision): the engine inserts them
    #: after the flow, with the journal row (in its statement on PostgreSQL) or in the
    #: transaction that records the outcome, whatever the outcome.
    keep: list[KeptRow] = field(default_factory=list)
    #: Effects outside the database (a counter in Redis) to undo when the transaction's
    #: database work does not commit; a compensation undoes them once it has committed.
    undo_outside: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Set by a step that parks the transaction (``review`` by the risk engine, ``approval``
    #: over a teller's authority): later steps hold instead of moving money, and the
    #: transaction waits ``in_review`` for a staff decision.
    parked: str | None = None
    #: The customer proved a fresh second factor bound to this very transaction.
    stepped_up: bool = False
    #: The transaction's amount, as the service's definition names it (None: it has none).
    amount: Money | None = None
    #: Whether ``session`` is on PostgreSQL (where riders go).
    on_postgresql: bool = False
    #: Statements sent early for steps of an all-local flow, by step name (the step's rider,
    #: ``StepRegistry.rider``); a step finds its own here or runs its statement itself.
    riders: dict[str, Rider] = field(default_factory=dict)

    def condition_vars(self) -> dict[str, Any]:
        """Return the variables a CEL condition may read."""
        principal = self.request.principal
        return {
            "input": dict(self.request.payload),
            "channel": self.request.channel,
            "principal": {"kind": principal.kind.value, "id": principal.id or ""},
            "outputs": self.outputs,
            "data": self.data,
        }


StepFn = Callable[[StepContext, Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]
#: A compensation gets the step's parameters and the output the step returned (None if unknown).
CompensationFn = Callable[
    [StepContext, Mapping[str, Any], Mapping[str, Any] | None], Awaitable[None]
]
#: A resumption completes what a step only held while its transaction was parked; it gets the
#: step's parameters and output and returns its new output.
ResumptionFn = Callable[
    [StepContext, Mapping[str, Any], Mapping[str, Any] | None], Awaitable[Mapping[str, Any] | None]
]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What became of an external step whose answer never came, once the other system said.

    ``done``: it was carried out, and ``output`` is what the step would have returned; not
    done: it never took effect (and never will: the other system has fenced it off).
    """

    done: bool
    output: Mapping[str, Any] | None = None


#: A rider builds the statement a step of an all-local flow will run, from the request alone,
#: to be sent early with another (``kit.db.Rider``); None when the step must run its own.
RiderFn = Callable[[StepContext, Mapping[str, Any]], Rider | None]


#: A resolution asks the other system what became of a step left in doubt; it gets the step's
#: parameters, returns a ``Resolution``, and raises ``OutcomeUnknown`` while nobody can tell.
ResolutionFn = Callable[[StepContext, Mapping[str, Any]], Awaitable[Resolution]]


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A registered step or compensation."""

    name: str
    fn: Any
    mutates: bool = False
    external: bool = False
    description: str = ""
    #: An external step that only asks (a balance inquiry): it changes nothing in the other
    #: system, leaves nothing to recover, and may run inside an all-local flow's transaction.
    inquiry: bool = False


class StepRegistry:
    """Named steps and compensations, filled at import time by the packages that offer them."""

    def __init__(self) -> None:
        self.steps: dict[str, StepSpec] = {}
        self.compensations: dict[str, StepSpec] = {}
        self.resumptions: dict[str, StepSpec] = {}
        self.resolutions: dict[str, StepSpec] = {}
        self.riders: dict[str, RiderFn] = {}

    def step(
        self, name: str, *, mutates: bool = False, external: bool = False, inquiry: bool = False
    ) -> Callable[[StepFn], StepFn]:
        """Register a step; ``external`` steps call another system and never run in a DB txn,
        unless they are an ``inquiry`` (external, changing nothing there)."""
        if inquiry and (mutates or not external):
            raise ValueError(f"step {name!r}: an inquiry is external and changes nothing")

        def register(fn: StepFn) -> StepFn:
            _add(self.steps, StepSpec(name, fn, mutates, external, _summary(fn), inquiry))
            return fn

        return register

    def compensation(
        self, name: str, *, external: bool = False
    ) -> Callable[[CompensationFn], CompensationFn]:
        """Register a compensation: the operation that undoes a completed step."""

        def register(fn: CompensationFn) -> CompensationFn:
            _add(self.compensations, StepSpec(name, fn, True, external, _summary(fn)))
            return fn

        return register

    def resumption(self, name: str) -> Callable[[ResumptionFn], ResumptionFn]:
        """Register how step ``name`` completes a parked transaction once it is approved."""

        def register(fn: ResumptionFn) -> ResumptionFn:
            _add(self.resumptions, StepSpec(name, fn, True, False, _summary(fn)))
            return fn

        return register

    def resolution(self, name: str) -> Callable[[ResolutionFn], ResolutionFn]:
        """Register how to find out what became of step ``name`` when its answer never came
        (a status inquiry): the flow asks at once, the recovery worker until it knows."""

        def register(fn: ResolutionFn) -> ResolutionFn:
            _add(self.resolutions, StepSpec(name, fn, False, True, _summary(fn)))
            return fn

        return register

    def rider(self, name: str) -> Callable[[RiderFn], RiderFn]:
        """Register how step ``name`` builds its statement early, for an all-local flow: the
        step then takes its answer with ``await ctx.riders[name].result(ctx.session)``."""

        def register(fn: RiderFn) -> RiderFn:
            if self.riders.get(name, fn) is not fn:
                raise ValueError(f"rider {name!r} is registered twice")
            self.riders[name] = fn
            return fn

        return register


def _add(table: dict[str, StepSpec], spec: StepSpec) -> None:
    existing = table.get(spec.name)
    if existing is not None and existing.fn is not spec.fn:
        raise ValueError(f"step {spec.name!r} is registered twice")
    table[spec.name] = spec


def _summary(fn: Any) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


#: The process-wide registry that domain packages and plugins register into.
registry = StepRegistry()
