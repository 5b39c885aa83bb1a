"""The socket `caio serve` listens on: what asyncio (and so uvicorn) does with it."""

from __future__ import annotations

import asyncio
import socket

from caio.restart.process import bind


def test_accepted_connections_never_wait_for_nagle() -> None:
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket
    says it is TCP; made with protocol 0, each keep-alive answer waited ~40 ms for the
    client's delayed ACK (issue 23, item 1)."""
    listener = bind("127.0.0.1", 0)
    nodelay: list[int] = []

    async def exchange() -> None:
        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted: socket.socket = writer.get_extra_info("socket")
            nodelay.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            await reader.read()  # until the server closes
            writer.close()
            await writer.wait_closed()

    try:
        asyncio.run(exchange())
    finally:
        listener.close()
    assert listener.proto == socket.IPPROTO_TCP
    assert len(nodelay) == 1 and nodelay[0] != 0
