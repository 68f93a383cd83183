"""The demo bank's limits and risk rules: what a bank would start from. Installed after the
demo's own transactions, so that those are not held by the velocity rule; a second run adds
nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.limits.schemas import LimitChangeBody
from channelhub.limits.service import bank_limits, change_bank_limit
from channelhub.risk.defaults import install_defaults

__all__ = ["DEMO_LIMITS", "seed_controls"]

DEMO_LIMITS = (
    LimitChangeBody(
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="transaction",
        amount="50000.00",
    ),
    LimitChangeBody(
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="200000.00",
        count=50,
    ),
    LimitChangeBody(
        level="channel",
        channel="mobile",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="100000.00",
    ),
    LimitChangeBody(
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="monthly",
        amount="1000000.00",
    ),
    LimitChangeBody(
        level="global",
        scope="transfer.outgoing",
        currency="USD",
        period="transaction",
        amount="10000.00",
    ),
    LimitChangeBody(
        level="global",
        scope="transfer.outgoing",
        currency="USD",
        period="daily",
        amount="30000.00",
    ),
)


async def seed_controls(sessions: async_sessionmaker[AsyncSession], *, now: dt.datetime) -> None:
    """Set the demo's bank limits (those not set yet) and install the default rules."""
    async with sessions() as session, session.begin():
        present = {
            (view["level"], view["channel"], view["currency"], view["period"])
            for view in await bank_limits(session, include_retired=True)
        }
        for change in DEMO_LIMITS:
            if (change.level, change.channel, change.currency, change.period) not in present:
                await change_bank_limit(session, change, changed_by="demo", now=now)
        await install_defaults(session, by="demo", now=now)
