"""Measure the ATM and POS channel: N terminals on persistent ISO 8583 connections.

It creates a fresh PostgreSQL database ``chbench_atm_<random>``, migrates it, seeds the demo
bank with ``--customers`` generated customers (each with a funded CNY account and a debit card,
PIN 1234) and registers ``max(--terminals)`` ATMs with the demo keys. It then starts a node as
its own process (``channelhub serve --iso8583-port``), so that the terminals below do not share
its CPU time, and for each level N of ``--terminals`` connects N simulated terminals (the
``channelhub atm`` simulator's code: format 0 PIN blocks under the PIN key, a retail MAC on
every message) each with a card of its own. Every terminal alternates balance inquiries and
1.00 CNY withdrawals; after each answer it waits 0.5-1.5 x ``--think`` seconds. The default,
5 s, is already several times a real ATM's pace (a customer's card-in to cash-out session sends
two or three messages in 30 to 60 s); ``--think 1`` is a harsher load, and 0 makes a closed
loop that finds the node's ceiling. After a warm-up (2 s and two think times: every terminal has
signed on and been served), it counts the answers to what was sent in the next ``--duration``
seconds and prints messages per second and p50/p99 latency (send to answer, as the terminal
sees it) per level. Target: 500 terminals, p99 under 100 ms.
After the runs it checks the ledger's invariants.

Usage::

    .venv/bin/python bench/atm.py [--terminals 10,100,500] [--duration 10] [--think 5.0]
                                  [--customers 600] [--postgres-url URL]

Only 127.0.0.1 is ever contacted. The database is dropped and the node stopped at the end,
also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# bench/transfers.py, next to this file: the throwaway database and the run guard.
from transfers import (
    DEFAULT_ADMIN_URL,
    BenchError,
    check_loopback,
    clean_environment,
    migrate,
    postgres_database,
    run_async,
    run_guarded,
)

DATA_KEY = "bench-data-key-" + "d" * 40
MASTER_KEY = "bench-master-key-" + "m" * 40
WARMUP_SECONDS = 2.0
AMOUNT_MINOR = 100  # 1.00 CNY


@dataclass
class Level:
    """What one level of terminals saw."""

    terminals: int
    elapsed: float = 0.0
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"balance": [], "withdraw": []}
    )
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        """Answers within the measured window."""
        return sum(len(values) for values in self.latencies.values())

    def percentile_ms(self, fraction: float, kind: str | None = None) -> float | None:
        """Latency at ``fraction`` of the answers (of ``kind``, or all), nearest rank, in ms."""
        values = sorted(
            self.latencies[kind] if kind else [v for vs in self.latencies.values() for v in vs]
        )
        if not values:
            return None
        return values[min(len(values) - 1, max(0, round(fraction * len(values)) - 1))] * 1000


def free_port() -> int:
    """Return a loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_env(url: str, data_dir: Path, port: int, pool: int) -> dict[str, str]:
    """The node's settings, as environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
    env.update(
        CHANNELHUB_DATA_DIR=str(data_dir),
        CHANNELHUB_DATABASE_URL=url,
        CHANNELHUB_DATABASE_POOL_SIZE=str(pool),
        CHANNELHUB_SECURITY_DATA_KEY=DATA_KEY,
        CHANNELHUB_SECURITY_MASTER_KEY=MASTER_KEY,
        CHANNELHUB_HTTP_PORT="0",
        CHANNELHUB_ISO8583_PORT=str(port),
        CHANNELHUB_ISO8583_MAX_CONNECTIONS="5000",
        CHANNELHUB_RECOVERY_ENABLED="false",
        CHANNELHUB_LOG_LEVEL="WARNING",
    )
    return env


async def prepare(url: str, data_dir: Path, customers: int, terminals: int) -> list[str]:
    """Seed the bank and register the terminals; return the card numbers to use."""
    from sqlalchemy import text

    from channelhub.cau.numbers import pan
    from channelhub.cau.service import pan_fingerprint
    from channelhub.config import Settings
    from channelhub.demo.bank import SeedContext, seed_bank, seed_customers
    from channelhub.demo.identities import DEMO_MAC_KEY, DEMO_PIN_KEY
    from channelhub.kit.clock import utc_now
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime, data_key
    from channelhub.security.terminals import register_terminal

    configure_logging(level="WARNING", json=True)
    settings = Settings(
        data_dir=data_dir,
        database={"url": url},
        security={"data_key": DATA_KEY, "master_key": MASTER_KEY},
        log={"level": "WARNING"},
    )
    runtime = Runtime.build(settings)
    try:
        ctx = SeedContext(utc_now(), settings.bank.zone, data_key(settings))
        print(f"seeding the demo bank and {customers} customers ...", file=sys.stderr)
        await seed_bank(runtime.sessions, ctx)
        await seed_customers(runtime.sessions, ctx, count=customers)
        async with runtime.sessions() as session:
            stored = set((await session.execute(text("SELECT pan_hash FROM cards"))).scalars())
        key = data_key(settings)
        cards = [
            number
            for number in (pan(serial) for serial in range(1, customers + 20))
            if pan_fingerprint(key, number) in stored
        ]
        print(f"registering {terminals} terminals ...", file=sys.stderr)
        for index in range(terminals):
            await register_terminal(
                runtime.security,
                terminal_id=f"BNCH{index:04d}",
                kind="atm",
                location="bench",
                branch_code="0101",
                pin_key=bytes.fromhex(DEMO_PIN_KEY),
                mac_key=bytes.fromhex(DEMO_MAC_KEY),
            )
        return cards
    finally:
        await runtime.close()


async def wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait until the node accepts ISO 8583 connections."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the node exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return
    raise BenchError("the node did not start listening")


async def run_level(port: int, count: int, cards: list[str], args: argparse.Namespace) -> Level:
    """Connect ``count`` terminals, let them work, and return what they measured."""
    from channelhub.channels.iso8583.terminal import Terminal
    from channelhub.demo.identities import DEMO_MAC_KEY, DEMO_PIN_KEY

    level = Level(count)
    window = {"start": float("inf"), "end": float("inf")}
    stop = asyncio.Event()
    rng = random.Random(count)

    async def terminal(index: int) -> None:
        device = Terminal(
            f"BNCH{index:04d}",
            pin_key=bytes.fromhex(DEMO_PIN_KEY),
            mac_key=bytes.fromhex(DEMO_MAC_KEY),
            stan=rng.randrange(900_000),
        )
        card = cards[index % len(cards)]
        await device.connect("127.0.0.1", port)
        try:
            # Terminals do not all start on the same millisecond.
            await asyncio.sleep(rng.random() * max(args.think, 0.05))
            kind = "balance" if index % 2 else "withdraw"
            while not stop.is_set():
                request = device.financial(
                    kind,
                    pan=card,
                    pin="1234",
                    amount_minor=AMOUNT_MINOR if kind == "withdraw" else 0,
                )
                sent = time.perf_counter()
                try:
                    answer = await device.send(request, wait_seconds=60.0)
                except (OSError, TimeoutError) as error:
                    level.errors[type(error).__name__] += 1
                    return
                done = time.perf_counter()
                # Counted by when it was sent: a slow answer at the window's end counts too.
                if window["start"] <= sent < window["end"]:
                    level.latencies[kind].append(done - sent)
                    level.codes[f"{kind} {answer.code}"] += 1
                kind = "withdraw" if kind == "balance" else "balance"
                if args.think:
                    await asyncio.sleep(args.think * (0.5 + rng.random()))
        finally:
            await device.close()

    tasks = [asyncio.create_task(terminal(index)) for index in range(count)]
    # Steady state: every terminal has started and been served a few times (its pooled
    # database connection and prepared statements, its terminal keys, are warm).
    await asyncio.sleep(WARMUP_SECONDS + 2 * max(args.think, 0.05))
    window["start"] = time.perf_counter()
    window["end"] = window["start"] + args.duration
    await asyncio.sleep(args.duration)
    level.elapsed = time.perf_counter() - window["start"]
    stop.set()
    await asyncio.wait(tasks, timeout=90)
    return level


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(levels: list[Level], args: argparse.Namespace, problems: list[str]) -> str:
    """The figures, and how they were measured."""
    lines = [
        "",
        f"ATM and POS channel: terminals on persistent ISO 8583 connections, think time "
        f"{args.think} s (x0.5..1.5), {args.duration} s measured per level after a warm-up",
        f"{'terminals':>9} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'bal p99':>8} {'wd p99':>8}  answers",
    ]
    for level in levels:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(level.codes.items()))
        errors = ", ".join(f"{k}: {v}" for k, v in level.errors.items())
        lines.append(
            f"{level.terminals:>9} {level.count / level.elapsed:>8.0f} "
            f"{_ms(level.percentile_ms(0.5)):>8} {_ms(level.percentile_ms(0.99)):>8} "
            f"{_ms(level.percentile_ms(0.99, 'balance')):>8} "
            f"{_ms(level.percentile_ms(0.99, 'withdraw')):>8}  {codes}"
            + (f"  errors {errors}" if errors else "")
        )
    top = max(levels, key=lambda level: level.terminals)
    p99 = top.percentile_ms(0.99)
    verdict = "met" if p99 is not None and p99 < 100 and not top.errors else "NOT met"
    lines += [
        f"target (500 terminals, p99 < 100 ms): {verdict} at {top.terminals} terminals",
        "method: the node runs as its own process (channelhub serve, uvloop, one worker) on "
        "PostgreSQL; the terminals run in this process; latency is from writing a request to "
        "reading its answer; each message is one MAC check, one card and PIN check (its own "
        "database transaction) and one kernel transaction.",
        "ledger invariants after the runs: " + ("ok" if not problems else "; ".join(problems)),
        f"cpus: {os.cpu_count()}",
    ]
    return "\n".join(lines)


async def verify(url: str) -> list[str]:
    """Check the ledger after the runs."""
    from channelhub.kit.db import create_engine, make_sessionmaker
    from channelhub.ledger import service as ledger

    engine = create_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            return await ledger.verify(session)
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    """Prepare, run every level against a node process, report."""
    clean_environment()
    check_loopback(args.postgres_url)
    levels: list[Level] = []
    with (
        tempfile.TemporaryDirectory(prefix="chbench-atm-") as scratch,
        postgres_database(args.postgres_url, "chbench_atm") as (_, url),
    ):
        data_dir = Path(scratch)
        migrate(url)
        top = max(args.terminals)
        cards = run_async(prepare(url, data_dir, max(args.customers, top), top))
        if len(cards) < top:
            raise BenchError(f"only {len(cards)} cards for {top} terminals")
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "channelhub", "serve"],
            env=node_env(url, data_dir, port, 32),
            stdout=subprocess.DEVNULL,
        )
        try:
            run_async(wait_listening(port, process, 60.0))
            for count in args.terminals:
                print(f"running {count} terminals ...", file=sys.stderr, flush=True)
                levels.append(run_async(run_level(port, count, cards, args)))
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        problems = run_async(verify(url))
    print(report(levels, args, problems))
    return 0 if not problems else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--terminals",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[10, 100, 500],
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--think", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHANNELHUB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run_guarded(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
