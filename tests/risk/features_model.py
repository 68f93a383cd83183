"""What the velocity features must be, computed the slow and obvious way, for testing both
feature stores (the database's and Redis') against the same model."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence

from channelhub.risk.features import DIMENSIONS, VELOCITY, WINDOWS, Activity

BASE = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def activity(
    at: dt.datetime,
    *,
    customer: str = "c1",
    device: str | None = None,
    beneficiary: str | None = None,
    address: str | None = None,
    amount: int = 100,
    currency: str = "CNY",
    txn_id: uuid.UUID | None = None,
) -> Activity:
    """An activity with defaults for what a test does not care about."""
    return Activity(
        txn_id=txn_id or uuid.uuid4(),
        customer=customer,
        device=device,
        beneficiary=beneficiary,
        address=address,
        amount_minor=amount,
        currency=currency,
        at=at,
    )


def model(history: Sequence[Activity], now: Activity) -> dict[str, int]:
    """What the features must be, computed the way DatabaseFeatures' SQL states them."""
    values = dict.fromkeys(VELOCITY, 0)
    for dim in DIMENSIONS:
        value = now.value(dim)
        if value is None:
            continue
        for window, seconds in WINDOWS.items():
            recent = [
                past
                for past in history
                if past.value(dim) == value and past.at > now.at - dt.timedelta(seconds=seconds)
            ]
            values[f"{dim}_count_{window}"] = len(recent)
            values[f"{dim}_sum_{window}"] = sum(
                past.amount_minor for past in recent if past.currency == now.currency
            )
    return values


def sightings_model(history: Sequence[Activity], now: Activity) -> dict[str, bool]:
    """Whether ``now``'s beneficiary and device are new to its customer."""
    mine = [past for past in history if past.customer == now.customer]
    return {
        "new_beneficiary": bool(now.beneficiary)
        and all(past.beneficiary != now.beneficiary for past in mine),
        "new_device": bool(now.device) and all(past.device != now.device for past in mine),
    }


def draw(rng: random.Random, at: dt.datetime) -> Activity:
    """A random activity among few customers, devices, beneficiaries and addresses (so that
    they repeat), in one of three currencies."""

    def pick(values: list[str]) -> str | None:
        return rng.choice([None, *values])

    return activity(
        at,
        customer=rng.choice(["c1", "c2", "c3"]),
        device=pick(["d1", "d2"]),
        beneficiary=pick(["b1", "b2", "b3"]),
        address=pick(["a1", "a2"]),
        amount=rng.randint(1, 10**12),
        currency=rng.choice(["CNY", "USD", "HKD"]),
    )


def draw_history(rng: random.Random) -> list[Activity]:
    """20 to 80 activities over two days before BASE, many right at a window's edge."""
    history = []
    span = 2 * 86400
    for _ in range(rng.randint(20, 80)):
        edge = rng.choice([*WINDOWS.values(), 0])
        jitter = rng.choice([0, 1, -1, rng.randint(-5_000_000, 5_000_000)])
        offset = rng.choice([rng.randint(0, span * 1_000_000), edge * 1_000_000 + jitter])
        history.append(draw(rng, BASE - dt.timedelta(microseconds=max(offset, 1))))
    return history


def some_velocity(rng: random.Random) -> frozenset[str]:
    """A few velocity features, as a rule set that reads only some of them asks."""
    return frozenset(rng.sample(sorted(VELOCITY), rng.randint(1, 6)))
