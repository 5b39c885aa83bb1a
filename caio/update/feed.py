"""Status changes of the update job, handed to asyncio subscribers (the SSE route)."""

from __future__ import annotations

import asyncio
import threading

from caio.core.state import JobStatus


class StatusFeed:
    """Hands every status change to asyncio subscribers (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[JobStatus]]] = []

    def subscribe(self) -> asyncio.Queue[JobStatus]:
        queue: asyncio.Queue[JobStatus] = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[JobStatus]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    def publish(self, status: JobStatus) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, inbox in subscribers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(inbox.put_nowait, status)
