"""Settings: ``CHANNELHUB_*`` environment variables over an optional TOML file over defaults.

Sections map to variables by their first underscore: ``[database] url`` in TOML is
``CHANNELHUB_DATABASE_URL`` in the environment, ``[http] max_body_bytes`` is
``CHANNELHUB_HTTP_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from channelhub.connectors.settings import ConnectorSettings
from channelhub.kit.db import normalize_url

__all__ = ["Settings", "SettingsError", "load_settings"]

_Section = ConfigDict(extra="forbid")


class BankSettings(BaseModel):
    """Who the bank is and where its business day turns."""

    model_config = _Section

    name: str = "channelhub demo bank"
    time_zone: str = "Asia/Shanghai"
    #: The bank's BIC: interbank messages must be addressed to it (docs/interbank.md).
    bic: str = Field(
        default="CHUBCNSHXXX", pattern=r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """Return the bank's time zone."""
        return ZoneInfo(self.time_zone)


class DatabaseSettings(BaseModel):
    """Where the journal and every domain's tables live."""

    model_config = _Section

    url: str | None = Field(default=None, description="default: SQLite file in the data directory")
    pool_size: int = Field(default=10, ge=1, le=200)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                normalize_url(value)
            except Exception as error:  # sqlalchemy raises ArgumentError for unparsable URLs
                raise ValueError(str(error).splitlines()[0]) from None
        return value


class HttpSettings(BaseModel):
    """The HTTP listener of the REST channels, management API and probes."""

    model_config = _Section

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=16_777_216)


class KernelSettings(BaseModel):
    """The transaction engine's timing."""

    model_config = _Section

    lease_seconds: float = Field(default=60.0, gt=0)
    duplicate_wait_seconds: float = Field(default=10.0, ge=0)


class RecoverySettings(BaseModel):
    """The in-process recovery worker."""

    model_config = _Section

    enabled: bool = True
    interval_seconds: float = Field(default=15.0, gt=0)


class CatalogSettings(BaseModel):
    """Where service definitions come from, besides the built-in ones."""

    model_config = _Section

    paths: list[Path] = Field(default_factory=list)
    builtin: bool = True


class SecuritySettings(BaseModel):
    """Keys the platform protects customer data with, and how logins and tokens behave."""

    model_config = _Section

    #: The key card numbers are hashed and PINs verified with (at least 32 characters). Every
    #: node of one bank must share it. Unset, a random key is made once in the data directory,
    #: which suits one node only.
    data_key: SecretStr | None = Field(default=None, min_length=32)
    #: The key the software security module seals secrets under: TOTP secrets, token signing
    #: keys, partner secrets, terminal keys (at least 32 characters, shared by every node).
    #: Unset, a random key is made once in the data directory, which suits one node only.
    master_key: SecretStr | None = Field(default=None, min_length=32)
    #: ``iss`` and ``aud`` of the access tokens this platform issues and accepts.
    issuer: str = Field(default="channelhub", min_length=1, max_length=200)
    audience: str = Field(default="channelhub-api", min_length=1, max_length=200)
    access_token_seconds: int = Field(default=300, ge=30, le=3600)
    refresh_token_seconds: int = Field(default=8 * 3600, ge=300, le=90 * 86400)
    #: How long a second-factor challenge (after a login from a new device) stays open.
    challenge_seconds: int = Field(default=300, ge=30, le=3600)
    #: Wrong codes a challenge takes before it is spent.
    challenge_attempts: int = Field(default=5, ge=1, le=20)
    #: Failed logins for one username, within ``lockout_seconds``, that lock it for as long.
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_seconds: int = Field(default=900, ge=1, le=86400)
    #: TOTP codes one time step (30 s) before or after now are accepted too (clock drift).
    totp_drift_steps: int = Field(default=1, ge=0, le=4)
    #: argon2id cost. The default is RFC 9106's second recommended option (64 MiB, 3 passes,
    #: 4 lanes); OWASP's minimum is 19 MiB and 2 passes, below which it is refused.
    argon2_memory_kib: int = Field(default=65_536, ge=19_456, le=4_194_304)
    argon2_time_cost: int = Field(default=3, ge=2, le=20)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    #: How often a node reads sessions revoked on other nodes and new signing keys.
    sync_seconds: float = Field(default=2.0, gt=0, le=300)


class RedisSettings(BaseModel):
    """Redis, for counters every node shares (limit usage, velocity features). Unset, they
    are kept in the database, which suits one node or several on PostgreSQL."""

    model_config = _Section

    #: ``redis://host:6379/0``; ``rediss://`` for TLS.
    url: str | None = Field(default=None, max_length=500)
    #: Prefixes every key, so that one Redis can serve several banks or test runs.
    prefix: str = Field(default="channelhub:", max_length=64)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db, rediss:// or unix://")
        return value


class LimitSettings(BaseModel):
    """Limit management."""

    model_config = _Section

    #: How often a node re-reads the bank's limits (a change made anywhere applies then).
    sync_seconds: float = Field(default=2.0, gt=0, le=300)


class RiskSettings(BaseModel):
    """The real-time risk engine."""

    model_config = _Section

    #: How long an evaluation may take before it counts as the engine being down; the
    #: service's failure mode (closed by default) then decides.
    timeout_ms: int = Field(default=250, ge=10, le=10_000)
    #: What a rule that fails at run time counts as, unless the rule names its own.
    rule_error_outcome: str = Field(default="review", pattern="^(allow|challenge|review|deny)$")
    #: How often a node re-reads rules and lists.
    sync_seconds: float = Field(default=2.0, gt=0, le=300)


class PartnerSettings(BaseModel):
    """The partner open API."""

    model_config = _Section

    #: Requests a minute each partner app may make (a moving window; 429 with Retry-After
    #: beyond). Counted in Redis when it is configured, so that the quota holds across nodes.
    requests_per_minute: int = Field(default=600, ge=1, le=1_000_000)


class TellerSettings(BaseModel):
    """The branch teller desk."""

    model_config = _Section

    #: Currency -> the largest amount (a decimal string) a teller may pay out, take in or
    #: transfer alone; a larger one waits for a supervisor's approval. A currency not named
    #: here always needs one.
    authority: dict[str, str] = Field(
        default_factory=lambda: {"CNY": "50000.00", "USD": "10000.00"}
    )


class Iso8583Settings(BaseModel):
    """The ATM and POS channel: ISO 8583 over TCP (docs/atm.md)."""

    model_config = _Section

    host: str = "127.0.0.1"
    #: Unset, the channel does not listen; 0 picks a free port.
    port: int | None = Field(default=None, ge=0, le=65535)
    #: A frame announcing more than this is refused and its connection closed.
    max_message_bytes: int = Field(default=4096, ge=256, le=65_535)
    #: How long the rest of a frame may take once its length prefix arrived.
    read_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    #: A connection that sends nothing for this long is closed.
    idle_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    max_connections: int = Field(default=2_000, ge=1, le=100_000)
    #: Requests of one connection processed at once (a terminal may pipeline).
    max_in_flight: int = Field(default=32, ge=1, le=1_024)
    #: An authorization (0100) neither reversed nor completed within this many days is
    #: released: its hold lifted, its limits given back (card schemes use 7 to 30 days).
    authorization_hold_days: int = Field(default=7, ge=1, le=60)


class LogSettings(BaseModel):
    """How much to log and in which form."""

    model_config = _Section

    level: str = "INFO"
    json_format: bool = Field(default=True, alias="json")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()


class Settings(BaseSettings):
    """Every setting of a channelhub node."""

    model_config = SettingsConfigDict(
        env_prefix="CHANNELHUB_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        populate_by_name=True,
    )

    data_dir: Path = Path("var")
    node_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: Python modules imported at start, to register extra steps (e.g. a bank's own).
    plugins: list[str] = Field(default_factory=list)
    bank: BankSettings = BankSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    kernel: KernelSettings = KernelSettings()
    recovery: RecoverySettings = RecoverySettings()
    catalog: CatalogSettings = CatalogSettings()
    security: SecuritySettings = SecuritySettings()
    redis: RedisSettings = RedisSettings()
    limits: LimitSettings = LimitSettings()
    risk: RiskSettings = RiskSettings()
    partner: PartnerSettings = PartnerSettings()
    teller: TellerSettings = TellerSettings()
    iso8583: Iso8583Settings = Iso8583Settings()
    #: Back-end systems by name (docs/connectors.md).
    connectors: dict[str, ConnectorSettings] = Field(default_factory=dict)
    #: Services sent to an external back end, by id, each through a mapping (a bundled
    #: mapping's name or a file): ``"account.balance" = "core-balance"``. Unrouted services
    #: use the built-in ledger (docs/connectors.md, "Services on an external back end").
    routes: dict[str, str] = Field(default_factory=dict)
    log: LogSettings = LogSettings()

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: dict[str, str]) -> dict[str, str]:
        for service, mapping in value.items():
            if not service or len(service) > 128 or not mapping or len(mapping) > 500:
                raise ValueError(f"route {service[:128]!r}: a service id and a mapping's name")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("CHANNELHUB_CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        """Return the database URL, defaulting to an SQLite file in the data directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'channelhub.db').resolve()}"


class SettingsError(Exception):
    """A setting is wrong; the message is one line naming it."""


def load_settings(*, config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the environment, ``config_file`` (TOML) and explicit overrides.

    Raises:
        SettingsError: one line naming the first wrong setting and why.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"--config {config_file}: no such file")
        os.environ["CHANNELHUB_CONFIG"] = str(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"setting {_setting_name(first['loc'])}: {reason}") from None
    except ValueError as error:  # a TOML file that does not parse
        raise SettingsError(f"config file {os.environ.get('CHANNELHUB_CONFIG')}: {error}") from None


def _setting_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return "CHANNELHUB_" + "_".join(parts).upper()
