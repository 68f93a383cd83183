"""The interbank channel: ``POST /interbank/v1/pacs.008`` takes another bank's customer credit
transfers (pacs.008.001.08) and answers their status (pacs.002.001.10). docs/interbank.md.

The sending bank is a partner app holding the scope ``interbank:<BIC>``, authenticated and
signed exactly as on the partner channel; the message's instructing agent must be that BIC.
The message is journaled first under the sending bank's message id (``transfer.inbound_message``),
then each transaction runs as one ``transfer.inbound`` keyed by the sending bank's transaction
id, so a message sent again answers the same statuses and moves no money twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.channels.iso20022.pacs002 import (
    GroupStatus,
    TransactionStatus,
    group_status,
    reason_for,
    status_report,
)
from channelhub.channels.iso20022.pacs008 import (
    MAX_MESSAGE_BYTES,
    MESSAGE_NAME,
    CreditTransfer,
    CreditTransferMessage,
    MessageRejected,
    normalize_bic,
    parse_credit_transfers,
)
from channelhub.channels.rest.api import Refused, read_body, refusal_response
from channelhub.channels.rest.envelope import error_response, result_response
from channelhub.channels.rest.signed import bearer_token, signed_partner
from channelhub.kernel import TransactionEngine, TransactionRequest, TransactionResult
from channelhub.kernel.model import AuthLevel, Principal, PrincipalKind, TxnStatus
from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.security.partners import INTERBANK_SCOPE

__all__ = ["CREDIT_SERVICE", "MESSAGE_SERVICE", "participant_bics", "routes"]

log = get_logger(__name__)

CHANNEL = "interbank"
MESSAGE_SERVICE = "transfer.inbound_message"
CREDIT_SERVICE = "transfer.inbound"
_XML_TYPES = ("application/xml", "text/xml")
#: What a message id is replaced by in a report on a message whose id could not be read.
_NOT_PROVIDED = "NOTPROVIDED"
#: Refusals that say nothing happened yet: the transaction is pending, not rejected, and the
#: same message sent again runs it.
_TRANSIENT = frozenset(
    {
        "TXN_IN_PROGRESS",
        "SERVICE_UNAVAILABLE",
        "BACKEND_UNAVAILABLE",
        "BACKEND_TIMEOUT",
        "RISK_UNAVAILABLE",
        "RATE_LIMITED",
    }
)


def participant_bics(scopes: frozenset[str]) -> frozenset[str]:
    """Return the BICs (11-character form) an app may send interbank messages as."""
    return frozenset(
        normalize_bic(scope.removeprefix("interbank:"))
        for scope in scopes
        if INTERBANK_SCOPE.fullmatch(scope)
    )


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/xml",
        headers={"Cache-Control": "no-store"},
    )


async def _participant(request: Request, body: bytes) -> Principal:
    """Authenticate the sending bank exactly as a partner app, and insist it is a participant.

    Raises:
        Refused: the token, the signature, the nonce, the address, or the scope.
    """
    bearer = bearer_token(request, "the bank's")
    principal = await signed_partner(request, body, bearer, consent_id=None)
    if not participant_bics(principal.scopes):
        raise Refused("FORBIDDEN", "this app is not an interbank participant")
    return principal


async def receive_credit_transfers(request: Request) -> Response:
    """Credit each transaction of a pacs.008 and answer its pacs.002."""
    try:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in _XML_TYPES:
            raise Refused("UNSUPPORTED_MEDIA_TYPE", "send the message as application/xml")
        body = await read_body(request, MAX_MESSAGE_BYTES)
        app = await _participant(request, body)
    except Refused as refusal:
        return refusal_response(request, refusal, locale="en", event="interbank_request_refused")
    except ClientDisconnect:
        return Response(status_code=499)
    own_bic = normalize_bic(request.app.state.runtime.settings.bank.bic)
    try:
        message = parse_credit_transfers(body)
    except MessageRejected as rejected:
        log.info("interbank_message_rejected", message_id=rejected.message_id, reason="FF01")
        group = GroupStatus(
            rejected.message_id or _NOT_PROVIDED,
            None,
            None,
            "RJCT",
            rejected.reason,
            rejected.detail,
        )
        report = _report(new_id().hex, group, [], own_bic, None)
        return _xml(report, 200 if rejected.message_id is not None else 400)
    sender = normalize_bic(message.instructing_agent)
    if sender not in participant_bics(app.scopes):
        return error_response(
            new_id(),
            "FORBIDDEN",
            "GrpHdr/InstgAgt is not a bank this app may send for",
            locale="en",
        )
    if message.instructed_agent and normalize_bic(message.instructed_agent) != own_bic:
        group = _group(message, "RJCT", "AGNT", f"GrpHdr/InstdAgt is not {own_bic}")
        return _xml(_report(new_id().hex, group, [], own_bic, sender))
    principal = Principal(
        kind=PrincipalKind.PARTNER,
        id=app.id,
        auth_level=AuthLevel.NONE,
        scopes=app.scopes,
        attributes={"channel": CHANNEL, "client_id": str(app.id), "bic": sender},
    )
    source = request.client.host if request.client else None
    engine: TransactionEngine = request.app.state.engine
    receipt = await engine.execute(
        TransactionRequest(
            service_id=MESSAGE_SERVICE,
            channel=CHANNEL,
            principal=principal,
            payload={
                "message_id": message.message_id,
                "instructing_agent": sender,
                "fingerprint": message.fingerprint(),
                "transactions": message.count,
            },
            idempotency_key=f"msg:{sender}:{message.message_id}",
            source_address=source,
        )
    )
    if receipt.code == "IDEMPOTENCY_KEY_REUSED":
        info = "the message id was already used for another message"
        log.info("interbank_message_duplicate", message_id=message.message_id, sender=sender)
        duplicates = [_status(t, "RJCT", reason="DUPL", info=info) for t in message.transactions]
        group = _group(message, "RJCT", "DUPL", info)
        report = _report(new_id().hex, group, duplicates, own_bic, sender)
        return _xml(report)
    if not receipt.ok:
        return result_response(receipt)
    statuses = await _credit_each(engine, principal, message, source)
    group = _group(message, group_status([s.status for s in statuses]))
    log.info(
        "interbank_message_answered",
        message_id=message.message_id,
        sender=sender,
        status=group.status,
        replayed=receipt.replayed,
    )
    # The report's id is the receipt's: the same message sent again gets the same report.
    return _xml(_report(receipt.txn_id.hex, group, statuses, own_bic, sender))


def _report(
    message_id: str,
    group: GroupStatus,
    statuses: Sequence[TransactionStatus],
    own_bic: str | None = None,
    sender: str | None = None,
) -> bytes:
    return status_report(
        message_id=message_id,
        created_at=utc_now(),
        group=group,
        transactions=statuses,
        original_message_name=MESSAGE_NAME,
        instructing_agent=own_bic,
        instructed_agent=sender,
    )


def _group(
    message: CreditTransferMessage, status: str, reason: str | None = None, info: str | None = None
) -> GroupStatus:
    return GroupStatus(message.message_id, message.created_at, message.count, status, reason, info)


def _status(transaction: CreditTransfer, status: str, **extra: Any) -> TransactionStatus:
    return TransactionStatus(
        end_to_end_id=transaction.end_to_end_id,
        tx_id=transaction.tx_id,
        status=status,
        instruction_id=transaction.instruction_id,
        uetr=transaction.uetr,
        **extra,
    )


async def _credit_each(
    engine: TransactionEngine,
    principal: Principal,
    message: CreditTransferMessage,
    source: str | None,
) -> list[TransactionStatus]:
    """Run each transaction of the message once, in order; return their statuses."""
    statuses: list[TransactionStatus] = []
    seen: set[str] = set()
    for transaction in message.transactions:
        if transaction.tx_id in seen:
            info = "the transaction id appears earlier in the message"
            statuses.append(_status(transaction, "RJCT", reason="DUPL", info=info))
            continue
        seen.add(transaction.tx_id)
        if transaction.creditor_account is None:
            info = "the transaction names no creditor account"
            statuses.append(_status(transaction, "RJCT", reason="AC01", info=info))
            continue
        result = await engine.execute(
            TransactionRequest(
                service_id=CREDIT_SERVICE,
                channel=CHANNEL,
                principal=principal,
                payload=_payload(message, transaction),
                idempotency_key=f"tx:{principal.attributes['bic']}:{transaction.tx_id}",
                source_address=source,
            )
        )
        statuses.append(_outcome(transaction, result))
    return statuses


def _payload(message: CreditTransferMessage, transaction: CreditTransfer) -> dict[str, Any]:
    """The canonical request of one transaction: what the service's input schema names."""
    values = {
        "message_id": message.message_id,
        "tx_id": transaction.tx_id,
        "end_to_end_id": transaction.end_to_end_id,
        "instruction_id": transaction.instruction_id,
        "uetr": transaction.uetr,
        "creditor_account": transaction.creditor_account,
        "creditor_name": transaction.creditor_name,
        "amount": transaction.amount,
        "currency": transaction.currency,
        "debtor_name": transaction.debtor_name,
        "debtor_account": transaction.debtor_account,
        "debtor_agent": transaction.debtor_agent,
        "charge_bearer": transaction.charge_bearer,
        "settlement_date": transaction.settlement_date or message.settlement_date,
        "remittance": transaction.remittance,
    }
    return {key: value for key, value in values.items() if value is not None}


def _outcome(transaction: CreditTransfer, result: TransactionResult) -> TransactionStatus:
    reference = result.txn_id.hex
    if result.ok:
        accepted = result.finished_at or utc_now()
        return _status(transaction, "ACSC", reference=reference, accepted_at=accepted)
    if result.code in _TRANSIENT or result.status in (TxnStatus.IN_DOUBT, TxnStatus.IN_REVIEW):
        return _status(transaction, "PDNG", info=result.message)
    reason = reason_for(result.code, result.details)
    return _status(transaction, "RJCT", reason=reason, info=result.message, reference=reference)


routes = [Route("/interbank/v1/pacs.008", receive_credit_transfers, methods=["POST"])]
