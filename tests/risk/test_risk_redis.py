"""The risk engine with its features in Redis (CHANNELHUB_REDIS_URL), on SQLite and PostgreSQL:
the velocity and first-seen rules fire from what Redis counted; a transaction that fails
after being counted is forgotten; a risk engine that cannot compute its features fails closed
by default and open where the service says so; a slow one is cut off by its time budget."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from channelhub.kernel import journal
from channelhub.kernel.codes import lookup
from channelhub.kernel.model import TxnStatus
from channelhub.risk.features import Activity
from channelhub.risk.features_redis import RedisFeatures
from channelhub.runtime import Runtime
from tests.conftest import make_settings
from tests.risk.conftest import decisions, open_guarded_bank
from tests.support.bank import Bank
from tests.support.databases import redis_keyspace

#: Nothing listens here: a Redis that is down.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def redis_bank(database_url: str, tmp_path: Path) -> AsyncIterator[Bank]:
    """The demo bank on a node configured with Redis, running the default rules at 14:00.

    The time budget is generous here: these tests are about what the engine decides, and a
    busy test machine (a first connection, a script loaded into Redis) must not make a check
    time out. The test of the budget sets its own."""
    async with redis_keyspace() as (url, prefix):
        settings = make_settings(
            database_url,
            tmp_path,
            redis={"url": url, "prefix": prefix},
            risk={"timeout_ms": 5000},
        )
        runtime = Runtime.build(settings)
        try:
            assert isinstance(runtime.risk.features, RedisFeatures)
            yield await open_guarded_bank(runtime)
        finally:
            await runtime.close()


async def _features_of_alice(bank: Bank, to: str) -> dict[str, Any]:
    """What the store would answer for alice's next transfer to ``to`` (nothing recorded)."""
    store = bank.runtime.risk.features
    customer = bank.principals["alice"].attributes["customer_id"]
    # At the engine's time (14:30 in Shanghai), in whose windows the transfers were counted.
    now = bank.runtime.engine.clock()
    probe = Activity(uuid.uuid4(), customer, None, bank.accounts[to], None, 1, "CNY", now)
    session: Any = None  # the Redis store has no use for a session
    return {**await store.velocity(session, probe), **await store.sightings(session, probe)}


async def test_a_burst_counted_in_redis_is_held_for_review(redis_bank: Bank) -> None:
    bank = redis_bank
    for _ in range(5):
        assert (await bank.call("alice", "transfer.internal", bank.transfer("1.00"))).ok
    sixth = await bank.call("alice", "transfer.internal", bank.transfer("1.00"))
    assert (sixth.status, sixth.code) == (TxnStatus.IN_REVIEW, "REVIEW_PENDING")
    decision = (await decisions(bank, sixth.txn_id))[-1]
    assert decision.features["customer_count_5m"] == 5
    # The decision shows the numbers its rules read; the store counted the sums too (the
    # sixth transfer, held for review, among them).
    assert "customer_sum_5m" not in decision.features
    assert (await _features_of_alice(bank, "bob.CNY"))["customer_sum_5m"] == 600


async def test_a_beneficiary_seen_in_redis_is_no_longer_new(redis_bank: Bank) -> None:
    bank = redis_bank
    first = await bank.call("alice", "transfer.internal", bank.transfer("2500.00"), confirm=False)
    assert first.code in ("STEP_UP_REQUIRED", "MFA_NOT_ENROLLED")
    confirmed = await bank.call("alice", "transfer.internal", bank.transfer("2500.00"))
    assert confirmed.ok, confirmed
    again = await bank.call("alice", "transfer.internal", bank.transfer("2500.00"), confirm=False)
    assert again.ok, again
    decision = (await decisions(bank, again.txn_id))[-1]
    assert decision.features["new_beneficiary"] is False


async def test_a_transaction_failing_after_being_counted_is_forgotten(redis_bank: Bank) -> None:
    bank = redis_bank
    # More than alice holds: the risk check passes (and counts it), then the posting fails.
    result = await bank.call("alice", "transfer.internal", bank.transfer("60000.00"))
    assert result.code == "INSUFFICIENT_FUNDS", result
    assert (await decisions(bank, result.txn_id))[-1].outcome in ("allow", "challenge")
    features = await _features_of_alice(bank, "bob.CNY")
    assert features["customer_count_24h"] == 0
    assert features["new_beneficiary"] is True


async def test_a_transaction_cancelled_before_its_commit_is_forgotten(
    redis_bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = redis_bank
    reached, real_record = asyncio.Event(), journal.record

    async def stuck(
        session: Any, values: dict[str, Any], event: dict[str, Any], kept: Any = ()
    ) -> bool:
        reached.set()
        await asyncio.sleep(3600)  # the caller gives up before the journal is written
        return await real_record(session, values, event, kept)

    monkeypatch.setattr(journal, "record", stuck)
    before = await bank.balance(bank.accounts["alice.CNY"])
    call = asyncio.create_task(bank.call("alice", "transfer.internal", bank.transfer("5.00")))
    await asyncio.wait_for(reached.wait(), 30)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # Counted in Redis by the risk check, then given back: the database work never committed.
    features = await _features_of_alice(bank, "bob.CNY")
    assert features["customer_count_24h"] == 0
    assert features["new_beneficiary"] is True
    assert await bank.balance(bank.accounts["alice.CNY"]) == before


async def test_features_down_fail_closed_by_default(redis_bank: Bank) -> None:
    bank = redis_bank
    dead = Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    bank.runtime.risk.features = RedisFeatures(dead, prefix="dead:")
    try:
        postings = await bank.postings()
        before = await bank.balance(bank.accounts["alice.CNY"])
        result = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
        assert (result.status, result.code) == (TxnStatus.FAILED, "RISK_UNAVAILABLE")
        assert lookup(result.code).http_status == 503
        assert await bank.postings() == postings
        assert await bank.balance(bank.accounts["alice.CNY"]) == before
        decision = (await decisions(bank, result.txn_id))[-1]
        assert decision.outcome == "deny"
        # Refused at once, or retried by the client until the time budget ran out.
        assert decision.failure in ("ConnectionError: failed closed", "timeout: failed closed")
    finally:
        await dead.aclose()


async def test_features_down_fail_open_where_the_service_says_so(redis_bank: Bank) -> None:
    bank = redis_bank
    dead = Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    bank.runtime.risk.features = RedisFeatures(dead, prefix="dead:")
    try:
        before = await bank.balance(bank.accounts["alice.CNY"])
        result = await bank.call("alice", "test.transfer.fail_open", bank.transfer("5.00"))
        assert result.ok, result
        assert before - await bank.balance(bank.accounts["alice.CNY"]) == 500 + 200  # and fee
        decision = (await decisions(bank, result.txn_id))[-1]
        assert decision.outcome == "allow"
        assert decision.failure in ("ConnectionError: failed open", "timeout: failed open")
    finally:
        await dead.aclose()


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server on a free port that accepts connections and never answers: a Redis that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing, keep the connection open

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_slow_risk_engine_is_cut_off_by_its_time_budget(
    redis_bank: Bank, silent_redis: str
) -> None:
    bank = redis_bank
    hanging = Redis.from_url(silent_redis)  # no socket timeout of its own: it would wait forever
    bank.runtime.risk.features = RedisFeatures(hanging, prefix="silent:")
    bank.runtime.risk.timeout = 0.05
    try:
        postings = await bank.postings()
        started = time.perf_counter()
        closed = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
        assert closed.code == "RISK_UNAVAILABLE"
        assert time.perf_counter() - started < 5  # cut off, not waiting for the server
        assert (await decisions(bank, closed.txn_id))[-1].failure == "timeout: failed closed"
        assert await bank.postings() == postings
        opened = await bank.call("alice", "test.transfer.fail_open", bank.transfer("5.00"))
        assert opened.ok, opened
        assert (await decisions(bank, opened.txn_id))[-1].failure == "timeout: failed open"
    finally:
        await hanging.aclose()
