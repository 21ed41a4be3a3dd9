"""A webhook storm on one handed-off chat: thousands of validly signed Flex events, concurrently and out of order.

Flex retries a webhook it thinks failed, so the same message can come several times, late,
and interleaved with other events. Whatever the order and the concurrency: each distinct agent
message is recorded once and delivered once, in the order it was recorded; retries and repeated
joins change nothing; no request fails; and the server keeps serving other visitors meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlencode

import pytest
import requests
from twilio.request_validator import RequestValidator

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import wait_for
from northwind.servers import Stack
from tests.handoff.conftest import Visitor, handed_off
from tests.handoff.fuzz.guard import LogWatch
from tests.handoff.test_webhooks import agent_message_form, webhook_url

pytestmark = [pytest.mark.parametrize("stack", ["conversations"], indirect=True), pytest.mark.timeout(600)]

DISTINCT = 600  # distinct agent messages
MAX_COPIES = 7  # each is posted 1..MAX_COPIES times (Flex's retries)
JOIN_COPIES = 150  # one new agent joining, announced that many times
WORKERS = 24  # concurrent posters
SEED = 13  # a fixed shuffle and copy count: the same storm on every run


def storm_sid(i: int) -> str:
    return f"IM{i:032x}"


def handoff_of(item: Dict[str, Any]) -> Dict[str, Any]:
    return (item.get("metadata") or {}).get("handoff") or {}


def storm(stack: Stack, channel_sid: str) -> List[Dict[str, str]]:
    """The events, shuffled: every message 1..MAX_COPIES times (retry counts differ), and a join repeated."""
    rng = random.Random(SEED)
    events: List[Dict[str, str]] = []
    for i in range(DISTINCT):
        form = agent_message_form(stack, channel_sid, storm_sid(i), f"storm {i:04d}", 1000 + i)
        events += [{**form, "RetryCount": str(retry)} for retry in range(rng.randint(1, MAX_COPIES))]
    join = {
        "EventType": "onParticipantAdded",
        "ConversationSid": channel_sid,
        "ParticipantSid": "MB" + "b" * 32,
        "Identity": "bob",
        "RetryCount": "0",
    }
    events += [dict(join) for _ in range(JOIN_COPIES)]
    rng.shuffle(events)
    return events


class Poster:
    """Posts signed webhooks from many threads, one HTTP session each; counts what was answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.validator = RequestValidator(DEVELOPMENT.auth_token)
        self.local = threading.local()
        self.statuses: List[int] = []
        self.lock = threading.Lock()

    def post(self, form: Dict[str, str]) -> None:
        session: Optional[requests.Session] = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.validator.compute_signature(self.url, form),
        }
        status = session.post(self.url, data=urlencode(form), headers=headers, timeout=120).status_code
        with self.lock:
            self.statuses.append(status)

    @property
    def answered(self) -> int:
        with self.lock:
            return len(self.statuses)


def timed(what: Callable[[], Any]) -> Tuple[Any, float]:
    started = time.monotonic()
    return what(), time.monotonic() - started


def test_webhook_storm_is_absorbed(stack: Stack, visitors) -> None:
    visitor: Visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    other: Visitor = visitors()  # with the bot, while the storm goes on
    assert stack.rasa is not None
    log = LogWatch(stack.rasa.log_path)

    events = storm(stack, task["channel_sid"])
    poster = Poster(webhook_url(stack, visitor.session_id))
    pool = ThreadPoolExecutor(WORKERS)
    started = time.monotonic()
    futures = [pool.submit(poster.post, form) for form in events]
    try:
        # Another visitor's bot turn, once the storm is well under way: it is answered meanwhile.
        wait_for(lambda: poster.answered >= len(events) // 10, 120, "the storm under way")
        mark = len(other.messages)
        other.say("hi")
        _, turn_seconds = timed(lambda: other.wait_for(lambda m: bool(m.get("text")), "the bot's answer", 120, start=mark))
        answered_during = poster.answered
        for future in futures:
            future.result(timeout=300)  # raises what a poster raised (e.g. a connection reset)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    storm_seconds = time.monotonic() - started
    print(
        f"\nstorm: {len(events)} webhooks ({DISTINCT} distinct messages) in {storm_seconds:.1f}s with {WORKERS} posters; "
        f"another visitor's bot turn took {turn_seconds:.2f}s, answered after {answered_during} webhooks"
    )
    assert answered_during < len(events), (
        "the other visitor was answered only after the storm: nothing shows it was served meanwhile"
    )
    assert sorted(set(poster.statuses)) == [204], {s: poster.statuses.count(s) for s in set(poster.statuses)}

    sids = {storm_sid(i) for i in range(DISTINCT)}
    tracker_events = stack.tracker(visitor.session_id)["events"]
    recorded = [handoff_of(e).get("message_sid") for e in tracker_events if e["event"] == "bot"]
    recorded = [sid for sid in recorded if sid in sids]
    assert len(recorded) == len(set(recorded)) == DISTINCT, f"{len(recorded)} recorded, {len(set(recorded))} distinct"

    def delivered() -> List[str]:
        return [m.get("message_sid") for m in list(visitor.messages) if m.get("message_sid") in sids]

    wait_for(lambda: len(delivered()) >= DISTINCT, 60, "every storm message delivered")
    assert delivered() == recorded, "the visitor got the agent's messages more than once or not in the order they were recorded"

    def bob_joined(item: Dict[str, Any]) -> bool:
        """An `agent_joined` notice for bob (the tracker keeps the agent as recorded, the payload as `{"name"}`)."""
        return item.get("event") == "agent_joined" and "bob" in str(item.get("agent"))

    assert len([e for e in tracker_events if bob_joined(handoff_of(e))]) == 1
    wait_for(lambda: [m for m in visitor.messages if bob_joined(m)], 10, "bob's join shown")
    assert len([m for m in visitor.messages if bob_joined(m)]) == 1
    # Nothing of the storm reached the other visitor, and the server logged no failure.
    assert not [m for m in other.messages if m.get("message_sid") in sids or m.get("sender") == "agent"]
    failures = log.failures()
    assert not failures, failures[-4000:]
