"""Wiring: the update service with the real collaborators for these settings."""

from __future__ import annotations

from pathlib import Path

from caio.core.errors import ErrorCode, UpdateError
from caio.core.layout import InstallLayout
from caio.core.redact import register_secret, split_userinfo
from caio.core.running import Running
from caio.core.settings import Settings
from caio.core.trust import TrustAnchor
from caio.update.download import ArtifactDownloader
from caio.update.install import InstallLimits, ReleaseInstaller
from caio.update.repository import RetryPolicy, TrustedRepository
from caio.update.service import UpdateService
from caio.update.transport import SpeedLimits, make_transport


def build_update_service(settings: Settings, running: Running, source_dir: Path) -> UpdateService:
    """The update service for these settings (call its ``close()`` on shutdown).

    Without a repository (``running.update_url`` None) the service runs and
    every check and update answers ``trust_not_configured``.
    """
    layout = InstallLayout(settings.home, settings.machine_id_files())
    base_url, userinfo = split_userinfo(running.update_url) if running.update_url else (None, None)
    register_secret(settings.update_token)
    if userinfo is not None:
        register_secret(userinfo[1])
    user_agent = f"caio/{running.manifest.version}"
    transport = None
    if base_url is not None:
        transport = make_transport(
            base_url,
            user_agent=user_agent,
            token=settings.update_token,
            userinfo=userinfo,
            timeout=settings.http_timeout,
            limits=SpeedLimits(
                min_bytes_per_second=settings.min_speed_bytes,
                window_seconds=settings.speed_window_seconds,
                metadata_deadline=settings.metadata_deadline_seconds,
            ),
        )
    retry = RetryPolicy(attempts=settings.retry_attempts, base_delay=settings.retry_base_delay)
    anchor = TrustAnchor(settings.trusted_root_path)

    def repository() -> TrustedRepository:
        if base_url is None or transport is None:
            raise UpdateError(
                ErrorCode.TRUST_NOT_CONFIGURED,
                "no repository configured: set update_url in manifest.json or CAIO_UPDATE_URL",
            )
        try:
            trusted_root = anchor.read()
        except FileNotFoundError as e:
            raise UpdateError(
                ErrorCode.TRUST_NOT_CONFIGURED,
                f"no trusted root at {settings.trusted_root_path}: "
                "install one with `caio trust install ROOT.json`",
            ) from e
        except OSError as e:
            raise UpdateError(
                ErrorCode.TRUST_NOT_CONFIGURED,
                f"trusted root {settings.trusted_root_path} cannot be read: {e.strerror}",
            ) from e
        return TrustedRepository(
            metadata_url=f"{base_url.rstrip('/')}/metadata/",
            targets_url=f"{base_url.rstrip('/')}/targets/",
            metadata_dir=layout.tuf_dir,
            trusted_root=trusted_root,
            transport=transport,
            retry=retry,
            user_agent=user_agent,
            on_verified_root=anchor.advance,
        )

    service = UpdateService(
        layout=layout,
        running=running.manifest,
        channel=running.channel,
        repository=repository,
        downloader=ArtifactDownloader(transport, layout.downloads, retry),
        installer=ReleaseInstaller(
            layout,
            InstallLimits(
                max_unpacked_bytes=settings.max_unpacked_mb * 1024 * 1024,
                preflight_timeout=settings.preflight_timeout,
            ),
        ),
        keep_releases=settings.keep_releases,
        source_dir=source_dir,
        transport=transport,
        host_id=settings.host_id,
    )
    return service
