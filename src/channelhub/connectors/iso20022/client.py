"""The ``iso20022`` connector: one transaction's pacs.008 (or a pacs.028 about one) POSTed to
the clearing house, its pacs.002 read back into a flat answer.

A request is the flat dict a mapping produces; every field is checked before anything is
sent, and a missing or unfit one is refused naming it (``Iso20022RequestError``). The answer
is ``{"group_status", "status", "reason" (when given), "original_message_id",
"original_transaction_id"}``: a refusal (RJCT) is an answer like any other, for the mapping's
code table; only a failure to get a usable answer is an error. The HTTP side (session, pool,
TLS, size cap, how failures map) is the ``http`` connector's ``HttpExchange``.

| outcome | error | in doubt (credit_transfer) |
|---|---|---|
| a pacs.002 about the transaction sent (any status) | the answer | — |
| connection refused, connect timeout, TLS failure, 429, 503 | BackendUnavailable | no |
| no answer in time, 504 | BackendTimeout | yes |
| connection lost mid-call, other 5xx | BackendUnavailable | yes |
| not XML, not a pacs.002 about the transaction sent, too large | BackendBadResponse | yes* |

(*) except after a 4xx: the clearing house refused the request as it stood.

A status request is an inquiry: it changes nothing, and none of its failures is in doubt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendNotConfigured,
    ConnectorError,
)
from channelhub.connectors.http import HttpExchange, ssl_context_of
from channelhub.connectors.settings import ConnectorSettings
from channelhub.kit.clock import utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.iso20022.fields import InvalidField
from channelhub.kit.iso20022.pacs002 import read_status_report
from channelhub.kit.iso20022.pacs008 import CreditTransferOrder, build_credit_transfer
from channelhub.kit.iso20022.pacs028 import StatusRequest, build_status_request
from channelhub.kit.iso20022.xml import MessageRejected

__all__ = ["OPERATIONS", "ClearingOperation", "Iso20022Connector", "Iso20022RequestError"]

_XML = "application/xml"

MessageKind = Literal["credit_transfer", "status"]


@dataclass(frozen=True, slots=True)
class ClearingOperation:
    """One operation: which message it sends, where, and whether its failure is in doubt."""

    kind: MessageKind
    path: str
    method: str = "POST"

    @property
    def in_doubt_when_unanswered(self) -> bool:
        """Return whether an unanswered call may have moved money: a credit transfer may."""
        return self.kind == "credit_transfer"


#: The operations and their default paths below the back end's ``url``.
OPERATIONS: Mapping[str, ClearingOperation] = {
    "credit_transfer": ClearingOperation("credit_transfer", "/pacs.008"),
    "status": ClearingOperation("status", "/pacs.028"),
}


class Iso20022RequestError(ChannelhubError):
    """A request field is missing or does not fit the message (nothing was sent). Names the
    field, never its value."""

    code = "VALIDATION_FAILED"


def _required(request: Mapping[str, Any], name: str) -> Any:
    if request.get(name) is None:
        raise Iso20022RequestError(f"the request has no {name}", details={"field": name})
    return request[name]


def _optional(request: Mapping[str, Any], name: str) -> Any:
    return request.get(name)


def _order(request: Mapping[str, Any]) -> CreditTransferOrder:
    return CreditTransferOrder(
        message_id=_required(request, "message_id"),
        created_at=utc_now(),
        instructing_agent=_required(request, "instructing_agent"),
        instructed_agent=_required(request, "instructed_agent"),
        transaction_id=_required(request, "transaction_id"),
        end_to_end_id=_required(request, "end_to_end_id"),
        amount=_required(request, "amount"),
        currency=_required(request, "currency"),
        settlement_date=_required(request, "settlement_date"),
        debtor_name=_required(request, "debtor_name"),
        debtor_account=_required(request, "debtor_account"),
        debtor_agent=_required(request, "debtor_agent"),
        creditor_name=_required(request, "creditor_name"),
        creditor_account=_required(request, "creditor_account"),
        creditor_agent=_required(request, "creditor_agent"),
        instruction_id=_optional(request, "instruction_id"),
        remittance=_optional(request, "remittance"),
    )


def _status_request(request: Mapping[str, Any]) -> StatusRequest:
    return StatusRequest(
        message_id=_required(request, "message_id"),
        created_at=utc_now(),
        original_message_id=_required(request, "original_message_id"),
        original_transaction_id=_required(request, "original_transaction_id"),
        instructing_agent=_optional(request, "instructing_agent"),
        instructed_agent=_optional(request, "instructed_agent"),
    )


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A built message and the transaction its answer must be about."""

    body: bytes
    message_id: str
    transaction_id: str


def _credit_transfer(request: Mapping[str, Any]) -> _Outgoing:
    order = _order(request)
    return _Outgoing(build_credit_transfer(order), order.message_id, order.transaction_id)


def _status(request: Mapping[str, Any]) -> _Outgoing:
    inquiry = _status_request(request)
    body = build_status_request(inquiry)
    return _Outgoing(body, inquiry.original_message_id, inquiry.original_transaction_id)


_BUILDERS: Mapping[MessageKind, Callable[[Mapping[str, Any]], _Outgoing]] = {
    "credit_transfer": _credit_transfer,
    "status": _status,
}


class Iso20022Connector:
    """pacs.008 and pacs.028 over HTTP(S) to one clearing house."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        operations: Mapping[str, ClearingOperation] = OPERATIONS,
        exchange: HttpExchange | None = None,
    ) -> None:
        self._name = name
        self.base_url = base_url.rstrip("/")
        self.operations = dict(operations)
        self._exchange = exchange or HttpExchange(name, accept=_XML)

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> Iso20022Connector:
        """Build the connector of back end ``name``: the two operations at their default
        paths unless ``operations.<op>.path`` (or ``method``) says otherwise.

        Raises:
            BackendNotConfigured: an operation this connector does not know, or TLS files
                that cannot be loaded.
        """
        assert settings.url is not None  # the settings refuse an iso20022 back end without url
        operations = dict(OPERATIONS)
        for op, spec in settings.operations.items():
            known = OPERATIONS.get(op)
            if known is None:
                raise BackendNotConfigured(
                    f"back end {name}: an iso20022 back end offers "
                    f"{', '.join(OPERATIONS)}, not {op!r}",
                    backend=name,
                    operation=op,
                )
            path = spec.path if "path" in spec.model_fields_set else known.path
            operations[op] = ClearingOperation(known.kind, path, spec.method)
        exchange = HttpExchange(
            name,
            pool_size=settings.pool_size,
            ssl_context=ssl_context_of(name, settings.tls),
            max_response_bytes=settings.max_response_bytes,
            accept=_XML,
        )
        return cls(name, base_url=settings.url, operations=operations, exchange=exchange)

    @property
    def name(self) -> str:
        """The back end's name in settings."""
        return self._name

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Send ``request`` as ``operation`` and return the pacs.002's flat answer.

        Raises:
            Iso20022RequestError: a request field is missing or does not fit (nothing sent).
            BackendTimeout, BackendUnavailable, BackendBadResponse, BackendNotConfigured: see
                the module's table.
        """
        spec = self.operations.get(operation)
        if spec is None:
            raise BackendNotConfigured(
                f"back end {self.name} has no operation {operation!r}",
                backend=self.name,
                operation=operation,
            )
        try:
            outgoing = _BUILDERS[spec.kind](request)
        except InvalidField as error:
            raise Iso20022RequestError(
                f"{operation}: {error.field}: {error.detail}", details={"field": error.field}
            ) from None
        in_doubt = spec.in_doubt_when_unanswered
        status, body = await self._exchange.send(
            operation,
            spec.method,
            self.base_url + spec.path,
            in_doubt=in_doubt,
            timeout=timeout,
            data=outgoing.body,
            headers={"Content-Type": _XML},
        )
        in_doubt = self._exchange.check_status(operation, status, in_doubt)
        return self._answer(operation, outgoing, body, in_doubt, status)

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        await self._exchange.close()

    def _answer(
        self, operation: str, outgoing: _Outgoing, body: bytes, in_doubt: bool, status: int
    ) -> dict[str, Any]:
        def bad(reason: str) -> ConnectorError:
            return self._exchange.error(BackendBadResponse, operation, reason, in_doubt, status)

        try:
            report = read_status_report(body)
        except MessageRejected as rejected:
            raise bad(f"not a pacs.002 ({rejected.detail})") from None
        if report["original_message_id"] != outgoing.message_id:
            raise bad("a pacs.002 about another message")
        lines = report["transactions"]
        if lines:
            line = next(
                (
                    t
                    for t in lines
                    if t["original_transaction_id"] == outgoing.transaction_id
                    and t["original_message_id"] == outgoing.message_id
                ),
                None,
            )
            if line is None:
                raise bad("a pacs.002 about another transaction")
            tx_status, reason = line["status"], line["reason"] or report["group_reason"]
        else:
            tx_status, reason = report["group_status"], report["group_reason"]
        answer: dict[str, Any] = {
            "group_status": report["group_status"] or tx_status,
            "status": tx_status,
            "original_message_id": outgoing.message_id,
            "original_transaction_id": outgoing.transaction_id,
        }
        if reason is not None:
            answer["reason"] = reason
        return answer
