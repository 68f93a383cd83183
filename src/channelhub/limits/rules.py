"""Limit arithmetic, with no I/O: which limits apply, which period a moment falls in, which
limit a charge would break, and the bank's ceiling a customer may not set above.

Every function takes its data and ``now`` as arguments, so that it is testable alone.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from channelhub.limits.schemas import Charge, LimitDef, TxnFacts

__all__ = [
    "applicable",
    "bucket_of",
    "ceiling",
    "charges_for",
    "counted_subject",
    "refusal",
    "tightest",
]


def bucket_of(period: str, now: dt.datetime, zone: ZoneInfo) -> tuple[str, dt.date]:
    """Return the period key ``now`` falls in, in the bank's time zone, and the first day
    after the period (``2026-12-01`` and 2026-12-02 for a daily limit)."""
    return _bucket(period, now.astimezone(zone).date())


@functools.lru_cache(maxsize=64)
def _bucket(period: str, day: dt.date) -> tuple[str, dt.date]:
    """``bucket_of`` for the bank's date ``day``: the same few answers all day long."""
    if period == "daily":
        return day.isoformat(), day + dt.timedelta(days=1)
    if period == "monthly":
        following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return f"{day.year:04d}-{day.month:02d}", following
    return "", day  # per transaction: no period, nothing counted


def _targets(limit: LimitDef, facts: TxnFacts) -> bool:
    level = limit.level
    if level in ("global", "channel"):
        return True
    if level == "segment":
        return facts.segment is not None and limit.subject == facts.segment
    if level == "customer":
        return limit.subject == facts.customer_id
    if level == "account":
        return facts.account is not None and limit.subject == facts.account
    return facts.card is not None and limit.subject == facts.card  # card


def applicable(limits: Iterable[LimitDef], facts: TxnFacts) -> list[LimitDef]:
    """Return the limits that govern a transaction: its service or group, its currency, its
    channel (or all channels), and a subject that is its customer, segment, account or card."""
    return [
        limit
        for limit in limits
        if limit.service_group in facts.groups
        and limit.currency == facts.currency
        and limit.channel in ("all", facts.channel)
        and _targets(limit, facts)
    ]


def counted_subject(limit: LimitDef, facts: TxnFacts) -> str:
    """Return whose usage a limit counts: the account or card for their limits, otherwise
    the customer (a channel's daily limit is each customer's, not the channel's total)."""
    if limit.level == "account":
        return facts.account or ""
    if limit.level == "card":
        return facts.card or ""
    return facts.customer_id


def charges_for(
    limits: Sequence[LimitDef], facts: TxnFacts, now: dt.datetime, zone: ZoneInfo
) -> tuple[list[Charge], LimitDef | None]:
    """Return what the transaction books on each periodic limit, sorted (so that concurrent
    reservations lock counters in one order), and a per-transaction limit it breaks, if any.
    """
    charges: list[Charge] = []
    broken: LimitDef | None = None
    day = now.astimezone(zone).date()
    for limit in limits:
        if limit.period == "transaction":
            cap = limit.max_amount_minor
            over = cap is not None and facts.amount_minor > cap
            if over and (broken is None or (cap or 0) < (broken.max_amount_minor or 0)):
                broken = limit
            continue
        bucket, expires_on = _bucket(limit.period, day)
        charges.append(
            Charge(
                limit=limit,
                subject=counted_subject(limit, facts),
                bucket=bucket,
                amount_minor=facts.amount_minor,
                count=1,
                expires_on=expires_on,
            )
        )
    charges.sort(key=lambda charge: charge.key)
    return charges, broken


def refusal(charge: Charge, used_minor: int, used_count: int) -> str | None:
    """Return ``amount`` or ``count`` when ``charge`` on top of what is used breaks its
    limit, else None."""
    limit = charge.limit
    if (
        limit.max_amount_minor is not None
        and used_minor + charge.amount_minor > limit.max_amount_minor
    ):
        return "amount"
    if limit.max_count is not None and used_count + charge.count > limit.max_count:
        return "count"
    return None


def tightest(
    charges: Sequence[Charge], usage: Mapping[tuple[str, str, str], tuple[int, int]]
) -> tuple[Charge, str] | None:
    """Among the charges that break their limit, return the one with the least room left
    (the tightest limit) and how it breaks (``amount`` or ``count``); None if none does."""
    worst: tuple[int, Charge, str] | None = None
    for charge in charges:
        used_minor, used_count = usage.get(charge.key, (0, 0))
        how = refusal(charge, used_minor, used_count)
        if how is None:
            continue
        room = (
            (charge.limit.max_amount_minor or 0) - used_minor
            if how == "amount"
            else (charge.limit.max_count or 0) - used_count
        )
        if worst is None or room < worst[0]:
            worst = (room, charge, how)
    return None if worst is None else (worst[1], worst[2])


def ceiling(limits: Iterable[LimitDef], facts: TxnFacts, period: str) -> LimitDef | None:
    """Return the bank's tightest amount ceiling over ``period`` for the transactions
    ``facts`` describes: what a customer may lower their own limit from, never exceed."""
    best: LimitDef | None = None
    for limit in applicable(limits, facts):
        if limit.owner != "bank" or limit.period != period or limit.max_amount_minor is None:
            continue
        if best is None or limit.max_amount_minor < (best.max_amount_minor or 0):
            best = limit
    return best
