"""The assistant's custom actions, run with rasa-sdk's Tracker and CollectingDispatcher (no server)."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionFallback, consecutive_fallbacks
from rasa_flex_handoff.actions import ActionEndHandoff, answer_again
from actions.orders import (
    ActionOrderStatus,
    ValidateOrderStatusForm,
    describe_order,
    load_orders,
    normalize_order_number,
)


def tracker(slots: Optional[Dict[str, Any]] = None, events: Optional[List[Dict[str, Any]]] = None) -> Tracker:
    return Tracker("visitor-1", slots or {}, {"intent": {"name": "order_status"}}, events or [], False, None, {}, "")


def user(intent: str) -> Dict[str, Any]:
    return {"event": "user", "text": intent, "parse_data": {"intent": {"name": intent, "confidence": 0.3}}}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name}


@pytest.mark.parametrize(
    "typed, expected",
    [("NW-12345", "NW-12345"), ("nw-12345", "NW-12345"), ("NW12345", "NW-12345"), ("nw 12345", "NW-12345"),
     (" NW-12345 ", "NW-12345"), ("NW-1234", None), ("12345", None), ("", None), (None, None), ("NW-123456", None)],
)
def test_order_numbers_are_normalized(typed: Optional[str], expected: Optional[str]) -> None:
    assert normalize_order_number(typed) == expected


def test_every_shipped_order_is_described_with_its_carrier() -> None:
    orders = load_orders()
    assert len(orders) >= 4
    for number, order in orders.items():
        text = describe_order(number, orders)
        assert number in text
        if order.status == "shipped":
            assert order.carrier in text and order.eta in text


def test_known_order_status_is_reported_and_slot_cleared() -> None:
    dispatcher = CollectingDispatcher()
    events = ActionOrderStatus().run(dispatcher, tracker({"order_number": "nw-12345"}), {})
    assert "NW-12345" in dispatcher.messages[0]["text"]
    assert "shipped with DHL" in dispatcher.messages[0]["text"]
    assert events == [SlotSet("order_number", None)]


def test_unknown_order_gets_a_clear_answer() -> None:
    dispatcher = CollectingDispatcher()
    ActionOrderStatus().run(dispatcher, tracker({"order_number": "NW-99999"}), {})
    text = dispatcher.messages[0]["text"]
    assert "couldn't find" in text and "NW-99999" in text and "agent" in text


def test_missing_order_number_is_explained() -> None:
    dispatcher = CollectingDispatcher()
    ActionOrderStatus().run(dispatcher, tracker({"order_number": None}), {})
    assert "NW-12345" in dispatcher.messages[0]["text"]


def test_form_validation_accepts_and_normalizes() -> None:
    dispatcher = CollectingDispatcher()
    result = ValidateOrderStatusForm().validate_order_number("nw 48213", dispatcher, tracker(), {})
    assert result == {"order_number": "NW-48213"}
    assert dispatcher.messages == []


def test_form_validation_rejects_with_a_hint() -> None:
    dispatcher = CollectingDispatcher()
    result = ValidateOrderStatusForm().validate_order_number("my order", dispatcher, tracker(), {})
    assert result == {"order_number": None}
    assert "NW-12345" in dispatcher.messages[0]["text"]


def test_first_fallback_asks_to_rephrase() -> None:
    events = [action("action_listen"), user("greet"), action("utter_greet"), action("action_listen"),
              user("nlu_fallback")]
    assert consecutive_fallbacks(events) == 1
    dispatcher = CollectingDispatcher()
    ActionFallback().run(dispatcher, tracker(events=events), {})
    assert "rephrase" in dispatcher.messages[0]["text"]
    assert not dispatcher.messages[0].get("buttons")


def test_second_fallback_in_a_row_offers_a_person() -> None:
    events = [action("action_listen"), user("nlu_fallback"), action("action_fallback"), action("action_listen"),
              user("nlu_fallback")]
    assert consecutive_fallbacks(events) == 2
    dispatcher = CollectingDispatcher()
    ActionFallback().run(dispatcher, tracker(events=events), {})
    payloads = [b["payload"] for b in dispatcher.messages[0]["buttons"]]
    assert "/talk_to_agent" in payloads


def test_an_understood_turn_resets_the_fallback_count() -> None:
    events = [user("nlu_fallback"), action("action_fallback"), action("action_listen"),
              user("greet"), action("utter_greet"), action("action_listen"), user("nlu_fallback")]
    assert consecutive_fallbacks(events) == 1


def test_ending_the_handoff_marks_its_notices_for_handoff_aware_front_ends() -> None:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionEndHandoff().run(dispatcher, tracker(), {"responses": {}}))
    assert [m["handoff"]["event"] for m in dispatcher.messages] == ["visitor_left", "bot_resumed"]
    assert [m["text"] for m in dispatcher.messages] == ["You have left the chat with the agent.", "You're back with the bot. How else can I help?"]
    assert {e["name"] for e in events} >= {"handoff_status", "handoff_channel_sid"}


def test_a_message_the_closed_chat_did_not_take_is_replayed_as_a_new_turn() -> None:
    latest = {"text": "opening hours?", "intent": {"name": "ask_opening_hours", "confidence": 0.9}, "entities": [],
              "message_id": "m1", "metadata": {"page": "shop"}}
    t = Tracker("visitor-1", {}, latest, [{"event": "user", "text": "opening hours?", "input_channel": "cmdline"}],
                False, None, {}, "cmdline")
    listen, user = answer_again(t)
    assert listen == {"event": "action", "name": "action_listen", "policy": None, "confidence": None, "timestamp": None}
    assert user["text"] == "opening hours?" and user["parse_data"]["intent"]["name"] == "ask_opening_hours"
    assert user["metadata"] == {"page": "shop", "handoff": {"replayed": True}}
