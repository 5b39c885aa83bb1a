"""Settings: one pydantic-settings class, ``CAIO_`` environment, optional TOML file.

Precedence (highest first): explicit arguments, environment (``CAIO_*``), the
TOML file named by ``CAIO_CONFIG``, defaults. Built by the app factory or the
CLI, never at import time.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from caio.core.errors import ConfigError
from caio.core.host_id import MACHINE_ID_FILES
from caio.core.manifest import Channel, UpdateUrl
from caio.core.rollout import HOST_ID_RE
from caio.core.schedule import MaintenanceWindow

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SOURCE_DIR = PACKAGE_DIR.parent
CONFIG_ENV = "CAIO_CONFIG"

RestartStrategy = Literal["supervisor", "systemd", "embedded", "exec"]


def default_home() -> Path:
    return Path.home() / ".caio"


def _cert_and_key(prefix: str, cert: Path | None, key: Path | None) -> None:
    """A certificate and its key are set together, exist, and the key is private."""
    names = f"{prefix}_CERT and {prefix}_KEY"
    if (cert is None) != (key is None):
        raise ValueError(f"{names} go together: set both")
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist ({names})")
    if key is not None and key.stat().st_mode & 0o077:
        raise ValueError(
            f"{prefix}_KEY {key} may be read by others "
            f"(mode {key.stat().st_mode & 0o777:o}): make it 0600"
        )


class Settings(BaseSettings):
    """Every knob of a CAIO instance."""

    model_config = SettingsConfigDict(env_prefix="CAIO_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, description="state and install root")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    manifest: Path | None = Field(
        default=None, description="manifest.json; default: the one beside the caio package"
    )
    update_url: UpdateUrl | None = Field(default=None, description="overrides manifest update_url")
    update_token: str | None = Field(default=None, repr=False)
    client_cert: Path | None = Field(
        default=None, description="this host's TLS client certificate (PEM), for mutual TLS"
    )
    client_key: Path | None = Field(
        default=None, description="its private key (PEM, mode 0600 or stricter)"
    )
    proxy: str | None = Field(
        default=None,
        repr=False,
        description="the HTTP proxy for every repository (http://[user:password@]host:port); "
        "default: HTTPS_PROXY / HTTP_PROXY, with NO_PROXY honoured either way",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (a PEM file or a directory) that HTTPS repositories "
        "must chain to, instead of the system's: a private CA",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="serve the API over HTTPS with this certificate (PEM, the chain after "
        "it); re-read at every restart",
    )
    tls_key: Path | None = Field(
        default=None, description="the API certificate's private key (PEM, mode 0600 or stricter)"
    )
    tls_client_ca: Path | None = Field(
        default=None,
        description="callers of the API must present a certificate from these CAs "
        "(mutual TLS; a PEM file or a directory); tokens are still required",
    )
    trusted_root: Path | None = Field(
        default=None, description="trust anchor; default: <home>/trusted_root.json"
    )
    repository_map: Path | None = Field(
        default=None,
        description="two-party approval: a TAP 4 map.json naming several repositories that "
        "must sign the same bytes; without it, the one repository of update_url",
    )
    restart_strategy: RestartStrategy = "supervisor"
    channel: Channel | None = Field(default=None, description="overrides manifest channel")
    keep_releases: int = Field(default=3, ge=2, description="installed releases kept")
    delta: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: apply a signed delta from the current release when one is "
        "published and its tar was kept (else the full download); off: always the full one",
    )
    http_timeout: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=4, ge=1)
    retry_base_delay: float = Field(default=0.5, ge=0)
    max_unpacked_mb: int = Field(default=1024, ge=1)
    preflight_timeout: float = Field(default=120.0, gt=0)
    probation_seconds: float = Field(
        default=30.0, gt=0, description="time a new child has to become ready and healthy"
    )
    boot_attempts: int = Field(
        default=2,
        ge=1,
        le=5,
        description="starts a new child gets when it exits before it is ready (supervisor), "
        "or boots of current that do not stay up stable_seconds (serve-current, systemd), "
        "before the release is judged sick and rolled back",
    )
    drain_seconds: float = Field(default=30.0, gt=0, description="graceful shutdown timeout")
    standby_seconds: float = Field(
        default=600.0,
        ge=0,
        description="caio run: the next release, booted as its update's preflight, waits "
        "this long for the restart that makes it serve (0: no standby; the restart then "
        "starts a fresh process)",
    )
    stable_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a new version crashing sooner counts as a crash loop (supervisor); a "
        "boot serving this long is judged up (serve-current)",
    )
    restart_signal: str | None = Field(
        default=None,
        description="embedded: signal to send the host that registered (CAIO_RESTART_PID)",
    )
    restart_pid: int | None = Field(
        default=None,
        gt=1,
        description="embedded: the pid of the host process to signal; required with "
        "CAIO_RESTART_SIGNAL (never guessed from the parent)",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="larger request bodies get 413, unread"
    )
    min_speed_bytes: float = Field(
        default=2048.0, ge=0, description="slow-retrieval floor: average bytes/s over the window"
    )
    speed_window_seconds: float = Field(
        default=30.0, gt=0, description="the sliding window of the slow-retrieval floor"
    )
    metadata_deadline_seconds: float = Field(
        default=60.0, gt=0, description="a metadata file must arrive within this"
    )
    check_wait_seconds: float = Field(
        default=20.0, gt=0, description="how long /update/check waits for the shared refresh"
    )
    max_connections: int = Field(
        default=512, ge=8, description="open client connections; the idlest are shed beyond it"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a client must send its request head within this"
    )
    idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a connection that makes no progress for this long is closed: a body "
        "that stops coming, an answer the client does not read",
    )
    max_event_streams: int = Field(
        default=32, ge=1, description="open GET /api/v1/update/events streams; more get 503"
    )

    host_id: str | None = Field(
        default=None,
        pattern=f"^{HOST_ID_RE.pattern}$",
        description="this host's id in staged rollouts; default: random, kept in state/host_id",
    )
    machine_id_file: Path | None = Field(
        default=None,
        description="what identifies this machine (default /etc/machine-id); a host id "
        "copied from another machine is renewed",
    )

    def machine_id_files(self) -> tuple[Path, ...]:
        return (self.machine_id_file,) if self.machine_id_file is not None else MACHINE_ID_FILES

    auto_update: Literal["off", "check", "download", "install", "restart"] = Field(
        default="off", description="scheduled updates: what the scheduler may do by itself"
    )
    check_interval: float = Field(
        default=3600.0, ge=1, description="seconds between scheduled checks (10 % jitter)"
    )
    maintenance_window: str | None = Field(
        default=None,
        description="scheduled installs and restarts happen only inside it, "
        "e.g. 'Mon-Fri 02:00-04:00 UTC'",
    )
    metrics_public: bool = Field(
        default=False, description="serve /metrics without a token (default: viewer token)"
    )

    @model_validator(mode="after")
    def _certificates_and_keys(self) -> Settings:
        _cert_and_key("CAIO_CLIENT", self.client_cert, self.client_key)
        _cert_and_key("CAIO_TLS", self.tls_cert, self.tls_key)
        if self.tls_client_ca is not None:
            if self.tls_cert is None:
                raise ValueError("CAIO_TLS_CLIENT_CA needs CAIO_TLS_CERT and CAIO_TLS_KEY")
            if not self.tls_client_ca.exists():
                raise ValueError(f"CAIO_TLS_CLIENT_CA {self.tls_client_ca} does not exist")
        return self

    @property
    def api_scheme(self) -> Literal["http", "https"]:
        return "https" if self.tls_cert is not None else "http"

    @property
    def client_cert_pair(self) -> tuple[Path, Path] | None:
        """(certificate, key) this host presents to repositories (mutual TLS), if set."""
        if self.client_cert is None or self.client_key is None:
            return None
        return self.client_cert, self.client_key

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value} does not exist (a PEM file or a directory of them)")
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            MaintenanceWindow.parse(value)
        return value

    @property
    def window(self) -> MaintenanceWindow | None:
        return MaintenanceWindow.parse(self.maintenance_window) if self.maintenance_window else None

    @field_validator("restart_signal")
    @classmethod
    def _signal_name(cls, value: str | None) -> str | None:
        if value is not None and value not in signal.Signals.__members__:
            raise ValueError(f"not a signal name: {value!r}")
        return value

    @model_validator(mode="after")
    def _signal_needs_a_registered_host(self) -> Settings:
        if self.restart_signal is not None and self.restart_pid is None:
            raise ValueError(
                "CAIO_RESTART_SIGNAL needs CAIO_RESTART_PID, the pid of the host process to "
                "signal (e.g. CAIO_RESTART_PID=$$ in the host's launcher): CAIO never guesses "
                "it from its parent, which may be a launcher that has exited"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def manifest_path(self) -> Path:
        return self.manifest if self.manifest is not None else SOURCE_DIR / "manifest.json"

    @property
    def trusted_root_path(self) -> Path:
        return (
            self.trusted_root if self.trusted_root is not None else self.home / "trusted_root.json"
        )

    @property
    def tokens_path(self) -> Path:
        return self.home / "tokens.json"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, the config file and ``overrides``.

    Raises:
        ConfigError: a value is invalid or the config file cannot be read;
            the message names the setting.
    """
    config_file = os.environ.get(CONFIG_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file} (from {CONFIG_ENV}) does not exist")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = "; ".join(
            f"CAIO_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"config file {config_file} cannot be read: {e}") from e
