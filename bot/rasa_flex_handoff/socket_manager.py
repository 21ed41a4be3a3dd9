"""python-socketio's Redis manager, delivering to this replica's own sockets without the round trip through Redis.

With `AsyncRedisManager`, every emit (a bot reply, `session_confirm`, an agent message) is only
published to Redis, and each replica delivers to its sockets what its subscription hears, its
own emits included. While Redis restarts, and until the subscription is back (python-socketio
5.8 backs off 1, 2, 4, ... up to 60 s), a replica then reaches none of its visitors, not even
the one whose message it is answering. This manager delivers to local sockets first and
publishes for the other replicas; its own messages coming back from Redis are skipped, so
nobody gets a payload twice. When Redis is down only visitors on other replicas miss an emit
(what was recorded is in the history our widget reloads on reconnect).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from socketio import AsyncRedisManager


class LocalFirstRedisManager(AsyncRedisManager):
    """`AsyncRedisManager` that emits to this process's sockets directly, and through Redis to the rest."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: Optional[str] = None,
        room: Optional[str] = None,
        skip_sid: Any = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("ignore_queue") or callback is not None:  # local only, or an ack only Redis can route back
            await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
            return
        await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, ignore_queue=True)
        await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid)

    async def _handle_emit(self, message: Dict[str, Any]) -> None:
        if message.get("host_id") == self.host_id and message.get("callback") is None:
            return  # our own emit, already delivered to our sockets
        await super()._handle_emit(message)
