"""A visitor waiting for an agent: what to tell them as the queue moves, and when to stop waiting.

Pure functions over the tracker's events (Rasa events or their dict form) and what TaskRouter says
about the chat's task, so the connector's waiting room (socket.io, REST) and the relay action
(`rasa shell`, Rasa's own channels) decide alike. What was told is read back from the tracker (the
latest `queue` notice), so every replica agrees and a notice is repeated only when it changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Iterable, Optional, Reversible, Sequence

from rasa_flex_handoff import handoff

QUEUE_EVENT = "queue"
NOT_ACCEPTED_EVENT = "not_accepted"


class Verdict(Enum):
    """What the latest look at the queue means for the visitor."""

    NOTHING = "nothing"  # nothing new to tell
    TELL = "tell"  # their place in line or the estimate changed
    GIVE_UP = "give_up"  # nobody accepted in time, or Flex dropped the task: close the chat, offer the choices


@dataclass(frozen=True)
class Place:
    """The visitor's place in line as told: position (1 = next) and the estimate in whole minutes (None: no estimate)."""

    position: int
    minutes: Optional[int] = None


def minutes(eta_seconds: Optional[float]) -> Optional[int]:
    """An estimate in whole minutes as the visitor reads it (at least 1: "about 0 min" helps nobody)."""
    if eta_seconds is None or eta_seconds < 0:
        return None
    return max(1, math.ceil(eta_seconds / 60))


def _fields(event: Any) -> Any:
    return event if isinstance(event, dict) else event.as_dict()


def _kind(event: Any) -> Optional[str]:
    return event.get("event") if isinstance(event, dict) else getattr(event, "type_name", None)


def waiting_since(events: Reversible[Any]) -> Optional[float]:
    """When the visitor started waiting for an agent: the latest `handoff_status = pending` (a handoff, or a transfer)."""
    for raw in reversed(events):
        if _kind(raw) != "slot":
            continue
        event = _fields(raw)
        if event.get("name") != handoff.STATUS_SLOT:
            continue
        if event.get("value") != handoff.PENDING or not event.get("timestamp"):
            return None
        return float(event["timestamp"])
    return None


def last_told(events: Iterable[Any], since: Optional[float]) -> Optional[Place]:
    """The place in line the visitor was last told since `since` (None: not told yet)."""
    told: Optional[Place] = None
    for raw in events:
        if _kind(raw) != "bot":
            continue
        event = _fields(raw)
        if since is not None and float(event.get("timestamp") or 0) < since:
            continue
        meta = ((event.get("metadata") or {}).get("handoff")) or {}
        if meta.get("event") == QUEUE_EVENT and isinstance(meta.get("position"), int):
            told = Place(meta["position"], minutes(meta.get("eta_seconds")))
    return told


def judge(
    *,
    state: str,
    position: Optional[int],
    eta_seconds: Optional[float],
    since: Optional[float],
    now: float,
    timeout: float,
    told: Optional[Place],
) -> Verdict:
    """What to do after a look at the queue.

    `state` is TaskRouter's view of the chat's task: "waiting" (pending or reserved), "assigned"
    (an agent took it; their join notice comes with the webhook) or "gone" (canceled, e.g. the
    workflow's timeout, or closed). `timeout` (HANDOFF_ACCEPT_TIMEOUT, 0 = none) counts from `since`.
    A task not routed yet (`position` None) is only timed out.
    """
    if state == "gone":
        return Verdict.GIVE_UP
    if state != "waiting":
        return Verdict.NOTHING
    if timeout > 0 and since is not None and now - since >= timeout:
        return Verdict.GIVE_UP
    if position is None:
        return Verdict.NOTHING
    return Verdict.NOTHING if told == Place(position, minutes(eta_seconds)) else Verdict.TELL


def verdict_on(place: Any, events: Sequence[Any], now: float, timeout: float) -> Verdict:
    """`judge` a look at the queue (`place`: `flex.taskrouter.Waiting`) for a conversation with these events."""
    since = waiting_since(events)
    return judge(
        state=place.state,
        position=place.position,
        eta_seconds=place.eta_seconds,
        since=since,
        now=now,
        timeout=timeout,
        told=last_told(events, since),
    )


@dataclass(frozen=True)
class QueueNotice:
    """The words and metadata that tell the visitor their place: a domain response, its variables, the turn's metadata."""

    response: str
    variables: Dict[str, str]
    metadata: Dict[str, Any]


def queue_notice(position: int, eta_seconds: Optional[float], channel_sid: str) -> QueueNotice:
    """The notice telling the visitor they are `position` in line, with the estimate when Flex has one."""
    wait = minutes(eta_seconds)
    return QueueNotice(
        response=handoff.UTTER_QUEUE if wait is not None else handoff.UTTER_QUEUE_POSITION,
        variables={"position": str(position), **({"minutes": str(wait)} if wait is not None else {})},
        metadata=handoff.handoff_metadata(
            "system",
            event=QUEUE_EVENT,
            position=position,
            eta_seconds=int(eta_seconds) if eta_seconds is not None else None,
            channel_sid=channel_sid,
        ),
    )
