"""Request quotas: at most N requests a minute per key, counted in this process or in Redis
(shared by every node), on the ``limits`` library's moving window.

Quotas protect capacity, not money: when Redis does not answer, a request is let through and
the failure logged, rather than every partner refused.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from channelhub.kit.logging import get_logger

__all__ = ["Quotas"]

log = get_logger(__name__)


class Quotas:
    """Per-key request quotas of one kind (``partner``: one quota per partner app)."""

    def __init__(
        self,
        kind: str,
        per_minute: int,
        *,
        redis: Redis | None = None,
        redis_url: str = "",
        prefix: str = "",
    ) -> None:
        """``redis``: the node's client, whose connections the quotas share (and which closes
        them); ``redis_url`` the address it was made from."""
        storage: Storage = (
            MemoryStorage()
            if redis is None
            else RedisStorage(
                _limits_uri(redis_url),
                implementation="redispy",
                key_prefix=f"{prefix}quota",
                # limits types its options as scalars; redis-py's bridge takes a pool too.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
        )
        self.kind = kind
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(storage)

    async def take(self, key: str) -> int | None:
        """Count one request of ``key``; return None when it is within the quota, else the
        whole seconds to wait before the next one will be."""
        try:
            if await self._limiter.hit(self._item, self.kind, key):
                return None
            stats = await self._limiter.get_window_stats(self._item, self.kind, key)
        except Exception:  # the shared store is down: serve rather than refuse everyone
            log.warning("quota_store_unavailable", kind=self.kind)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))


def _limits_uri(url: str) -> str:
    """``redis://``, ``rediss://`` or ``unix://`` as the ``limits`` library names them."""
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url
