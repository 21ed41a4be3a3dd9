"""Handoff state as pure functions: context for the agent, identities, webhook tokens, access tokens, dedupe."""

from __future__ import annotations

import json
import time

import jwt
from rasa.shared.core.events import BotUttered, UserUttered

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff import handoff
from rasa_flex_handoff.flex import FlexChat
from rasa_flex_handoff.settings import settings_from_env

SENDER = "3f2b9c1d8e7a46f0b1c2d3e4f5a6b7c8"  # what a socket.io session id looks like
SECRET = "auth-token-for-tests"

EVENTS = [
    {"event": "action", "name": "action_session_start", "timestamp": 1700000000.0},
    {"event": "session_started", "timestamp": 1700000000.0},
    {"event": "user", "text": "/greet", "timestamp": 1700000001.0, "parse_data": {"intent": {"name": "greet"}}},
    {"event": "bot", "text": "Hi! I'm the assistant.", "timestamp": 1700000002.0, "metadata": {"utter_action": "utter_greet"}},
    {"event": "user", "text": "I need a human", "timestamp": 1700000003.0, "parse_data": {"intent": {"name": "talk_to_agent"}}},
    {
        "event": "bot",
        "text": "Earlier agent line",
        "timestamp": 1700000004.0,
        "metadata": {"handoff": {"role": "agent", "agent": "alice", "message_sid": "IM1"}},
    },
    {"event": "slot", "name": "order_number", "value": "NW-12345", "timestamp": 1700000005.0},
]


def test_transcript_marks_visitor_bot_and_agent_turns() -> None:
    lines = handoff.transcript(EVENTS)
    assert [(line["from"], line["text"]) for line in lines] == [
        ("visitor", "/greet"),
        ("bot", "Hi! I'm the assistant."),
        ("visitor", "I need a human"),
        ("agent", "Earlier agent line"),
    ]
    assert lines[0]["timestamp"] == "2023-11-14T22:13:21Z"


def test_transcript_reads_rasa_event_objects_too() -> None:
    events = [UserUttered("hello", intent={"name": "greet"}), BotUttered("hi there")]
    assert [(line["from"], line["text"]) for line in handoff.transcript(events)] == [("visitor", "hello"), ("bot", "hi there")]


def test_context_has_intent_transcript_and_only_shareable_slots() -> None:
    slots = {
        "order_number": "NW-12345",
        "visitor_name": "Dana",
        "handoff_status": "pending",
        "handoff_channel_sid": "CH1",
        "session_started_metadata": {"socket": SENDER},
        "requested_slot": None,
        "empty": None,
    }
    data = handoff.context(EVENTS, slots)
    assert data["intent"] == "talk_to_agent"
    assert data["friendlyName"] == "Dana"
    assert data["question"] == "I need a human"
    assert data["slots"] == {"order_number": "NW-12345", "visitor_name": "Dana"}
    assert SENDER not in str(data)


def test_the_visitors_language_comes_from_the_bots_slot_else_the_front_ends_metadata() -> None:
    said = [
        {"event": "user", "text": "hola", "metadata": {"language": "es"}},
        {"event": "user", "text": "necesito ayuda", "metadata": {"language": " es-MX "}},
        {"event": "user", "text": "ok", "metadata": {}},
    ]
    assert handoff.context(said, {})["language"] == "es-MX"  # the latest the page said, trimmed
    assert handoff.context(said, {"language": "fr"})["language"] == "fr"  # the bot knows better
    assert handoff.context(EVENTS, {})["language"] is None
    assert handoff.visitor_language([{"event": "user", "metadata": {"language": "x" * 99}}], {}) == "x" * 35


def test_a_long_conversations_context_fits_flex_with_its_latest_turns() -> None:
    """Flex keeps the context in the chat's attributes (16 KiB at most): thousands of turns must not make the handoff fail."""
    events = [e for n in range(3000) for e in (UserUttered(f"question {n} " + "x" * 50), BotUttered(f"answer {n}"))]
    events.append(UserUttered("y" * 5000))  # a pasted wall of text
    data = handoff.context(events, {"order_number": "NW-12345"})
    assert len(json.dumps(data)) <= handoff.MAX_CONTEXT_CHARS
    said = [line["text"] for line in data["transcript"]]
    assert said[-2] == "answer 2999" and said[-1].startswith("y") and len(said[-1]) <= handoff.MAX_LINE_CHARS
    assert data["transcript_omitted"] == 6001 - len(said) and data["transcript_omitted"] > 5000
    assert len(data["question"]) <= handoff.MAX_LINE_CHARS
    # A short conversation is sent whole.
    assert "transcript_omitted" not in handoff.context(EVENTS, {})


def test_visitor_name_defaults_to_something_neutral() -> None:
    assert handoff.visitor_name({}) == handoff.DEFAULT_VISITOR_NAME
    assert handoff.visitor_name({"visitor_name": "   "}) == handoff.DEFAULT_VISITOR_NAME


def test_identity_is_stable_and_does_not_reveal_the_sender_id() -> None:
    identity = handoff.visitor_identity(SENDER, SECRET)
    assert identity == handoff.visitor_identity(SENDER, SECRET)
    assert SENDER not in identity and SENDER[:8] not in identity
    assert identity != handoff.visitor_identity(SENDER + "x", SECRET)
    assert identity != handoff.visitor_identity(SENDER, "another-secret")


def test_webhook_token_round_trips_and_is_opaque() -> None:
    token = handoff.webhook_token(SENDER, SECRET)
    assert SENDER not in token
    assert handoff.sender_from_webhook_token(token, SECRET) == SENDER
    assert handoff.sender_from_webhook_token(token, "another-secret") is None
    assert handoff.sender_from_webhook_token("garbage", SECRET) is None
    url = handoff.webhook_url("https://bot.example.com/", "/webhooks/handoff_socketio/flex", SENDER, SECRET)
    assert url.startswith("https://bot.example.com/webhooks/handoff_socketio/flex?c=")
    assert SENDER not in url


def test_access_token_claims_verify_with_the_api_secret() -> None:
    settings = settings_from_env({**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com", "HANDOFF_TOKEN_TTL": "600"})
    before = int(time.time())
    token = handoff.access_token(settings, "visitor_abc", "IS" + "1" * 32)
    claims = jwt.decode(token, DEVELOPMENT.api_secret, algorithms=["HS256"])
    assert jwt.get_unverified_header(token)["cty"] == "twilio-fpa;v=1"
    assert claims["iss"] == DEVELOPMENT.api_key and claims["sub"] == DEVELOPMENT.account_sid
    assert claims["grants"] == {"identity": "visitor_abc", "chat": {"service_sid": "IS" + "1" * 32}}
    assert before + 600 <= claims["exp"] <= int(time.time()) + 600


def test_slots_round_trip_a_chat_and_clear() -> None:
    chat = FlexChat("legacy", "CH1", "visitor_abc", "IS1")
    slots = handoff.start_slots(chat)
    assert slots["handoff_status"] == "pending" and slots["handoff_last_index"] == -1.0
    assert handoff.chat_from_slots(slots) == chat
    assert handoff.chat_from_slots({**slots, **handoff.cleared_slots()}) is None
    assert set(handoff.cleared_slots()) == set(handoff.HANDOFF_SLOTS)
    assert handoff.last_index({"handoff_last_index": 4.0}) == 4


def test_dedupe_finds_message_sids_in_bot_metadata() -> None:
    recorded = BotUttered("from agent", metadata=handoff.handoff_metadata("agent", agent="alice", message_sid="IM2"))
    events = EVENTS + [recorded.as_dict()]
    assert handoff.recorded_message_sids(events) == {"IM1", "IM2"}
    assert handoff.already_recorded([recorded], "IM2")
    assert not handoff.already_recorded(events, "IM3")


def test_end_chat_is_the_payload_or_the_intent() -> None:
    assert handoff.is_end_chat("/end_chat")
    assert handoff.is_end_chat("please stop", "end_chat")
    assert not handoff.is_end_chat("end chat?")


def test_opening_message_is_the_typed_request_or_a_neutral_line() -> None:
    assert handoff.opening_message(EVENTS) == "I need a human"
    payload_only = EVENTS[:4] + [{"event": "user", "text": "/talk_to_agent", "timestamp": 1700000003.0}]
    assert handoff.opening_message(payload_only) == handoff.OPENING_MESSAGE
