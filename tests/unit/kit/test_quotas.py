"""Request quotas: counted per key over a moving minute; a store that is down lets requests
through rather than refusing everyone."""

from __future__ import annotations

from redis.asyncio import Redis

from channelhub.kit.quotas import Quotas


async def test_a_key_gets_its_quota_then_a_wait_and_other_keys_are_untouched() -> None:
    quotas = Quotas("partner", 3)
    assert [await quotas.take("app-a") for _ in range(3)] == [None, None, None]
    wait = await quotas.take("app-a")
    assert wait is not None
    assert 1 <= wait <= 60
    assert await quotas.take("app-b") is None


async def test_a_store_that_is_down_lets_requests_through() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        quotas = Quotas("partner", 1, redis=dead, redis_url="redis://127.0.0.1:1/0")
        assert [await quotas.take("app-a") for _ in range(3)] == [None, None, None]
    finally:
        await dead.aclose()
