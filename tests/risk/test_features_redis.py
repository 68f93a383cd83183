"""Velocity features in Redis (RedisFeatures) against a real server: a scripted timeline with
exact values and window boundaries, random scenarios against a pure-Python model, sightings,
forget after a rollback, and a server that does not answer."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.risk.features import ALL_VELOCITY, VELOCITY, WINDOWS
from channelhub.risk.features_redis import RedisFeatures
from tests.risk.features_model import (
    BASE,
    activity,
    draw,
    draw_history,
    model,
    sightings_model,
    some_velocity,
)
from tests.support.databases import redis_keyspace

#: The store ignores its session (the protocol passes one for the database store).
NO_SESSION = cast(AsyncSession, None)


@pytest.fixture
async def keyspace() -> AsyncIterator[tuple[str, str]]:
    """The test Redis and a key prefix of this test's own (skips when no Redis answers)."""
    async with redis_keyspace() as found:
        yield found


@pytest.fixture
async def client(keyspace: tuple[str, str]) -> AsyncIterator[Redis]:
    """A client on the test Redis."""
    redis = Redis.from_url(keyspace[0])
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def prefix(keyspace: tuple[str, str]) -> str:
    """This test's key prefix; its keys are deleted afterwards."""
    return keyspace[1]


@pytest.fixture
def store(client: Redis, prefix: str) -> RedisFeatures:
    """RedisFeatures under this test's prefix."""
    return RedisFeatures(client, prefix=prefix)


def only(values: dict[str, int], dim: str) -> dict[str, int]:
    """The six numbers of one dimension."""
    return {name: value for name, value in values.items() if name.startswith(f"{dim}_")}


async def test_timeline_counts_windows_and_sums_in_the_same_currency(
    store: RedisFeatures,
) -> None:
    def ago(**delta: float) -> dt.datetime:
        return BASE - dt.timedelta(**delta)

    timeline = [
        activity(ago(hours=25), device="d1", amount=1),  # beyond 24 h: trimmed
        activity(ago(hours=24), device="d1", amount=2),  # exactly 24 h: not counted
        activity(ago(hours=23), device="d1", amount=4),
        activity(ago(hours=1), device="d1", amount=8),  # exactly 1 h: only in 24 h
        activity(ago(minutes=59, seconds=59), amount=16, currency="USD"),
        activity(ago(minutes=30), beneficiary="b1", amount=32),
        activity(ago(minutes=5), beneficiary="b1", amount=64),  # exactly 5 m: 1 h and 24 h
        activity(ago(minutes=4, seconds=59), device="d1", beneficiary="b1", amount=128),
        activity(ago(microseconds=1), address="10.0.0.1", amount=256, currency="USD"),
        # Another customer on the same device and beneficiary.
        activity(ago(minutes=1), customer="c2", device="d1", beneficiary="b1", amount=512),
    ]
    for past in timeline:
        await store.record(NO_SESSION, past)

    now = activity(BASE, device="d1", beneficiary="b1", address="10.0.0.1")
    values = await store.velocity(NO_SESSION, now)

    assert list(values) == list(VELOCITY)
    assert all(type(value) is int for value in values.values())
    assert only(values, "customer") == {
        "customer_count_5m": 2,  # 4m59s (128), 1 µs (256 USD)
        "customer_sum_5m": 128,
        "customer_count_1h": 5,  # + 59m59s (16 USD), 30m (32), 5m (64)
        "customer_sum_1h": 128 + 32 + 64,
        "customer_count_24h": 7,  # + 23 h (4), 1 h (8)
        "customer_sum_24h": 128 + 32 + 64 + 4 + 8,
    }
    assert only(values, "device") == {
        "device_count_5m": 2,  # 4m59s (128), c2 at 1 m (512)
        "device_sum_5m": 128 + 512,
        "device_count_1h": 2,
        "device_sum_1h": 128 + 512,
        "device_count_24h": 4,  # + 23 h (4), 1 h (8)
        "device_sum_24h": 128 + 512 + 4 + 8,
    }
    assert only(values, "beneficiary") == {
        "beneficiary_count_5m": 2,  # 4m59s (128), c2 at 1 m (512)
        "beneficiary_sum_5m": 128 + 512,
        "beneficiary_count_1h": 4,  # + 30 m (32), 5 m (64)
        "beneficiary_sum_1h": 128 + 512 + 32 + 64,
        "beneficiary_count_24h": 4,
        "beneficiary_sum_24h": 128 + 512 + 32 + 64,
    }
    assert only(values, "address") == {
        "address_count_5m": 1,
        "address_sum_5m": 0,  # USD, the activity is CNY
        "address_count_1h": 1,
        "address_sum_1h": 0,
        "address_count_24h": 1,
        "address_sum_24h": 0,
    }
    assert values == model(timeline, now)

    # The same history seen in USD: the counts stay, the sums change.
    in_usd = activity(BASE, device="d1", beneficiary="b1", address="10.0.0.1", currency="USD")
    usd = await store.velocity(NO_SESSION, in_usd)
    assert usd["customer_count_1h"] == 5
    assert usd["customer_sum_1h"] == 16 + 256
    assert usd["address_sum_5m"] == 256
    assert usd == model(timeline, in_usd)


async def test_dimensions_the_activity_lacks_count_zero(store: RedisFeatures) -> None:
    await store.record(NO_SESSION, activity(BASE, device="d1", beneficiary="b1", address="a1"))
    values = await store.velocity(
        NO_SESSION, activity(BASE + dt.timedelta(seconds=1), beneficiary="b1")
    )
    assert values["customer_count_5m"] == 1
    assert values["beneficiary_count_5m"] == 1
    assert only(values, "device") == dict.fromkeys(only(values, "device"), 0)
    assert only(values, "address") == dict.fromkeys(only(values, "address"), 0)


async def test_a_new_customer_has_every_velocity_at_zero(store: RedisFeatures) -> None:
    values = await store.velocity(NO_SESSION, activity(BASE, device="d", beneficiary="b"))
    assert values == dict.fromkeys(VELOCITY, 0)


async def test_window_boundaries_to_the_microsecond(store: RedisFeatures) -> None:
    tick = dt.timedelta(microseconds=1)
    for seconds in WINDOWS.values():
        window = dt.timedelta(seconds=seconds)
        await store.record(NO_SESSION, activity(BASE - window, amount=1))  # exactly: out
        await store.record(NO_SESSION, activity(BASE - window + tick, amount=1))  # in
    values = await store.velocity(NO_SESSION, activity(BASE))
    # 5m: its own "in" plus the 1 h and 24 h ones (both older): only 1.
    assert values["customer_count_5m"] == 1
    # 1h: the 5m pair and its own "in".
    assert values["customer_count_1h"] == 3
    # 24h: everything but its own boundary activity.
    assert values["customer_count_24h"] == 5


async def test_velocity_trims_what_no_window_counts(
    store: RedisFeatures, client: Redis, prefix: str
) -> None:
    await store.record(NO_SESSION, activity(BASE - dt.timedelta(hours=23)))
    await store.record(NO_SESSION, activity(BASE))
    key = f"{prefix}risk:vel:customer:c1"
    assert await client.zcard(key) == 2
    assert 0 < await client.ttl(key) <= 25 * 3600
    later = activity(BASE + dt.timedelta(hours=2))
    assert (await store.velocity(NO_SESSION, later))["customer_count_24h"] == 1
    assert await client.zcard(key) == 1


async def test_random_scenarios_match_the_model(client: Redis, prefix: str) -> None:
    for seed in range(8):
        rng = random.Random(seed)
        store = RedisFeatures(client, prefix=f"{prefix}{seed}:")
        history = draw_history(rng)
        for past in history:
            await store.record(NO_SESSION, past)
        for _ in range(10):
            now = draw(rng, BASE)
            assert await store.velocity(NO_SESSION, now) == model(history, now), f"seed {seed}"
            # Both in one pipelined round trip: the same numbers, and the same sightings.
            both = await store.read(NO_SESSION, now, velocity=ALL_VELOCITY, sightings=True)
            seen = await store.sightings(NO_SESSION, now)
            assert both == {**model(history, now), **seen}, f"seed {seed}"
            assert seen == sightings_model(history, now), f"seed {seed}"
            # Some numbers only (the keys of the dimensions they need): the same values.
            names = some_velocity(rng)
            part = await store.read(NO_SESSION, now, velocity=names, sightings=False)
            expected = model(history, now)
            assert part == {name: expected[name] for name in names}, f"seed {seed}"
        # Forget some: they leave the counts.
        for gone in rng.sample(history, k=len(history) // 3):
            await store.forget(gone)
            history.remove(gone)
        for _ in range(5):
            now = draw(rng, BASE)
            assert await store.velocity(NO_SESSION, now) == model(history, now), f"seed {seed}"


async def test_sightings_before_and_after_record(store: RedisFeatures) -> None:
    first = activity(BASE, device="d1", beneficiary="b1")
    assert await store.sightings(NO_SESSION, first) == {
        "new_beneficiary": True,
        "new_device": True,
    }
    await store.record(NO_SESSION, first)
    again = activity(BASE + dt.timedelta(minutes=1), device="d1", beneficiary="b1")
    assert await store.sightings(NO_SESSION, again) == {
        "new_beneficiary": False,
        "new_device": False,
    }
    # New to this customer, even if another customer has used them.
    other = activity(BASE, customer="c2", device="d1", beneficiary="b1")
    assert await store.sightings(NO_SESSION, other) == {
        "new_beneficiary": True,
        "new_device": True,
    }
    # Only the beneficiary is new.
    mixed = activity(BASE, device="d1", beneficiary="b2")
    assert await store.sightings(NO_SESSION, mixed) == {
        "new_beneficiary": True,
        "new_device": False,
    }
    # Missing (None or empty) is never new, as in the database store.
    for lacking in (activity(BASE), activity(BASE, device="", beneficiary="")):
        assert await store.sightings(NO_SESSION, lacking) == {
            "new_beneficiary": False,
            "new_device": False,
        }


async def test_forget_uncounts_and_unsees_only_what_its_transaction_first_saw(
    store: RedisFeatures,
) -> None:
    earlier = activity(BASE - dt.timedelta(minutes=10), device="d1", beneficiary="b1", amount=7)
    await store.record(NO_SESSION, earlier)
    # The rolled-back transaction: a known device, a beneficiary it is the first to see.
    doomed = activity(BASE - dt.timedelta(minutes=1), device="d1", beneficiary="b2", amount=50)
    await store.record(NO_SESSION, doomed)

    now = activity(BASE, device="d1", beneficiary="b2")
    before = await store.velocity(NO_SESSION, now)
    assert before["customer_count_5m"] == 1
    assert before["customer_sum_1h"] == 57
    assert before["device_count_1h"] == 2
    assert before["beneficiary_count_5m"] == 1
    assert await store.sightings(NO_SESSION, now) == {
        "new_beneficiary": False,
        "new_device": False,
    }

    await store.forget(doomed)
    await store.forget(doomed)  # a second time changes nothing

    after = await store.velocity(NO_SESSION, now)
    assert after["customer_count_5m"] == 0
    assert after["customer_count_1h"] == 1
    assert after["customer_sum_1h"] == 7
    assert after["device_count_1h"] == 1
    assert after["beneficiary_count_24h"] == 0
    assert after == model([earlier], now)
    # b2 was first seen by the forgotten transaction: new again; d1 was seen before it.
    assert await store.sightings(NO_SESSION, now) == {
        "new_beneficiary": True,
        "new_device": False,
    }
    # Forgetting a transaction that saw b1 after `earlier` leaves b1 seen.
    late = activity(BASE, beneficiary="b1")
    await store.record(NO_SESSION, late)
    await store.forget(late)
    assert (await store.sightings(NO_SESSION, late))["new_beneficiary"] is False


async def test_same_transaction_recorded_twice_counts_once(store: RedisFeatures) -> None:
    txn = uuid.uuid4()
    await store.record(NO_SESSION, activity(BASE, txn_id=txn))
    await store.record(NO_SESSION, activity(BASE, txn_id=txn))
    values = await store.velocity(NO_SESSION, activity(BASE + dt.timedelta(seconds=1)))
    assert values["customer_count_5m"] == 1


async def test_keys_start_with_the_prefix(store: RedisFeatures, client: Redis, prefix: str) -> None:
    await store.record(
        NO_SESSION, activity(BASE, device="d1", beneficiary="b1", address="10.0.0.1")
    )
    keys = sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}*")])
    assert keys == [
        f"{prefix}risk:seen:c1",
        f"{prefix}risk:vel:address:10.0.0.1",
        f"{prefix}risk:vel:beneficiary:b1",
        f"{prefix}risk:vel:customer:c1",
        f"{prefix}risk:vel:device:d1",
    ]


async def test_naive_times_are_refused(store: RedisFeatures) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.velocity(NO_SESSION, activity(BASE.replace(tzinfo=None)))


async def test_redis_down_raises() -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    store = RedisFeatures(down, prefix="channelhub-test:down:")
    try:
        now = activity(BASE, device="d1", beneficiary="b1")
        calls: list[Any] = [
            store.velocity(NO_SESSION, now),
            store.sightings(NO_SESSION, now),
            store.record(NO_SESSION, now),
            store.forget(now),
        ]
        for call in calls:
            with pytest.raises((RedisConnectionError, OSError)):
                await call
    finally:
        await down.aclose()


async def test_a_pipelined_read_loads_its_script_into_a_fresh_server(
    client: Redis, store: RedisFeatures
) -> None:
    # A restarted Redis has no scripts: the pipeline must load the velocity script itself.
    past = activity(BASE - dt.timedelta(minutes=1), device="d1", beneficiary="b1")
    await store.record(NO_SESSION, past)
    await client.script_flush()
    now = activity(BASE, device="d1", beneficiary="b1")
    both = await store.read(NO_SESSION, now, velocity=ALL_VELOCITY, sightings=True)
    assert both == {**model([past], now), **sightings_model([past], now)}
