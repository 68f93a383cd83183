"""Limit management: the bank's limits kept in memory on every node (and re-read within
seconds of a change), a customer's own lower limits, and the atomic reservation of a
transaction against all the limits that govern it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.kit.clock import business_date
from channelhub.kit.db import Rider
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money
from channelhub.limits import repository
from channelhub.limits.counters import CounterStore, DatabaseCounters
from channelhub.limits.errors import (
    LimitAboveCeiling,
    LimitCountExceeded,
    LimitExceeded,
    LimitUnknown,
)
from channelhub.limits.metrics import REFUSALS
from channelhub.limits.rules import applicable, bucket_of, ceiling, charges_for, tightest
from channelhub.limits.schemas import SERVICE_GROUPS, Charge, LimitChangeBody, LimitDef, TxnFacts
from channelhub.security import approvals

__all__ = ["LimitCenter", "QuickBooking", "bank_limits", "change_bank_limit", "limit_view"]

log = get_logger(__name__)


def _decimal(minor: int, currency: str) -> str:
    return Money(minor, currency).to_decimal_string()


def _refusal(charge: Charge | None, limit: LimitDef, how: str, used: int) -> ChannelhubError:
    REFUSALS.labels(limit.level, limit.period, limit.channel, how).inc()
    details: dict[str, Any] = {
        "limit": str(limit.id),
        "level": limit.level,
        "scope": limit.service_group,
        "channel": limit.channel,
        "period": limit.period,
        "currency": limit.currency,
        "owner": limit.owner,
    }
    if how == "count":
        details["count_limit"] = limit.max_count
        return LimitCountExceeded(
            f"the {limit.period} {limit.level} limit of {limit.max_count} transactions"
            f" on {limit.service_group} is reached",
            details=details,
        )
    ceiling_minor = limit.max_amount_minor or 0
    details["limit_amount"] = _decimal(ceiling_minor, limit.currency)
    details["remaining"] = _decimal(max(ceiling_minor - used, 0), limit.currency)
    return LimitExceeded(
        f"the {limit.period} {limit.level} limit of {details['limit_amount']} {limit.currency}"
        f" on {limit.service_group} would be exceeded",
        details=details,
    )


def limit_view(limit: LimitDef, used: tuple[int, int]) -> dict[str, Any]:
    """Return a limit as ``limit.list`` and the staff API show it: what it allows, what the
    current period used and what remains."""
    view: dict[str, Any] = {
        "id": str(limit.id),
        "scope": limit.service_group,
        "channel": limit.channel,
        "period": limit.period,
        "currency": limit.currency,
        "level": limit.level,
        "owner": limit.owner,
    }
    if limit.max_amount_minor is not None:
        used_minor = used[0] if limit.period != "transaction" else 0
        view["limit"] = _decimal(limit.max_amount_minor, limit.currency)
        view["used"] = _decimal(used_minor, limit.currency)
        view["remaining"] = _decimal(max(limit.max_amount_minor - used_minor, 0), limit.currency)
    else:
        view["limit"] = view["used"] = view["remaining"] = None
    view["count_limit"] = limit.max_count
    view["count_used"] = used[1] if limit.period != "transaction" else 0
    return view


@dataclass(frozen=True, slots=True)
class QuickBooking:
    """The bank's limits that apply to a transaction and what it books on them."""

    bank: list[LimitDef]
    charges: list[Charge]


class LimitCenter:
    """One node's view of the limits, and the reservations made against them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        zone: ZoneInfo,
        counters: CounterStore | None = None,
        sync_seconds: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.zone = zone
        self.counters: CounterStore = counters or DatabaseCounters()
        self.sync_seconds = sync_seconds
        self._bank: tuple[LimitDef, ...] = ()
        self._stamp: tuple[int, dt.datetime | None] | None = None
        self._stale = True
        #: Whether any bank limit targets a segment (else a transaction needs no look-up).
        self.uses_segments = False

    @property
    def bank_limits(self) -> tuple[LimitDef, ...]:
        """Return the bank's active limits as this node knows them."""
        return self._bank

    async def refresh(self, session: AsyncSession | None = None) -> bool:
        """Re-read the bank's limits if any changed; return whether they did. ``session``:
        read within a transaction already open (a step must not open a second one)."""
        if session is None:
            async with self.sessions() as own:
                return await self.refresh(own)
        stamp = await repository.bank_limits_stamp(session)
        if stamp == self._stamp and not self._stale:
            return False
        rows = await repository.bank_limits(session)
        self._bank = tuple(LimitDef.of(row) for row in rows)
        self.uses_segments = any(limit.level == "segment" for limit in self._bank)
        self._stamp, self._stale = stamp, False
        return True

    def invalidate(self) -> None:
        """Make the next transaction on this node re-read the bank's limits (one changed)."""
        self._stale = True

    async def _ensure_loaded(self, session: AsyncSession) -> None:
        if self._stale:
            await self.refresh(session)

    async def sync(self) -> None:
        """Pick up limit changes made through any node (a background loop, every
        ``sync_seconds``)."""
        if await self.refresh():
            log.info("limits_reloaded", limits=len(self._bank))

    async def purge(self, now: dt.datetime) -> int:
        """Delete the counters of periods already over (the database's: Redis' expire by
        themselves); return how many went."""
        if self.counters.outside:
            return 0
        async with self.sessions() as session, session.begin():
            return await repository.purge_expired(session, business_date(now, self.zone))

    async def _limits_for(self, session: AsyncSession, customer_id: str) -> list[LimitDef]:
        await self._ensure_loaded(session)
        own = await repository.customer_limits(session, customer_id) if customer_id else ()
        return [*self._bank, *(LimitDef.of(row) for row in own)]

    def quick_booking(self, facts: TxnFacts, now: dt.datetime) -> QuickBooking | None:
        """Return the bank's limits that apply and the charges on them when one statement
        can book them all (the common case); None when the whole way must be gone (no
        customer, a charge alone over its limit, or limits not loaded yet)."""
        if self._stale or not facts.customer_id:
            return None
        bank = applicable(self._bank, facts)
        charges, broken = charges_for(bank, facts, now, self.zone)
        if broken is not None or tightest(charges, {}) is not None:
            return None
        return QuickBooking(bank, charges)

    def booking_rider(self, facts: TxnFacts, now: dt.datetime) -> tuple[QuickBooking, Rider] | None:
        """Return the quick booking and the rider (kit.db.Rider) that makes it with another
        statement; None where the step must book itself (Redis counters, segments to look
        up, the whole way to go)."""
        if self.counters.outside or self.uses_segments:
            return None
        quick = self.quick_booking(facts, now)
        if quick is None:
            return None
        return quick, repository.booking_rider(quick.charges, facts.customer_id)

    async def reserve(
        self,
        session: AsyncSession,
        txn_id: uuid.UUID,
        facts: TxnFacts,
        now: dt.datetime,
        *,
        early: tuple[QuickBooking, Rider] | None = None,
    ) -> list[dict[str, Any]]:
        """Book the transaction on every limit that governs it, or refuse naming the tightest
        one it would break; return the charges booked, for ``release``. ``early``: the
        booking a rider already made (``booking_rider``).

        Raises:
            LimitExceeded, LimitCountExceeded: ``details`` name the limit and what remains.
        """
        found: tuple[set[tuple[str, str, str]], list[Any]] | None
        if early is not None:
            quick: QuickBooking | None = early[0]
            found = await repository.booked_by_rider(session, early[1])
        else:
            await self._ensure_loaded(session)
            quick = self.quick_booking(facts, now)
            found = (
                None
                if quick is None
                else await self.counters.book_reading_own(session, quick.charges, facts.customer_id)
            )
        if quick is not None and found is not None:
            booked, rows = found
            charges = quick.charges
            own = applicable([LimitDef.of(row) for row in rows], facts)
            if len(booked) == len(charges) and not own:
                return [charge.as_dict() for charge in charges]  # the common case: done
            # A limit refused, or the customer set limits of their own: give back what
            # was booked and go the whole way, the customer's limits already read.
            taken = [charge.as_dict() for charge in charges if charge.key in booked]
            await self.counters.release(session, txn_id, taken)
            return await self._reserve(session, txn_id, [*quick.bank, *own], facts, now)
        limits = applicable(await self._limits_for(session, facts.customer_id), facts)
        return await self._reserve(session, txn_id, limits, facts, now)

    async def _reserve(
        self,
        session: AsyncSession,
        txn_id: uuid.UUID,
        limits: Sequence[LimitDef],
        facts: TxnFacts,
        now: dt.datetime,
    ) -> list[dict[str, Any]]:
        charges, broken = charges_for(limits, facts, now, self.zone)
        if broken is not None:
            raise _refusal(None, broken, "amount", 0)
        alone = tightest(charges, {})  # a charge over its limit on an unused counter
        usage = None if alone is None else await self.counters.usage(session, _keys(charges))
        if usage is None:
            usage = await self.counters.reserve(session, txn_id, charges)
        if usage is not None:
            refused = tightest(charges, usage)
            if refused is not None:
                charge, how = refused
                raise _refusal(charge, charge.limit, how, usage.get(charge.key, (0, 0))[0])
            raise LimitExceeded("a limit would be exceeded")  # a concurrent booking won
        return [charge.as_dict() for charge in charges]

    async def release(
        self, session: AsyncSession, txn_id: uuid.UUID, charges: Sequence[Mapping[str, Any]]
    ) -> None:
        """Give back what ``reserve`` booked for a failed or reversed transaction."""
        await self.counters.release(session, txn_id, charges)

    async def customer_limits(
        self,
        session: AsyncSession,
        *,
        customer_id: str,
        segment: str | None,
        accounts: Sequence[str],
        cards: Sequence[str],
        now: dt.datetime,
    ) -> list[dict[str, Any]]:
        """Return every limit that applies to a customer, with what the current period used
        and what remains: the bank's, the customer's own, their accounts' and cards'."""
        mine = set(accounts) | set(cards)
        chosen: list[tuple[LimitDef, str]] = []
        targets = {"segment": segment, "customer": customer_id}
        for limit in await self._limits_for(session, customer_id):
            if limit.level in ("account", "card"):
                if limit.subject in mine:
                    chosen.append((limit, limit.subject))
            elif limit.level in ("global", "channel") or limit.subject == targets[limit.level]:
                chosen.append((limit, customer_id))
        keys = [
            (str(limit.id), subject, bucket_of(limit.period, now, self.zone)[0])
            for limit, subject in chosen
        ]
        usage = await self.counters.usage(session, [key for key in keys if key[2]])
        views = [
            limit_view(limit, usage.get(key, (0, 0)))
            for (limit, _), key in zip(chosen, keys, strict=True)
        ]
        views.sort(key=lambda v: (v["scope"], v["currency"], v["period"], v["channel"]))
        return views

    async def set_customer_limit(
        self,
        session: AsyncSession,
        *,
        customer_id: str,
        segment: str | None,
        scope: str,
        channel: str,
        period: str,
        amount: Money,
        now: dt.datetime,
        changed_by: str,
    ) -> dict[str, Any]:
        """Set a customer's own limit, at most the bank's ceiling for the same scope,
        channel, period and currency; return it as ``limit.list`` shows it.

        Raises:
            LimitAboveCeiling: ``details`` carry the ceiling.
            LimitUnknown: the scope is not a service group.
        """
        await self._ensure_loaded(session)
        if scope not in SERVICE_GROUPS:
            raise LimitUnknown(
                f"scope must be one of {', '.join(SERVICE_GROUPS)}", details={"field": "scope"}
            )
        facts = TxnFacts(
            groups=frozenset({scope}),
            channel=channel,
            currency=amount.currency,
            amount_minor=amount.minor,
            customer_id=customer_id,
            segment=segment,
        )
        # A limit on one channel is bounded by the bank's limits on that channel and on all;
        # one on all channels, by the bank's limits on all channels.
        bound = ceiling(self._bank, facts, period)
        if bound is not None and amount.minor > (bound.max_amount_minor or 0):
            shown = _decimal(bound.max_amount_minor or 0, amount.currency)
            raise LimitAboveCeiling(
                f"the bank's {period} limit is {shown} {amount.currency}",
                details={"ceiling": shown, "currency": amount.currency, "limit": str(bound.id)},
            )
        row = await repository.save_limit(
            session,
            {
                "id": new_id(),
                "owner": "customer",
                "level": "customer",
                "subject": customer_id,
                "service_group": scope,
                "channel": channel,
                "currency": amount.currency,
                "period": period,
                "max_amount_minor": amount.minor,
                "max_count": None,
                "status": "active",
                "version": 1,
                "changed_by": changed_by[:64],
                "created_at": now,
                "updated_at": now,
            },
        )
        limit = LimitDef.of(row)
        key = (str(limit.id), customer_id, bucket_of(period, now, self.zone)[0])
        used = (await self.counters.usage(session, [key])).get(key, (0, 0)) if key[2] else (0, 0)
        return limit_view(limit, used)


def _keys(charges: Sequence[Charge]) -> list[tuple[str, str, str]]:
    return [charge.key for charge in charges]


async def change_bank_limit(
    session: AsyncSession, change: LimitChangeBody, *, changed_by: str, now: dt.datetime
) -> dict[str, Any]:
    """Set or retire a bank limit (the four-eyes operation's effect); every node picks it
    up at its next sync. Return the limit as the staff API shows it.

    Raises:
        LimitUnknown: the change names no ceiling, or no subject where one is needed.
        InvalidAmount: the amount is not a decimal string in the currency.
    """
    # LimitChangeBody checked the amount, the subject and the channel.
    amount = change.amount_minor
    subject, channel = change.subject, change.channel
    if change.action == "retire":
        retired = await repository.retire_limit(
            session,
            {
                "owner": "bank",
                "level": change.level,
                "subject": subject,
                "service_group": change.scope,
                "channel": channel,
                "currency": change.currency,
                "period": change.period,
            },
            changed_by=changed_by[:64],
            now=now,
        )
        if retired is None:
            raise LimitUnknown("no such active bank limit")
        return limit_view(LimitDef.of(retired), (0, 0)) | {"status": retired.status}
    row = await repository.save_limit(
        session,
        {
            "id": new_id(),
            "owner": "bank",
            "level": change.level,
            "subject": subject,
            "service_group": change.scope,
            "channel": channel,
            "currency": change.currency,
            "period": change.period,
            "max_amount_minor": amount,
            "max_count": change.count,
            "status": "active",
            "version": 1,
            "changed_by": changed_by[:64],
            "created_at": now,
            "updated_at": now,
        },
    )
    return limit_view(LimitDef.of(row), (0, 0)) | {"status": row.status}


async def bank_limits(
    session: AsyncSession, *, include_retired: bool = False
) -> list[dict[str, Any]]:
    """Return the bank's limits as the staff API shows them."""
    rows = await repository.all_bank_limits(session, include_retired=include_retired)
    return [
        limit_view(LimitDef.of(row), (0, 0))
        | {
            "status": row.status,
            "subject": row.subject,
            "version": row.version,
            "changed_by": row.changed_by,
        }
        for row in rows
    ]


async def _prepare_change(session: AsyncSession, payload: Mapping[str, Any]) -> dict[str, Any]:
    try:
        change = LimitChangeBody.model_validate(dict(payload))
    except ValidationError as error:
        raise LimitUnknown(f"the change is not valid: {error.errors()[0]['msg']}") from None
    return change.model_dump()


async def _execute_change(
    center: Any, session: AsyncSession, payload: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    fields = {k: v for k, v in payload.items() if k in LimitChangeBody.model_fields}
    by = f"{payload.get('requested_by', '')}+{payload.get('approved_by', '')}"
    return {
        "limit": await change_bank_limit(
            session, LimitChangeBody.model_validate(fields), changed_by=by, now=now
        )
    }


approvals.register(
    "limit.change",
    approvals.Operation(
        request_permission="limit.change",
        approve_permission="approval.limit_change",
        prepare=_prepare_change,
        execute=_execute_change,
    ),
)
