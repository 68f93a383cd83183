"""The settings of one named back end (``[connectors.<name>]`` in the settings file).

They live here rather than in ``channelhub.config`` so that connectors and governance, which
may not import the configuration module, can take them as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BreakerSettings",
    "ConnectorKind",
    "ConnectorSettings",
    "FramingSettings",
    "OperationSettings",
    "TlsSettings",
]

_Section = ConfigDict(extra="forbid")

ConnectorKind = Literal["http", "fixed", "iso8583", "iso20022", "builtin"]


class BreakerSettings(BaseModel):
    """When the back end's circuit opens and when it is probed again."""

    model_config = _Section

    #: Consecutive failures (timeouts, refused connections, 5xx, garbage) that open it.
    failure_threshold: int = Field(default=5, ge=1, le=1_000)
    #: How long it stays open (every call fails fast) before one probe call is let through.
    recovery_seconds: float = Field(default=30.0, gt=0, le=3_600)


class TlsSettings(BaseModel):
    """TLS towards the back end: the bank's CA and the client certificate it expects."""

    model_config = _Section

    #: PEM file of the CA(s) that signed the back end's certificate; unset, the system's.
    ca_file: Path | None = None
    #: PEM client certificate (and chain) presented to the back end.
    cert_file: Path | None = None
    #: PEM private key of ``cert_file``, unless that file holds it too.
    key_file: Path | None = None

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class FramingSettings(BaseModel):
    """``fixed``: the length prefix in front of each record on the connection."""

    model_config = _Section

    #: 2 or 4 bytes of big-endian binary length.
    prefix_bytes: Literal[2, 4] = 2
    #: Whether the length counts the prefix itself (IMS's ``LL``).
    inclusive: bool = False


class OperationSettings(BaseModel):
    """One operation of the back end: how it is sent, and whether it may be sent again."""

    model_config = _Section

    #: Only an idempotent operation is retried (an inquiry, or one de-duplicated by a key).
    idempotent: bool = False
    #: HTTP method and path below the back end's ``url`` (``http`` and ``iso20022`` kinds).
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(default="/", max_length=500)
    #: This operation's own timeout; unset, the back end's ``timeout_ms``.
    timeout_ms: int | None = Field(default=None, ge=10, le=120_000)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/") or "://" in value:
            raise ValueError("use a path that starts with /, below the back end's url")
        return value


class ConnectorSettings(BaseModel):
    """One back-end system the platform calls, by name."""

    model_config = _Section

    kind: ConnectorKind
    #: ``http(s)://host:port/base`` for the ``http`` and ``iso20022`` kinds.
    url: str | None = Field(default=None, max_length=500)
    #: Host and port for the TCP kinds (``fixed``, ``iso8583``).
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    #: Every call ends within this; an unanswered money-changing call is in doubt.
    timeout_ms: int = Field(default=5_000, ge=10, le=120_000)
    #: Connections kept open to the back end at most.
    pool_size: int = Field(default=10, ge=1, le=1_000)
    #: Extra attempts of an idempotent operation after a timeout or an unavailable back end.
    retries: int = Field(default=2, ge=0, le=10)
    #: First pause before a retry; doubled each time, with jitter, at most ``retry_max_ms``.
    retry_backoff_ms: int = Field(default=100, ge=0, le=60_000)
    retry_max_ms: int = Field(default=2_000, ge=0, le=60_000)
    #: An answer larger than this is refused as a bad response.
    max_response_bytes: int = Field(default=1_048_576, ge=1_024, le=67_108_864)
    #: ``iso8583``: an idle connection sends an echo test (0800, 301) after this long; 0 never.
    keepalive_seconds: float = Field(default=60.0, ge=0, le=3_600)
    #: ``iso8583``: reversals (an 0400, then 0420 repeats) sent for an unanswered financial
    #: request before giving up, and the pause between them.
    reversal_attempts: int = Field(default=5, ge=1, le=100)
    reversal_interval_ms: int = Field(default=2_000, ge=10, le=120_000)
    #: ``fixed``: how records are delimited (their mappings must say the same).
    framing: FramingSettings = FramingSettings()
    breaker: BreakerSettings = BreakerSettings()
    tls: TlsSettings = TlsSettings()
    operations: dict[str, OperationSettings] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("use http://host:port/path or https://...")
        return value

    @model_validator(mode="after")
    def _address(self) -> ConnectorSettings:
        if self.kind in ("http", "iso20022") and self.url is None:
            raise ValueError(f"a {self.kind} back end needs url")
        if self.kind in ("fixed", "iso8583") and (self.host is None or self.port is None):
            raise ValueError(f"a {self.kind} back end needs host and port")
        return self
