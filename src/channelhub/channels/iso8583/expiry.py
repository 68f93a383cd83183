"""Authorizations nobody completed or reversed: released after ``authorization_hold_days``.

A card authorization (0100) holds money on the customer's account until the merchant completes
the sale or reverses it. A merchant that does neither would leave the money held for good, so
every node sweeps, now and then, the authorizations older than the hold period and reverses
them as their terminal would have: the same ``card.reverse`` service, under the same key an
0400 of that terminal would use, so a late 0400 gets the sweep's answer and undoes nothing
twice, and a sweep of two nodes at once reverses each authorization once.
"""

from __future__ import annotations

import datetime as dt

from channelhub.kernel import (
    AuthLevel,
    Principal,
    PrincipalKind,
    TransactionEngine,
    TransactionRequest,
    journal,
)
from channelhub.kit.logging import get_logger

__all__ = ["AUTHORIZATION_EXPIRY_SECONDS", "release_expired_authorizations"]

log = get_logger(__name__)

_AUTHORIZATION = "card.authorize"
_REVERSAL = "card.reverse"
#: How many authorizations one round releases.
_BATCH = 200
#: Every node looks for expired authorizations this often (a node's background loop).
AUTHORIZATION_EXPIRY_SECONDS = 300.0


async def release_expired_authorizations(
    engine: TransactionEngine, *, hold_days: int, now: dt.datetime
) -> int:
    """Reverse every authorization created more than ``hold_days`` before ``now`` that is
    still standing; return how many this call reversed."""
    async with engine.sessions() as session:
        rows = await journal.succeeded_before(
            session,
            service_id=_AUTHORIZATION,
            before=now - dt.timedelta(days=hold_days),
            limit=_BATCH,
        )
    released = 0
    for row in rows:
        if row.idempotency_key is None or row.principal_id is None:
            continue  # every authorization has both; a row without them is not ours to touch
        terminal = Principal(
            kind=PrincipalKind(row.principal_kind),
            id=row.principal_id,
            auth_level=AuthLevel.PASSWORD,
            attributes={"terminal": row.principal_id, "expiry": "authorization"},
        )
        result = await engine.execute(
            TransactionRequest(
                service_id=_REVERSAL,
                channel=row.channel,
                principal=terminal,
                payload={"original": row.idempotency_key},
                idempotency_key=f"reversal:{row.idempotency_key}",
            )
        )
        if result.ok and result.data.get("original") == "reversed" and not result.replayed:
            released += 1
        elif not result.ok:
            log.warning("authorization_expiry_failed", txn=str(row.id), code=result.code)
    if released:
        log.info("authorizations_released", count=released)
    return released
