"""The ``channelhub`` command, run as a user runs it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from channelhub import __version__
from tests.support.processes import REPO, channelhub, node_env

pytestmark = pytest.mark.slow

CATALOG = REPO / "tests" / "support" / "catalog"


def _fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = node_env(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path, **extra)
    return env


def test_version(tmp_path: Path) -> None:
    result = channelhub("version", env=_fresh_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.strip() == f"channelhub {__version__}"


def test_every_command_explains_itself(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    for command in (
        ["serve"],
        ["demo"],
        ["db", "upgrade"],
        ["catalog", "list"],
        ["catalog", "validate"],
        ["recover"],
        ["purge"],
        ["events", "tail"],
        ["version"],
    ):
        result = channelhub(*command, "--help", env=env)
        assert result.returncode == 0, command
        assert "Usage" in result.stdout


def test_catalog_validate_accepts_good_definitions(tmp_path: Path) -> None:
    result = channelhub("catalog", "validate", str(CATALOG), env=_fresh_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "definitions valid" in result.stdout


def test_catalog_validate_reports_file_line_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CATALOG / "typed.yaml")
        .read_text(encoding="utf-8")
        .replace("step: system.echo", "step: nowhere.step"),
        encoding="utf-8",
    )
    result = channelhub("catalog", "validate", str(bad), env=_fresh_env(tmp_path))
    assert result.returncode == 1
    line = next(
        n for n, text in enumerate(bad.read_text().splitlines(), 1) if "nowhere.step" in text
    )
    assert f"{bad}:{line}: unknown step 'nowhere.step'" in result.stderr


def test_catalog_validate_on_a_missing_path(tmp_path: Path) -> None:
    result = channelhub("catalog", "validate", str(tmp_path / "nothing"), env=_fresh_env(tmp_path))
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_catalog_list_shows_builtin_and_configured_services(tmp_path: Path) -> None:
    result = channelhub("catalog", "list", env=_fresh_env(tmp_path, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    for service in ("system.echo", "system.time", "test.flow"):
        assert service in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CHANNELHUB_DATABASE_URL", "mysql://nobody@localhost/db", "CHANNELHUB_DATABASE_URL"),
        ("CHANNELHUB_HTTP_PORT", "eighty", "CHANNELHUB_HTTP_PORT"),
        ("CHANNELHUB_BANK_TIME_ZONE", "Mars/Olympus", "CHANNELHUB_BANK_TIME_ZONE"),
        ("CHANNELHUB_LOG_LEVEL", "LOUD", "CHANNELHUB_LOG_LEVEL"),
    ],
)
def test_a_wrong_setting_fails_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    result = channelhub("serve", env={**_fresh_env(tmp_path), variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: setting {named}: ")


def test_a_wrong_config_file_setting_is_named(tmp_path: Path) -> None:
    config = tmp_path / "channelhub.toml"
    config.write_text('[http]\nport = "x"\n', encoding="utf-8")
    result = channelhub("--config", str(config), "serve", env=_fresh_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "error: setting CHANNELHUB_HTTP_PORT: Input should be a valid integer"
    )


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = channelhub("serve", "--port", "0", env=_fresh_env(tmp_path))
    assert result.returncode == 2
    assert "channelhub db upgrade" in result.stderr


def test_upgrade_then_events_tail(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    upgraded = channelhub("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "0001" in upgraded.stderr
    empty = channelhub("events", "tail", env=env)
    assert (empty.returncode, empty.stdout) == (0, "")


def test_seed_call_and_verify_the_demo_bank(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    seeded = channelhub("seed", "--customers", "30", env=env, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert "added 30 customers" in seeded.stdout
    again = channelhub("seed", "--customers", "30", env=env, timeout=120)
    assert "added 0 customers" in again.stdout

    listed = channelhub("call", "account.list", "--as", "alice", env=env)
    assert listed.returncode == 0, listed.stderr

    accounts = orjson.loads(listed.stdout)["data"]["accounts"]
    assert accounts[0]["ledger_balance"] == "50000.00"
    refused = channelhub(
        "call",
        "account.balance",
        "--as",
        "alice",
        "--json",
        '{"account": "0102000000000333"}',
        env=env,
    )
    assert refused.returncode == 1
    assert orjson.loads(refused.stdout)["code"] == "FORBIDDEN"
    bad = channelhub("call", "account.list", "--as", "alice", "--json", "[1", env=env)
    assert bad.returncode == 2
    unknown = channelhub("call", "account.list", "--as", "mallory", env=env)
    assert unknown.returncode == 2
    verified = channelhub("ledger", "verify", env=env)
    assert verified.returncode == 0, verified.stdout
    assert "ledger consistent" in verified.stdout


def test_limits_and_risk_rules_from_the_command_line(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    assert channelhub("seed", "--customers", "0", env=env, timeout=120).returncode == 0
    limits = channelhub("limits", "list", env=env)
    assert limits.returncode == 0, limits.stderr
    assert "200000.00" in limits.stdout  # the demo's daily limit, in full
    rules = channelhub("risk", "rules", "list", env=env)
    assert rules.returncode == 0, rules.stderr
    for name in ("large_amount_new_beneficiary", "burst_of_transfers", "deny_list"):
        assert name in rules.stdout
    again = channelhub("risk", "rules", "install-defaults", env=env)
    assert again.stdout.strip() == "installed 0 rules: none"

    broken = channelhub(
        "risk", "rules", "add", "--name", "broken", "--expression", "txn.amount >",
        "--outcome", "deny", env=env,
    )  # fmt: skip
    assert broken.returncode == 1
    assert "line 1, column 13" in broken.stderr
    unknown = channelhub(
        "risk", "rules", "add", "--name", "typo", "--expression", "features.no_such > 1",
        "--outcome", "deny", env=env,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "no_such" in unknown.stderr
    bad_outcome = channelhub(
        "risk", "rules", "add", "--name", "x", "--expression", "true", "--outcome", "maybe",
        env=env,
    )  # fmt: skip
    assert bad_outcome.returncode == 2
    saved = channelhub(
        "risk", "rules", "add", "--name", "big_usd", "--outcome", "review", "--score", "50",
        "--expression", 'txn.currency == "USD" && txn.amount > 500000', env=env,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "saved big_usd version 1 (shadow)"
    assert "big_usd" in channelhub("risk", "rules", "list", env=env).stdout

    lowered = channelhub(
        "call", "limit.set", "--as", "alice", "--json",
        '{"scope": "transfer.outgoing", "channel": "mobile", "period": "daily",'
        ' "amount": "100.00", "currency": "CNY"}',
        env=env,
    )  # fmt: skip
    assert lowered.returncode == 0, lowered.stdout
    listed = orjson.loads(channelhub("call", "limit.list", "--as", "alice", env=env).stdout)
    mine = [
        limit
        for limit in listed["data"]["limits"]
        if limit["owner"] == "customer" and limit["channel"] == "mobile"
    ]
    assert [(m["limit"], m["used"], m["remaining"]) for m in mine] == [("100.00", "0.00", "100.00")]
