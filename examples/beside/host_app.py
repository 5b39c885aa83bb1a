"""A host application (FastAPI) that runs next to ``caio run`` and keeps it up to date.

Copy what you need. The host holds an admin token for CAIO (from a file only
it can read) and offers its operators one button: check, update with
progress, restart into the new release, and confirm it serves::

    CAIO_URL=http://127.0.0.1:8000 CAIO_TOKEN_FILE=/etc/host/caio-admin.token \\
        uvicorn examples.beside.host_app:app --port 9000
    curl -X POST http://127.0.0.1:9000/maintenance/update-caio
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from caio.client import AsyncCaioClient, CaioApiError
from caio.schemas import JobStatus


class UpdateReport(BaseModel):
    """What the host tells its operator after asking CAIO to update."""

    outcome: str  # "updated", "up_to_date" or "failed"
    from_version: str
    to_version: str
    progress: list[str]  # "stage progress%" as the job went
    error: str | None = None


async def update_caio(caio: AsyncCaioClient, *, timeout: float = 600) -> UpdateReport:
    """Check, update with progress, restart, and confirm the new version serves.

    Raises:
        CaioApiError: CAIO refused or could not be reached (the code says why).
    """
    before = (await caio.version()).version
    check = await caio.check()
    if check.update_available is None:
        return UpdateReport(
            outcome="up_to_date", from_version=before, to_version=before, progress=[]
        )
    progress: list[str] = []

    def record(status: JobStatus) -> None:
        line = f"{status.stage} {status.progress}%"
        if not progress or progress[-1] != line:
            progress.append(line)

    await caio.start_update()
    final = await caio.wait(record, timeout=timeout)
    if final.status != "complete" or not final.requires_restart:
        error = f"{final.error.code}: {final.error.message}" if final.error else final.message
        return UpdateReport(
            outcome="failed", from_version=before, to_version=before, progress=progress, error=error
        )
    restart = await caio.restart()
    target = restart.to_version or check.update_available.version
    running = await caio.wait_for_version(target, timeout=timeout)
    return UpdateReport(
        outcome="updated", from_version=before, to_version=running.version, progress=progress
    )


def _client() -> AsyncCaioClient:
    url = os.environ.get("CAIO_URL", "http://127.0.0.1:8000")
    token_file = os.environ.get("CAIO_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file else os.environ.get("CAIO_TOKEN")
    return AsyncCaioClient(url, token)


app = FastAPI(title="A host application beside CAIO")


@app.get("/maintenance/caio")
async def caio_version() -> dict[str, str]:
    async with _client() as caio:
        try:
            return {"version": (await caio.version()).version}
        except CaioApiError as e:
            raise HTTPException(502, f"CAIO: [{e.code}] {e.message}") from e


@app.post("/maintenance/update-caio")
async def update() -> UpdateReport:
    async with _client() as caio:
        try:
            return await update_caio(caio)
        except CaioApiError as e:
            raise HTTPException(502, f"CAIO: [{e.code}] {e.message}") from e
