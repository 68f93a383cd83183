"""Flow steps that call a back end through a mapping (docs/connectors.md, "Services on an external
back end").

``connector.call`` sends the service's canonical request as the mapping says and puts the
canonical response in the transaction's data; ``connector.inquire`` does the same through an
idempotent mapping (an inquiry), which changes nothing on the back end. When its answer never
comes after a money-changing request, the kernel asks its resolution at once — the mapping's
status inquiry — and the recovery worker keeps asking until the back end can say; its
compensation ``connector.reverse`` undoes the call with the mapping's reversal.

The document a mapping reads is ``{"input": <the payload>, "context": {"txn_id", "now",
"channel", "principal", "request_id", "bank": {"bic", "name"}}, "outputs": <earlier steps' outputs>,
"original": <this step's output, for a reversal>, "sensitive": {"pan"}}``. In recovery the
payload is gone (it is never stored): an inquiry or a reversal finds the original by its
reference, made from the transaction id.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import Any

from channelhub.connectors.base import ConnectorError
from channelhub.connectors.mapping import MappedRefusal, Mapping, canonical_request
from channelhub.governance.backends import Backends
from channelhub.kernel.codes import lookup
from channelhub.kernel.steps import OutcomeUnknown, Resolution, StepContext, registry
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger

__all__ = ["call_backend", "inquire_backend", "resolve_backend", "reverse_backend"]

log = get_logger(__name__)

#: What an inquiry's canonical response says in its ``outcome`` field.
DONE, NOT_DONE = "done", "not_done"


@registry.step("connector.call", mutates=True, external=True)
async def call_backend(ctx: StepContext, params: MappingABC[str, Any]) -> MappingABC[str, Any]:
    """Call a back end through a mapping; its canonical response joins the service's data."""
    return await _call(ctx, params)


@registry.step("connector.inquire", external=True, inquiry=True)
async def inquire_backend(ctx: StepContext, params: MappingABC[str, Any]) -> MappingABC[str, Any]:
    """Ask a back end through an idempotent mapping (a balance): it changes nothing there, so
    it needs no compensation and may run inside the flow's database transaction."""
    return await _call(ctx, params)


async def _call(ctx: StepContext, params: MappingABC[str, Any]) -> MappingABC[str, Any]:
    backends = _backends(ctx)
    mapping = backends.route(str(params["mapping"])).mapping
    try:
        response = await backends.call(mapping, _document(ctx))
    except ConnectorError as error:
        raise _step_error(mapping, error) from None
    ctx.data.update(response)
    return response


@registry.resolution("connector.call")
async def resolve_backend(ctx: StepContext, params: MappingABC[str, Any]) -> Resolution:
    """Ask the back end what became of a call whose answer never came: its mapping's status
    inquiry; an original it never saw is fenced off with the reversal, when there is one."""
    backends = _backends(ctx)
    route = backends.route(str(params["mapping"]))
    if route.inquiry is None:
        if route.reversal is None:
            raise OutcomeUnknown("the mapping declares no inquiry and no reversal")
        await _reverse(backends, route.reversal, _document(ctx))
        return Resolution(done=False)
    try:
        answer = await backends.call(route.inquiry, _document(ctx))
    except MappedRefusal as refusal:
        if refusal.code != "NOT_FOUND" or refusal.in_doubt:
            raise _unknown(refusal) from None
        # The back end never saw it. A reversal fences the reference off, so that the
        # original, should it still arrive, is refused rather than applied.
        if route.reversal is not None:
            await _reverse(backends, route.reversal, _document(ctx))
        return Resolution(done=False)
    except ConnectorError as error:
        raise _unknown(error) from None
    outcome = answer.pop("outcome", None)
    if outcome == DONE:
        ctx.data.update(answer)
        log.info("backend_call_resolved", mapping=route.mapping.name, outcome=outcome)
        return Resolution(done=True, output=answer)
    if outcome == NOT_DONE:
        log.info("backend_call_resolved", mapping=route.mapping.name, outcome=outcome)
        return Resolution(done=False)
    raise OutcomeUnknown(
        f"the inquiry {route.inquiry.name} answered no outcome ({DONE} or {NOT_DONE})"
    )


@registry.compensation("connector.reverse", external=True)
async def reverse_backend(
    ctx: StepContext, params: MappingABC[str, Any], output: MappingABC[str, Any] | None
) -> None:
    """Undo a back-end call with its mapping's reversal; without one, make sure by the
    inquiry that it never happened (a call that did and cannot be undone stays in doubt)."""
    backends = _backends(ctx)
    route = backends.route(str(params["mapping"]))
    if route.mapping.idempotent:
        return  # an inquiry changed nothing: there is nothing to undo
    document = _document(ctx, original=output)
    if route.reversal is not None:
        await _reverse(backends, route.reversal, document)
        return
    resolution = await resolve_backend(ctx, params)
    if resolution.done:
        raise ChannelhubError(
            f"{route.mapping.name}: carried out, and the mapping declares no reversal"
        )


async def _reverse(backends: Backends, reversal: Mapping, document: dict[str, Any]) -> None:
    try:
        await backends.call(reversal, document)
    except ConnectorError as error:
        raise _unknown(error) from None


def _document(ctx: StepContext, *, original: MappingABC[str, Any] | None = None) -> dict[str, Any]:
    principal = ctx.request.principal
    document = canonical_request(
        ctx.request.payload,
        txn_id=ctx.txn_id,
        now=ctx.now,
        channel=ctx.request.channel,
        principal={"kind": principal.kind.value, "id": principal.id or ""},
        # A fresh id for each message sent (an inquiry's own message id: never reused).
        request_id=str(new_id()),
        **_backends(ctx).context,
    )
    document["outputs"] = dict(ctx.outputs)
    document["original"] = dict(original or {})
    # The card number of a card-present transaction, for a switch; absent in recovery.
    document["sensitive"] = dict(ctx.request.sensitive)
    return document


def _backends(ctx: StepContext) -> Backends:
    backends = ctx.services.get("backends")
    if not isinstance(backends, Backends):
        raise ChannelhubError("no back ends are configured on this node")
    return backends


#: What of a back end's error may reach the customer besides its canonical code.
_PUBLIC_DETAILS = ("backend", "operation", "backend_code", "reason", "field")


def _step_error(mapping: Mapping, error: ConnectorError) -> ChannelhubError:
    """An inquiry that failed is a failure; a money-changing call that may have happened is
    in doubt (the kernel's ``OutcomeUnknown``), never a failure.

    Either way the customer gets the canonical code's own words: the back end's message may
    name its address, its layout or a value it sent, which are the operators' business (they
    are logged here)."""
    # A business refusal (insufficient funds ...) is an answer, not a fault.
    fault = error.code.startswith("BACKEND_") or error.in_doubt
    (log.warning if fault else log.info)(
        "backend_call_failed",
        backend=error.backend,
        operation=error.operation,
        code=error.code,
        in_doubt=error.in_doubt and not mapping.idempotent,
        reason=error.message,
    )
    public = _public(error)
    if mapping.idempotent or not error.in_doubt:
        return public
    return OutcomeUnknown(public.message, code=public.code, details=public.details)


def _public(error: ChannelhubError) -> ChannelhubError:
    details = {key: error.details[key] for key in _PUBLIC_DETAILS if key in error.details}
    return ChannelhubError(lookup(error.code).message_en, code=error.code, details=details)


def _unknown(error: ConnectorError) -> OutcomeUnknown:
    log.warning(
        "backend_call_unsettled",
        backend=error.backend,
        operation=error.operation,
        code=error.code,
        reason=error.message,
    )
    public = _public(error)
    return OutcomeUnknown(public.message, code=public.code, details=public.details)
