"""``caio remote ...``: drive a running CAIO from a shell, with a progress bar.

Every command takes the same connection options. The token never needs to be
on a command line (where ``ps`` shows it): use ``CAIO_TOKEN`` or
``--token-file``.
"""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from caio.client import CaioClient
    from caio.schemas import JobStatus

# The HTTP client and the progress bar are imported when a command runs.
remote_app = typer.Typer(
    rich_markup_mode=None, help="Talk to a running CAIO over HTTP.", no_args_is_help=True
)

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="CAIO_URL", help="CAIO base URL, e.g. http://127.0.0.1:8000")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CAIO_TOKEN",
        help="API token (visible in ps: prefer CAIO_TOKEN or --token-file)",
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option("--token-file", envvar="CAIO_TOKEN_FILE", help="file holding the API token"),
]
CaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        envvar="CAIO_REMOTE_CA_BUNDLE",
        help="CA certificates (PEM file or directory) an https --url must chain to",
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-cert", envvar="CAIO_REMOTE_CLIENT_CERT", help="certificate for mutual TLS"
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-key",
        envvar="CAIO_REMOTE_CLIENT_KEY",
        help="its key (default: in the --client-cert file)",
    ),
]
EXIT_FAILED, EXIT_USAGE, EXIT_API = 1, 2, 3


def _client(
    url: str,
    token: str | None,
    token_file: Path | None,
    ca_bundle: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> CaioClient:
    from caio.client import CaioClient

    if token is not None and _from_command_line("token"):
        typer.echo(
            "caio: warning: a token given with --token is visible to every local user "
            "(ps, /proc/PID/cmdline); use --token-file FILE or CAIO_TOKEN instead",
            err=True,
        )
    if token is None and token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as e:
            typer.echo(f"caio: cannot read the token file {token_file}: {e.strerror}", err=True)
            raise typer.Exit(EXIT_FAILED) from e
    if client_key is not None and client_cert is None:
        typer.echo("caio: --client-key needs --client-cert", err=True)
        raise typer.Exit(EXIT_USAGE)
    cert = None if client_cert is None else (client_cert, client_key or client_cert)
    try:
        return CaioClient(url, token, ca_bundle=ca_bundle, client_cert=cert)
    except (OSError, ssl.SSLError) as e:
        typer.echo(f"caio: cannot use the TLS files given: {e}", err=True)
        raise typer.Exit(EXIT_USAGE) from e


def _from_command_line(parameter: str) -> bool:
    """Whether ``--parameter`` is on this process's command line (not in the env)."""
    flag = f"--{parameter}"
    return any(arg == flag or arg.startswith(f"{flag}=") for arg in sys.argv[1:])


def _print(obj: Any) -> None:
    typer.echo(_json(obj))


def _json(obj: Any) -> str:
    data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
    return json.dumps(data, indent=2, sort_keys=True)


def _api_call(func: Any) -> Any:
    from caio.client import CaioApiError

    try:
        return func()
    except CaioApiError as e:
        typer.echo(f"caio: error [{e.code}]: {e.message}", err=True)
        if e.status_code == 404 and _base_has_path():
            typer.echo(
                "caio: hint: --url is CAIO's base URL, without /api/v1 "
                "(e.g. http://127.0.0.1:8000)",
                err=True,
            )
        raise typer.Exit(EXIT_API) from e


def _base_has_path() -> bool:
    """Whether the --url (or CAIO_URL) given has a path, e.g. ``.../api/v1``."""
    import os
    from urllib.parse import urlsplit

    given = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--url=")]
    if "--url" in sys.argv[:-1]:
        given.append(sys.argv[sys.argv.index("--url") + 1])
    url = given[-1] if given else os.environ.get("CAIO_URL", "")
    return urlsplit(url).path.strip("/") != ""


def _show(client: CaioClient, call: Callable[[CaioClient], Any]) -> None:
    with client as c:
        _print(_api_call(lambda: call(c)))


@remote_app.command("version")
def version(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
) -> None:
    """The running version (public)."""
    _show(
        _client(url, token, token_file, ca_bundle, client_cert, client_key), lambda c: c.version()
    )


@remote_app.command("status")
def status(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """The current or last update job: what it did, who asked, when."""
    from caio.remote_view import status_lines

    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        answer = _api_call(c.status)
    typer.echo(_json(answer) if as_json else "\n".join(status_lines(answer)))


@remote_app.command("check")
def check(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Releases on the channel, this host's place in their rollout, and metadata expiry."""
    if as_json:
        _show(
            _client(url, token, token_file, ca_bundle, client_cert, client_key), lambda c: c.check()
        )
        return
    from datetime import UTC, datetime

    from caio.remote_view import check_lines

    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        answer = _api_call(c.check)
    typer.echo("\n".join(check_lines(answer, datetime.now(UTC))))


@remote_app.command("history")
def history(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    limit: Annotated[int, typer.Option(help="newest records to show")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Audit records, one a line, and the integrity of their hash chain (exit 1 if broken)."""
    from caio.remote_view import history_lines

    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        answer = _api_call(lambda: c.history(limit))
    if as_json:
        _print(answer)
    else:
        typer.echo("\n".join(history_lines(answer)))
    if not answer.integrity.ok:
        raise typer.Exit(EXIT_FAILED)


@remote_app.command("cancel", short_help="Cancel the running update.")
def cancel(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Cancel the running update (its partial download is kept for the next one)."""
    from caio.remote_view import status_lines

    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        answer = _api_call(c.cancel)
    typer.echo(_json(answer) if as_json else "\n".join(status_lines(answer)))


@remote_app.command("rollback")
def rollback(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Activate the previous release (restart to run it)."""
    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        answer = _api_call(c.rollback)
    typer.echo(
        _json(answer)
        if as_json
        else f"{answer.from_version} -> {answer.to_version}: {answer.message}"
    )


@remote_app.command("restart", short_help="Restart into the current release.")
def restart(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    graceful: Annotated[bool, typer.Option(help="let in-flight requests finish")] = True,
    wait: Annotated[bool, typer.Option(help="wait until the current release serves")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Restart into the current release; with --wait, until /api/v1/version reports it (or
    the supervisor rolls it back: exit 3 with its code)."""
    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        if wait:
            _restart_and_wait(c, graceful=graceful)
            return
        answer = _api_call(lambda: c.restart(graceful=graceful))
    target = answer.to_version or answer.from_version
    typer.echo(_json(answer) if as_json else f"{answer.from_version} -> {target}: {answer.message}")


def _restart_and_wait(c: CaioClient, *, graceful: bool) -> None:
    """Restart, then wait for the current release to serve, or for its rollback (exit 3)."""
    before = _api_call(c.status)
    answer = _api_call(lambda: c.restart(graceful=graceful))
    target = answer.to_version or answer.from_version
    info = _api_call(lambda: c.wait_for_version(target, before=before))
    typer.echo(f"now running {info.version}")


@remote_app.command("update", short_help="Start an update (--wait: follow its progress).")
def update(
    url: UrlOpt,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    ca_bundle: CaOpt = None,
    client_cert: CertOpt = None,
    client_key: KeyOpt = None,
    version: Annotated[str | None, typer.Option(help="exact version to install")] = None,
    allow_downgrade: Annotated[bool, typer.Option(help="allow an older version")] = False,
    allow_withdrawn: Annotated[
        bool, typer.Option(help="allow a withdrawn version (with --version)")
    ] = False,
    wait: Annotated[bool, typer.Option(help="follow progress until the job ends")] = False,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="once installed, restart into it and wait until it serves (--wait)"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer, as JSON")] = False,
) -> None:
    """Start an update; with --wait, show progress and exit 1 with the error code on failure;
    with --restart, then restart into what it installed and wait until it serves."""
    from caio.remote_view import status_lines

    with _client(url, token, token_file, ca_bundle, client_cert, client_key) as c:
        started = _api_call(
            lambda: c.start_update(
                version, allow_downgrade=allow_downgrade, allow_withdrawn=allow_withdrawn
            )
        )
        if not (wait or restart):
            typer.echo(_json(started) if as_json else "\n".join(status_lines(started)))
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        columns = (TextColumn("{task.description:<32}"), BarColumn(), TaskProgressColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task("checking", total=100)

            def show(s: JobStatus) -> None:
                label = f"{s.stage} {s.to_version or ''}".strip()
                bar.update(task, completed=s.progress, description=label)

            final = _api_call(lambda: c.wait(show))
        if final.status == "failed":
            code = final.error.code if final.error else "unknown"
            message = final.error.message if final.error else final.message
            typer.echo(f"caio: update failed [{code}]: {message}", err=True)
            raise typer.Exit(EXIT_FAILED)
        typer.echo(final.message)
        if restart and final.requires_restart:
            _restart_and_wait(c, graceful=True)
