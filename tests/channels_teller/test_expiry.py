"""An approval nobody decided by the end of its business day expires: the held money is
released and the limits given back, as a supervisor's rejection would, once, whichever node
sweeps it."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from channelhub.kernel.model import TxnStatus
from channelhub.runtime import Runtime
from tests.channels_teller.conftest import Desk, alice, desk_token
from tests.support.clock import at_bank_time

pytestmark = pytest.mark.asyncio


async def test_an_undecided_approval_expires_and_releases_the_money(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")
    account = desk.accounts["alice.CNY"]
    status, body = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "10000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (200, "OK"), body
    before, _ = await desk.balance(account)
    status, held = await desk.call(
        teller,
        "cash.withdraw",
        {"account": account, "amount": "50000.01", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, held["code"]) == (202, "APPROVAL_REQUIRED"), held
    assert await desk.balance(account) == (before, 5_000_001)

    runtime = Runtime.build(desk.node.settings)
    try:
        teller_desk, kernel = runtime.engine.services["teller"], runtime.engine
        # Still its business day (by the serving node's clock, which parked it): nothing
        # expires.
        now = desk.now()
        assert await teller_desk.expire_overdue(kernel, now=now) == 0
        # Two days on, the sweep (any node's) expires it, once.
        later = now + dt.timedelta(days=2)
        assert await teller_desk.expire_overdue(kernel, now=later) == 1
        assert await teller_desk.expire_overdue(kernel, now=later) == 0
    finally:
        await runtime.close()

    assert await desk.balance(account) == (before, 0)
    txn = uuid.UUID(held["txn_id"])
    rows = await desk.sql("SELECT status FROM transactions WHERE id = :t", t=txn)
    assert [row[0] for row in rows] == [TxnStatus.FAILED.value]
    rows = await desk.sql("SELECT status FROM approvals WHERE id = :t", t=txn)
    assert [row[0] for row in rows] == ["expired"]
    # A supervisor can no longer approve it.
    supervisor = await desk_token(desk.http, desk.node, "super1")
    status, refused = await desk.raw(
        f"/teller/v1/approvals/{txn}/approve", {}, {"Authorization": f"Bearer {supervisor}"}
    )
    assert (status, refused["code"]) == (409, "APPROVAL_NOT_PENDING"), refused
    assert await desk.ledger_problems() == []


async def test_an_approval_expires_by_the_banks_clock_not_the_wall_clock(desk: Desk) -> None:
    """The desk parks and decides by one clock, the engine's: on a node whose clock reads
    yesterday afternoon (the wall clock being past yesterday's end), a supervisor still
    approves within the approval's business day."""
    assert desk.node.runtime is not None
    at_bank_time(desk.node.runtime, 14, days=-1)
    teller = await desk_token(desk.http, desk.node, "teller1")
    supervisor = await desk_token(desk.http, desk.node, "super1")
    account = desk.accounts["alice.CNY"]
    status, held = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "60000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, held["code"]) == (202, "APPROVAL_REQUIRED"), held
    status, decided = await desk.raw(
        f"/teller/v1/approvals/{held['txn_id']}/approve",
        {},
        {"Authorization": f"Bearer {supervisor}"},
    )
    assert status == 200, decided
    assert decided["approval"]["transaction"]["status"] == "succeeded"
    assert await desk.ledger_problems() == []
