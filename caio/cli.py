"""The ``caio`` command line: serve, tokens (and later run, trust, remote)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caio.core.errors import CaioError, ConfigError, ListenError
from caio.core.tokens import Role, TokenStore
from caio.remote_cli import remote_app

if TYPE_CHECKING:
    from caio.core.settings import Settings

# Commands import what they need when they run: `caio --help` stays quick.

app = typer.Typer(
    rich_markup_mode=None,
    help="CAIO: a service that updates itself through verified TUF releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
token_app = typer.Typer(
    rich_markup_mode=None, help="Manage API tokens (stored only as hashes).", no_args_is_help=True
)
app.add_typer(token_app, name="token")
trust_app = typer.Typer(
    rich_markup_mode=None, help="Manage the TUF trust anchor.", no_args_is_help=True
)
app.add_typer(trust_app, name="trust")
audit_app = typer.Typer(
    rich_markup_mode=None,
    help="The audit log ($CAIO_HOME/state/audit.jsonl).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
host_id_app = typer.Typer(
    rich_markup_mode=None,
    help="This host's id: its place in every staged rollout.",
    no_args_is_help=True,
)
app.add_typer(host_id_app, name="host-id")
app.add_typer(remote_app, name="remote")

# Exit codes (stable; README "Exit codes"): 0 done, 1 failed, 2 usage or configuration
# error, 3 the CAIO API answered with an error or could not be reached (caio remote).
EXIT_FAILED, EXIT_USAGE = 1, 2
Port = Annotated[
    int | None, typer.Option(min=1, max=65535, help="port to bind (1-65535) [CAIO_PORT]")
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn CAIO's errors into one line on stderr and a non-zero exit, never a traceback.

    A bad setting or configuration file exits 2, like a bad option; any other
    failure exits 1. A state file this user may not read or change (the state is
    0700, the service's own) is said as such.
    """
    try:
        yield
    except CaioError as e:
        typer.echo(f"caio: error [{e.code}]: {e.message}", err=True)
        raise typer.Exit(EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED) from e
    except PermissionError as e:
        typer.echo(
            f"caio: error [permission_denied]: {e.filename}: {e.strerror}; run this as the "
            "user CAIO runs as (its state is that user's alone)",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED) from e


def _version(value: bool) -> None:
    if value:
        from caio.core.manifest import load_manifest
        from caio.core.settings import SOURCE_DIR

        try:
            version = load_manifest(SOURCE_DIR / "manifest.json").version
        except CaioError:
            from importlib.metadata import version as package_version

            version = package_version("caio")
        typer.echo(f"caio {version}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """CAIO: a service that updates itself through verified TUF releases."""


def _settings(**overrides: object) -> Settings:
    from caio.core.settings import load_settings

    with user_errors():
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind [CAIO_HOST]")] = None,
    port: Port = None,
) -> None:
    """Run the service in this process (no supervisor)."""
    from caio.main import serve as run_server

    settings = _settings(host=host, port=port)
    with user_errors():
        code = run_server(settings)
    raise typer.Exit(code)  # 75 after a systemd-strategy restart: the unit starts it again


@app.command("run", short_help="Run CAIO under its supervisor (zero-downtime restarts).")
def run(
    host: Annotated[str | None, typer.Option(help="address to bind [CAIO_HOST]")] = None,
    port: Port = None,
) -> None:
    """Run CAIO under its supervisor: zero-downtime, health-gated restarts with rollback."""
    from caio.core.logs import configure_logging
    from caio.core.running import load_running
    from caio.core.settings import SOURCE_DIR
    from caio.core.tls import api_context
    from caio.restart import Supervisor

    settings = _settings(host=host, port=port)
    with user_errors():
        configure_logging(settings.log_level, settings.log_format)
        running = load_running(settings)
        api_context(settings)  # a certificate that does not load is named before any child
        try:
            code = Supervisor(settings, running.manifest, SOURCE_DIR).run()
        except OSError as e:
            raise ListenError.from_os_error(settings.host, settings.port, e) from e
    raise typer.Exit(code)


@app.command("serve-current", short_help="Serve the release `current` points to (systemd).")
def serve_current() -> None:
    """Serve the release that `current` points to (what systemd units run), else this package."""
    import os
    import sys

    from caio.core.layout import InstallLayout
    from caio.restart import boot_command, release_to_boot

    settings = _settings()
    layout = InstallLayout(settings.home)
    # A release that failed to stay up CAIO_BOOT_ATTEMPTS boots in a row is rolled back first.
    version = release_to_boot(layout, settings.boot_attempts)
    if version is not None:
        env = {k: v for k, v in os.environ.items() if k != "CAIO_MANIFEST"}
        command = boot_command(str(layout.release_dir(version).resolve()), sys.executable)
        os.execve(command[0], command, env)  # noqa: S606
    serve()


@app.command("rollback", short_help="Make the previous release current (no service needed).")
def rollback() -> None:
    """Make `previous` current again on this host, as POST /api/v1/rollback does, for when
    the service does not answer (a release that does not start under systemd): the next
    start, or a restart, runs it. Refused while an update job runs."""
    import getpass

    from caio.core.layout import InstallLayout
    from caio.core.rollback import activate_previous
    from caio.core.state import AuditLog, JobLock

    settings = _settings()
    layout = InstallLayout(settings.home)
    with user_errors():
        old, new = activate_previous(
            layout,
            JobLock(layout.state_dir / "job.lock"),
            AuditLog(layout.state_dir / "audit.jsonl"),
            by=f"{getpass.getuser()} (caio rollback)",
        )
    typer.echo(f"{old} -> {new}: {new} is active again; restart CAIO to run it")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="a name to revoke the token by")],
    role: Annotated[Role, typer.Option(help="what the token may do (admin or viewer)")],
) -> None:
    """Create a token and print it once on stdout, alone on its line."""
    settings = _settings()
    with user_errors():
        secret = TokenStore(settings.tokens_path).create(name, role)
    typer.echo(secret)
    typer.echo(f"created {role.value} token '{name}'; it is not shown again", err=True)


@token_app.command("list")
def token_list() -> None:
    """List tokens by name, role and creation time (never the secret)."""
    settings = _settings()
    with user_errors():
        records = TokenStore(settings.tokens_path).records()
    if not records:
        typer.echo("no tokens", err=True)
    for r in records:
        typer.echo(f"{r.name}\t{r.role.value}\t{r.created}")


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke the token called NAME."""
    settings = _settings()
    with user_errors():
        TokenStore(settings.tokens_path).revoke(name)
    typer.echo(f"revoked token '{name}'", err=True)


@trust_app.command("install", short_help="Install ROOT as the trust anchor.")
def trust_install(
    root: Annotated[Path, typer.Argument(help="the newest root, from `tuf-repo export-root`")],
    force: Annotated[
        bool, typer.Option(help="install even if older than the installed one")
    ] = False,
    repository: Annotated[
        str | None,
        typer.Option(help="the repository of the map (CAIO_REPOSITORY_MAP) it is the root of"),
    ] = None,
) -> None:
    """Install ROOT as the trust anchor ($CAIO_HOME/trusted_root.json or CAIO_TRUSTED_ROOT).

    With a repository map, each repository has its own anchor:
    --repository NAME installs $CAIO_HOME/repositories/NAME/trusted_root.json.
    CAIO then advances it to every newer root it verifies.
    """
    from caio.core.trust import install_trusted_root

    settings = _settings()
    with user_errors():
        destination = _anchor_path(settings, repository)
        summary = install_trusted_root(root, destination, force=force)
    typer.echo(f"installed {destination}: {summary}")


def _anchor_path(settings: Settings, repository: str | None) -> Path:
    """Where the trust anchor goes: the one repository's, or a mapped repository's.

    Raises:
        ConfigError: --repository without a map, or a name the map does not have.
    """
    from caio.core.layout import InstallLayout
    from caio.core.repository_map import RepositoryMap

    if repository is None:
        return settings.trusted_root_path
    if settings.repository_map is None:
        raise ConfigError("--repository needs a repository map: set CAIO_REPOSITORY_MAP")
    names = RepositoryMap.load(settings.repository_map).names
    if repository not in names:
        raise ConfigError(
            f"the repository map {settings.repository_map} has no repository {repository!r} "
            f"(it has {', '.join(names)})"
        )
    directory = InstallLayout(settings.home).repository_dir(repository)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "trusted_root.json"


@host_id_app.command("show", short_help="Print this host's id.")
def host_id_show() -> None:
    """Print this host's id (made at first use; renewed if the state was copied)."""
    from caio.core.layout import InstallLayout

    settings = _settings()
    if settings.host_id is not None:
        typer.echo(settings.host_id)
        typer.echo("set by CAIO_HOST_ID", err=True)
        return
    identity = InstallLayout(settings.home, settings.machine_id_files()).host_identity()
    typer.echo(identity.id)
    if identity.replaced is not None:
        typer.echo(
            f"renewed: the state was copied from another machine (it carried {identity.replaced})",
            err=True,
        )


@host_id_app.command("reset", short_help="Forget this host's id (for image builders).")
def host_id_reset() -> None:
    """Forget this host's id; the next start makes a new one (for image builders)."""
    from caio.core.host_id import reset_host_id
    from caio.core.layout import InstallLayout
    from caio.core.state import AuditLog

    layout = InstallLayout(_settings().home)
    old = reset_host_id(layout.state_dir)
    if old is None:
        typer.echo("no host id yet: the first start makes one", err=True)
        return
    AuditLog(layout.state_dir / "audit.jsonl").append("host_id", outcome="reset", previous=old)
    typer.echo(f"forgot host id {old}; the next start makes a new one", err=True)


@audit_app.command("verify", short_help="Check the audit log's hash chain.")
def audit_verify() -> None:
    """Check the audit log's hash chain: exit 0 when intact, 1 naming the first bad record."""
    from caio.core.layout import InstallLayout
    from caio.core.state import AuditLog

    settings = _settings()
    log = AuditLog(InstallLayout(settings.home).state_dir / "audit.jsonl")
    with user_errors():
        integrity = log.verify()
    if integrity.ok and integrity.records == 0 and not log.path.exists():
        typer.echo(f"{log.path}: no audit log yet (nothing has been recorded)")
        return
    typer.echo(f"{log.path}: {integrity.describe()}")
    if not integrity.ok:
        raise typer.Exit(1)


@audit_app.command("show", short_help="The newest records, one a line (no server needed).")
def audit_show(
    limit: Annotated[int, typer.Option(min=1, help="newest records to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="as GET /api/v1/update/history")] = False,
) -> None:
    """The newest audit records as `caio remote history` prints them, read from this
    host's log: what happened is readable when the service does not answer. Exit 1 when
    the hash chain is broken."""
    from caio.core.layout import InstallLayout
    from caio.core.state import AuditLog
    from caio.remote_view import history_lines
    from caio.schemas import HistoryOut, IntegrityOut

    settings = _settings()
    log = AuditLog(InstallLayout(settings.home).state_dir / "audit.jsonl")
    with user_errors():
        records, integrity = log.read(limit)
    shown = HistoryOut(
        records=records, integrity=IntegrityOut.model_validate(integrity, from_attributes=True)
    )
    if as_json:
        typer.echo(shown.model_dump_json(indent=2))
    else:
        typer.echo("\n".join(history_lines(shown)))
    if not integrity.ok:
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    app()
