"""The operator console and the API docs in a real browser: Debian's headless Chromium.

Selenium drives Chromium through Debian's chromedriver against a real
`caio serve` and a repository published by `tuf_repo`. The DevTools protocol
records every request the page makes and every Content-Security-Policy
violation it reports, so "nothing leaves the origin" is observed, not assumed.

`CAIO_SCREENSHOT_DIR=docs scripts/test -k console` refreshes docs/console.png.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser import Browser, off_origin
from tests.served import Served, run
from tests.supervisor_fixtures import SICK, release_with_patches, start_supervised, stop_supervised
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv, paced

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def caio(update_env: UpdateEnv, started: list[Served]) -> Served:
    update_env.publish(NEWER)
    return run(update_env, started)


def test_the_console_shows_the_running_version_and_nothing_leaves_the_origin(
    browser: Browser, caio: Served
) -> None:
    browser.open(caio.url + "/")
    browser.wait(lambda: browser.text("version") == "1.0.0", message="no version shown")
    assert browser.text("channel") == "stable" and browser.text("commit") == "abc123"
    assert browser.text("uptime").endswith("s")
    assert browser.text("job-status") == "token needed"
    requests = browser.requests()
    assert f"{caio.url}/api/v1/version" in requests
    assert off_origin(requests, caio.url) == {}
    assert browser.violations() == []


def test_a_wrong_token_gets_a_clear_message(browser: Browser, caio: Served) -> None:
    browser.open(caio.url + "/")
    browser.use_token("caio_not-a-real-token")
    browser.wait(lambda: "The token was refused" in browser.text("notice"))
    assert "[unauthorized]" not in browser.text("notice")  # readable, not a log line
    assert "unauthorized" in browser.text("notice")


def test_an_update_started_from_the_console_shows_progress_and_completes(
    browser: Browser, caio: Served, update_env: UpdateEnv
) -> None:
    update_env.behaviours[f"caio-{NEWER}.tar.gz"] = paced(chunks=10, pause=0.3)
    browser.open(caio.url + "/")
    browser.use_token(update_env.admin)
    browser.wait(lambda: browser.text("job-status") == "idle", message="no job status")
    browser.wait(lambda: NEWER in browser.text("would-install"), message="no check shown")
    assert "an update installs this" in browser.text("release-rows")
    assert {"root", "targets", "snapshot", "timestamp"} <= set(browser.text("roles").split())

    browser.driver.find_element(By.ID, "do-update").click()
    seen: set[int] = set()

    def finished() -> bool:
        value = browser.driver.find_element(By.ID, "job-progress").get_attribute("value")
        seen.add(round(float(value or 0)))
        return browser.text("job-status") == "complete"

    browser.wait(finished, timeout=60, message="the update did not complete")
    assert any(0 < p < 100 for p in seen), seen  # the bar moved while it downloaded
    assert "restart to run it" in browser.text("job-message")
    browser.wait(lambda: "activated" in browser.text("history-rows"))
    assert "hash chain intact" in browser.text("integrity")
    requests = browser.requests()
    assert f"{caio.url}/api/v1/update/events" in requests  # the live stream
    assert off_origin(requests, caio.url) == {}
    assert browser.violations() == []
    assert not [url for url in requests if update_env.admin in url]  # never in a URL
    shots = os.environ.get("CAIO_SCREENSHOT_DIR")
    if shots:
        browser.driver.save_screenshot(str(Path(shots) / "console.png"))


def test_the_token_stays_out_of_cookies_and_local_storage(
    browser: Browser, caio: Served, update_env: UpdateEnv
) -> None:
    browser.open(caio.url + "/")
    browser.use_token(update_env.viewer)
    browser.wait(lambda: browser.text("job-status") == "idle")
    storage: dict[str, Any] = browser.driver.execute_script(
        "return {cookie: document.cookie, local: localStorage.length,"
        " session: sessionStorage.getItem('caio.token')}"
    )
    assert storage == {"cookie": "", "local": 0, "session": None}  # memory only
    browser.use_token(update_env.viewer, keep=True)
    browser.wait(
        lambda: (
            browser.driver.execute_script("return sessionStorage.getItem('caio.token')")
            == update_env.viewer
        )
    )
    assert browser.driver.execute_script("return localStorage.length") == 0


ADMIN_CONTROLS = (
    *("do-update", "do-update-to", "allow-downgrade", "allow-withdrawn"),
    *("do-cancel", "do-restart", "do-rollback"),
)


def test_a_viewer_sees_admin_actions_disabled_and_why(
    browser: Browser, caio: Served, update_env: UpdateEnv
) -> None:
    browser.open(caio.url + "/")
    browser.use_token(update_env.viewer)
    browser.wait(lambda: browser.text("role") == "viewer token", message="the role is not shown")
    browser.wait(lambda: NEWER in browser.text("would-install"))
    for control in ADMIN_CONTROLS:
        element = browser.driver.find_element(By.ID, control)
        assert not element.is_enabled(), control
        assert element.get_attribute("title") == "needs an admin token", control
    assert browser.driver.find_element(By.ID, "do-check").is_enabled()  # a viewer may look
    assert "a viewer token may look, not act" in browser.text("actions-note")
    browser.use_token(update_env.admin)  # the same page, now an admin's
    browser.wait(lambda: browser.text("role") == "admin token")
    assert browser.driver.find_element(By.ID, "do-update").is_enabled()
    assert not browser.driver.find_element(By.ID, "do-cancel").is_enabled()  # nothing runs
    rollback = browser.driver.find_element(By.ID, "do-rollback")
    assert not rollback.is_enabled() and rollback.get_attribute("title") == "no previous release"


@pytest.mark.parametrize("width", [1400, 1920])
def test_the_expiry_countdown_fits_its_card(
    browser: Browser, caio: Served, update_env: UpdateEnv, width: int
) -> None:
    browser.driver.set_window_size(width, 1000)
    try:
        browser.open(caio.url + "/")
        browser.use_token(update_env.viewer)
        browser.wait(lambda: "timestamp" in browser.text("roles"))
        browser.wait(lambda: "d " in browser.text("roles"))  # the countdown ticks
        layout: dict[str, Any] = browser.driver.execute_script(
            """
            const card = document.getElementById("trust").getBoundingClientRect();
            const table = document.querySelector("#trust table");
            const cells = [...document.querySelectorAll("#roles .left")]
              .map((c) => c.getBoundingClientRect().right);
            return {card: card.right, cells, table: table.scrollWidth,
                    room: table.parentElement.clientWidth};
            """
        )
        assert len(layout["cells"]) == 4
        assert max(layout["cells"]) <= layout["card"], layout
        assert layout["table"] <= layout["room"], layout
    finally:
        browser.driver.set_window_size(1280, 1000)


def test_an_unreachable_repository_leaves_the_last_trusted_metadata_and_the_error(
    browser: Browser, caio: Served, update_env: UpdateEnv
) -> None:
    browser.open(caio.url + "/")
    browser.use_token(update_env.viewer)
    browser.wait(lambda: NEWER in browser.text("would-install"))

    def down(handler: Any) -> None:
        handler.send_error(503)

    update_env.behaviours["timestamp.json"] = down
    browser.driver.find_element(By.ID, "do-check").click()
    browser.wait(lambda: "check failed" in browser.text("trust-error"), timeout=60)
    assert {"root", "targets", "snapshot", "timestamp"} <= set(browser.text("roles").split())
    assert "last successful check" in browser.text("trust-note")
    assert browser.text("host-id") not in ("token needed", "—")
    assert browser.text("role") == "viewer token"


def test_the_api_docs_render_offline(browser: Browser, caio: Served) -> None:
    browser.open(caio.url + "/docs")
    browser.wait(
        lambda: "CAIO" in browser.driver.find_element(By.CSS_SELECTOR, ".swagger-ui .title").text,
        message="Swagger UI did not render",
    )
    assert "/api/v1/update/check" in browser.driver.find_element(By.ID, "swagger-ui").text
    requests = browser.requests()
    assert off_origin(requests, caio.url) == {}
    assert browser.violations() == []

    browser.open(caio.url + "/redoc")
    browser.wait(
        lambda: "CAIO" in browser.driver.find_element(By.TAG_NAME, "h1").text,
        message="ReDoc did not render",
    )
    # ReDoc's footer would ask a CDN for its logo: CAIO serves the bundle with its own icon.
    assert off_origin(browser.requests(), caio.url) == {}
    assert browser.violations() == []


def test_cancel_restart_and_rollback_from_the_console(
    browser: Browser, caio: Served, update_env: UpdateEnv
) -> None:
    update_env.publish("1.0.0")  # to be asked for by name later, as a downgrade
    update_env.behaviours[f"caio-{NEWER}.tar.gz"] = paced(chunks=20, pause=0.5)
    browser.open(caio.url + "/")
    browser.use_token(update_env.admin)
    browser.wait(lambda: browser.text("job-status") == "idle")
    browser.driver.find_element(By.ID, "do-update").click()
    browser.wait(lambda: browser.text("job-status") == "updating")
    browser.driver.find_element(By.ID, "do-cancel").click()
    browser.wait(lambda: browser.text("job-status") == "failed")
    assert browser.text("job-error").startswith("cancelled: cancelled by ops")
    assert browser.text("job-message") == ""  # the error says it, once
    assert browser.driver.find_element(By.ID, "job-progress").get_attribute("class") == "failed"
    assert browser.text("job-stage") == f"→ {NEWER}"  # not "failed failed → ..."

    del update_env.behaviours[f"caio-{NEWER}.tar.gz"]
    browser.driver.find_element(By.ID, "target-version").send_keys(NEWER)
    browser.driver.find_element(By.ID, "do-update-to").click()
    browser.wait(lambda: browser.text("job-status") == "complete", timeout=60)
    assert browser.text("job-message").endswith("restart to run it")
    assert browser.text("job-stage") == f"→ {NEWER}"  # not "complete complete → ..."
    browser.wait(lambda: browser.text("pending") == f"restart pending: a restart runs {NEWER}")
    # Releases agree with it: not "an update installs 1.1.0" once 1.1.0 is installed.
    installed = f"{NEWER} is installed: restart to run it"
    browser.wait(lambda: installed in browser.text("would-install"))
    assert "installed: restart to run it" in browser.text("release-rows")
    browser.driver.find_element(By.ID, "do-restart").click()  # exec: the process becomes 1.1.0
    confirm(browser, f"Restart into {NEWER}?")
    browser.wait(lambda: f"now running {NEWER}" in browser.text("notice"), timeout=60)
    assert browser.text("version") == NEWER
    browser.wait(lambda: "is installed and running" in browser.text("job-message"))

    browser.wait(lambda: browser.text("pending") == f"{NEWER} (as now)")

    rollback = browser.driver.find_element(By.ID, "do-rollback")
    rollback.click()
    dialog = browser.driver.find_element(By.ID, "confirm")
    browser.wait(dialog.is_displayed, message="no confirmation before a rollback")
    assert "Make 1.0.0 the active release again?" in browser.text("confirm-text")
    browser.driver.find_element(By.ID, "confirm-no").click()  # changed my mind
    browser.wait(lambda: not dialog.is_displayed())
    time.sleep(0.5)
    assert update_env.layout.current_version == NEWER  # nothing happened
    rollback.click()
    confirm(browser, "Roll back to 1.0.0?")
    browser.wait(lambda: "1.0.0 is active again; restart to run it" in browser.text("notice"))
    browser.wait(lambda: "rollback" in browser.text("history-rows"))
    assert browser.text("pending") == "restart pending: a restart runs 1.0.0"
    browser.open(caio.url + "/")  # the notice is gone; the pending restart is not
    browser.use_token(update_env.admin)
    browser.wait(lambda: browser.text("pending") == "restart pending: a restart runs 1.0.0")

    # 1.0.0 is older than the running 1.1.0: refused, with the way to do it on purpose.
    version = browser.driver.find_element(By.ID, "target-version")
    version.clear()
    version.send_keys("1.0.0")
    browser.driver.find_element(By.ID, "do-update-to").click()
    browser.wait(lambda: browser.text("job-status") == "failed", timeout=60)
    assert browser.text("job-error").startswith("downgrade_refused:")
    assert 'tick "allow an older version" under Actions' in browser.text("job-error")
    browser.driver.find_element(By.ID, "allow-downgrade").click()
    browser.driver.find_element(By.ID, "do-update-to").click()
    browser.wait(lambda: "older than the running 1.1.0" in browser.text("confirm-text"))
    confirm(browser, "Install 1.0.0?")
    browser.wait(lambda: browser.text("job-status") == "complete", timeout=60)
    assert browser.violations() == []


def confirm(browser: Browser, title: str) -> None:
    """Answer the console's confirmation dialog with its disruptive button."""
    browser.wait(lambda: browser.text("confirm-title") == title, message=f"no dialog {title!r}")
    browser.driver.find_element(By.ID, "confirm-yes").click()


def test_a_restart_the_supervisor_rolls_back_is_said_at_once_and_the_exits_are_listed(
    browser: Browser, update_env: UpdateEnv
) -> None:
    """Under `caio run`, a release that fails its health check: the console says so when
    the supervisor records it, not after its two-minute wait for the version."""
    release_with_patches(update_env, NEWER, SICK["fails at start"])
    supervised = start_supervised(update_env)
    try:
        assert supervised.update()["status"] == "complete"
        browser.open(supervised.url + "/")
        browser.use_token(update_env.admin)
        browser.wait(lambda: browser.text("pending") == f"restart pending: a restart runs {NEWER}")
        browser.driver.find_element(By.ID, "do-restart").click()
        confirm(browser, f"Restart into {NEWER}?")
        said = f"{NEWER} did not take over (health_check_failed)"
        browser.wait(lambda: said in browser.text("notice"), timeout=60)
        assert f"rolled back to {RUNNING}" in browser.text("notice")
        assert browser.text("version") == RUNNING
        rows = browser.text("history-rows")
        assert "rolled_back" in rows
        assert f"{NEWER} exit code 1 while starting" in " ".join(rows.split())  # its first start
        assert browser.violations() == []
    finally:
        stop_supervised(supervised)
