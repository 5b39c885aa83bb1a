"""HTTP layer of CAIO: routes, auth dependencies, error mapping (thin)."""

from caio.api.app import create_app

__all__ = ["create_app"]
