"""The node's back ends with their mappings: what a flow's ``connector.call`` step calls.

``Backends`` loads every mapping the node's routes name (and the inquiry and reversal each of
them names) once, at start, and checks each against its back end's settings: the back end is
configured, its kind speaks the mapping's protocol, a fixed back end frames records as the
mapping says. A mistake stops the node at start, naming the mapping; it never waits for a
customer. At run time one call is: the mapping builds the back end's request from the
canonical one, the back end (with its timeout, retries and circuit breaker) carries it, the
mapping reads the answer back into the canonical response or the canonical refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channelhub.connectors.base import BackendNotConfigured, BackendRejected, Operation
from channelhub.connectors.mapping import (
    Mapping,
    MappingError,
    follow_up_path,
    load_mapping,
    resolve,
)
from channelhub.connectors.settings import ConnectorSettings
from channelhub.governance.registry import BackendRegistry

__all__ = ["Backends", "Route"]

#: The wire protocol each connector kind speaks, as a mapping names it.
_PROTOCOLS: dict[str, str] = {
    "fixed": "fixed",
    "http": "json",
    "iso8583": "json",
    "iso20022": "json",
}


@dataclass(frozen=True, slots=True)
class Route:
    """A mapping and what to do when its answer never comes."""

    mapping: Mapping
    #: Asks the back end whether the request was carried out (by the same reference).
    inquiry: Mapping | None = None
    #: Undoes it (safe when it never happened: the back end fences the reference off).
    reversal: Mapping | None = None


class Backends:
    """The node's back ends and the mappings its services reach them through."""

    def __init__(
        self,
        registry: BackendRegistry,
        routes: MappingABC[str, Route],
        *,
        context: MappingABC[str, Any] | None = None,
        unconfigured: MappingABC[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.routes = dict(routes)
        #: What every mapping may read under ``context`` besides the transaction's own facts
        #: (the bank's BIC and name ...).
        self.context: dict[str, Any] = dict(context or {})
        #: Mappings a service names whose back end this node does not configure, with why.
        self.unconfigured = dict(unconfigured or {})

    @classmethod
    def load(
        cls,
        connectors: MappingABC[str, ConnectorSettings],
        mappings: Iterable[str],
        *,
        uses: Iterable[tuple[str, str]] = (),
        context: MappingABC[str, Any] | None = None,
    ) -> Backends:
        """Load and check ``mappings`` (bundled names or files: the routes) and the mappings
        the services' steps use (``uses``: step name and mapping) against ``connectors``.

        A mapping a service names whose back end is not configured is not an error: its
        service answers ``BACKEND_NOT_CONFIGURED`` until it is. A route to such a back end is.

        Raises:
            MappingError: a mapping does not load; a routed one names a back end that is not
                configured; one does not match its back end (protocol, framing, an
                operation's idempotency); ``connector.inquire`` uses a money-changing
                mapping; a money-changing mapping names neither an inquiry nor a reversal
                (an unanswered call could never be settled).
        """
        registry = BackendRegistry(connectors)
        routes: dict[str, Route] = {}
        unconfigured: dict[str, str] = {}
        routed = list(mappings)
        uses = list(uses)
        for reference in [*routed, *(reference for _, reference in uses)]:
            if reference in routes or reference in unconfigured:
                continue
            mapping = load_mapping(resolve(reference))
            _check_settles(mapping)
            if mapping.backend not in connectors and reference not in routed:
                unconfigured[reference] = (
                    f"back end {mapping.backend!r} (mapping {Path(mapping.name).stem}) is not "
                    f"configured on this node: [connectors.{mapping.backend}]"
                )
                continue
            inquiry = reversal = None
            if mapping.inquiry is not None:
                inquiry = load_mapping(follow_up_path(mapping.name, mapping.inquiry))
            if mapping.reversal is not None:
                reversal = load_mapping(follow_up_path(mapping.name, mapping.reversal))
            for each in (mapping, inquiry, reversal):
                if each is not None:
                    _check(each, connectors)
            routes[reference] = Route(mapping, inquiry, reversal)
        for step, reference in uses:
            route = routes.get(reference)
            if step == "connector.inquire" and route is not None and not route.mapping.idempotent:
                raise MappingError(
                    route.mapping.name,
                    "idempotent",
                    "connector.inquire only asks: its mapping must be idempotent",
                )
        backends = cls(registry, routes, context=context, unconfigured=unconfigured)
        backends._declare_operations()
        return backends

    def route(self, reference: str) -> Route:
        """Return the route of mapping ``reference``.

        Raises:
            BackendNotConfigured: the node did not load that mapping.
        """
        route = self.routes.get(reference)
        if route is None:
            if reference in self.unconfigured:
                raise BackendNotConfigured(self.unconfigured[reference], backend="", operation="")
            raise BackendNotConfigured(
                f"no mapping {reference!r} is loaded on this node", backend="", operation=""
            )
        return route

    async def call(self, mapping: Mapping, document: MappingABC[str, Any]) -> dict[str, Any]:
        """Call ``mapping``'s back end with the request built from the canonical ``document``
        and return the canonical response.

        Raises:
            MappingInputError: the document cannot be mapped (nothing was sent).
            MappedRefusal: the back end refused; its code translated by the code table.
            ConnectorError: no usable answer (``in_doubt`` says whether it may have happened).
        """
        fields = mapping.request(document)
        backend = self.registry.get(mapping.backend)
        wire: dict[str, Any] = fields
        if mapping.request_layout is not None:
            wire = {"record": mapping.record(fields)}
        try:
            answer = await backend.call(mapping.operation, wire)
        except BackendRejected as refusal:  # an HTTP 4xx with a body: the code table decides
            answer = refusal.answer
        if mapping.response_layout is not None:
            return mapping.response(mapping.decode_answer(answer.get("record", b"")))
        return mapping.response(answer)

    async def close(self) -> None:
        """Close every back end's connections."""
        await self.registry.close()

    def _declare_operations(self) -> None:
        """Tell each back end's retry policy which operations are idempotent, as the mappings
        declare, unless its settings say so themselves."""
        for route in self.routes.values():
            for mapping in (route.mapping, route.inquiry, route.reversal):
                if mapping is None:
                    continue
                backend = self.registry.get(mapping.backend)
                backend.operations.setdefault(
                    mapping.operation, Operation(mapping.operation, mapping.idempotent)
                )


def _check_settles(mapping: Mapping) -> None:
    """Refuse a money-changing mapping that could not settle a call whose answer never came."""
    if not mapping.idempotent and mapping.inquiry is None and mapping.reversal is None:
        raise MappingError(
            mapping.name,
            "inquiry",
            "a money-changing operation names its inquiry or its reversal (or both): "
            "without either, a call whose answer never came could never be settled",
        )


def _check(mapping: Mapping, connectors: MappingABC[str, ConnectorSettings]) -> None:
    settings = connectors.get(mapping.backend)
    if settings is None:
        known = ", ".join(sorted(connectors)) or "none"
        raise MappingError(
            mapping.name, "backend", f"no back end {mapping.backend!r} is configured ({known})"
        )
    protocol = _PROTOCOLS.get(settings.kind)
    if protocol != mapping.protocol:
        raise MappingError(
            mapping.name,
            "protocol",
            f"back end {mapping.backend!r} is a {settings.kind} back end, which speaks "
            f"{protocol or 'nothing a mapping describes'}, not {mapping.protocol}",
        )
    if protocol == "fixed":
        framing = settings.framing
        if (framing.prefix_bytes, framing.inclusive) != (
            mapping.framing.prefix_bytes,
            mapping.framing.inclusive,
        ):
            raise MappingError(
                mapping.name,
                "framing",
                f"back end {mapping.backend!r} frames records with a {framing.prefix_bytes}-byte "
                f"prefix (inclusive: {str(framing.inclusive).lower()}); the mapping says "
                f"{mapping.framing.prefix_bytes} (inclusive: "
                f"{str(mapping.framing.inclusive).lower()})",
            )
    declared = settings.operations.get(mapping.operation)
    if declared is not None and declared.idempotent != mapping.idempotent:
        raise MappingError(
            mapping.name,
            "idempotent",
            f"back end {mapping.backend!r} declares operation {mapping.operation!r} "
            f"idempotent: {str(declared.idempotent).lower()}; the mapping says "
            f"{str(mapping.idempotent).lower()}",
        )
