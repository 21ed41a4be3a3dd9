"""Flex Conversations through the real SDK.

Address configurations, v2 WebChats, conversations, participants, messages, webhooks.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from twilio.base.exceptions import TwilioRestException

from northwind.servers import Sandbox


def new_web_chat(sandbox: Sandbox, pre: object = None, customer: str = "Grace Visitor"):
    return sandbox.client.flex_api.v2.web_channels.create(
        address_sid=sandbox.address_sid,
        customer_friendly_name=customer,
        chat_friendly_name="Website chat",
        pre_engagement_data=json.dumps(pre if pre is not None else {"intent": "human"}),
    )


def test_fresh_account_lists_a_web_chat_address(sandbox: Sandbox) -> None:
    addresses = sandbox.client.conversations.v1.address_configurations.list()
    assert len(addresses) == 1
    address = addresses[0]
    assert address.sid == sandbox.address_sid and address.sid.startswith("IG")
    assert address.type == "chat"
    assert address.auto_creation["enabled"] is True
    assert address.auto_creation["conversation_service_sid"].startswith("IS")
    assert sandbox.client.conversations.v1.address_configurations(address.sid).fetch().friendly_name == address.friendly_name
    assert sandbox.client.conversations.v1.address_configurations.list(type="chat")[0].sid == address.sid


def test_web_chat_creates_a_conversation_with_a_generated_visitor(sandbox: Sandbox) -> None:
    pre = {"transcript": [{"sender": "bot", "text": "Hello!"}], "intent": "human_handoff"}
    chat = new_web_chat(sandbox, pre)
    assert chat.conversation_sid.startswith("CH") and chat.identity
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid).fetch()
    attributes = json.loads(conversation.attributes)
    assert attributes["pre_engagement_data"] == pre
    assert attributes["customer_friendly_name"] == "Grace Visitor"
    assert conversation.state == "active" and conversation.friendly_name == "Website chat"
    assert conversation.chat_service_sid == sandbox.info["conversations_service_sid"]
    assert conversation.links["participants"].endswith("/Participants")
    participants = sandbox.client.conversations.v1.conversations(chat.conversation_sid).participants.list()
    assert [p.identity for p in participants] == [chat.identity]


def test_web_chat_errors(sandbox: Sandbox) -> None:
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.flex_api.v2.web_channels.create(address_sid="IG" + "0" * 32)
    assert e.value.status == 404 and e.value.code == 45744
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.flex_api.v2.web_channels.create(address_sid=sandbox.address_sid, pre_engagement_data="[oops")
    assert e.value.status == 400 and e.value.code == 45745


def test_messages_participants_and_close(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    m0 = conversation.messages.create(author=chat.identity, body="hi", attributes=json.dumps({"from": "visitor"}))
    m1 = conversation.messages.create(body="system note")
    assert (m0.index, m1.index) == (0, 1)
    assert (
        m0.sid.startswith("IM") and m0.participant_sid.startswith("MB") and m1.author == "system" and m1.participant_sid is None
    )
    assert conversation.messages(m0.sid).fetch().body == "hi"
    assert [m.index for m in conversation.messages.list(page_size=1)] == [0, 1]
    assert [m.index for m in conversation.messages.list(order="desc")] == [1, 0]

    agent = conversation.participants.create(identity="agent-y")
    assert agent.sid.startswith("MB") and conversation.participants(agent.sid).fetch().identity == "agent-y"
    with pytest.raises(TwilioRestException) as e:
        conversation.participants.create(identity="agent-y")
    assert e.value.status == 409
    assert conversation.participants(agent.sid).delete() is True
    assert [p.identity for p in conversation.participants.list()] == [chat.identity]

    updated = conversation.update(attributes=json.dumps({"k": "v"}), friendly_name="renamed")
    assert json.loads(updated.attributes) == {"k": "v"} and updated.friendly_name == "renamed"
    assert conversation.update(state="inactive").state == "inactive"
    closed = conversation.update(state="closed")
    assert closed.state == "closed"
    with pytest.raises(TwilioRestException) as e:
        conversation.messages.create(author=chat.identity, body="too late")
    assert e.value.status == 400 and e.value.code == 50377
    with pytest.raises(TwilioRestException) as e:
        conversation.update(state="active")
    assert e.value.code == 50377
    with pytest.raises(TwilioRestException) as e:
        conversation.participants.create(identity="late-agent")
    assert e.value.code == 50377


def test_conversations_list_with_paging_and_state_filter(sandbox: Sandbox) -> None:
    sids = {new_web_chat(sandbox).conversation_sid for _ in range(3)}
    listed = {c.sid for c in sandbox.client.conversations.v1.conversations.stream(page_size=2)}
    assert sids <= listed
    closed_sid = sids.pop()
    sandbox.client.conversations.v1.conversations(closed_sid).update(state="closed")
    closed = {c.sid for c in sandbox.client.conversations.v1.conversations.list(state="closed")}
    assert closed_sid in closed and not (sids & closed)
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.conversations.v1.conversations.create(state="closed")
    assert e.value.code == 50384
    created = sandbox.client.conversations.v1.conversations.create(friendly_name="plain", unique_name="plain-one")
    assert sandbox.client.conversations.v1.conversations("plain-one").fetch().sid == created.sid


def test_conversation_webhooks_crud(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    hooks = sandbox.client.conversations.v1.conversations(chat.conversation_sid).webhooks
    created = hooks.create(
        target="webhook",
        configuration_url="http://127.0.0.1:9/c",
        configuration_method="POST",
        configuration_filters=["onMessageAdded", "onConversationStateUpdated"],
    )
    assert created.sid.startswith("WH") and created.target == "webhook" and created.conversation_sid == chat.conversation_sid
    assert created.configuration["filters"] == ["onMessageAdded", "onConversationStateUpdated"]
    assert created.configuration["url"] == "http://127.0.0.1:9/c" and created.configuration["method"] == "POST"
    assert [h.sid for h in hooks.list()] == [created.sid]
    assert hooks(created.sid).fetch().target == "webhook"
    assert hooks(created.sid).update(configuration_method="GET").configuration["method"] == "GET"
    with pytest.raises(TwilioRestException) as e:
        hooks.create(target="webhook")
    assert e.value.status == 400
    with pytest.raises(TwilioRestException) as e:
        hooks.create(target="carrier-pigeon", configuration_url="http://x/")
    assert e.value.status == 400
    assert hooks(created.sid).delete() is True
    assert hooks.list() == []
    with pytest.raises(TwilioRestException) as e:
        hooks(created.sid).fetch()
    assert e.value.status == 404


def test_async_client_drives_conversations(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        client = sandbox.async_client()
        try:
            chat = await client.flex_api.v2.web_channels.create_async(address_sid=sandbox.address_sid, customer_friendly_name="A")
            conversation = client.conversations.v1.conversations(chat.conversation_sid)
            await conversation.webhooks.create_async(
                target="webhook",
                configuration_url="http://127.0.0.1:9/a",
                configuration_filters=["onMessageAdded", "onConversationStateUpdated"],
            )
            message = await conversation.messages.create_async(author=chat.identity, body="async hi")
            assert message.index == 0
            assert len(await conversation.participants.list_async()) == 1
            assert (await conversation.update_async(state="closed")).state == "closed"
            assert len(await client.conversations.v1.conversations.list_async(page_size=1, limit=2)) == 2
        finally:
            await client.http_client.session.close()

    asyncio.run(scenario())
