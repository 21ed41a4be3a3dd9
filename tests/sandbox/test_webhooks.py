"""Outgoing webhooks: Twilio's fields and signature, filters, X-Twilio-Webhook-Enabled, retries, timeouts, order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from northwind.servers import Sandbox, start_sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.webhook_receiver import WebhookReceiver


def chat_channel(sandbox: Sandbox, sid: str):
    return sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)


def test_chat_message_webhook_is_signed_and_has_twilio_fields(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-hook")
    channel = chat_channel(sandbox, sid)
    webhook = channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent"], configuration_method="POST"
    )
    message = channel.messages.create(
        from_="visitor-hook", body="Hello & welcome", attributes='{"k": 1}', x_twilio_webhook_enabled="true"
    )
    [got] = webhooks.wait(hook, 1)
    assert got.signature_valid and got.method == "POST"
    assert got.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    p = got.params
    assert p["EventType"] == "onMessageSent" and p["ChannelSid"] == sid and p["MessageSid"] == message.sid
    assert p["Body"] == "Hello & welcome" and p["From"] == "visitor-hook" and p["Index"] == "0"
    assert json.loads(p["Attributes"]) == {"k": 1}
    assert p["AccountSid"] == sandbox.settings.account_sid and p["InstanceSid"] == sandbox.chat_service_sid
    assert p["Source"] == "API" and p["RetryCount"] == "0" and p["WebhookSid"] == webhook.sid and p["WebhookType"] == "webhook"
    assert p["DateCreated"].endswith("Z")


def test_rest_actions_fire_only_with_the_webhook_enabled_header(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-header")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent", "onChannelUpdated"]
    )
    channel.messages.create(from_="visitor-header", body="silent")
    channel.messages.create(from_="visitor-header", body="also silent", x_twilio_webhook_enabled="false")
    channel.update(friendly_name="quiet update")
    channel.messages.create(from_="visitor-header", body="loud", x_twilio_webhook_enabled="true")
    channel.update(friendly_name="loud update", x_twilio_webhook_enabled="true")
    got = webhooks.wait(hook, 2)
    # Deliveries are ordered per channel: had the silent actions fired, they would have arrived first.
    assert [(r.params["EventType"], r.params.get("Body") or r.params.get("FriendlyName")) for r in got] == [
        ("onMessageSent", "loud"),
        ("onChannelUpdated", "loud update"),
    ]


def test_filters_are_honoured(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-filter")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onChannelUpdated"])
    channel.messages.create(from_="visitor-filter", body="not subscribed", x_twilio_webhook_enabled="true")
    channel.members.create(identity="someone", x_twilio_webhook_enabled="true")
    channel.update(attributes=json.dumps({"status": "INACTIVE"}), x_twilio_webhook_enabled="true")
    [got] = webhooks.wait(hook, 1)
    assert got.params["EventType"] == "onChannelUpdated" and json.loads(got.params["Attributes"])["status"] == "INACTIVE"
    assert webhooks.events(hook) == ["onChannelUpdated"]


def test_member_events_carry_identity(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-members")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMemberAdded", "onMemberRemoved"]
    )
    member = channel.members.create(identity="agent-m", x_twilio_webhook_enabled="true")
    channel.members(member.sid).delete(x_twilio_webhook_enabled="true")
    added, removed = webhooks.wait(hook, 2)
    assert added.params["EventType"] == "onMemberAdded" and added.params["Identity"] == "agent-m"
    assert added.params["MemberSid"] == member.sid
    assert removed.params["EventType"] == "onMemberRemoved" and removed.params["Identity"] == "agent-m"


def test_chat_retries_up_to_retry_count(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-retry")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent"], configuration_retry_count=2
    )
    webhooks.plan(hook, statuses=[500, 503])
    message = channel.messages.create(from_="visitor-retry", body="retry me", x_twilio_webhook_enabled="true")
    got = webhooks.wait(hook, 3)
    assert [r.params["RetryCount"] for r in got] == ["0", "1", "2"]
    assert {r.params["MessageSid"] for r in got} == {message.sid}
    assert all(r.signature_valid for r in got)
    assert len({r.headers["I-Twilio-Idempotency-Token"] for r in got}) == 1


def test_chat_without_retry_count_tries_once(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-noretry")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent"])
    webhooks.plan(hook, statuses=[500])
    channel.messages.create(from_="visitor-noretry", body="first", x_twilio_webhook_enabled="true")
    channel.messages.create(from_="visitor-noretry", body="second", x_twilio_webhook_enabled="true")
    got = webhooks.wait(hook, 2)
    assert [(r.params["Body"], r.params["RetryCount"]) for r in got] == [("first", "0"), ("second", "0")]


def test_conversation_events_fields_and_bounded_retry(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    webhook = conversation.webhooks.create(
        target="webhook",
        configuration_url=webhooks.url(hook),
        configuration_filters=["onMessageAdded", "onParticipantAdded", "onParticipantRemoved", "onConversationStateUpdated"],
    )
    webhooks.plan(hook, statuses=[500, 500, 500])  # the first message's three attempts all fail
    conversation.messages.create(author=chat.identity, body="lost", x_twilio_webhook_enabled="true")
    message = conversation.messages.create(
        author=chat.identity, body="hi", attributes='{"a": 2}', x_twilio_webhook_enabled="true"
    )
    agent = conversation.participants.create(identity="agent-c", x_twilio_webhook_enabled="true")
    conversation.participants(agent.sid).delete(x_twilio_webhook_enabled="true")
    conversation.update(state="closed", x_twilio_webhook_enabled="true")
    got = webhooks.wait(hook, 7)
    assert [(r.params["EventType"], r.params["RetryCount"]) for r in got] == [
        ("onMessageAdded", "0"),
        ("onMessageAdded", "1"),
        ("onMessageAdded", "2"),
        ("onMessageAdded", "0"),
        ("onParticipantAdded", "0"),
        ("onParticipantRemoved", "0"),
        ("onConversationStateUpdated", "0"),
    ]
    assert all(r.signature_valid for r in got)
    m = got[3].params
    assert m["ConversationSid"] == chat.conversation_sid and m["MessageSid"] == message.sid and m["Index"] == "1"
    assert m["Author"] == chat.identity and m["Body"] == "hi" and json.loads(m["Attributes"]) == {"a": 2}
    assert m["ParticipantSid"].startswith("MB") and m["ChatServiceSid"] == sandbox.info["conversations_service_sid"]
    assert m["WebhookSid"] == webhook.sid and m["Source"] == "API" and m["AccountSid"] == sandbox.settings.account_sid
    assert got[4].params["Identity"] == "agent-c" and got[4].params["ParticipantSid"] == agent.sid
    state = got[6].params
    assert (state["StateFrom"], state["StateTo"], state["Reason"]) == ("active", "closed", "API")


def test_get_webhooks_are_signed_over_the_query(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(
        target="webhook",
        configuration_url=webhooks.url(hook) + "?tenant=a",
        configuration_method="GET",
        configuration_filters=["onMessageAdded"],
    )
    conversation.messages.create(author=chat.identity, body="by GET", x_twilio_webhook_enabled="true")
    [got] = webhooks.wait(hook, 1)
    assert got.method == "GET" and got.signature_valid
    assert got.params["Body"] == "by GET" and got.params["tenant"] == "a"


def test_delivery_is_ordered_per_channel_and_does_not_block_rest(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"])
    gate = webhooks.hold(hook)  # the receiver holds the first delivery until we let it go
    for i in range(30):
        conversation.messages.create(author=chat.identity, body=f"n{i}", x_twilio_webhook_enabled="true")
    assert webhooks.received(hook) == []  # every REST call answered while the first delivery was in flight
    gate.set()
    got = webhooks.wait(hook, 30)
    assert [r.params["Index"] for r in got] == [str(i) for i in range(30)]


@pytest.fixture(scope="module")
def fast_timeout_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A separate sandbox whose webhook timeout is 0.5 s instead of Twilio's 5 s."""
    server = start_sandbox(
        Path(tmp_path_factory.mktemp("timeout-logs")), "flex-sandbox-timeout", extra_env={"FLEX_SANDBOX_WEBHOOK_TIMEOUT": "0.5"}
    )
    try:
        yield server
    finally:
        server.process.stop()


def test_timeouts_are_retried(fast_timeout_sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sandbox = fast_timeout_sandbox
    sid = new_web_channel(sandbox, "visitor-timeout")
    channel = chat_channel(sandbox, sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent"], configuration_retry_count=1
    )
    webhooks.plan(hook, delays=[1.0])
    channel.messages.create(from_="visitor-timeout", body="slow receiver", x_twilio_webhook_enabled="true")
    got = webhooks.wait(hook, 2)
    assert sorted(r.params["RetryCount"] for r in got) == ["0", "1"]
