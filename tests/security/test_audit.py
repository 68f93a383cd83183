"""The audit log records every login, failure, refresh and logout; its hash chain catches a
rewritten record; and no secret ever reaches a log line or the audit log."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from channelhub.demo.identities import DEMO_TOTP_SECRETS
from channelhub.kit.db import create_engine
from tests.security.conftest import SecureNode, call, login, otp
from tests.support.processes import channelhub, node_env

pytestmark = pytest.mark.asyncio


async def _audit_rows(node: SecureNode, after: int = 0) -> list[dict[str, object]]:
    engine = create_engine(node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT * FROM audit_log WHERE seq > :after ORDER BY seq"), {"after": after}
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def _last_seq(node: SecureNode) -> int:
    engine = create_engine(node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT COALESCE(MAX(seq), 0) FROM audit_log")) or 0)
    finally:
        await engine.dispose()


async def test_a_whole_session_leaves_no_secret_in_logs_or_audit(
    secure_node: SecureNode,
    http: aiohttp.ClientSession,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    start = await _last_seq(secure_node)
    secrets: list[str] = ["bob-Demo-2026", "alice-Demo-2026", "Wrong-Password-77"]
    secrets += DEMO_TOTP_SECRETS.values()

    await login(http, secure_node, "alice", password="Wrong-Password-77")
    await login(http, secure_node, "Wrong-Password-77", password="alice-Demo-2026")
    status, challenge = await login(http, secure_node, "bob", device="bob-new-phone")
    secrets.append(str(challenge["mfa_token"]))
    code = otp("bob")
    async with http.post(
        secure_node.url("/api/v1/auth/mfa"),
        json={"mfa_token": challenge["mfa_token"], "otp": code},
    ) as answer:
        tokens = await answer.json()
    assert answer.status == 200, tokens
    secrets += [str(tokens["access_token"]), str(tokens["refresh_token"])]
    async with http.post(
        secure_node.url("/api/v1/auth/refresh"), json={"refresh_token": tokens["refresh_token"]}
    ) as answer:
        renewed = await answer.json()
    secrets += [str(renewed["access_token"]), str(renewed["refresh_token"])]
    status, _ = await call(http, secure_node, "account.list", {}, str(renewed["access_token"]))
    assert status == 200
    # A forged token and a replayed refresh token are refused, and logged as refusals.
    await call(http, secure_node, "account.list", {}, str(renewed["access_token"]) + "x")
    async with http.post(
        secure_node.url("/api/v1/auth/refresh"), json={"refresh_token": tokens["refresh_token"]}
    ) as answer:
        assert answer.status == 401
    async with http.post(
        secure_node.url("/api/v1/auth/logout"), json={"refresh_token": renewed["refresh_token"]}
    ) as answer:
        assert answer.status == 200

    logs = capfd.readouterr()
    # Every log record, whichever way it went: the node's handler or pytest's capture.
    written = logs.out + logs.err + caplog.text + repr([r.__dict__ for r in caplog.records])
    assert "token_refused" in written  # the node did log this session
    audit = await _audit_rows(secure_node, start)
    audit_text = repr(audit)
    for secret in secrets:
        assert secret not in written, "a secret reached the log"
        assert secret not in audit_text, "a secret reached the audit log"
    # The OTP, as a whole number anywhere (not as part of a longer one).
    otp_pattern = re.compile(rf"(?<!\d){code}(?!\d)")
    assert not otp_pattern.search(written)
    assert not otp_pattern.search(audit_text)

    # Every step is in the audit, with actor, channel, source address and outcome.
    seen = [(row["action"], row["outcome"], row["actor_id"]) for row in audit]
    assert seen == [
        ("login", "failed", "alice"),
        ("login", "failed", None),  # an unknown name is never recorded: it may be a password
        ("login", "mfa_required", "bob"),
        ("mfa", "succeeded", "bob"),
        ("token.refresh", "succeeded", "bob"),
        ("token.refresh", "reuse_detected", "bob"),
        # The reuse ended the session already: the logout finds nothing left to end.
        ("logout", "no_session", "bob"),
    ]
    assert {row["source_address"] for row in audit} == {"127.0.0.1"}
    assert {row["channel"] for row in audit} == {"mobile"}


async def test_the_chain_is_verified_and_a_rewritten_record_is_found(
    secure_node: SecureNode, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await login(http, secure_node, "alice")
    await login(http, secure_node, "alice", password="not-her-password")
    env = node_env(secure_node.settings.database.url or "", tmp_path)
    intact = await _cli(env, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact" in intact.stdout

    target = (await _audit_rows(secure_node))[-1]
    engine = create_engine(secure_node.settings.database_url, pool_size=1)
    postgres = engine.dialect.name == "postgresql"
    try:
        # The database refuses to rewrite or delete a record.
        for statement in (
            "UPDATE audit_log SET outcome = 'succeeded' WHERE seq = :seq",
            "DELETE FROM audit_log WHERE seq = :seq",
        ):
            with pytest.raises(Exception, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement), {"seq": target["seq"]})
        # Someone with the rights to switch the guard off rewrites a failure as a success:
        # the chain shows it.
        async with engine.begin() as conn:
            await _guard(conn, postgres, enabled=False)
            await conn.execute(
                text("UPDATE audit_log SET outcome = 'succeeded' WHERE seq = :seq"),
                {"seq": target["seq"]},
            )
        broken = await _cli(env, "audit", "verify")
        assert broken.returncode == 1
        assert f"record {target['seq']}: altered" in broken.stdout
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE audit_log SET outcome = :outcome WHERE seq = :seq"),
                {"outcome": target["outcome"], "seq": target["seq"]},
            )
            await _guard(conn, postgres, enabled=True)
        await engine.dispose()
    assert (await _cli(env, "audit", "verify")).returncode == 0


async def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the node under test serves from this event loop and must keep going.
    return await asyncio.to_thread(channelhub, *args, env=env)


async def _guard(conn: object, postgres: bool, *, enabled: bool) -> None:
    execute = conn.execute  # type: ignore[attr-defined]
    if postgres:
        action = "ENABLE" if enabled else "DISABLE"
        await execute(text(f"ALTER TABLE audit_log {action} TRIGGER audit_log_append_only"))
    elif enabled:
        await execute(
            text(
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
        )
    else:
        await execute(text("DROP TRIGGER audit_log_no_update"))
