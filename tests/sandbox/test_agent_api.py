"""The agent JSON API: tasks for both generations, accept-once, chat through the REST code path (webhooks fire), end."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from northwind.processes import wait_for
from northwind.servers import Sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.webhook_receiver import WebhookReceiver


def task_for(sandbox: Sandbox, channel_sid: str) -> dict:
    tasks = sandbox.agent("GET", "/agent/api/tasks").json()["tasks"]
    return next(t for t in tasks if t["channel_sid"] == channel_sid)


def test_tasks_exist_for_both_generations(sandbox: Sandbox) -> None:
    pre = {"transcript": [{"sender": "user", "text": "help"}], "intent": "human"}
    legacy_sid = new_web_channel(sandbox, "visitor-task", pre)
    chat = new_web_chat(sandbox, pre, customer="Lin")
    legacy = task_for(sandbox, legacy_sid)
    modern = task_for(sandbox, chat.conversation_sid)
    assert legacy["mode"] == "legacy" and modern["mode"] == "conversations"
    assert legacy["status"] == modern["status"] == "pending"
    assert legacy["sid"].startswith("WT") and legacy["customer_friendly_name"] == "Ada Visitor"
    assert modern["customer_friendly_name"] == "Lin" and modern["visitor_identity"] == chat.identity
    assert legacy["pre_engagement_data"] == pre == modern["pre_engagement_data"]
    pending = sandbox.agent("GET", "/agent/api/tasks?status=pending").json()["tasks"]
    assert {legacy["sid"], modern["sid"]} <= {t["sid"] for t in pending}
    assert sandbox.agent("GET", f"/agent/api/tasks/{modern['sid']}").json()["channel_sid"] == chat.conversation_sid
    assert sandbox.agent("GET", "/agent/api/tasks?status=bogus").status_code == 400


def test_only_one_agent_wins_the_accept(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    sid = task_for(sandbox, chat.conversation_sid)["sid"]
    agents = [f"agent-{i}" for i in range(8)]
    with ThreadPoolExecutor(len(agents)) as pool:
        responses = list(pool.map(lambda a: sandbox.agent("POST", f"/agent/api/tasks/{sid}/accept", {"agent": a}), agents))
    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code == 409]
    assert len(winners) == 1 and len(losers) == 7
    winner = winners[0].json()["agent"]
    assert all(f"already accepted by {winner}" in r.json()["error"] for r in losers)
    participants = sandbox.client.conversations.v1.conversations(chat.conversation_sid).participants.list()
    assert sorted(p.identity for p in participants) == sorted([chat.identity, winner])
    # accepting again as the winner is harmless
    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/accept", {"agent": winner}).status_code == 200
    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/accept", {}).status_code == 400


@pytest.mark.parametrize("mode", ["legacy", "conversations"])
def test_agent_chat_and_end_fire_webhooks(mode: str, sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    if mode == "legacy":
        channel_sid = new_web_channel(sandbox, "visitor-agent")
        visitor = "visitor-agent"
        channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(channel_sid)
        channel.webhooks.create(
            type="webhook",
            configuration_url=webhooks.url(hook),
            configuration_filters=["onMessageSent", "onMemberAdded", "onMemberRemoved", "onChannelUpdated"],
        )
        channel.messages.create(from_=visitor, body="I need a human", x_twilio_webhook_enabled="true")
    else:
        chat = new_web_chat(sandbox)
        channel_sid, visitor = chat.conversation_sid, chat.identity
        conversation = sandbox.client.conversations.v1.conversations(channel_sid)
        conversation.webhooks.create(
            target="webhook",
            configuration_url=webhooks.url(hook),
            configuration_filters=["onMessageAdded", "onParticipantAdded", "onParticipantRemoved", "onConversationStateUpdated"],
        )
        conversation.messages.create(author=visitor, body="I need a human", x_twilio_webhook_enabled="true")
    sid = task_for(sandbox, channel_sid)["sid"]

    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/messages", {"agent": "alice", "body": "early"}).status_code == 409
    accepted = sandbox.agent("POST", f"/agent/api/tasks/{sid}/accept", {"agent": "alice"})
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    sent = sandbox.agent("POST", f"/agent/api/tasks/{sid}/messages", {"agent": "alice", "body": "Hi, I'm Alice <b>"})
    assert sent.status_code == 201 and sent.json()["role"] == "agent" and sent.json()["index"] == 1
    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/messages", {"agent": "bob", "body": "intruder"}).status_code == 403
    transcript = sandbox.agent("GET", f"/agent/api/tasks/{sid}/messages").json()["messages"]
    assert [(m["role"], m["body"]) for m in transcript] == [("customer", "I need a human"), ("agent", "Hi, I'm Alice <b>")]
    ended = sandbox.agent("POST", f"/agent/api/tasks/{sid}/end", {"agent": "alice"})
    assert ended.status_code == 200 and ended.json()["status"] == "ended" and ended.json()["ended_by"] == "alice"
    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/messages", {"agent": "alice", "body": "late"}).status_code == 409

    got = webhooks.wait(hook, 5)
    events = [r.params["EventType"] for r in got]
    agent_events = [r for r in got if r.params.get("ClientIdentity") == "alice"]
    assert all(r.params["Source"] == "SDK" for r in agent_events) and len(agent_events) == 4
    if mode == "legacy":
        assert events == ["onMessageSent", "onMemberAdded", "onMessageSent", "onMemberRemoved", "onChannelUpdated"]
        assert got[2].params["From"] == "alice" and got[2].params["Body"] == "Hi, I'm Alice <b>"
        assert json.loads(got[4].params["Attributes"])["status"] == "INACTIVE"
        attributes = json.loads(channel.fetch().attributes)
        assert attributes["status"] == "INACTIVE"
    else:
        assert events == [
            "onMessageAdded",
            "onParticipantAdded",
            "onMessageAdded",
            "onParticipantRemoved",
            "onConversationStateUpdated",
        ]
        assert got[2].params["Author"] == "alice" and got[1].params["Identity"] == "alice"
        assert got[4].params["StateTo"] == "closed"
        assert conversation.fetch().state == "closed"


def test_customer_closing_ends_the_task(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    sandbox.client.conversations.v1.conversations(chat.conversation_sid).update(state="closed")
    task = task_for(sandbox, chat.conversation_sid)
    assert task["status"] == "ended" and task["ended_by"] == "customer"
    assert sandbox.agent("POST", f"/agent/api/tasks/{task['sid']}/accept", {"agent": "late"}).status_code == 409


def test_typing_signals(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    sid = task_for(sandbox, chat.conversation_sid)["sid"]
    ok = sandbox.agent(
        "POST", "/sandbox/typing", {"channel_sid": chat.conversation_sid, "identity": chat.identity, "role": "customer"}
    )
    assert ok.status_code == 200
    assert sandbox.agent("POST", "/sandbox/typing", {"identity": "x"}).status_code == 400
    assert sandbox.agent("POST", f"/agent/api/tasks/{sid}/typing", {"agent": "alice"}).status_code == 200


def test_event_stream_narrows_to_a_channel_and_an_event_type(sandbox: Sandbox) -> None:
    """What the connector reads to relay agent typing: `/sandbox/events?type=typing`, optionally per channel."""
    chat, other = new_web_chat(sandbox), new_web_chat(sandbox)
    task_sid = task_for(sandbox, chat.conversation_sid)["sid"]
    sandbox.agent("POST", f"/agent/api/tasks/{task_sid}/accept", {"agent": "alice"}).raise_for_status()
    received: list = []
    url = f"{sandbox.base_url}/sandbox/events?type=typing&channel_sid={chat.conversation_sid}"
    stream = requests.get(url, stream=True, timeout=(5, 60))

    def read() -> None:
        kind = "message"
        try:
            for line in stream.iter_lines(decode_unicode=True):
                if line and line.startswith("event:"):
                    kind = line[6:].strip()
                elif line and line.startswith("data:") and kind == "message":
                    received.append(json.loads(line[5:]))
                elif not line:
                    kind = "message"
        except (requests.RequestException, AttributeError):
            pass  # closed by the test

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:

        def typing_to(channel_sid: str, identity: str) -> None:
            body = {"channel_sid": channel_sid, "identity": identity, "role": "customer"}
            sandbox.agent("POST", "/sandbox/typing", body).raise_for_status()

        # The stream is live once our own typing shows up in it.
        wait_for(lambda: typing_to(chat.conversation_sid, chat.identity) or received, 10, "stream live")
        mark = len(received)
        typing_to(other.conversation_sid, other.identity)  # another channel
        sandbox.agent("POST", f"/agent/api/tasks/{task_sid}/messages", {"agent": "alice", "body": "hi"}).raise_for_status()
        sandbox.agent("POST", f"/agent/api/tasks/{task_sid}/typing", {"agent": "alice"}).raise_for_status()
        event = wait_for(lambda: next((e for e in received[mark:] if e.get("role") == "agent"), None), 10, "agent typing")
        assert event == {
            "type": "typing",
            "channel_sid": chat.conversation_sid,
            "task_sid": task_sid,
            "identity": "alice",
            "role": "agent",
        }
        assert all(e["type"] == "typing" and e["channel_sid"] == chat.conversation_sid for e in received)
    finally:
        stream.close()
