"""A demo bank with a limit center, on each database and, where asked, with Redis counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channelhub.config import Settings
from channelhub.kit.clock import utc_now
from channelhub.limits.schemas import LimitChangeBody
from channelhub.limits.service import change_bank_limit
from channelhub.runtime import Runtime
from tests.conftest import make_settings
from tests.support.bank import Bank, open_bank
from tests.support.clock import at_bank_time
from tests.support.databases import redis_keyspace


@pytest.fixture(params=["database", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """Where limit usage is counted: the database, or Redis under a prefix of this test's
    own (deleted afterwards)."""
    if request.param == "database":
        yield {}
        return
    async with redis_keyspace() as (url, prefix):
        yield {"url": url, "prefix": prefix}


@pytest.fixture
def limit_settings(database_url: str, tmp_path: Path, counters: dict[str, str]) -> Settings:
    """A test node's settings, with Redis counters when the parameter asks for them."""
    return make_settings(database_url, tmp_path, **({"redis": counters} if counters else {}))


@pytest.fixture
async def limit_runtime(limit_settings: Settings) -> AsyncIterator[Runtime]:
    """A node whose limits are counted where ``counters`` says."""
    built = Runtime.build(limit_settings)
    yield built
    await built.close()


@pytest.fixture
async def bank(limit_runtime: Runtime) -> Bank:
    """The demo bank, at 14:30 bank time: a daily limit's day is the engine clock's, and a
    test never straddles the bank's midnight."""
    opened = await open_bank(limit_runtime)
    at_bank_time(limit_runtime, 14)
    return opened


async def set_bank_limit(runtime: Runtime, **fields: object) -> dict[str, object]:
    """Set a bank limit directly (what an approved four-eyes change does)."""
    change = LimitChangeBody.model_validate(fields)
    async with runtime.sessions() as session, session.begin():
        view = await change_bank_limit(session, change, changed_by="test", now=utc_now())
    runtime.limits.invalidate()
    return view
