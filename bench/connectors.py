"""Measure what routing a service to an external core costs: ``account.balance`` answered by the
simulated mainframe core beside the same service on the built-in ledger.

For each database (SQLite in fresh data directories, PostgreSQL in fresh databases dropped at the
end) it seeds the demo bank twice with ``channelhub seed --customers 0`` and starts two nodes
with ``channelhub serve``: ``builtin``, as shipped, and ``core``, whose settings file routes
``account.balance`` to the bundled ``core-balance`` mapping over a ``fixed`` connector to a
``channelhub simulate core`` subprocess. The simulated core holds alice's CNY account with a
balance the built-in ledger does not have (12,345.67), so an answer shows where it came from.
Then, at each concurrency level, it drives the nodes with closed loops of alice's
``POST /api/v1/services/account.balance``, in four stretches of half the duration each (builtin,
core, core, builtin), and prints requests/s, latency percentiles, errors, the CPU of the node and
of the simulated core, and builtin/core throughput.

Usage::

    .venv/bin/python bench/connectors.py [--duration 5] [--concurrency 16,64]
                                         [--databases sqlite,postgres] [--postgres-url URL]
                                         [--pool-size 16] [--quick]

Only 127.0.0.1 is ever contacted. Every subprocess is stopped, the temporary files removed and
the PostgreSQL databases dropped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import re
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

# bench/auth.py and bench/kernel.py, next to this file: seeding, logging in, starting and stopping
# servers, the throwaway PostgreSQL database and the command-line parsing are theirs, so the
# benchmarks compare.
from auth import error_kind, log_in, post_json, seed

from kernel import (
    BIN,
    REQUEST_TIMEOUT,
    BenchError,
    RunResult,
    Server,
    Target,
    add_server_arguments,
    channelhub_target,
    check_duration,
    postgres_database,
    run_async,
    run_main,
    running,
    server_env,
)

BALANCE_PATH = "/api/v1/services/account.balance"
LIST_PATH = "/api/v1/services/account.list"
#: alice's CNY current account as a fresh demo numbers it (examples/external-core).
ACCOUNT = "0101000000000189"
#: What the simulated core says alice has: a figure the built-in ledger's demo does not hold.
CORE_BALANCE = "12345.67"
CORE_ACCOUNTS = f"""\
# Written by bench/connectors.py: alice's and bob's CNY accounts, alice's with a balance of its own.
- {{number: "{ACCOUNT}", holder: ALICE, currency: CNY, balance: "{CORE_BALANCE}"}}
- {{number: "0102000000000333", holder: BOB, currency: CNY, balance: "50000.00"}}
"""
WARMUP_SECONDS = 1.0
DRAIN_TIMEOUT = 20.0  # seconds past the duration for in-flight requests to finish
QUICK_DURATION = 2.0


# ---------------------------------------------------------------------------- data


@dataclass
class ConnectorRun(RunResult):
    """One closed-loop run, with the simulated core's CPU during it."""

    core_cpu: float | None = None


@dataclass
class Node:
    """A running node and what its answers must say."""

    server: Server
    expected_balance: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(4))


class CoreServer(Server):
    """``channelhub simulate core``: it prints ``... listening on 127.0.0.1:<port>``."""

    listening = re.compile(r"listening on (127\.0\.0\.1:\d+)")

    @property
    def port(self) -> int:
        """The port the simulated core listens on."""
        return int(self.base_url.rsplit(":", 1)[1])


# ------------------------------------------------------------------------ servers


def core_simulator(workdir: Path) -> Target:
    """The simulated core holding CORE_ACCOUNTS, on a free port."""
    accounts = workdir / "core-accounts.yaml"
    accounts.write_text(CORE_ACCOUNTS, encoding="utf-8")
    command = [str(BIN / "channelhub"), "simulate", "core", "--host", "127.0.0.1", "--port", "0"]
    command += ["--accounts", str(accounts)]
    return Target("simulator", "-", command, server_env({}), "", workdir)


def core_settings(workdir: Path, port: int, pool_size: int) -> Path:
    """A settings file like examples/external-core/channelhub.toml, with only account.balance
    routed, to the simulated core's actual port."""
    path = workdir / "channelhub-core.toml"
    path.write_text(
        f"""\
[connectors.core]
kind = "fixed"
host = "127.0.0.1"
port = {port}
timeout_ms = 2000
pool_size = {pool_size}
retries = 2
framing = {{ prefix_bytes = 2 }}
breaker = {{ failure_threshold = 5, recovery_seconds = 10 }}

[routes]
"account.balance" = "core-balance"
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def started_simulator(workdir: Path) -> Iterator[CoreServer]:
    """Run the simulated core for the ``with`` block, and stop it whatever happens."""
    simulator = CoreServer(core_simulator(workdir), workdir)
    try:
        yield simulator
    finally:
        simulator.stop()


def node_target(
    name: str, database: str, workdir: Path, url: str | None, config: Path | None
) -> Target:
    """``channelhub serve`` in a data directory of its own, as bench/kernel.py runs it, with
    ``config`` as its settings file when given."""
    data_dir = workdir / f"data-{name}-{database}"
    data_dir.mkdir()
    target = channelhub_target(database, data_dir, url)
    env = dict(target.env)
    if config is not None:
        env["CHANNELHUB_CONFIG"] = str(config)
    return dataclasses.replace(target, name=name, env=env, path=BALANCE_PATH)


# --------------------------------------------------------------------------- load


async def alice_token(http: aiohttp.ClientSession, node: Node) -> str:
    """A fresh access token of alice's: each run logs in anew, so that no token expires during
    one (they last 300 s by default)."""
    pair = await log_in(http, node.server.base_url, "alice")
    return str(pair["access_token"])


async def probe(node: Node) -> str:
    """Check that alice holds ACCOUNT on this node and return its available balance there."""
    base_url = node.server.base_url
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT * 3)
    ) as http:
        token = await alice_token(http, node)
        listed = await post_json(http, base_url + LIST_PATH, b"{}", headers(token, "probe-list"))
        numbers = [account["number"] for account in listed["data"]["accounts"]]
        if ACCOUNT not in numbers:
            raise BenchError(
                f"{node.server.target.name}: alice's accounts are {numbers}, not {ACCOUNT} as "
                f"examples/external-core expects; the core would not know her account"
            )
        body = orjson.dumps({"account": ACCOUNT})
        answer = await post_json(http, base_url + BALANCE_PATH, body, headers(token, "probe"))
    balance = answer.get("data", {}).get("available_balance")
    if not isinstance(balance, str):
        raise BenchError(f"{node.server.target.name}: no available_balance in {answer}")
    return balance


def headers(token: str, key: str) -> dict[str, str]:
    """A balance call's headers; a unique Idempotency-Key makes each a new transaction, as in
    bench/auth.py."""
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": f"conn-{key}",
    }


def check(answer: bytes, expected: str) -> str | None:
    """Why a 200 answer does not count, or None when it says alice's expected balance."""
    try:
        data = orjson.loads(answer).get("data") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return "200 not JSON"
    balance = data.get("available_balance") if isinstance(data, dict) else None
    if balance is None:
        return "200 without available_balance"
    if balance != expected:
        return f"wrong balance {balance}"
    return None


async def worker(
    http: aiohttp.ClientSession,
    node: Node,
    token: str,
    worker_id: int,
    deadline: float,
    run: ConnectorRun,
) -> None:
    """Send balance inquiries back to back until ``deadline``, recording latencies and errors."""
    url = node.server.base_url + BALANCE_PATH
    body = orjson.dumps({"account": ACCOUNT})
    prefix = f"{node.tag}-{run.concurrency}-{secrets.token_hex(3)}-{worker_id}"
    for seq in itertools.count():
        if time.perf_counter() >= deadline:
            return
        started = time.perf_counter()
        try:
            async with http.post(url, data=body, headers=headers(token, f"{prefix}-{seq}")) as r:
                answer = await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError) as error:
            run.errors[type(error).__name__] += 1
            continue
        elapsed = time.perf_counter() - started
        problem = (
            error_kind(status, answer) if status != 200 else check(answer, node.expected_balance)
        )
        if problem is None:
            run.latencies.append(elapsed)
        else:
            run.errors[problem] += 1


async def closed_loop(
    node: Node, simulator: CoreServer, duration: float, run: ConnectorRun
) -> None:
    """``run.concurrency`` workers for ``duration`` seconds against ``node``, with a fresh
    token; answers, errors, wall time and CPU are added to ``run``."""
    connector = aiohttp.TCPConnector(limit=run.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        token = await alice_token(http, node)
        before = node.server.cpu_seconds(), simulator.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        deadline = started + duration
        workers = [worker(http, node, token, i, deadline, run) for i in range(run.concurrency)]
        await asyncio.wait_for(asyncio.gather(*workers), duration + DRAIN_TIMEOUT)
        run.elapsed += time.perf_counter() - started
        after = node.server.cpu_seconds(), simulator.cpu_seconds(), time.process_time()
    run.server_cpu = _add(run.server_cpu, before[0], after[0])
    run.core_cpu = _add(run.core_cpu, before[1], after[1])
    run.client_cpu += after[2] - before[2]


def new_run(node: Node, concurrency: int) -> ConnectorRun:
    """An empty run of ``node`` at ``concurrency``."""
    target = node.server.target
    return ConnectorRun(
        target.name, target.database, concurrency, 0.0, server_cpu=0.0, core_cpu=0.0
    )


def _add(total: float | None, before: float | None, after: float | None) -> float | None:
    """``total`` plus what a CPU counter moved by, or None when a counter is unknown."""
    return None if total is None or before is None or after is None else total + after - before


async def measure(
    builtin: Node, core: Node, simulator: CoreServer, levels: list[int], duration: float
) -> list[ConnectorRun]:
    """Probe both nodes, warm each up at the highest level, then run every level in four
    stretches of half the duration each, builtin, core, core, builtin, so that a machine or a
    database drifting over time weighs on both alike."""
    builtin.expected_balance = await probe(builtin)
    core.expected_balance = await probe(core)
    if core.expected_balance != CORE_BALANCE:
        raise BenchError(
            f"the core node answered {core.expected_balance}, not the simulated core's "
            f"{CORE_BALANCE}: the route did not take effect"
        )
    if builtin.expected_balance == CORE_BALANCE:
        raise BenchError(f"the built-in ledger also holds {CORE_BALANCE}: change CORE_BALANCE")
    for node in (builtin, core):
        await closed_loop(node, simulator, WARMUP_SECONDS, new_run(node, max(levels)))
    runs: list[ConnectorRun] = []
    for level in levels:
        print(f"  c={level} ...", file=sys.stderr, flush=True)
        measured = {node.server.target.name: new_run(node, level) for node in (builtin, core)}
        for node in (builtin, core, core, builtin):
            await closed_loop(node, simulator, duration / 2, measured[node.server.target.name])
        runs += measured.values()
    return runs


def bench_database(
    database: str, workdir: Path, simulator: CoreServer, args: argparse.Namespace
) -> list[ConnectorRun]:
    """Seed and start both nodes on ``database`` ("sqlite" or "postgres"), measure, stop."""
    config = core_settings(workdir, simulator.port, args.pool_size)
    with ExitStack() as stack:
        nodes: list[Node] = []
        for name, settings in (("builtin", None), ("core", config)):
            url = None
            if database == "postgres":
                url = stack.enter_context(postgres_database(args.postgres_url))
            target = node_target(name, database, workdir, url, settings)
            print(f"seeding {name} ({database}) ...", file=sys.stderr, flush=True)
            seed(target, workdir)
            print(f"starting {name} ({database}) ...", file=sys.stderr, flush=True)
            nodes.append(Node(stack.enter_context(running(target, workdir))))
        return run_async(measure(nodes[0], nodes[1], simulator, args.concurrency, args.duration))


# ------------------------------------------------------------------------ report


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _share(cpu: float | None, elapsed: float) -> float | None:
    return cpu / elapsed * 100 if cpu is not None and elapsed > 0 else None


def _per_request(run: ConnectorRun) -> float | None:
    """The node's CPU microseconds per counted answer."""
    if run.server_cpu is None or not run.latencies:
        return None
    return run.server_cpu / len(run.latencies) * 1e6


def format_table(runs: list[ConnectorRun]) -> str:
    """The runs as a fixed-width table, with builtin req/s / core req/s on each core row."""
    builtin = {(r.database, r.concurrency): r.rps for r in runs if r.target == "builtin"}
    header = (
        f"{'target':<8} {'database':<9} {'conc':>5} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'srv cpu%':>8} {'srv us/req':>10} {'core cpu%':>9} {'cli cpu%':>8} "
        f"{'builtin/core':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in runs:
        key = (r.database, r.concurrency)
        ratio = builtin[key] / r.rps if r.target == "core" and r.rps and key in builtin else None
        lines.append(
            f"{r.target:<8} {r.database:<9} {r.concurrency:>5} {r.rps:>7.0f} "
            f"{_fmt(r.percentile_ms(0.50), '.2f'):>8} {_fmt(r.percentile_ms(0.99), '.2f'):>8} "
            f"{sum(r.errors.values()):>7} {_fmt(_share(r.server_cpu, r.elapsed), '.0f'):>8} "
            f"{_fmt(_per_request(r), '.0f'):>10} {_fmt(_share(r.core_cpu, r.elapsed), '.0f'):>9} "
            f"{_fmt(_share(r.client_cpu, r.elapsed), '.0f'):>8} {_fmt(ratio, '.2f'):>12}"
        )
    for r in runs:
        if r.errors:
            detail = ", ".join(f"{kind} x{count}" for kind, count in r.errors.most_common())
            lines.append(f"errors {r.target}/{r.database}/c{r.concurrency}: {detail}")
    return "\n".join(lines)


def method_line(args: argparse.Namespace, simulator: list[str]) -> str:
    """One paragraph saying how the figures were measured."""
    return (
        f"Method: on a {os.cpu_count()}-CPU machine shared by every process, two nodes per "
        f"database (`channelhub seed --customers 0`, then `channelhub serve --port 0 --upgrade` "
        f"with CHANNELHUB_LOG_LEVEL=WARNING CHANNELHUB_RECOVERY_ENABLED=false): builtin as "
        f'shipped; core with CHANNELHUB_CONFIG routing "account.balance" = "core-balance" over '
        f"a fixed connector (pool_size {args.pool_size}, timeout 2000 ms) to "
        f"`{shlex.join(simulator)}` holding alice's {ACCOUNT} at {CORE_BALANCE}. Closed loops "
        f"(each worker sends its next request when its answer arrives) from an aiohttp client "
        f"on uvloop in this process, alice's bearer token (a fresh login per stretch), "
        f'POST {BALANCE_PATH} {{"account": "{ACCOUNT}"}} with a unique Idempotency-Key, '
        f"{args.duration:g} s per row after a {WARMUP_SECONDS:g} s warm-up of each node at the "
        f"highest level, in stretches of {args.duration / 2:g} s: builtin, core, core, builtin. "
        f"Only 200 answers whose "
        f"available_balance is the node's (the core's {CORE_BALANCE} on core) count. "
        f"req/s = counted answers / wall time; srv, core, cli cpu% = CPU of the node, the "
        f"simulated core, this client / wall time, 100 = one core (PostgreSQL's not included); "
        f"srv us/req = the node's CPU / counted answers; "
        f"builtin/core = builtin req/s / core req/s at the same level."
    )


# -------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    """Start the simulated core, benchmark every database, print the table."""
    runs: list[ConnectorRun] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chbench-conn-") as tmp:
        workdir = Path(tmp)
        print("starting the simulated core ...", file=sys.stderr, flush=True)
        with started_simulator(workdir) as simulator:
            command = [Path(simulator.target.command[0]).name, *simulator.target.command[1:7]]
            for database in args.databases:
                try:
                    runs += bench_database(database, workdir, simulator, args)
                except BenchError as error:
                    skipped.append(f"skipped {database}: {error}")
                    print(skipped[-1], file=sys.stderr, flush=True)
    print()
    print(format_table(runs))
    for line in skipped:
        print(line)
    print(method_line(args, command))
    return 1 if skipped else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(
        parser,
        duration_help="seconds per target and level",
        concurrency=[16, 64],
        databases=["sqlite"],
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=16,
        help="connections from the core node to the simulated core (default 16, the example's)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DURATION:g} s per target and level, SQLite only, whatever else is given",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.databases = QUICK_DURATION, ["sqlite"]
    check_duration(parser, args)
    if not 1 <= args.pool_size <= 1024:
        parser.error("--pool-size must be between 1 and 1024")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run."""
    return run_main(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
