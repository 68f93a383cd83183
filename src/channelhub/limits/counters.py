"""Where limit usage is counted: in the database, inside the transaction's own database
transaction; or in Redis, shared by every node, through atomic scripts.

Both book all of a transaction's charges or none, and never let two concurrent reservations
both take the last of a limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.limits import repository
from channelhub.limits.schemas import Charge

__all__ = ["CounterStore", "DatabaseCounters", "RedisCounters"]

Key = tuple[str, str, str]


class CounterStore(Protocol):
    """Books and gives back a transaction's charges on its limits' counters."""

    #: True when the counters live outside the database transaction (they must be given
    #: back explicitly if it rolls back).
    outside: bool

    async def reserve(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Charge]
    ) -> dict[Key, tuple[int, int]] | None:
        """Book every charge, or none; None when all were booked, else the usage of each
        counter as it stood (to name the limit that refused)."""
        ...

    async def release(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Mapping[str, Any]]
    ) -> None:
        """Give back what ``reserve`` booked for ``txn_id``; safe to call more than once."""
        ...

    async def usage(self, session: AsyncSession, keys: Sequence[Key]) -> dict[Key, tuple[int, int]]:
        """Return (amount, count) used on each counter."""
        ...

    async def book_reading_own(
        self, session: AsyncSession, charges: Sequence[Charge], customer: str
    ) -> tuple[set[Key], list[Any]] | None:
        """Where the store can: book the charges that fit, and read the customer's own
        limits, in one round trip; return the keys booked and those limits. None where it
        cannot (the caller reads, then reserves)."""
        ...


class DatabaseCounters:
    """Counters in the ``limit_usage`` table, changed in the caller's database transaction:
    a rollback gives everything back by itself."""

    outside = False

    async def reserve(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Charge]
    ) -> dict[Key, tuple[int, int]] | None:
        booked = await repository.book(session, charges)
        if len(booked) == len(charges):
            return None
        # The statement booked some counters before refusing another: the caller's step
        # fails, and its transaction (or savepoint) takes those back too.
        usage = await repository.usage(session, [charge.key for charge in charges])
        for charge in charges:
            if charge.key in booked:
                used_minor, used_count = usage.get(charge.key, (0, 0))
                usage[charge.key] = (used_minor - charge.amount_minor, used_count - charge.count)
        return usage

    async def release(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Mapping[str, Any]]
    ) -> None:
        # Runs as a compensation, whose step-log state (written in the same transaction)
        # is what makes it happen once.
        await repository.give_back(session, charges)

    async def usage(self, session: AsyncSession, keys: Sequence[Key]) -> dict[Key, tuple[int, int]]:
        return await repository.usage(session, keys)

    async def book_reading_own(
        self, session: AsyncSession, charges: Sequence[Charge], customer: str
    ) -> tuple[set[Key], list[Any]] | None:
        return await repository.book_reading_own(session, charges, customer)


# KEYS: the counters, then the transaction's reservation record.
# ARGV: the reservation's lifetime, then per counter: amount, count, amount cap, count cap
# (-1: none), lifetime. Returns 0 when booked (or already booked by this transaction),
# else the 1-based index of the first counter that refused.
_RESERVE = """
local n = #KEYS - 1
local record = KEYS[n + 1]
if redis.call('EXISTS', record) == 1 then return 0 end
for i = 1, n do
  local at = 2 + (i - 1) * 5
  local used = redis.call('HMGET', KEYS[i], 'a', 'c')
  local amount, count = tonumber(used[1] or '0'), tonumber(used[2] or '0')
  local cap_a, cap_c = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  if (cap_a >= 0 and amount + tonumber(ARGV[at]) > cap_a)
     or (cap_c >= 0 and count + tonumber(ARGV[at + 1]) > cap_c) then
    return i
  end
end
for i = 1, n do
  local at = 2 + (i - 1) * 5
  redis.call('HINCRBY', KEYS[i], 'a', ARGV[at])
  redis.call('HINCRBY', KEYS[i], 'c', ARGV[at + 1])
  if redis.call('TTL', KEYS[i]) < tonumber(ARGV[at + 4]) then
    redis.call('EXPIRE', KEYS[i], ARGV[at + 4])
  end
  redis.call('HSET', record, KEYS[i], ARGV[at] .. ':' .. ARGV[at + 1])
end
redis.call('EXPIRE', record, ARGV[1])
return 0
"""

# KEYS: the transaction's reservation record. Gives back each booking it lists, then deletes
# it, so that a second release finds nothing to give back.
_RELEASE = """
local booked = redis.call('HGETALL', KEYS[1])
for i = 1, #booked, 2 do
  local sep = string.find(booked[i + 1], ':', 1, true)
  local amount = tonumber(string.sub(booked[i + 1], 1, sep - 1))
  local count = tonumber(string.sub(booked[i + 1], sep + 1))
  if redis.call('EXISTS', booked[i]) == 1 then
    redis.call('HINCRBY', booked[i], 'a', -amount)
    redis.call('HINCRBY', booked[i], 'c', -count)
  end
end
redis.call('DEL', KEYS[1])
return #booked / 2
"""

#: A counter outlives its period by this much, so that a late release still finds it.
_GRACE_SECONDS = 2 * 86400


class RedisCounters:
    """Counters in Redis hashes, shared by every node; each reservation is recorded under
    the transaction's id, which makes its release idempotent.

    A node that dies between booking in Redis and committing its database transaction
    leaves the booking in place: the customer's limit is under-used until the period ends,
    never overrun.
    """

    outside = True

    def __init__(self, client: Redis, *, prefix: str, seconds_left: Any) -> None:
        """``seconds_left(charge)`` returns how long the charge's period still runs."""
        self._redis = client
        self._prefix = prefix
        self._seconds_left = seconds_left
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def _counter(self, key: Key) -> str:
        return f"{self._prefix}limit:{key[0]}:{key[1]}:{key[2]}"

    def _record(self, txn_id: uuid.UUID) -> str:
        return f"{self._prefix}limit-txn:{txn_id}"

    async def reserve(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Charge]
    ) -> dict[Key, tuple[int, int]] | None:
        if not charges:
            return None
        keys = [self._counter(charge.key) for charge in charges] + [self._record(txn_id)]
        longest = 0
        args: list[int] = []
        for charge in charges:
            lifetime = int(self._seconds_left(charge)) + _GRACE_SECONDS
            longest = max(longest, lifetime)
            limit = charge.limit
            args += [
                charge.amount_minor,
                charge.count,
                -1 if limit.max_amount_minor is None else limit.max_amount_minor,
                -1 if limit.max_count is None else limit.max_count,
                lifetime,
            ]
        refused = int(await self._reserve(keys=keys, args=[longest, *args]))
        if refused == 0:
            return None
        return await self.usage(session, [charge.key for charge in charges])

    async def release(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Mapping[str, Any]]
    ) -> None:
        await self._release(keys=[self._record(txn_id)], args=[])

    async def usage(self, session: AsyncSession, keys: Sequence[Key]) -> dict[Key, tuple[int, int]]:
        if not keys:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self._counter(key), "a", "c")
            rows = await pipe.execute()
        return {
            key: (int(row[0] or 0), int(row[1] or 0))
            for key, row in zip(keys, rows, strict=True)
            if row[0] is not None
        }

    async def book_reading_own(
        self, session: AsyncSession, charges: Sequence[Charge], customer: str
    ) -> tuple[set[Key], list[Any]] | None:
        return None  # the counters are in Redis, the definitions in the database
