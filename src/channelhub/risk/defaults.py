"""The default rule set, one a bank's fraud team would recognise; the demo installs it and
``channelhub risk rules install-defaults`` installs it anywhere."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.risk import repository
from channelhub.risk.schemas import RuleBody
from channelhub.risk.service import save_rule

__all__ = ["DEFAULT_RULES", "install_defaults"]

#: Amounts are integers in minor units (2,000.00 CNY is 200000): CEL compares them exactly.
DEFAULT_RULES = (
    RuleBody(
        name="large_amount_new_beneficiary",
        description="A large transfer to a beneficiary the customer never paid before:"
        " confirm with a one-time code.",
        expression='features.new_beneficiary && (txn.currency == "CNY" && txn.amount >= 200000'
        ' || txn.currency == "USD" && txn.amount >= 30000)',
        outcome="challenge",
        score=40,
        mode="active",
    ),
    RuleBody(
        name="burst_of_transfers",
        description="More than 5 transfers by one customer within 5 minutes: hold for review.",
        expression="features.customer_count_5m >= 5",
        outcome="review",
        score=60,
        mode="active",
    ),
    RuleBody(
        name="night_new_device",
        description="A transfer between 23:00 and 06:00 (bank time) from a device the customer"
        " never used for one: confirm with a one-time code.",
        expression="(txn.hour >= 23 || txn.hour < 6) && features.new_device",
        outcome="challenge",
        score=30,
        mode="active",
    ),
    RuleBody(
        name="deny_list",
        description="An account, device, address or beneficiary name on the deny list.",
        expression="lists.deny",
        outcome="deny",
        score=100,
        mode="active",
    ),
    RuleBody(
        name="watch_list",
        description="A party on the watch list: allowed, scored and recorded for the analysts.",
        expression="lists.watch",
        outcome="allow",
        score=20,
        mode="active",
    ),
)


async def install_defaults(
    session: AsyncSession, *, by: str, now: dt.datetime, error_outcome: str = "review"
) -> list[str]:
    """Add each default rule whose name is not there yet; return the names added."""
    present = {row.name for row in await repository.rules(session, include_retired=True)}
    added = []
    for rule in DEFAULT_RULES:
        if rule.name not in present:
            await save_rule(session, rule, by=by, now=now, error_outcome=error_outcome)
            added.append(rule.name)
    return added
