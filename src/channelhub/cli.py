"""The ``channelhub`` command."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from channelhub import __version__
from channelhub.config import Settings, SettingsError, load_settings
from channelhub.kernel.catalog import CatalogError, definition_files, load_definitions
from channelhub.kit.errors import ChannelhubError

if TYPE_CHECKING:
    from channelhub.connectors.simulators.base import Simulator

__all__ = ["app"]

app = typer.Typer(
    help="channelhub: the one backend every channel of a bank talks to.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
catalog_app = typer.Typer(help="Service definitions.", no_args_is_help=True)
events_app = typer.Typer(help="The event outbox.", no_args_is_help=True)
ledger_app = typer.Typer(help="The built-in core ledger.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
audit_app = typer.Typer(
    help="The security center's tamper-evident audit log.", no_args_is_help=True
)
keys_app = typer.Typer(help="The keys access tokens are signed with.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
partner_app = typer.Typer(help="Partner apps on the open API.", no_args_is_help=True)
app.add_typer(partner_app, name="partner")
terminal_app = typer.Typer(help="ATM and POS terminals and their keys.", no_args_is_help=True)
app.add_typer(terminal_app, name="terminal")
limits_app = typer.Typer(help="The bank's limits.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")
risk_app = typer.Typer(help="The risk engine.", no_args_is_help=True)
risk_rules_app = typer.Typer(help="Risk rules.", no_args_is_help=True)
risk_app.add_typer(risk_rules_app, name="rules")
app.add_typer(risk_app, name="risk")
app.add_typer(catalog_app, name="catalog")
app.add_typer(events_app, name="events")
simulate_app = typer.Typer(
    help="Simulators of the bank's external systems (docs/connectors.md).", no_args_is_help=True
)
app.add_typer(simulate_app, name="simulate")
mapping_app = typer.Typer(
    help="Mappings to back ends' messages (docs/connectors.md).", no_args_is_help=True
)
app.add_typer(mapping_app, name="mapping")

# Piped into a file or another program, tables are as wide as their content needs, up to
# 200 columns (rich would assume 80 and cut values short); a terminal keeps its own width.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


def _table(*headers: str) -> Table:
    """A table whose columns wrap their values rather than cut them short in a narrow
    terminal."""
    return Table(*(Column(header, overflow="fold") for header in headers))


T = TypeVar("T")

_state: dict[str, Path | None] = {"config": None}

HostOption = Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")]
PortOption = Annotated[int | None, typer.Option(help="HTTP port (0 picks a free one).")]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the SQLite file and other local state live."),
]
Iso8583PortOption = Annotated[
    int | None,
    typer.Option(
        "--iso8583-port",
        min=0,
        max=65535,
        help="Listen for ATM and POS terminals (ISO 8583 over TCP) on this port.",
    ),
]
#: The ATM and POS channel's port in ``channelhub demo`` unless told otherwise.
DEMO_ISO8583_PORT = 8583


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A TOML settings file (environment variables win)."),
    ] = None,
) -> None:
    """channelhub: the one backend every channel of a bank talks to."""
    _state["config"] = config


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(config_file=_state["config"], **overrides)
    except SettingsError as error:
        err.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def _serve_overrides(host: str | None, port: int | None, data_dir: Path | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    http: dict[str, Any] = {}
    if host is not None:
        http["host"] = host
    if port is not None:
        http["port"] = port
    if http:
        overrides["http"] = http
    return overrides


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    # uvloop (installed with uvicorn[standard]) when the platform has it: the event loop is a
    # fifth of a transaction's CPU on the default loop.
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _migrate(settings: Settings) -> None:
    from channelhub.kit.migrations import upgrade

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=False
    ) as bar:
        task = bar.add_task("migrating the database", total=None)
        upgrade(settings.database_url, on_step=lambda step: bar.console.print(f"  applied {step}"))
        bar.update(task, description="database is up to date")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None) -> None:
    """Apply every pending migration to the configured database."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    _migrate(settings)


@catalog_app.command("list")
def catalog_list() -> None:
    """List every service definition the node would load."""
    from channelhub.runtime import import_plugins, load_catalog

    settings = _settings()
    import_plugins(settings.plugins)
    catalog = _load_or_exit(lambda: load_catalog(settings))
    table = _table("service", "version", "category", "status", "auth", "channels", "title")
    for service in catalog.all():
        d = service.definition
        table.add_row(
            d.id,
            str(d.version),
            d.category.value,
            d.status.value,
            d.auth.level.value,
            ",".join(d.channels),
            d.title,
        )
    out.print(table)
    out.print(f"{len(catalog)} definitions")


@catalog_app.command("validate")
def catalog_validate(
    path: Annotated[Path, typer.Argument(help="A definition file or a folder of them.")],
) -> None:
    """Check definitions without loading them into a node; each problem shows file and line."""
    from channelhub.kernel import registry
    from channelhub.runtime import import_plugins

    if not path.exists():
        err.print(f"error: {path}: no such file or folder", markup=False)
        raise typer.Exit(2)
    settings = _settings()
    import_plugins(settings.plugins)
    files = definition_files([path])
    services = _load_or_exit(lambda: load_definitions(files, registry))
    out.print(f"{len(services)} definitions valid", highlight=False)


def _load_or_exit(load: Any) -> Any:
    try:
        return load()
    except CatalogError as error:
        for problem in error.problems:
            err.print(str(problem), markup=False, highlight=False)
        err.print(f"{len(error.problems)} problem(s)", markup=False)
        raise typer.Exit(1) from None
    except ChannelhubError as error:  # a routed mapping or back end that does not fit
        err.print(f"error: {error.message}", markup=False, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"channelhub {__version__}", highlight=False)


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Apply pending migrations first.")
    ] = False,
    iso8583_port: Iso8583PortOption = None,
) -> None:
    """Run a node from settings: the HTTP channels, probes and metrics, and the recovery worker."""
    settings = _with_iso8583(_settings(**_serve_overrides(host, port, data_dir)), iso8583_port)
    if upgrade:
        _migrate(settings)
    _run(_serve(settings, banner=None))


@app.command()
def demo(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    iso8583_port: Iso8583PortOption = None,
) -> None:
    """Migrate, seed the demo bank and serve it (HTTP on port 8000, ATM and POS terminals on
    8583, unless told otherwise)."""
    settings = _settings(**_serve_overrides(host, port, data_dir))
    if iso8583_port is None and settings.iso8583.port is None:
        iso8583_port = DEMO_ISO8583_PORT
    settings = _with_iso8583(settings, iso8583_port)
    _migrate(settings)
    _run(_seed_demo(settings))
    _run(_serve(settings, banner=_demo_banner))


def _with_iso8583(settings: Settings, port: int | None) -> Settings:
    """Return ``settings`` with the ATM and POS channel on ``port`` (unchanged if None)."""
    if port is None:
        return settings
    section = settings.iso8583.model_copy(update={"port": port})
    return settings.model_copy(update={"iso8583": section})


async def _seed_demo(settings: Settings) -> None:
    from channelhub.demo import seed
    from channelhub.demo.bank import seed_bank, seed_customers
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    configure_logging(level="WARNING", json=settings.log.json_format)
    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=err,
        ) as bar:
            from channelhub.demo.seed import DEMO_TRANSACTIONS

            await seed_bank(runtime.sessions, _seed_context(runtime))
            await _seed_identities(runtime, bar)
            task = bar.add_task("seeding the demo", total=DEMO_GENERATED_CUSTOMERS)
            await seed_customers(
                runtime.sessions,
                _seed_context(runtime),
                count=DEMO_GENERATED_CUSTOMERS,
                advance=lambda n: bar.advance(task, n),
            )
            task = bar.add_task("demo transactions", total=len(DEMO_TRANSACTIONS))
            await seed(runtime.engine, advance=lambda _: bar.advance(task))
        await _seed_controls(runtime)
    finally:
        await runtime.close()


async def _seed_controls(runtime: Any) -> None:
    """The demo's bank limits and default risk rules (after the demo's own transactions, so
    that the velocity rule does not hold them)."""
    from channelhub.demo.controls import seed_controls
    from channelhub.kit.clock import utc_now

    await seed_controls(runtime.sessions, now=utc_now())


async def _seed_identities(runtime: Any, bar: Progress) -> None:
    from channelhub.demo.identities import (
        DEMO_TOTP_SECRETS,
        seed_identities,
        seed_participant,
        seed_partner,
        seed_terminals,
    )
    from channelhub.kit.clock import utc_now

    task = bar.add_task("demo passwords and TOTP", total=len(DEMO_TOTP_SECRETS))
    await seed_identities(
        runtime.sessions, runtime.security, now=utc_now(), advance=lambda n: bar.advance(task, n)
    )
    await seed_partner(runtime.sessions, runtime.security, now=utc_now())
    await seed_participant(runtime.sessions, runtime.security)
    await seed_terminals(runtime.sessions, runtime.security)


#: How many generated customers ``channelhub demo`` adds to the named ones.
DEMO_GENERATED_CUSTOMERS = 20


def _seed_context(runtime: Any) -> Any:
    from channelhub.demo.bank import SeedContext
    from channelhub.kit.clock import utc_now
    from channelhub.runtime import data_key

    return SeedContext(utc_now(), runtime.settings.bank.zone, data_key(runtime.settings))


@app.command("seed")
def seed_command(
    customers: Annotated[
        int, typer.Option(min=0, max=10_000_000, help="How many generated customers to have.")
    ] = 1000,
    data_dir: DataDirOption = None,
) -> None:
    """Seed the demo bank and make sure it has this many generated customers."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    _migrate(settings)
    added = _run(_seed_many(settings, customers))
    out.print(f"added {added} customers ({customers} generated customers in all)")


async def _seed_many(settings: Settings, customers: int) -> int:
    from channelhub.demo.bank import generated_count, seed_bank, seed_customers
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    configure_logging(level="WARNING", json=settings.log.json_format)
    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        await seed_bank(runtime.sessions, _seed_context(runtime))
        existing = await generated_count(runtime.sessions)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            await _seed_identities(runtime, bar)
            task = bar.add_task(
                "seeding customers", total=customers, completed=min(existing, customers)
            )
            added = await seed_customers(
                runtime.sessions,
                _seed_context(runtime),
                count=customers,
                advance=lambda n: bar.advance(task, n),
            )
        await _seed_controls(runtime)
        return added
    finally:
        await runtime.close()


@app.command("call")
def call_command(
    service: Annotated[str, typer.Argument(help="The service id, e.g. account.list.")],
    as_user: Annotated[str, typer.Option("--as", help="The customer user to act as, e.g. alice.")],
    body: Annotated[str, typer.Option("--json", help="The request body, a JSON object.")] = "{}",
    channel: Annotated[str, typer.Option(help="The channel to record it on.")] = "mobile",
    key: Annotated[
        str | None, typer.Option("--key", help="An idempotency key (made up if not given).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run one service as a customer user, through the kernel, and print the result.

    An operator's and developer's tool: it acts with the database's authority, so it is for
    whoever may run channelhub itself; customers come in through the channels.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        err.print(f"error: --json is not JSON: {error}")
        raise typer.Exit(2) from None
    if not isinstance(payload, dict):
        err.print("error: --json must be a JSON object")
        raise typer.Exit(2)
    settings = _settings(**_serve_overrides(None, None, data_dir))
    result = _run(_call(settings, service, as_user, payload, channel, key))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    if result["status"] != "succeeded":
        raise typer.Exit(1)


async def _call(
    settings: Settings,
    service: str,
    username: str,
    payload: dict[str, Any],
    channel: str,
    key: str | None,
) -> dict[str, Any]:
    from channelhub.cau.service import customer_principal
    from channelhub.kernel import TransactionRequest
    from channelhub.kernel.model import AuthLevel
    from channelhub.kit.errors import ChannelhubError
    from channelhub.kit.ids import new_id
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    configure_logging(level="WARNING", json=settings.log.json_format)
    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        async with runtime.sessions() as session:
            try:
                principal = await customer_principal(session, username, auth_level=AuthLevel.MFA)
            except ChannelhubError as error:
                err.print(f"error: {username}: {error.message}")
                raise typer.Exit(2) from None
        request = TransactionRequest(
            service_id=service,
            channel=channel,
            principal=principal,
            payload=payload,
            idempotency_key=key or f"cli-{new_id()}",
        )
        result = await runtime.engine.execute(request)
    finally:
        await runtime.close()
    return {
        "txn_id": str(result.txn_id),
        "status": result.status.value,
        "code": result.code,
        "message": result.message,
        "data": dict(result.data),
        **({"details": dict(result.details)} if result.details else {}),
    }


@ledger_app.command("verify")
def ledger_verify(data_dir: DataDirOption = None) -> None:
    """Check every ledger invariant (balanced entries, balances equal to postings, holds,
    floors); print each violation and exit 1 if there is any."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    problems = _run(_verify(settings))
    for problem in problems:
        out.print(problem)
    if problems:
        raise typer.Exit(1)
    out.print("ledger consistent")


async def _verify(settings: Settings) -> list[str]:
    from channelhub.kit.db import create_engine, make_sessionmaker
    from channelhub.ledger.service import verify

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            return await verify(session)
    finally:
        await engine.dispose()


@audit_app.command("verify")
def audit_verify(data_dir: DataDirOption = None) -> None:
    """Check the audit log's hash chain from its first record; print each break and exit 1
    if there is any."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    count, problems = _run(_verify_audit(settings))
    for problem in problems:
        out.print(problem, highlight=False)
    if problems:
        raise typer.Exit(1)
    out.print(f"audit chain intact ({count} records)", highlight=False)


async def _verify_audit(settings: Settings) -> tuple[int, list[str]]:
    from channelhub.kit.db import create_engine, make_sessionmaker
    from channelhub.security.audit_trail import verify_audit_chain

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        with Progress(
            TextColumn("{task.description}"), TextColumn("{task.completed}"), console=err
        ) as bar:
            task = bar.add_task("records checked", total=None)
            async with make_sessionmaker(engine)() as session:
                return await verify_audit_chain(session, advance=lambda n: bar.advance(task, n))
    finally:
        await engine.dispose()


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDirOption = None) -> None:
    """Make a new token signing key and retire the old ones (they keep verifying the tokens
    they signed until those expire); every node switches within its sync interval."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    kid = _run(_rotate_key(settings))
    out.print(f"new signing key {kid}", highlight=False)


async def _rotate_key(settings: Settings) -> str:
    from channelhub.runtime import Runtime

    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        await runtime.security.start()
        kid: str = await runtime.security.rotate_key()
        return kid
    finally:
        await runtime.close()


@partner_app.command("register")
def partner_register(
    client_id: Annotated[str, typer.Argument(help="The app's client id, e.g. budget-app.")],
    name: Annotated[str, typer.Option(help="The app's name, as customers see it.")],
    scope: Annotated[
        list[str],
        typer.Option(
            help="A scope to grant (repeat): accounts:read, statements:read, interbank:<BIC>."
        ),
    ],
    network: Annotated[list[str], typer.Option(help="A CIDR block calls may come from (repeat).")],
    data_dir: DataDirOption = None,
) -> None:
    """Register a partner app and print its client secret, once: it is stored sealed under
    the master key and never shown again."""
    if not 3 <= len(client_id) <= 64 or not client_id.replace("-", "").isalnum():
        err.print("error: a client id has 3 to 64 letters, digits and hyphens")
        raise typer.Exit(2)
    settings = _settings(**_serve_overrides(None, None, data_dir))
    try:
        secret = _run(_register_partner(settings, client_id, name, scope, network))
    except ValueError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"client id:     {client_id}", highlight=False)
    out.print(f"client secret: {secret}", highlight=False)
    out.print("Keep the secret now: it is not shown again.", highlight=False)


async def _register_partner(
    settings: Settings, client_id: str, name: str, scopes: list[str], networks: list[str]
) -> str:
    from sqlalchemy.exc import IntegrityError

    from channelhub.runtime import Runtime
    from channelhub.security.partners import register_app

    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        secret: str = await register_app(
            runtime.security, client_id=client_id, name=name, scopes=scopes, networks=networks
        )
        return secret
    except IntegrityError:
        raise ValueError(f"a partner app {client_id} is already registered") from None
    finally:
        await runtime.close()


@terminal_app.command("register")
def terminal_register(
    terminal_id: Annotated[str, typer.Argument(help="8 letters or digits (ISO 8583 field 41).")],
    kind: Annotated[str, typer.Option(help="atm or pos.")],
    location: Annotated[str, typer.Option(help="Where the terminal stands.")],
    branch: Annotated[str | None, typer.Option(help="The branch an ATM belongs to.")] = None,
    merchant: Annotated[str | None, typer.Option(help="A POS terminal's merchant id.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a terminal with new random PIN and MAC keys, and print them once (with their
    check values) to be loaded into it; they are stored sealed under the master key."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    try:
        keys = _run(_register_terminal(settings, terminal_id, kind, location, branch, merchant))
    except ValueError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"terminal: {keys.terminal_id}", highlight=False)
    out.print(f"PIN key:  {keys.pin_key}  (check value {keys.pin_key_check})", highlight=False)
    out.print(f"MAC key:  {keys.mac_key}  (check value {keys.mac_key_check})", highlight=False)
    out.print("Load the keys into the terminal now: they are not shown again.", highlight=False)


async def _register_terminal(
    settings: Settings,
    terminal_id: str,
    kind: str,
    location: str,
    branch: str | None,
    merchant: str | None,
) -> Any:
    from sqlalchemy.exc import IntegrityError

    from channelhub.runtime import Runtime
    from channelhub.security.terminals import register_terminal

    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        return await register_terminal(
            runtime.security,
            terminal_id=terminal_id,
            kind=kind,
            location=location,
            branch_code=branch,
            merchant_id=merchant,
        )
    except IntegrityError:
        raise ValueError(f"a terminal {terminal_id} is already registered") from None
    finally:
        await runtime.close()


def _demo_banner(base: str, settings: Settings) -> str:
    from channelhub.demo.catalog import demo_password
    from channelhub.demo.identities import (
        DEMO_PARTICIPANT_BIC,
        DEMO_PARTICIPANT_ID,
        DEMO_PARTICIPANT_SECRET,
        DEMO_PARTNER_ID,
        DEMO_PARTNER_SECRET,
        DEMO_TOTP_SECRETS,
    )

    identities = [
        f"    {name:<10} password {demo_password(name):<20} TOTP secret {secret}"
        for name, secret in DEMO_TOTP_SECRETS.items()
    ]
    return "\n".join(
        [
            "",
            f"channelhub demo is ready at {base}",
            f"  database      {settings.database_url}",
            f"  services      {base}/openapi.json",
            f"  health        {base}/healthz  {base}/readyz",
            f"  metrics       {base}/metrics",
            f"  try it        curl -s -X POST {base}/api/v1/services/system.echo "
            "-H 'Content-Type: application/json' -d '{\"hello\": \"bank\"}'",
            "  events        channelhub events tail"
            + (
                f" (with --data-dir {settings.data_dir})" if str(settings.data_dir) != "var" else ""
            ),
            f"  login         POST {base}/api/v1/auth/login (customers), "
            f"{base}/staff/v1/auth/login (staff)",
            "  identities (TOTP: SHA-1, 6 digits, 30 s; customers' bound device: <username>-phone)",
            *identities,
            f"  partner app   {DEMO_PARTNER_ID} / {DEMO_PARTNER_SECRET}  (docs/partners.md)",
            f"  interbank     {DEMO_PARTICIPANT_ID} / {DEMO_PARTICIPANT_SECRET}, "
            f"BIC {DEMO_PARTICIPANT_BIC}: POST {base}/interbank/v1/pacs.008 (docs/interbank.md)",
            f"  ATM and POS   ISO 8583 on {settings.iso8583.host}:{settings.iso8583.port}, "
            "terminals ATM00001 and POS00001: channelhub atm balance (docs/atm.md)",
            "",
        ]
    )


async def _serve(settings: Settings, *, banner: Any) -> None:
    import uvicorn

    from channelhub.kit.db import create_engine
    from channelhub.kit.migrations import current_revision, head_revision

    probe = create_engine(settings.database_url, pool_size=1)
    try:
        current = await current_revision(probe)
    finally:
        await probe.dispose()
    if current != head_revision():
        err.print(
            f"error: the database is at migration {current}, this version needs {head_revision()}: "
            "run `channelhub db upgrade` (or serve --upgrade)",
            markup=False,
        )
        raise typer.Exit(2)
    from channelhub.app import create_app

    application = _load_or_exit(lambda: create_app(settings))
    config = uvicorn.Config(
        application,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers no "started" event; poll its flag until the sockets are bound.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        from channelhub.kit.heap import settle

        # Started: what the node keeps for good is loaded; the collector stops walking it.
        settle()
        sockname = server.servers[0].sockets[0].getsockname()
        base = f"http://{sockname[0]}:{sockname[1]}"
        out.print(
            banner(base, settings) if banner else f"channelhub listening on {base}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sys.stdout.flush()
    await task


@app.command()
def recover(
    data_dir: DataDirOption = None,
) -> None:
    """Find transactions abandoned by a dead node and bring them to a terminal state now."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    report = _run(_recover(settings))
    out.print(
        f"found {report.found}, aborted {len(report.aborted)}, "
        f"completed {len(report.completed)}, still in doubt {len(report.still_in_doubt)}"
    )
    for txn_id in report.aborted:
        out.print(f"  aborted    {txn_id}")
    for txn_id in report.completed:
        out.print(f"  completed  {txn_id}")
    for txn_id in report.still_in_doubt:
        out.print(f"  in doubt   {txn_id}")
    if report.still_in_doubt:
        raise typer.Exit(1)


async def _recover(settings: Settings) -> Any:
    from channelhub.kit.logging import configure_logging
    from channelhub.runtime import Runtime

    configure_logging(level=settings.log.level, json=settings.log.json_format)
    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        return await runtime.recovery.run_once(limit=10_000)
    finally:
        await runtime.close()


@app.command()
def purge(
    data_dir: DataDirOption = None,
) -> None:
    """Delete what no check reads any more, now (every node also does it hourly): limit
    counters of periods already over, and risk activity older than the longest window."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    purged = _run(_purge(settings))
    out.print(
        f"deleted {purged.counters} limit counters of periods over and "
        f"{purged.activity} risk activities no window reads"
    )


async def _purge(settings: Settings) -> Any:
    from channelhub.kit.clock import utc_now
    from channelhub.runtime import Runtime

    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        return await runtime.purge(utc_now())
    finally:
        await runtime.close()


@events_app.command("tail")
def events_tail(
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, max=10_000, help="How many events.")
    ] = 20,
    data_dir: DataDirOption = None,
) -> None:
    """Print the newest events of the outbox, one CloudEvents JSON object a line."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    for event in _run(_tail(settings, count)):
        sys.stdout.write(orjson.dumps(event).decode() + "\n")


async def _tail(settings: Settings, count: int) -> list[dict[str, Any]]:
    from channelhub.kernel import journal
    from channelhub.kernel.events import cloudevent_json
    from channelhub.kit.db import create_engine, make_sessionmaker

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await journal.latest_events(session, limit=count)
        return [cloudevent_json(row) for row in rows]
    finally:
        await engine.dispose()


@limits_app.command("list")
def limits_list(data_dir: DataDirOption = None) -> None:
    """Print the bank's active limits (changes go through four-eyes: POST /staff/v1/limits)."""
    settings = _settings(**_serve_overrides(None, None, data_dir))
    rows = _run(_with_session(settings, _bank_limits))
    table = _table("scope", "level", "subject", "channel", "currency", "period", "limit", "count")
    for row in rows:
        count = "" if row["count_limit"] is None else str(row["count_limit"])
        table.add_row(
            row["scope"],
            row["level"],
            row["subject"],
            row["channel"],
            row["currency"],
            row["period"],
            row["limit"] or "",
            count,
        )
    out.print(table)


async def _bank_limits(session: Any) -> list[dict[str, Any]]:
    from channelhub.limits.service import bank_limits

    return await bank_limits(session)


async def _with_session(settings: Settings, action: Any, *, write: bool = False) -> Any:
    from channelhub.runtime import Runtime

    runtime = _load_or_exit(lambda: Runtime.build(settings))
    try:
        async with runtime.sessions() as session:
            if not write:
                return await action(session)
            async with session.begin():
                return await action(session)
    finally:
        await runtime.close()


@risk_rules_app.command("list")
def risk_rules_list(
    everything: Annotated[bool, typer.Option("--all", help="Include retired versions.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Print the risk rules: name, version, mode, outcome, score and expression."""
    from channelhub.risk import repository

    settings = _settings(**_serve_overrides(None, None, data_dir))

    async def rules(session: Any) -> Any:
        return await repository.rules(session, include_retired=everything)

    table = _table("name", "version", "mode", "outcome", "score", "expression")
    for row in _run(_with_session(settings, rules)):
        table.add_row(
            row.name, str(row.version), row.mode, row.outcome, str(row.score), row.expression
        )
    out.print(table)


@risk_rules_app.command("add")
def risk_rules_add(
    name: Annotated[str, typer.Option(help="The rule's name; a known name gets a new version.")],
    expression: Annotated[str, typer.Option(help="A CEL condition, e.g. 'txn.amount > 100'.")],
    outcome: Annotated[str, typer.Option(help="allow, challenge, review or deny.")],
    score: Annotated[int, typer.Option(min=0, max=1000)] = 0,
    active: Annotated[
        bool, typer.Option("--active", help="Enforce at once instead of starting in shadow.")
    ] = False,
    description: Annotated[str, typer.Option()] = "",
    data_dir: DataDirOption = None,
) -> None:
    """Check a rule and save it (in shadow mode unless --active); a rule that does not compile
    is refused with its line and column."""
    from pydantic import ValidationError

    from channelhub.kit.clock import utc_now
    from channelhub.risk.errors import RuleInvalid
    from channelhub.risk.schemas import RuleBody
    from channelhub.risk.service import save_rule

    settings = _settings(**_serve_overrides(None, None, data_dir))
    try:
        body = RuleBody(
            name=name,
            expression=expression,
            outcome=outcome,
            score=score,
            description=description,
            mode="active" if active else "shadow",
        )
    except ValidationError as error:
        err.print(f"error: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
        raise typer.Exit(2) from None

    async def save(session: Any) -> Any:
        return await save_rule(
            session, body, by="cli", now=utc_now(), error_outcome=settings.risk.rule_error_outcome
        )

    try:
        rule = _run(_with_session(settings, save, write=True))
    except RuleInvalid as error:
        err.print(f"error: {error.message}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"saved {rule['name']} version {rule['version']} ({rule['mode']})", highlight=False)


@risk_rules_app.command("install-defaults")
def risk_rules_install_defaults(data_dir: DataDirOption = None) -> None:
    """Install the default rule set (rules whose name exists are left alone)."""
    from channelhub.kit.clock import utc_now
    from channelhub.risk.defaults import install_defaults

    settings = _settings(**_serve_overrides(None, None, data_dir))

    async def install(session: Any) -> Any:
        return await install_defaults(session, by="cli", now=utc_now())

    added = _run(_with_session(settings, install, write=True))
    out.print(f"installed {len(added)} rules: {', '.join(added) or 'none'}", highlight=False)


ATM_ACTIONS = ("withdraw", "balance", "purchase", "authorize", "transfer", "reverse", "echo")


@app.command("atm")
def atm_command(
    action: Annotated[str, typer.Argument(help=", ".join(ATM_ACTIONS))],
    host: Annotated[str, typer.Option(help="The node's ISO 8583 address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The node's ISO 8583 port.")] = DEMO_ISO8583_PORT,
    terminal: Annotated[str, typer.Option(help="Field 41.")] = "ATM00001",
    pan: Annotated[str, typer.Option(help="The card number.")] = "6234560000000016",
    pin: Annotated[str, typer.Option(help="The PIN.")] = "1234",
    amount: Annotated[str, typer.Option(help="A decimal amount.")] = "100.00",
    currency: Annotated[str, typer.Option(help="ISO 4217 numeric (156 CNY).")] = "156",
    from_account: Annotated[str | None, typer.Option(help="Field 102.")] = None,
    to_account: Annotated[str | None, typer.Option(help="Field 103 (transfer).")] = None,
    merchant: Annotated[str | None, typer.Option(help="Field 42 (a POS's).")] = None,
    original_stan: Annotated[str | None, typer.Option(help="reverse: field 11 of it.")] = None,
    original_time: Annotated[str | None, typer.Option(help="reverse: field 7 of it.")] = None,
    original_mti: Annotated[str, typer.Option(help="reverse: 0200 or 0100.")] = "0200",
    pin_key: Annotated[str | None, typer.Option(help="PIN key, hex (demo's by default).")] = None,
    mac_key: Annotated[str | None, typer.Option(help="MAC key, hex (demo's by default).")] = None,
) -> None:
    """Act as an ATM or POS terminal: send one ISO 8583 request and print the answer."""
    from channelhub.channels.iso8583.terminal import Terminal
    from channelhub.demo.identities import DEMO_MAC_KEY, DEMO_PIN_KEY
    from channelhub.kit.iso8583 import CURRENCIES
    from channelhub.kit.money import InvalidAmount, Money

    if action not in ATM_ACTIONS:
        err.print(f"error: the action is one of {', '.join(ATM_ACTIONS)}", highlight=False)
        raise typer.Exit(2)
    if pin_key is None or mac_key is None:
        err.print("using the demo terminal keys: for the demo bank only", highlight=False)
    try:
        keys = bytes.fromhex(pin_key or DEMO_PIN_KEY), bytes.fromhex(mac_key or DEMO_MAC_KEY)
        minor = Money.parse(amount, CURRENCIES.get(currency, "")).minor
    except (ValueError, InvalidAmount) as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(2) from None
    device = Terminal(terminal, pin_key=keys[0], mac_key=keys[1], merchant=merchant)
    if action == "echo":
        request = device.echo()
    elif action == "reverse":
        if not original_stan or not original_time:
            err.print("error: reverse needs --original-stan and --original-time", highlight=False)
            raise typer.Exit(2)
        original = {"t": original_mti, "11": original_stan, "7": original_time}
        request = device.reversal({**original, "4": f"{minor:012d}", "49": currency})
    else:
        request = device.financial(
            action,
            pan=pan,
            pin=pin,
            amount_minor=0 if action == "balance" else minor,
            currency=currency,
            from_account=from_account,
            to_account=to_account,
        )

    async def exchange() -> Any:
        await device.connect(host, port)
        try:
            return await device.send(dict(request))
        finally:
            await device.close()

    try:
        answer = _run(exchange())
    except (OSError, TimeoutError) as error:
        err.print(f"error: no answer from {host}:{port}: {error}", highlight=False)
        raise typer.Exit(1) from None
    table = _table("field", "value")
    table.add_row("request", f"{request['t']} STAN {request['11']} time {request['7']}")
    table.add_row("answer", answer.fields.get("t", ""))
    table.add_row("39 response code", answer.code)
    for key, label in (("38", "38 authorization"), ("90", "90 original")):
        if key in answer.fields:
            table.add_row(label, answer.fields[key])
    for kind, (code, minor_units) in sorted(answer.balances.items()):
        name = {"01": "ledger", "02": "available"}.get(kind, kind)
        shown = Money(minor_units, code).to_decimal_string()
        table.add_row(f"54 {name} balance", f"{shown} {code}")
    table.add_row("MAC of the answer", "ok" if answer.mac_ok else "WRONG")
    out.print(table)
    if answer.code != "00":
        raise typer.Exit(1)


def _run_simulator(simulator: Simulator, host: str, port: int, show: Callable[[], None]) -> None:
    """Start ``simulator`` on ``host``:``port``, print where it listens, what ``show`` prints
    and its faults, then run it until interrupted. Its logs (faults, refused messages) go to
    stderr; stdout has its address and what it holds."""
    from channelhub.connectors.simulators.base import serve_forever
    from channelhub.kit.logging import configure_logging

    configure_logging(level="INFO", json=False)

    async def run() -> None:
        try:
            where = await simulator.start(host, port)
        except OSError as error:
            err.print(f"error: cannot listen on {host}:{port}: {error}", highlight=False)
            raise typer.Exit(1) from None
        state = "down: refusing connections on" if simulator.faults.down else "listening on"
        out.print(f"{simulator.kind} simulator {state} {where[0]}:{where[1]}", highlight=False)
        show()
        out.print(f"faults: {simulator.faults}", highlight=False)
        sys.stdout.flush()
        await serve_forever(simulator)

    with contextlib.suppress(KeyboardInterrupt):
        _run(run())


def _ceiling_minor(ceiling: str) -> int:
    """Return a simulator's ``--ceiling`` in minor units, or exit 2 saying why it is wrong."""
    from channelhub.kit.money import InvalidAmount, Money

    try:
        minor = Money.parse(ceiling, "CNY").minor
        if minor <= 0:
            raise ValueError("a positive amount")
    except (ValueError, InvalidAmount) as error:
        err.print(f"error: --ceiling: {error}", highlight=False)
        raise typer.Exit(2) from None
    return minor


#: The options every simulator takes: where it listens, and its faults.
SimulatorHostOption = Annotated[str, typer.Option(help="Address to listen on.")]
SimulatorPortOption = Annotated[
    int, typer.Option(min=0, max=65535, help="Port to listen on (0 picks a free one).")
]
SlowMsOption = Annotated[
    int, typer.Option("--slow-ms", min=0, help="Delay each answer this many milliseconds.")
]
DownOption = Annotated[bool, typer.Option("--down", help="Refuse every connection.")]


#: The simulated core's port unless told otherwise.
CORE_SIMULATOR_PORT = 7037


@simulate_app.command("core")
def simulate_core(
    host: SimulatorHostOption = "127.0.0.1",
    port: SimulatorPortOption = CORE_SIMULATOR_PORT,
    slow_ms: SlowMsOption = 0,
    drop: Annotated[
        bool, typer.Option("--drop", help="Apply each request but never answer.")
    ] = False,
    garbage: Annotated[
        bool, typer.Option("--garbage", help="Apply each request, answer bytes that do not decode.")
    ] = False,
    down: DownOption = False,
    accounts: Annotated[
        Path | None,
        typer.Option(
            help="YAML list of the accounts it holds ({number, holder, currency, balance}); "
            "unset, its four seed accounts."
        ),
    ] = None,
) -> None:
    """Run a simulated mainframe core (fixed-length EBCDIC records, packed decimals) until
    interrupted."""
    from channelhub.connectors.simulators.core import (
        AccountsFileError,
        CoreSimulator,
        Faults,
        load_accounts,
    )
    from channelhub.kit.money import Money

    held = None
    if accounts is not None:
        try:
            held = load_accounts(accounts.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, AccountsFileError) as error:
            err.print(f"error: --accounts {accounts}: {error}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    faults = Faults(slow_ms=slow_ms, drop=drop, garbage=garbage, down=down)
    simulator = CoreSimulator(held, faults=faults)

    def show() -> None:
        table = _table("account", "holder", "currency", "balance")
        for account in simulator.accounts.values():
            shown = Money(account.balance, account.currency).to_decimal_string()
            table.add_row(account.number, account.holder, account.currency, shown)
        out.print(table)

    _run_simulator(simulator, host, port, show)


#: The simulated card switch's port unless told otherwise.
SWITCH_SIMULATOR_PORT = 7583


@simulate_app.command("switch")
def simulate_switch(
    host: SimulatorHostOption = "127.0.0.1",
    port: SimulatorPortOption = SWITCH_SIMULATOR_PORT,
    ceiling: Annotated[
        str, typer.Option(help="The largest amount one request may take (CNY).")
    ] = "5000.00",
    slow_ms: SlowMsOption = 0,
    drop: Annotated[
        bool, typer.Option("--drop", help="Apply each 0100/0200 but never answer it.")
    ] = False,
    garbage: Annotated[
        bool, typer.Option("--garbage", help="Apply each request, answer bytes that do not decode.")
    ] = False,
    down: DownOption = False,
) -> None:
    """Run a simulated card switch (ISO 8583, 2-byte length prefix) until interrupted."""
    from channelhub.connectors.simulators.switch import SwitchFaults, SwitchSimulator
    from channelhub.kit.iso8583 import CURRENCIES
    from channelhub.kit.money import Money

    ceiling_minor = _ceiling_minor(ceiling)
    faults = SwitchFaults(slow_ms=slow_ms, drop=drop, garbage=garbage, down=down)
    simulator = SwitchSimulator(faults=faults, ceiling_minor=ceiling_minor)

    def show() -> None:
        table = _table("card", "holder", "currency", "available")
        for card in simulator.cards.values():
            currency = CURRENCIES.get(card.currency, card.currency)
            shown = Money(card.available, currency).to_decimal_string()
            table.add_row(card.pan, card.holder, currency, shown)
        out.print(table)
        out.print(f"ceiling: {ceiling} CNY a request", highlight=False)

    _run_simulator(simulator, host, port, show)


#: The simulated clearing house's port unless told otherwise.
CLEARING_SIMULATOR_PORT = 7020


@simulate_app.command("clearing")
def simulate_clearing(
    host: SimulatorHostOption = "127.0.0.1",
    port: SimulatorPortOption = CLEARING_SIMULATOR_PORT,
    ceiling: Annotated[
        str, typer.Option(help="The largest amount one transaction may carry.")
    ] = "1000000.00",
    slow_ms: SlowMsOption = 0,
    drop: Annotated[
        bool, typer.Option("--drop", help="Settle each pacs.008 but never answer it.")
    ] = False,
    garbage: Annotated[
        bool, typer.Option("--garbage", help="Settle each request, answer bytes that are not XML.")
    ] = False,
    down: DownOption = False,
) -> None:
    """Run a simulated ISO 20022 clearing house (pacs.008 and pacs.028 in, pacs.002 out, over
    HTTP) until interrupted."""
    from channelhub.connectors.simulators.clearing import ClearingFaults, ClearingSimulator

    _ceiling_minor(ceiling)
    faults = ClearingFaults(slow_ms=slow_ms, drop=drop, garbage=garbage, down=down)
    simulator = ClearingSimulator(faults=faults, ceiling=ceiling)

    def show() -> None:
        table = _table("bank (BIC)", "account", "name", "currency", "state")
        for account in simulator.accounts.values():
            state = "closed" if account.closed else "open"
            table.add_row(account.bic, account.number, account.name, account.currency, state)
        out.print(table)
        out.print("operations: POST /pacs.008, POST /pacs.028 (answers: pacs.002)", highlight=False)
        out.print(f"ceiling: {ceiling} a transaction", highlight=False)

    _run_simulator(simulator, host, port, show)


@mapping_app.command("test")
def mapping_test(
    mapping: Annotated[
        str, typer.Argument(help="A mapping file, or a bundled one's name (core-balance).")
    ],
    input_file: Annotated[
        Path,
        typer.Option("--input", help='Sample: {"input": {...payload}, "context": {...}} (JSON).'),
    ],
    answer: Annotated[
        Path | None, typer.Option("--answer", help="The back end's answer fields (JSON).")
    ] = None,
    answer_hex: Annotated[
        str | None, typer.Option("--answer-hex", help="A fixed back end's answer record in hex.")
    ] = None,
) -> None:
    """Show what a mapping would send and what it would make of the answer, byte by byte,
    without sending anything. Exit 1: the input or answer is refused; 2: the mapping is bad."""
    from channelhub.connectors.mapping.trial import run

    status = run(mapping, input_file, answer=answer, answer_hex=answer_hex, out=out, err=err)
    if status:
        raise typer.Exit(status)
