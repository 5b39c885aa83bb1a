"""``caio remote ...``: drive a running CAIO from a shell, with a progress bar."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from caio.client import CaioApiError, CaioClient

remote_app = typer.Typer(help="Talk to a running CAIO over HTTP.", no_args_is_help=True)
err = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="CAIO_URL", help="CAIO base URL")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="CAIO_TOKEN", help="API token [CAIO_TOKEN]")
]
EXIT_FAILED, EXIT_API = 1, 2


def _client(url: str, token: str | None) -> CaioClient:
    return CaioClient(url, token)


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


def _api_call(func: Any) -> Any:
    try:
        return func()
    except CaioApiError as e:
        typer.echo(f"caio: error [{e.code}]: {e.message}", err=True)
        raise typer.Exit(EXIT_API) from e


def _show(url: str, token: str | None, call: Callable[[CaioClient], Any]) -> None:
    with _client(url, token) as c:
        _print(_api_call(lambda: call(c)))


@remote_app.command("version")
def version(url: UrlOpt) -> None:
    """The running version (public)."""
    _show(url, None, CaioClient.version)


@remote_app.command("status")
def status(url: UrlOpt, token: TokenOpt = None) -> None:
    """The current or last update job."""
    _show(url, token, CaioClient.status)


@remote_app.command("check")
def check(url: UrlOpt, token: TokenOpt = None) -> None:
    """Releases available on the channel."""
    _show(url, token, CaioClient.check)


@remote_app.command("rollback")
def rollback(url: UrlOpt, token: TokenOpt = None) -> None:
    """Activate the previous release (restart to run it)."""
    _show(url, token, CaioClient.rollback)


@remote_app.command("restart")
def restart(
    url: UrlOpt,
    token: TokenOpt = None,
    graceful: Annotated[bool, typer.Option(help="let in-flight requests finish")] = True,
    wait: Annotated[bool, typer.Option(help="wait until the current release serves")] = False,
) -> None:
    """Restart into the current release; with --wait, until /api/v1/version reports it."""
    with _client(url, token) as c:
        answer = _api_call(lambda: c.restart(graceful=graceful))
        if not wait:
            _print(answer)
            return
        info = _api_call(lambda: c.wait_for_version(answer["to_version"]))
    typer.echo(f"now running {info['version']}")


@remote_app.command("update")
def update(
    url: UrlOpt,
    token: TokenOpt = None,
    version: Annotated[str | None, typer.Option(help="exact version to install")] = None,
    allow_downgrade: Annotated[bool, typer.Option(help="allow an older version")] = False,
    wait: Annotated[bool, typer.Option(help="follow progress until the job ends")] = False,
) -> None:
    """Start an update; with --wait, show progress and exit 1 with the error code on failure."""
    with _client(url, token) as c:
        started = _api_call(lambda: c.start_update(version, allow_downgrade=allow_downgrade))
        if not wait:
            _print(started)
            return
        columns = (TextColumn("{task.description:<32}"), BarColumn(), TaskProgressColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task("checking", total=100)

            def show(s: dict[str, Any]) -> None:
                label = f"{s['stage']} {s.get('to_version') or ''}".strip()
                bar.update(task, completed=s["progress"], description=label)

            final = _api_call(lambda: c.wait(show))
    if final["status"] == "failed":
        error = final["error"] or {"code": "unknown", "message": final["message"]}
        typer.echo(f"caio: update failed [{error['code']}]: {error['message']}", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(final["message"])
