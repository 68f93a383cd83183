"""Measure the kernel's overhead: channelhub's ``system.echo`` against a bare Starlette app.

For each database (SQLite in a fresh data directory, PostgreSQL in a fresh database that is
dropped at the end) it starts ``channelhub serve`` as a subprocess, warms it up, then drives
``POST /api/v1/services/system.echo`` with a closed-loop load at each concurrency level: N
workers, each sending its next request as soon as the previous answer arrives, through one
aiohttp session. It does the same against ``bench/bare_app.py`` (no kernel, no database) and
prints requests/s, latency percentiles, errors and the ratio of bare to channelhub throughput.

Usage::

    .venv/bin/python bench/kernel.py [--duration 5] [--concurrency 1,16,64]
                                     [--databases sqlite,postgres] [--postgres-url URL]

Only 127.0.0.1 is ever contacted. Every subprocess is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
START_TIMEOUT = 90.0  # seconds for a server to print its address (migrations included)
STOP_TIMEOUT = 15.0  # seconds for a server to exit after SIGTERM before SIGKILL
REQUEST_TIMEOUT = 10.0  # seconds for one request before it counts as an error
DRAIN_TIMEOUT = 20.0  # seconds past the duration for in-flight requests to finish
WARMUP_SECONDS = 1.0
ECHO_PATH = "/api/v1/services/system.echo"
BARE_PATH = "/echo"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Target:
    """A server to measure: how to start it, where to send requests, and what it stores into."""

    name: str
    database: str
    command: list[str]
    env: dict[str, str]
    path: str
    cwd: Path


@dataclass
class RunResult:
    """The outcome of one closed-loop run at one concurrency level."""

    target: str
    database: str
    concurrency: int
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None
    client_cpu: float = 0.0

    @property
    def rps(self) -> float:
        """Successful (200) answers per second of wall time."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Latency at ``fraction`` (0..1) of the successful requests, nearest rank, in ms."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] * 1000.0


class BenchError(Exception):
    """Something prevented a measurement; the message says what."""


# ------------------------------------------------------------------- subprocesses


class Server:
    """A server subprocess in its own process group, with stdout and stderr kept in files."""

    #: What the server prints once it listens; group 1 becomes ``base_url``. A subclass for a
    #: server that announces itself differently (a simulator) sets its own.
    listening: re.Pattern[str] = LISTENING

    def __init__(self, target: Target, workdir: Path) -> None:
        """Start ``target`` and wait until it prints the address it listens on."""
        self.target = target
        self.stdout_path = workdir / f"{target.name}-{target.database}.stdout"
        self.stderr_path = workdir / f"{target.name}-{target.database}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                target.command,
                cwd=target.cwd,
                env=target.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            self.base_url = self._wait_for_address()
        except BaseException:
            self.stop()
            raise

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = self.listening.search(self.stdout_path.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.target.name} ({self.target.database}) exited with code "
                    f"{self.process.returncode} before listening; stderr:\n{self.stderr()}"
                )
            time.sleep(0.05)
        raise BenchError(
            f"{self.target.name} ({self.target.database}) did not print its address within "
            f"{START_TIMEOUT:.0f} s; stderr:\n{self.stderr()}"
        )

    def stderr(self) -> str:
        """Return what the server wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace").strip() or "(empty)"

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process has used so far, or None off Linux."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to the process group led by ``pid`` (our own child), if it still exists."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signum)


@contextmanager
def running(target: Target, workdir: Path) -> Iterator[Server]:
    """Run ``target`` for the duration of the ``with`` block, and stop it whatever happens."""
    server = Server(target, workdir)
    try:
        yield server
    finally:
        server.stop()


def _raise_on_terminate(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so that every ``finally`` runs."""
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------- targets


def server_env(overrides: dict[str, str]) -> dict[str, str]:
    """The environment for a server: ours without any CHANNELHUB_* setting, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
    env.update(overrides)
    return env


def channelhub_target(database: str, data_dir: Path, database_url: str | None) -> Target:
    """``channelhub serve`` on a free port, logging warnings only, recovery worker off."""
    settings = {
        "CHANNELHUB_DATA_DIR": str(data_dir),
        "CHANNELHUB_LOG_LEVEL": "WARNING",
        "CHANNELHUB_RECOVERY_ENABLED": "false",
    }
    if database_url is not None:
        settings["CHANNELHUB_DATABASE_URL"] = database_url
    command = [str(BIN / "channelhub"), "serve", "--host", "127.0.0.1", "--port", "0", "--upgrade"]
    return Target("channelhub", database, command, server_env(settings), ECHO_PATH, data_dir)


def bare_target(workdir: Path) -> Target:
    """``bench/bare_app.py``: Starlette under uvicorn with channelhub's server settings."""
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", "0"]
    return Target("bare", "-", command, server_env({}), BARE_PATH, workdir)


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


async def _admin(admin_url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_url.replace("+asyncpg", ""), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close(timeout=5)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """Create a fresh ``channelhub_bench_*`` database, yield its URL, and drop it afterwards."""
    check_loopback(admin_url)
    name = f"channelhub_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(asyncio.wait_for(_admin(admin_url, f'CREATE DATABASE "{name}"'), 15))
    except Exception as error:  # unreachable, refused, no permission: all mean "skip"
        raise BenchError(f"PostgreSQL at {admin_url} is not usable: {error!r}") from None
    try:
        yield database_url(admin_url, name)
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        try:
            asyncio.run(asyncio.wait_for(_admin(admin_url, drop), 30))
        except Exception as error:
            print(f"warning: could not drop database {name}: {error!r}", file=sys.stderr)


# ------------------------------------------------------------------------- load


def request_factory(run_tag: str) -> Callable[[int, int], tuple[bytes, dict[str, str]]]:
    """Build requests: a small JSON body and a unique Idempotency-Key per request."""

    def make(worker: int, seq: int) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"hello": "bank", "n": seq})
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{run_tag}-{worker}-{seq}",
        }
        return body, headers

    return make


async def worker_loop(
    session: aiohttp.ClientSession,
    url: str,
    worker: int,
    deadline: float,
    make: Callable[[int, int], tuple[bytes, dict[str, str]]],
    result: RunResult,
) -> None:
    """Send requests back to back until ``deadline``, recording latencies and errors."""
    for seq in itertools.count():
        if time.perf_counter() >= deadline:
            return
        body, headers = make(worker, seq)
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            result.errors[type(error).__name__] += 1
            continue
        if status == 200:
            result.latencies.append(time.perf_counter() - started)
        else:
            result.errors[f"HTTP {status}"] += 1


async def closed_loop(server: Server, concurrency: int, duration: float, run_tag: str) -> RunResult:
    """Run ``concurrency`` workers for ``duration`` seconds against ``server``."""
    target = server.target
    result = RunResult(target.name, target.database, concurrency, elapsed=0.0)
    url = server.base_url + target.path
    make = request_factory(run_tag)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu_before, client_before = server.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        deadline = started + duration
        workers = [worker_loop(session, url, i, deadline, make, result) for i in range(concurrency)]
        await asyncio.wait_for(asyncio.gather(*workers), duration + DRAIN_TIMEOUT)
        result.elapsed = time.perf_counter() - started
        cpu_after, client_after = server.cpu_seconds(), time.process_time()
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu = cpu_after - cpu_before
    result.client_cpu = client_after - client_before
    return result


async def check_answer(server: Server) -> None:
    """Send one request and make sure it gets the expected 200 envelope back."""
    body, headers = request_factory("check-" + secrets.token_hex(4))(0, 0)
    url = server.base_url + server.target.path
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        text = await response.text()
        status = response.status
    if status != 200:
        raise BenchError(f"{server.target.name}: HTTP {status} to a probe: {text[:300]}")
    answer = orjson.loads(text)
    if answer.get("status") != "succeeded" or answer.get("data") != orjson.loads(body):
        raise BenchError(f"{server.target.name}: unexpected answer to a probe: {text[:300]}")


async def measure(server: Server, levels: list[int], duration: float) -> list[RunResult]:
    """Check, warm up at the highest level, then run every concurrency level in turn."""
    await check_answer(server)
    tag = secrets.token_hex(4)
    await closed_loop(server, max(levels), WARMUP_SECONDS, f"{tag}-warmup")
    return [await closed_loop(server, n, duration, f"{tag}-c{n}") for n in levels]


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop when available (a cheaper client), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# ------------------------------------------------------------------------ report


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def format_table(results: list[RunResult]) -> str:
    """The results as a fixed-width table, with bare rps / channelhub rps per concurrency."""
    bare = {r.concurrency: r.rps for r in results if r.target == "bare"}
    header = (
        f"{'target':<11} {'database':<9} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'bare/this':>9} {'srv cpu%':>8} {'cli cpu%':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = bare.get(r.concurrency, 0.0) / r.rps if r.rps and r.concurrency in bare else None
        srv = r.server_cpu / r.elapsed * 100 if r.server_cpu is not None and r.elapsed else None
        cli = r.client_cpu / r.elapsed * 100 if r.elapsed else None
        lines.append(
            f"{r.target:<11} {r.database:<9} {r.concurrency:>5} {r.rps:>9.0f} "
            f"{_fmt(r.percentile_ms(0.50), '.2f'):>8} {_fmt(r.percentile_ms(0.99), '.2f'):>8} "
            f"{sum(r.errors.values()):>7} {_fmt(ratio, '.2f'):>9} "
            f"{_fmt(srv, '.0f'):>8} {_fmt(cli, '.0f'):>8}"
        )
    for r in results:
        if r.errors:
            detail = ", ".join(f"{kind} x{count}" for kind, count in r.errors.most_common())
            lines.append(f"errors {r.target}/{r.database}/c{r.concurrency}: {detail}")
    return "\n".join(lines)


def method_line(duration: float, commands: dict[str, list[str]]) -> str:
    """One line saying how the figures were measured."""
    servers = "; ".join(f"{name}: {shlex.join(_short(cmd))}" for name, cmd in commands.items())
    return (
        f"Method: closed loop (each worker sends its next request when the previous answer "
        f"arrives), aiohttp client in a separate process on the same {os.cpu_count()}-core "
        f"machine, {duration:g} s per level after a {WARMUP_SECONDS:g} s warm-up, payload "
        f'{{"hello": "bank", "n": <seq>}} with a unique Idempotency-Key per request, only 200s '
        f"counted; srv cpu% = server process CPU / wall time (PostgreSQL's own CPU not included); "
        f"servers: {servers}; channelhub env CHANNELHUB_LOG_LEVEL=WARNING "
        f"CHANNELHUB_RECOVERY_ENABLED=false."
    )


def _short(command: list[str]) -> list[str]:
    """``command`` with paths inside the repository made relative, for printing."""
    return [
        str(Path(part).relative_to(ROOT)) if part.startswith(str(ROOT)) else part
        for part in command
    ]


# -------------------------------------------------------------------------- main


def bench_target(
    target: Target, workdir: Path, levels: list[int], duration: float
) -> list[RunResult]:
    """Start ``target``, measure every level, stop it; print progress on stderr."""
    print(f"starting {target.name} ({target.database}) ...", file=sys.stderr, flush=True)
    with running(target, workdir) as server:
        print(f"  listening on {server.base_url}; measuring", file=sys.stderr, flush=True)
        results = run_async(measure(server, levels, duration))
    for r in results:
        print(f"  c={r.concurrency}: {r.rps:.0f} req/s", file=sys.stderr, flush=True)
    return results


def bench_database(
    database: str, workdir: Path, args: argparse.Namespace
) -> tuple[Target, list[RunResult]]:
    """Measure channelhub on ``database`` ("sqlite" or "postgres") in a fresh data directory."""
    data_dir = workdir / f"data-{database}"
    data_dir.mkdir()
    if database == "sqlite":
        target = channelhub_target(database, data_dir, None)
        return target, bench_target(target, workdir, args.concurrency, args.duration)
    with postgres_database(args.postgres_url) as url:
        target = channelhub_target(database, data_dir, url)
        return target, bench_target(target, workdir, args.concurrency, args.duration)


def run(args: argparse.Namespace) -> int:
    """Benchmark every requested target and print the table; return the exit code."""
    results: list[RunResult] = []
    commands: dict[str, list[str]] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chbench-") as tmp:
        workdir = Path(tmp)
        bare = bare_target(workdir)
        commands["bare"] = bare.command
        results += bench_target(bare, workdir, args.concurrency, args.duration)
        for database in args.databases:
            try:
                target, measured = bench_database(database, workdir, args)
            except BenchError as error:
                skipped.append(f"skipped {database}: {error}")
                print(skipped[-1], file=sys.stderr, flush=True)
                continue
            commands["channelhub"] = target.command
            results += measured
    print()
    print(format_table(results))
    for line in skipped:
        print(line)
    print(method_line(args.duration, commands))
    return 1 if skipped else 0


def add_server_arguments(
    parser: argparse.ArgumentParser,
    *,
    duration_help: str,
    concurrency: list[int],
    databases: list[str],
) -> None:
    """Add the options every server benchmark takes: how long, how many workers, which
    databases, and where to make PostgreSQL ones."""
    parser.add_argument("--duration", type=float, default=5.0, help=duration_help)
    shown = ",".join(str(level) for level in concurrency)
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=concurrency,
        help=f"comma-separated worker counts (default {shown})",
    )
    parser.add_argument(
        "--databases",
        type=_database_list,
        default=databases,
        help=f"comma-separated: sqlite, postgres (default {','.join(databases)})",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHANNELHUB_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL used to create and drop the bench databases "
        "(default $CHANNELHUB_TEST_POSTGRES_URL or %(default)s)",
    )


def check_duration(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a duration outside (0, 600] seconds."""
    if not 0 < args.duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(
        parser,
        duration_help="seconds per level",
        concurrency=[1, 16, 64],
        databases=["sqlite", "postgres"],
    )
    args = parser.parse_args(argv)
    check_duration(parser, args)
    return args


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(not 1 <= v <= 1024 for v in values):
        raise argparse.ArgumentTypeError("give concurrency levels between 1 and 1024, e.g. 1,16,64")
    return values


def _database_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(values) - {"sqlite", "postgres"}
    if not values or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown database(s) {sorted(unknown)}: use sqlite, postgres"
        )
    return list(dict.fromkeys(values))


def run_main(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """Run a benchmark, turning Ctrl-C, SIGTERM or SIGHUP into a clean exit (servers stopped)
    and a ``BenchError`` into one line on stderr."""
    signal.signal(signal.SIGTERM, _raise_on_terminate)
    signal.signal(signal.SIGHUP, _raise_on_terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: every server was stopped", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run."""
    return run_main(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
