"""Agent typing for website visitors, read from the Flex sandbox's event stream.

Twilio has no webhook or REST call for typing: a real Flex agent's typing reaches only
clients of Twilio's realtime SDK (a front end can use the access token from the `connecting`
notice for that). The sandbox publishes it on `GET /sandbox/events`. Each Rasa replica reads
that stream and emits `agent_typing` to the sockets *it* holds for the Flex chat (room
`flex:<channel sid>`, joined when the handoff starts or the visitor reconnects), without the
Redis queue, so a visitor gets one indicator however many replicas run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Dict, Optional

import aiohttp
from socketio import AsyncServer

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


def channel_room(channel_sid: str) -> str:
    """The socket room of one Flex chat's visitor sockets on this replica."""
    return f"flex:{channel_sid}"


def join_channel_room(sio: AsyncServer, session_room: str, channel_sid: str, namespace: Optional[str] = None) -> None:
    """Put this replica's sockets of a visitor session into the Flex chat's room."""
    namespace = namespace or "/"
    if namespace not in sio.manager.rooms:
        return
    for sid, _ in list(sio.manager.get_participants(namespace, session_room)):
        # python-socketio 5.8: enter_room is synchronous.
        sio.enter_room(sid, channel_room(channel_sid), namespace=namespace)


def agent_typing_payload(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """What the visitor gets for a sandbox event: agent typing only (the visitor's own is not echoed)."""
    if event.get("type") != "typing" or event.get("role") != "agent" or not event.get("channel_sid"):
        return None
    return {"typing": True, "agent": {"name": str(event.get("identity") or "")}}


async def server_sent_events(response: aiohttp.ClientResponse) -> AsyncIterator[Dict[str, Any]]:
    """The JSON `data:` of each event in a `text/event-stream` body."""
    data = []
    async for raw in response.content:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            try:
                event = json.loads("\n".join(data))
            except ValueError:
                event = None
            data = []
            if isinstance(event, dict):
                yield event


class AgentTypingFeed:
    """One subscription per replica to the sandbox's typing events, relayed to local visitor sockets."""

    def __init__(self, sio: AsyncServer, api_base: str, namespace: Optional[str] = None) -> None:
        self.sio = sio
        self.url = f"{api_base}/sandbox/events?type=typing"
        self.namespace = namespace
        self.task: Optional[asyncio.Task[None]] = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def _run(self) -> None:
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)  # the sandbox sends keepalives
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(self.url, headers={"Accept": "text/event-stream"}) as response:
                        response.raise_for_status()
                        if failures:
                            logger.info("agent typing feed from the sandbox reconnected")
                        failures = 0
                        async for event in server_sent_events(response):
                            await self._relay(event)
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as e:
                    if not failures:
                        logger.info("agent typing feed from the sandbox unavailable (%s); retrying", type(e).__name__)
                await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
                failures += 1

    async def _relay(self, event: Dict[str, Any]) -> None:
        payload = agent_typing_payload(event)
        if payload is None:
            return
        await self.sio.emit(
            "agent_typing", payload, room=channel_room(event["channel_sid"]), namespace=self.namespace, ignore_queue=True
        )
