"""``python -m caio.main``: run the CAIO service with uvicorn on the configured address."""

from __future__ import annotations

import sys

import uvicorn

from caio.api.app import create_app
from caio.core.errors import ConfigError
from caio.core.logs import configure_logging
from caio.core.settings import Settings, load_settings


def serve(settings: Settings) -> None:
    """Build the app and serve it until interrupted.

    Raises:
        ConfigError: settings, manifest or tokens file are invalid.
    """
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level,
    )


def main() -> int:
    try:
        serve(load_settings())
    except ConfigError as e:
        print(f"caio: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
