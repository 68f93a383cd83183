"""A node killed mid-transaction: recovery, run by another process, undoes what it did."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from channelhub.kit.db import create_engine
from channelhub.models import JournalEntry, OutboxEvent
from tests.support.processes import channelhub, node_env, start_node

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _wait_for(path: Path, seconds: float = 20) -> None:
    for _ in range(int(seconds * 20)):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def _journal(url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(JournalEntry.status, JournalEntry.code))
            return [(row.status, row.code) for row in result]
    finally:
        await engine.dispose()


async def _event_types(url: str) -> list[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(OutboxEvent.type))).scalars())
    finally:
        await engine.dispose()


async def test_killed_node_transaction_is_recovered(database_url: str, tmp_path: Path) -> None:
    effects, marker = tmp_path / "effects.txt", tmp_path / "marker.txt"
    env = node_env(
        database_url,
        tmp_path,
        CHANNELHUB_KERNEL_LEASE_SECONDS="1",
        CHANNELHUB_RECOVERY_ENABLED="false",
    )
    process, base = start_node(env)
    try:
        async with aiohttp.ClientSession() as http:
            request = asyncio.create_task(
                http.post(
                    f"{base}/api/v1/services/test.crash",
                    json={"file": str(effects), "marker": str(marker)},
                    headers={"Idempotency-Key": "crash-1"},
                )
            )
            await _wait_for(marker)  # the external effect happened; the node now hangs
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            with contextlib.suppress(aiohttp.ClientError):
                (await request).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    txn_id = marker.read_text(encoding="utf-8")
    assert effects.read_text(encoding="utf-8") == f"do {txn_id}\n"
    assert await _journal(database_url) == [("processing", None)]

    await asyncio.sleep(1.2)  # the dead node's lease runs out
    recovered = channelhub("recover", env=env)
    assert recovered.returncode == 0, recovered.stderr
    assert f"aborted    {txn_id}" in recovered.stdout

    assert effects.read_text(encoding="utf-8") == f"do {txn_id}\nundo {txn_id}\n"
    assert await _journal(database_url) == [("failed", "TXN_ABORTED")]
    assert await _event_types(database_url) == ["channelhub.test.crash.failed"]

    again = channelhub("recover", env=env)
    assert "found 0" in again.stdout
    assert effects.read_text(encoding="utf-8").count("undo") == 1
