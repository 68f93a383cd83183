"""Database engines: SQLite (embedded, WAL) and PostgreSQL (asyncpg), one async API."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Select, event, literal, select, true
from sqlalchemy.dialects.postgresql.asyncpg import dialect as AsyncpgDialect  # noqa: N812
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import Executable

__all__ = [
    "DATABASE_ERRORS",
    "FastStatement",
    "Rider",
    "create_engine",
    "fetch",
    "is_sqlite",
    "make_sessionmaker",
    "normalize_url",
    "pg_connection",
    "ride",
    "sqlite_path",
]

#: What a failing database raises: SQLAlchemy's errors, and asyncpg's own from the fast path.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)

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
            # echo shows statements; their parameters may be what a user typed.
            hide_parameters=True,
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
        hide_parameters=True,
        # pool_size is the hard limit of connections per node: PostgreSQL's max_connections
        # is shared by every node, so no overflow beyond what the operator configured.
        pool_size=pool_size,
        max_overflow=0,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
        # No pre-ping: it is a round trip per transaction. A dropped connection fails its
        # transaction, which rolls back and is retried by the client with the same key.
        pool_recycle=1800,
        # SQLAlchemy's asyncpg adapter keeps its own prepared-statement cache per connection;
        # asyncpg's (used for batched inserts) is kept as large.
        connect_args={"statement_cache_size": 512},
    )


def json_dumps(value: object) -> str:
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


# --- The fast path: hot statements straight on asyncpg, inside the session's transaction. ---
#
# SQLAlchemy's async layer costs about 100 us of Python per statement on top of asyncpg's
# ~40 us (greenlet hops, cursor adaptation, result objects): on a transfer of six statements
# that is most of the platform's own CPU. The per-transaction path therefore runs its
# statements on the asyncpg connection underneath the session, in the same database
# transaction, while everything else keeps using the session. On SQLite there is no such
# layer to skip and the statement runs through the session as usual.

_ASYNCPG = AsyncpgDialect(json_serializer=json_dumps)  # type: ignore[no-untyped-call]
_DRIVER_KEY = "channelhub.asyncpg_connection"


class FastStatement:
    """A Core statement compiled once for asyncpg, runnable on either database.

    On PostgreSQL the SQL text is sent as it is with positional arguments, and asyncpg keeps
    it prepared per connection; SQLAlchemy's own bind processors (JSON, UTC datetimes) still
    convert the values, so both paths store the same bytes.
    """

    __slots__ = ("_converters", "_row", "core", "pg_core", "sql")

    def __init__(self, core: Executable, *, postgresql: Executable | None = None) -> None:
        """``postgresql`` is the same statement written for PostgreSQL where the portable one
        cannot be sent as is (an ``IN`` list becomes ``= ANY`` of one array parameter)."""
        self.core = core
        self.pg_core = postgresql if postgresql is not None else core
        self._row: Any = None
        compiled = cast(Any, self.pg_core).compile(dialect=_ASYNCPG)
        if compiled.positiontup is None:
            raise ValueError("a fast statement needs positional parameters")
        processors = compiled._bind_processors
        defaults = compiled.params
        self.sql = str(compiled)
        self._converters = tuple(
            (name, processors.get(name), defaults.get(name)) for name in compiled.positiontup
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """Return ``params`` in the statement's positional order, converted for asyncpg."""
        values = []
        for name, convert, default in self._converters:
            value = params.get(name, default)
            values.append(convert(value) if convert is not None and value is not None else value)
        return values

    def rows(self, records: list[Any]) -> list[Any]:
        """Turn asyncpg records into named tuples, as SQLAlchemy rows read (``row.number``)."""
        if not records:
            return records
        if self._row is None:
            self._row = namedtuple("Row", list(records[0].keys()))  # type: ignore[misc]
        make = self._row._make
        return [make(record) for record in records]


async def pg_connection(session: AsyncSession) -> asyncpg.Connection | None:
    """Return the asyncpg connection of ``session``'s transaction, begun; None on SQLite.

    SQLAlchemy begins transactions and savepoints lazily, at the next statement that goes
    through the session; so whenever the session's innermost transaction is not the one the
    connection was looked up for, it is asked for its connection again, which emits any
    pending BEGIN or SAVEPOINT first. The connection is forgotten when the outermost
    transaction ends, so it is never used outside the transaction it belongs to.
    """
    sync = session.sync_session
    current = sync.get_nested_transaction() or sync.get_transaction()
    cached = session.info.get(_DRIVER_KEY)
    if cached is not None and cached[0] is current:
        return cached[1]
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    # SQLAlchemy's asyncpg adapter begins its database transaction lazily too, at its first
    # statement: begin it now so that our statements are not committed one by one.
    if adapter._transaction is None:
        await adapter._start_transaction()
    driver: asyncpg.Connection = adapter._connection
    session.info[_DRIVER_KEY] = (
        sync.get_nested_transaction() or sync.get_transaction(),
        driver,
    )
    return driver


@event.listens_for(Session, "after_transaction_end")
def _forget_driver(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction, not a savepoint
        session.info.pop(_DRIVER_KEY, None)
        session.info.pop(_RIDERS_KEY, None)


async def fetch(
    session: AsyncSession, statement: FastStatement, params: Mapping[str, Any]
) -> Sequence[Any]:
    """Run ``statement`` in ``session``'s transaction; return its rows (``row.column`` works)."""
    driver = await pg_connection(session)
    if driver is None:
        return (await session.execute(statement.core, dict(params))).all()
    riders = session.info.pop(_RIDERS_KEY, None)
    if riders:
        return await _carry(driver, statement, params, riders)
    return statement.rows(await driver.fetch(statement.sql, *statement.arguments(params)))


# --- Riders: a later step's statement sent with the transaction's next one. ---
#
# On a busy node a round trip to PostgreSQL costs about 0.25 ms of the node's CPU whatever the
# statement (bench/risk.py): the write to the socket, the wake-ups on both sides. Steps of an
# all-local flow whose statements need only the request (the limit booking, the risk
# features) therefore hand them to the kernel before the flow runs, and they go as CTEs of
# the flow's first statement that goes through ``fetch``, or, if none comes before the step
# asks for its answer, all together in one statement of their own. Everything is one
# database transaction, so a rider that ran for a step the flow never reached is rolled back
# with the rest.

_RIDERS_KEY = "channelhub.riders"
_PENDING: Any = object()
#: Composed statements by (carrier, shapes of the riders); bounded: shapes are the code's.
_COMPOSED: dict[tuple[Any, ...], _Composed | None] = {}
_COMPOSED_MAX = 256


class Rider:
    """Work for a later step that depends only on the request, sent early with another
    statement of the same transaction (PostgreSQL only).

    ``row`` is a SELECT (Core or textual) that returns exactly one row; ``ctes`` are the
    data-changing CTEs it goes with. Its bind names must differ from any other statement's it
    may ride with (else it goes alone; the composition checks). ``shape`` names its SQL: equal
    shapes, equal SQL. A rider may read only what no earlier step of its flow writes: it may
    run before them.
    """

    __slots__ = ("_row", "ctes", "params", "row", "shape")

    def __init__(
        self, shape: Any, row: Any, params: Mapping[str, Any], ctes: Sequence[Any] = ()
    ) -> None:
        self.shape = shape
        self.row = row
        self.params = params
        self.ctes = tuple(ctes)
        self._row: Any = _PENDING

    @property
    def delivered(self) -> bool:
        """Tell whether the rider ran and its answer is here."""
        return self._row is not _PENDING

    async def result(self, session: AsyncSession) -> Any:
        """Return the rider's row (``row.column`` works), sending it now, with any other
        rider still waiting, if no statement carried it yet."""
        if self._row is _PENDING:
            riders = session.info.pop(_RIDERS_KEY, None) or []
            if self not in riders:
                riders.append(self)
            driver = await pg_connection(session)
            if driver is None:
                raise RuntimeError("riders run on PostgreSQL only")
            await _send(driver, riders)
        return self._row


def ride(session: AsyncSession, rider: Rider) -> None:
    """Send ``rider`` with the next statement of ``session``'s transaction that goes through
    ``fetch`` (or when its result is asked for)."""
    session.info.setdefault(_RIDERS_KEY, []).append(rider)


@dataclass(frozen=True, slots=True)
class _Composed:
    statement: FastStatement
    #: Each rider's columns: (first, past-the-end) in the composed row, and its row type.
    parts: tuple[tuple[int, int, Any], ...]
    #: The carrier's columns (first, past-the-end), its row type, and the column that tells a
    #: carried row from the outer join's filler.
    carried: tuple[int, int, Any, int] | None


def _bind_names(*clauses: Any) -> set[str]:
    names: set[str] = set()
    for clause in clauses:
        binds = cast(Any, clause).compile(dialect=_ASYNCPG).binds
        names.update(name for name, bind in binds.items() if not bind.unique)
    return names


def _compose(carrier: FastStatement | None, riders: Sequence[Rider]) -> _Composed | None:
    """The one statement that runs ``riders`` (and ``carrier``, returning its rows); None when
    they cannot go together (bind names clash, or the carrier is not a plain SELECT)."""
    # The carrier itself, not its id(): the key keeps it alive, so no other takes its id.
    key = (carrier, *(rider.shape for rider in riders))
    if key in _COMPOSED:
        return _COMPOSED[key]
    composed = None
    names: list[set[str]] = [_bind_names(rider.row, *rider.ctes) for rider in riders]
    core = carrier.pg_core if carrier else None
    plain = (
        isinstance(core, Select)
        and not core._order_by_clauses
        and not core._has_row_limiting_clause
    )
    if carrier is not None and plain:
        names.append(_bind_names(core))
    if (carrier is None or plain) and sum(map(len, names)) == len(set().union(*names)):
        subqueries = [rider.row.subquery(f"rider_{i}") for i, rider in enumerate(riders)]
        columns: list[Any] = []
        parts = []
        for i, sub in enumerate(subqueries):
            keys = [column.key for column in sub.c]
            parts.append((len(columns), len(columns) + len(keys), namedtuple("Row", keys)))
            columns += [column.label(f"rider_{i}_{column.key}") for column in sub.c]
        joined: Any = subqueries[0]
        for sub in subqueries[1:]:
            joined = joined.join(sub, true())
        carried = None
        if core is not None:
            cte = cast(Select[Any], core).add_columns(literal(True).label("carried")).cte("carried")
            keys = [column.key for column in cte.c][:-1]
            start = len(columns)
            columns += list(cte.c)
            carried = (start, start + len(keys), namedtuple("Row", keys), start + len(keys))
            # The outer join keeps the riders' row when the carrier finds nothing.
            joined = joined.outerjoin(cte, true())
        query = select(*columns).select_from(joined)
        ctes = [cte for rider in riders for cte in rider.ctes]
        if ctes:
            query = query.add_cte(*ctes)
        composed = _Composed(FastStatement(query), tuple(parts), carried)
    if len(_COMPOSED) < _COMPOSED_MAX:
        _COMPOSED[key] = composed
    return composed


def _arguments(
    composed: _Composed, riders: Sequence[Rider], params: Mapping[str, Any]
) -> list[Any]:
    merged = dict(params)
    for rider in riders:
        merged.update(rider.params)
    return composed.statement.arguments(merged)


def _deliver(composed: _Composed, riders: Sequence[Rider], record: Any) -> None:
    for rider, (start, end, row) in zip(riders, composed.parts, strict=True):
        rider._row = row._make(record[start:end])


async def _send(driver: asyncpg.Connection, riders: Sequence[Rider]) -> None:
    """Run ``riders`` in one statement (each alone, should they not go together)."""
    composed = _compose(None, riders)
    if composed is None:
        for rider in riders:
            await _send(driver, [rider])
        return
    record = await driver.fetchrow(composed.statement.sql, *_arguments(composed, riders, {}))
    _deliver(composed, riders, record)


async def _carry(
    driver: asyncpg.Connection,
    statement: FastStatement,
    params: Mapping[str, Any],
    riders: Sequence[Rider],
) -> Sequence[Any]:
    """Run ``statement`` with ``riders`` as its CTEs; return its own rows."""
    composed = _compose(statement, riders)
    if composed is None or composed.carried is None:
        await _send(driver, riders)
        return statement.rows(await driver.fetch(statement.sql, *statement.arguments(params)))
    records = await driver.fetch(composed.statement.sql, *_arguments(composed, riders, params))
    _deliver(composed, riders, records[0])
    start, end, row, flag = composed.carried
    return [row._make(record[start:end]) for record in records if record[flag] is not None]
