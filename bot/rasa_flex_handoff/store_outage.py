"""When the lock store or tracker store cannot be reached: what the entrance routes wait for, and what the visitor is told.

Several replicas share a Redis lock store (and socket.io pub/sub) and a tracker store. When one
of them restarts, a relay or webhook cannot take the conversation's lock or read its tracker.
Nothing was recorded then, so the work can be redone: a Flex webhook waits a little and is
otherwise answered 503 so Flex sends it again (webhooks.py), and a visitor's relayed message is
reported as not delivered, in the bot's words, so they send it again (socketio.py, rest.py).
Either way the log gets one line, not a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import redis.exceptions
import sqlalchemy.exc
from rasa.core.agent import Agent
from rasa.core.lock_store import LockError
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import handoff, notices, payloads
from rasa_flex_handoff.chat_state import Notice

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Reads a conversation's tracker without its lock (`Trackers.read`).
ReadTracker = Callable[[Agent, str], Awaitable[Optional[DialogueStateTracker]]]

# Errors meaning "a store is unreachable right now", raised before anything was recorded:
# Rasa's LockError (Redis refused the ticket, or the lock could not be had), Redis connection
# errors, and a SQL tracker store's lost connection.
UNREACHABLE: Tuple[Type[BaseException], ...] = (
    LockError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    ConnectionError,
)

# How often a waiting webhook tries the stores again.
RETRY_INTERVAL = 0.2


def describe(error: BaseException) -> str:
    """The error on one log line (Rasa's LockError and Redis put newlines in theirs)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


async def retried(attempt: Callable[[], Awaitable[T]], wait: float) -> T:
    """`attempt()`, tried again every RETRY_INTERVAL while a store is unreachable, for up to `wait` seconds.

    The last error is raised when the stores are still away then. Only for work that records
    nothing before it fails this way (a Flex event: the lock comes first, and a repeated event is
    recorded once anyway).
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return await attempt()
        except UNREACHABLE:
            if time.monotonic() + RETRY_INTERVAL > deadline:
                raise
            await asyncio.sleep(RETRY_INTERVAL)


async def relay_failed(agent: Agent, read_tracker: ReadTracker, sender_id: str, output_channel: str) -> List[Dict[str, Any]]:
    """The visitor-facing payloads saying their message did not reach the agent (none if not handed off or unknowable).

    Worded through the bot's domain (`utter_handoff_relay_failed`) for the conversation's state
    read without the lock (`read_tracker`, read once); not recorded, since recording needs the
    lock. Outside a handoff there is no agent to mention: Rasa's own turn would fail on the same
    store, and the log says so.
    """
    try:
        tracker = await read_tracker(agent, sender_id)
    except UNREACHABLE as e:
        logger.warning("visitor message of %s not handled, stores unreachable (%s)", sender_id, describe(e))
        return []
    chat = handoff.chat_from_slots(tracker.current_slot_values()) if tracker is not None else None
    if chat is None or tracker is None:
        logger.warning("visitor message of %s not handled, the lock store is unreachable", sender_id)
        return []
    notice = Notice(handoff.UTTER_RELAY_FAILED, handoff.handoff_metadata("system", event="relay_failed"))
    event = await notices.word(agent, notice, tracker, output_channel)
    turn = payloads.from_bot_event(event.as_dict()) if event is not None else None
    logger.warning("visitor message of %s not relayed to %s, lock store unreachable; visitor told", sender_id, chat.channel_sid)
    return [turn] if turn else []
