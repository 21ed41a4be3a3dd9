"""Live events for the agent desktop and sandbox listeners (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, Dict, Optional, Set

from sanic.request import Request

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0


class LiveFeed:
    """Fans events out to every connected SSE stream; slow listeners lose old events, never block writers."""

    def __init__(self) -> None:
        self._listeners: Set[asyncio.Queue[Dict[str, Any]]] = set()

    def publish(self, event: Dict[str, Any]) -> None:
        """Send an event to every listener (non-blocking)."""
        for q in list(self._listeners):
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(event)

    async def stream(self, request: Request, accept: Optional[Callable[[Dict[str, Any]], bool]] = None) -> None:
        """Serve `text/event-stream` to one client until it disconnects or the server stops."""
        q: asyncio.Queue[Dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._listeners.add(q)
        try:
            response = await request.respond(
                content_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
            await response.send("retry: 1000\n\nevent: hello\ndata: {}\n\n")
            while request.transport is not None and not request.transport.is_closing():  # type: ignore[attr-defined]
                try:
                    event = await asyncio.wait_for(q.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.send(": keepalive\n\n")
                    continue
                if accept is not None and not accept(event):
                    continue
                await response.send(f"data: {json.dumps(event)}\n\n")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._listeners.discard(q)
