"""Bank limits over a real socket: a change asked by one staff member applies only when a
second one approves it, on every node, without a restart; and then governs transfers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from channelhub.runtime import Runtime
from tests.security.conftest import SecureNode, mfa_login, secure_node
from tests.security.test_staff import staff_token

__all__ = ["secure_node"]  # the fixture, imported for this module

pytestmark = pytest.mark.asyncio

_CHANGE = {
    "level": "channel",
    "channel": "mobile",
    "scope": "transfer.outgoing",
    "currency": "CNY",
    "period": "daily",
    "amount": "25.00",
}


async def _call(
    http: aiohttp.ClientSession,
    node: SecureNode,
    method: str,
    path: str,
    token: str,
    body: object = None,
) -> tuple[int, dict[str, object]]:
    async with http.request(
        method, node.url(path), json=body, headers={"Authorization": f"Bearer {token}"}
    ) as answer:
        return answer.status, await answer.json()


async def test_a_bank_limit_change_needs_a_second_staff_member(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    operator = await staff_token(http, secure_node, "operator1")
    supervisor = await staff_token(http, secure_node, "super1")
    teller = await staff_token(http, secure_node, "teller1")

    # A teller may not ask for it; bad bodies are refused and ask nothing.
    status, body = await _call(http, secure_node, "POST", "/staff/v1/limits", teller, _CHANGE)
    assert (status, body["code"]) == (403, "FORBIDDEN")
    for bad in (
        {**_CHANGE, "amount": "-5"},
        {**_CHANGE, "amount": "1.234"},
        {**_CHANGE, "level": "planet"},
        {**_CHANGE, "currency": "XXXX"},
        {**_CHANGE, "extra": 1},
        "not an object",
    ):
        status, body = await _call(http, secure_node, "POST", "/staff/v1/limits", operator, bad)
        assert status == 400, (bad, body)

    status, body = await _call(http, secure_node, "POST", "/staff/v1/limits", operator, _CHANGE)
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED")
    approval = body["approval"]
    assert isinstance(approval, dict)
    # Nothing applies yet.
    status, listed = await _call(http, secure_node, "GET", "/staff/v1/limits", supervisor)
    assert (status, listed["limits"]) == (200, [])

    approve = f"/staff/v1/approvals/{approval['id']}/approve"
    status, body = await _call(http, secure_node, "POST", approve, operator, {})
    assert (status, body["code"]) == (403, "SAME_APPROVER")
    status, body = await _call(http, secure_node, "POST", approve, supervisor, {})
    assert status == 200, body
    status, listed = await _call(http, secure_node, "GET", "/staff/v1/limits", operator)
    limits = listed["limits"]
    assert isinstance(limits, list)
    assert len(limits) == 1
    assert (limits[0]["limit"], limits[0]["changed_by"]) == ("25.00", "operator1+super1")

    # The serving node picks it up within its sync interval: a transfer over it is refused.
    tokens = await mfa_login(http, secure_node, "alice", "alice-tablet")
    transfer = {
        "from_account": secure_node.accounts["alice.CNY"],
        "to_account": secure_node.accounts["bob.CNY"],
        "amount": "30.00",
        "currency": "CNY",
    }
    code = ""
    for attempt in range(40):
        async with http.post(
            secure_node.url("/api/v1/services/transfer.internal"),
            json=transfer,
            headers={
                "Authorization": f"Bearer {tokens['access_token']}",
                "Idempotency-Key": f"limit-{attempt}",
            },
        ) as answer:
            code = (await answer.json())["code"]
        if code == "LIMIT_EXCEEDED":
            break
        await asyncio.sleep(0.25)
    assert code == "LIMIT_EXCEEDED"

    # Another node sees it too, without a restart.
    other = Runtime.build(secure_node.settings)
    try:
        await other.start()
        assert [limit.max_amount_minor for limit in other.limits.bank_limits] == [2500]
    finally:
        await other.close()


async def test_malformed_limit_changes_are_refused_and_ask_nothing(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    operator = await staff_token(http, secure_node, "operator1")
    supervisor = await staff_token(http, secure_node, "super1")
    malformed: list[object] = [
        [],
        {**_CHANGE, "level": "planet"},
        {**_CHANGE, "amount": "-1.00"},
        {**_CHANGE, "amount": "1.001"},  # CNY has two decimals
        {**_CHANGE, "amount": 25.5},  # a float, not a decimal string
        {**_CHANGE, "amount": "1e3"},
        {**_CHANGE, "amount": "9" * 25},
        {**_CHANGE, "currency": "cny"},
        {**_CHANGE, "channel": "all"},  # a channel limit names its channel
        {**_CHANGE, "level": "customer"},  # ... and a customer limit its customer
        {**_CHANGE, "subject": "x" * 65, "level": "account"},
        {**_CHANGE, "period": "transaction", "count": 3},
        {**_CHANGE, "amount": None},
        {**_CHANGE, "scope": "Transfer; DROP TABLE limit_definitions"},
        {**_CHANGE, "approved_by": "me"},
    ]
    for body in malformed:
        status, answer = await _call(http, secure_node, "POST", "/staff/v1/limits", operator, body)
        assert (status, answer["code"]) == (400, "VALIDATION_FAILED"), body
    async with http.post(
        secure_node.url("/staff/v1/limits"),
        data=b'{"level": ' + b" " * 5000 + b'"global"}',
        headers={"Authorization": f"Bearer {operator}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    status, pending = await _call(http, secure_node, "GET", "/staff/v1/approvals", supervisor)
    assert status == 200
    approvals = pending["approvals"]
    assert isinstance(approvals, list)
    assert [a for a in approvals if a["operation"] == "limit.change"] == []
