from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from caio.core.errors import ConfigError
from caio.core.settings import load_settings
from caio.core.tls import api_context
from tests.pki import make_pki


def test_defaults_are_loopback_and_supervisor() -> None:
    s = load_settings()
    assert (s.host, s.port, s.restart_strategy) == ("127.0.0.1", 8000, "supervisor")
    assert s.trusted_root_path == s.home / "trusted_root.json"


def test_environment_uses_the_caio_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAIO_HOME", str(tmp_path))
    monkeypatch.setenv("CAIO_PORT", "9123")
    monkeypatch.setenv("CAIO_UPDATE_URL", "file:///srv/mirror")
    monkeypatch.setenv("CAIO_LOG_FORMAT", "json")
    s = load_settings()
    assert (s.home, s.port, s.update_url, s.log_format) == (
        tmp_path,
        9123,
        "file:///srv/mirror",
        "json",
    )
    assert s.tokens_path == tmp_path / "tokens.json"


def test_config_file_is_below_environment_and_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "caio.toml"
    config.write_text('port = 7001\nhost = "127.0.0.2"\nrestart_strategy = "exec"\n')
    monkeypatch.setenv("CAIO_CONFIG", str(config))
    monkeypatch.setenv("CAIO_HOST", "127.0.0.3")
    s = load_settings(restart_strategy="systemd")
    assert (s.port, s.host, s.restart_strategy) == (7001, "127.0.0.3", "systemd")


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("CAIO_PORT", "70000", "CAIO_PORT"),
        ("CAIO_PORT", "eighty", "CAIO_PORT"),
        ("CAIO_RESTART_STRATEGY", "reboot", "CAIO_RESTART_STRATEGY"),
        ("CAIO_LOG_LEVEL", "loud", "CAIO_LOG_LEVEL"),
        ("CAIO_MAX_BODY_BYTES", "10", "CAIO_MAX_BODY_BYTES"),
        ("CAIO_MIN_SPEED_BYTES", "-1", "CAIO_MIN_SPEED_BYTES"),
        ("CAIO_SPEED_WINDOW_SECONDS", "0", "CAIO_SPEED_WINDOW_SECONDS"),
        ("CAIO_METADATA_DEADLINE_SECONDS", "never", "CAIO_METADATA_DEADLINE_SECONDS"),
        ("CAIO_CHECK_WAIT_SECONDS", "0", "CAIO_CHECK_WAIT_SECONDS"),
        ("CAIO_MAX_CONNECTIONS", "1", "CAIO_MAX_CONNECTIONS"),
        ("CAIO_HEADER_TIMEOUT_SECONDS", "-5", "CAIO_HEADER_TIMEOUT_SECONDS"),
        ("CAIO_UPDATE_URL", "gopher://x", "CAIO_UPDATE_URL"),
        ("CAIO_CHANNEL", "../stable", "CAIO_CHANNEL"),
        ("CAIO_IDLE_TIMEOUT_SECONDS", "0", "CAIO_IDLE_TIMEOUT_SECONDS"),
        ("CAIO_MAX_EVENT_STREAMS", "0", "CAIO_MAX_EVENT_STREAMS"),
        ("CAIO_RESTART_PID", "1", "CAIO_RESTART_PID"),
        ("CAIO_RESTART_SIGNAL", "SIGUSR1", "CAIO_RESTART_PID"),  # a signal, to nobody known
        ("CAIO_CA_BUNDLE", "/nonexistent/ca.pem", "CAIO_CA_BUNDLE"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_missing_or_broken_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAIO_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 3")
    monkeypatch.setenv("CAIO_CONFIG", str(broken))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings()


def test_a_client_key_others_may_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = tmp_path / "host.crt", tmp_path / "host.key"
    cert.write_text("certificate")
    key.write_text("key")
    key.chmod(0o644)
    monkeypatch.setenv("CAIO_CLIENT_CERT", str(cert))
    with pytest.raises(ConfigError, match="go together"):
        load_settings()
    monkeypatch.setenv("CAIO_CLIENT_KEY", str(key))
    with pytest.raises(ConfigError, match="may be read by others"):
        load_settings()
    key.chmod(0o600)
    assert load_settings().client_cert_pair == (cert, key)


def test_the_api_certificate_settings_are_checked_before_serving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("CAIO_TLS_CLIENT_CA", str(pki.ca))
    with pytest.raises(ConfigError, match="needs CAIO_TLS_CERT"):
        load_settings()
    monkeypatch.setenv("CAIO_TLS_CERT", str(pki.server.cert))
    with pytest.raises(ConfigError, match="go together"):
        load_settings()
    loose = tmp_path / "loose.key"
    loose.write_bytes(pki.server.key.read_bytes())
    loose.chmod(0o640)
    monkeypatch.setenv("CAIO_TLS_KEY", str(loose))
    with pytest.raises(ConfigError, match=r"CAIO_TLS_KEY .* may be read by others"):
        load_settings()
    monkeypatch.setenv("CAIO_TLS_KEY", str(pki.rotated.key))  # another certificate's key
    with pytest.raises(ConfigError, match="the key does not belong to the certificate"):
        api_context(load_settings())
    monkeypatch.setenv("CAIO_TLS_KEY", str(pki.server.key))
    settings = load_settings()
    assert settings.api_scheme == "https"
    context = api_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL  # 403 if none

    empty = tmp_path / "no-ca.pem"
    empty.write_text("")
    monkeypatch.setenv("CAIO_TLS_CLIENT_CA", str(empty))
    with pytest.raises(ConfigError, match=r"cannot read CAIO_TLS_CLIENT_CA .*no-ca\.pem: not PEM"):
        api_context(load_settings())
    monkeypatch.delenv("CAIO_TLS_CLIENT_CA")
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("CAIO_TLS_CERT", str(garbage))
    with pytest.raises(ConfigError, match=r"garbage\.crt.*: not PEM, or damaged"):
        api_context(load_settings())


def test_the_delta_and_standby_settings_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("CAIO_DELTA", "sometimes"), ("CAIO_STANDBY_SECONDS", "-1")):
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(ConfigError):
                load_settings()
    monkeypatch.setenv("CAIO_DELTA", "off")
    monkeypatch.setenv("CAIO_STANDBY_SECONDS", "0")
    settings = load_settings()
    assert (settings.delta, settings.standby_seconds) == ("off", 0)
