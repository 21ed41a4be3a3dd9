"""The assistant's custom actions, run with rasa-sdk's Tracker and CollectingDispatcher (no server).

The handoff actions run against `FakeFlex`, which stands in for Twilio's cloud only: the plugin's
own Flex logic (`FlexChats`: start, relay once, closed chats, cleanup) runs as in production.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted as RasaActionExecuted
from rasa.shared.core.events import SessionStarted as RasaSessionStarted
from rasa.shared.core.events import UserUttered as RasaUserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from twilio.base.exceptions import TwilioRestException

from actions.fallback import ActionFallback, consecutive_fallbacks
from actions.orders import (
    ActionOrderStatus,
    ValidateOrderStatusForm,
    describe_order,
    load_orders,
    normalize_order_number,
)
from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff import actions, handoff
from rasa_flex_handoff.actions import (
    ActionEndHandoff,
    ActionHandoffToAgent,
    ActionRelayToAgent,
    answer_again,
    domain_text,
    slot_events,
)
from rasa_flex_handoff.attachments import DEFAULT_TYPES
from rasa_flex_handoff.flex import FlexChat, FlexChats, FlexMedia, FlexMessage, FlexParticipant, NewChat
from rasa_flex_handoff.settings import CONVERSATIONS, LEGACY, Settings
from tests.unit import sessions
from tests.unit.sessions import VISITOR_SLOTS, fresh_session, is_handoff_turn, rasa_session_start, run_custom_action, states_after


def tracker(slots: Optional[Dict[str, Any]] = None, events: Optional[List[Dict[str, Any]]] = None) -> Tracker:
    return Tracker("visitor-1", slots or {}, {"intent": {"name": "order_status"}}, events or [], False, None, {}, "")


def user(intent: str) -> Dict[str, Any]:
    return {"event": "user", "text": intent, "parse_data": {"intent": {"name": intent, "confidence": 0.3}}}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name}


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("NW-12345", "NW-12345"),
        ("nw-12345", "NW-12345"),
        ("NW12345", "NW-12345"),
        ("nw 12345", "NW-12345"),
        (" NW-12345 ", "NW-12345"),
        ("NW-1234", None),
        ("12345", None),
        ("", None),
        (None, None),
        ("NW-123456", None),
    ],
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
    events = [action("action_listen"), user("greet"), action("utter_greet"), action("action_listen"), user("nlu_fallback")]
    assert consecutive_fallbacks(events) == 1
    dispatcher = CollectingDispatcher()
    ActionFallback().run(dispatcher, tracker(events=events), {})
    assert "rephrase" in dispatcher.messages[0]["text"]
    assert not dispatcher.messages[0].get("buttons")


def test_second_fallback_in_a_row_offers_a_person() -> None:
    events = [
        action("action_listen"),
        user("nlu_fallback"),
        action("action_fallback"),
        action("action_listen"),
        user("nlu_fallback"),
    ]
    assert consecutive_fallbacks(events) == 2
    dispatcher = CollectingDispatcher()
    ActionFallback().run(dispatcher, tracker(events=events), {})
    payloads = [b["payload"] for b in dispatcher.messages[0]["buttons"]]
    assert "/talk_to_agent" in payloads


def test_an_understood_turn_resets_the_fallback_count() -> None:
    events = [
        user("nlu_fallback"),
        action("action_fallback"),
        action("action_listen"),
        user("greet"),
        action("utter_greet"),
        action("action_listen"),
        user("nlu_fallback"),
    ]
    assert consecutive_fallbacks(events) == 1


def test_a_message_the_closed_chat_did_not_take_is_replayed_as_a_new_turn() -> None:
    latest = {
        "text": "opening hours?",
        "intent": {"name": "ask_opening_hours", "confidence": 0.9},
        "entities": [],
        "message_id": "m1",
        "metadata": {"page": "shop"},
    }
    t = Tracker(
        "visitor-1",
        {},
        latest,
        [{"event": "user", "text": "opening hours?", "input_channel": "cmdline"}],
        False,
        None,
        {},
        "cmdline",
    )
    listen, user = answer_again(t)
    assert listen == {"event": "action", "name": "action_listen", "policy": None, "confidence": None, "timestamp": None}
    assert user["text"] == "opening hours?" and user["parse_data"]["intent"]["name"] == "ask_opening_hours"
    assert user["metadata"] == {"page": "shop", "handoff": {"replayed": True}}


# --- the handoff actions --------------------------------------------------------------------

SENDER = "3f2b9c1d8e7a46f0b1c2d3e4f5a6b7c8"
# Every handoff response, worded so a test can tell them apart.
DOMAIN: Dict[str, Any] = {"responses": {name: [{"text": f"<{name}>"}] for name in handoff.RESPONSES}}
WEBHOOK_PATH = "/webhooks/handoff_socketio/flex"


class FakeFlex(FlexChats):
    """Twilio's cloud as the handoff actions meet it, in memory: one chat, its messages, a close, refusals."""

    mode = CONVERSATIONS

    def __init__(self, settings: Settings, mode: str = CONVERSATIONS) -> None:
        super().__init__(client=None, settings=settings)
        self.chat_mode = mode
        self.made: List[NewChat] = []
        self.webhooks: List[str] = []
        self.posted: List[str] = []
        self.summaries: List[str] = []  # the bot's summary for the agent, posted before the visitor's words
        self.replies: List[FlexMessage] = []
        self.closed = False
        self.closes = 0
        self.discarded: List[FlexChat] = []
        self.refuse: Dict[str, int] = {}  # operation -> HTTP status Twilio answers it with
        self.attributes: Optional[str] = None

    def _twilio(self, operation: str) -> None:
        if operation in self.refuse:
            raise TwilioRestException(self.refuse[operation], f"https://flex.twilio.com/{operation}", "refused")

    async def find_route(self) -> str:
        return "IG" + "0" * 32

    async def _create(self, new: NewChat) -> FlexChat:
        async def create() -> FlexChat:
            self._twilio("create")
            self.made.append(new)
            return FlexChat(self.chat_mode, "CH1", "visitor-identity", "IS1")

        return await self.call("create", create, creates=True)

    async def register_webhook(self, chat: FlexChat, url: str) -> None:
        self.webhooks.append(url)

    async def _post_summary(self, chat: FlexChat, author: str, body: str, attributes: str) -> FlexMessage:
        self._twilio("summary")
        self.summaries.append(body)
        return FlexMessage(f"IMS{len(self.summaries)}", 0, author, body, summary=True)

    async def _post(self, chat: FlexChat, body: str, attributes: str) -> FlexMessage:
        self._twilio("post")
        if self.closed:
            self._twilio_closed()
        self.posted.append(body)
        return FlexMessage(f"IM{len(self.posted)}", len(self.posted), chat.identity, body)

    async def _post_media(self, chat: FlexChat, media_sid: str, attributes: str) -> FlexMessage:
        raise AssertionError("the actions never post a visitor's file")

    async def media_link(self, service_sid: str, media_sid: str) -> str:
        async def fetch() -> str:
            self._twilio("media")
            return f"https://media.example.com/{service_sid}/{media_sid}?Signature=s"

        return await self.call("fetch media", fetch)

    def _twilio_closed(self) -> None:
        raise TwilioRestException(400, "https://conversations.twilio.com/Messages", "conversation is closed")

    async def participants(self, chat: FlexChat) -> List[FlexParticipant]:
        return []

    async def recent_messages(self, chat: FlexChat, limit: int) -> List[FlexMessage]:
        return sorted(self.replies, key=lambda m: -m.index)[:limit]

    async def _is_closed(self, chat: FlexChat) -> bool:
        return self.closed

    async def _attributes(self, chat: FlexChat) -> Optional[str]:
        return self.attributes

    async def _set_attributes(self, chat: FlexChat, attributes: str) -> None:
        self.attributes = attributes

    async def _close(self, chat: FlexChat) -> None:
        self.closes += 1
        self.closed = True

    async def _discard(self, chat: FlexChat) -> None:
        self.discarded.append(chat)


@pytest.fixture
def flex(monkeypatch: pytest.MonkeyPatch) -> Tuple[FakeFlex, List[Optional[str]]]:
    """The fake Flex behind the actions' `flex_chats`, and the Flex mode each action asked for (None: FLEX_MODE)."""
    env = {
        **DEVELOPMENT.as_env(),
        "PUBLIC_URL": "https://bot.example.com",
        "TWILIO_API_BASE": "http://127.0.0.1:9",
        "FLEX_MODE": CONVERSATIONS,
        "TWILIO_RETRIES": "0",
        "HANDOFF_SHELL_WAIT": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HANDOFF_SECRET", raising=False)
    asked: List[Optional[str]] = []
    fakes: List[FakeFlex] = []

    def flex_chats(client: Any, settings: Settings, mode: Optional[str] = None) -> FlexChats:
        asked.append(mode)
        if not fakes:
            fakes.append(FakeFlex(settings))
        fakes[0].settings = settings
        return fakes[0]

    monkeypatch.setattr(actions, "flex_chats", flex_chats)
    fake = FakeFlex(actions.settings_from_env())
    fakes.append(fake)
    return fake, asked


def handed_off_slots(mode: str = CONVERSATIONS) -> Dict[str, Any]:
    return handoff.start_slots(FlexChat(mode, "CH1", "visitor-identity", "IS1"), last_index=0)


def turn(text: str, slots: Optional[Dict[str, Any]] = None, webhooks: bool = False, intent: str = "handoff_relay") -> Tracker:
    """The tracker an action gets for the visitor's latest message; `webhooks`: over our socket.io channel."""
    metadata = handoff.declare_capabilities({}, WEBHOOK_PATH, SENDER, DEVELOPMENT.auth_token) if webhooks else {}
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0}, "message_id": "m1", "metadata": metadata}
    events = [{"event": "user", "text": text, "input_channel": "handoff_socketio", "metadata": metadata}]
    return Tracker(SENDER, slots or {}, latest, events, False, None, {}, "handoff_socketio")


def said(dispatcher: CollectingDispatcher) -> List[Any]:
    """What the action said: response names, or the text of messages it put together itself."""
    return [m.get("response") or m.get("text") for m in dispatcher.messages]


def slot_values(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def test_asking_again_while_handed_off_says_so_and_opens_no_second_chat(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToAgent().run(dispatcher, turn("/talk_to_agent", handed_off_slots()), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_already"]
    assert events == [] and asked == [] and fake.made == []


async def test_a_handoff_opens_the_chat_with_a_webhook_and_the_visitors_words(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToAgent().run(dispatcher, turn("can I talk to a person", webhooks=True), DOMAIN)
    assert asked == [None]  # a new chat: the configured FLEX_MODE decides
    assert said(dispatcher) == ["utter_handoff_connecting"]
    # Our channel takes files during the chat: the widget learns the limits and where to upload.
    limits = {"max_bytes": 16 * 1024 * 1024, "types": list(DEFAULT_TYPES), "upload_path": "/webhooks/handoff_socketio/media"}
    connecting = {"role": "system", "event": "connecting", "channel_sid": "CH1", "attachments": limits}
    assert dispatcher.messages[0]["handoff"] == connecting
    assert fake.posted == ["can I talk to a person"] and len(fake.webhooks) == 1
    assert fake.webhooks[0].startswith("https://bot.example.com" + WEBHOOK_PATH + "?c=")
    assert slot_values(events) == handoff.start_slots(FlexChat(CONVERSATIONS, "CH1", "visitor-identity", "IS1"))
    # The agent reads the bot's summary first; the context carries the same.
    [summary] = fake.summaries
    assert summary.startswith("Summary from the bot") and fake.made[0].pre_engagement_data["summary"]["text"] == summary


async def test_a_channel_without_our_routes_is_offered_no_uploads(
    flex: Tuple[FakeFlex, List[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_ATTACHMENT_MAX_BYTES", "1000")
    dispatcher = CollectingDispatcher()
    await ActionHandoffToAgent().run(dispatcher, turn("a person please"), DOMAIN)  # rasa shell: no webhook path
    assert said(dispatcher) == ["utter_handoff_connecting"] and "attachments" not in dispatcher.messages[0]["handoff"]
    dispatcher = CollectingDispatcher()
    await ActionHandoffToAgent().run(dispatcher, turn("a person please", webhooks=True), DOMAIN)
    assert dispatcher.messages[0]["handoff"]["attachments"]["max_bytes"] == 1000


async def test_a_summary_flex_refuses_does_not_stop_the_handoff(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    fake.refuse["summary"] = 400
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToAgent().run(dispatcher, turn("a person please", webhooks=True), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_connecting"] and fake.discarded == []
    assert fake.summaries == [] and fake.posted == ["a person please"]
    assert "summary" in fake.made[0].pre_engagement_data  # the agent still has it in the context
    assert slot_values(events)[handoff.CHANNEL_SLOT] == "CH1"


async def test_a_handoff_flex_refuses_tells_the_visitor_and_leaves_nothing_behind(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    fake.refuse["post"] = 400  # the chat is made, its opening message is refused
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToAgent().run(dispatcher, turn("a person please"), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_failed"]
    assert events == []
    assert [chat.channel_sid for chat in fake.discarded] == ["CH1"]


async def test_a_handoff_twilio_cannot_make_fails_without_a_chat(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    fake.refuse["create"] = 500
    dispatcher = CollectingDispatcher()
    assert await ActionHandoffToAgent().run(dispatcher, turn("a person please"), DOMAIN) == []
    assert said(dispatcher) == ["utter_handoff_failed"] and fake.made == []


async def test_relaying_into_a_chat_the_agent_closed_hands_back_and_replays_the_message(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex
    fake.closed = True
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, turn("still there?", handed_off_slots()), DOMAIN)
    assert asked == [CONVERSATIONS]
    assert said(dispatcher) == ["utter_handoff_agent_ended", "utter_bot_back"]
    assert [m["handoff"]["event"] for m in dispatcher.messages] == ["chat_closed", "bot_resumed"]
    cleared = len(handoff.HANDOFF_SLOTS)
    assert events[:cleared] == [SlotSet(name, None) for name in handoff.HANDOFF_SLOTS]
    assert events[cleared:] == [SessionStarted(), ActionExecuted("action_listen"), *answer_again(turn("still there?"))[1:]]
    assert fake.posted == []  # the bot answers it instead, in a new session


async def test_a_relay_that_fails_tells_the_visitor_and_keeps_the_handoff(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    fake.refuse["post"] = 403
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, turn("hello?", handed_off_slots(), webhooks=True), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_relay_failed"]
    assert dispatcher.messages[0]["handoff"]["event"] == "relay_failed"
    assert events == []


async def test_a_relay_over_a_webhook_channel_says_nothing_more(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, turn("hello?", handed_off_slots(), webhooks=True), DOMAIN)
    assert fake.posted == ["hello?"] and dispatcher.messages == [] and events == []


async def test_a_polling_channel_hears_the_agent_and_a_file_as_a_link_in_the_domains_words(
    flex: Tuple[FakeFlex, List[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = flex
    monkeypatch.setenv("HANDOFF_SHELL_WAIT", "2")
    invoice = FlexMedia("ME1", "invoice.pdf", "application/pdf", 1234)
    fake.replies = [FlexMessage("IM7", 7, "alice", "Hi, Alice here"), FlexMessage("IM8", 8, "alice", "", media=(invoice,))]
    domain = {"responses": {**DOMAIN["responses"], "utter_handoff_attachment": [{"text": "sent {filename}: {url} {other}"}]}}
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, turn("hello?", handed_off_slots()), domain)
    link = "https://media.example.com/IS1/ME1?Signature=s"  # Twilio's temporary link, which a terminal opens
    assert said(dispatcher) == ["alice: Hi, Alice here", f"alice: sent invoice.pdf: {link} {{other}}"]
    file = {"attachment": {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 1234, "media_sid": "ME1"}}
    assert [m["handoff"] for m in dispatcher.messages] == [
        {"role": "agent", "agent": "alice", "body": "Hi, Alice here", "message_sid": "IM7"},
        {"role": "agent", "agent": "alice", "body": f"sent invoice.pdf: {link} {{other}}", "message_sid": "IM8", **file},
    ]
    assert slot_values(events) == {"handoff_last_index": 8.0, "handoff_status": "active"}


async def test_a_file_whose_link_twilio_does_not_give_is_still_mentioned(
    flex: Tuple[FakeFlex, List[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = flex
    monkeypatch.setenv("HANDOFF_SHELL_WAIT", "2")
    fake.refuse["media"] = 404
    fake.replies = [FlexMessage("IM8", 8, "alice", "", media=(FlexMedia("ME1", None, "image/png", 9),))]
    domain = {"responses": {**DOMAIN["responses"], "utter_handoff_attachment": [{"text": "sent {filename}: {url}"}]}}
    dispatcher = CollectingDispatcher()
    await ActionRelayToAgent().run(dispatcher, turn("hello?", handed_off_slots()), domain)
    assert said(dispatcher) == ["alice: sent attachment.png:"]


async def test_a_polling_channel_without_a_reply_is_told_the_message_went_through(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, turn("hello?", handed_off_slots()), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_waiting"]
    assert slot_values(events) == {"handoff_last_index": 0.0}


async def test_relaying_outside_a_handoff_does_nothing(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex
    dispatcher = CollectingDispatcher()
    assert await ActionRelayToAgent().run(dispatcher, turn("hello?"), DOMAIN) == []
    assert dispatcher.messages == [] and asked == []


async def test_ending_outside_a_handoff_hands_back_without_calling_flex(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex
    dispatcher = CollectingDispatcher()
    events = await ActionEndHandoff().run(dispatcher, turn("/end_chat", intent="end_chat"), DOMAIN)
    assert said(dispatcher) == ["utter_handoff_ended", "utter_bot_back"]
    assert [m["handoff"]["event"] for m in dispatcher.messages] == ["visitor_left", "bot_resumed"]
    assert events == slot_events(handoff.cleared_slots())  # not handed off: no new session, the bot's dialogue goes on
    assert asked == [] and fake.closes == 0


async def test_ending_closes_the_chat_in_the_generation_it_was_started_in(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, asked = flex  # FLEX_MODE is conversations; the chat was started in legacy Flex
    dispatcher = CollectingDispatcher()
    events = await ActionEndHandoff().run(dispatcher, turn("/end_chat", handed_off_slots(LEGACY), intent="end_chat"), DOMAIN)
    assert asked == [LEGACY] and fake.closes == 1
    assert said(dispatcher) == ["utter_handoff_ended", "utter_bot_back"]
    assert events == [*slot_events(handoff.cleared_slots()), SessionStarted()]


# --- the bot resumes in a new session -------------------------------------------------------
#
# The actions' events applied to a real Rasa tracker as Rasa's processor applies them
# (tests/unit/sessions.py), with the tracker and domain rasa-sdk hands the action.


def as_action_server_gets_it(conversation: DialogueStateTracker) -> Tuple[Tracker, Dict[str, Any]]:
    """The tracker and domain a custom action receives for this conversation."""
    return Tracker.from_dict(conversation.current_state(EventVerbosity.ALL)), sessions.DOMAIN.as_dict()


def assert_resumed_in_a_new_session(conversation: DialogueStateTracker, before: List[Any]) -> None:
    """(a) No handoff turn in what the policies featurize, (b) the visitor's slots, (c) all events, (d) no handoff state."""
    applied = conversation.applied_events()
    assert [event for event in applied if is_handoff_turn(event)] == []
    assert {name: conversation.get_slot(name) for name in VISITOR_SLOTS} == VISITOR_SLOTS
    assert list(conversation.events)[: len(before)] == before
    assert {name: conversation.get_slot(name) for name in handoff.HANDOFF_SLOTS} == handoff.cleared_slots()
    session = [i for i, event in enumerate(conversation.events) if isinstance(event, RasaSessionStarted)][-1]
    assert session >= len(before)  # the new session starts after everything the conversation had


async def test_ending_the_chat_resumes_the_bot_in_a_new_session_that_rasa_listens_in(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    conversation = sessions.handed_off()
    conversation.update(RasaActionExecuted(ACTION_LISTEN_NAME))
    conversation.update(sessions.user("/end_chat", "end_chat"))
    before = list(conversation.events)
    tracker, domain = as_action_server_gets_it(conversation)
    dispatcher = CollectingDispatcher()
    events = await ActionEndHandoff().run(dispatcher, tracker, domain)
    assert fake.closes == 1
    # rasa-sdk events: the handoff slots cleared, a session started, the visitor's slots set again.
    cleared = len(handoff.HANDOFF_SLOTS)
    assert events[:cleared] == [SlotSet(name, None) for name in handoff.HANDOFF_SLOTS]
    assert events[cleared] == SessionStarted() and slot_values(events[cleared + 1 :]) == VISITOR_SLOTS
    assert [e["event"] for e in events[cleared + 1 :]] == ["slot"] * len(VISITOR_SLOTS)

    run_custom_action(conversation, "action_end_handoff", dispatcher.messages, events)
    # Rasa's next prediction after the action: the follow-up the session start left, action_listen (no policy asked).
    assert conversation.followup_action == ACTION_LISTEN_NAME
    conversation.update(RasaActionExecuted(ACTION_LISTEN_NAME, policy="followup_action", confidence=1.0))
    assert_resumed_in_a_new_session(conversation, before)
    # The next message is seen as after Rasa's own session start, and as a new visitor's first.
    rasa = sessions.handed_off()
    rasa.update_with_events(before[len(rasa.events) :], sessions.DOMAIN)
    run_custom_action(rasa, "action_end_handoff", dispatcher.messages, events[: len(handoff.HANDOFF_SLOTS)])
    await rasa_session_start(rasa)
    hello = sessions.user("hello", "greet")
    assert states_after(conversation, hello) == states_after(rasa, hello) == states_after(fresh_session(), hello)


async def test_a_message_the_closed_chat_did_not_take_is_the_new_sessions_first_turn(flex: Tuple[FakeFlex, List[Any]]) -> None:
    fake, _ = flex
    fake.closed = True
    conversation = sessions.handed_off()
    conversation.update(RasaActionExecuted(ACTION_LISTEN_NAME))
    conversation.update(sessions.user("hello", "greet", input_channel="rest"))  # `rasa shell` or Rasa's REST: NLU ran
    before = list(conversation.events)
    tracker, domain = as_action_server_gets_it(conversation)
    dispatcher = CollectingDispatcher()
    events = await ActionRelayToAgent().run(dispatcher, tracker, domain)
    assert said(dispatcher) == ["utter_handoff_agent_ended", "utter_bot_back"] and fake.posted == []
    assert [e["event"] for e in events[len(handoff.HANDOFF_SLOTS) :]] == [
        "session_started",
        *["slot"] * len(VISITOR_SLOTS),
        "action",
        "user",
    ]

    run_custom_action(conversation, "action_relay_to_agent", dispatcher.messages, events)
    assert_resumed_in_a_new_session(conversation, before)
    # The replay is the latest user turn, after the new session's start: the bot answers it, as a new visitor's first.
    replayed = conversation.get_last_event_for(RasaUserUttered)
    assert replayed.text == "hello" and replayed.metadata["handoff"] == {"replayed": True}
    positions = {type(event).__name__: i for i, event in enumerate(conversation.events)}  # each kind's last position
    assert positions["UserUttered"] == len(conversation.events) - 1 > positions["SessionStarted"] > len(before)
    assert conversation.followup_action is None  # the policies predict the answer
    assert conversation.applied_events()[-2:] == [RasaActionExecuted(ACTION_LISTEN_NAME), replayed]
    assert states_after(conversation) == states_after(fresh_session(sessions.user("hello", "greet")))


async def test_a_response_the_domain_lacks_is_logged_by_name_and_not_sent(
    flex: Tuple[FakeFlex, List[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    domain = {"responses": {k: v for k, v in DOMAIN["responses"].items() if k != "utter_handoff_ended"}}
    dispatcher = CollectingDispatcher()
    with caplog.at_level(logging.ERROR, logger="rasa_flex_handoff.actions"):
        await ActionEndHandoff().run(dispatcher, turn("/end_chat", intent="end_chat"), domain)
    assert said(dispatcher) == ["utter_bot_back"]
    assert "utter_handoff_ended" in caplog.text


def test_words_an_action_puts_together_come_from_the_domain() -> None:
    domain = {"responses": {"utter_handoff_attachment": [{"image": "x.png"}, {"text": "(a file)"}, {"text": "(another)"}]}}
    assert domain_text(domain, "utter_handoff_attachment") == "(a file)"
    assert domain_text(domain, "utter_missing") is None
    assert domain_text({}, "utter_handoff_attachment") is None
