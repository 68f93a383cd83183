"""A node's runtime, built from settings: database, catalog, step registry, engine, recovery.

The HTTP app and the CLI both build one; nothing here knows about HTTP.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from channelhub.config import Settings
from channelhub.connectors.mapping import MappingError, load_mapping
from channelhub.connectors.mapping import resolve as resolve_mapping
from channelhub.governance.backends import Backends
from channelhub.kernel import EngineSettings, RecoveryWorker, TransactionEngine, registry
from channelhub.kernel.catalog import (
    BUILTIN_CATALOG,
    Catalog,
    CompiledBranch,
    StepRoute,
    definition_files,
    load_definitions,
)
from channelhub.kernel.steps import StepRegistry
from channelhub.kit.clock import utc_now
from channelhub.kit.db import create_engine, make_sessionmaker
from channelhub.kit.logging import get_logger
from channelhub.kit.loops import Loops
from channelhub.kit.money import Money
from channelhub.kit.quotas import Quotas
from channelhub.limits.counters import CounterStore, DatabaseCounters, RedisCounters
from channelhub.limits.rules import bucket_of
from channelhub.limits.service import LimitCenter
from channelhub.risk.features_redis import RedisFeatures
from channelhub.risk.service import RiskEngine
from channelhub.security.schemas import SecurityConfig
from channelhub.security.service import SecurityCenter
from channelhub.security.step_up import StepUpGate
from channelhub.teller.schemas import TellerConfig
from channelhub.teller.service import TellerDesk

__all__ = [
    "Runtime",
    "catalog_paths",
    "data_key",
    "import_plugins",
    "load_catalog",
    "mapping_uses",
    "master_key",
    "security_config",
    "step_routes",
    "teller_config",
]


#: The domain packages whose steps the built-in services use; they register on import.
BUILTIN_STEPS = (
    "channelhub.ledger.steps",
    "channelhub.cau.steps",
    "channelhub.security.steps",
    "channelhub.limits.steps",
    "channelhub.risk.steps",
    "channelhub.teller.steps",
    "channelhub.governance.steps",
)


#: A route to the platform's own ledger: the service runs as defined (the default).
BUILTIN_ROUTE = "builtin"
#: The purge of what no check reads any more runs a minute after start, then hourly.
PURGE_FIRST_SECONDS = 60.0
PURGE_EVERY_SECONDS = 3600.0
#: Teller approvals nobody decided by the end of their business day are looked for each minute.
TELLER_EXPIRY_SECONDS = 60.0

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Purged:
    """What one purge deleted."""

    #: Limit counters of periods already over.
    counters: int
    #: Risk activity older than the longest feature window.
    activity: int


def import_plugins(names: list[str]) -> None:
    """Import the built-in step modules and those named in ``plugins``; they register their
    steps on import."""
    for name in (*BUILTIN_STEPS, *names):
        importlib.import_module(name)


def catalog_paths(settings: Settings) -> list[Path]:
    """Return the folders and files service definitions are read from."""
    return ([BUILTIN_CATALOG] if settings.catalog.builtin else []) + list(settings.catalog.paths)


def load_catalog(settings: Settings, steps: StepRegistry = registry) -> Catalog:
    """Load, check and compile every definition; raises CatalogError listing each problem."""
    return Catalog(
        load_definitions(
            definition_files(catalog_paths(settings)), steps, step_routes(settings.routes)
        )
    )


def mapping_uses(catalog: Catalog) -> list[tuple[str, str]]:
    """Return the mappings the services' ``connector.*`` steps name, with the step."""
    found: list[tuple[str, str]] = []

    def walk(nodes: tuple[Any, ...]) -> None:
        for node in nodes:
            if isinstance(node, CompiledBranch):
                walk(node.then)
                walk(node.otherwise)
            elif node.spec.name.startswith("connector.") and "mapping" in node.params:
                found.append((node.spec.name, str(node.params["mapping"])))

    for service in catalog.all():
        walk(service.flow)
    return found


def step_routes(routes: Mapping[str, str]) -> dict[str, StepRoute]:
    """Return what each routed service's back-end step becomes: a call through its mapping,
    undone by the mapping's reversal; or, through an idempotent mapping, an inquiry that
    needs no undoing.

    Raises:
        MappingError: a routed mapping does not load.
    """
    found: dict[str, StepRoute] = {}
    for service, reference in routes.items():
        if reference == BUILTIN_ROUTE:
            continue
        params = {"mapping": reference}
        mapping = load_mapping(resolve_mapping(reference))
        if mapping.service not in (None, service):
            raise MappingError(
                mapping.name, "service", f"is {mapping.service!r}: it cannot answer {service!r}"
            )
        if mapping.idempotent:
            found[service] = StepRoute("connector.inquire", params)
        else:
            found[service] = StepRoute("connector.call", params, "connector.reverse")
    return found


def data_key(settings: Settings) -> bytes:
    """Return the key card numbers and PINs are protected with: the configured one, or a
    random one kept in the data directory (made on first use, readable by its owner only)."""
    if settings.security.data_key is not None:
        return settings.security.data_key.get_secret_value().encode()
    return _key_file(settings.data_dir / "data.key")


def master_key(settings: Settings) -> bytes:
    """Return the key the security module seals secrets under: the configured one, or a
    random one kept in the data directory (made on first use, readable by its owner only)."""
    if settings.security.master_key is not None:
        return settings.security.master_key.get_secret_value().encode()
    return _key_file(settings.data_dir / "master.key")


def _key_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process on this data directory made it first
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def teller_config(settings: Settings) -> TellerConfig:
    """Return the teller desk's configuration: each currency's authority in minor units."""
    authority = {
        currency: Money.parse(amount, currency).minor
        for currency, amount in settings.teller.authority.items()
    }
    return TellerConfig(
        authority=authority, data_key=data_key(settings), time_zone=settings.bank.zone
    )


def security_config(settings: Settings) -> SecurityConfig:
    """Return the security center's configuration from the node's settings."""
    s = settings.security
    return SecurityConfig(
        master_key=master_key(settings),
        issuer=s.issuer,
        audience=s.audience,
        access_token_seconds=s.access_token_seconds,
        refresh_token_seconds=s.refresh_token_seconds,
        challenge_seconds=s.challenge_seconds,
        challenge_attempts=s.challenge_attempts,
        max_failed_logins=s.max_failed_logins,
        lockout_seconds=s.lockout_seconds,
        totp_drift_steps=s.totp_drift_steps,
        argon2_memory_kib=s.argon2_memory_kib,
        argon2_time_cost=s.argon2_time_cost,
        argon2_parallelism=s.argon2_parallelism,
        sync_seconds=s.sync_seconds,
        totp_issuer=settings.bank.name,
    )


@dataclass
class Runtime:
    """Everything one node needs to execute transactions."""

    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    engine: TransactionEngine
    recovery: RecoveryWorker
    security: SecurityCenter
    limits: LimitCenter
    risk: RiskEngine
    redis: Redis | None = None
    #: Each partner app's request quota (shared through Redis when it is configured).
    partner_quotas: Quotas | None = None
    #: The back ends and mappings routed services call (``[connectors]``, ``[routes]``).
    backends: Backends | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Build the runtime.

        Raises:
            CatalogError: a definition is invalid, or a route names no routable service.
            MappingError: a routed mapping does not load or does not fit its back end.
        """
        import_plugins(settings.plugins)
        catalog = load_catalog(settings)
        backends = Backends.load(
            settings.connectors,
            [m for m in settings.routes.values() if m != BUILTIN_ROUTE],
            uses=mapping_uses(catalog),
            context={"bank": {"bic": settings.bank.bic, "name": settings.bank.name}},
        )
        db = create_engine(
            settings.database_url,
            pool_size=settings.database.pool_size,
            echo=settings.database.echo,
        )
        sessions = make_sessionmaker(db)
        engine_settings = EngineSettings(
            node_id=settings.node_id,
            time_zone=settings.bank.zone,
            lease_seconds=settings.kernel.lease_seconds,
            duplicate_wait_seconds=settings.kernel.duplicate_wait_seconds,
        )
        runtime: Runtime
        redis = (
            Redis.from_url(settings.redis.url, socket_timeout=2.0, socket_connect_timeout=2.0)
            if settings.redis.url
            else None
        )
        limits = LimitCenter(
            sessions=sessions,
            zone=settings.bank.zone,
            counters=_counters(settings, redis),
            sync_seconds=settings.limits.sync_seconds,
        )
        risk = RiskEngine(
            sessions=sessions,
            zone=settings.bank.zone,
            timeout_ms=settings.risk.timeout_ms,
            error_outcome=settings.risk.rule_error_outcome,
            sync_seconds=settings.risk.sync_seconds,
            features=None if redis is None else RedisFeatures(redis, prefix=settings.redis.prefix),
        )
        security = SecurityCenter(sessions=sessions, config=security_config(settings))
        services = {
            "limits": limits,
            "risk": risk,
            "teller": TellerDesk(sessions=sessions, config=teller_config(settings)),
            "backends": backends,
        }
        engine = TransactionEngine(
            sessions=sessions,
            catalog=lambda: runtime.catalog,
            registry=registry,
            settings=engine_settings,
            step_up=StepUpGate(security),
            services=services,
        )
        recovery = RecoveryWorker(
            sessions=sessions,
            catalog=lambda: runtime.catalog,
            registry=registry,
            settings=engine_settings,
            services=services,
        )
        quotas = Quotas(
            "partner",
            settings.partner.requests_per_minute,
            redis=redis,
            redis_url=settings.redis.url or "",
            prefix=settings.redis.prefix,
        )
        runtime = cls(
            settings,
            db,
            sessions,
            catalog,
            engine,
            recovery,
            security,
            limits,
            risk,
            redis,
            quotas,
            backends,
        )
        return runtime

    async def start(self) -> None:
        """Load what the node keeps in memory: signing keys, limits, risk rules and lists."""
        await self.security.start()
        await self.limits.refresh()
        await self.risk.refresh()

    def schedule(self, loops: Loops) -> None:
        """Start the loops that keep this node in step with the others and tidy the
        database; every node runs them (each round is safe to run on several at once)."""
        loops.every(self.security.config.sync_seconds, self.security.sync, name="security_sync")
        loops.every(self.limits.sync_seconds, self.limits.sync, name="limits_sync")
        loops.every(self.risk.sync_seconds, self.risk.sync, name="risk_sync")
        teller = self.engine.services["teller"]
        loops.every(
            TELLER_EXPIRY_SECONDS,
            # The engine's clock: the one that parked the approvals and set their expiry.
            lambda: teller.expire_overdue(self.engine, now=self.engine.clock()),
            name="teller_expiry",
        )
        loops.every(
            PURGE_EVERY_SECONDS, self.purge_round, name="purge", first_after=PURGE_FIRST_SECONDS
        )

    async def purge(self, now: dt.datetime) -> Purged:
        """Delete what no check reads any more: limit counters of periods over, and risk
        activity older than the longest feature window."""
        return Purged(counters=await self.limits.purge(now), activity=await self.risk.purge(now))

    async def purge_round(self) -> None:
        """Purge and log what went (once an hour, from the first minute on, on every node:
        a row already gone is simply not found again), by the engine's clock, which dated the
        counters and the activity."""
        purged = await self.purge(self.engine.clock())
        if purged.counters or purged.activity:
            log.info("purged", counters=purged.counters, activity=purged.activity)

    async def close(self) -> None:
        """Release the back ends', the database's and Redis's connections."""
        if self.backends is not None:
            await self.backends.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def _counters(settings: Settings, redis: Redis | None) -> CounterStore:
    if redis is None:
        return DatabaseCounters()
    zone = settings.bank.zone

    def seconds_left(charge: Any) -> float:
        _, ends = bucket_of(charge.limit.period, utc_now(), zone)
        end = dt.datetime.combine(ends, dt.time(), tzinfo=zone)
        return max((end - utc_now()).total_seconds(), 0.0)

    return RedisCounters(redis, prefix=settings.redis.prefix, seconds_left=seconds_left)
