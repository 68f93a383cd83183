"""A teller's withdrawal that is both over the teller's authority and flagged by a risk rule
for review waits at two gates: it completes only once the risk reviewer and the branch
supervisor have both approved, in either order; either one's rejection undoes it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.channels_teller.conftest import Desk, alice, desk_token

pytestmark = pytest.mark.asyncio


async def _flagged_withdrawal(desk: Desk) -> tuple[dict[str, Any], dict[str, str], int]:
    """Switch on a review rule for large cash, and have teller1 pay out 60,000.00 to alice."""
    operator = await desk_token(desk.http, desk.node, "operator1", channel="console")
    rule = {
        "name": "large_cash_review",
        "expression": "txn.amount >= 5000000",
        "outcome": "review",
        "score": 50,
        "mode": "active",
    }
    status, body = await desk.raw(
        "/staff/v1/risk/rules", rule, {"Authorization": f"Bearer {operator}"}
    )
    assert status == 201, body
    teller = await desk_token(desk.http, desk.node, "teller1")
    account = desk.accounts["alice.CNY"]
    # Within the teller's authority and under the rule: no gate.
    status, body = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "40000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (200, "OK"), body
    before, _ = await desk.balance(account)
    status, body = await desk.call(
        teller,
        "cash.withdraw",
        {"account": account, "amount": "60000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (202, "REVIEW_PENDING"), body
    # One supervisor holds both roles here (risk reviewer, branch approver): what matters is
    # that each gate is passed on its own. (One login: a TOTP code is good for one use.)
    supervisor = await desk_token(desk.http, desk.node, "super1", channel="console")
    bearers = {"reviewer": supervisor, "supervisor": supervisor}
    return body, bearers, before


async def _decide(desk: Desk, path: str, token: str) -> dict[str, Any]:
    status, body = await desk.raw(path, {"reason": "checked"}, {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    return body


async def test_both_gates_must_open_in_either_order(desk: Desk) -> None:
    held, bearers, before = await _flagged_withdrawal(desk)
    account, txn = desk.accounts["alice.CNY"], held["txn_id"]
    review = f"/staff/v1/risk/reviews/{held['data']['review']}/approve"
    approval = f"/teller/v1/approvals/{txn}/approve"

    # The reviewer approves: the money stays held, the supervisor's approval still waits.
    decided = (await _decide(desk, review, bearers["reviewer"]))["review"]
    assert decided["status"] == "approved"
    assert decided["transaction"]["status"] == "in_review"
    assert decided["transaction"]["code"] == "APPROVAL_REQUIRED"
    assert await desk.balance(account) == (before, 6_000_000)
    rows = await desk.sql("SELECT status FROM transactions WHERE id = :t", t=uuid.UUID(txn))
    assert [row[0] for row in rows] == ["in_review"]

    # The supervisor approves: now it completes, once.
    decided = (await _decide(desk, approval, bearers["supervisor"]))["approval"]
    assert (decided["transaction"]["status"], decided["transaction"]["code"]) == (
        "succeeded",
        "OK",
    )
    assert await desk.balance(account) == (before - 6_000_000, 0)
    assert await desk.ledger_problems() == []


async def test_a_rejection_at_either_gate_undoes_it(desk: Desk) -> None:
    held, bearers, before = await _flagged_withdrawal(desk)
    account, txn = desk.accounts["alice.CNY"], held["txn_id"]
    # The supervisor approves first; the reviewer then rejects: nothing moves.
    await _decide(desk, f"/teller/v1/approvals/{txn}/approve", bearers["supervisor"])
    assert await desk.balance(account) == (before, 6_000_000)
    rejected = f"/staff/v1/risk/reviews/{held['data']['review']}/reject"
    decided = (await _decide(desk, rejected, bearers["reviewer"]))["review"]
    assert decided["transaction"]["status"] == "failed"
    assert await desk.balance(account) == (before, 0)
    assert await desk.ledger_problems() == []
