"""Shared fixtures: private migrated databases (SQLite and PostgreSQL), settings, a runtime,
and a node listening on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from sqlalchemy import text

from channelhub.config import Settings
from channelhub.kit.db import create_engine
from channelhub.runtime import Runtime
from tests.support import flow_steps
from tests.support.databases import (
    create_postgres_database,
    create_sqlite_database,
    drop_postgres_database,
)

SUPPORT = Path(__file__).parent / "support"
TEST_CATALOG = SUPPORT / "catalog"
PLUGIN = "tests.support.flow_steps"
#: Every table, so that a delete never breaks a foreign key: referencing tables first.
#: The audit log is left alone: it is append-only, in the database too.
TABLES_CHILDREN_FIRST = (
    "risk_reviews",
    "risk_decisions",
    "risk_sightings",
    "risk_activity",
    "risk_lists",
    "risk_rules",
    "limit_usage",
    "limit_definitions",
    "terminals",
    "consents",
    "partner_nonces",
    "partner_apps",
    "approvals",
    "credentials",
    "login_throttles",
    "auth_challenges",
    "refresh_tokens",
    "revoked_sessions",
    "signing_keys",
    "transactions",
    "outbox",
    "ledger_holds",
    "ledger_postings",
    "ledger_entries",
    "ledger_accounts",
    "cards",
    "user_devices",
    "customer_users",
    "accounts",
    "customers",
    "staff",
    "products",
    "branches",
    "number_sequences",
)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for this test run."""
    return create_sqlite_database(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test run's own, dropped at the end."""
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on both databases, starting from empty tables."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for table in TABLES_CHILDREN_FIRST:
                await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()
    flow_steps.CALLS.clear()
    return url


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Return settings for a test node: its database, the test catalog and steps, no worker."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "node_id": "test-node",
        "plugins": [PLUGIN],
        "database": {"url": database_url},
        "catalog": {"paths": [TEST_CATALOG]},
        "recovery": {"enabled": False},
        "log": {"level": "WARNING"},
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings of a test node on the parametrized database."""
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A node's runtime, without HTTP."""
    built = Runtime.build(settings)
    yield built
    await built.close()


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[str]:
    """A node serving HTTP on a free loopback port; yields its base URL."""
    async with serving(settings) as base:
        yield base


class serving:  # noqa: N801  (used as a context manager, reads like a function)
    """Run ``create_app(settings)`` under uvicorn on 127.0.0.1 and a free port."""

    def __init__(self, settings: Settings) -> None:
        from channelhub.app import create_app  # the app module is only ever built, never shared

        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        # Generous: on a busy machine (CI, a shared database) the lifespan's start-up (the
        # catalog, a first connection) can take seconds; a test must not fail on that.
        deadline = asyncio.get_running_loop().time() + 30
        while not self.server.started:
            if self.task.done():
                self.task.result()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the node did not start within 30 s")
            await asyncio.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session
