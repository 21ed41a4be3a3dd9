"""Flex Legacy Messaging through the real SDK: Flex v1 flows and web channels, Chat v2 channels/members/messages/webhooks."""

from __future__ import annotations

import json

import pytest
from twilio.base.exceptions import TwilioRestException

from northwind.servers import Sandbox


def new_web_channel(sandbox: Sandbox, identity: str = "visitor-1", pre: object = None) -> str:
    channel = sandbox.client.flex_api.v1.web_channel.create(
        flex_flow_sid=sandbox.flex_flow_sid,
        identity=identity,
        customer_friendly_name="Ada Visitor",
        chat_friendly_name="Website chat",
        pre_engagement_data=json.dumps(pre if pre is not None else {"intent": "human"}),
    )
    return channel.sid


def test_fresh_account_has_an_enabled_web_flow_with_its_chat_service(sandbox: Sandbox) -> None:
    flows = sandbox.client.flex_api.v1.flex_flow.list()
    assert len(flows) == 1
    flow = flows[0]
    assert flow.sid.startswith("FO") and len(flow.sid) == 34
    assert flow.enabled is True and flow.channel_type == "web"
    assert flow.chat_service_sid.startswith("IS")
    assert flow.url == f"https://flex-api.twilio.com/v1/FlexFlows/{flow.sid}"
    assert sandbox.client.flex_api.v1.flex_flow(flow.sid).fetch().friendly_name == flow.friendly_name
    assert [f.sid for f in sandbox.client.flex_api.v1.flex_flow.list(friendly_name=flow.friendly_name)] == [flow.sid]
    assert sandbox.client.flex_api.v1.flex_flow.list(friendly_name="no such flow") == []


def test_web_channel_creates_a_chat_channel_with_the_visitor_as_member(sandbox: Sandbox) -> None:
    pre = {"transcript": [{"sender": "user", "text": "I want a human"}], "intent": "handoff", "slots": {"order": "42"}}
    sid = new_web_channel(sandbox, "visitor-web", pre)
    assert sid.startswith("CH") and len(sid) == 34
    web = sandbox.client.flex_api.v1.web_channel(sid).fetch()
    assert web.flex_flow_sid == sandbox.flex_flow_sid
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).fetch()
    attributes = json.loads(channel.attributes)
    assert attributes["status"] == "ACTIVE"
    assert attributes["from"] == "Ada Visitor"
    assert attributes["channel_type"] == "web"
    assert attributes["pre_engagement_data"] == pre
    assert channel.friendly_name == "Website chat"
    assert channel.members_count == 1 and channel.messages_count == 0
    assert channel.links["messages"].endswith(f"/Channels/{sid}/Messages")
    members = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).members.list()
    assert [m.identity for m in members] == ["visitor-web"]
    assert members[0].sid.startswith("MB")


def test_web_channel_requires_its_params_and_a_known_flow(sandbox: Sandbox) -> None:
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.flex_api.v1.web_channel.create(
            flex_flow_sid="FO" + "0" * 32, identity="v", customer_friendly_name="c", chat_friendly_name="x"
        )
    assert e.value.status == 404 and e.value.code == 20404
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.flex_api.v1.web_channel.create(
            flex_flow_sid=sandbox.flex_flow_sid, identity="", customer_friendly_name="c", chat_friendly_name="x"
        )
    assert e.value.status == 400 and "Identity" in e.value.msg
    with pytest.raises(TwilioRestException) as e:
        sandbox.client.flex_api.v1.web_channel.create(
            flex_flow_sid=sandbox.flex_flow_sid,
            identity="v",
            customer_friendly_name="c",
            chat_friendly_name="x",
            pre_engagement_data="{not json",
        )
    assert e.value.status == 400 and "PreEngagementData" in e.value.msg


def test_messages_get_contiguous_indexes_and_can_be_listed_and_fetched(sandbox: Sandbox) -> None:
    sid = new_web_channel(sandbox)
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    sent = [channel.messages.create(from_="visitor-1", body=f"message {i}", attributes=json.dumps({"n": i})) for i in range(5)]
    assert [m.index for m in sent] == [0, 1, 2, 3, 4]
    first = sent[0]
    assert first.sid.startswith("IM") and first._from == "visitor-1" and first.to == sid and first.type == "text"
    assert json.loads(first.attributes) == {"n": 0}
    fetched = channel.messages(first.sid).fetch()
    assert fetched.body == "message 0" and fetched.index == 0
    assert [m.body for m in channel.messages.list(page_size=2)] == [f"message {i}" for i in range(5)]
    assert [m.index for m in channel.messages.list(order="desc", limit=2)] == [4, 3]
    system = channel.messages.create(body="no author")
    assert system._from == "system"
    assert channel.fetch().messages_count == 6
    with pytest.raises(TwilioRestException) as e:
        channel.messages.create(from_="visitor-1")
    assert e.value.status == 400
    with pytest.raises(TwilioRestException) as e:
        channel.messages("IM" + "0" * 32).fetch()
    assert e.value.status == 404 and e.value.code == 20404


def test_channels_update_and_list_with_paging(sandbox: Sandbox) -> None:
    sids = {new_web_channel(sandbox, f"pager-{i}") for i in range(3)}
    service = sandbox.client.chat.v2.services(sandbox.chat_service_sid)
    page = service.channels.page(page_size=2)
    assert len(list(page)) == 2 and page.next_page_url and "PageToken=" in page.next_page_url
    listed = {c.sid for c in service.channels.stream(page_size=2)}
    assert sids <= listed
    sid = sids.pop()
    updated = service.channels(sid).update(friendly_name="renamed", attributes=json.dumps({"status": "ACTIVE", "x": 1}))
    assert updated.friendly_name == "renamed" and json.loads(updated.attributes)["x"] == 1
    assert service.channels(sid).fetch().friendly_name == "renamed"
    with pytest.raises(TwilioRestException) as e:
        service.channels(sid).update(attributes="not json")
    assert e.value.status == 400


def test_members_create_list_fetch_and_delete(sandbox: Sandbox) -> None:
    sid = new_web_channel(sandbox)
    members = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).members
    agent = members.create(identity="agent-x", attributes=json.dumps({"role": "agent"}))
    assert agent.identity == "agent-x" and agent.channel_sid == sid
    assert members(agent.sid).fetch().identity == "agent-x"
    assert sorted(m.identity for m in members.list()) == ["agent-x", "visitor-1"]
    with pytest.raises(TwilioRestException) as e:
        members.create(identity="agent-x")
    assert e.value.status == 409
    assert members(agent.sid).delete() is True
    assert [m.identity for m in members.list()] == ["visitor-1"]


def test_channel_webhooks_create_list_fetch_update_delete(sandbox: Sandbox) -> None:
    sid = new_web_channel(sandbox)
    hooks = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).webhooks
    created = hooks.create(
        type="webhook",
        configuration_url="http://127.0.0.1:9/hook",
        configuration_method="POST",
        configuration_filters=["onMessageSent", "onChannelUpdated"],
        configuration_retry_count=2,
    )
    assert created.sid.startswith("WH") and created.type == "webhook" and created.channel_sid == sid
    assert created.configuration == {
        "url": "http://127.0.0.1:9/hook",
        "method": "POST",
        "filters": ["onMessageSent", "onChannelUpdated"],
        "retry_count": 2,
    }
    assert [h.sid for h in hooks.list()] == [created.sid]
    assert hooks(created.sid).fetch().configuration["retry_count"] == 2
    assert hooks(created.sid).update(configuration_filters=["onMessageSent"]).configuration["filters"] == ["onMessageSent"]
    with pytest.raises(TwilioRestException) as e:
        hooks.create(type="webhook", configuration_filters=["onMessageSent"])
    assert e.value.status == 400 and "Configuration.Url" in e.value.msg
    with pytest.raises(TwilioRestException) as e:
        hooks.create(type="webhook", configuration_url="http://x/", configuration_retry_count=9)
    assert e.value.status == 400
    with pytest.raises(TwilioRestException) as e:
        hooks.create(type="webhook", configuration_url="http://x/", configuration_filters=["onNothing"])
    assert e.value.status == 400
    for _ in range(4):
        hooks.create(type="webhook", configuration_url="http://127.0.0.1:9/more", configuration_filters=["onMessageSent"])
    with pytest.raises(TwilioRestException) as e:
        hooks.create(type="webhook", configuration_url="http://127.0.0.1:9/sixth", configuration_filters=["onMessageSent"])
    assert e.value.status == 400
    assert hooks(created.sid).delete() is True
    assert len(hooks.list()) == 4


def test_web_channel_update_inactive_closes_the_chat(sandbox: Sandbox) -> None:
    sid = new_web_channel(sandbox)
    sandbox.client.flex_api.v1.web_channel(sid).update(chat_status="inactive", post_engagement_data=json.dumps({"rating": 5}))
    attributes = json.loads(sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).fetch().attributes)
    assert attributes["status"] == "INACTIVE" and attributes["post_engagement_data"] == {"rating": 5}
    tasks = sandbox.agent("GET", "/agent/api/tasks").json()["tasks"]
    assert next(t for t in tasks if t["channel_sid"] == sid)["status"] == "ended"


def test_async_client_drives_legacy_flow(sandbox: Sandbox) -> None:
    import asyncio

    async def scenario() -> None:
        client = sandbox.async_client()
        try:
            web = await client.flex_api.v1.web_channel.create_async(
                flex_flow_sid=sandbox.flex_flow_sid,
                identity="async-visitor",
                customer_friendly_name="Async",
                chat_friendly_name="Async chat",
            )
            channel = client.chat.v2.services(sandbox.chat_service_sid).channels(web.sid)
            message = await channel.messages.create_async(from_="async-visitor", body="hi", x_twilio_webhook_enabled="true")
            assert message.index == 0
            listed = await channel.messages.list_async(page_size=1)
            assert [m.body for m in listed] == ["hi"]
            fetched = await channel.fetch_async()
            assert fetched.messages_count == 1
        finally:
            await client.http_client.session.close()

    asyncio.run(scenario())
