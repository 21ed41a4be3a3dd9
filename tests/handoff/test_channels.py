"""Restart, concurrent visitors, the REST channel and the polling path used by `rasa shell`."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Dict

import pytest

from northwind.processes import free_port, wait_for
from northwind.servers import AGENT, AgentDesk, Stack
from rasa_flex_handoff.handoff import OPENING_MESSAGE
from tests.handoff.conftest import Visitor, handed_off, stream


@pytest.fixture
def own_stack(request: pytest.FixtureRequest, sandbox: AgentDesk, handoff_model: Path, tmp_path: Path):
    """A private stack (this test restarts its Rasa server), in the same mode as `stack` would be."""
    mode = request.param
    s = Stack(mode, sandbox, handoff_model, tmp_path).start()
    yield s
    s.stop()


@pytest.mark.parametrize("own_stack", ["conversations", "legacy"], indirect=True)
def test_rasa_restart_mid_handoff_continues_the_chat(own_stack: Stack) -> None:
    stack = own_stack
    visitor = Visitor(stack.url)
    try:
        task = handed_off(stack, visitor)
        stack.sandbox.accept(task["sid"])
        visitor.say("before restart")
        wait_for(lambda: any(m["body"] == "before restart" for m in stack.sandbox.transcript(task["sid"])), 15, "relayed")
        session_id = visitor.session_id
    finally:
        visitor.close()

    stack.restart_rasa()  # same port, same SQLite tracker store; nothing in memory survives

    visitor = Visitor(stack.url, session_id)
    try:
        assert visitor.session_id == session_id
        stack.sandbox.send(task["sid"], "after restart from the agent")
        visitor.wait_for(lambda m: m.get("text") == "after restart from the agent", "agent message after restart")
        visitor.say("after restart from the visitor")
        wait_for(
            lambda: any(m["body"] == "after restart from the visitor" for m in stack.sandbox.transcript(task["sid"])),
            15,
            "visitor message relayed after restart",
        )
        stack.sandbox.end(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot resumed after restart")
    finally:
        visitor.close()


def test_two_concurrent_visitors_never_see_each_others_messages(stack: Stack, visitors) -> None:
    anna, bert = visitors(), visitors()
    tasks = {}
    for who, v in (("anna", anna), ("bert", bert)):
        tasks[who] = handed_off(stack, v)
        stack.sandbox.accept(tasks[who]["sid"], agent=f"agent-{who}")
    assert tasks["anna"]["channel_sid"] != tasks["bert"]["channel_sid"]
    for n in range(3):
        anna.say(f"anna {n}")
        bert.say(f"bert {n}")
        stack.sandbox.send(tasks["anna"]["sid"], f"to anna {n}", agent="agent-anna")
        stack.sandbox.send(tasks["bert"]["sid"], f"to bert {n}", agent="agent-bert")
    for who, v in (("anna", anna), ("bert", bert)):
        wait_for(
            lambda v=v, who=who: (
                [m["text"] for m in v.messages if m.get("sender") == "agent"] == [f"to {who} {n}" for n in range(3)]
            ),
            15,
            f"{who}'s agent messages",
        )
        wait_for(
            lambda who=who: (
                [m["body"] for m in stack.sandbox.transcript(tasks[who]["sid"]) if m["role"] == "customer"]
                == [OPENING_MESSAGE] + [f"{who} {n}" for n in range(3)]
            ),
            15,
            f"{who}'s lines at her/his agent",
        )
    assert not any("bert" in (m.get("text") or "") for m in anna.messages)
    assert not any("anna" in (m.get("text") or "") for m in bert.messages)


def poll_rest(stack: Stack, sender: str, predicate, what: str, timeout: float = 20) -> Dict[str, Any]:
    return wait_for(lambda: next((m for m in stack.rest_messages(sender)["messages"] if predicate(m)), None), timeout, what)


def test_rest_channel_handoff(stack: Stack) -> None:
    sender = f"rest-{uuid.uuid4().hex}"
    assert any("Northwind" in m.get("text", "") for m in stack.rest(sender, "/greet"))
    replies = stack.rest(sender, "/talk_to_agent", metadata={"handoff_access_token": True})
    assert any(m.get("event") == "connecting" and m.get("chat", {}).get("token") for m in replies)
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])

    assert stack.rest(sender, "hello over rest") == []  # relayed, nothing to say now
    wait_for(lambda: any(m["body"] == "hello over rest" for m in stack.sandbox.transcript(task["sid"])), 10, "relayed")
    stack.sandbox.send(task["sid"], "agent over rest")
    message = poll_rest(stack, sender, lambda m: m.get("body") == "agent over rest", "agent message in history")
    assert message["sender"] == "agent" and message["agent"]["name"] == AGENT
    since = stack.rest_messages(sender)["next"]
    stack.sandbox.end(task["sid"])
    wait_for(
        lambda: any(m.get("event") == "bot_resumed" for m in stack.rest_messages(sender, since)["messages"]), 15, "bot resumed"
    )
    assert any("Visa" in m.get("text", "") for m in stack.rest(sender, "/ask_payment"))


def test_shell_path_polls_flex_within_the_turn(stack: Stack) -> None:
    sender = f"shell-{uuid.uuid4().hex}"
    replies = stream(stack, sender, "/talk_to_agent")
    texts = [m.get("text", "") for m in replies]
    assert any("Connecting you to an agent" in t for t in texts)
    assert not any("custom" in m for m in replies)  # no raw token JSON in the terminal
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "agent waiting for you")

    # The agent spoke before the visitor's turn: shown with the next line, without waiting.
    started = time.monotonic()
    replies = stream(stack, sender, "hello from the terminal")
    assert [m["text"] for m in replies] == [f"{AGENT}: agent waiting for you"]
    assert time.monotonic() - started < 3
    wait_for(lambda: any(m["body"] == "hello from the terminal" for m in stack.sandbox.transcript(task["sid"])), 5, "relayed")

    # Nothing from the agent within HANDOFF_SHELL_WAIT (4 s in tests): a short note instead.
    replies = stream(stack, sender, "anyone there?")
    assert [m["text"] for m in replies] == [
        "(Sent to the agent. Their reply will show up here, at the latest with your next message.)"
    ]
    # The agent replies later; it shows with the next line, and is never shown twice.
    stack.sandbox.send(task["sid"], "sorry, I was away")
    replies = stream(stack, sender, "ok")
    assert [m["text"] for m in replies] == [f"{AGENT}: sorry, I was away"]

    # The agent ends the chat; the terminal learns it with the visitor's next line, which the bot then answers.
    stack.sandbox.end(task["sid"])
    replies = stream(stack, sender, "what are your opening hours?")
    texts = [m["text"] for m in replies]
    assert texts[:2] == ["The agent has ended the chat.", "You're back with the bot. How else can I help?"]
    assert len(texts) == 3 and "Monday to Friday" in texts[2], texts
    assert stack.tracker(sender)["slots"]["handoff_status"] is None
    assert not any(m["body"] == "what are your opening hours?" for m in stack.sandbox.transcript(task["sid"]))
    assert any("Visa" in m.get("text", "") for m in stream(stack, sender, "/ask_payment"))


def test_shell_path_end_chat(stack: Stack) -> None:
    sender = f"shell-{uuid.uuid4().hex}"
    stream(stack, sender, "/talk_to_agent")
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    replies = stream(stack, sender, "/end_chat")
    assert [m["text"] for m in replies] == [
        "You have left the chat with the agent.",
        "You're back with the bot. How else can I help?",
    ]
    wait_for(lambda: stack.sandbox.task_for(task["channel_sid"])["status"] not in ("pending", "accepted"), 10, "Flex task ended")


def test_stock_rest_channel_polls_and_never_gets_the_token(stack: Stack) -> None:
    sender = f"stock-rest-{uuid.uuid4().hex}"
    # Rasa's own channels pass client metadata through: asking, or claiming our connector's capabilities, gets nothing.
    forged = {"handoff_access_token": True, "handoff_connector": {"webhook_path": "/webhooks/rest/flex", "access_token": True}}
    replies = stream(stack, sender, "/talk_to_agent", input_channel="rest", metadata=forged)
    texts = [m.get("text") or "" for m in replies]
    assert texts[0] == "Connecting you to an agent. Please hold on, someone will be with you shortly.", replies
    assert len(texts) == 2 and texts[1].startswith("You're number "), replies  # the place in line
    assert not any("custom" in m for m in replies)
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "hi stock rest")
    assert [m["text"] for m in stream(stack, sender, "hello", input_channel="rest")] == [f"{AGENT}: hi stock rest"]


@pytest.mark.parametrize("own_stack", ["conversations"], indirect=True)
def test_a_replica_that_never_saw_the_visitor_handles_the_webhooks(own_stack: Stack) -> None:
    """No in-memory routing: Flex posts to replica B, the visitor talks to replica A (REST)."""
    stack = own_stack
    # The public URL (what Flex posts to) leads to replica B, as a load balancer might route it.
    port = free_port()
    replica_url = f"http://127.0.0.1:{port}"
    stack.env["PUBLIC_URL"] = replica_url
    stack.actions.stop()
    stack.actions.env["PUBLIC_URL"] = replica_url
    stack.actions.start()
    replica = stack.start_replica(port)
    try:
        sender = f"replica-{uuid.uuid4().hex}"
        stack.rest(sender, "/talk_to_agent")
        channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
        task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
        stack.sandbox.accept(task["sid"])
        stack.sandbox.send(task["sid"], "answer via the other replica")
        poll_rest(stack, sender, lambda m: m.get("body") == "answer via the other replica", "agent message seen on replica A")
        delivered = f"agent message delivered for Flex chat {channel_sid}"
        assert delivered in replica.tail(400) and delivered not in stack.rasa.tail(400)
        assert stack.rest(sender, "visitor on replica A") == []
        wait_for(lambda: any(m["body"] == "visitor on replica A" for m in stack.sandbox.transcript(task["sid"])), 10, "relayed")
    finally:
        replica.stop()


def test_a_renamed_subclass_of_the_channel_gets_webhooks_and_no_unasked_token(stack: Stack) -> None:
    """Capabilities come from the connector class, not from its name: `support_chat` is our REST channel renamed."""
    sender = f"renamed-{uuid.uuid4().hex}"
    replies = stack.rest(sender, "/talk_to_agent", channel="support_chat")
    connecting = next(m for m in replies if m.get("event") == "connecting")
    assert "chat" not in connecting  # the client did not ask for the token
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "to the renamed channel")
    # Nothing polls Flex on this path: the agent's message is in the tracker only if its webhook
    # reached /webhooks/support_chat/flex.
    message = wait_for(
        lambda: next(
            (
                m
                for m in stack.rest_messages(sender, channel="support_chat")["messages"]
                if m.get("body") == "to the renamed channel"
            ),
            None,
        ),
        15,
        "agent message by webhook",
    )
    assert message["sender"] == "agent"
    stack.sandbox.end(task["sid"])


def close_without_telling_rasa(stack: Stack, task: Dict[str, Any]) -> None:
    """The agent ends the chat and its close webhook is lost: the chat's webhooks are removed first (Twilio SDK)."""
    client = stack.sandbox.server.client
    if task["mode"] == "conversations":
        hooks = client.conversations.v1.conversations(task["channel_sid"]).webhooks
    else:
        hooks = client.chat.v2.services(task["service_sid"]).channels(task["channel_sid"]).webhooks
    for hook in hooks.list():
        hooks(hook.sid).delete()
    stack.sandbox.end(task["sid"])


def test_a_message_that_finds_the_chat_closed_is_answered_by_the_bot(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    close_without_telling_rasa(stack, task)
    assert stack.tracker(visitor.session_id)["slots"]["handoff_status"] is not None  # Rasa has not heard

    mark = len(visitor.messages)
    visitor.say("what are your opening hours?")
    answer = visitor.wait_for_text("Monday to Friday", start=mark)
    said = [m.get("event") or m.get("text") for m in visitor.messages[mark:]]
    assert said[:3] == ["chat_closed", "bot_resumed", answer["text"]], said
    assert not any(m["body"] == "what are your opening hours?" for m in stack.sandbox.transcript(task["sid"]))
    events = stack.tracker(visitor.session_id)["events"]
    assert [e["text"] for e in events if e["event"] == "user"][-1] == "what are your opening hours?"
    assert stack.tracker(visitor.session_id)["slots"]["handoff_status"] is None


def test_a_rest_message_that_finds_the_chat_closed_is_answered_by_the_bot(stack: Stack) -> None:
    sender = f"rest-closed-{uuid.uuid4().hex}"
    stack.rest(sender, "/talk_to_agent")
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    close_without_telling_rasa(stack, task)
    replies = stack.rest(sender, "what are your opening hours?")
    said = [m.get("event") or m.get("text") for m in replies]
    assert said[:2] == ["chat_closed", "bot_resumed"] and len(said) == 3 and "Monday to Friday" in said[2], said
    history = [(m["sender"], m.get("event") or m["text"]) for m in stack.rest_messages(sender)["messages"]]
    assert history.count(("visitor", "what are your opening hours?")) == 1
