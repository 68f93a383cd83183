"""Back ends by name, from the ``connectors`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from channelhub.config import SettingsError, load_settings
from channelhub.connectors.base import BackendNotConfigured
from channelhub.connectors.http import HttpConnector
from channelhub.governance.registry import BackendRegistry
from tests.connectors.http_backend import rest_backend

TOML = """
[connectors.core]
kind = "http"
url = "{url}"
timeout_ms = 1500
pool_size = 3
retries = 1
breaker = {{ failure_threshold = 4, recovery_seconds = 12 }}

[connectors.core.operations.balance]
idempotent = true
method = "GET"
path = "/accounts/{{account}}/balance"
timeout_ms = 700

[connectors.core.operations.debit]
path = "/echo"

[connectors.switch]
kind = "iso8583"
host = "127.0.0.1"
port = 9583
"""


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> BackendRegistry:
    path = tmp_path / "channelhub.toml"
    path.write_text(text)
    monkeypatch.setenv("CHANNELHUB_CONFIG", str(path))
    settings = load_settings(data_dir=tmp_path)
    return BackendRegistry(settings.connectors)


async def test_backends_are_built_from_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with rest_backend() as backend:
        registry = load(tmp_path, monkeypatch, TOML.format(url=backend.url))
        try:
            assert registry.names == ["core", "switch"]
            core = registry.get("core")
            assert registry.get("core") is core
            assert isinstance(core.connector, HttpConnector)
            assert core.connector.pool_size == 3
            assert core.timeout == 1.5
            assert core.timeouts == {"balance": 0.7}
            assert core.retry.retries == 1
            assert core.breaker.failure_threshold == 4
            assert core.breaker.recovery_seconds == 12
            assert core.operation("balance").idempotent
            assert not core.operation("debit").idempotent
            answer = await core.call("balance", {"account": "A1"})
            assert answer["balance"] == "1250.00"
            assert (await core.call("debit", {"amount": "1.00"}))["echo"] == {"amount": "1.00"}
        finally:
            await registry.close()


async def test_a_kind_not_built_yet_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load(tmp_path, monkeypatch, TOML.format(url="http://127.0.0.1:1")).settings
    # A version that builds only the http kind (this one builds iso8583 too).
    registry = BackendRegistry(settings, builders={"http": HttpConnector.from_settings})
    assert registry.unavailable() == {
        "switch": "connector kind 'iso8583' is not available in this version"
    }
    with pytest.raises(BackendNotConfigured, match="'iso8583' is not available") as caught:
        registry.get("switch")
    assert caught.value.code == "BACKEND_NOT_CONFIGURED"
    with pytest.raises(BackendNotConfigured, match="no back end named 'ledger'"):
        registry.get("ledger")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[connectors.core]\nkind = "http"\n', "needs url"),
        ('[connectors.core]\nkind = "http"\nurl = "ftp://x"\n', "http://host"),
        ('[connectors.core]\nkind = "fixed"\nhost = "h"\n', "needs host and port"),
        ('[connectors.core]\nkind = "soap"\n', "CHANNELHUB_CONNECTORS_CORE_KIND"),
        (
            '[connectors.core]\nkind = "http"\nurl = "http://h"\ntimeout_ms = 0\n',
            "CHANNELHUB_CONNECTORS_CORE_TIMEOUT_MS",
        ),
        (
            '[connectors.core]\nkind = "http"\nurl = "http://h"\n'
            '[connectors.core.operations.x]\npath = "http://evil/x"\n',
            "starts with /",
        ),
        (
            '[connectors.core]\nkind = "http"\nurl = "http://h"\n'
            '[connectors.core.tls]\nkey_file = "k.pem"\n',
            "key_file needs cert_file",
        ),
    ],
)
def test_wrong_settings_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=reason) as caught:
        load(tmp_path, monkeypatch, text)
    assert "\n" not in str(caught.value)


def test_missing_tls_files_are_reported_by_back_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = load(
        tmp_path,
        monkeypatch,
        '[connectors.core]\nkind = "http"\n'
        + f'url = "https://h"\n[connectors.core.tls]\nca_file = "{tmp_path / "none.pem"}"\n',
    )
    with pytest.raises(BackendNotConfigured, match="back end core: TLS files cannot be loaded"):
        registry.get("core")
