"""Which HTTP proxy a repository is reached through: CAIO_PROXY, or the usual variables.

``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (either case) as curl and pip read
them; ``CAIO_PROXY`` overrides the
proxy for every scheme, and ``NO_PROXY`` still exempts hosts. Proxy credentials
(``http://user:password@proxy:3128``) go to the proxy only, as
``Proxy-Authorization``, and are redacted wherever CAIO writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def proxy_for(url: str, environ: Mapping[str, str], override: str | None = None) -> str | None:
    """The proxy URL to reach ``url`` through, or None for a direct connection."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return None
    found = _proxies(environ)
    if _bypassed(urlsplit(url).hostname or "", found.get("no", "")):
        return None
    if override:
        return override
    return found.get(scheme)


def _proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``{"https": ..., "http": ..., "no": ...}`` from ``environ``.

    Lower case wins over upper case, as curl does; an empty value is no proxy.
    """
    found: dict[str, str] = {}
    for name, value in environ.items():
        key = name.lower()
        wanted = value and key.endswith("_proxy") and name in (key, key.upper())
        if wanted and (name == key or key.removesuffix("_proxy") not in found):
            found[key.removesuffix("_proxy")] = value
    return found


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``: ``*``, the host itself, or a domain of it.

    Entries are comma-separated; a leading dot and a port are ignored (``.corp.example``,
    ``corp.example:443`` and ``corp.example`` all cover ``repo.corp.example``).
    """
    host = host.lower().strip("[]")
    for entry in no_proxy.split(","):
        name = entry.strip().lower()
        if name == "*":
            return True
        if name.startswith("["):
            name = name[1 : name.find("]")]
        elif name.count(":") == 1:
            name = name.split(":")[0]
        name = name.lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
