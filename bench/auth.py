"""Measure what the security center costs: password logins, token verification, and a balance
inquiry with a bearer token beside ``system.echo`` without one.

In this process, pinned to one core where the platform allows it:

- argon2id password verifications (what a login costs) at the configured default cost and at
  OWASP's minimum, beside Keycloak's published sizing of 15 password logins per second per vCPU;
- EdDSA (Ed25519) access-token verifications, cold (a token new to the verifier: a full signature
  check) and cached (the same token again), through ``TokenVerifier.verify`` alone and through
  ``SecurityCenter.authenticate``, which also builds the request's principal.

Then, for each database (SQLite in a fresh data directory, PostgreSQL in a fresh database that is
dropped at the end), it seeds the demo bank and its identities with ``channelhub seed``, starts
``channelhub serve`` as a subprocess and drives it over HTTP with closed loops:

- ``POST /api/v1/auth/login`` (alice and bob from their bound phones) at concurrency 4;
- at each concurrency level: ``system.echo`` without authentication; ``account.balance`` of
  alice's CNY account with one bearer token (verified once, then cached: normal operation); and
  ``account.balance`` with a bearer token the server has never seen on every request (minted
  beforehand through ``POST /api/v1/auth/refresh``), so that every request pays a full check.
  The two balance loads run in four stretches of half the duration each: one token, new tokens,
  new tokens, one token, so that a server drifting over time weighs on both alike.

From the server's CPU per request and the in-process figures it computes what authentication
adds to a balance inquiry, against the target of under 10%.

Usage::

    .venv/bin/python bench/auth.py [--duration 5] [--concurrency 16,64]
                                   [--databases sqlite,postgres] [--postgres-url URL]

Only 127.0.0.1 is ever contacted. Every subprocess is stopped and the PostgreSQL database
dropped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

# bench/kernel.py, next to this file: starting and stopping the server, the throwaway PostgreSQL
# database and the command-line parsing are the kernel benchmark's, so the two compare.
from kernel import (
    BIN,
    DEFAULT_ADMIN_URL,
    ECHO_PATH,
    REQUEST_TIMEOUT,
    BenchError,
    Server,
    Target,
    _database_list,
    _int_list,
    _raise_on_terminate,
    channelhub_target,
    postgres_database,
    run_async,
    running,
)

if TYPE_CHECKING:
    from channelhub.security.tokens import KeyPair

LOGIN_PATH = "/api/v1/auth/login"
REFRESH_PATH = "/api/v1/auth/refresh"
LIST_PATH = "/api/v1/services/account.list"
BALANCE_PATH = "/api/v1/services/account.balance"
USERS = ("alice", "bob")  # demo customers with a password and a phone already bound to them
CHANNEL = "mobile"
SEED_TIMEOUT = 600.0  # seconds for `channelhub seed` (migrations and argon2 hashes included)
WARMUP_SECONDS = 1.0
DRAIN_TIMEOUT = 20.0  # seconds past a run's window for in-flight requests to finish
LOGIN_CONCURRENCY = 4
MINT_CHAINS = 8  # refresh-token chains minting fresh access tokens side by side
MINT_MARGIN = 1.5  # fresh tokens minted per token the warm-up's rate says a run will use
MINT_MINIMUM = 200
OWASP_MINIMUM = (19_456, 2, 1)  # argon2id memory KiB, passes, lanes (OWASP cheat sheet)
KEYCLOAK_LOGINS_PER_VCPU = 15
KEYCLOAK_SOURCE = (
    "Keycloak's high-availability guide, 'Concepts for sizing CPU and memory resources': "
    "1 vCPU for each 15 password-based user logins per second"
)
TOKEN_BATCH = 2_000  # distinct tokens signed beforehand for the cold verifications
CACHED_BATCH = 1_000
TARGET_SHARE = 0.10


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Rate:
    """How many times an operation ran in this process, in how much wall and CPU time."""

    label: str
    count: int
    wall: float
    cpu: float
    pinned: bool

    @property
    def per_second(self) -> float:
        """Operations per second of wall time (on one core when ``pinned``)."""
        return self.count / self.wall if self.wall > 0 else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Operations per second of this process's CPU time (all its threads)."""
        return self.count / self.cpu if self.cpu > 0 else 0.0

    @property
    def cpu_us_each(self) -> float:
        """CPU microseconds one operation took."""
        return self.cpu / self.count * 1e6 if self.count else 0.0


@dataclass(frozen=True)
class Micro:
    """What the in-process measurements found."""

    passwords: list[Rate]
    verify_cold: Rate
    verify_cached: Rate
    authenticate_cold: Rate
    authenticate_cached: Rate


@dataclass
class Run:
    """One kind of load at one concurrency level, over one or more segments."""

    kind: str  # login, echo, cached, fresh
    database: str
    concurrency: int
    #: Seconds from each segment's start to its deadline (or to the last fresh token), summed.
    window: float = 0.0
    #: Seconds from each segment's start to its last answer, summed.
    wall: float = 0.0
    #: 200 answers that arrived inside the window: the throughput's numerator.
    in_window: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = 0.0
    #: Server CPU microseconds per 200 answer, segment by segment.
    segments_us: list[float] = field(default_factory=list)
    ran_dry: bool = False

    @property
    def rps(self) -> float:
        """200 answers per second of the window."""
        return self.in_window / self.window if self.window > 0 else 0.0

    @property
    def cpu_us(self) -> float | None:
        """Server CPU microseconds per 200 answer."""
        if self.server_cpu is None or not self.latencies:
            return None
        return self.server_cpu / len(self.latencies) * 1e6

    @property
    def server_share(self) -> float | None:
        """Server CPU / wall time (1.0 = one core busy)."""
        return self.server_cpu / self.wall if self.server_cpu is not None and self.wall else None

    def percentile_ms(self, fraction: float) -> float | None:
        """Latency at ``fraction`` (0..1) of the 200 answers, nearest rank, in ms."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[rank] * 1000.0


@dataclass
class DatabaseReport:
    """What one database's server did."""

    database: str
    seed_seconds: float
    login: Run
    runs: list[Run]
    minted: int
    mint_seconds: float


Request = tuple[str, bytes, dict[str, str]]  # path, body, headers
#: Builds worker ``w``'s request number ``n``; None once there is nothing left to send.
MakeRequest = Callable[[int, int], Request | None]


# ---------------------------------------------------------------- in-process figures


@contextmanager
def one_core() -> Iterator[bool]:
    """Pin this process to one CPU for the block, so that "per second" means "on one core";
    yield whether pinning worked (it is Linux-only)."""
    try:
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(previous)})
    except (AttributeError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setaffinity(0, previous)


def repeat(label: str, call: Callable[[], int], seconds: float, at_least: int) -> Rate:
    """Run ``call`` (which returns how many operations it did) on one core until ``seconds``
    have passed and ``at_least`` operations are done."""
    with one_core() as pinned:
        count = 0
        wall, cpu = time.perf_counter(), time.process_time()
        while count < at_least or time.perf_counter() - wall < seconds:
            count += call()
        return Rate(label, count, time.perf_counter() - wall, time.process_time() - cpu, pinned)


def configured_cost() -> tuple[int, int, int]:
    """The argon2id cost ``channelhub serve`` runs with here: the settings' defaults, since
    this bench removes every CHANNELHUB_* variable from the environment."""
    from channelhub.config import SecuritySettings

    shipped = SecuritySettings()
    return shipped.argon2_memory_kib, shipped.argon2_time_cost, shipped.argon2_parallelism


def measure_passwords(cost: tuple[int, int, int], label: str, seconds: float) -> Rate:
    """Verify the right password against its argon2id hash again and again: a login's CPU."""
    from channelhub.demo.catalog import demo_password
    from channelhub.security.passwords import Passwords

    memory_kib, time_cost, parallelism = cost
    passwords = Passwords(memory_kib=memory_kib, time_cost=time_cost, parallelism=parallelism)
    password = demo_password("alice")
    stored = passwords.hash(password)

    def verify() -> int:
        if not passwords.verify(stored, password):
            raise BenchError("argon2id refused the right password")
        return 1

    return repeat(label, verify, seconds, at_least=3)


def sign_tokens(key: KeyPair, count: int) -> list[str]:
    """``count`` distinct access tokens shaped like the ones a customer's login gets."""
    from channelhub.config import SecuritySettings
    from channelhub.kit.clock import utc_now
    from channelhub.security.tokens import TokenSigner

    shipped = SecuritySettings()
    signer = TokenSigner(
        key, issuer=shipped.issuer, audience=shipped.audience, lifetime=shipped.access_token_seconds
    )
    now = utc_now()
    return [
        signer.issue(
            subject_kind="customer",
            subject_id="0190a5f2-7c1e-7000-8000-000000000001",
            session_id=f"0190a5f2-7c1e-7000-8000-{n:012d}",
            channel=CHANNEL,
            auth_level="password",
            device_id="alice-phone",
            extra={"usr": "alice", "cid": "0190a5f2-7c1e-7000-8000-000000000002"},
            now=now,
        )
        for n in range(count)
    ]


def measure_verifier(key: KeyPair, tokens: list[str], seconds: float) -> tuple[Rate, Rate]:
    """``TokenVerifier.verify``: cold (each token new to the verifier) and cached."""
    from channelhub.config import SecuritySettings
    from channelhub.security.tokens import TokenVerifier

    shipped = SecuritySettings()
    verifier = TokenVerifier(issuer=shipped.issuer, audience=shipped.audience)

    def cold_pass() -> int:
        verifier.set_keys([key])  # also forgets every verified token: each call below is a miss
        for token in tokens:
            verifier.verify(token)
        return len(tokens)

    def cached_pass() -> int:
        for _ in range(CACHED_BATCH):
            verifier.verify(tokens[0])
        return CACHED_BATCH

    cold = repeat("verify, cold (new token)", cold_pass, seconds, len(tokens))
    verifier.verify(tokens[0])
    cached = repeat("verify, cached (same token)", cached_pass, seconds, 10 * CACHED_BATCH)
    return cold, cached


def measure_authenticate(key: KeyPair, tokens: list[str], seconds: float) -> tuple[Rate, Rate]:
    """``SecurityCenter.authenticate``, what a request with a bearer token runs: verify, then
    build the principal; cold and cached."""
    from channelhub.config import Settings
    from channelhub.runtime import security_config
    from channelhub.security.service import SecurityCenter

    settings = Settings(data_dir=Path(tempfile.gettempdir()), security={"master_key": "m" * 40})
    # authenticate() reads only the verifier for a valid token, so no database is needed.
    center = SecurityCenter(sessions=None, config=security_config(settings))  # type: ignore[arg-type]
    loop = new_event_loop()

    def on_loop(batch: Callable[[], Awaitable[int]]) -> Callable[[], int]:
        return lambda: loop.run_until_complete(batch())

    async def cold_pass() -> int:
        center.verifier.set_keys([key])
        for token in tokens:
            await center.authenticate(token)
        return len(tokens)

    async def cached_pass() -> int:
        for _ in range(CACHED_BATCH):
            await center.authenticate(tokens[0])
        return CACHED_BATCH

    try:
        cold = repeat("authenticate, cold", on_loop(cold_pass), seconds, len(tokens))
        cached = repeat("authenticate, cached", on_loop(cached_pass), seconds, 10 * CACHED_BATCH)
    finally:
        loop.close()
    return cold, cached


def measure_in_process(seconds: float) -> Micro:
    """Every in-process figure."""
    from channelhub.security.tokens import KeyPair

    print("in process: argon2id ...", file=sys.stderr, flush=True)
    memory, passes, lanes = configured_cost()
    passwords = [
        measure_passwords(
            (memory, passes, lanes), f"default   {memory} KiB, t={passes}, p={lanes}", seconds
        )
    ]
    if (memory, passes, lanes) != OWASP_MINIMUM:
        m, t, p = OWASP_MINIMUM
        label = f"OWASP min {m} KiB, t={t}, p={p}"
        passwords.append(measure_passwords(OWASP_MINIMUM, label, seconds))
    print("in process: EdDSA ...", file=sys.stderr, flush=True)
    key = KeyPair.generate("bench")
    tokens = sign_tokens(key, TOKEN_BATCH)
    verify_cold, verify_cached = measure_verifier(key, tokens, seconds)
    authenticate_cold, authenticate_cached = measure_authenticate(key, tokens, seconds)
    return Micro(passwords, verify_cold, verify_cached, authenticate_cold, authenticate_cached)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available, as ``channelhub serve`` runs on, else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def clean_environment() -> None:
    """Remove every CHANNELHUB_* variable from this process's environment, so that the
    in-process figures use the shipped settings, as the server does."""
    for name in [name for name in os.environ if name.startswith("CHANNELHUB_")]:
        del os.environ[name]


# ------------------------------------------------------------------------- server


def seed(target: Target, workdir: Path) -> float:
    """Migrate and seed the demo bank and its identities into the target's database with
    ``channelhub seed --customers 0``, in the server's environment; return the seconds."""
    command = [str(BIN / "channelhub"), "seed", "--customers", "0"]
    log = workdir / f"seed-{target.database}.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        try:
            completed = subprocess.run(
                command,
                cwd=target.cwd,
                env=target.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=SEED_TIMEOUT,
                check=False,
                start_new_session=True,  # on Ctrl-C, subprocess.run kills it itself
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"channelhub seed took over {SEED_TIMEOUT:.0f} s") from None
    if completed.returncode != 0:
        output = log.read_text(errors="replace").strip()
        raise BenchError(f"channelhub seed exited with {completed.returncode}:\n{output}")
    return time.perf_counter() - started


def login_body(username: str) -> bytes:
    """A demo customer's login from the phone already bound to them (tokens, no second factor)."""
    from channelhub.demo.catalog import demo_password
    from channelhub.demo.identities import demo_device

    return orjson.dumps(
        {
            "username": username,
            "password": demo_password(username),
            "device_id": demo_device(username),
            "channel": CHANNEL,
        }
    )


async def post_json(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``body``; return the answer's JSON, or raise BenchError on a status other than 200."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    async with http.post(url, data=body, headers=sent) as response:
        text = await response.text()
        if response.status != 200:
            raise BenchError(f"HTTP {response.status} from {url}: {text[:300]}")
    answer: dict[str, Any] = orjson.loads(text)
    return answer


async def log_in(http: aiohttp.ClientSession, base_url: str, username: str) -> dict[str, Any]:
    """Log a demo customer in; return the token pair."""
    answer = await post_json(http, base_url + LOGIN_PATH, login_body(username))
    if "access_token" not in answer:
        raise BenchError(f"{username}'s login did not answer tokens: {answer}")
    return answer


async def cny_account(http: aiohttp.ClientSession, base_url: str, token: str) -> str:
    """alice's CNY account number, as ``account.list`` answers it to her."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(16)}
    answer = await post_json(http, base_url + LIST_PATH, b"{}", headers)
    numbers = [a["number"] for a in answer["data"]["accounts"] if a.get("currency") == "CNY"]
    if not numbers:
        raise BenchError(f"alice has no CNY account: {answer}")
    return str(numbers[0])


class TokenMint:
    """Access tokens the server has never seen, from refresh-token chains: a refresh answers a
    new pair cheaply, where a login would cost an argon2id verification."""

    def __init__(self, refresh_tokens: list[str]) -> None:
        self.refresh_tokens = refresh_tokens
        self.minted = 0
        self.seconds = 0.0

    async def mint(self, http: aiohttp.ClientSession, base_url: str, count: int) -> list[str]:
        """Return ``count`` new access tokens."""
        tokens: list[str] = []
        started = time.perf_counter()

        async def chain(index: int) -> None:
            while len(tokens) < count:
                body = orjson.dumps({"refresh_token": self.refresh_tokens[index]})
                pair = await post_json(http, base_url + REFRESH_PATH, body)
                self.refresh_tokens[index] = pair["refresh_token"]
                tokens.append(pair["access_token"])

        await asyncio.gather(*(chain(i) for i in range(len(self.refresh_tokens))))
        self.seconds += time.perf_counter() - started
        self.minted += len(tokens)
        return tokens[:count]


# --------------------------------------------------------------------------- loads


def json_headers(key: str, token: str | None = None) -> dict[str, str]:
    """A service call's headers: a unique Idempotency-Key makes each a new transaction."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def echo_requests(tag: str) -> MakeRequest:
    """``system.echo`` without authentication, with the body bench/kernel.py sends."""

    def make(worker: int, seq: int) -> Request:
        body = orjson.dumps({"hello": "bank", "n": seq})
        return ECHO_PATH, body, json_headers(f"auth-{tag}-{worker}-{seq}")

    return make


def balance_requests(tag: str, account: str, tokens: Callable[[], str | None]) -> MakeRequest:
    """``account.balance`` of ``account``, each request with the bearer token ``tokens()``
    gives."""
    body = orjson.dumps({"account": account})

    def make(worker: int, seq: int) -> Request | None:
        token = tokens()
        if token is None:
            return None
        return BALANCE_PATH, body, json_headers(f"auth-{tag}-{worker}-{seq}", token)

    return make


def login_requests() -> MakeRequest:
    """Password logins, alice and bob in turn, each from their bound phone."""
    bodies = [login_body(username) for username in USERS]
    headers = {"Content-Type": "application/json"}

    def make(worker: int, seq: int) -> Request:
        return LOGIN_PATH, bodies[(worker + seq) % len(bodies)], headers

    return make


def one_token(token: str) -> Callable[[], str]:
    """The same token on every request."""
    return lambda: token


def each_token_once(tokens: list[str]) -> Callable[[], str | None]:
    """A token of its own on every request; None once they are spent."""
    queue = deque(tokens)
    return lambda: queue.popleft() if queue else None


# ------------------------------------------------------------------------ driving


def error_kind(status: int, answer: bytes) -> str:
    """ "HTTP <status> <canonical code>" of an answer other than 200."""
    try:
        code = orjson.loads(answer).get("code", "?")
    except (orjson.JSONDecodeError, AttributeError):
        code = "?"
    return f"HTTP {status} {code}"


async def drive(
    http: aiohttp.ClientSession,
    base_url: str,
    make: MakeRequest,
    worker: int,
    deadline: float,
    run: Run,
    dry: list[float],
) -> None:
    """Send requests back to back until ``deadline``, or until ``make`` runs dry (then note
    when in ``dry``)."""
    for seq in itertools.count():
        if time.perf_counter() >= deadline:
            return
        request = make(worker, seq)
        if request is None:
            dry.append(time.perf_counter())
            return
        path, body, headers = request
        started = time.perf_counter()
        try:
            async with http.post(base_url + path, data=body, headers=headers) as response:
                answer = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            run.errors[type(error).__name__] += 1
            continue
        finished = time.perf_counter()
        if status != 200:
            run.errors[error_kind(status, answer)] += 1
            continue
        run.latencies.append(finished - started)
        if finished < deadline:
            run.in_window += 1


async def segment(
    http: aiohttp.ClientSession,
    server: Server,
    make: MakeRequest,
    seconds: float,
    run: Run,
) -> None:
    """One closed-loop stretch of ``run.concurrency`` workers, added to ``run``: the window
    counts answers up to the deadline, the server's CPU counts until the last answer."""
    dry: list[float] = []
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    deadline = started + seconds
    workers = [
        drive(http, server.base_url, make, i, deadline, run, dry) for i in range(run.concurrency)
    ]
    answered = len(run.latencies)
    await asyncio.wait_for(asyncio.gather(*workers), seconds + DRAIN_TIMEOUT)
    ended = time.perf_counter()
    cpu_after = server.cpu_seconds()
    run.window += (min(dry) if dry else deadline) - started
    run.wall += ended - started
    run.ran_dry = run.ran_dry or bool(dry)
    if cpu_before is None or cpu_after is None or run.server_cpu is None:
        run.server_cpu = None
        return
    run.server_cpu += cpu_after - cpu_before
    if len(run.latencies) > answered:
        run.segments_us.append((cpu_after - cpu_before) / (len(run.latencies) - answered) * 1e6)


def client(concurrency: int) -> aiohttp.ClientSession:
    """One HTTP session with at most ``concurrency`` connections, kept across segments."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    )


@dataclass
class Bench:
    """What the measurements need from one running server."""

    server: Server
    account: str
    token: str
    mint: TokenMint
    tag: str
    warm_rps: float = 0.0


async def prepare(server: Server) -> Bench:
    """Log alice in, find her CNY account, open the refresh chains for fresh tokens."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT * 3)
    ) as http:
        pair = await log_in(http, server.base_url, "alice")
        account = await cny_account(http, server.base_url, pair["access_token"])
        chains = [await log_in(http, server.base_url, "alice") for _ in range(MINT_CHAINS)]
    mint = TokenMint([chain["refresh_token"] for chain in chains])
    return Bench(server, account, pair["access_token"], mint, secrets.token_hex(4))


async def warm_up(bench: Bench, level: int) -> None:
    """Echo, then balance with the one token, at ``level`` for a moment each (not counted);
    remember the balance rate to size the fresh tokens."""
    database = bench.server.target.database
    async with client(level) as http:
        echo = Run("warmup", database, level)
        await segment(http, bench.server, echo_requests(f"{bench.tag}-we"), WARMUP_SECONDS, echo)
        balance = Run("warmup", database, level)
        make = balance_requests(f"{bench.tag}-wb", bench.account, one_token(bench.token))
        await segment(http, bench.server, make, WARMUP_SECONDS, balance)
    bench.warm_rps = balance.rps


async def measure_logins(bench: Bench, duration: float) -> Run:
    """Password logins over HTTP at LOGIN_CONCURRENCY."""
    run = Run("login", bench.server.target.database, LOGIN_CONCURRENCY)
    async with client(LOGIN_CONCURRENCY) as http:
        await segment(http, bench.server, login_requests(), duration, run)
    return run


async def measure_level(bench: Bench, level: int, duration: float) -> list[Run]:
    """Echo, then the two balance loads in the order one token, new tokens, new tokens, one
    token (each half the duration), so that a drift of the server over time (a growing
    database, its checkpoints) weighs on both alike."""
    database, server, tag = bench.server.target.database, bench.server, bench.tag
    echo = Run("echo", database, level)
    cached = Run("cached", database, level)
    fresh = Run("fresh", database, level)
    async with client(level) as http:
        await segment(http, server, echo_requests(f"{tag}-e{level}"), duration, echo)
        wanted = max(MINT_MINIMUM, math.ceil(bench.warm_rps * duration * MINT_MARGIN))
        new_tokens = each_token_once(await bench.mint.mint(http, server.base_url, wanted))
        same_token = one_token(bench.token)
        # Not counted: minting wrote thousands of rows, whose aftermath (a WAL checkpoint, a
        # garbage collection) would otherwise land on the first stretch below.
        settle = balance_requests(f"{tag}-s{level}", bench.account, same_token)
        await segment(http, server, settle, WARMUP_SECONDS, Run("settle", database, level))
        for part, (run, tokens) in enumerate(
            [(cached, same_token), (fresh, new_tokens), (fresh, new_tokens), (cached, same_token)]
        ):
            make = balance_requests(f"{tag}-b{level}-{part}", bench.account, tokens)
            await segment(http, server, make, duration / 2, run)
    return [echo, cached, fresh]


async def measure_server(
    server: Server, levels: list[int], duration: float
) -> tuple[Run, list[Run], TokenMint]:
    """Prepare, warm up, measure logins, then every level."""
    bench = await prepare(server)
    await warm_up(bench, max(levels))
    print("  logins ...", file=sys.stderr, flush=True)
    login = await measure_logins(bench, duration)
    runs: list[Run] = []
    for level in levels:
        print(f"  c={level} ...", file=sys.stderr, flush=True)
        runs += await measure_level(bench, level, duration)
    return login, runs, bench.mint


def bench_target(target: Target, workdir: Path, args: argparse.Namespace) -> DatabaseReport:
    """Seed, start, measure and stop one server."""
    print(f"seeding {target.database} ...", file=sys.stderr, flush=True)
    seed_seconds = seed(target, workdir)
    print(f"starting channelhub ({target.database}) ...", file=sys.stderr, flush=True)
    with running(target, workdir) as server:
        print(f"  listening on {server.base_url}; measuring", file=sys.stderr, flush=True)
        login, runs, mint = run_async(measure_server(server, args.concurrency, args.duration))
    return DatabaseReport(target.database, seed_seconds, login, runs, mint.minted, mint.seconds)


def bench_database(database: str, workdir: Path, args: argparse.Namespace) -> DatabaseReport:
    """Measure channelhub on ``database`` ("sqlite" or "postgres") in a fresh data directory."""
    data_dir = workdir / f"data-{database}"
    data_dir.mkdir()
    if database == "sqlite":
        return bench_target(channelhub_target(database, data_dir, None), workdir, args)
    with postgres_database(args.postgres_url) as url:
        return bench_target(channelhub_target(database, data_dir, url), workdir, args)


# ------------------------------------------------------------------------- report


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def password_lines(micro: Micro) -> list[str]:
    """The argon2id figures beside Keycloak's sizing."""
    where = "pinned to one CPU" if micro.passwords[0].pinned else "NOT pinned (not Linux)"
    lines = [
        f"Password logins: argon2id verify() of the right password against its hash, in this "
        f"process {where}, one caller, back to back",
        f"{'cost':<31} {'verifies':>8} {'logins/s':>8} {'per cpu-s':>9} {'cpu ms':>7} "
        f"{'vs Keycloak':>11}",
    ]
    lines += [
        f"{r.label:<31} {r.count:>8} {r.per_second:>8.1f} {r.per_cpu_second:>9.1f} "
        f"{r.cpu_us_each / 1000:>7.1f} {r.per_second / KEYCLOAK_LOGINS_PER_VCPU:>10.2f}x"
        for r in micro.passwords
    ]
    lines += [
        f"Keycloak's published sizing: {KEYCLOAK_LOGINS_PER_VCPU} password logins/s per vCPU "
        f"({KEYCLOAK_SOURCE}); vs Keycloak = logins/s / {KEYCLOAK_LOGINS_PER_VCPU}.",
        "logins/s = verifications / wall seconds on that one core; per cpu-s = verifications / "
        "CPU seconds of all this process's threads (argon2 runs its p lanes in p threads, "
        "which share the one core); cpu ms = CPU per verification.",
    ]
    return lines


def token_lines(micro: Micro) -> list[str]:
    """The token figures."""
    where = "pinned to one CPU" if micro.verify_cold.pinned else "NOT pinned (not Linux)"
    rates = (
        micro.verify_cold,
        micro.verify_cached,
        micro.authenticate_cold,
        micro.authenticate_cached,
    )
    lines = [
        f"Token verification: EdDSA (Ed25519) access tokens shaped like a customer login's, in "
        f"this process {where}, one thread",
        f"{'path':<28} {'calls':>9} {'per s':>9} {'us each':>8}",
    ]
    lines += [
        f"{r.label:<28} {r.count:>9} {r.per_second:>9.0f} {r.cpu_us_each:>8.2f}" for r in rates
    ]
    lines.append(
        f"verify = TokenVerifier.verify(); authenticate = SecurityCenter.authenticate(), what "
        f"a request with a bearer token runs (verify, then build the principal), awaited on "
        f"uvloop. cold: {TOKEN_BATCH} distinct tokens signed beforehand and the verifier's "
        f"cache emptied before each pass over them, so every call checks header, signature and "
        f"claims; cached: one token verified already, so a call is a dictionary hit plus the "
        f"expiry and revocation checks."
    )
    return lines


def login_lines(reports: list[DatabaseReport]) -> list[str]:
    """The end-to-end login runs."""
    lines = []
    for report in reports:
        r = report.login
        per_cpu = len(r.latencies) / r.server_cpu if r.server_cpu else None
        share = r.server_share
        lines.append(
            f"{r.database:<8} POST {LOGIN_PATH} c={r.concurrency}: {r.rps:.1f} logins/s, "
            f"p50 {_fmt(r.percentile_ms(0.5), '.0f')} ms, p99 "
            f"{_fmt(r.percentile_ms(0.99), '.0f')} ms, {sum(r.errors.values())} errors; server "
            f"CPU {_fmt(share * 100 if share is not None else None, '.0f')}% of one core = "
            f"{_fmt(per_cpu, '.1f')} logins per server CPU-second"
        )
        if r.errors:
            detail = ", ".join(f"{kind} x{count}" for kind, count in r.errors.most_common())
            lines.append(f"  errors: {detail}")
    return lines


LABELS = {
    "echo": ("system.echo", "none"),
    "cached": ("account.balance", "one token"),
    "fresh": ("account.balance", "new each req"),
}


def rest_table(reports: list[DatabaseReport]) -> list[str]:
    """Every REST run as a fixed-width table, with echo req/s / this row's req/s."""
    header = (
        f"{'database':<8} {'service':<15} {'bearer':<12} {'conc':>4} {'req/s':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'echo/this':>9} {'srv cpu%':>8} "
        f"{'srv us/req':>10}"
    )
    lines = [header, "-" * len(header)]
    for report in reports:
        echo = {r.concurrency: r.rps for r in report.runs if r.kind == "echo"}
        for r in report.runs:
            service, bearer = LABELS[r.kind]
            ratio = echo[r.concurrency] / r.rps if r.rps and r.concurrency in echo else None
            share = r.server_share
            lines.append(
                f"{r.database:<8} {service:<15} {bearer:<12} {r.concurrency:>4} {r.rps:>6.0f} "
                f"{_fmt(r.percentile_ms(0.50), '.1f'):>7} {_fmt(r.percentile_ms(0.99), '.1f'):>7} "
                f"{sum(r.errors.values()):>6} {_fmt(ratio, '.2f'):>9} "
                f"{_fmt(share * 100 if share is not None else None, '.0f'):>8} "
                f"{_fmt(r.cpu_us, '.0f'):>10}"
            )
    for report in reports:
        for r in report.runs:
            if r.errors:
                detail = ", ".join(f"{kind} x{count}" for kind, count in r.errors.most_common())
                lines.append(f"errors {r.database}/{r.kind}/c{r.concurrency}: {detail}")
            if r.ran_dry:
                lines.append(
                    f"note {r.database}/c{r.concurrency}: the minted tokens ran out before the "
                    f"end; its window is {r.window:.1f} s"
                )
    return lines


@dataclass(frozen=True)
class Share:
    """What authentication adds to one balance inquiry at one level, as fractions."""

    database: str
    level: int
    cached_us: float  # A
    fresh_us: float  # B
    bare_us: float  # A - authenticate cached
    measured: float  # full check on every request, from the server's CPU
    noise: float  # how far same-kind segments disagreed, in the same unit
    from_micro: float  # full check on every request, from the in-process figure
    normal: float  # the one-token case


def shares(report: DatabaseReport, micro: Micro) -> list[Share]:
    """What authentication adds to a balance inquiry, per level (see the README for why)."""
    cold, cached_call = micro.authenticate_cold.cpu_us_each, micro.authenticate_cached.cpu_us_each
    found = []
    for level in sorted({r.concurrency for r in report.runs}):
        by_kind = {r.kind: r for r in report.runs if r.concurrency == level}
        a, b = by_kind["cached"].cpu_us, by_kind["fresh"].cpu_us
        if a is None or b is None:
            continue
        bare = a - cached_call  # a balance inquiry with no authentication at all, estimated
        spread = [
            max(s) - min(s)
            for s in (by_kind["cached"].segments_us, by_kind["fresh"].segments_us)
            if s
        ]
        found.append(
            Share(
                database=report.database,
                level=level,
                cached_us=a,
                fresh_us=b,
                bare_us=bare,
                measured=(b - a + cached_call) / bare,
                noise=max(spread, default=0.0) / bare,
                from_micro=cold / bare,
                normal=cached_call / bare,
            )
        )
    return found


def share_lines(found: list[Share]) -> list[str]:
    """Each level's shares."""
    return [
        f"{s.database} c={s.level}: server CPU per balance A={s.cached_us:.0f} us with one token, "
        f"B={s.fresh_us:.0f} us with a new token each; without authentication "
        f"A-auth_cached={s.bare_us:.0f} us. A full check on every request adds "
        f"{s.measured:+.1%} measured, (B-A+auth_cached)/(A-auth_cached), with halves of a row "
        f"{s.noise:.1%} apart; {s.from_micro:.1%} from the micro figure, "
        f"auth_cold/(A-auth_cached). One token, verified once: {s.normal:.2%}, "
        f"auth_cached/(A-auth_cached)."
        for s in found
    ]


def target_lines(found: list[Share]) -> list[str]:
    """Whether authentication stayed under the target in this run, in normal operation and in
    the worst case (informational)."""
    goal = f"Target: authentication adds under {TARGET_SHARE:.0%} to a balance inquiry"
    if not found:
        return [f"{goal}: not measured in this run."]
    normal = max(s.normal for s in found)
    worst = max(max(s.measured, s.from_micro) for s in found)
    lines = [
        f"{goal}.",
        f"  normal operation (a session's token verified once per node, then cached): "
        f"{verdict(normal)} in this run, at most {normal:.2%} (any level, any database).",
        f"  worst case (a token the node has never seen on every request): {verdict(worst)} in "
        f"this run, at most {worst:.1%} (the larger of the measured and the micro figure, any "
        f"level, any database).",
    ]
    if worst >= TARGET_SHARE > normal:
        # n uses of a token on a node cost (full + (n - 1) * normal) / n of a bare inquiry.
        uses = math.floor((worst - normal) / (TARGET_SHARE - normal)) + 1
        lines.append(
            f"  in between: the average stays under {TARGET_SHARE:.0%} when each token serves "
            f"at least {uses} requests on a node."
        )
    undecided = [s for s in found if abs(s.measured - TARGET_SHARE) <= s.noise]
    if undecided:
        lines.append(
            "  the measured figure is within its noise of the target at "
            + ", ".join(f"{s.database} c={s.level}" for s in undecided)
            + "; a longer --duration narrows it."
        )
    return lines


def verdict(share: float) -> str:
    """ "met" when ``share`` is under the target."""
    return "met" if share < TARGET_SHARE else "NOT met"


def method_lines(args: argparse.Namespace, reports: list[DatabaseReport]) -> list[str]:
    """Say how the REST figures were measured."""
    seeded = ", ".join(f"{r.database} {r.seed_seconds:.1f} s" for r in reports)
    minted = ", ".join(
        f"{r.database} {r.minted} in {r.mint_seconds:.1f} s" for r in reports if r.minted
    )
    return [
        f"Machine: {os.cpu_count()} CPUs; the client, the server and PostgreSQL share them.",
        f"Method, HTTP: `channelhub seed --customers 0` (migrations, the demo bank, demo "
        f"passwords hashed at the default cost; {seeded}), then `channelhub serve --port 0 "
        f"--upgrade` with CHANNELHUB_LOG_LEVEL=WARNING CHANNELHUB_RECOVERY_ENABLED=false and no "
        f"other CHANNELHUB_* variable; an aiohttp client in this process on uvloop, closed loops "
        f"(each worker sends its next request when its previous answer arrives) after a "
        f"{WARMUP_SECONDS:g} s warm-up of echo and of balance at the highest level. Only 200 "
        f"answers count. req/s = 200 answers that arrived before the window's end / window; "
        f"p50/p99 over every 200 answer, nearest rank.",
        f"Logins: {LOGIN_CONCURRENCY} workers for {args.duration:g} s, alice and bob in turn "
        f"from their bound phones (tokens, no second factor). The server runs argon2id in worker "
        f"threads and may use every core, so logins per server CPU-second is the figure to hold "
        f"against Keycloak's {KEYCLOAK_LOGINS_PER_VCPU} per vCPU.",
        f"Rows: system.echo for {args.duration:g} s with no Authorization header and the body "
        '{"hello": "bank", "n": <seq>}; then account.balance of alice\'s CNY account in four '
        f"stretches of {args.duration / 2:g} s: one token, new tokens, new tokens, one token. "
        f"'one token' = one access token from one login, verified on first use, cached after: "
        f"normal operation. 'new each req' = a token the server has never seen on every request, "
        f"minted just before through POST {REFRESH_PATH} on {MINT_CHAINS} refresh-token chains "
        f"({minted or 'none minted'}). Every request has a unique Idempotency-Key, so each is a "
        f"new journaled transaction.",
        "Columns: echo/this = echo req/s / this row's req/s at the same concurrency (what a "
        "balance inquiry, its authentication and its account read included, costs beside the "
        "cheapest transaction); srv cpu% = server process CPU (all threads) / wall time, 100 = "
        "one core; srv us/req = server CPU / 200 answers (PostgreSQL's own CPU not included).",
        "Shares: A and B are the srv us/req of the two balance rows; auth_cold and auth_cached "
        "are the in-process authenticate figures. An anonymous caller cannot ask for a balance, "
        "so a balance without authentication is estimated as A - auth_cached. 'halves apart' "
        "is the largest gap between the two stretches of one row, as a share of that estimate: "
        "the measured figure's noise.",
    ]


def print_report(
    args: argparse.Namespace, micro: Micro, reports: list[DatabaseReport], skipped: list[str]
) -> None:
    """Print the in-process figures, the logins, the REST table, the shares and the target."""
    blocks = [
        password_lines(micro),
        token_lines(micro),
        login_lines(reports) + skipped,
        rest_table(reports),
    ]
    found: list[Share] = []
    details: list[str] = []
    for report in reports:
        report_shares = shares(report, micro)
        found += report_shares
        details += share_lines(report_shares)
    blocks.append(details + target_lines(found))
    blocks.append(method_lines(args, reports))
    for block in blocks:
        print()
        for line in block:
            print(line)


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    """Measure in process, then every database's server; print the report."""
    clean_environment()
    micro = measure_in_process(args.duration)
    reports: list[DatabaseReport] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chbench-auth-") as tmp:
        for database in args.databases:
            try:
                reports.append(bench_database(database, Path(tmp), args))
            except BenchError as error:
                skipped.append(f"skipped {database}: {error}")
                print(skipped[-1], file=sys.stderr, flush=True)
    print_report(args, micro, reports, skipped)
    return 1 if skipped else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=[16, 64],
        help="comma-separated worker counts of the service calls (default 16,64)",
    )
    parser.add_argument(
        "--databases",
        type=_database_list,
        default=["sqlite", "postgres"],
        help="comma-separated: sqlite, postgres (default both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHANNELHUB_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL used to create and drop the bench database "
        "(default $CHANNELHUB_TEST_POSTGRES_URL or %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run, and turn Ctrl-C or SIGTERM into a clean exit."""
    args = parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
