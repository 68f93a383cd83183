"""Velocity features and sightings in the database (DatabaseFeatures), on SQLite and
PostgreSQL: random histories, many at a window's very edge, against the same model as Redis'
store; the one-statement read equals the separate ones, also when it reads only some of the
numbers (as a rule set that reads a few asks); reading and recording at once reads the state
before the activity; a rolled-back record counts nothing."""

from __future__ import annotations

import random

from channelhub.risk.features import ALL_VELOCITY, Activity, DatabaseFeatures
from channelhub.runtime import Runtime
from tests.risk.features_model import (
    BASE,
    draw,
    draw_history,
    model,
    sightings_model,
    some_velocity,
)


async def test_random_histories_match_the_model(runtime: Runtime) -> None:
    store = DatabaseFeatures()
    everything: list[Activity] = []  # the tables keep every seed's history
    for seed in range(4):
        rng = random.Random(seed)
        history = draw_history(rng)
        async with runtime.sessions() as session, session.begin():
            for past in history:
                await store.record(session, past)
        everything += history
        async with runtime.sessions() as session:
            for _ in range(8):
                now = draw(rng, BASE)
                expected = model(everything, now)
                assert await store.velocity(session, now) == expected, f"seed {seed}"
                seen = sightings_model(everything, now)
                assert await store.sightings(session, now) == seen, f"seed {seed}"
                both = await store.read(session, now, velocity=ALL_VELOCITY, sightings=True)
                assert both == {**expected, **seen}, f"seed {seed}"
                names = some_velocity(rng)
                part = await store.read(session, now, velocity=names, sightings=False)
                assert part == {name: expected[name] for name in names}, f"seed {seed}"
        # Reading and recording at once (one statement on PostgreSQL) reads what was there
        # before, then counts the activity for the next ones.
        for turn in range(4):
            now = draw(rng, BASE)
            names = ALL_VELOCITY if turn == 0 else some_velocity(rng)
            async with runtime.sessions() as session, session.begin():
                read = await store.read(session, now, velocity=names, sightings=True, record=True)
            before = model(everything, now)
            wanted = {name: before[name] for name in names}
            assert read == {**wanted, **sightings_model(everything, now)}, f"seed {seed}"
            everything.append(now)
            async with runtime.sessions() as session:
                after = await store.read(session, now, velocity=ALL_VELOCITY, sightings=False)
            assert after == model(everything, now), f"seed {seed}"


async def test_a_rolled_back_record_counts_nothing(runtime: Runtime) -> None:
    store = DatabaseFeatures()
    rng = random.Random(99)
    past = draw(rng, BASE)
    async with runtime.sessions() as session:  # begins by itself at the first statement
        await store.record(session, past)
        assert (await store.velocity(session, past))["customer_count_5m"] == 1
        await session.rollback()
    async with runtime.sessions() as session:
        assert (await store.velocity(session, past))["customer_count_5m"] == 0
        assert await store.sightings(session, past) == sightings_model([], past)
