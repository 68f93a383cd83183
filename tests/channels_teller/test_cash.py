"""The teller desk over a real socket: cash deposit and withdrawal move the branch's cash
account; over the teller's authority, a supervisor of the branch approves (four-eyes) or
rejects, both identities recorded; the day's cash position."""

from __future__ import annotations

import uuid

import pytest

from tests.channels_teller.conftest import ALICE_CARD, Desk, alice, desk_token

pytestmark = pytest.mark.asyncio


async def test_cash_deposit_and_withdrawal_move_the_branch_cash_account(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")  # branch 0101
    account = desk.accounts["alice.CNY"]
    cash_before, (balance_before, _) = await desk.cash("0101"), await desk.balance(account)

    status, body = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "1000.00", "currency": "CNY", "memo": "Salary in cash"},
        customer=alice(),
        key="deposit-1",
    )
    assert (status, body["code"], body["status"]) == (200, "OK", "succeeded"), body
    assert body["data"]["available_balance"] == "51000.00"
    assert body["data"]["branch"] == "0101"
    assert await desk.cash("0101") == cash_before - 100_000  # the drawer's cash, a debit
    # A retry is answered, not executed again.
    again_status, again = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "1000.00", "currency": "CNY", "memo": "Salary in cash"},
        customer=alice(),
        key="deposit-1",
    )
    assert (again_status, again["txn_id"]) == (200, body["txn_id"])
    assert await desk.balance(account) == (balance_before + 100_000, 0)

    # Card and PIN identify her too; the cash goes out of branch 0101's drawer.
    status, body = await desk.call(
        teller,
        "cash.withdraw",
        {"account": account, "amount": "300.00", "currency": "CNY"},
        customer={"card": ALICE_CARD, "pin": "1234"},
    )
    assert (status, body["code"]) == (200, "OK"), body
    assert body["data"]["available_balance"] == "50700.00"
    assert await desk.cash("0101") == cash_before - 70_000
    assert await desk.balance(account) == (balance_before + 70_000, 0)
    assert await desk.ledger_problems() == []

    status, body = await desk.call(teller, "teller.cash.position", {}, key=None)
    assert status == 200, body
    assert body["data"]["teller"] == "teller1"
    assert body["data"]["date"] == desk.today()
    assert body["data"]["positions"] == [
        {
            "currency": "CNY",
            "deposits": 1,
            "cash_in": "1000.00",
            "withdrawals": 1,
            "cash_out": "300.00",
            "net": "700.00",
        }
    ]
    # Another teller's drawer saw none of it.
    other = await desk_token(desk.http, desk.node, "teller2")
    status, body = await desk.call(other, "teller.cash.position", {}, key=None)
    assert (status, body["data"]["positions"]) == (200, [])


async def test_over_authority_needs_a_supervisor(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")
    supervisor = await desk_token(desk.http, desk.node, "super1")
    auditor = await desk_token(desk.http, desk.node, "auditor1", channel="console")
    account = desk.accounts["alice.CNY"]
    cash_before, (balance_before, _) = await desk.cash("0101"), await desk.balance(account)

    # 60,000.00 is over a teller's CNY authority (50,000.00): it waits, nothing moves.
    status, body = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "60000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"], body["status"]) == (202, "APPROVAL_REQUIRED", "in_review"), body
    txn = body["txn_id"]
    assert body["data"]["approval"] == txn
    assert body["data"]["authority"] == "50000.00"
    assert await desk.cash("0101") == cash_before
    assert await desk.balance(account) == (balance_before, 0)

    # The queue shows it to a supervisor of the branch only.
    status, queue = await desk.get("/teller/v1/approvals", supervisor)
    assert status == 200, queue
    assert [(a["txn_id"], a["requested_by"], a["amount"]) for a in queue["approvals"]] == [
        (txn, "teller1", "60000.00")
    ]
    status, refused = await desk.get("/teller/v1/approvals", teller)
    assert (status, refused["code"]) == (403, "FORBIDDEN")

    # Four eyes: not the teller who asked, not an auditor.
    path = f"/teller/v1/approvals/{txn}"
    bearer = {"Authorization": f"Bearer {teller}"}
    status, refused = await desk.raw(f"{path}/approve", {}, bearer)
    assert (status, refused["code"]) == (403, "SAME_APPROVER")
    status, refused = await desk.raw(f"{path}/approve", {}, {"Authorization": f"Bearer {auditor}"})
    assert (status, refused["code"]) == (403, "FORBIDDEN")
    assert await desk.balance(account) == (balance_before, 0)

    status, decided = await desk.raw(
        f"{path}/approve",
        {"reason": "cash counted twice"},
        {"Authorization": f"Bearer {supervisor}"},
    )
    assert status == 200, decided
    approval = decided["approval"]
    assert (approval["status"], approval["requested_by"], approval["decided_by"]) == (
        "approved",
        "teller1",
        "super1",
    )
    assert approval["transaction"]["status"] == "succeeded"
    assert approval["transaction"]["data"]["available_balance"] == "110000.00"
    assert await desk.balance(account) == (balance_before + 6_000_000, 0)
    assert await desk.cash("0101") == cash_before - 6_000_000
    # Decided once only.
    status, refused = await desk.raw(
        f"{path}/approve", {}, {"Authorization": f"Bearer {supervisor}"}
    )
    assert (status, refused["code"]) == (409, "APPROVAL_NOT_PENDING")
    # The journal tells the final outcome; the audit log both identities.
    rows = await desk.sql("SELECT status, code FROM transactions WHERE id = :t", t=uuid.UUID(txn))
    assert [tuple(row) for row in rows] == [("succeeded", "OK")]
    audit = await desk.sql(
        "SELECT action, outcome, actor_id FROM audit_log WHERE action LIKE 'teller.%' ORDER BY seq"
    )
    assert [tuple(row) for row in audit] == [
        ("teller.approval.request", "pending", "teller1"),
        ("teller.approval.decide", "same_approver", "teller1"),
        ("teller.approval.decide", "approved", "super1"),
    ]

    # A withdrawal over authority holds the money until a supervisor decides; rejected, the
    # hold is released and nothing moved.
    status, body = await desk.call(
        teller,
        "cash.withdraw",
        {"account": account, "amount": "100000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED"), body
    held_txn = body["txn_id"]
    assert await desk.balance(account) == (balance_before + 6_000_000, 10_000_000)
    status, decided = await desk.raw(
        f"/teller/v1/approvals/{held_txn}/reject", {}, {"Authorization": f"Bearer {supervisor}"}
    )
    assert status == 200, decided
    assert decided["approval"]["status"] == "rejected"
    assert decided["approval"]["transaction"]["code"] == "REVIEW_REJECTED"
    assert await desk.balance(account) == (balance_before + 6_000_000, 0)
    assert await desk.cash("0101") == cash_before - 6_000_000
    assert await desk.ledger_problems() == []

    # The position counts what completed: the approved deposit, not the rejected withdrawal.
    status, body = await desk.call(teller, "teller.cash.position", {}, key=None)
    assert status == 200, body
    assert body["data"]["positions"] == [
        {
            "currency": "CNY",
            "deposits": 1,
            "cash_in": "60000.00",
            "withdrawals": 0,
            "cash_out": "0.00",
            "net": "60000.00",
        }
    ]


async def test_a_supervisor_at_the_desk_and_amounts_within_authority_need_nobody(
    desk: Desk,
) -> None:
    supervisor = await desk_token(desk.http, desk.node, "super1")
    teller = await desk_token(desk.http, desk.node, "teller1")
    account = desk.accounts["alice.CNY"]
    status, body = await desk.call(
        supervisor,
        "cash.deposit",
        {"account": account, "amount": "60000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (200, "OK"), body
    status, body = await desk.call(
        teller,
        "cash.withdraw",
        {"account": account, "amount": "50000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (200, "OK"), body
    # A transfer on the customer's behalf, over the authority, waits too.
    status, body = await desk.call(
        teller,
        "transfer.internal",
        {
            "from_account": account,
            "to_account": desk.accounts["bob.CNY"],
            "amount": "100.00",
            "currency": "CNY",
        },
        customer=alice(),
    )
    assert (status, body["code"]) == (200, "OK"), body
    status, body = await desk.call(
        teller,
        "transfer.internal",
        {
            "from_account": account,
            "to_account": desk.accounts["bob.CNY"],
            "amount": "50000.01",
            "currency": "CNY",
        },
        customer=alice(),
    )
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED"), body


async def test_the_generic_staff_approval_routes_leave_a_desk_approval_alone(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")
    supervisor = await desk_token(desk.http, desk.node, "super1")
    account = desk.accounts["alice.CNY"]
    before = await desk.balance(account)
    status, body = await desk.call(
        teller,
        "cash.deposit",
        {"account": account, "amount": "50000.01", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED"), body
    bearer = {"Authorization": f"Bearer {supervisor}"}
    for decision in ("approve", "reject"):
        status, refused = await desk.raw(
            f"/staff/v1/approvals/{body['txn_id']}/{decision}", {}, bearer
        )
        assert (status, refused["code"]) == (403, "FORBIDDEN"), refused
    # Still waiting, nothing moved, for the desk's supervisor.
    assert await desk.balance(account) == before
    status, queue = await desk.get("/teller/v1/approvals", supervisor)
    assert [a["txn_id"] for a in queue["approvals"]] == [body["txn_id"]]
