"""The Flex webhook route: signatures, duplicates, stale chats."""

from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from flex_sandbox.credentials import DEVELOPMENT
from northwind.servers import AGENT, Stack
from rasa_flex_handoff import handoff
from tests.handoff.conftest import handed_off


def webhook_url(stack: Stack, sender_id: str) -> str:
    return handoff.webhook_url(stack.url, "/webhooks/handoff_socketio/flex", sender_id, DEVELOPMENT.auth_token)


def agent_message_form(stack: Stack, channel_sid: str, message_sid: str, body: str, index: int) -> Dict[str, str]:
    if stack.mode == "conversations":
        return {
            "EventType": "onMessageAdded",
            "ConversationSid": channel_sid,
            "MessageSid": message_sid,
            "Author": AGENT,
            "Body": body,
            "Index": str(index),
            "Source": "SDK",
            "RetryCount": "0",
        }
    return {
        "EventType": "onMessageSent",
        "ChannelSid": channel_sid,
        "MessageSid": message_sid,
        "From": AGENT,
        "Body": body,
        "Index": str(index),
        "Source": "SDK",
        "RetryCount": "0",
    }


def body_of(event: Dict[str, Any]) -> Optional[str]:
    """The agent's words in a recorded bot turn."""
    return ((event.get("metadata") or {}).get("handoff") or {}).get("body")


def post(url: str, form: Dict[str, str], signature: str = None) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return requests.post(url, data=urlencode(form), headers=headers, timeout=10)


def test_forged_or_unsigned_webhooks_are_rejected(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    url = webhook_url(stack, visitor.session_id)
    form = agent_message_form(stack, task["channel_sid"], "IM" + "f" * 32, "forged text", 99)
    validator = RequestValidator(DEVELOPMENT.auth_token)

    assert post(url, form).status_code == 403  # unsigned
    assert post(url, form, "bm90IGEgc2lnbmF0dXJl").status_code == 403  # garbage
    assert post(url, form, RequestValidator("wrong-token").compute_signature(url, form)).status_code == 403
    tampered = {**form, "Body": "tampered"}
    assert post(url, tampered, validator.compute_signature(url, form)).status_code == 403
    other_sender = webhook_url(stack, "someone-else")
    assert post(other_sender, form, validator.compute_signature(url, form)).status_code == 403

    # A correctly signed one goes through, which shows the rejections were about the signature.
    mark = len(visitor.messages)
    assert post(url, form, validator.compute_signature(url, form)).status_code < 300
    visitor.wait_for(lambda m: m.get("text") == "forged text", "signed webhook delivered", start=mark)
    assert not any(m.get("text") == "tampered" for m in visitor.messages)


def test_duplicate_webhook_is_delivered_once(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    url = webhook_url(stack, visitor.session_id)
    validator = RequestValidator(DEVELOPMENT.auth_token)
    form = agent_message_form(stack, task["channel_sid"], "IM" + "d" * 32, "only once", 50)
    for retry in range(3):
        retried = {**form, "RetryCount": str(retry)}
        assert post(url, retried, validator.compute_signature(url, retried)).status_code < 300
    visitor.wait_for(lambda m: m.get("text") == "only once", "delivered")
    # Then a real agent message after it: proves the duplicates were processed before it.
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "after the duplicates")
    visitor.wait_for(lambda m: m.get("text") == "after the duplicates", "real agent message")
    assert [m.get("text") for m in visitor.messages].count("only once") == 1
    events = stack.tracker(visitor.session_id)["events"]
    assert [body_of(e) for e in events if e["event"] == "bot"].count("only once") == 1


def test_visitors_own_messages_are_not_echoed(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.say("my own words")
    stack.sandbox.send(task["sid"], "agent answer")
    visitor.wait_for(lambda m: m.get("text") == "agent answer", "agent answer")
    assert not any(m.get("text") == "my own words" for m in visitor.messages)


def test_webhook_for_a_chat_that_ended_is_ignored(stack: Stack, visitors) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    stack.sandbox.end(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot resumed")
    url = webhook_url(stack, visitor.session_id)
    form = agent_message_form(stack, task["channel_sid"], "IM" + "e" * 32, "late message", 77)
    assert post(url, form, RequestValidator(DEVELOPMENT.auth_token).compute_signature(url, form)).status_code < 300
    tracker = stack.tracker(visitor.session_id)  # the route answers only after recording
    assert tracker["slots"]["handoff_status"] is None
    assert "late message" not in [body_of(e) for e in tracker["events"]]
    assert not any(m.get("text") == "late message" for m in visitor.messages)


def test_signed_webhook_with_blank_values_is_accepted(stack: Stack, visitors) -> None:
    """Twilio signs blank parameters too: the signature must be checked over exactly what was posted."""
    visitor = visitors()
    task = handed_off(stack, visitor)
    url = webhook_url(stack, visitor.session_id)
    form = {
        **agent_message_form(stack, task["channel_sid"], "IM" + "b" * 32, "with blanks", 60),
        "Attributes": "",
        "ParticipantSid": "",
    }
    assert post(url, form, RequestValidator(DEVELOPMENT.auth_token).compute_signature(url, form)).status_code < 300
    visitor.wait_for(lambda m: m.get("text") == "with blanks", "delivered")


REJECTED = "Flex webhook with a missing or invalid signature rejected"


def post_through_twilio(stack: Stack, task: Dict[str, Any], author: str, **content: str) -> Any:
    """An agent-side message created through Twilio's REST API (the `twilio` SDK), as Flex, Studio or a supervisor can."""
    client = stack.sandbox.server.client
    if task["mode"] == "conversations":
        messages = client.conversations.v1.conversations(task["channel_sid"]).messages
        return messages.create(author=author, x_twilio_webhook_enabled="true", **content)
    messages = client.chat.v2.services(task["service_sid"]).channels(task["channel_sid"]).messages
    return messages.create(from_=author, x_twilio_webhook_enabled="true", **content)


def test_messages_from_non_participants_and_media_only_messages_reach_the_visitor_live_once(stack: Stack, visitors) -> None:
    rejected_before = stack.rasa.tail(100000).count(REJECTED)
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")

    supervisor = post_through_twilio(stack, task, "supervisor-sam", body="A supervisor here")
    live = visitor.wait_for(lambda m: m.get("text") == "A supervisor here", "non-participant message, live")
    assert live["agent"] == {"name": "supervisor-sam"} and live["message_sid"] == supervisor.sid
    assert live["wire"]["text"] == "supervisor-sam: A supervisor here"

    media = post_through_twilio(stack, task, AGENT, media_sid="ME" + "0123456789abcdef" * 2)
    shown = visitor.wait_for(lambda m: m.get("message_sid") == media.sid, "media-only message, live")
    assert shown["sender"] == "agent" and "attachment" in shown["text"]

    # Later messages arrive after them; each arrived once, by webhook (the visitor never reconnected).
    stack.sandbox.send(task["sid"], "after the others")
    visitor.wait_for(lambda m: m.get("text") == "after the others", "a later agent message")
    sids = [m.get("message_sid") for m in visitor.messages]
    assert sids.count(supervisor.sid) == 1 and sids.count(media.sid) == 1
    assert stack.rasa.tail(100000).count(REJECTED) == rejected_before  # no webhook was refused on the way
