"""The website path: a socket.io visitor goes from the bot to a Flex agent and back, in both Flex modes."""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Dict, List, Optional

import jwt

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import wait_for
from northwind.servers import AGENT, Stack
from tests.handoff.conftest import handed_off


def applied_events(stack: Stack, sender_id: str) -> List[Dict[str, Any]]:
    """The tracker's events the bot's policies featurize (Rasa's `applied_events`), over Rasa's HTTP API."""
    with urllib.request.urlopen(f"{stack.url}/conversations/{sender_id}/tracker?include_events=APPLIED", timeout=10) as r:
        return json.loads(r.read())["events"]


def is_handoff_turn(event: Dict[str, Any]) -> bool:
    """A turn of the handoff: its request, relayed and /end_chat turns, the handoff actions, agent and system turns, its slots."""
    kind = event["event"]
    if kind == "user":
        return ((event.get("parse_data") or {}).get("intent") or {}).get("name") in ("talk_to_agent", "handoff_relay", "end_chat")
    if kind == "action":
        return event["name"] in ("action_handoff_to_agent", "action_relay_to_agent", "action_end_handoff")
    if kind == "bot":
        return "handoff" in (event.get("metadata") or {})
    return kind == "slot" and event["name"].startswith("handoff_")


def resumed_in_a_new_session(stack: Stack, sender_id: str, first: str) -> None:
    """After the handoff the bot's policies see a new session whose first visitor turn is `first`; the tracker keeps it all."""

    def answered() -> Optional[List[Dict[str, Any]]]:
        found = applied_events(stack, sender_id)
        listening = bool(found) and found[-1]["event"] == "action" and found[-1]["name"] == "action_listen"
        return found if listening and any(e["event"] == "user" for e in found) else None

    applied = wait_for(answered, 10, "the bot's answer recorded")
    assert [e for e in applied if is_handoff_turn(e)] == [], applied
    assert [e["text"] for e in applied if e["event"] == "user"] == [first], applied
    assert [e for e in stack.tracker(sender_id)["events"] if is_handoff_turn(e)] != []  # history keeps the handoff


def test_bot_chat_then_handoff_with_context_relay_and_agent_close(stack: Stack, visitors) -> None:
    visitor = visitors()
    assert visitor.transport == "websocket"
    visitor.say("/greet")
    visitor.wait_for_text("Northwind assistant")
    visitor.say("/ask_shipping")
    visitor.wait_for_text("shipping")

    start = len(visitor.messages)
    task = handed_off(stack, visitor, metadata={"handoff_access_token": True})  # this front end wants the Twilio SDK
    connecting = visitor.wait_for(lambda m: m.get("event") == "connecting", "connecting notice", start=start)
    assert connecting["sender"] == "system" and "Connecting you to an agent" in connecting["text"]
    claims = jwt.decode(connecting["chat"]["token"], DEVELOPMENT.api_secret, algorithms=["HS256"])
    assert claims["grants"]["identity"] == connecting["chat"]["identity"] == task["visitor_identity"]
    assert visitor.session_id not in json.dumps(task)  # Flex never learns the socket room

    # The agent sees the bot transcript, the triggering intent and the slots.
    pre = task["pre_engagement_data"]
    pre = json.loads(pre) if isinstance(pre, str) else pre
    assert pre["intent"] == "talk_to_agent"
    said = [line["text"] for line in pre["transcript"]]
    assert "/ask_shipping" in said and any("shipping" in t.lower() for t in said)

    stack.sandbox.accept(task["sid"])
    joined = visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined notice", start=start)
    assert joined["sender"] == "system" and AGENT in joined["text"]

    # Relay both ways, in order.
    for n in range(3):
        visitor.say(f"visitor line {n}")
    wait_for(
        lambda: (
            [m["body"] for m in stack.sandbox.transcript(task["sid"]) if m["body"].startswith("visitor line")]
            == ["visitor line 0", "visitor line 1", "visitor line 2"]
        ),
        15,
        "visitor lines at the agent, in order",
    )
    for n in range(3):
        stack.sandbox.send(task["sid"], f"agent line {n}")
    wait_for(
        lambda: (
            [m["text"] for m in visitor.messages if m.get("sender") == "agent"]
            == ["agent line 0", "agent line 1", "agent line 2"]
        ),
        15,
        "agent lines at the visitor, in order",
    )
    agent_message = next(m for m in visitor.messages if m.get("sender") == "agent")
    assert agent_message["agent"]["name"] == AGENT and agent_message["message_sid"].startswith("IM")
    assert agent_message["wire"]["text"] == f"{AGENT}: agent line 0"  # a plain Rasa widget shows who spoke
    # The bot did not answer any relayed line.
    assert not any("sorry" in t.lower() for t in visitor.texts()[start:])

    tracker = stack.tracker(visitor.session_id)
    relayed = [e["text"] for e in tracker["events"] if e["event"] == "user" and e["text"].startswith("visitor line")]
    assert relayed == ["visitor line 0", "visitor line 1", "visitor line 2"]  # recorded as the visitor's turns
    agent_turns = [
        e
        for e in tracker["events"]
        if e["event"] == "bot" and (e.get("metadata") or {}).get("handoff", {}).get("role") == "agent"
    ]
    assert [e["text"] for e in agent_turns] == [f"{AGENT}: agent line {n}" for n in range(3)]
    assert [e["metadata"]["handoff"]["body"] for e in agent_turns] == [f"agent line {n}" for n in range(3)]
    assert tracker["slots"]["handoff_status"] == "active"

    # Agent ends the chat: visitor is told, the bot is back and answers again.
    mark = len(visitor.messages)
    stack.sandbox.end(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "chat_closed", "chat closed notice", start=mark)
    visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot resumed notice", start=mark)
    wait_for(lambda: stack.tracker(visitor.session_id)["slots"]["handoff_status"] is None, 10, "handoff slots cleared")
    mark = len(visitor.messages)
    visitor.say("/greet")  # answered as at the start of a conversation, the handoff out of the policies' sight
    visitor.wait_for_text("Northwind assistant", start=mark)
    resumed_in_a_new_session(stack, visitor.session_id, "/greet")
    mark = len(visitor.messages)
    visitor.say("/ask_payment")
    visitor.wait_for_text("Visa", start=mark)


def test_visitor_ends_chat(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    mark = len(visitor.messages)
    visitor.say("/end_chat")
    visitor.wait_for(
        lambda m: "back with the bot" in (m.get("text") or "").lower() or "bot is back" in (m.get("text") or "").lower(),
        "bot back",
        start=mark,
    )
    wait_for(lambda: stack.sandbox.task_for(task["channel_sid"])["status"] not in ("pending", "accepted"), 10, "Flex task ended")
    assert stack.tracker(visitor.session_id)["slots"]["handoff_status"] is None
    mark = len(visitor.messages)
    visitor.say("/ask_returns")
    visitor.wait_for_text("30 days", start=mark)
    resumed_in_a_new_session(stack, visitor.session_id, "/ask_returns")


def test_double_click_creates_one_chat(stack: Stack, visitors) -> None:
    visitor = visitors()
    before = len(stack.sandbox.tasks())
    visitor.say("/talk_to_agent")
    visitor.say("/talk_to_agent")
    visitor.wait_for(lambda m: m.get("event") == "connecting", "handoff")
    channel_sid = wait_for(lambda: stack.tracker(visitor.session_id)["slots"].get("handoff_channel_sid"), 10, "slots")
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    # The second click waited for the first under the conversation lock, then went to the agent.
    wait_for(lambda: [m["body"] for m in stack.sandbox.transcript(task["sid"])].count("/talk_to_agent") == 1, 10, "relayed")
    assert len(stack.sandbox.tasks()) == before + 1
    assert [m.get("event") for m in visitor.messages].count("connecting") == 1


def test_second_request_while_handed_off_creates_no_second_chat(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    before = len([t for t in stack.sandbox.tasks()])
    mark = len(visitor.messages)
    visitor.say("/talk_to_agent")
    # Relayed to the agent like any other line, no new chat.
    wait_for(lambda: any(m["body"] == "/talk_to_agent" for m in stack.sandbox.transcript(task["sid"])), 10, "relayed")
    assert len(stack.sandbox.tasks()) == before
    assert not any(m.get("event") == "connecting" for m in visitor.messages[mark:])


def test_agent_typing_reaches_only_that_visitor_also_after_reconnect(stack: Stack, visitors) -> None:
    first, second = visitors(), visitors()
    task = handed_off(stack, first)
    other_task = handed_off(stack, second)
    stack.sandbox.accept(task["sid"])
    stack.sandbox.accept(other_task["sid"], agent="bob")

    def typing_seen(visitor, sid: str, agent: str = AGENT):
        # The desktop repeats its typing signal while the agent types; so does this.
        stack.sandbox.typing(sid, agent)
        return visitor.agent_typing

    seen = wait_for(lambda: typing_seen(first, task["sid"]), 15, "agent typing at the visitor", interval=0.5)
    assert seen[0] == {"typing": True, "agent": {"name": AGENT}}
    wait_for(lambda: typing_seen(second, other_task["sid"], "bob"), 15, "bob typing at the second visitor", interval=0.5)
    assert all(event["agent"]["name"] == AGENT for event in first.agent_typing)
    assert all(event["agent"]["name"] == "bob" for event in second.agent_typing)

    # A reload: a new socket for the same session gets the agent's typing again.
    session_id = first.session_id
    first.close()
    again = visitors(session_id)
    wait_for(lambda: typing_seen(again, task["sid"]), 15, "agent typing after reconnect", interval=0.5)
    assert all(event["agent"]["name"] == AGENT for event in again.agent_typing)
