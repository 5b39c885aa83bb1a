"""A headless Chromium (Debian's, through its chromedriver) and what its pages asked for.

Used by the console tests and any test that looks at the console: the DevTools
protocol records every request a page makes and every Content-Security-Policy
violation it reports, so "nothing leaves the origin" is observed, not assumed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.components import require

# Injected before any page script (DevTools runs it whatever the CSP says).
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


class Browser:
    """A headless Chromium, and what its pages asked the network for."""

    def __init__(self, trusted_keys: tuple[str, ...] = ()) -> None:
        """``trusted_keys``: base64 SHA-256 digests of server public keys (SPKI) to accept
        though no CA the browser knows signed them: a test CA's server certificate."""
        chromium = require("chromium", "chromium")
        driver = require("chromedriver", "chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="caio-chromium-")
        options = Options()
        options.binary_location = chromium
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            f"--user-data-dir={self.profile}",
        ):
            options.add_argument(flag)
        if trusted_keys:
            options.add_argument(f"--ignore-certificate-errors-spki-list={','.join(trusted_keys)}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self._ids: dict[str, str] = {}  # DevTools request id -> URL
        self.driver = webdriver.Chrome(service=Service(driver), options=options)
        self.driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_VIOLATIONS}
        )

    def open(self, url: str) -> None:
        self.driver.get("about:blank")
        self.driver.get_log("performance")  # type: ignore[no-untyped-call]  # forget the past
        self.driver.get(url)

    def requests(self) -> dict[str, str]:
        """URL -> "sent", or why the browser blocked it (e.g. "csp"), since :meth:`open`."""
        seen: dict[str, str] = {}
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                seen[params["request"]["url"]] = "sent"
                self._ids[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
                url = self._ids.get(params["requestId"])
                if url is not None:
                    seen[url] = params["blockedReason"]
        return seen

    def violations(self) -> list[str]:
        found: list[str] = self.driver.execute_script("return window.__violations || []")
        return found

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def wait(self, what: Callable[[], bool], timeout: float = 30, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # an element not there yet
                if what():
                    return
            time.sleep(0.1)
        raise AssertionError(message or "the page did not get there")

    def use_token(self, token: str, *, keep: bool = False) -> None:
        field = self.driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        if keep:
            self.driver.find_element(By.ID, "keep").click()
        self.driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


def off_origin(requests: dict[str, str], origin: str) -> dict[str, str]:
    """Network requests (http, https, ws) that are not to ``origin``."""
    return {
        url: fate
        for url, fate in requests.items()
        if url.split(":", 1)[0] in ("http", "https", "ws", "wss") and not url.startswith(origin)
    }
