"""Measure channelhub's ``transfer.internal`` throughput against pgbench on the same PostgreSQL.

It creates a fresh database ``chbench_transfers_<random>``, migrates it, seeds the demo bank with
``--accounts`` generated customers (each with one funded CNY current account) and builds a
channelhub runtime in this process, with no HTTP in front of it. For each concurrency level C it
then runs a closed loop: C asyncio workers, each calling ``runtime.engine.execute`` with a
``transfer.internal`` of 1.00 CNY between two distinct random accounts (the source account's
owner as the principal, a unique idempotency key per transfer) as soon as its previous one
returned. After the runs it checks the ledger's invariants.

Then it creates a second fresh database ``chbench_pgbench_<random>``, initialises it with
``pgbench -i -s <scale>`` and runs pgbench's built-in TPC-B-like script at the same levels, and
prints both side by side: the ratio tells how much of the database's raw transaction rate the
kernel keeps.

Usage::

    .venv/bin/python bench/transfers.py [--duration 5] [--concurrency 1,16,64]
                                        [--accounts 10000] [--postgres-url URL]
                                        [--pgbench-scale 16]

Only 127.0.0.1 is ever contacted. Both databases are dropped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from channelhub.kernel import Principal
    from channelhub.runtime import Runtime

T = TypeVar("T")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WARMUP_SECONDS = 1.0  # per level, before the measured window; not counted
DRAIN_TIMEOUT = 30.0  # seconds past the window for in-flight transfers to finish
PGBENCH_MARGIN = 60.0  # seconds past -T before a pgbench run counts as hung
PGBENCH_INIT_TIMEOUT = 1800.0  # seconds for pgbench -i
POOL_SIZE = 64  # the runtime's pool (SQLAlchemy allows as many again in overflow)
SERVICE = "transfer.internal"
AMOUNT = "1.00"
CURRENCY = "CNY"
SEED = 20_240_601  # the workers' random pairs are the same on every run
TARGET_LEVEL = 16
TARGET_RATIO = 0.5
ACCOUNTS_QUERY = """
    SELECT a.number, u.username
    FROM accounts a JOIN customer_users u ON u.customer_id = a.customer_id
    WHERE a.product_code = 'CUR-CNY' AND u.username LIKE 'customer%'
    ORDER BY a.number"""
TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


# ---------------------------------------------------------------------------- data


@dataclass
class RunResult:
    """One closed-loop run of channelhub transfers at one concurrency level."""

    concurrency: int
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    #: Transfers that returned a status other than succeeded, by "status CODE".
    refused: Counter[str] = field(default_factory=Counter)
    #: Exceptions that escaped ``engine.execute`` (a bug: the kernel answers, it never raises).
    crashes: Counter[str] = field(default_factory=Counter)
    first_crash: str | None = None
    cpu: float = 0.0
    host_busy: float | None = None
    #: CPU seconds PostgreSQL's processes used during the window (None: not readable here).
    pg_cpu: float | None = None

    @property
    def rate(self) -> float:
        """Succeeded transfers per second of the measured window."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Latency at ``fraction`` (0..1) of the succeeded transfers, nearest rank, in ms."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] * 1000.0


@dataclass
class PgbenchResult:
    """One pgbench run at one concurrency level."""

    concurrency: int
    tps: float
    latency_ms: float | None
    processed: int | None
    failed: int | None
    host_busy: float | None
    #: CPU seconds the whole machine spent per transaction, less pgbench's own (its client):
    #: PostgreSQL's work on one TPC-B transaction (None: not measurable here).
    pg_cpu_per_txn: float | None = None


@dataclass
class ChannelhubReport:
    """What the channelhub half measured, besides the runs."""

    migrate_seconds: float
    seed_seconds: float
    customers: int
    accounts: int
    principal_seconds: float
    runs: list[RunResult]
    ledger_problems: list[str]
    loop: str


class BenchError(Exception):
    """Something prevented a measurement; the message says what."""


# ----------------------------------------------------------------------- signals


def _raise_on_terminate(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so that every ``finally`` runs."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP for the block (a cleanup that must finish; it has
    its own timeout), then restore the handlers."""
    names = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in names}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --------------------------------------------------------------------- postgres


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def check_loopback(url: str) -> None:
    """Refuse a database URL whose host is not this machine's loopback."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise BenchError(f"refusing PostgreSQL at {host!r}: this bench only talks to 127.0.0.1")


def asyncpg_dsn(url: str) -> str:
    """``url`` as asyncpg wants it: no ``+driver`` suffix in the scheme."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


async def _execute(url: str, statement: str, seconds: float) -> str:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        return str(await connection.execute(statement, timeout=seconds))
    finally:
        await connection.close(timeout=5)


def execute(url: str, statement: str, timeout: float = 30.0) -> str:
    """Run one statement outside any transaction on a connection of its own."""
    return asyncio.run(asyncio.wait_for(_execute(url, statement, timeout), timeout + 10))


@contextmanager
def postgres_database(admin_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """Create a fresh ``<prefix>_<random>`` database, yield (name, URL), and drop it afterwards
    whatever happens; the drop itself ignores Ctrl-C (it gives up after 30 s)."""
    check_loopback(admin_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    created = False
    try:
        try:
            execute(admin_url, f'CREATE DATABASE "{name}"', timeout=15)
        except Exception as error:  # unreachable, refused, no permission
            raise BenchError(f"PostgreSQL at {admin_url} is not usable: {error!r}") from None
        except BaseException:  # interrupted: the database may exist already
            created = True
            raise
        created = True
        print(f"created database {name}", file=sys.stderr, flush=True)
        yield name, database_url(admin_url, name)
    finally:
        if created:
            with uninterruptible():
                try:
                    execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as error:
                    print(f"warning: could not drop database {name}: {error!r}", file=sys.stderr)
                else:
                    print(f"dropped database {name}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ system


def host_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine since boot, or None off Linux."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values)
    return total - idle, total


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the machine's running PostgreSQL processes (the server
    is on this machine: only 127.0.0.1 is used), or None off Linux. Across a closed-loop
    window the pool's backends live throughout, so the difference of two readings is the
    database's work in between (a process that exits meanwhile is missed: an underestimate)."""
    total = 0
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            # Fields 14 and 15 (utime, stime) come after the parenthesised command name.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile, or not ours to read
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used by this process's finished children (pgbench runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The fraction (0..1) of all the machine's cores that were busy between two readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop when available (as ``channelhub serve`` does), else on
    asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def loop_name() -> str:
    """The running event loop's kind: uvloop or asyncio."""
    return "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio"


# ---------------------------------------------------------------------- channelhub


def migrate(url: str) -> float:
    """Apply channelhub's migrations to ``url`` (synchronously, no loop running); return the
    seconds it took."""
    from channelhub.kit.migrations import upgrade

    started = time.perf_counter()
    upgrade(url)
    return time.perf_counter() - started


def clean_environment() -> None:
    """Remove every CHANNELHUB_* variable from this process's environment, so that the runtime
    is built from this script's settings alone."""
    for name in [name for name in os.environ if name.startswith("CHANNELHUB_")]:
        del os.environ[name]


async def bench_channelhub(
    url: str, data_dir: Path, args: argparse.Namespace, migrate_seconds: float
) -> ChannelhubReport:
    """Build the runtime, seed, run every level, verify the ledger; always release the pool."""
    from channelhub.config import Settings
    from channelhub.kit.heap import settle
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    settings = Settings(
        data_dir=data_dir,
        database={"url": url, "pool_size": pool_size(args.concurrency)},
        recovery={"enabled": False},
        log={"level": "WARNING"},
        security={"data_key": "x" * 64},
    )
    configure_logging(level=settings.log.level, json=settings.log.json_format)
    runtime = Runtime.build(settings)
    try:
        seed_seconds, customers = await seed(runtime, args.accounts)
        await vacuum(url)
        principal_seconds, accounts, principals = await load_accounts(runtime)
        if len(accounts) != args.accounts:
            print(
                f"warning: found {len(accounts)} CUR-CNY accounts of generated customers, "
                f"expected {args.accounts}",
                file=sys.stderr,
            )
        if len(accounts) < 2:
            raise BenchError("fewer than two accounts to transfer between")
        # As `channelhub serve` does once started (kit/heap.py).
        settle()
        tag = secrets.token_hex(4)
        runs = []
        for level in args.concurrency:
            print(f"channelhub c={level}: measuring ...", file=sys.stderr, flush=True)
            result = await closed_loop(runtime, accounts, principals, level, args.duration, tag)
            runs.append(result)
            print(
                f"  c={level}: {result.rate:.0f} transfers/s, "
                f"{sum(result.refused.values())} not succeeded, "
                f"{sum(result.crashes.values())} crashed",
                file=sys.stderr,
                flush=True,
            )
        problems = await verify_ledger(runtime)
    finally:
        await runtime.close()
    return ChannelhubReport(
        migrate_seconds=migrate_seconds,
        seed_seconds=seed_seconds,
        customers=customers,
        accounts=len(accounts),
        principal_seconds=principal_seconds,
        runs=runs,
        ledger_problems=problems,
        loop=loop_name(),
    )


def pool_size(levels: list[int]) -> int:
    """The runtime's pool: 64 connections, more if a level has more workers (at most 200)."""
    return min(200, max(POOL_SIZE, *levels))


async def seed(runtime: Runtime, count: int) -> tuple[float, int]:
    """Seed the demo bank and ``count`` generated customers; return (seconds, customers)."""
    from channelhub.demo.bank import SeedContext, seed_bank, seed_customers
    from channelhub.kit.clock import utc_now
    from channelhub.runtime import data_key

    settings = runtime.settings
    ctx = SeedContext(utc_now(), settings.bank.zone, data_key(settings))
    done = 0

    def advance(added: int) -> None:
        nonlocal done
        done += added
        print(f"  seeded {done}/{count} customers", file=sys.stderr, flush=True)

    print(f"seeding the demo bank and {count} customers ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    await seed_bank(runtime.sessions, ctx)
    added = await seed_customers(runtime.sessions, ctx, count=count, advance=advance)
    return time.perf_counter() - started, added


async def vacuum(url: str) -> None:
    """VACUUM ANALYZE the freshly seeded database, as ``pgbench -i`` does to its own tables."""
    print("VACUUM ANALYZE ...", file=sys.stderr, flush=True)
    await asyncio.wait_for(_execute(url, "VACUUM ANALYZE", 600), 610)


async def load_accounts(runtime: Runtime) -> tuple[float, list[str], list[Principal]]:
    """Return (seconds, account numbers, their owners' principals), principals built once for
    every account, in one session, as the security center would after an MFA login."""
    from sqlalchemy import text

    from channelhub.cau.service import customer_principal
    from channelhub.kernel.model import AuthLevel

    started = time.perf_counter()
    async with runtime.sessions() as session:
        rows = (await session.execute(text(ACCOUNTS_QUERY))).all()
        cache: dict[str, Principal] = {}
        for _, username in rows:
            if username not in cache:
                cache[username] = await customer_principal(
                    session, username, auth_level=AuthLevel.MFA
                )
    accounts = [str(number) for number, _ in rows]
    principals = [cache[username] for _, username in rows]
    return time.perf_counter() - started, accounts, principals


@dataclass(frozen=True)
class Window:
    """The measured part of a run: transfers finishing between ``start`` and ``end`` count."""

    start: float
    end: float


async def worker(
    runtime: Runtime,
    accounts: list[str],
    principals: list[Principal],
    rng: random.Random,
    key_prefix: str,
    window: Window,
    result: RunResult,
    service: str = SERVICE,
    sources: Iterator[int] | None = None,
) -> None:
    """Transfer between random pairs back to back until the window closes; with
    ``sources``, each transfer's source is the next it yields (the target stays random)."""
    from channelhub.kernel import TransactionRequest, TxnStatus

    count = len(accounts)
    for seq in itertools.count():
        if time.perf_counter() >= window.end:
            return
        source = rng.randrange(count) if sources is None else next(sources)
        target = rng.randrange(count - 1)
        target += target >= source  # distinct from the source, uniformly
        request = TransactionRequest(
            service_id=service,
            channel="mobile",
            principal=principals[source],
            payload={
                "from_account": accounts[source],
                "to_account": accounts[target],
                "amount": AMOUNT,
                "currency": CURRENCY,
                "memo": "bench",
            },
            idempotency_key=f"{key_prefix}-{seq}",
        )
        started = time.perf_counter()
        try:
            answer = await runtime.engine.execute(request)
        except Exception as error:
            result.crashes[type(error).__name__] += 1
            if result.first_crash is None:
                result.first_crash = traceback.format_exc()
            continue
        finished = time.perf_counter()
        if not window.start <= finished <= window.end:
            continue
        if answer.status is TxnStatus.SUCCEEDED:
            result.latencies.append(finished - started)
        else:
            result.refused[f"{answer.status.value} {answer.code}"] += 1


def even_sources(count: int, seed: str) -> Iterator[int]:
    """Account indexes in one shuffled order, over and over: each account's turn to send
    comes once in every ``count``, where random picks would give some several in a row."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return itertools.cycle(order)


async def closed_loop(
    runtime: Runtime,
    accounts: list[str],
    principals: list[Principal],
    concurrency: int,
    duration: float,
    tag: str,
    service: str = SERVICE,
    pairs_seed: str = str(SEED),
    *,
    sources: Iterator[int] | None = None,
) -> RunResult:
    """Run ``concurrency`` workers for a warm-up plus ``duration`` seconds; measure the latter.
    Worker i draws its pairs from ``random.Random(f"{pairs_seed}:{concurrency}:{i}")``: the same
    seed, the same pairs. ``sources``, shared by the workers, gives the accounts the money
    leaves instead (``even_sources``)."""
    result = RunResult(concurrency, elapsed=duration)
    now = time.perf_counter()
    window = Window(now + WARMUP_SECONDS, now + WARMUP_SECONDS + duration)
    tasks = [
        asyncio.create_task(
            worker(
                runtime,
                accounts,
                principals,
                random.Random(f"{pairs_seed}:{concurrency}:{i}"),
                f"bench-{tag}-c{concurrency}-w{i}",
                window,
                result,
                service,
                sources,
            )
        )
        for i in range(concurrency)
    ]
    try:
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        cpu_before, host_before = time.process_time(), host_ticks()
        pg_before = postgres_cpu()
        await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
        cpu_after, host_after = time.process_time(), host_ticks()
        pg_after = postgres_cpu()
        result.cpu = cpu_after - cpu_before
        result.host_busy = busy_share(host_before, host_after)
        if pg_before is not None and pg_after is not None:
            result.pg_cpu = pg_after - pg_before
        done, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT)
        if pending:
            result.crashes["still running after the drain timeout"] += len(pending)
        for task in done:
            error = task.exception()
            if error is not None:  # a bug in this script, not in channelhub
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def verify_ledger(runtime: Runtime) -> list[str]:
    """Check every ledger invariant over the whole ledger."""
    from channelhub.ledger.service import verify

    print("verifying the ledger ...", file=sys.stderr, flush=True)
    async with runtime.sessions() as session:
        return await verify(session)


# ------------------------------------------------------------------------ pgbench


def pgbench_base(url: str, executable: str) -> tuple[list[str], dict[str, str]]:
    """The pgbench command's connection arguments and environment for database ``url``:
    no PG* variable of the shell (PGOPTIONS could change the server's settings), the
    password, if the URL has one, in PGPASSWORD."""
    parts = urlsplit(url)
    command = [
        executable,
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return command, env


def run_pgbench(command: list[str], env: dict[str, str], timeout: float) -> str:
    """Run pgbench in its own session (Ctrl-C kills it); return its stdout and stderr."""
    try:
        completed = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{shlex.join(command)} did not finish within {timeout:.0f} s") from None
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise BenchError(
            f"{shlex.join(command)} exited with {completed.returncode}:\n{output.strip()}"
        )
    return output


def parse_pgbench(output: str, concurrency: int, host_busy: float | None) -> PgbenchResult:
    """Read tps (without initial connection time), average latency and counts."""
    tps = TPS.search(output)
    if tps is None:
        raise BenchError(f"no tps line in pgbench's output:\n{output.strip()}")
    latency, processed, failed = (p.search(output) for p in (LATENCY, PROCESSED, FAILED))
    return PgbenchResult(
        concurrency=concurrency,
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else None,
        processed=int(processed.group(1)) if processed else None,
        failed=int(failed.group(1)) if failed else None,
        host_busy=host_busy,
    )


def pgbench_seconds(duration: float) -> int:
    """pgbench's -T takes whole seconds."""
    return max(1, math.ceil(duration))


def pgbench_run_command(base: list[str], level: int, seconds: int, database: str) -> list[str]:
    """One TPC-B-like run at ``level`` clients."""
    return [
        *base,
        "-b",
        "tpcb-like",
        "-c",
        str(level),
        "-j",
        str(min(level, 2)),
        "-T",
        str(seconds),
        "-n",
        database,
    ]


def pgbench_template(executable: str, args: argparse.Namespace) -> list[str]:
    """A run's command line with placeholders, for printing."""
    base, _ = pgbench_base(args.postgres_url, executable)
    command = pgbench_run_command(base, 0, pgbench_seconds(args.duration), "<db>")
    command[0] = Path(executable).name
    command[command.index("-c") + 1] = "C"
    command[command.index("-j") + 1] = "min(C,2)"
    return command


def bench_pgbench(executable: str, args: argparse.Namespace) -> tuple[float, list[PgbenchResult]]:
    """Initialise a fresh pgbench database, warm it up, run every level; drop it at the end.
    Return (init seconds, results)."""
    with postgres_database(args.postgres_url, "chbench_pgbench") as (name, url):
        base, env = pgbench_base(url, executable)
        print(f"pgbench -i -s {args.pgbench_scale} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        run_pgbench(
            [*base, "-i", "-s", str(args.pgbench_scale), "-q", name], env, PGBENCH_INIT_TIMEOUT
        )
        init_seconds = time.perf_counter() - started
        seconds = pgbench_seconds(args.duration)
        # Not counted: fills the connections' caches like the channelhub side's warm-up does.
        warmup = pgbench_run_command(base, max(args.concurrency), 1, name)
        run_pgbench(warmup, env, 1 + PGBENCH_MARGIN)
        results = []
        for level in args.concurrency:
            print(f"pgbench c={level}: measuring ...", file=sys.stderr, flush=True)
            before, client_before = host_ticks(), children_cpu()
            output = run_pgbench(
                pgbench_run_command(base, level, seconds, name), env, seconds + PGBENCH_MARGIN
            )
            after, client = host_ticks(), children_cpu() - client_before
            result = parse_pgbench(output, level, busy_share(before, after))
            if before is not None and after is not None and result.processed:
                busy = (after[0] - before[0]) / os.sysconf("SC_CLK_TCK")
                result.pg_cpu_per_txn = max(0.0, busy - client) / result.processed
            results.append(result)
            print(f"  c={level}: {result.tps:.0f} tps", file=sys.stderr, flush=True)
    return init_seconds, results


# ------------------------------------------------------------------------ report


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def format_table(runs: list[RunResult], pgbench: list[PgbenchResult]) -> str:
    """Both halves side by side, one row per concurrency level."""
    by_level = {r.concurrency: r for r in pgbench}
    header = (
        f"{'conc':>5} {'transfers/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'not ok':>6} "
        f"{'py cpu%':>7} {'host cpu%':>9} {'pgbench tps':>11} {'pg lat ms':>9} "
        f"{'pg host%':>8} {'ch/pgbench':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in runs:
        pg = by_level.get(r.concurrency)
        ratio = r.rate / pg.tps if pg and pg.tps else None
        not_ok = sum(r.refused.values()) + sum(r.crashes.values())
        lines.append(
            f"{r.concurrency:>5} {r.rate:>11.0f} {_fmt(r.percentile_ms(0.50), '.2f'):>8} "
            f"{_fmt(r.percentile_ms(0.99), '.2f'):>8} {not_ok:>6} "
            f"{r.cpu / r.elapsed * 100:>7.0f} "
            f"{_fmt(r.host_busy * 100 if r.host_busy is not None else None, '.0f'):>9} "
            f"{_fmt(pg.tps if pg else None, '.0f'):>11} "
            f"{_fmt(pg.latency_ms if pg else None, '.2f'):>9} "
            f"{_fmt(pg.host_busy * 100 if pg and pg.host_busy is not None else None, '.0f'):>8} "
            f"{_fmt(ratio, '.2f'):>10}"
        )
    for r in runs:
        if r.refused or r.crashes:
            detail = ", ".join(
                f"{kind} x{count}" for kind, count in (r.refused + r.crashes).most_common()
            )
            lines.append(f"not succeeded at c={r.concurrency}: {detail}")
    lines.extend(
        f"pgbench c={pg.concurrency}: {pg.failed} failed transactions"
        for pg in pgbench
        if pg.failed
    )
    return "\n".join(lines)


def database_lines(runs: list[RunResult], pgbench: list[PgbenchResult]) -> list[str]:
    """PostgreSQL's own CPU per transfer beside its CPU per TPC-B transaction, and the rate
    the database alone would allow: the ceiling no work on channelhub's side can pass."""
    by_level = {r.concurrency: r for r in pgbench}
    # A ceiling compares with a ceiling: pgbench's best rate over the levels (at one client
    # both sides wait on round trips, not on the CPU).
    best = max((r.tps for r in pgbench), default=0.0)
    cores = os.cpu_count() or 1
    lines = []
    for r in runs:
        finished = len(r.latencies) + sum(r.refused.values())
        if r.pg_cpu is None or not finished or r.pg_cpu <= 0:
            continue
        per_transfer = r.pg_cpu / finished
        ceiling = cores / per_transfer
        pg = by_level.get(r.concurrency)
        line = (
            f"database c={r.concurrency}: PostgreSQL used {per_transfer * 1000:.2f} ms CPU "
            "per transfer"
        )
        if pg is not None and pg.pg_cpu_per_txn:
            line += (
                f", {pg.pg_cpu_per_txn * 1000:.2f} ms per TPC-B transaction "
                f"({per_transfer / pg.pg_cpu_per_txn:.1f}x)"
            )
        line += (
            f"; on all {cores} cores, with no CPU left to channelhub, it caps transfers at "
            f"{ceiling:.0f}/s"
        )
        if best:
            line += f" ({ceiling / best:.2f} x pgbench's best rate, {best:.0f} tps)"
        lines.append(line)
    return lines


def target_line(runs: list[RunResult], pgbench: list[PgbenchResult]) -> str:
    """Whether this run met the target (informational)."""
    goal = (
        f"Target: channelhub reaches at least half of pgbench's rate at {TARGET_LEVEL} clients "
        f"(ch/pgbench >= {TARGET_RATIO:.2f})"
    )
    run = next((r for r in runs if r.concurrency == TARGET_LEVEL), None)
    pg = next((p for p in pgbench if p.concurrency == TARGET_LEVEL), None)
    if run is None or pg is None or not pg.tps:
        return f"{goal}: not measured in this run (needs level {TARGET_LEVEL} on both sides)."
    ratio = run.rate / pg.tps
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return f"{goal}: {verdict} in this run ({run.rate:.0f} / {pg.tps:.0f} = {ratio:.2f})."


def method_lines(
    args: argparse.Namespace, report: ChannelhubReport, pgbench_command: list[str] | None
) -> list[str]:
    """Say how the figures were measured."""
    lines = [
        f"Machine: {os.cpu_count()} CPUs; PostgreSQL, pgbench and this script share them. "
        f"The channelhub kernel runs in this one Python process (one event loop, "
        f"{report.loop}), so it can use at most one core: py cpu% near 100 means Python is the "
        f"limit.",
        f"Method, channelhub: runtime built in-process on a fresh database (pool of "
        f"{pool_size(args.concurrency)} connections, recovery worker off, logs at WARNING), no "
        f"HTTP; closed loop of C asyncio workers, each awaiting "
        f"engine.execute({SERVICE}, {AMOUNT} {CURRENCY} between two distinct random accounts "
        f"of {report.accounts}, the source's owner as an MFA customer principal, a unique "
        f"idempotency key) and starting the next when it returns; per level a "
        f"{WARMUP_SECONDS:g} s warm-up, then {args.duration:g} s measured: transfers "
        f"finishing inside that window count; p50/p99 over succeeded transfers, nearest rank. "
        f"The seeded database was VACUUM ANALYZEd before the runs.",
        f"Method, pgbench: a fresh database initialised with pgbench -i -s {args.pgbench_scale}, "
        f"a 1 s warm-up at {max(args.concurrency)} clients, then per level: "
        + (" ".join(pgbench_command) if pgbench_command else "(not run)")
        + "; tps is pgbench's figure without initial connection time.",
        "Columns: py cpu% = this process's CPU / wall time (100 = one core); host cpu% and "
        f"pg host% = busy share of all {os.cpu_count()} cores during the window; ch/pgbench = "
        "transfers/s / pgbench tps. A transfer is a bigger transaction than TPC-B's (a journal "
        "row, an account check, a balanced entry with the product's fee, balance updates, the "
        "journal's close and an outbox event), so the ratio is a cost figure, not like for like.",
        "Database lines: CPU of the machine's postgres processes during the channelhub window "
        "(/proc) per transfer that finished in it; for pgbench, the machine's busy CPU during "
        "the run less pgbench's own, per transaction processed. Dividing the cores by the "
        "first gives the transfers/s PostgreSQL alone could serve with channelhub's own code "
        "costing nothing; over pgbench's best rate of all levels, the ceiling of ch/pgbench "
        "on this machine.",
    ]
    return lines


def print_report(
    args: argparse.Namespace,
    report: ChannelhubReport,
    pgbench: list[PgbenchResult],
    pgbench_init: float | None,
    pgbench_command: list[str] | None,
    skipped: list[str],
) -> None:
    """Print the setup figures, the ledger check, the table, the target and the method."""
    print()
    print(
        f"channelhub: migrated in {report.migrate_seconds:.1f} s; seeded the demo bank and "
        f"{report.customers} generated customers in {report.seed_seconds:.1f} s "
        f"({report.accounts} CUR-CNY accounts); built {report.accounts} principals in "
        f"{report.principal_seconds:.1f} s"
    )
    if pgbench_init is not None:
        print(f"pgbench: initialised scale {args.pgbench_scale} in {pgbench_init:.1f} s")
    if report.ledger_problems:
        print(f"ledger NOT consistent ({len(report.ledger_problems)} problems):")
        for problem in report.ledger_problems[:50]:
            print(f"  {problem}")
        if len(report.ledger_problems) > 50:
            print(f"  ... and {len(report.ledger_problems) - 50} more")
    else:
        print("ledger consistent")
    print()
    print(format_table(report.runs, pgbench))
    for line in database_lines(report.runs, pgbench):
        print(line)
    for line in skipped:
        print(line)
    print(target_line(report.runs, pgbench))
    for r in report.runs:
        if r.first_crash:
            print(f"first exception at c={r.concurrency}:\n{r.first_crash}")
    for line in method_lines(args, report, pgbench_command):
        print(line)


# -------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    """Measure channelhub, then pgbench, and print the report; return the exit code."""
    check_loopback(args.postgres_url)
    clean_environment()
    executable = shutil.which("pgbench") or (
        "/usr/bin/pgbench" if Path("/usr/bin/pgbench").exists() else None
    )
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chbench-") as tmp:
        with postgres_database(args.postgres_url, "chbench_transfers") as (_, url):
            print("migrating ...", file=sys.stderr, flush=True)
            migrate_seconds = migrate(url)
            report = run_async(bench_channelhub(url, Path(tmp), args, migrate_seconds))
        pgbench: list[PgbenchResult] = []
        pgbench_init: float | None = None
        command: list[str] | None = None
        if executable is None:
            skipped.append("skipped pgbench: no pgbench executable on PATH")
        else:
            try:
                pgbench_init, pgbench = bench_pgbench(executable, args)
                command = pgbench_template(executable, args)
            except BenchError as error:
                skipped.append(f"skipped pgbench: {error}")
        for line in skipped:
            print(line, file=sys.stderr)
    print_report(args, report, pgbench, pgbench_init, command, skipped)
    crashed = any(r.crashes for r in report.runs)
    return 1 if crashed or skipped else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per level")
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=[1, 16, 64],
        help="comma-separated worker (and pgbench client) counts (default 1,16,64)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=10_000,
        help="CNY current accounts to transfer between, one per generated customer "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHANNELHUB_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL used to create and drop the bench databases "
        "(default $CHANNELHUB_TEST_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument(
        "--pgbench-scale",
        type=int,
        default=16,
        help="pgbench -i scale factor: branches, so row contention at high client counts "
        "(default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")
    if not 2 <= args.accounts <= 10_000_000:
        parser.error("--accounts must be between 2 and 10000000")
    if not 1 <= args.pgbench_scale <= 10_000:
        parser.error("--pgbench-scale must be between 1 and 10000")
    return args


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(not 1 <= v <= 200 for v in values):
        raise argparse.ArgumentTypeError("give concurrency levels between 1 and 200, e.g. 1,16,64")
    return values


def run_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a bench, turning Ctrl-C or SIGTERM into a clean exit (its databases dropped) and a
    BenchError into one line; return the exit code."""
    signal.signal(signal.SIGTERM, _raise_on_terminate)
    signal.signal(signal.SIGHUP, _raise_on_terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: the bench databases were dropped", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run, and turn Ctrl-C or SIGTERM into a clean exit."""
    return run_guarded(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
