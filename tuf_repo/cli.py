"""``tuf-repo``: publish CAIO releases as signed TUF targets.

Exit codes: 0 done (or nothing to do), 1 failed and nothing changed,
2 usage error, 3 staged: more signatures are needed (``tuf-repo sign``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tuf_repo.errors import SignaturesNeeded, TufRepoError
from tuf_repo.keys import PASSPHRASE_ENV, Keyring
from tuf_repo.publisher import Publisher
from tuf_repo.release import build_release
from tuf_repo.server import RepoServer
from tuf_repo.store import RepoStore
from tuf_repo.verify import verify_repository

app = typer.Typer(
    help="Publish CAIO releases as signed TUF targets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RepoOpt = Annotated[Path, typer.Option("--repo", help="repository directory")]
KeysOpt = Annotated[Path, typer.Option("--keys", help="key directory")]


@contextmanager
def outcome() -> Iterator[None]:
    """Map failures to one line on stderr and the documented exit code."""
    try:
        yield
    except SignaturesNeeded as e:
        typer.echo(f"tuf-repo: {e}", err=True)
        raise typer.Exit(SignaturesNeeded.exit_code) from e
    except TufRepoError as e:
        typer.echo(f"tuf-repo: error: {e}", err=True)
        raise typer.Exit(TufRepoError.exit_code) from e


def _publisher(repo: Path, keys: Path | None) -> Publisher:
    store = RepoStore(repo)
    store.require()
    return Publisher(store, Keyring.from_dir(keys))


def _parse_expiry(values: list[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for value in values:
        role, sep, days = value.partition("=")
        try:
            parsed[role] = float(days)
        except ValueError:
            sep = ""
        if not sep:
            raise TufRepoError(f"--expiry takes ROLE=DAYS, got {value!r}")
    return parsed


@app.command()
def init(
    repo: RepoOpt,
    keys: KeysOpt,
    root_keys: Annotated[int, typer.Option(help="number of root keys")] = 3,
    root_threshold: Annotated[int, typer.Option(help="root signatures required")] = 2,
    expiry: Annotated[
        list[str] | None, typer.Option(help="ROLE=DAYS (root, targets, snapshot, timestamp, bins)")
    ] = None,
    bins: Annotated[int, typer.Option(help="hash bins for large repositories (power of 2)")] = 0,
) -> None:
    """Generate keys and publish the first version of every role."""
    with outcome():
        publisher = Publisher(RepoStore(repo), Keyring([]))
        trusted = publisher.init(
            keys,
            root_keys=root_keys,
            root_threshold=root_threshold,
            expiry_days=_parse_expiry(expiry or []),
            bins=bins,
            passphrase=os.environ.get(PASSPHRASE_ENV) or None,
        )
    typer.echo(f"initialised {repo}; keys in {keys} (move offline keys offline)", err=True)
    typer.echo(trusted)


@app.command()
def build(
    src: Annotated[Path, typer.Argument(help="CAIO source tree (holds caio/ and manifest.json)")],
    version: Annotated[str, typer.Option(help="PEP 440 version of the release")],
    out: Annotated[Path, typer.Option(help="output directory")] = Path("dist"),
    channel: Annotated[
        list[str] | None, typer.Option(help="channel written in the manifest")
    ] = None,
    with_deps: Annotated[bool, typer.Option(help="bundle dependency wheels under wheels/")] = False,
) -> None:
    """Build a deterministic release tarball."""
    with outcome():
        artifact = build_release(
            src, version, out, channel=(channel or ["stable"])[0], with_deps=with_deps
        )
    typer.echo(artifact)


@app.command()
def add(
    repo: RepoOpt,
    keys: KeysOpt,
    artifact: Annotated[Path, typer.Argument(help="caio-<version>.tar.gz")],
    channel: Annotated[list[str] | None, typer.Option(help="channel(s); default stable")] = None,
) -> None:
    """Publish a release: target, release index, snapshot and timestamp."""
    with outcome():
        result = _publisher(repo, keys).add_release(artifact, channel or ["stable"])
    typer.echo(result.message)


@app.command()
def sign(
    repo: RepoOpt,
    key: Annotated[Path, typer.Option("--key", help="your key file")],
    role: Annotated[str, typer.Argument(help="staged role to sign")],
    keys: Annotated[
        Path | None, typer.Option("--keys", help="directory of online keys, to publish")
    ] = None,
) -> None:
    """Add your signature to staged metadata; publish once every threshold is met."""
    with outcome():
        message = _publisher(repo, keys).sign(role, key)
    typer.echo(message)


@app.command()
def status(repo: RepoOpt) -> None:
    """Each role's version, expiry and signatures, and what is staged."""
    with outcome():
        report = _publisher(repo, None).status()
    now = datetime.now(UTC)
    typer.echo(f"{'role':<10} {'version':>7}  {'expires (UTC)':<20} {'left':>8}  signatures")
    for r in report.roles:
        left = (r.expires - now).total_seconds() / 86400
        typer.echo(
            f"{r.role:<10} {r.version:>7}  {r.expires:%Y-%m-%d %H:%M:%S} {left:>7.1f}d  "
            f"{r.signed} of {r.keys} keys, threshold {r.threshold}"
        )
    if report.bins:
        typer.echo(f"hash bins: {report.bins}")
    if not report.staged:
        typer.echo("staged: nothing")
    for s in report.staged:
        waiting = ", ".join(k[:12] for k in s.missing_keyids) or "-"
        typer.echo(
            f"staged: {s.role} v{s.version}: {s.have} of {s.need} signatures; waiting for {waiting}"
        )


@app.command()
def rotate(
    repo: RepoOpt,
    keys: KeysOpt,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot, timestamp or bins")],
    threshold: Annotated[int | None, typer.Option(help="new threshold")] = None,
) -> None:
    """Replace the keys of ROLE; a new root, signed by old and new keys, announces them."""
    with outcome():
        message = _publisher(repo, keys).rotate(role, keys, threshold)
    typer.echo(message)


@app.command()
def refresh(
    repo: RepoOpt,
    keys: KeysOpt,
    within: Annotated[
        float | None, typer.Option(help="refresh what expires within DAYS (default: half life)")
    ] = None,
) -> None:
    """Re-sign what expires soon. For cron: 0 ok, 3 an offline signature is needed."""
    with outcome():
        refreshed = _publisher(repo, keys).refresh(within)
    if refreshed:
        typer.echo(f"refreshed {', '.join(refreshed)}")
    else:
        typer.echo("nothing needs refreshing", err=True)


@app.command()
def verify(
    repo: RepoOpt,
    trusted_root: Annotated[Path, typer.Option(help="the root clients trust (1.root.json)")],
) -> None:
    """Check the repository as a fresh ngclient would; non-zero on any fault."""
    with outcome():
        report = verify_repository(repo, trusted_root)
    for r in report.roles:
        typer.echo(f"ok  {r.role:<12} v{r.version:<5} expires {r.expires:%Y-%m-%d %H:%M:%S}")
    typer.echo(f"ok  releases: {', '.join(report.releases) or 'none'}")


@app.command()
def serve(
    repo: RepoOpt,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 picks a free one)")] = 8001,
) -> None:
    """Serve metadata/ and targets/ over HTTP (development and demos)."""
    with outcome():
        RepoStore(repo).require()
    server = RepoServer(repo, host, port)
    typer.echo(f"serving {repo} at {server.url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a development server is stopped
    finally:
        server.server_close()


def main() -> None:
    app()
