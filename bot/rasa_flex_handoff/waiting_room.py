"""The visitors this Rasa replica keeps informed while they wait for an agent.

Flex tells nobody when a queue moves, so someone has to look: each replica looks for the
conversations whose handoff it started or whose visitor reconnected to it, every
HANDOFF_QUEUE_UPDATE seconds. What it looks at and records lives in the tracker (`Handoff.keep_informed`
decides under the conversation's lock); this set only says whom to look at, and a look that finds the
conversation no longer waiting drops it. A replica that dies loses its set; the visitor's next
reconnect (or REST request) puts them into another replica's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Dict, Optional

logger = logging.getLogger(__name__)

# Looks at one conversation: records and delivers what changed; False once it no longer waits.
Look = Callable[[str], Awaitable[bool]]


class WaitingRoom:
    """Conversation ids waiting for an agent, each looked at every `interval` seconds by one task."""

    def __init__(self, look: Look, interval: float) -> None:
        self.look = look
        self.interval = max(0.05, interval)
        self.waiting: Dict[str, None] = {}  # insertion-ordered: the longest waiting are looked at first
        self._task: Optional[asyncio.Task[None]] = None

    def __contains__(self, sender_id: str) -> bool:
        return sender_id in self.waiting

    def enter(self, sender_id: str) -> None:
        """Keep this visitor informed until they no longer wait (starts the looking task on first use)."""
        self.waiting.setdefault(sender_id, None)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._rounds(), name="handoff-waiting-room")

    async def close(self) -> None:
        """Stop looking (the server stops)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _rounds(self) -> None:
        while self.waiting:
            await asyncio.sleep(self.interval)
            for sender_id in list(self.waiting):
                try:
                    still = await self.look(sender_id)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - one conversation's trouble must not stop the others' updates
                    logger.warning("waiting update failed (%s); tried again next round", type(e).__name__)
                    still = True
                if not still:
                    self.waiting.pop(sender_id, None)
