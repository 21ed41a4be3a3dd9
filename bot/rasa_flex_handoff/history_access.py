"""Who may read a conversation's history over a channel: its own visitors, with a bearer token when the channel asks for one."""

from __future__ import annotations

from typing import Any, Optional

from rasa.core.channels.channel import decode_bearer_token
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic.request import Request

# Longer ids are no conversation of ours (Rasa's are 32 hex digits; clients may choose their own).
MAX_SENDER_ID = 256


def usable_sender_id(value: Any) -> Optional[str]:
    """`value` as a conversation id when a tracker store can hold it, else None (the entrances refuse it).

    A client can send any JSON string as its session or sender id, but a lone surrogate
    (`"\\ud800"`: valid JSON, not encodable as UTF-8) or a NUL makes the database driver raise a
    ValueError, which Rasa 3.6's SQL tracker store takes for a missing PostgreSQL schema: it
    exits the whole server. Ids longer than MAX_SENDER_ID are no conversation of ours either.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_SENDER_ID or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def started_on(tracker: DialogueStateTracker, channel: str) -> bool:
    """Whether the visitor wrote over `channel`: other channels' conversations (guessable ids) stay private."""
    return any(isinstance(event, UserUttered) and event.input_channel == channel for event in tracker.events)


def may_read_history(request: Request, sender_id: str, jwt_key: Optional[str], jwt_algorithm: Optional[str]) -> bool:
    """Whether the request may read this conversation's history.

    Without `jwt_key`, whoever holds the conversation id (as with Rasa's own channels). With
    it, a bearer token signed with that key, for this conversation or an admin, the way Rasa's
    HTTP API reads its tokens: `{"user": {"username": <conversation id>}}` or `{"user": {"role": "admin"}}`.
    """
    if not jwt_key:
        return True
    bearer = request.headers.get("Authorization", "")
    claims = decode_bearer_token(bearer, jwt_key, jwt_algorithm or "HS256") if bearer.startswith("Bearer ") else None
    user = (claims or {}).get("user") if isinstance(claims, dict) else None
    if not isinstance(user, dict):
        return False
    return user.get("role") == "admin" or (user.get("username") == sender_id and bool(sender_id))
