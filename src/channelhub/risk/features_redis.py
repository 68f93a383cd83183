"""Velocity features kept in Redis, shared by every node (``RedisFeatures``).

What is kept where:

* ``{prefix}risk:vel:{dimension}:{value}``, one sorted set per customer, device, beneficiary
  and source address. Each member is one recorded activity, ``"{txn_id}:{amount}:{currency}"``
  (amount in minor units), scored by the activity's time in epoch **microseconds**. Members
  older than the longest window are trimmed whenever the set is read or written, and the
  key expires a little after the longest window once nobody records on it any more.
* ``{prefix}risk:seen:{customer}``, one hash per customer: field ``b:{beneficiary}`` or
  ``d:{device}``, value the id of the transaction that first saw it. Keeping that id is what
  lets ``forget`` take back a sighting its rolled-back transaction made, and only that one.

Why this shape:

* Every node must count every other node's activity, so the state lives in Redis rather
  than in one node's memory; it is outside the database transaction (``outside = True``),
  so the engine calls ``forget`` when the transaction rolls back.
* One Lua script per operation: ``velocity`` reads up to four sets and computes all
  24 numbers in a single round trip (the engine's time budget is a few milliseconds), and
  ``record`` and ``forget`` change the sets and the hash atomically, so that a reader never
  sees half of an activity.
* Scores in microseconds, not milliseconds: the database compares timestamps to the
  microsecond (``at > now - window``), and so does this store, so both give the same numbers
  for the same activities, boundaries included. Epoch microseconds stay below 2^53 (where Lua
  numbers, which are doubles, stop being exact integers) until the year 2255. Lua's
  ``tostring`` prints only 14 significant digits, so the scripts format scores with
  ``%.0f`` when handing them back to Redis.
* Amounts are summed in Lua doubles, exact for totals below 2^53 minor units.

Differences from ``DatabaseFeatures`` a reader should know:

* An activity is visible to other nodes as soon as it is recorded, before its transaction
  commits (the database shows it only after). ``forget`` takes it back on rollback.
* A member names its transaction, amount and currency, so recording the same transaction's
  activity twice counts it once (the database would insert two rows).
* Sightings expire after ``SEEN_DAYS`` without any activity of the customer (the database
  keeps them forever): after more than a year of silence a beneficiary is new again, which a
  risk rule may well want, and Redis does not keep every customer ever seen.
* If two transactions of one customer record the same new beneficiary concurrently and the
  first one rolls back, its ``forget`` un-sees the beneficiary although the second one
  committed: the next transaction finds it "new" once more (a false alarm, never a miss).

Errors from Redis (refused connection, timeout) propagate: the caller decides whether the
engine fails closed or open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set as AbstractSet
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.risk.features import DIMENSIONS, LONGEST, WINDOWS, Activity, dimensions_of

__all__ = ["SEEN_DAYS", "RedisFeatures"]

#: A customer's sightings are kept this long after the customer's last recorded activity.
SEEN_DAYS = 400
#: A velocity set outlives its last activity by the longest window plus this margin (it is
#: only ever read for the last ``LONGEST`` seconds; the margin covers clocks slightly apart).
_VELOCITY_TTL_SECONDS = LONGEST + 3600
_SEEN_TTL_SECONDS = SEEN_DAYS * 86400

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000

# Velocity of one activity.
# KEYS: the velocity sets of the activity's known dimensions (1 to 4).
# ARGV[1]: now, epoch microseconds; ARGV[2]: the activity's currency;
# ARGV[3..]: the window lengths in microseconds, the longest among them.
# Returns, per key and then per window, the count and the same-currency sum: an array of
# #KEYS * (#ARGV - 2) * 2 integers.
_VELOCITY = """
local now = tonumber(ARGV[1])
local currency = ARGV[2]
local windows = {}
local longest = 0
for i = 3, #ARGV do
  local length = tonumber(ARGV[i])
  windows[#windows + 1] = length
  if length > longest then longest = length end
end
-- Cut-offs are kept as numbers for comparing and formatted with %.0f for Redis: tostring
-- would print 14 significant digits only and lose the microseconds.
local oldest = now - longest
local result = {}
for k = 1, #KEYS do
  -- Trim what no window can count any more ('at > now - window' excludes the boundary),
  -- then read the rest of the longest window with its exclusive lower bound. There is no
  -- upper bound, as in the database: an activity recorded with a later time counts too.
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', string.format('%.0f', oldest))
  local rows = redis.call('ZRANGEBYSCORE', KEYS[k], string.format('(%.0f', oldest), '+inf',
                          'WITHSCORES')
  local counts, sums = {}, {}
  for w = 1, #windows do counts[w] = 0; sums[w] = 0 end
  for i = 1, #rows, 2 do
    -- member "{txn_id}:{amount}:{currency}": amount and currency are the last two parts
    local amount, cur = string.match(rows[i], ':(%-?%d+):([^:]*)$')
    local at = tonumber(rows[i + 1])
    for w = 1, #windows do
      if at > now - windows[w] then
        counts[w] = counts[w] + 1
        if cur == currency then sums[w] = sums[w] + tonumber(amount) end
      end
    end
  end
  for w = 1, #windows do
    result[#result + 1] = counts[w]
    result[#result + 1] = sums[w]
  end
end
return result
"""

# Record one activity.
# KEYS[1]: the customer's seen hash; KEYS[2..]: the velocity sets of its known dimensions.
# ARGV[1]: the member; ARGV[2]: its score (epoch microseconds); ARGV[3]: the score at and
# below which members are too old to count (score minus the longest window); ARGV[4]: the
# velocity sets' lifetime in seconds; ARGV[5]: the seen hash's lifetime in seconds;
# ARGV[6]: the transaction id; ARGV[7..]: the seen-hash fields to set ("b:..." and "d:...").
_RECORD = """
for k = 2, #KEYS do
  redis.call('ZADD', KEYS[k], ARGV[2], ARGV[1])
  -- Trim here too: a set that is written but never read (no rule reads velocity) must
  -- not grow without end while its customer stays active.
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', ARGV[3])
  redis.call('EXPIRE', KEYS[k], ARGV[4])
end
if #ARGV >= 7 then
  for i = 7, #ARGV do
    -- The first transaction to see a value keeps it: forget compares against this id.
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[6])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 0
"""

# Undo one recorded activity (its transaction rolled back).
# KEYS[1]: the customer's seen hash; KEYS[2..]: the velocity sets of its known dimensions.
# ARGV[1]: the member; ARGV[2]: the transaction id; ARGV[3..]: the seen-hash fields.
# A sighting is removed only if this very transaction made it: a value seen earlier by
# another transaction stays seen. Safe to run more than once.
_FORGET = """
for k = 2, #KEYS do
  redis.call('ZREM', KEYS[k], ARGV[1])
end
local removed = 0
if #ARGV >= 3 then
  for i = 3, #ARGV do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[2] then
      removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
return removed
"""


def _epoch_us(at: dt.datetime) -> int:
    """Return ``at`` in whole microseconds since the epoch (exact integer arithmetic)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware UTC time")
    return (at - _EPOCH) // _MICROSECOND


class RedisFeatures:
    """Velocity features and sightings in Redis, under keys that start with ``prefix``.

    ``session`` parameters are unused: they are there for the ``FeatureStore`` protocol.
    """

    outside = True

    def __init__(self, client: Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._velocity = client.register_script(_VELOCITY)
        self._record = client.register_script(_RECORD)
        self._forget = client.register_script(_FORGET)

    def _velocity_key(self, dimension: str, value: str) -> str:
        return f"{self._prefix}risk:vel:{dimension}:{value}"

    def _seen_key(self, customer: str) -> str:
        return f"{self._prefix}risk:seen:{customer}"

    def _dimensions(
        self, activity: Activity, dims: tuple[str, ...] = DIMENSIONS
    ) -> list[tuple[str, str]]:
        # As DatabaseFeatures.velocity: a dimension is counted unless its value is None.
        return [(dim, value) for dim in dims if (value := activity.value(dim)) is not None]

    @staticmethod
    def _member(activity: Activity) -> str:
        return f"{activity.txn_id}:{activity.amount_minor}:{activity.currency}"

    @staticmethod
    def _seen_fields(activity: Activity) -> list[tuple[str, str]]:
        # As DatabaseFeatures.sightings and record: empty values are never seen.
        return [
            (kind, f"{kind[0]}:{value}")
            for kind, value in (("beneficiary", activity.beneficiary), ("device", activity.device))
            if value
        ]

    def _velocity_call(
        self, activity: Activity, dims: tuple[str, ...] = DIMENSIONS
    ) -> tuple[list[str], list[Any]]:
        """The velocity script's keys (one per known dimension of ``dims``) and arguments."""
        keys = [self._velocity_key(dim, value) for dim, value in self._dimensions(activity, dims)]
        args: list[Any] = [
            _epoch_us(activity.at),
            activity.currency,
            *(seconds * _US_PER_SECOND for seconds in WINDOWS.values()),
        ]
        return keys, args

    def _velocity_values(
        self, activity: Activity, answer: list[Any], dims: tuple[str, ...] = DIMENSIONS
    ) -> dict[str, int]:
        """All 24 numbers from the script's answer (zero for a dimension the activity lacks
        or that is not in ``dims``)."""
        values: dict[str, int] = {
            f"{dim}_{what}_{window}": 0
            for dim in DIMENSIONS
            for window in WINDOWS
            for what in ("count", "sum")
        }
        dimensions = self._dimensions(activity, dims)
        numbers = [int(n) for n in answer]
        if len(numbers) != len(dimensions) * len(WINDOWS) * 2:
            raise RuntimeError(f"velocity script returned {len(numbers)} numbers")
        at = 0
        for dim, _ in dimensions:
            for window in WINDOWS:
                values[f"{dim}_count_{window}"] = numbers[at]
                values[f"{dim}_sum_{window}"] = numbers[at + 1]
                at += 2
        return values

    @staticmethod
    def _sightings_values(
        activity: Activity, fields: list[tuple[str, str]], stored: list[Any]
    ) -> dict[str, bool]:
        """Whether the beneficiary and the device are new, from HMGET's answer."""
        seen = {kind for (kind, _), txn in zip(fields, stored, strict=True) if txn is not None}
        return {
            "new_beneficiary": bool(activity.beneficiary) and "beneficiary" not in seen,
            "new_device": bool(activity.device) and "device" not in seen,
        }

    async def velocity(self, session: AsyncSession, activity: Activity) -> dict[str, int]:
        """Return the counts and same-currency sums per dimension and window (all 24,
        zero for a dimension the activity lacks), in one round trip."""
        keys, args = self._velocity_call(activity)
        answer = await self._velocity(keys=keys, args=args) if keys else []
        return self._velocity_values(activity, answer)

    async def sightings(self, session: AsyncSession, activity: Activity) -> dict[str, bool]:
        """Return whether the beneficiary and the device are new to the customer (False
        for one the activity lacks)."""
        fields = self._seen_fields(activity)
        stored: list[Any] = []
        if fields:
            stored = await self._redis.hmget(
                self._seen_key(activity.customer), [field for _, field in fields]
            )
        return self._sightings_values(activity, fields, stored)

    async def read(
        self,
        session: AsyncSession,
        activity: Activity,
        *,
        velocity: AbstractSet[str],
        sightings: bool,
        record: bool = False,
    ) -> dict[str, Any]:
        """Return the velocity features (of the dimensions ``velocity`` names) and/or the
        sightings, then record the activity if asked: all in one pipelined round trip,
        executed in that order (so the reads do not see the activity)."""
        dims = dimensions_of(velocity)
        keys, args = self._velocity_call(activity, dims)
        fields = self._seen_fields(activity)
        pipe = self._redis.pipeline(transaction=False)
        if velocity and keys:
            await self._velocity(keys=keys, args=args, client=pipe)
        if sightings and fields:
            await pipe.hmget(self._seen_key(activity.customer), [field for _, field in fields])
        if record:
            record_keys, record_args = self._record_call(activity)
            await self._record(keys=record_keys, args=record_args, client=pipe)
        answers = list(await pipe.execute()) if len(pipe) else []
        found: dict[str, Any] = {}
        if velocity:
            # Only the numbers asked for: the others were not read (a decision shows what
            # its rules saw, never a zero that was not counted).
            values = self._velocity_values(activity, answers.pop(0) if keys else [], dims)
            found.update((name, values[name]) for name in velocity if name in values)
        if sightings:
            found.update(self._sightings_values(activity, fields, answers.pop(0) if fields else []))
        return found

    def _record_call(self, activity: Activity) -> tuple[list[str], list[Any]]:
        """The record script's keys (the seen hash, then the velocity sets) and arguments."""
        keys = [self._seen_key(activity.customer)] + [
            self._velocity_key(dim, value) for dim, value in self._dimensions(activity)
        ]
        score = _epoch_us(activity.at)
        args: list[Any] = [
            self._member(activity),
            score,
            score - LONGEST * _US_PER_SECOND,
            _VELOCITY_TTL_SECONDS,
            _SEEN_TTL_SECONDS,
            str(activity.txn_id),
            *(field for _, field in self._seen_fields(activity)),
        ]
        return keys, args

    async def record(self, session: AsyncSession, activity: Activity) -> None:
        """Count the activity in each of its dimensions' sets and remember its beneficiary
        and device for the customer, atomically and in one round trip."""
        keys, args = self._record_call(activity)
        await self._record(keys=keys, args=args)

    async def purge(self, session: AsyncSession, before: dt.datetime) -> int:
        """Nothing to do: every key expires by itself (and the scripts trim old members)."""
        return 0

    async def forget(self, activity: Activity) -> None:
        """Undo ``record``: uncount the activity, and un-see a beneficiary or device that
        this activity's transaction was the first to see."""
        keys = [self._seen_key(activity.customer)] + [
            self._velocity_key(dim, value) for dim, value in self._dimensions(activity)
        ]
        args: list[Any] = [
            self._member(activity),
            str(activity.txn_id),
            *(field for _, field in self._seen_fields(activity)),
        ]
        await self._forget(keys=keys, args=args)
