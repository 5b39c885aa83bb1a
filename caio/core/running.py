"""What this process runs: its manifest (or one made up) and where updates come from."""

from __future__ import annotations

from dataclasses import dataclass

from caio.core.manifest import Manifest, load_manifest
from caio.core.redact import split_userinfo
from caio.core.settings import SOURCE_DIR, Settings
from caio.core.version import VersionInfo, resolve_version_info


@dataclass(frozen=True)
class Running:
    """What runs, resolved once: read by the update wiring and by ``/api/v1/version``.

    ``manifest`` is the file's when there is one (``from_file``), else made up
    from ``info``. ``channel`` and ``update_url`` are the effective values
    (settings over manifest); ``update_url`` None means no repository.
    """

    manifest: Manifest
    from_file: bool
    info: VersionInfo
    update_url: str | None
    channel: str


def read_manifest(settings: Settings) -> Manifest | None:
    """The manifest in force: required when configured explicitly, optional by default.

    Raises:
        ConfigError: the manifest is invalid, or configured and missing.
    """
    path = settings.manifest_path
    if settings.manifest is None and not path.exists():
        return None
    return load_manifest(path)


def load_running(settings: Settings) -> Running:
    """Raises: ConfigError: the manifest is invalid, or configured and missing."""
    manifest = read_manifest(settings)
    info = resolve_version_info(manifest, source_dir=SOURCE_DIR)
    update_url = settings.update_url or (manifest.update_url if manifest else None)
    channel = settings.channel or (manifest.channel if manifest else "stable")
    made = manifest or Manifest(  # no manifest beside the package (a pip install)
        name="caio",
        version=info.version,
        build_date=info.build_date,
        commit=info.commit,
        # It is saved with the seeded release: never the URL's credentials.
        update_url=split_userinfo(update_url)[0] if update_url else "file:///",
        channel=channel,
    )
    if manifest is not None:
        # Keep what was resolved at run time (git, package metadata) so a release
        # seeded from this tree reports the same build date and commit.
        made = made.model_copy(update={"build_date": info.build_date, "commit": info.commit})
    return Running(made, manifest is not None, info, update_url, channel)
