"""The risk engine over a real socket, as the bank's staff and a customer use it: rules saved
(or refused with their position) and switched on; a deny-list entry through four-eyes; the
review queue approving a held transfer; the decision record telling why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from channelhub.demo.identities import seed_identities, seed_partner
from channelhub.kit.clock import utc_now
from channelhub.risk.defaults import install_defaults
from channelhub.runtime import Runtime
from tests.conftest import serving
from tests.security.conftest import SecureNode, mfa_login, secure_settings
from tests.security.test_staff import staff_token
from tests.support.bank import open_bank
from tests.support.clock import at_bank_time

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def risk_node(database_url: str, tmp_path: Path) -> AsyncIterator[SecureNode]:
    """The demo bank with its identities and the default rules, served over HTTP."""
    settings = secure_settings(database_url, tmp_path)
    settings = settings.model_copy(
        update={"risk": settings.risk.model_copy(update={"sync_seconds": 0.2})}
    )
    runtime = Runtime.build(settings)
    try:
        bank = await open_bank(runtime)
        await seed_identities(runtime.sessions, runtime.security, now=utc_now())
        await runtime.security.start()
        await seed_partner(runtime.sessions, runtime.security, now=utc_now())
        async with runtime.sessions() as session, session.begin():
            await install_defaults(session, by="test", now=utc_now())
    finally:
        await runtime.close()
    node = serving(settings)
    async with node as base:
        # The default rules read the bank's clock (one fires at night on a new device): the
        # node's engine reads 14:30 in Shanghai, whenever the tests run.
        app: Any = node.server.config.app
        at_bank_time(app.state.runtime, 14)
        yield SecureNode(base, settings, dict(bank.accounts))


async def _call(
    http: aiohttp.ClientSession,
    node: SecureNode,
    method: str,
    path: str,
    token: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with http.request(
        method,
        node.url(path),
        json=body,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    ) as answer:
        return answer.status, await answer.json()


async def test_rules_are_checked_when_saved_and_switched_on(
    risk_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    operator = await staff_token(http, risk_node, "operator1")
    auditor = await staff_token(http, risk_node, "auditor1")
    rule = {"name": "big_at_night", "expression": "txn.amount > 100 &&", "outcome": "review"}

    status, body = await _call(http, risk_node, "POST", "/staff/v1/risk/rules", operator, rule)
    assert (status, body["code"]) == (400, "RULE_INVALID")
    assert (body["details"]["line"], body["details"]["column"]) == (1, 20)
    status, body = await _call(
        http,
        risk_node,
        "POST",
        "/staff/v1/risk/rules",
        operator,
        {**rule, "expression": "txn.amout > 100"},
    )
    assert (status, body["code"]) == (400, "RULE_INVALID")
    assert "amout" in body["details"]["reason"]
    status, body = await _call(http, risk_node, "POST", "/staff/v1/risk/rules", auditor, rule)
    assert (status, body["code"]) == (403, "FORBIDDEN")

    good = {**rule, "expression": "txn.amount > 100 && txn.hour < 6"}
    status, body = await _call(http, risk_node, "POST", "/staff/v1/risk/rules", operator, good)
    assert status == 201, body
    assert (body["rule"]["version"], body["rule"]["mode"]) == (1, "shadow")
    status, body = await _call(
        http,
        risk_node,
        "POST",
        "/staff/v1/risk/rules/big_at_night/1/mode",
        operator,
        {"mode": "active"},
    )
    assert (status, body["rule"]["mode"]) == (200, "active")
    status, body = await _call(http, risk_node, "GET", "/staff/v1/risk/rules", auditor)
    assert status == 200
    assert {(r["name"], r["mode"]) for r in body["rules"]} >= {("big_at_night", "active")}


async def test_a_deny_list_entry_needs_four_eyes_then_denies(
    risk_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    operator = await staff_token(http, risk_node, "operator1")
    supervisor = await staff_token(http, risk_node, "super1")
    bob = risk_node.accounts["bob.CNY"]
    change = {"list": "deny", "kind": "account", "value": bob, "reason": "mule account"}
    for bad in ({**change, "list": "grey"}, {**change, "kind": "planet"}, {**change, "value": ""}):
        status, body = await _call(http, risk_node, "POST", "/staff/v1/risk/lists", operator, bad)
        assert status == 400, (bad, body)
    status, body = await _call(http, risk_node, "POST", "/staff/v1/risk/lists", operator, change)
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED")
    approve = f"/staff/v1/approvals/{body['approval']['id']}/approve"
    status, body = await _call(http, risk_node, "POST", approve, operator, {})
    assert (status, body["code"]) == (403, "SAME_APPROVER")
    status, body = await _call(http, risk_node, "POST", approve, supervisor, {})
    assert status == 200, body
    status, body = await _call(http, risk_node, "GET", "/staff/v1/risk/lists", supervisor)
    assert [(e["value"], e["requested_by"], e["approved_by"]) for e in body["entries"]] == [
        (bob, "operator1", "super1")
    ]

    tokens = await mfa_login(http, risk_node, "alice", "alice-tablet")
    transfer = {
        "from_account": risk_node.accounts["alice.CNY"],
        "to_account": bob,
        "amount": "5.00",
        "currency": "CNY",
    }
    code = ""
    for attempt in range(40):  # the serving node syncs its lists every 0.2 s
        status, body = await _call(
            http,
            risk_node,
            "POST",
            "/api/v1/services/transfer.internal",
            str(tokens["access_token"]),
            transfer,
            {"Idempotency-Key": f"deny-{attempt}"},
        )
        code = body["code"]
        if code == "RISK_DENIED":
            break
        await asyncio.sleep(0.1)
    assert (status, code) == (422, "RISK_DENIED")
    status, why = await _call(
        http,
        risk_node,
        "GET",
        f"/staff/v1/risk/transactions/{body['txn_id']}/decisions",
        supervisor,
    )
    assert status == 200
    assert [f["rule"] for f in why["decisions"][-1]["fired"]] == ["deny_list"]


async def test_the_review_queue_approves_a_held_transfer(
    risk_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    tokens = await mfa_login(http, risk_node, "alice", "alice-tablet")
    token = str(tokens["access_token"])
    transfer = {
        "from_account": risk_node.accounts["alice.CNY"],
        "to_account": risk_node.accounts["bob.CNY"],
        "amount": "3.00",
        "currency": "CNY",
    }
    for n in range(5):
        status, body = await _call(
            http,
            risk_node,
            "POST",
            "/api/v1/services/transfer.internal",
            token,
            transfer,
            {"Idempotency-Key": f"burst-{n}"},
        )
        assert status == 200, body
    held_key = {"Idempotency-Key": "burst-5"}
    status, held = await _call(
        http, risk_node, "POST", "/api/v1/services/transfer.internal", token, transfer, held_key
    )
    assert (status, held["status"], held["code"]) == (202, "in_review", "REVIEW_PENDING")
    # A retry while in review answers the same, at once.
    status, again = await _call(
        http, risk_node, "POST", "/api/v1/services/transfer.internal", token, transfer, held_key
    )
    assert (status, again["txn_id"], again["status"]) == (202, held["txn_id"], "in_review")

    teller = await staff_token(http, risk_node, "teller1")
    supervisor = await staff_token(http, risk_node, "super1")
    status, body = await _call(http, risk_node, "GET", "/staff/v1/risk/reviews", teller)
    assert (status, body["code"]) == (403, "FORBIDDEN")
    status, body = await _call(http, risk_node, "GET", "/staff/v1/risk/reviews", supervisor)
    assert status == 200
    (review,) = body["reviews"]
    assert (review["txn_id"], review["amount"], review["status"]) == (
        held["txn_id"],
        "3.00",
        "pending",
    )
    assert [f["rule"] for f in review["why"]["fired"]] == ["burst_of_transfers"]
    assert review["why"]["features"]["customer_count_5m"] == 5

    path = f"/staff/v1/risk/reviews/{review['id']}/approve"
    status, body = await _call(http, risk_node, "POST", path, teller, {})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    status, body = await _call(http, risk_node, "POST", path, supervisor, {"reason": "called her"})
    assert status == 200, body
    assert body["review"]["status"] == "approved"
    assert (body["review"]["transaction"]["status"], body["review"]["transaction"]["code"]) == (
        "succeeded",
        "OK",
    )
    status, body = await _call(http, risk_node, "POST", path, supervisor, {})
    assert (status, body["code"]) == (409, "REVIEW_NOT_PENDING")
    status, body = await _call(
        http, risk_node, "POST", "/staff/v1/risk/reviews/not-a-uuid/approve", supervisor, {}
    )
    assert (status, body["code"]) == (404, "NOT_FOUND")
    # The customer's retry now answers the final outcome.
    status, final = await _call(
        http, risk_node, "POST", "/api/v1/services/transfer.internal", token, transfer, held_key
    )
    assert (status, final["txn_id"], final["status"]) == (200, held["txn_id"], "succeeded")


async def test_malformed_and_hostile_staff_requests_change_nothing(
    risk_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    operator = await staff_token(http, risk_node, "operator1")
    supervisor = await staff_token(http, risk_node, "super1")
    auth = {"Authorization": f"Bearer {operator}"}

    async def raw(path: str, data: bytes, token: str = operator) -> tuple[int, dict[str, Any]]:
        async with http.post(
            risk_node.url(path),
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as answer:
            return answer.status, await answer.json()

    async with http.get(risk_node.url("/staff/v1/risk/rules?all=1"), headers=auth) as answer:
        before = (await answer.json())["rules"]
    longest = "txn.amount > 1 && " * 222 + "true"  # 4,000 characters, the most a rule may have
    rules, lists = "/staff/v1/risk/rules", "/staff/v1/risk/lists"
    rule = {"name": "x", "expression": "true", "outcome": "deny"}
    entry = {"list": "deny", "kind": "account", "value": "1"}
    malformed: list[tuple[str, object]] = [
        (rules, b"{not json"),
        (rules, []),
        (rules, {**rule, "id": 1}),
        (rules, {**rule, "name": "DROP TABLE"}),
        (rules, {**rule, "outcome": "maybe"}),
        (rules, {**rule, "score": -1}),
        (rules, {**rule, "expression": "1" * 4001}),
        (rules, {**rule, "description": "a" * 20_000}),
        ("/staff/v1/risk/rules/deny_list/1/mode", {"mode": "off"}),
        (lists, {**entry, "value": ""}),
        (lists, {**entry, "list": "black"}),
        (lists, {**entry, "value": "9" * 201}),
    ]
    for path, payload in malformed:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        status, body = await raw(path, data)
        assert status == 400, (path, data[:80], body)
        assert body["code"] == "VALIDATION_FAILED"
    for path in (
        "/staff/v1/risk/rules/no_such_rule/1/mode",
        "/staff/v1/risk/rules/deny_list/x/mode",
        "/staff/v1/risk/rules/deny_list/999/mode",
    ):
        status, body = await raw(path, b'{"mode": "active"}')
        assert status == 404, (path, body)
    for path in (
        "/staff/v1/risk/reviews/not-a-uuid/approve",
        "/staff/v1/risk/reviews/00000000-0000-0000-0000-000000000000/reject",
    ):
        status, body = await raw(path, b"{}", supervisor)
        assert status == 404, (path, body)
    async with http.get(
        risk_node.url("/staff/v1/risk/transactions/'; DROP TABLE risk_rules; --/decisions"),
        headers=auth,
    ) as answer:
        assert answer.status == 404

    # The longest rule allowed is accepted: the body limit leaves room for it.
    status, body = await raw(
        "/staff/v1/risk/rules",
        orjson.dumps({"name": "long", "expression": longest, "outcome": "allow"}),
    )
    assert status == 201, body
    async with http.get(risk_node.url("/staff/v1/risk/rules?all=1"), headers=auth) as answer:
        after = (await answer.json())["rules"]
    assert [r for r in after if r["name"] != "long"] == before
