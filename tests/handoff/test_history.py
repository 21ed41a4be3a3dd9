"""The socket.io history endpoint, and catch-up of what Flex could not deliver while Rasa was down."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from northwind.processes import wait_for
from northwind.servers import AGENT, AgentDesk, Stack, flat
from tests.handoff.conftest import Visitor, handed_off, stream


def history(stack: Stack, session_id: str) -> Tuple[int, Dict[str, Any]]:
    """Status and body of `GET /webhooks/handoff_socketio/history/<id>`, as the widget calls it."""
    url = f"{stack.url}/webhooks/handoff_socketio/history/{session_id}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=15) as r:
            body = json.loads(r.read())
            return r.status, {**body, "messages": [flat(m) for m in body["messages"]]}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def who_said(messages: List[Dict[str, Any]]) -> List[Tuple[str, str]]:
    """Who said what: (sender, the event of a notice or the text), for history entries and socket payloads alike."""
    return [(m.get("sender"), m.get("event") or m.get("text")) for m in messages]


def turns(body: Dict[str, Any]) -> List[Tuple[str, str]]:
    return who_said(body["messages"])


def agent_turns(stack: Stack, session_id: str, text: str) -> List[Dict[str, Any]]:
    """Tracker events recording the agent's `text`."""
    return [
        e
        for e in stack.tracker(session_id)["events"]
        if e["event"] == "bot"
        and (e.get("metadata") or {}).get("handoff", {}).get("role") == "agent"
        and e["metadata"]["handoff"].get("body") == text
    ]


def webhooks_given_up(desk: AgentDesk) -> None:
    """Wait until the sandbox has no webhook delivery left (it retried and gave up while Rasa was down)."""
    wait_for(lambda: desk.request("GET", "/sandbox/webhooks/pending")["pending"] == 0, 20, "sandbox webhook retries exhausted")


def while_rasa_is_down(stack: Stack, *steps: Callable[[], Any]) -> None:
    """Stop the Rasa server, do `steps` on the Flex side, let the sandbox give up on their webhooks, start Rasa again."""
    assert stack.rasa is not None
    stack.rasa.stop()
    for step in steps:
        step()
    webhooks_given_up(stack.sandbox)
    stack.start_rasa()


def test_history_has_visitor_bot_agent_and_system_turns_in_order(stack: Stack, visitors) -> None:
    visitor = visitors()
    visitor.say("/greet")
    visitor.wait_for_text("Northwind assistant")
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    visitor.say("history visitor line")
    wait_for(lambda: any(m["body"] == "history visitor line" for m in stack.sandbox.transcript(task["sid"])), 15, "relayed")
    stack.sandbox.send(task["sid"], "history agent line")
    live = visitor.wait_for(lambda m: m.get("text") == "history agent line", "agent line")

    status, body = history(stack, visitor.session_id)
    assert status == 200 and body["session_id"] == visitor.session_id
    said = turns(body)
    expected = [
        ("visitor", "/greet"),
        ("bot", said[1][1]),
        ("visitor", "/talk_to_agent"),
        ("system", "connecting"),
        ("system", "agent_joined"),
        ("visitor", "history visitor line"),
        ("agent", "history agent line"),
    ]
    assert [t for t in said if t in expected] == expected, said
    greeting = body["messages"][1]
    assert "Northwind assistant" in greeting["text"]
    assert {"content_type": "text", "title": "Talk to an agent", "payload": "/talk_to_agent"} in greeting["quick_replies"]
    joined = next(m for m in body["messages"] if m.get("event") == "agent_joined")
    assert joined["agent"] == {"name": AGENT} and AGENT in joined["text"]
    agent = next(m for m in body["messages"] if m["sender"] == "agent")
    keys = ("text", "sender", "agent", "body", "message_sid", "timestamp")
    assert {k: agent[k] for k in keys} == {k: live[k] for k in keys}
    assert agent["wire"]["text"] == live["wire"]["text"] == f"{AGENT}: history agent line"
    assert all(m.get("timestamp") for m in body["messages"])


def test_history_of_unknown_or_other_channel_sessions_is_not_served(stack: Stack) -> None:
    status, body = history(stack, uuid.uuid4().hex)
    assert status == 404 and body["messages"] == []
    # A conversation of another channel (e.g. REST, where ids may be guessable) is not readable here.
    sender = f"rest-{uuid.uuid4().hex}"
    stack.rest(sender, "/greet")
    status, body = history(stack, sender)
    assert status == 404 and body["messages"] == []


@pytest.fixture(scope="module", params=["conversations", "legacy"])
def restartable(request: pytest.FixtureRequest, sandbox: AgentDesk, handoff_model: Path, tmp_path_factory) -> Iterator[Stack]:
    """A private stack per Flex mode whose Rasa server the tests stop and start."""
    s = Stack(request.param, sandbox, handoff_model, tmp_path_factory.mktemp(f"catch-up-{request.param}")).start()
    yield s
    s.stop()


def accepted_visitor(stack: Stack) -> Tuple[Dict[str, Any], str]:
    """A visitor handed off to an accepted agent; returns the task and the session id (the visitor has left)."""
    visitor = Visitor(stack.url)
    try:
        task = handed_off(stack, visitor)
        stack.sandbox.accept(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
        return task, visitor.session_id
    finally:
        visitor.close()


def test_agent_message_sent_while_rasa_was_down_reaches_the_visitor_once(restartable: Stack) -> None:
    stack = restartable
    task, session_id = accepted_visitor(stack)
    while_rasa_is_down(stack, lambda: stack.sandbox.send(task["sid"], "written while Rasa was down"))

    visitor: Optional[Visitor] = None
    try:
        visitor = Visitor(stack.url, session_id)  # session_request with the stored id
        missed = visitor.wait_for(lambda m: m.get("text") == "written while Rasa was down", "missed agent message")
        assert missed["sender"] == "agent" and missed["agent"]["name"] == AGENT and missed["message_sid"].startswith("IM")
        # The history call catches up too: nothing new, and it lists the message once.
        status, body = history(stack, session_id)
        assert status == 200
        assert [m["text"] for m in body["messages"] if m["sender"] == "agent"].count("written while Rasa was down") == 1
        # A later message comes by webhook; by then a duplicate of the missed one would have arrived.
        stack.sandbox.send(task["sid"], "after the catch-up")
        visitor.wait_for(lambda m: m.get("text") == "after the catch-up", "agent message by webhook")
        assert visitor.texts().count("written while Rasa was down") == 1
        assert len(agent_turns(stack, session_id, "written while Rasa was down")) == 1
        assert len(agent_turns(stack, session_id, "after the catch-up")) == 1
        slots = stack.tracker(session_id)["slots"]
        assert slots["handoff_status"] == "active" and slots["handoff_last_index"] >= 0
        visitor.say("still relayed after the catch-up")
        wait_for(
            lambda: any(m["body"] == "still relayed after the catch-up" for m in stack.sandbox.transcript(task["sid"])),
            15,
            "relay after the catch-up",
        )
    finally:
        if visitor is not None:
            visitor.close()
        stack.sandbox.end(task["sid"])


def test_chat_closed_while_rasa_was_down_hands_back_to_the_bot(restartable: Stack) -> None:
    stack = restartable
    task, session_id = accepted_visitor(stack)
    while_rasa_is_down(
        stack,
        lambda: stack.sandbox.send(task["sid"], "last words before closing"),
        lambda: stack.sandbox.end(task["sid"]),
    )

    # The widget's history call after the restart finds the chat closed.
    status, body = history(stack, session_id)
    assert status == 200
    said = turns(body)
    tail = said[said.index(("agent", "last words before closing")) :]
    assert tail == [("agent", "last words before closing"), ("system", "chat_closed"), ("system", "bot_resumed")], said
    slots = stack.tracker(session_id)["slots"]
    assert slots["handoff_status"] is None and slots["handoff_channel_sid"] is None

    visitor = Visitor(stack.url, session_id)
    try:
        mark = len(visitor.messages)
        visitor.say("/ask_opening_hours")
        visitor.wait_for_text("Monday to Friday", start=mark)  # the bot answers again
        assert not any(m.get("event") in ("chat_closed", "bot_resumed") for m in visitor.messages)  # recorded once, shown once
        assert turns(history(stack, session_id)[1]).count(("system", "chat_closed")) == 1
    finally:
        visitor.close()


def remove_agent(desk: AgentDesk, task: Dict[str, Any], agent: str = AGENT) -> None:
    """The agent leaves the chat without closing it (Flex 'parks' it), through Twilio's REST API."""
    client = desk.server.client
    if task["mode"] == "conversations":
        participants = client.conversations.v1.conversations(task["channel_sid"]).participants
        sid = next(p.sid for p in participants.list() if p.identity == agent)
        participants(sid).delete()
    else:
        members = client.chat.v2.services(task["service_sid"]).channels(task["channel_sid"]).members
        sid = next(m.sid for m in members.list() if m.identity == agent)
        members(sid).delete()


def test_agent_joining_and_leaving_while_rasa_was_down_is_announced_in_order_once(restartable: Stack) -> None:
    stack = restartable
    first = Visitor(stack.url)
    try:
        task = handed_off(stack, first)  # pending: nobody has accepted yet
        session_id = first.session_id
    finally:
        first.close()

    # The agent accepts and writes: the widget must leave "waiting" and name the agent.
    while_rasa_is_down(
        stack,
        lambda: stack.sandbox.accept(task["sid"]),
        lambda: stack.sandbox.send(task["sid"], "hello from an agent you did not see join"),
    )
    visitor = Visitor(stack.url, session_id)
    try:
        visitor.wait_for(lambda m: m.get("sender") == "agent", "the missed agent message")
        assert who_said(visitor.messages) == [("system", "agent_joined"), ("agent", "hello from an agent you did not see join")]
        assert visitor.messages[0]["agent"]["name"] == AGENT and AGENT in visitor.messages[0]["text"]
        assert stack.tracker(session_id)["slots"]["handoff_status"] == "active"
    finally:
        visitor.close()

    # The last agent leaves without closing the chat (a transfer, or Flex parks it): the visitor waits for the next one.
    while_rasa_is_down(stack, lambda: remove_agent(stack.sandbox, task))
    visitor = Visitor(stack.url, session_id)
    try:
        visitor.wait_for(lambda m: m.get("event") == "transferring", "agent passed the chat on")
        assert who_said(visitor.messages) == [("system", "transferring")]
        assert visitor.messages[0]["agent"]["name"] == AGENT
        assert stack.tracker(session_id)["slots"]["handoff_status"] == "pending"  # waiting again, not closed
    finally:
        visitor.close()

    # Coming back again finds nothing new; history lists each turn once, in order.
    again = Visitor(stack.url, session_id)
    try:
        status, body = history(stack, session_id)
        assert status == 200
        said = turns(body)
        tail = said[said.index(("system", "agent_joined")) :]
        assert tail == [
            ("system", "agent_joined"),
            ("agent", "hello from an agent you did not see join"),
            ("system", "transferring"),
        ]
        assert again.messages == []
    finally:
        again.close()
        stack.sandbox.end(task["sid"])


def rest_history(stack: Stack, sender: str) -> Tuple[int, Dict[str, Any]]:
    """Status and body of the REST channel's `GET /messages?sender=<id>`."""
    url = f"{stack.url}/webhooks/handoff_rest/messages?sender={urllib.parse.quote(sender)}"
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_rest_history_serves_only_conversations_of_its_channel(stack: Stack, visitors) -> None:
    shell_sender = f"shell-{uuid.uuid4().hex}"
    stream(stack, shell_sender, "/greet")  # `rasa shell` (and any other channel) talks through Rasa's own routes
    visitor = visitors()
    visitor.say("/greet")
    visitor.wait_for_text("Northwind assistant")
    rest_sender = f"rest-{uuid.uuid4().hex}"
    stack.rest(rest_sender, "/greet")

    for other in (shell_sender, visitor.session_id, uuid.uuid4().hex, "x" * 300):
        status, body = rest_history(stack, other)
        assert status == 404 and "messages" not in body, other
    status, body = rest_history(stack, rest_sender)
    assert status == 200 and [m["sender"] for m in body["messages"]][:2] == ["visitor", "bot"]


def test_history_never_returns_the_access_token(stack: Stack, visitors) -> None:
    asked = {"handoff_access_token": True}
    rest_sender = f"rest-token-{uuid.uuid4().hex}"
    replies = stack.rest(rest_sender, "/talk_to_agent", metadata=asked)
    rest_token = next(m["chat"]["token"] for m in replies if m.get("event") == "connecting")
    visitor = visitors()
    task = handed_off(stack, visitor, metadata=asked)
    socket_token = next(m["chat"]["token"] for m in visitor.messages if m.get("event") == "connecting")

    status, body = rest_history(stack, rest_sender)
    assert status == 200 and any(m.get("metadata", {}).get("handoff", {}).get("event") == "connecting" for m in body["messages"])
    assert rest_token not in json.dumps(body) and '"chat"' not in json.dumps(body)
    status, body = history(stack, visitor.session_id)
    assert status == 200 and ("system", "connecting") in turns(body)
    assert socket_token not in json.dumps(body)
    stack.sandbox.accept(task["sid"])
    stack.sandbox.end(task["sid"])
