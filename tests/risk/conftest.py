"""A demo bank whose risk engine runs the default rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.risk import repository
from channelhub.risk.defaults import install_defaults
from channelhub.risk.service import normalize_name
from channelhub.runtime import Runtime
from tests.support.bank import Bank, open_bank
from tests.support.clock import at_bank_time


@pytest.fixture
async def bank(runtime: Runtime) -> Bank:
    """The demo bank with the default rule set, at 14:00 bank time (not night)."""
    return await open_guarded_bank(runtime)


async def open_guarded_bank(runtime: Runtime) -> Bank:
    """Open the demo bank on ``runtime``, install the default rules, set 14:00 bank time."""
    opened = await open_bank(runtime)
    async with runtime.sessions() as session, session.begin():
        await install_defaults(session, by="test", now=utc_now())
    runtime.risk.invalidate()
    at_bank_time(runtime, 14)
    return opened


async def decisions(bank: Bank, txn_id: uuid.UUID) -> list[Any]:
    """A transaction's risk decisions, oldest first."""
    async with bank.runtime.sessions() as session:
        return list(await repository.decisions_of(session, txn_id))


async def add_to_list(runtime: Runtime, list_name: str, kind: str, value: str) -> None:
    """Put a value on a list (what an approved four-eyes change does)."""
    if kind == "beneficiary_name":
        value = normalize_name(value)
    async with runtime.sessions() as session, session.begin():
        await repository.add_list_entry(
            session,
            {
                "id": new_id(),
                "list_name": list_name,
                "kind": kind,
                "value": value,
                "reason": "test",
                "requested_by": "test",
                "approved_by": "test",
                "created_at": utc_now(),
            },
        )
    runtime.risk.invalidate()
