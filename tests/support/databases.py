"""Private test databases: one SQLite file or PostgreSQL database per test run, migrated."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from channelhub.kit.migrations import upgrade

__all__ = [
    "create_postgres_database",
    "drop_postgres_database",
    "postgres_admin_url",
    "redis_url_or_skip",
    "require_or_skip",
]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def require_or_skip(reason: str) -> None:
    """Skip with ``reason``, unless CHANNELHUB_TEST_REQUIRE_SERVICES=1 makes it a failure."""
    if os.environ.get("CHANNELHUB_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def postgres_admin_url() -> str:
    """Return the URL of the PostgreSQL server tests may create databases on."""
    return os.environ.get("CHANNELHUB_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


async def _admin_execute(url: str, sql: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run_blocking(url: str, sql: str) -> None:
    # Session fixtures may be set up inside a running event loop: use a thread of our own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin_execute(url, sql)).result()


def create_postgres_database() -> str:
    """Create and migrate a fresh database; return its URL (skips if no server answers)."""
    admin = postgres_admin_url()
    name = f"channelhub_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _run_blocking(admin, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        require_or_skip(
            f"PostgreSQL at {make_url(admin).render_as_string()} is unreachable: {error}"
        )
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


def drop_postgres_database(url: str) -> None:
    """Drop a database made by create_postgres_database."""
    name = make_url(url).database
    _run_blocking(postgres_admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_sqlite_database(directory: Path) -> str:
    """Create and migrate an SQLite file in ``directory``; return its URL."""
    url = f"sqlite+aiosqlite:///{directory / 'channelhub.db'}"
    upgrade(url)
    return url


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


async def redis_url_or_skip() -> str:
    """Return the Redis URL tests may use (CHANNELHUB_TEST_REDIS_URL), after a ping; skips
    (or fails, when services are required) if no server answers."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = os.environ.get("CHANNELHUB_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = Redis.from_url(url, socket_connect_timeout=2.0)
    try:
        await client.ping()
    except (OSError, RedisError) as error:
        require_or_skip(f"Redis at {url} is unreachable: {error}")
    finally:
        await client.aclose()
    return url


@asynccontextmanager
async def redis_keyspace() -> AsyncIterator[tuple[str, str]]:
    """Yield the test Redis's URL and a key prefix of the caller's own; every key under the
    prefix is deleted afterwards. Skips (or fails, when services are required) without Redis."""
    from redis.asyncio import Redis

    url = await redis_url_or_skip()
    prefix = f"channelhub-test:{secrets.token_hex(6)}:"
    try:
        yield url, prefix
    finally:
        client = Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
