"""Absent and blank values the way Twilio sends them: non-participant authors, media-only messages, signatures over blanks.

Twilio leaves a parameter out of a webhook when the resource's value is null (a message by an author who is
not a participant has no `ParticipantSid`; a media-only Conversations message has no `Body`) and sends an
empty string as `Name=`. The signature covers exactly the parameters posted, blank ones included, so a
receiver must parse the raw body with blank values kept (Sanic's `request.form` drops them).
"""

from __future__ import annotations

import json
from typing import Dict, List
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from flex_sandbox.credentials import DEVELOPMENT
from northwind.servers import Sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.webhook_receiver import Received, WebhookReceiver

MEDIA_SID = "ME" + "0123456789abcdef" * 2
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56  # 64 bytes that call themselves a PNG


class Posted(dict):
    """The posted form as `parse_qs(body, keep_blank_values=True)` gives it, readable by `RequestValidator`."""

    def getall(self, name: str) -> List[str]:
        return self[name]


def posted(got: Received) -> Posted:
    """Exactly the parameters in the raw body, blank values kept."""
    return Posted(parse_qs(got.body, keep_blank_values=True))


def signature_valid(got: Received, params: Dict) -> bool:
    return RequestValidator(DEVELOPMENT.auth_token).validate(got.url, params, got.headers["X-Twilio-Signature"])


def upload(sandbox: Sandbox, service_sid: str, content: bytes, content_type: str) -> dict:
    """Twilio's Media Content Service upload: the raw file as the body (`POST mcs.us1.twilio.com/v1/Services/{IS}/Media`)."""
    response = requests.post(
        f"{sandbox.base_url}/mcs.us1/v1/Services/{service_sid}/Media",
        data=content,
        headers={"Content-Type": content_type},
        auth=(sandbox.settings.api_key, sandbox.settings.api_secret),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_non_participant_author_has_no_participant_sid(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"])
    # A supervisor or a Studio flow: Twilio accepts any author on a REST-created message.
    message = conversation.messages.create(
        author="supervisor-sam", body="Hello from a supervisor", x_twilio_webhook_enabled="true"
    )
    assert message.participant_sid is None and message.author == "supervisor-sam"
    [got] = webhooks.wait(hook, 1)
    form = posted(got)
    assert "ParticipantSid" not in form  # null on the resource: left out, not sent as `ParticipantSid=`
    assert form["Author"] == ["supervisor-sam"] and form["Body"] == ["Hello from a supervisor"]
    assert form["MessageSid"] == [message.sid] and "Media" not in form
    assert [k for k, v in form.items() if v == [""]] == []  # nothing blank in this event
    assert got.signature_valid and signature_valid(got, form)


def test_a_participant_author_has_its_participant_sid(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"])
    message = conversation.messages.create(author=chat.identity, body="hi", x_twilio_webhook_enabled="true")
    [got] = webhooks.wait(hook, 1)
    assert posted(got)["ParticipantSid"] == [message.participant_sid] and message.participant_sid.startswith("MB")


def test_media_only_conversations_message(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"])
    service_sid = sandbox.info["conversations_service_sid"]
    uploaded = upload(sandbox, service_sid, PNG, "image/png")
    assert uploaded["sid"].startswith("ME") and len(uploaded["sid"]) == 34
    assert (uploaded["service_sid"], uploaded["size"], uploaded["content_type"]) == (service_sid, len(PNG), "image/png")

    message = conversation.messages.create(author=chat.identity, media_sid=uploaded["sid"], x_twilio_webhook_enabled="true")
    assert message.body is None
    assert message.media == [
        {"sid": uploaded["sid"], "size": len(PNG), "content_type": "image/png", "filename": None, "category": "media"}
    ]
    assert conversation.messages(message.sid).fetch().media == message.media
    # A sid the sandbox never saw (uploaded elsewhere): accepted, described as unknown bytes.
    bare = conversation.messages.create(author=chat.identity, media_sid=MEDIA_SID, x_twilio_webhook_enabled="true")
    assert bare.media == [
        {"sid": MEDIA_SID, "size": 0, "content_type": "application/octet-stream", "filename": None, "category": "media"}
    ]

    first, second = webhooks.wait(hook, 2)
    form = posted(first)
    assert "Body" not in form  # a media-only message has a null body: Twilio leaves Body out
    assert json.loads(form["Media"][0]) == [
        {"Sid": uploaded["sid"], "Size": len(PNG), "ContentType": "image/png", "Filename": None, "Category": "media"}
    ]
    assert form["ParticipantSid"] == [message.participant_sid] and form["MessageSid"] == [message.sid]
    assert first.signature_valid and signature_valid(first, form)
    assert json.loads(posted(second)["Media"][0])[0]["Sid"] == MEDIA_SID and second.signature_valid

    task = next(t for t in sandbox.agent("GET", "/agent/api/tasks").json()["tasks"] if t["channel_sid"] == chat.conversation_sid)
    seen = sandbox.agent("GET", f"/agent/api/tasks/{task['sid']}/messages").json()["messages"]
    assert [(m["body"], [f["content_type"] for f in m["media"]]) for m in seen] == [
        ("", ["image/png"]),
        ("", ["application/octet-stream"]),
    ]  # what the agent desktop shows

    fetched = requests.get(
        f"{sandbox.base_url}/mcs.us1/v1/Services/{service_sid}/Media/{uploaded['sid']}",
        auth=(sandbox.settings.api_key, sandbox.settings.api_secret),
        timeout=10,
    ).json()
    assert fetched["message_sid"] == message.sid and fetched["channel_sid"] == chat.conversation_sid
    content = requests.get(
        f"{sandbox.base_url}/mcs.us1/v1/Services/{service_sid}/Media/{uploaded['sid']}/Content",
        auth=(sandbox.settings.api_key, sandbox.settings.api_secret),
        timeout=10,
    )
    assert content.content == PNG and content.headers["Content-Type"] == "image/png"


def test_media_only_chat_message(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-media")
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent", "onMediaMessageSent"]
    )
    uploaded = upload(sandbox, sandbox.chat_service_sid, PNG, "image/png")
    message = channel.messages.create(from_="visitor-media", media_sid=uploaded["sid"], x_twilio_webhook_enabled="true")
    assert message.type == "media" and message.body == ""  # Chat stores a missing body as ""
    assert message.media == {"sid": uploaded["sid"], "size": len(PNG), "content_type": "image/png", "filename": None}
    assert channel.messages(message.sid).fetch().media == message.media
    channel.messages.create(from_="visitor-media", body="and some text", x_twilio_webhook_enabled="true")

    media_event, text_event = webhooks.wait(hook, 2)
    form = posted(media_event)
    # A media message fires onMediaMessageSent (not onMessageSent) with the media's fields.
    assert form["EventType"] == ["onMediaMessageSent"] and form["MessageSid"] == [message.sid]
    assert form["MediaSid"] == [uploaded["sid"]] and form["MediaContentType"] == ["image/png"]
    assert form["MediaSize"] == [str(len(PNG))] and "MediaFilename" not in form  # no filename: left out
    assert form["Body"] == [""]  # an empty string is sent, as `Body=`
    assert media_event.signature_valid and signature_valid(media_event, form)
    assert posted(text_event)["EventType"] == ["onMessageSent"] and posted(text_event)["Body"] == ["and some text"]


def test_the_signature_covers_blank_values_exactly_as_posted(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-blank")
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    channel.webhooks.create(type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onChannelUpdated"])
    channel.update(friendly_name="", x_twilio_webhook_enabled="true")  # an empty string, not null
    [got] = webhooks.wait(hook, 1)
    assert "&FriendlyName=&" in f"&{got.body}&"
    assert "UniqueName" not in posted(got)  # the channel has no unique name (null): left out
    kept = posted(got)
    assert signature_valid(got, kept)
    # What a receiver sees if it parses like Sanic's request.form (blank values dropped): the signature fails.
    dropped = Posted(parse_qs(got.body))
    assert "FriendlyName" not in dropped and not signature_valid(got, dropped)


@pytest.mark.parametrize("api", ["conversations", "chat"])
def test_a_message_needs_a_body_or_media(sandbox: Sandbox, api: str) -> None:
    if api == "conversations":
        chat = new_web_chat(sandbox)
        messages = sandbox.client.conversations.v1.conversations(chat.conversation_sid).messages
        create = lambda **kw: messages.create(author=chat.identity, **kw)  # noqa: E731
    else:
        sid = new_web_channel(sandbox, "visitor-empty")
        messages = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid).messages
        create = lambda **kw: messages.create(from_="visitor-empty", **kw)  # noqa: E731
    for kwargs in ({}, {"body": ""}, {"attributes": "{}"}):
        with pytest.raises(TwilioRestException) as e:
            create(**kwargs)
        assert (e.value.status, e.value.code) == (400, 50503), kwargs
    with pytest.raises(TwilioRestException) as e:
        create(media_sid="ME-not-a-media-sid")
    assert (e.value.status, e.value.code) == (400, 50510)
    assert messages.list() == []
