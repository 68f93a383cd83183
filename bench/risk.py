"""Measure what limits and risk control cost: the rules alone, then a transfer with and without.

Part 1, **rules** (no database): a rule set of ``--rules`` CEL rules of the shapes a bank
writes (amount thresholds, velocity features, first-seen beneficiary or device, night hours,
list hits, customer fields) is compiled the way the engine compiles it (one program for the
whole set, handed only the fields its rules read) and evaluated against ``--evaluations``
random transactions, each way in a pass of its own. It prints the time per transaction (mean
and p99) beside the same rules run one program each, and the default rules alone. Target:
100 rules in under 1 ms per transaction.

Part 2, **cost** (PostgreSQL, and Redis when reachable): a fresh database
``chbench_risk_<random>`` is migrated and seeded with the demo bank and ``--accounts``
generated customers, the demo's bank limits and the default risk rules, then primed with a
few seconds of transfers and analyzed (so that PostgreSQL plans the controls' reads on tables
that hold rows, as in service; see ``prime``). One node, with the database pool a node has by
default (``--pool-size``: workers beyond it wait for a connection, as on a served node), runs
closed loops of ``--concurrency`` workers (as bench/transfers.py does), each account sending in
turn, on three services that differ only in their flow:

* ``bare``: transfer.internal without ``limits.reserve`` and ``risk.evaluate``;
* ``limits``: with ``limits.reserve`` only;
* ``full``: transfer.internal as shipped, limits and risk (counters and features in the
  database);

and, when Redis answers at ``--redis-url``, a second node on the same database runs ``full``
with counters and features in Redis. The variants take turns, ``--rounds`` times, so that a
drift of the machine hits them all alike. It prints transfers per second, p50 and p99 per
variant and the cost of each against ``bare``. Target: ``full`` costs under 25 %.

Usage::

    .venv/bin/python bench/risk.py [--rules 100] [--evaluations 5000]
                                   [--duration 5] [--rounds 2] [--concurrency 16]
                                   [--pool-size 10] [--accounts 10000]
                                   [--postgres-url URL] [--redis-url URL] [--skip-cost]

Only 127.0.0.1 is ever contacted. The database and the Redis keys (under a random prefix)
are removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

# bench/transfers.py, next to this file: the throwaway database, seeding, the closed loop.
from transfers import (
    DEFAULT_ADMIN_URL,
    SEED,
    RunResult,
    check_loopback,
    clean_environment,
    closed_loop,
    even_sources,
    load_accounts,
    migrate,
    postgres_database,
    run_async,
    run_guarded,
    seed,
    vacuum,
    verify_ledger,
)

if TYPE_CHECKING:
    from channelhub.config import Settings
    from channelhub.kernel import Principal
    from channelhub.runtime import Runtime

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RULES_TARGET_MS = 1.0
COST_TARGET = 0.25
#: The variants' services: transfer.internal as shipped, and two copies with fewer steps.
VARIANTS = {"bare": "bench.transfer.bare", "limits": "bench.transfer.limits"}
CONTROL_STEPS = {"bare": {"limits.reserve", "risk.evaluate"}, "limits": {"risk.evaluate"}}


# ------------------------------------------------------------------------- rules


def rule_expressions(count: int, rng: random.Random) -> list[str]:
    """``count`` rules of the shapes a bank's rule book holds, thresholds drawn at random."""
    shapes = [
        "txn.amount > {big} && features.new_beneficiary",
        "features.customer_count_5m >= {n}",
        "features.customer_sum_24h > {big} && txn.channel == 'mobile'",
        "(txn.hour >= 23 || txn.hour < 6) && features.new_device",
        "lists.deny",
        "lists.watch && txn.amount > {small}",
        "features.device_count_1h > {n} && features.new_device",
        "features.beneficiary_count_24h > {n} && txn.amount > {small}",
        "customer.kyc_level < 2 && txn.amount > {small}",
        "customer.segment in ['retail', 'student'] && txn.amount > {big}",
        "txn.currency == 'USD' && txn.amount > {small}",
        "customer.account_age_days < {days} && features.new_beneficiary",
        "features.address_count_5m > {n} && txn.service == 'transfer.internal'",
        "features.minutes_since_password_change < {days} && txn.amount > {small}",
    ]
    return [
        rng.choice(shapes).format(
            big=rng.randrange(100_000, 10_000_000),
            small=rng.randrange(1_000, 100_000),
            n=rng.randrange(2, 30),
            days=rng.randrange(1, 90),
        )
        for _ in range(count)
    ]


def activation(rng: random.Random) -> dict[str, Any]:
    """A random transaction, customer, features and list hits, as the engine builds them."""
    from channelhub.risk.rules import sample_activation

    values = sample_activation()
    txn, customer, features = values["txn"], values["customer"], values["features"]
    txn.update(
        amount=rng.randrange(1, 5_000_000),
        currency=rng.choice(["CNY", "CNY", "CNY", "USD"]),
        channel=rng.choice(["mobile", "web", "teller", "atm"]),
        hour=rng.randrange(24),
        minute=rng.randrange(60),
    )
    customer.update(
        segment=rng.choice(["retail", "vip", "student", "company"]),
        kyc_level=rng.randrange(1, 4),
        account_age_days=rng.randrange(0, 3000),
    )
    for name in features:
        if name.endswith(("_count_5m", "_count_1h", "_count_24h")):
            features[name] = rng.randrange(0, 40)
        elif "_sum_" in name:
            features[name] = rng.randrange(0, 20_000_000)
    features.update(
        new_beneficiary=rng.random() < 0.3,
        new_device=rng.random() < 0.1,
        minutes_since_password_change=rng.randrange(0, 100_000),
    )
    values["lists"].update(deny=rng.random() < 0.01, watch=rng.random() < 0.05)
    return values


@dataclass
class RulesResult:
    """Timings of one way of evaluating one rule set, in microseconds per transaction."""

    label: str
    rules: int
    timings_us: list[float] = field(default_factory=list)

    def mean(self) -> float:
        """Mean microseconds per transaction."""
        return statistics.fmean(self.timings_us)

    def p99(self) -> float:
        """99th percentile, microseconds per transaction."""
        ordered = sorted(self.timings_us)
        return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]


def bench_rules(count: int, evaluations: int) -> list[RulesResult]:
    """Time the combined program, the rules one by one, and the default rules."""
    from channelhub.risk.defaults import DEFAULT_RULES
    from channelhub.risk.rules import Rule, RuleSet, compile_rule

    rng = random.Random(20_261_202)
    expressions = rule_expressions(count, rng)
    rules = [
        Rule(f"r{i}", 1, expression, rng.choice(["allow", "challenge", "review"]), 10, "review")
        for i, expression in enumerate(expressions)
    ]
    defaults = [
        Rule(body.name, 1, body.expression, body.outcome, body.score, "review")
        for body in DEFAULT_RULES
    ]
    inputs = [activation(rng) for _ in range(evaluations)]
    combined, shipped = RuleSet(rules), RuleSet(defaults)
    results = [
        RulesResult(f"{count} rules, one program (the engine)", count),
        RulesResult(f"{count} rules, one program each", count),
        RulesResult(f"the {len(defaults)} default rules", len(defaults)),
    ]
    one_each = [compile_rule(rule.expression) for rule in rules]
    # The thousands of inputs built above are no garbage: keep the collector from scanning
    # them again and again inside the timed calls (a node's heap holds no such pile).
    gc.collect()
    gc.freeze()
    try:
        # Each way in a pass of its own, as a node runs one rule set transaction after
        # transaction (interleaved, the 100 programs one by one evict the others' caches).
        for values in inputs:
            # As the engine: the rule set is handed only what its rules read (timed with it).
            started = time.perf_counter()
            combined.evaluate(combined.trim(values), error_outcome="review")
            results[0].timings_us.append((time.perf_counter() - started) * 1e6)
        for values in inputs:
            started = time.perf_counter()
            for program in one_each:
                # As the engine: a failing rule is recorded, never raised.
                with contextlib.suppress(Exception):
                    program.execute(values)
            results[1].timings_us.append((time.perf_counter() - started) * 1e6)
        for values in inputs:
            started = time.perf_counter()
            shipped.evaluate(shipped.trim(values), error_outcome="review")
            results[2].timings_us.append((time.perf_counter() - started) * 1e6)
    finally:
        gc.unfreeze()
    return results


def rules_table(results: list[RulesResult]) -> str:
    """The rules part's table."""
    lines = [f"{'evaluation':<40} {'mean µs':>9} {'p99 µs':>9}"]
    lines += [f"{r.label:<40} {r.mean():>9.1f} {r.p99():>9.1f}" for r in results]
    engine = results[0]
    verdict = "met" if engine.mean() / 1000 < RULES_TARGET_MS else "NOT met"
    lines.append(
        f"target: {engine.rules} rules in under {RULES_TARGET_MS:g} ms per transaction: "
        f"{verdict} ({engine.mean() / 1000:.3f} ms)"
    )
    return "\n".join(lines)


# -------------------------------------------------------------------------- cost


def write_variants(directory: Path) -> Path:
    """Write the ``bare`` and ``limits`` copies of the shipped transfer.internal into
    ``directory`` (a catalog path); return it."""
    from channelhub.kernel.catalog import BUILTIN_CATALOG

    shipped = yaml.safe_load((BUILTIN_CATALOG / "transfer" / "internal.yaml").read_text())
    for variant, service in VARIANTS.items():
        definition = dict(shipped)
        definition["id"] = service
        definition["flow"] = [
            step for step in shipped["flow"] if step["step"] not in CONTROL_STEPS[variant]
        ]
        (directory / f"{variant}.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
    return directory


@dataclass
class Variant:
    """One variant's runs, summed over the rounds."""

    name: str
    runs: list[RunResult] = field(default_factory=list)

    def rate(self) -> float:
        """Succeeded transfers per second over every measured window."""
        elapsed = sum(run.elapsed for run in self.runs)
        return sum(len(run.latencies) for run in self.runs) / elapsed if elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Latency at ``fraction`` over every run, nearest rank, in ms."""
        merged = RunResult(0, 1.0, [x for run in self.runs for x in run.latencies])
        return merged.percentile_ms(fraction)

    def refused(self) -> int:
        """Transfers that did not succeed (a limit, a rule)."""
        return sum(sum(run.refused.values()) + sum(run.crashes.values()) for run in self.runs)

    def crashed(self) -> bool:
        """Whether an exception escaped the engine."""
        return any(run.crashes for run in self.runs)

    def cpu_ms(self) -> tuple[float, float | None]:
        """CPU per succeeded transfer, in ms: this process's (node and load generator), and
        PostgreSQL's (None where /proc cannot be read)."""
        done = sum(len(run.latencies) for run in self.runs)
        if not done:
            return float("nan"), None
        node = sum(run.cpu for run in self.runs) / done * 1000
        if any(run.pg_cpu is None for run in self.runs):
            return node, None
        return node, sum(run.pg_cpu or 0.0 for run in self.runs) / done * 1000


def node_pool_size() -> int:
    """The database pool a node has unless configured otherwise (``[database] pool_size``)."""
    from channelhub.config import DatabaseSettings

    return int(DatabaseSettings.model_fields["pool_size"].default)


def node_settings(
    url: str, data_dir: Path, catalog: Path, pool: int, redis: dict[str, str]
) -> Settings:
    """A bench node's settings: the shipped catalog plus the variants, no recovery worker."""
    from channelhub.config import Settings

    sections: dict[str, Any] = {
        "database": {"url": url, "pool_size": pool},
        "catalog": {"paths": [catalog]},
        "recovery": {"enabled": False},
        "log": {"level": "WARNING"},
        "security": {"data_key": "x" * 64},
    }
    if redis:
        sections["redis"] = redis
    return Settings(data_dir=data_dir, **sections)


async def redis_reachable(url: str) -> str | None:
    """Return why Redis at ``url`` cannot be used, or None when it answers."""
    from redis.asyncio import Redis

    check_loopback(url.replace("redis://", "postgresql://", 1))
    client = Redis.from_url(url, socket_connect_timeout=2.0)
    try:
        await client.ping()
    except Exception as error:  # refused, timeout, auth
        return f"Redis at {url} does not answer: {error!r}"
    finally:
        await client.aclose()
    return None


async def remove_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2.0)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


async def install_controls(runtime: Runtime) -> None:
    """The demo's bank limits and the default rules, as ``channelhub demo`` installs them."""
    from channelhub.demo.controls import seed_controls
    from channelhub.kit.clock import utc_now

    await seed_controls(runtime.sessions, now=utc_now())
    runtime.limits.invalidate()
    runtime.risk.invalidate()


async def bench_cost(
    url: str, data_dir: Path, args: argparse.Namespace, redis_note: str | None
) -> tuple[list[Variant], list[str]]:
    """Seed, then let the variants take turns; return them and the ledger's problems."""
    from channelhub.kit.heap import settle
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    catalog = write_variants(data_dir / "catalog-variants")
    pool = args.pool_size
    plain = Runtime.build(node_settings(url, data_dir, catalog, pool, {}))
    configure_logging(level="WARNING", json=False)
    prefix = f"chbench-risk:{secrets.token_hex(4)}:"
    shared: Runtime | None = None
    try:
        await seed(plain, args.accounts)
        await install_controls(plain)
        await plain.start()
        _, accounts, principals = await load_accounts(plain)
        tag = secrets.token_hex(4)
        # Each variant sends from every account in turn, continuing its own cycle from round
        # to round: a customer's transfers in the database's activity come minutes apart, as
        # an innocent customer's do, where random picks gave some six within five minutes,
        # which the burst rule holds for review (a policy's outcome, not the controls' cost).
        # The priming continues as full's.
        cycles: defaultdict[str, Iterator[int]] = defaultdict(
            lambda: even_sources(len(accounts), f"{SEED}:sources")
        )
        await prime(plain, accounts, principals, args, tag, cycles["full"])
        await vacuum(url)
        nodes: list[tuple[str, Runtime, str]] = [
            ("bare", plain, VARIANTS["bare"]),
            ("limits", plain, VARIANTS["limits"]),
            ("full", plain, "transfer.internal"),
        ]
        if redis_note is None:
            redis = {"url": args.redis_url, "prefix": prefix}
            shared = Runtime.build(node_settings(url, data_dir, catalog, pool, redis))
            await shared.start()
            nodes.append(("full (Redis)", shared, "transfer.internal"))
        # As `channelhub serve` does once started (kit/heap.py).
        settle()
        variants = {name: Variant(name) for name, _, _ in nodes}
        for round_number in range(1, args.rounds + 1):
            for name, runtime, service in nodes:
                print(f"round {round_number}: {name} ...", file=sys.stderr, flush=True)
                result = await run_variant(
                    runtime,
                    accounts,
                    principals,
                    args,
                    f"{tag}-{round_number}-{name}",
                    service,
                    # The variants of a round send to the same targets; each round others.
                    pairs_seed=f"{SEED}:{round_number}",
                    sources=cycles[name],
                )
                variants[name].runs.append(result)
                done = max(1, len(result.latencies))
                pg = "" if result.pg_cpu is None else f", pg {result.pg_cpu / done * 1000:.2f} ms"
                print(
                    f"  {result.rate:.0f} transfers/s, {sum(result.refused.values())} not "
                    f"succeeded {dict(result.refused)}; CPU per transfer: py "
                    f"{result.cpu / done * 1000:.2f} ms{pg}",
                    file=sys.stderr,
                    flush=True,
                )
        problems = await verify_ledger(plain)
    finally:
        if shared is not None:
            await shared.close()
            await remove_keys(args.redis_url, prefix)
        await plain.close()
    return list(variants.values()), problems


#: Seconds of ``full`` transfers before the statistics are taken (not measured).
PRIME_SECONDS = 2.0


async def prime(
    runtime: Runtime,
    accounts: list[str],
    principals: list[Principal],
    args: argparse.Namespace,
    tag: str,
    sources: Iterator[int],
) -> None:
    """Give the controls' tables (limit counters, risk activity, sightings, decisions) rows
    before ``VACUUM ANALYZE``, as a database in service has them.

    Analyzed while empty, PostgreSQL reckons a scan of the whole table the cheapest way to read
    one customer's activity or sightings, and each connection keeps that plan as its generic
    one while the table grows: the reads of ``full`` then cost more with every round (0.5 ms
    of PostgreSQL's CPU more per transfer, round after round, on the 2-core machine). In
    service, autovacuum analyzes a growing table and the plans are made again; this machine's
    PostgreSQL runs with autovacuum off, so the bench analyzes once, after priming."""
    print(f"priming the controls' tables ({PRIME_SECONDS:g} s of full) ...", file=sys.stderr)
    await closed_loop(
        runtime,
        accounts,
        principals,
        args.concurrency,
        PRIME_SECONDS,
        f"{tag}-prime",
        "transfer.internal",
        f"{SEED}:prime",
        sources=sources,
    )


async def run_variant(
    runtime: Runtime,
    accounts: list[str],
    principals: list[Principal],
    args: argparse.Namespace,
    tag: str,
    service: str,
    pairs_seed: str,
    sources: Iterator[int],
) -> RunResult:
    """One closed loop of one variant."""
    return await closed_loop(
        runtime,
        accounts,
        principals,
        args.concurrency,
        args.duration,
        tag.replace(" ", ""),
        service,
        pairs_seed,
        sources=sources,
    )


def cost_table(variants: list[Variant], concurrency: int) -> str:
    """The cost part's table."""
    bare = variants[0].rate()
    lines = [
        f"{'variant (c=' + str(concurrency) + ')':<16} {'transfers/s':>11} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'not ok':>7} {'cost':>7} {'py ms':>6} {'pg ms':>6}"
    ]
    for variant in variants:
        p50, p99 = variant.percentile_ms(0.5), variant.percentile_ms(0.99)
        cost = 1 - variant.rate() / bare if bare else float("nan")
        node_ms, pg_ms = variant.cpu_ms()
        lines.append(
            f"{variant.name:<16} {variant.rate():>11.0f} {p50 or float('nan'):>8.1f} "
            f"{p99 or float('nan'):>8.1f} {variant.refused():>7} {cost:>7.1%} "
            f"{node_ms:>6.2f} {pg_ms if pg_ms is not None else float('nan'):>6.2f}"
        )
    full = next(v for v in variants if v.name == "full")
    cost = 1 - full.rate() / bare if bare else float("nan")
    verdict = "met" if cost < COST_TARGET else "NOT met"
    rounds = [
        1 - run.rate / base.rate
        for run, base in zip(full.runs, variants[0].runs, strict=True)
        if base.rate
    ]
    if rounds:
        lines.append(
            "full's cost round by round (the machine's speed drifts between rounds): "
            + ", ".join(f"{each:.1%}" for each in rounds)
            + f"; median {statistics.median(rounds):.1%}"
        )
    lines.append(
        "py ms, pg ms: CPU per succeeded transfer of this process (node and load generator)"
        " and of PostgreSQL"
    )
    held = full.refused() / max(1, full.refused() + sum(len(run.latencies) for run in full.runs))
    if held > 0.01:
        # Each customer sends once per cycle of all accounts: with too few accounts for the
        # run, the burst rule (six transfers within five minutes) or a daily count holds them.
        lines.append(
            f"full: {held:.0%} of its transfers did not succeed; too few accounts for this run's "
            "transfers within five minutes (give more with --accounts): the cost is overstated"
        )
    lines.append(
        f"target: limits and risk cost under {COST_TARGET:.0%} of bare throughput: "
        f"{verdict} ({cost:.1%})"
    )
    return "\n".join(lines)


# -------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    """Run both parts and print the report; return the exit code."""
    clean_environment()
    print(f"rules: {args.rules} rules x {args.evaluations} transactions ...", file=sys.stderr)
    rules = bench_rules(args.rules, args.evaluations)
    print(rules_table(rules))
    if args.skip_cost:
        return 0
    check_loopback(args.postgres_url)
    redis_note = run_async(redis_reachable(args.redis_url))
    if redis_note:
        print(f"skipped the Redis variant: {redis_note}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="chbench-") as tmp:
        data_dir = Path(tmp)
        (data_dir / "catalog-variants").mkdir()
        with postgres_database(args.postgres_url, "chbench_risk") as (_, url):
            print("migrating ...", file=sys.stderr, flush=True)
            migrate(url)
            variants, problems = run_async(bench_cost(url, data_dir, args, redis_note))
    print()
    print(
        f"PostgreSQL, {args.accounts} accounts, {args.rounds} rounds of {args.duration:g} s per "
        f"variant, 1.00 CNY transfers from each account in turn to random ones, "
        f"{args.pool_size} connections"
    )
    print(cost_table(variants, args.concurrency))
    print(f"ledger invariants after the runs: {problems or 'ok'}")
    return 1 if problems or any(v.crashed() for v in variants) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100, help="rules in the set (default 100)")
    parser.add_argument(
        "--evaluations", type=int, default=5000, help="transactions evaluated (default 5000)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="turns of every variant")
    parser.add_argument("--concurrency", type=int, default=16, help="workers (default 16)")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=node_pool_size(),
        help=f"database connections of each node (default {node_pool_size()}, a node's own)",
    )
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts (default 10000)")
    parser.add_argument("--postgres-url", default=DEFAULT_ADMIN_URL, help="admin URL")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis URL")
    parser.add_argument("--skip-cost", action="store_true", help="only the rules part")
    args = parser.parse_args(argv)
    if not 1 <= args.rules <= 10_000:
        parser.error("--rules must be between 1 and 10000")
    if not 1 <= args.evaluations <= 1_000_000:
        parser.error("--evaluations must be between 1 and 1000000")
    if not 0 < args.duration <= 600 or not 1 <= args.rounds <= 20:
        parser.error("--duration must be in (0, 600] and --rounds in [1, 20]")
    if not 1 <= args.concurrency <= 150 or not 2 <= args.accounts <= 1_000_000:
        parser.error("--concurrency must be in [1, 150] and --accounts in [2, 1000000]")
    if not 1 <= args.pool_size <= 200:
        parser.error("--pool-size must be in [1, 200]")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run, and turn Ctrl-C or SIGTERM into a clean exit."""
    return run_guarded(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
