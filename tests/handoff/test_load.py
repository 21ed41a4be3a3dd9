"""A handed-off visitor flooding the relay, and a handoff in a conversation thousands of events long (issue 13).

Real processes (the shared stack per Flex mode): the flood is bounded at the documented rate
(`chat_state.FLOOD_LIMIT` messages in `FLOOD_WINDOW` seconds) with one notice, while another
visitor's chat carries on; a long conversation hands off, relays both ways and hands back with
every turn recorded once.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any, Dict, List

from northwind.processes import wait_for
from northwind.servers import Stack
from rasa_flex_handoff.chat_state import FLOOD_LIMIT, FLOOD_WINDOW
from tests.handoff.conftest import handed_off

FLOOD = 100  # messages the flooding visitor sends, at about 100 a second


def customer_lines(stack: Stack, task_sid: str, prefix: str) -> List[str]:
    return [m["body"] for m in stack.sandbox.transcript(task_sid) if m["role"] == "customer" and m["body"].startswith(prefix)]


def test_a_flooding_visitor_is_bounded_with_one_notice_and_others_carry_on(stack: Stack, visitors) -> None:
    flooder, other = visitors(), visitors()
    flood_task, other_task = handed_off(stack, flooder), handed_off(stack, other)
    stack.sandbox.accept(flood_task["sid"])
    stack.sandbox.accept(other_task["sid"])
    flooder.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    other.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    start = len(flooder.messages)

    began = time.monotonic()
    for n in range(FLOOD):
        flooder.say(f"flood {n}")
        if n % 20 == 19:
            other.say(f"meanwhile {n // 20}")  # the other visitor chats during the flood, within the rate
        time.sleep(0.01)  # pacing the sender at ~100/s, not waiting for an outcome
    sent_in = time.monotonic() - began
    assert sent_in < FLOOD_WINDOW, "the flood must fit in one window for the count below"

    # The other visitor's five messages all reach their agent, in order.
    expected_other = [f"meanwhile {n}" for n in range(FLOOD // 20)]
    wait_for(lambda: customer_lines(stack, other_task["sid"], "meanwhile") == expected_other, 30, "the other visitor's lines")
    # The flooder's first FLOOD_LIMIT reach the agent (the handoff request counts as one), in order; no more.
    notice = flooder.wait_for(lambda m: m.get("event") == "too_fast", "the too-fast notice", start=start)
    assert notice["sender"] == "system" and "faster" in notice["text"]
    # Once the window has passed, the visitor is relayed again; relays of one conversation take
    # turns in order (Rasa's ticket lock), so when this one arrives every flood message is settled.
    time.sleep(max(0.0, began + sent_in + FLOOD_WINDOW - time.monotonic()))  # the rule is about time: let it pass
    flooder.say("after the flood")
    wait_for(lambda: customer_lines(stack, flood_task["sid"], "after the flood"), 30, "the message after the flood")
    relayed = customer_lines(stack, flood_task["sid"], "flood")
    assert 0 < len(relayed) <= FLOOD_LIMIT
    assert relayed == [f"flood {n}" for n in range(len(relayed))]
    # One notice for the whole window, and the tracker holds exactly what was relayed.
    assert sum(1 for m in flooder.messages[start:] if m.get("event") == "too_fast") == 1
    events = stack.tracker(flooder.session_id)["events"]
    recorded = [e["text"] for e in events if e.get("event") == "user" and e.get("text", "").startswith("flood")]
    assert recorded == relayed
    assert customer_lines(stack, flood_task["sid"], "after") == ["after the flood"]


def append_events(stack: Stack, sender_id: str, events: List[Dict[str, Any]]) -> None:
    """Rasa's HTTP API (`--enable-api`): a conversation grown to length as its own turns would have."""
    request = urllib.request.Request(
        f"{stack.url}/conversations/{sender_id}/tracker/events?include_events=NONE",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        r.read()


def test_a_handoff_in_a_conversation_of_thousands_of_events(stack: Stack, visitors) -> None:
    visitor = visitors()
    visitor.say("/greet")
    visitor.wait_for_text("Northwind assistant")
    history: List[Dict[str, Any]] = []
    began = time.time() - 3600  # an hour of conversation before
    for n in range(1000):  # 3,000 events: a very long support conversation
        at = began + n
        history += [
            {
                "event": "user",
                "timestamp": at,
                "text": f"earlier question {n}",
                "parse_data": {"intent": {"name": "greet", "confidence": 1.0}},
            },
            {"event": "bot", "timestamp": at, "text": f"earlier answer {n}"},
            {"event": "action", "timestamp": at, "name": "action_listen"},
        ]
    append_events(stack, visitor.session_id, history)
    assert len(stack.tracker(visitor.session_id)["events"]) > 3000

    task = handed_off(stack, visitor, timeout=60)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined", timeout=30)
    for n in range(5):
        visitor.say(f"long visitor {n}")
        stack.sandbox.send(task["sid"], f"long agent {n}")
    wait_for(
        lambda: customer_lines(stack, task["sid"], "long visitor") == [f"long visitor {n}" for n in range(5)],
        30,
        "visitor lines at the agent",
    )
    wait_for(
        lambda: [m.get("text") for m in visitor.messages if m.get("sender") == "agent"] == [f"long agent {n}" for n in range(5)],
        30,
        "agent lines at the visitor",
    )
    stack.sandbox.end(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot resumed", timeout=30)
    events = stack.tracker(visitor.session_id)["events"]
    said = [e["text"] for e in events if e.get("event") == "user" and e.get("text", "").startswith("long visitor")]
    handoff_turns = [((e.get("metadata") or {}).get("handoff") or {}) for e in events if e.get("event") == "bot"]
    agent = [turn["body"] for turn in handoff_turns if turn.get("role") == "agent"]
    assert said == [f"long visitor {n}" for n in range(5)]
    assert agent == [f"long agent {n}" for n in range(5)]
