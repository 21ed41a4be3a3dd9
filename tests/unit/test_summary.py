"""The summary for the agent and who the visitor is, as pure functions, plus the bot's own summariser hook.

What the agent reads first (summary.py), how a bot swaps in its own summary (summariser.py),
what the channel vouches for and what the visitor only declared (handoff.py's signed
capabilities), and where both go: the context, the interaction's task attributes, and never
the visitor's side of the chat (chat_state, the relay's polling).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import sys
from typing import Any, Dict, List, Optional

import pytest
from rasa.shared.core.events import SlotSet, UserUttered

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff import agent_chat, chat_state, handoff, summariser
from rasa_flex_handoff.flex import FlexChat, FlexMessage, NewChat
from rasa_flex_handoff.flex.interactions import interaction_task_attributes
from rasa_flex_handoff.flex_events import FlexEvent
from rasa_flex_handoff.settings import SettingsError, settings_from_env
from rasa_flex_handoff.summary import BUTTON, DIRECT, FALLBACK, MAX_TEXT, duration, summarise
from tests.unit import summarisers

SENDER = "3f2b9c1d8e7a46f0b1c2d3e4f5a6b7c8"
SECRET = "auth-token-for-tests"
PATH = "/webhooks/handoff_socketio/flex"
T0 = 1_700_000_000.0


def user(text: str, intent: Optional[str], at: float) -> Dict[str, Any]:
    parse = {"intent": {"name": intent, "confidence": 0.9}} if intent else {}
    return {"event": "user", "text": text, "timestamp": T0 + at, "parse_data": parse}


def action(name: str, at: float) -> Dict[str, Any]:
    return {"event": "action", "name": name, "timestamp": T0 + at}


def bot(text: str, at: float) -> Dict[str, Any]:
    return {"event": "bot", "text": text, "timestamp": T0 + at}


def answered(text: str, intent: Optional[str], at: float, reply: str = "action_listen") -> List[Dict[str, Any]]:
    """A visitor turn with the bot's answer and its listen."""
    return [user(text, intent, at), action(reply, at + 0.5), bot("...", at + 0.6), action("action_listen", at + 0.7)]


START = [action("action_session_start", 0), {"event": "session_started", "timestamp": T0}, action("action_listen", 0)]


# -- the default summary ----------------------------------------------------------------------


def test_the_intents_come_in_the_order_asked_repeats_folded_fallbacks_and_handoff_intents_left_out() -> None:
    events = [
        *START,
        *answered("/greet", "greet", 1),
        *answered("when does it ship?", "ask_shipping", 5),
        *answered("and to Norway?", "ask_shipping", 9),
        *answered("asdf", "nlu_fallback", 12, "action_fallback"),
        *answered("returns?", "ask_returns", 20),
        *answered("shipping again", "ask_shipping", 25),
        *answered("/handoff_stay", "handoff_stay", 26),
        user("I want to talk to a human", "talk_to_agent", 30),
    ]
    found = summarise(events, {})
    assert found.intents == ("greet", "ask_shipping", "ask_returns", "ask_shipping")
    assert "Asked about: greet, ask shipping, ask returns, ask shipping" in found.text


def test_a_typed_request_is_direct_a_payload_a_button() -> None:
    typed = summarise([*START, *answered("/greet", "greet", 1), user("get me a person", "talk_to_agent", 4)], {})
    assert typed.trigger == DIRECT and "Handoff: asked for a person\n" in typed.text
    pressed = summarise([*START, *answered("/greet", "greet", 1), user("/talk_to_agent", "talk_to_agent", 4)], {})
    assert pressed.trigger == BUTTON and "with a button" in pressed.text


def test_after_fallbacks_the_trigger_is_fallback_even_when_the_offer_was_a_button() -> None:
    events = [
        *START,
        *answered("qwzx", "nlu_fallback", 1, "action_fallback"),
        *answered("plm ok", "nlu_fallback", 3, "action_fallback"),
        user("/talk_to_agent", "talk_to_agent", 5),  # the fallback's "talk to a person?" button
    ]
    found = summarise(events, {})
    assert found.trigger == FALLBACK and found.intents == ()
    assert "after the bot did not understand 2 messages in a row" in found.text
    # Rasa's own fallback actions count too, whatever NLU said; so does a handoff that is itself the fallback.
    core = [*START, *answered("hmm", "greet", 1, "action_default_fallback"), user("a person", "talk_to_agent", 2)]
    assert summarise(core, {}).trigger == FALLBACK
    assert summarise([*START, user("blorp", "nlu_fallback", 1)], {}).trigger == FALLBACK
    # A fallback long before, with understood turns since, is not what led here.
    earlier = [*START, *answered("qwzx", "nlu_fallback", 1, "action_fallback"), *answered("/greet", "greet", 2)]
    assert summarise([*earlier, user("a human please", "talk_to_agent", 3)], {}).trigger == DIRECT


def test_time_with_the_bot_runs_from_the_sessions_first_visitor_turn_to_the_request() -> None:
    old = [*START, *answered("/greet", "greet", 1), user("/talk_to_agent", "talk_to_agent", 2)]
    # An earlier session (e.g. before a handoff that ended) is not this visit to the bot.
    events = [
        *old,
        {"event": "session_started", "timestamp": T0 + 100},
        *answered("hi", "greet", 200),
        user("agent", "talk_to_agent", 325),
    ]
    found = summarise(events, {})
    assert found.bot_seconds == 125 and found.intents == ("greet",)
    assert "Time with the bot: 2 min 5 s" in found.text
    assert summarise([user("agent", "talk_to_agent", 0)], {}).bot_seconds == 0
    assert summarise([], {}).trigger == DIRECT
    assert [duration(s) for s in (0, 59, 60, 61, 3599, 3600, 3725)] == [
        "0 s",
        "59 s",
        "1 min",
        "1 min 1 s",
        "59 min 59 s",
        "1 h",
        "1 h 2 min",
    ]


def test_rasa_event_objects_work_as_well_as_their_dicts() -> None:
    events = [
        UserUttered("/greet", {"name": "greet"}, timestamp=T0),
        UserUttered("human", {"name": "talk_to_agent"}, timestamp=T0 + 9),
    ]
    found = summarise(events, {})
    assert (found.intents, found.trigger, found.bot_seconds) == (("greet",), DIRECT, 9)


def test_only_shareable_slots_go_in_and_each_stays_small() -> None:
    slots = {
        "order_number": "NW-12345",
        "visitor_name": "Dana",
        "handoff_status": "pending",
        "session_started_metadata": {"socket": SENDER},
        "requested_slot": "order_number",
        "empty": None,
        "notes": "n" * 500,
        "items": ["kettle", "mug"],
    }
    found = summarise([*START, user("agent", "talk_to_agent", 1)], slots)
    assert found.slots == {
        "order_number": "NW-12345",
        "visitor_name": "Dana",
        "notes": "n" * 199 + "…",
        "items": ["kettle", "mug"],
    }
    assert "Known: order_number: NW-12345; visitor_name: Dana; notes: nnn" in found.text
    assert '; items: ["kettle", "mug"]' in found.text and SENDER not in found.text
    assert len(found.text) <= MAX_TEXT


def test_the_context_form_is_what_flex_keeps() -> None:
    found = summarise(
        [*START, *answered("/greet", "greet", 1), user("/talk_to_agent", "talk_to_agent", 3)], {"order_number": "NW-1"}
    )
    assert found.as_context() == {
        "text": found.text,
        "intents": ["greet"],
        "slots": {"order_number": "NW-1"},
        "trigger": "button",
        "bot_seconds": 2,
    }
    assert json.loads(json.dumps(found.as_context())) == found.as_context()


# -- the bot's own summariser ----------------------------------------------------------------

EVENTS = [*START, *answered("/greet", "greet", 1), user("my card was charged twice", "talk_to_agent", 3)]


async def test_a_summariser_may_replace_the_whole_summary() -> None:
    found = await summariser.summary_for(
        "tests.unit.summarisers:replaced", EVENTS, {"order_number": "NW-1", "handoff_status": None}
    )
    assert found.intents == ("billing",) and found.text == "Billing question from a known customer"
    assert found.trigger == DIRECT  # kept from the default it was handed
    seen = summarisers.SEEN[-1]
    assert seen["events"][-1]["text"] == "my card was charged twice" and all(isinstance(e, dict) for e in seen["events"])
    assert seen["slots"] == {"order_number": "NW-1", "handoff_status": None} and seen["summary"] == summarise(
        EVENTS, seen["slots"]
    )


async def test_a_summariser_returning_text_replaces_the_text_only_and_may_be_async() -> None:
    default = summarise(EVENTS, {})
    found = await summariser.summary_for("tests.unit.summarisers:text_only", EVENTS, {})
    assert found == dataclasses.replace(default, text=default.text + "\nVIP customer")
    assert (await summariser.summary_for("tests.unit.summarisers:awaited", EVENTS, {})).text == "Written by an async summariser"


async def test_a_summariser_that_fails_or_answers_nonsense_leaves_the_default_and_logs_no_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    default = summarise(EVENTS, {})
    with caplog.at_level(logging.INFO):
        assert await summariser.summary_for("tests.unit.summarisers:raising", EVENTS, {}) == default
        assert await summariser.summary_for("tests.unit.summarisers:wrong_type", EVENTS, {}) == default
    logged = caplog.text
    assert "HANDOFF_SUMMARISER tests.unit.summarisers:raising failed (RuntimeError)" in logged
    assert "returned dict, not a Summary or str" in logged
    assert "charged twice" not in logged  # the visitor's words never reach the log


async def test_a_summary_from_a_summariser_keeps_the_bounds() -> None:
    found = await summariser.summary_for("tests.unit.summarisers:oversized", EVENTS, {})
    assert len(found.intents) == 20 and found.intents[-1] == "i98"
    assert len(found.slots["blob"]) == 200 and len(found.text) == MAX_TEXT
    assert found.trigger == DIRECT and found.bot_seconds == 0


def test_a_summariser_is_imported_once() -> None:
    assert summariser.load("tests.unit.summarisers:text_only") is summarisers.text_only
    before = summarisers.LOADS[0]
    sys.modules.pop("tests.unit.summarisers")  # a second import would count
    try:
        assert summariser.load("tests.unit.summarisers:text_only") is summarisers.text_only
        assert summariser.load("tests.unit.summarisers:text_only") is summarisers.text_only
    finally:
        sys.modules["tests.unit.summarisers"] = summarisers
    assert summarisers.LOADS[0] == before


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            "tests.unit.no_such_module:summarise",
            "HANDOFF_SUMMARISER: cannot import tests.unit.no_such_module (ModuleNotFoundError",
        ),
        ("tests.unit.summarisers:missing", "HANDOFF_SUMMARISER: tests.unit.summarisers has no missing"),
        ("tests.unit.summarisers:NOT_CALLABLE", "HANDOFF_SUMMARISER: tests.unit.summarisers.NOT_CALLABLE is not callable"),
        ("no-colon", "expected package.module:function"),
    ],
)
def test_a_summariser_that_cannot_be_loaded_is_named(spec: str, says: str) -> None:
    with pytest.raises(summariser.SummariserError) as failed:
        summariser.load(spec)
    assert says in str(failed.value)


async def test_an_unloadable_summariser_at_call_time_leaves_the_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert await summariser.summary_for("tests.unit.no_such_module:summarise", EVENTS, {}) == summarise(EVENTS, {})
    assert "cannot import tests.unit.no_such_module" in caplog.text


def test_the_setting_is_a_function_path() -> None:
    base = {**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com"}
    assert settings_from_env(base).summariser is None
    assert (
        settings_from_env({**base, "HANDOFF_SUMMARISER": "actions.summary:summarise"}).summariser == "actions.summary:summarise"
    )
    for bad in ("actions.summary", "actions/summary.py:summarise", "actions.summary:sum marise", ":summarise"):
        with pytest.raises(SettingsError) as failed:
            settings_from_env({**base, "HANDOFF_SUMMARISER": bad})
        assert "malformed HANDOFF_SUMMARISER (expected package.module:function)" in str(failed.value)


# -- who the visitor is: vouched for, or declared ---------------------------------------------

CUSTOMER = {"name": "Jordan Lee", "email": "jordan@example.com", "customer_id": "C-1001"}
FORM = {"pre_engagement": {"name": "  Ada  ", "email": "ada@example.com", "phone": "+1 555", "customer_id": "C-9"}}


def test_declared_fields_are_stamped_apart_from_vouched_ones_trimmed_and_signed() -> None:
    stamped = handoff.declare_capabilities(FORM, PATH, SENDER, SECRET)
    assert stamped["handoff_connector"]["declared"] == {"name": "Ada", "email": "ada@example.com"}  # a form claims no id
    found = handoff.capabilities_of(stamped, SENDER, SECRET)
    assert found.declared == {"name": "Ada", "email": "ada@example.com"} and dict(found.visitor) == {}
    both = handoff.capabilities_of(handoff.declare_capabilities(FORM, PATH, SENDER, SECRET, CUSTOMER), SENDER, SECRET)
    assert dict(both.visitor) == CUSTOMER and both.declared["name"] == "Ada"
    long = handoff.declare_capabilities({"pre_engagement": {"name": "x" * 500}}, PATH, SENDER, SECRET)
    assert handoff.capabilities_of(long, SENDER, SECRET).declared == {"name": "x" * 200}


def test_declared_fields_cannot_be_forged_or_passed_off_as_vouched() -> None:
    stamped = handoff.declare_capabilities(FORM, PATH, SENDER, SECRET)
    stamp = stamped["handoff_connector"]
    for forged in (
        {**stamp, "declared": {"name": "Someone Else", "email": "ada@example.com"}},
        {**stamp, "declared": {}},
        {**stamp, "visitor": stamp["declared"]},  # what the visitor typed, claimed as vouched for
    ):
        assert handoff.capabilities_of({"handoff_connector": forged}, SENDER, SECRET) == handoff.ChannelCapabilities()
    assert handoff.capabilities_of(stamped, "another-conversation", SECRET) == handoff.ChannelCapabilities()


def test_a_stamp_without_declared_fields_is_signed_as_before() -> None:
    """A message stamped by the previous version (rolling deploy) still verifies."""
    message = f"capabilities:{SENDER}:{PATH}:0:{json.dumps(CUSTOMER, sort_keys=True)}"
    old = {"webhook_path": PATH, "access_token": False, "visitor": CUSTOMER}
    old["signature"] = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert dict(handoff.capabilities_of({"handoff_connector": old}, SENDER, SECRET).visitor) == CUSTOMER
    assert "declared" not in handoff.declare_capabilities({}, PATH, SENDER, SECRET, CUSTOMER)["handoff_connector"]


def test_the_agent_is_told_whether_the_visitor_is_verified() -> None:
    vouched = handoff.capabilities_of(handoff.declare_capabilities(FORM, PATH, SENDER, SECRET, CUSTOMER), SENDER, SECRET)
    assert handoff.known_visitor(vouched) == {**CUSTOMER, "verified": True}  # the form does not override the page
    declared = handoff.capabilities_of(handoff.declare_capabilities(FORM, PATH, SENDER, SECRET), SENDER, SECRET)
    assert handoff.known_visitor(declared) == {"name": "Ada", "email": "ada@example.com", "verified": False}
    assert handoff.known_visitor(handoff.ChannelCapabilities()) == {}
    # The form was filled earlier in the session; the latest message (a button) did not carry it.
    earlier = {"event": "user", "text": "hi", "metadata": handoff.declare_capabilities(FORM, PATH, SENDER, SECRET)}
    forged = {"event": "user", "text": "hi", "metadata": {"handoff_connector": {"declared": {"name": "Mallory"}}}}
    latest = handoff.capabilities_of(handoff.declare_capabilities({}, PATH, SENDER, SECRET), SENDER, SECRET)
    assert handoff.known_visitor(latest, [earlier, forged], SENDER, SECRET)["name"] == "Ada"
    assert handoff.known_visitor(latest, [forged], SENDER, SECRET) == {}


def test_the_context_says_who_with_the_verified_flag_and_carries_the_summary() -> None:
    visitor = {"name": "Ada", "email": "ada@example.com", "verified": False}
    found = summarise(EVENTS, {})
    data = handoff.context(EVENTS, {}, None, visitor, found.as_context())
    assert data["visitor"] == visitor and data["friendlyName"] == "Ada"
    assert data["summary"] == found.as_context()
    assert "summary" not in handoff.context(EVENTS, {})
    assert handoff.context(EVENTS, {"visitor_name": "Dana"}, None, visitor)["friendlyName"] == "Dana"  # the bot's slot first


def test_the_interactions_task_carries_the_summary_and_flex_insights_customers() -> None:
    found = summarise(EVENTS, {})
    context = handoff.context(EVENTS, {}, None, {**CUSTOMER, "verified": True}, found.as_context())
    new = NewChat("WW1", "visitor_x", "Jordan Lee", "Web chat with Jordan Lee", {**context, "handoff_ref": "h-1"}, "h-1")
    attributes = interaction_task_attributes(new, "CH1")
    assert attributes["summary"] == found.as_context()
    assert attributes["customers"] == {"name": "Jordan Lee", "email": "jordan@example.com", "external_id": "C-1001"}
    assert attributes["visitor"]["verified"] is True
    anonymous = interaction_task_attributes(dataclasses.replace(new, pre_engagement_data={"transcript": []}), "CH1")
    assert "customers" not in anonymous and "summary" not in anonymous


# -- the summary never reaches the visitor ------------------------------------------------------

CHAT = FlexChat("conversations", "CH1", "visitor_x", "IS1")
SLOTS = handoff.start_slots(CHAT)


def test_a_summary_message_is_known_by_its_attributes_in_webhooks_and_lists() -> None:
    form = {
        "EventType": "onMessageAdded",
        "ConversationSid": "CH1",
        "MessageSid": "IM1",
        "Index": "0",
        "Author": "Rasa",
        "Body": "Summary from the bot",
        "Attributes": '{"handoff_summary": true}',
    }
    event = FlexEvent.from_form(form)
    assert event.summary
    assert chat_state.on_flex_event([], SLOTS, event) == []
    # An agent's message is delivered as before, whatever its attributes.
    agent = FlexEvent.from_form({**form, "Author": "alice", "Body": "Hi", "Attributes": '{"handoff_summary": "yes"}'})
    steps = chat_state.on_flex_event([], SLOTS, agent)
    assert [type(step) for step in steps][:1] == [chat_state.BotUttered] and not agent.summary
    assert any(isinstance(step, SlotSet) for step in steps)


def test_the_polling_and_catch_up_paths_skip_the_summary() -> None:
    summary = FlexMessage("IM0", 0, "Rasa", "Summary from the bot", summary=True)
    agent = FlexMessage("IM2", 2, "alice", "Hello")
    own = FlexMessage("IM1", 1, CHAT.identity, "I want a human")
    assert [m.sid for m in (summary, own, agent) if agent_chat.is_from_agent_side(m, CHAT)] == ["IM2"]
    assert chat_state.on_flex_event([], SLOTS, FlexEvent.from_message(CHAT, summary)) == []
