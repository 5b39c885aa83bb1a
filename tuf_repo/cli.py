"""``tuf-repo``: publish CAIO releases as signed TUF targets.

Exit codes (stable; for cron and monitoring): 0 done (or nothing to do),
1 failed and nothing changed (for ``refresh``: also "an offline role has
expired, clients are failing"), 2 usage error, 3 staged: signatures are
needed (``tuf-repo sign``); ``refresh`` exits 3 every day they are.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuf_repo.errors import SignaturesNeeded, TufRepoError, UsageError

if TYPE_CHECKING:
    from caio.core.rollout import Step
    from tuf_repo.publisher import Publisher
    from tuf_repo.staging import StagedReview

# Commands import the signing stack when they run: `tuf-repo --help` stays quick.

app = typer.Typer(
    rich_markup_mode=None,
    help="Publish CAIO releases as signed TUF targets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RepoOpt = Annotated[Path, typer.Option("--repo", help="repository directory")]
KeysOpt = Annotated[Path, typer.Option("--keys", help="key directory (read recursively)")]
LOCK_WAIT = 60.0  # tuf_repo.lock.DEFAULT_WAIT_SECONDS, without importing it at start-up
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="wait this long for another tuf-repo command that is changing the repository",
    ),
]
LiveOpt = Annotated[
    str | None,
    typer.Option(
        "--check-live",
        help="URL of the live repository: never publish a version at or below what it serves",
    ),
]
EXIT_FAILED, EXIT_USAGE = 1, 2


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tuf-repo {version('caio')} (python-tuf {version('tuf')})")
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
    """Publish CAIO releases as signed TUF targets."""


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
        raise typer.Exit(e.exit_code) from e


def _publisher(
    repo: Path, keys: Path | None, live: str | None = None, wait: float = LOCK_WAIT
) -> Publisher:
    from tuf_repo import Keyring, Publisher, RepoStore

    store = RepoStore(repo)
    store.require()
    return Publisher(store, Keyring.from_dir(keys), live_url=live, lock_wait=wait)


def _parse_expiry(values: list[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for value in values:
        role, sep, days = value.partition("=")
        try:
            parsed[role] = float(days)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--expiry takes ROLE=DAYS, got {value!r}")
    return parsed


@app.command("init", short_help="Generate keys and publish every role's first version.")
def init(
    repo: RepoOpt,
    keys: KeysOpt,
    root_keys: Annotated[int, typer.Option(help="number of root keys")] = 3,
    root_threshold: Annotated[int, typer.Option(help="root signatures required")] = 2,
    expiry: Annotated[
        list[str] | None, typer.Option(help="ROLE=DAYS (root, targets, snapshot, timestamp, bins)")
    ] = None,
    bins: Annotated[int, typer.Option(help="hash bins for large repositories (power of 2)")] = 0,
    online_bins: Annotated[
        bool, typer.Option(help="keep the bins key online: an online key can then ship code")
    ] = False,
) -> None:
    """Generate keys and publish the first version of every role."""
    with outcome():
        from tuf_repo import Keyring, Publisher, RepoStore
        from tuf_repo.keys import PASSPHRASE_ENV

        publisher = Publisher(RepoStore(repo), Keyring([]))
        trusted = publisher.init(
            keys,
            root_keys=root_keys,
            root_threshold=root_threshold,
            expiry_days=_parse_expiry(expiry or []),
            bins=bins,
            online_bins=online_bins,
            passphrase=os.environ.get(PASSPHRASE_ENV) or None,
        )
    typer.echo(
        f"initialised {repo}\n"
        f"  {keys / 'online'}: timestamp, snapshot{', bins' if online_bins else ''}"
        " -> the publishing host (cron: tuf-repo refresh)\n"
        f"  {keys / 'offline'}: root, targets{', bins' if bins and not online_bins else ''}"
        " -> offline media, one root key per holder",
        err=True,
    )
    if online_bins:
        typer.echo(
            "WARNING: --online-bins: the bins key lives with the online keys, so whoever "
            "holds the publishing host can publish a release that clients install.",
            err=True,
        )
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
        from tuf_repo import build_release

        artifact = build_release(
            src, version, out, channel=(channel or ["stable"])[0], with_deps=with_deps
        )
    typer.echo(artifact)


@app.command("add", short_help="Publish a release.")
def add(
    repo: RepoOpt,
    keys: KeysOpt,
    artifact: Annotated[Path, typer.Argument(help="caio-<version>.tar.gz")],
    channel: Annotated[list[str] | None, typer.Option(help="channel(s); default stable")] = None,
    rollout: Annotated[
        str | None,
        typer.Option(
            help="staged rollout: PERCENT%@OFFSET steps from the release time, "
            "e.g. 10%@0h,50%@24h,100%@72h (units s, m, h, d); default: every host at once"
        ),
    ] = None,
    delta_from: Annotated[
        int,
        typer.Option(
            min=0,
            help="also publish deltas (signed patches) from this many of the newest earlier "
            "releases on each channel; 0: none",
        ),
    ] = 2,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Publish a release: target, release index, deltas, snapshot and timestamp."""
    with outcome():
        steps = _plan(rollout, "--rollout") if rollout is not None else None
        result = _publisher(repo, keys, check_live, wait).add_release(
            artifact, channel or ["stable"], steps, delta_from=delta_from
        )
    typer.echo(result.message)


def _plan(spec: str, option: str) -> tuple[Step, ...]:
    """Steps of a plan; a bad spec is a usage error (exit 2) naming the option."""
    from caio.core.rollout import parse_plan

    try:
        return parse_plan(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from e


@app.command("rollout", short_help="Change, pause or resume a release's rollout plan.")
def rollout_command(
    repo: RepoOpt,
    keys: KeysOpt,
    version: Annotated[str, typer.Argument(help="a published version")],
    plan: Annotated[
        str | None,
        typer.Option(help="new plan, e.g. 50%@0h,100%@24h, counted from the release time"),
    ] = None,
    pause: Annotated[bool, typer.Option("--pause", help="freeze the plan where it stands")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="go on from where the plan was paused")
    ] = False,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Change a release's rollout plan, or pause or resume it (re-signed like any change)."""
    if [plan is not None, pause, resume].count(True) != 1:
        raise typer.BadParameter("give exactly one of --plan, --pause and --resume")
    with outcome():
        steps = _plan(plan, "--plan") if plan is not None else None
        result = _publisher(repo, keys, check_live, wait).set_rollout(
            version, steps=steps, pause=pause, resume=resume
        )
    typer.echo(result.message)


@app.command("withdraw", short_help="Withdraw a release.")
def withdraw(
    repo: RepoOpt,
    keys: KeysOpt,
    version: Annotated[str, typer.Argument(help="a published version")],
    reason: Annotated[str, typer.Option(help="why; hosts show it")] = "",
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Withdraw a release: it stays signed (hosts running it verify it), none chooses it."""
    with outcome():
        result = _publisher(repo, keys, check_live, wait).withdraw(version, reason)
    typer.echo(result.message)


@app.command("remove", short_help="Stop listing an old release (prune removes its bytes).")
def remove(
    repo: RepoOpt,
    keys: KeysOpt,
    version: Annotated[str, typer.Argument(help="the version to stop listing")],
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Stop listing VERSION: its target, the deltas to it and its index entry leave the
    signed metadata, and `tuf-repo prune` removes its bytes a week later. Hosts running
    it keep running it and update through the deltas from it. The newest release of a
    channel is refused unless withdrawn first.
    """
    with outcome():
        result = _publisher(repo, keys, check_live, wait).remove(version)
    typer.echo(result.message)


@app.command("approve", short_help="Approve another repository's release (two-party).")
def approve(
    repo: RepoOpt,
    keys: KeysOpt,
    version: Annotated[str, typer.Argument(help="the source's version to approve")],
    source: Annotated[
        str, typer.Option("--from", help="the vendor's repository: http(s) URL or directory")
    ],
    trusted_root: Annotated[
        Path, typer.Option(help="the vendor's root you trust (its newest export-root)")
    ],
    with_artifact: Annotated[
        bool, typer.Option(help="also hold the bytes here (default: metadata only)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="approve without asking")] = False,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Sign in this approval repository the bytes the vendor's repository signs as VERSION.

    The release is read through a TUF client of the vendor's repository, verified
    from --trusted-root, and shown before it is approved: version, target, length,
    hashes, the uncompressed tar the vendor signs (its bytes are downloaded to check
    it, then signed too: the tar a delta must make) and the vendor's signed fields.
    Hosts with a repository map install it only when both repositories sign the same
    bytes.
    """
    import tempfile

    from tuf_repo.approval import fetch_source_bytes, read_source_release

    with outcome(), tempfile.TemporaryDirectory(prefix="tuf-repo-approve-") as tmp:
        release = read_source_release(source, trusted_root, version)
        for line in release.describe():
            typer.echo(line)
        if not yes and not typer.confirm("approve this release?", default=False):
            typer.echo("tuf-repo: not approved", err=True)
            raise typer.Exit(EXIT_FAILED)
        release = fetch_source_bytes(source, trusted_root, release, Path(tmp), keep=with_artifact)
        result = _publisher(repo, keys, check_live, wait).approve(release)
    typer.echo(result.message)


@app.command("revoke-approval", short_help="Withdraw an approval (two-party).")
def revoke_approval(
    repo: RepoOpt,
    keys: KeysOpt,
    version: Annotated[str, typer.Argument(help="an approved version")],
    reason: Annotated[str, typer.Option(help="why; hosts show it")],
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Withdraw VERSION in this approval repository: hosts that need its approval stop at once."""
    withdraw(repo, keys, version, reason, check_live, wait)


@app.command("sign", short_help="Review staged metadata, then sign it.")
def sign(
    repo: RepoOpt,
    key: Annotated[Path, typer.Option("--key", help="your key file")],
    role: Annotated[str, typer.Argument(help="staged role to sign")],
    keys: Annotated[
        Path | None, typer.Option("--keys", help="directory of online keys, to publish")
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(
            help="sign only if the staged content has this sha256 (announced by its author)"
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="sign without asking (after the review)")
    ] = False,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Review staged metadata (changes, digest, signatures), then add your signature.

    Publishes once every threshold is met. Without --yes or --digest, asks
    for confirmation on a terminal and refuses otherwise.
    """
    with outcome():
        from tuf_repo import read_key_file

        read_key_file(key)  # a missing or malformed key file is the first thing to hear
        publisher = _publisher(repo, keys, check_live, wait)
        _show_review(publisher.review(role))
    if digest is None and not yes:
        if not sys.stdin.isatty():
            typer.echo("tuf-repo: not a terminal: pass --yes or --digest SHA256 to sign", err=True)
            raise typer.Exit(EXIT_USAGE)
        if not typer.confirm("sign this?", default=False):
            typer.echo("not signed", err=True)
            raise typer.Exit(EXIT_FAILED)
    with outcome():
        message = publisher.sign(role, key, expect_digest=digest)
    typer.echo(message)
    with outcome():  # the rotation this signature published may have ended this very key
        if retired := publisher.retire_rotated_out(key.parent, [key]):
            typer.echo(retired)


def _show_review(review: StagedReview) -> None:
    typer.echo(f"staged {review.role} v{review.version}, changes against the published version:")
    for line in review.changes:
        typer.echo(f"  {line}")
    _show_keys(review)
    typer.echo(f"digest (sha256 of what is signed): {review.digest}")
    status = review.status
    typer.echo(f"signatures: {status.have} of {status.need}")
    for check in review.signatures:
        note = "" if check.state == "valid" else "  <- will be dropped"
        typer.echo(f"  {check.keyid[:12]}  {check.state}{note}")


def _show_keys(review: StagedReview) -> None:
    """Every key by value: compare each fingerprint with your key ceremony record."""
    if review.keys:
        typer.echo("keys (keyid, type/scheme, public value, fingerprint; check each):")
    for line in review.keys:
        typer.echo(f"  {line}")
    for problem in review.problems:
        typer.echo(f"REFUSED: {problem}")


@app.command("status", short_help="Each role's version, expiry and signatures.")
def status(repo: RepoOpt) -> None:
    """Each role's version, expiry and signatures, what is staged, and what is urgent."""
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
    if report.bin_summary is not None:
        b = report.bin_summary
        left = (b.earliest_expiry - now).total_seconds() / 86400
        versions = f"v{b.min_version}" + (
            f"-{b.max_version}" if b.max_version != b.min_version else ""
        )
        typer.echo(
            f"{'bin-* (' + str(b.count) + ')':<10} {versions:>7}  "
            f"{b.earliest_expiry:%Y-%m-%d %H:%M:%S} {left:>7.1f}d  "
            f"{'online' if b.online else 'offline'} release key"
        )
    if not report.staged:
        typer.echo("staged: nothing")
    for review in report.staged:
        waiting = ", ".join(k[:12] for k in review.status.missing_keyids) or "-"
        typer.echo(
            f"staged: {review.role} v{review.version}: {review.status.have} of "
            f"{review.status.need} signatures; waiting for {waiting}; digest {review.digest}"
        )
        for line in review.changes:
            typer.echo(f"  {line}")
        _show_keys(review)
        for bad in review.bad_signatures:
            typer.echo(f"  signature of {bad.keyid[:12]} is {bad.state}: it will be dropped")
    from tuf_repo.releases import describe_release

    typer.echo("releases:" if report.releases else "releases: none")
    for entry in report.releases:
        typer.echo(f"  {describe_release(entry, now)}")
    if report.storage is not None:
        typer.echo(report.storage.describe())
    for warning in report.warnings:
        typer.echo(f"WARNING: {warning}")


@app.command("rotate", short_help="Replace the keys of a role.")
def rotate(
    repo: RepoOpt,
    keys: KeysOpt,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot, timestamp or bins")],
    threshold: Annotated[int | None, typer.Option(help="new threshold (at least 1)")] = None,
    keep_retired_private: Annotated[
        bool,
        typer.Option(help="keep the old private keys in retired/ (default: destroy them)"),
    ] = False,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Replace the keys of ROLE; a new root, signed by old and new keys, announces them."""
    if threshold is not None and threshold < 1:
        typer.echo(f"tuf-repo: --threshold must be at least 1, got {threshold}", err=True)
        raise typer.Exit(EXIT_USAGE)
    with outcome():
        message = _publisher(repo, keys, check_live, wait).rotate(
            role, keys, threshold, keep_retired_private=keep_retired_private
        )
    typer.echo(message)


key_app = typer.Typer(
    rich_markup_mode=None,
    help="Keys one at a time: create (in a file or a PKCS#11 token), add, remove, retire.",
    short_help="Keys one at a time: create, add, remove, retire.",
    no_args_is_help=True,
)
app.add_typer(key_app, name="key")


@key_app.command("create", short_help="Create a key for a role (file or PKCS#11).")
def key_create(
    keys: KeysOpt,
    role: Annotated[str, typer.Option(help="the role the key is for")],
    hsm: Annotated[
        bool, typer.Option("--hsm", help="generate it inside a PKCS#11 token (PYKCS11LIB)")
    ] = False,
    token_label: Annotated[str | None, typer.Option(help="the token's label (--hsm)")] = None,
    pin_env: Annotated[
        str | None, typer.Option(help="environment variable holding the token's PIN (--hsm)")
    ] = None,
    label: Annotated[str | None, typer.Option(help="the key's label in the token")] = None,
) -> None:
    """Create a key for ROLE; `tuf-repo key add` then puts it into the role."""
    from tuf_repo.context import ONLINE_TOP_ROLES
    from tuf_repo.keys import generate_key, key_home

    if hsm and (token_label is None or pin_env is None):
        raise typer.BadParameter("--hsm needs --token-label and --pin-env")
    home = key_home(keys, online=role in ONLINE_TOP_ROLES)
    with outcome():
        if hsm and token_label is not None and pin_env is not None:
            from tuf_repo.hsm import create_hsm_key

            key = create_hsm_key(home, role, token_label=token_label, pin_env=pin_env, label=label)
        else:
            key = generate_key(home, role, os.environ.get("TUF_REPO_PASSPHRASE") or None)
    where = f"in token {token_label!r}" if hsm else "in the file"
    typer.echo(f"created {role} key {key.keyid[:12]} ({where}): {key.path}")
    if hsm:
        typer.echo("the private key was generated inside the token and never left it", err=True)


@key_app.command("add", short_help="Authorise a key for a role.")
def key_add(
    repo: RepoOpt,
    keys: KeysOpt,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot or timestamp")],
    key_file: Annotated[Path, typer.Argument(help="the key file (tuf-repo key create)")],
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Authorise a key for ROLE: a new root, signed by the old and the new root keys."""
    with outcome():
        from tuf_repo import read_key_file

        key = read_key_file(key_file)
        message = _publisher(repo, keys, check_live, wait).add_key(role, key)
    typer.echo(message)


@key_app.command("remove", short_help="Take a key away from a role.")
def key_remove(
    repo: RepoOpt,
    keys: KeysOpt,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot or timestamp")],
    keyid: Annotated[str, typer.Argument(help="the keyid, or a unique prefix of it")],
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Take a key away from ROLE (rotate a hardware key out): a new root announces it."""
    with outcome():
        message = _publisher(repo, keys, check_live, wait).remove_key(role, keyid, keys)
    typer.echo(message)


@key_app.command("retire", short_help="Retire key files no role lists any more.")
def key_retire(repo: RepoOpt, keys: KeysOpt, wait: WaitOpt = LOCK_WAIT) -> None:
    """Retire every key file under KEYS that this repository listed once and lists no more.

    For holders of a key a published rotation or removal ended: only the
    public half is kept, in KEYS/retired/. Keys the repository never listed
    are left alone.
    """
    with outcome():
        message = _publisher(repo, None, None, wait).retire_rotated_out(keys)
    typer.echo(message or "no key under it was rotated out")


@app.command("refresh", short_help="The heartbeat: keep every role valid (cron).")
def refresh(
    repo: RepoOpt,
    keys: KeysOpt,
    within: Annotated[
        float | None, typer.Option(help="refresh what expires within DAYS (default: half life)")
    ] = None,
    check_live: LiveOpt = None,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """The heartbeat (cron, daily or more): keep every role fresh, whatever is staged.

    Exit 0: fine. 3: signatures are needed (every day they are). 1: an offline
    role has expired or does not verify, so clients are failing, or the
    refresh failed. Snapshot and timestamp that do not verify are re-signed.
    """
    with outcome():
        publisher = _publisher(repo, keys, check_live, wait)
        report = publisher.refresh(within)
        # A staged rotation published since (by it or by `sign`) may have ended keys held here.
        retired = publisher.retire_rotated_out(keys)
    if report.refreshed:
        typer.echo(f"refreshed {', '.join(report.refreshed)}")
    elif not report.published_staged:
        typer.echo("nothing needs refreshing", err=True)
    for message in report.messages:
        typer.echo(f"tuf-repo: {message}", err=True)
    if retired:
        typer.echo(retired)
    if report.expired or report.refused or report.unsound:
        raise typer.Exit(EXIT_FAILED)
    if report.awaiting:
        raise typer.Exit(SignaturesNeeded.exit_code)


@app.command("prune", short_help="Remove what no client can be sent any more (cron, daily).")
def prune_command(
    repo: RepoOpt,
    keep_days: Annotated[
        float,
        typer.Option(
            help="keep metadata superseded less than DAYS ago (at least the timestamp's lifetime)"
        ),
    ] = 7,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list, remove nothing")] = False,
    wait: WaitOpt = LOCK_WAIT,
) -> None:
    """Remove metadata versions superseded more than --keep-days ago, and target files no
    kept or staged metadata lists (old copies of the release index). Every root, the
    published chain, every listed release and what awaits signatures stay. A version
    is removed --keep-days after the first prune that saw it superseded, so run it
    daily (deploy/publisher/tuf-repo-prune.timer). No key is needed.
    """
    with outcome():
        result = _publisher(repo, None, None, wait).prune(
            timedelta(days=keep_days), dry_run=dry_run
        )
    for path in result.removed if dry_run else ():
        typer.echo(path)
    typer.echo(result.describe())


@app.command("export-root", short_help="Print the newest root: the hosts' trust anchor.")
def export_root(
    repo: RepoOpt,
    out: Annotated[
        Path | None, typer.Option(help="write it here (default: print the path)")
    ] = None,
) -> None:
    """The newest published root: the trust anchor to ship with new installations."""
    with outcome():
        from tuf_repo import Keyring, Publisher, RepoStore

        newest = Publisher(RepoStore(repo), Keyring([])).export_root()
        if not newest.is_file():
            raise TufRepoError(f"{repo} has no published root")
    if out is None:
        typer.echo(newest)
        return
    shutil.copyfile(newest, out)
    typer.echo(f"wrote {out} ({newest.name})")


@app.command("verify", short_help="Check the repository as a fresh client would.")
def verify(
    repo: RepoOpt,
    trusted_root: Annotated[Path, typer.Option(help="the root clients trust (1.root.json)")],
    source: Annotated[
        str | None,
        typer.Option(help="an approval repository's source (URL or directory): check against it"),
    ] = None,
    source_root: Annotated[
        Path | None, typer.Option(help="the source's root you trust (with --source)")
    ] = None,
) -> None:
    """Check the repository as a fresh ngclient would; non-zero on any fault."""
    if (source is None) != (source_root is None):
        raise typer.BadParameter("give --source and --source-root together")
    with outcome():
        from tuf_repo import verify_repository

        report = verify_repository(repo, trusted_root, source, source_root)
    for r in report.roles:
        typer.echo(f"ok  {r.role:<12} v{r.version:<5} expires {r.expires:%Y-%m-%d %H:%M:%S}")
    typer.echo(f"ok  releases: {', '.join(report.releases) or 'none'}")
    if report.same_as_source is not None:
        count = report.same_as_source
        typer.echo(f"ok  every release is the source's, byte for byte ({count})")


@app.command("serve", short_help="Serve the repository over HTTP (development).")
def serve(
    repo: RepoOpt,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 picks a free one)")] = 8001,
) -> None:
    """Serve metadata/ and targets/ over HTTP (development and demos)."""
    with outcome():
        from tuf_repo import RepoServer, RepoStore

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
    # What the library reports on its own (a publication it repaired): one line on stderr.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("tuf-repo: %(message)s"))
    logging.getLogger("tuf_repo").addHandler(handler)
    app()


if __name__ == "__main__":
    main()
