"""Seed the demo: the transactions a new user sees in the journal and the event stream.

Each demo transaction carries a fixed idempotency key, so running the demo twice changes
nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable

from channelhub.kernel import ANONYMOUS, TransactionEngine, TransactionRequest

__all__ = ["DEMO_TRANSACTIONS", "seed"]

DEMO_TRANSACTIONS: tuple[TransactionRequest, ...] = (
    TransactionRequest(
        service_id="system.echo",
        channel="web",
        principal=ANONYMOUS,
        payload={"hello": "channelhub", "from": "the demo seed"},
        idempotency_key="demo-seed-echo-1",
    ),
    TransactionRequest(
        service_id="system.time",
        channel="mobile",
        principal=ANONYMOUS,
        payload={},
        idempotency_key="demo-seed-time-1",
    ),
)


async def seed(
    engine: TransactionEngine, *, advance: Callable[[str], None] = lambda _: None
) -> int:
    """Run the demo transactions through the kernel; return how many succeeded."""
    succeeded = 0
    for request in DEMO_TRANSACTIONS:
        result = await engine.execute(request)
        succeeded += result.ok
        advance(f"{request.service_id}: {result.status.value}")
    return succeeded
