"""Staff over a real socket: password plus TOTP, roles as token scopes, and four-eyes on a
customer's password reset, recorded with both identities."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from sqlalchemy import Uuid, bindparam, text

from channelhub.kit.db import create_engine
from tests.security.conftest import SecureNode, login, otp

pytestmark = pytest.mark.asyncio


async def staff_token(http: aiohttp.ClientSession, node: SecureNode, username: str) -> str:
    """Log a demo staff member in (password, then TOTP); return the access token."""
    async with http.post(
        node.url("/staff/v1/auth/login"),
        json={"username": username, "password": f"{username}-Demo-2026", "channel": "console"},
    ) as answer:
        body = await answer.json()
    assert answer.status == 200, body
    assert body["mfa_required"] is True, body
    async with http.post(
        node.url("/staff/v1/auth/mfa"), json={"mfa_token": body["mfa_token"], "otp": otp(username)}
    ) as answer:
        tokens = await answer.json()
    assert answer.status == 200, tokens
    return str(tokens["access_token"])


async def _post(
    http: aiohttp.ClientSession, node: SecureNode, path: str, token: str, body: object
) -> tuple[int, dict[str, object]]:
    async with http.post(
        node.url(path), json=body, headers={"Authorization": f"Bearer {token}"}
    ) as answer:
        return answer.status, await answer.json()


async def test_staff_need_the_second_factor_every_time(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    token = await staff_token(http, secure_node, "teller1")
    # A staff token acts for no customer: customer services refuse it.
    async with http.post(
        secure_node.url("/api/v1/services/account.list"),
        json={},
        headers={"Authorization": f"Bearer {token}"},
    ) as answer:
        assert answer.status in (403, 401)
    # A customer cannot use the staff login, nor a staff member the customer one.
    async with http.post(
        secure_node.url("/staff/v1/auth/login"),
        json={"username": "alice", "password": "alice-Demo-2026"},
    ) as answer:
        assert (answer.status, (await answer.json())["code"]) == (401, "INVALID_CREDENTIALS")
    status, body = await login(http, secure_node, "teller1", device="teller1-phone")
    assert (status, body["code"]) == (401, "INVALID_CREDENTIALS")


async def test_four_eyes_on_a_password_reset(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    teller = await staff_token(http, secure_node, "teller1")
    supervisor = await staff_token(http, secure_node, "super1")
    auditor = await staff_token(http, secure_node, "auditor1")

    # An auditor may not ask for a reset at all.
    status, body = await _post(
        http, secure_node, "/staff/v1/password-resets", auditor, {"username": "bob"}
    )
    assert (status, body["code"]) == (403, "FORBIDDEN")

    status, body = await _post(
        http, secure_node, "/staff/v1/password-resets", teller, {"username": "bob"}
    )
    assert (status, body["code"]) == (202, "APPROVAL_REQUIRED")
    approval = body["approval"]
    assert isinstance(approval, dict)
    assert approval["status"] == "pending"
    assert approval["requested_by"] == "teller1"
    path = f"/staff/v1/approvals/{approval['id']}"

    # Nothing happened yet: bob still logs in with his password.
    assert (await login(http, secure_node, "bob"))[0] == 200
    # The teller cannot approve their own request (nor hold the permission); the auditor
    # holds no approval permission.
    status, body = await _post(http, secure_node, f"{path}/approve", teller, {})
    assert (status, body["code"]) == (403, "SAME_APPROVER")
    status, body = await _post(http, secure_node, f"{path}/approve", auditor, {})
    assert (status, body["code"]) == (403, "FORBIDDEN")

    async with http.get(
        secure_node.url("/staff/v1/approvals"), headers={"Authorization": f"Bearer {supervisor}"}
    ) as answer:
        queue = await answer.json()
    assert [a["id"] for a in queue["approvals"]] == [approval["id"]]

    status, body = await _post(
        http, secure_node, f"{path}/approve", supervisor, {"reason": "identity checked"}
    )
    assert status == 200, body
    decided = body["approval"]
    assert isinstance(decided, dict)
    assert (decided["status"], decided["requested_by"], decided["decided_by"]) == (
        "approved",
        "teller1",
        "super1",
    )
    result = body["result"]
    assert isinstance(result, dict)
    temporary = str(result["temporary_password"])
    # Decided once only.
    status, body = await _post(http, secure_node, f"{path}/approve", supervisor, {})
    assert (status, body["code"]) == (409, "APPROVAL_NOT_PENDING")

    # The old password is gone; the temporary one must be changed before a login.
    status, body = await login(http, secure_node, "bob")
    assert (status, body["code"]) == (401, "INVALID_CREDENTIALS")
    status, body = await login(http, secure_node, "bob", password=temporary)
    assert (status, body["code"]) == (403, "PASSWORD_CHANGE_REQUIRED")
    async with http.post(
        secure_node.url("/api/v1/auth/password"),
        json={"username": "bob", "password": temporary, "new_password": "bob"},
    ) as answer:
        assert (await answer.json())["code"] == "PASSWORD_REJECTED"
    async with http.post(
        secure_node.url("/api/v1/auth/password"),
        json={"username": "bob", "password": temporary, "new_password": "Brand-New-Secret-9"},
    ) as answer:
        assert answer.status == 200, await answer.text()
    status, body = await login(http, secure_node, "bob", password="Brand-New-Secret-9")
    assert status == 200, body

    # Both identities are on the record, in the approval and in the audit chain; the
    # temporary password is in neither.
    engine = create_engine(secure_node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT requested_by_name, decided_by_name, status FROM approvals")
                )
            ).one()
            audit = (
                await conn.execute(
                    text(
                        "SELECT action, outcome, actor_id, details FROM audit_log "
                        "WHERE action LIKE 'approval.%' ORDER BY seq"
                    )
                )
            ).all()
            stored = repr((await conn.execute(text("SELECT * FROM approvals"))).all())
    finally:
        await engine.dispose()
    assert tuple(row) == ("teller1", "super1", "approved")
    assert [(a.action, a.outcome, a.actor_id) for a in audit][-3:] == [
        ("approval.request", "pending", "teller1"),
        ("approval.decide", "same_approver", "teller1"),
        ("approval.decide", "approved", "super1"),
    ]
    assert temporary not in stored
    assert temporary not in repr(audit)


async def test_the_database_refuses_a_self_approval_too(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    teller = await staff_token(http, secure_node, "teller1")
    _, body = await _post(
        http, secure_node, "/staff/v1/password-resets", teller, {"username": "alice"}
    )
    approval = body["approval"]
    assert isinstance(approval, dict)
    statement = text(
        "UPDATE approvals SET status = 'approved', decided_by = requested_by WHERE id = :id"
    ).bindparams(bindparam("id", type_=Uuid))
    engine = create_engine(secure_node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(Exception, match="four_eyes"):
                await conn.execute(statement, {"id": uuid.UUID(str(approval["id"]))})
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "x" * 65}, {"username": "bob", "extra": 1}, [1], {"username": 5}],
)
async def test_bad_management_bodies_are_refused(
    secure_node: SecureNode, http: aiohttp.ClientSession, body: object
) -> None:
    teller = await staff_token(http, secure_node, "teller1")
    status, answer = await _post(http, secure_node, "/staff/v1/password-resets", teller, body)
    assert (status, answer["code"]) == (400, "VALIDATION_FAILED")


async def test_management_routes_refuse_customers_and_strangers(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    _, tokens = await login(http, secure_node, "alice")
    for token in (str(tokens["access_token"]), "forged"):
        status, body = await _post(
            http, secure_node, "/staff/v1/password-resets", token, {"username": "bob"}
        )
        assert status in (401, 403)
        assert body["code"] in ("FORBIDDEN", "TOKEN_INVALID")
