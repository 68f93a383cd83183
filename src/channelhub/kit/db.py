"""Database engines: SQLite (embedded, WAL) and PostgreSQL (asyncpg), one async API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "create_engine",
    "is_sqlite",
    "make_sessionmaker",
    "normalize_url",
    "sqlite_path",
]

# How long a SQLite writer waits for the single write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> URL:
    """Return ``url`` with the async driver channelhub uses for its dialect.

    ``postgresql://`` becomes ``postgresql+asyncpg://`` and ``sqlite://`` becomes
    ``sqlite+aiosqlite://`` so operators can paste the URLs they already have.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError(
            f"unsupported database {parsed.drivername!r}: use sqlite:/// or postgresql://"
        )
    return parsed


def is_sqlite(url: URL) -> bool:
    """Tell whether ``url`` names an SQLite database."""
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """Return the file of an SQLite URL, or None for an in-memory database."""
    if not is_sqlite(url) or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_engine(url: str | URL, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Create the async engine for ``url``, tuned for channelhub's write pattern."""
    parsed = normalize_url(str(url) if isinstance(url, URL) else url)
    if is_sqlite(parsed):
        path = sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer at a time. Queueing for the one pooled connection is fair and
        # cheap; letting several connections race for the file lock makes the busy handler
        # sleep-and-retry, which starves some writers for up to a second under load.
        engine = create_async_engine(
            parsed,
            echo=echo,
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        parsed,
        echo=echo,
        # pool_size is the hard limit of connections per node: PostgreSQL's max_connections
        # is shared by every node, so no overflow beyond what the operator configured.
        pool_size=pool_size,
        max_overflow=0,
        json_serializer=_json_dumps,
        # No pre-ping: it is a round trip per transaction. A dropped connection fails its
        # transaction, which rolls back and is retried by the client with the same key.
        pool_recycle=1800,
        # SQLAlchemy's asyncpg adapter keeps its own prepared-statement cache per connection;
        # asyncpg's (used for batched inserts) is kept as large.
        connect_args={"statement_cache_size": 512},
    )


def _json_dumps(value: object) -> str:
    """Serialise JSON columns with orjson: the step log is written on every transaction."""
    return orjson.dumps(value).decode()


def _tune_sqlite(engine: AsyncEngine) -> None:
    """Put every SQLite connection in WAL mode and make each transaction take the write lock.

    ``BEGIN IMMEDIATE`` makes a writer wait (busy_timeout) for the lock up front, instead of
    failing with SQLITE_BUSY when a read transaction later tries to upgrade to a write.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives a power cut, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory: no expiry on commit, so results stay readable afterwards."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
