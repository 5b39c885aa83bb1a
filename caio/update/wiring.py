"""Wiring: the update service with the real collaborators for these settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from caio.core.errors import ErrorCode, UpdateError
from caio.core.layout import InstallLayout
from caio.core.redact import register_secret, split_userinfo
from caio.core.repository_map import RepositoryMap
from caio.core.running import Running
from caio.core.settings import Settings
from caio.core.trust import TrustAnchor
from caio.update.consensus import ConsensusRepository, Source
from caio.update.deltas import DeltaPath
from caio.update.download import ArtifactDownloader
from caio.update.install import InstallLimits, Preflight, ReleaseInstaller
from caio.update.proxy import proxy_for
from caio.update.repository import Repository, RetryPolicy, TrustedRepository
from caio.update.service import UpdateService
from caio.update.transport import SpeedLimits, Transport, make_transport


def build_update_service(
    settings: Settings, running: Running, source_dir: Path, preflight: Preflight | None = None
) -> UpdateService:
    """The update service for these settings (call its ``close()`` on shutdown).

    ``preflight``: how a new release proves it starts (default: a throw-away
    interpreter; under ``caio run``, the supervisor's standby child).

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
    if base_url is not None and settings.repository_map is None:
        transport = _transport(settings, base_url, user_agent, userinfo, settings.update_token)
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

    transports: tuple[Transport, ...] = (transport,) if transport is not None else ()
    chosen: Callable[[], Repository] = repository
    if settings.repository_map is not None:
        # Two-party approval: the map replaces update_url; each repository its own trust.
        repository_map = RepositoryMap.load(settings.repository_map)  # ConfigError: exit 2
        consensus = _consensus(repository_map, layout, settings, user_agent, retry)
        chosen, transport, transports = consensus, None, consensus.transports
    service = UpdateService(
        layout=layout,
        running=running.manifest,
        channel=running.channel,
        repository=chosen,
        downloader=ArtifactDownloader(transport, layout.downloads, retry),
        installer=ReleaseInstaller(
            layout,
            InstallLimits(
                max_unpacked_bytes=settings.max_unpacked_mb * 1024 * 1024,
                preflight_timeout=settings.preflight_timeout,
            ),
            preflight=preflight,
        ),
        keep_releases=settings.keep_releases,
        source_dir=source_dir,
        transports=transports,
        host_id=settings.host_id,
        deltas=DeltaPath(layout, enabled=settings.delta == "auto"),
    )
    return service


class _Consensus:
    """Builds the consensus of the map's repositories for each check and job.

    Each repository's trust anchor is read every time, so one installed later
    (``caio trust install --repository NAME``) is used at once.
    """

    def __init__(
        self,
        repository_map: RepositoryMap,
        layout: InstallLayout,
        mirrors: dict[str, list[tuple[str, Transport]]],
        retry: RetryPolicy,
        user_agent: str,
    ) -> None:
        self.map = repository_map
        self.layout = layout
        self.mirrors = mirrors
        self.retry = retry
        self.user_agent = user_agent
        self.transports = tuple(t for pairs in mirrors.values() for _, t in pairs)

    def __call__(self) -> ConsensusRepository:
        sources = {name: self._source(name) for name in self.map.names}
        return ConsensusRepository(self.map, sources)

    def _source(self, name: str) -> Source:
        home = self.layout.repository_dir(name)
        anchor = TrustAnchor(home / "trusted_root.json")
        try:
            trusted_root = anchor.read()
        except OSError as e:
            raise UpdateError(
                ErrorCode.TRUST_NOT_CONFIGURED,
                f"repository {name!r}: no trusted root at {anchor.path} "
                f"({e.strerror}): install one with `caio trust install --repository {name} "
                "ROOT.json`",
            ) from e
        return Source(
            name,
            [
                TrustedRepository(
                    metadata_url=f"{base.rstrip('/')}/metadata/",
                    targets_url=f"{base.rstrip('/')}/targets/",
                    metadata_dir=home / "tuf",
                    trusted_root=trusted_root,
                    transport=transport,
                    retry=self.retry,
                    user_agent=self.user_agent,
                    on_verified_root=anchor.advance,
                )
                for base, transport in self.mirrors[name]
            ],
        )


def _consensus(
    repository_map: RepositoryMap,
    layout: InstallLayout,
    settings: Settings,
    user_agent: str,
    retry: RetryPolicy,
) -> _Consensus:
    mirrors: dict[str, list[tuple[str, Transport]]] = {}
    for name, urls in repository_map.repositories.items():
        mirrors[name] = []
        for url in urls:
            base, userinfo = split_userinfo(url)
            if userinfo is not None:
                register_secret(userinfo[1])
            mirrors[name].append((base, _transport(settings, base, user_agent, userinfo)))
    return _Consensus(repository_map, layout, mirrors, retry, user_agent)


def _transport(
    settings: Settings,
    base_url: str,
    user_agent: str,
    userinfo: tuple[str, str] | None,
    token: str | None = None,
) -> Transport:
    """A transport to one repository (mirror): its own credentials, the speed limits."""
    return make_transport(
        base_url,
        user_agent=user_agent,
        token=token,
        userinfo=userinfo,
        timeout=settings.http_timeout,
        limits=SpeedLimits(
            min_bytes_per_second=settings.min_speed_bytes,
            window_seconds=settings.speed_window_seconds,
            metadata_deadline=settings.metadata_deadline_seconds,
        ),
        ca_bundle=settings.ca_bundle,
        client_cert=settings.client_cert_pair,
        proxy=_proxy(settings, base_url),
    )


def _proxy(settings: Settings, base_url: str) -> str | None:
    """The proxy for this repository; its password is a secret from now on."""
    chosen = proxy_for(base_url, os.environ, settings.proxy)
    if chosen is not None:
        _, userinfo = split_userinfo(chosen)
        if userinfo is not None:
            register_secret(userinfo[1])
    return chosen
