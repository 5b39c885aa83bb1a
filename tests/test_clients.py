"""Both host clients against a live `caio serve`: every endpoint, errors, waits, retries."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from caio.client import (
    AsyncCaioClient,
    AuthError,
    CaioClient,
    ConflictError,
    NotFoundError,
    ServerError,
    UnreachableError,
    WaitTimeoutError,
)
from caio.schemas import JobStatus
from tests.served import Served, run
from tests.update_fixtures import NEWER, RUNNING, UpdateEnv, paced

pytestmark = pytest.mark.slow  # real processes

ARTIFACT = f"caio-{NEWER}.tar.gz"


@pytest.fixture
def caio(update_env: UpdateEnv, started: list[Served]) -> Served:
    update_env.publish(NEWER)
    return run(update_env, started)


def test_every_endpoint_through_the_sync_client(caio: Served, update_env: UpdateEnv) -> None:
    seen: list[JobStatus] = []
    with CaioClient(caio.url, update_env.admin) as client:
        assert client.health().version == RUNNING
        assert client.version().version == RUNNING
        assert client.status().status == "idle"
        assert client.check().update_available is not None
        with pytest.raises(ConflictError) as nothing:
            client.cancel()
        assert nothing.value.code == "no_update_in_progress"
        assert client.start_update().status == "updating"
        final = client.wait(seen.append, timeout=120)
        assert (final.status, final.to_version) == ("complete", NEWER)
        assert seen and seen[-1].stage == "complete"
        assert [s.status for s in client.events()] == ["complete"]  # the job has ended
        assert client.history().records[-1]["outcome"] == "activated"
        assert client.rollback().to_version == RUNNING
        restart = client.restart()
        assert restart.strategy == "exec" and restart.to_version == RUNNING
        assert client.wait_for_version(RUNNING, timeout=60).version == RUNNING


def test_every_endpoint_through_the_async_client(caio: Served, update_env: UpdateEnv) -> None:
    async def drive() -> None:
        seen: list[JobStatus] = []
        async with AsyncCaioClient(caio.url, update_env.admin) as client:
            assert (await client.health()).version == RUNNING
            assert (await client.version()).version == RUNNING
            assert (await client.status()).status == "idle"
            assert (await client.check()).latest is not None
            with pytest.raises(ConflictError):
                await client.cancel()
            await client.start_update(NEWER)
            final = await client.wait(seen.append, timeout=120)
            assert (final.status, final.to_version) == ("complete", NEWER)
            assert [s.status async for s in client.events()] == ["complete"]
            assert (await client.history(limit=5)).integrity.ok
            assert (await client.rollback()).to_version == RUNNING
            restart = await client.restart(graceful=True)
            assert (await client.wait_for_version(restart.to_version or RUNNING)).version

    asyncio.run(drive())


def test_errors_are_a_tree_with_the_stable_code(caio: Served, update_env: UpdateEnv) -> None:
    with CaioClient(caio.url, update_env.viewer) as viewer:
        with pytest.raises(AuthError) as forbidden:
            viewer.start_update()
        assert (forbidden.value.status_code, forbidden.value.code) == (403, "forbidden")
    with CaioClient(caio.url, "caio_wrong") as stranger, pytest.raises(AuthError) as refused:
        stranger.status()
    assert refused.value.code == "unauthorized"
    update_env.repo.server.stop()  # the repository is gone: the check fails upstream
    with CaioClient(caio.url, update_env.viewer) as viewer, pytest.raises(ServerError) as bad:
        viewer.check()
    assert (bad.value.status_code, bad.value.code) == (502, "repository_unreachable")


def test_a_wait_has_a_timeout_and_can_be_cancelled(caio: Served, update_env: UpdateEnv) -> None:
    update_env.behaviours[ARTIFACT] = paced(chunks=40, pause=0.5)  # a 20 s download
    with CaioClient(caio.url, update_env.admin) as client:
        client.start_update()
        with pytest.raises(WaitTimeoutError) as late:
            client.wait(timeout=1.5, poll=0.5)
        assert late.value.code == "wait_timeout"
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(WaitTimeoutError) as cancelled:
            client.wait(cancel=stop, poll=0.5)
        assert cancelled.value.code == "wait_cancelled"

        async def cancelled_task() -> bool:
            async with AsyncCaioClient(caio.url, update_env.admin) as aclient:
                task = asyncio.create_task(aclient.wait())
                await asyncio.sleep(0.5)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    return True
                return False

        assert asyncio.run(cancelled_task())
        client.cancel()


def test_only_idempotent_calls_are_retried() -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/api/v1/update/check":
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        body: dict[str, Any] = {"status": "ok", "version": "9.9.9"}
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(flaky)  # the network's behaviour, not CAIO's
    with CaioClient("http://caio.test", transport=transport, backoff=0.01) as client:
        assert client.health().version == "9.9.9" and calls == ["GET"] * 3
        calls.clear()
        with pytest.raises(UnreachableError):
            client.start_update()
        assert calls == ["POST"]  # a change is never sent twice
        calls[:] = ["x", "x"]
        with pytest.raises(NotFoundError) as missing:
            client.check()
        assert missing.value.code == "not_found"
