"""A bot's conversation through a handoff as Rasa's tracker holds it, for the tests of the bot resuming in a new session.

`handed_off()` is a real `DialogueStateTracker` (rasa.shared.core) of a bot with the handoff's
domain fragment and slots of its own: a greeting, an order number and a customer tier the bot
collected, the request for an agent, a relayed visitor turn and an agent turn. The resume tests
apply what the connector or the actions return to it, as Rasa would, and compare the result with
what Rasa's own `ActionSessionStart` makes of the same conversation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rasa.core.actions.action import ActionSessionStart
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
    deserialise_events,
)
from rasa.shared.core.trackers import DialogueStateTracker

import rasa_flex_handoff
from rasa_flex_handoff import chat_state, handoff
from rasa_flex_handoff.chat_state import Notice, Step
from rasa_flex_handoff.flex import FlexChat
from rasa_flex_handoff.flex_events import FlexEvent

CHAT = FlexChat("conversations", "CH1", "visitor-identity", "IS1")

# The bot's own part of the domain: a slot the policies see (customer_tier), one with an initial
# value the visitor changed (newsletter), one they do not see (order_number).
BOT_DOMAIN = """
version: "3.1"
intents:
  - greet
  - order_status
entities:
  - order_number
slots:
  order_number:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: order_number
  customer_tier:
    type: categorical
    values: [gold, silver]
    influence_conversation: true
    mappings:
      - type: custom
  newsletter:
    type: bool
    initial_value: true
    influence_conversation: true
    mappings:
      - type: custom
actions:
  - action_order_status
responses:
  utter_greet:
    - text: "Hey! How are you?"
"""


def domain(session_config: str = "") -> Domain:
    """The bot's domain with the handoff's fragment, as `rasa-flex-handoff init` leaves it; `session_config` YAML added."""
    fragment = Domain.from_path(Path(rasa_flex_handoff.__file__).parent / "domain.yml")
    return Domain.from_yaml(BOT_DOMAIN + session_config).merge(fragment)


DOMAIN = domain()
SESSION_METADATA = {"page": "https://shop.example.com/orders"}
# The visitor's slots before the handoff (newsletter: set to None, away from its initial value).
VISITOR_SLOTS = {
    "session_started_metadata": SESSION_METADATA,
    "order_number": "NW-12345",
    "customer_tier": "gold",
    "newsletter": None,
}


def user(text: str, intent: str, **kwargs: Any) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 1.0}, **kwargs)


def worded(step: Step) -> Event:
    """A step as the connector records it: a notice worded (here: its response name in brackets)."""
    if isinstance(step, Notice):
        return BotUttered(f"<{step.response}>", metadata={"utter_action": step.response, **step.metadata})
    return step


def record(tracker: DialogueStateTracker, steps: Sequence[Step], domain: Domain = DOMAIN) -> None:
    for step in steps:
        tracker.update(worded(step), domain)


def handed_off(domain: Domain = DOMAIN) -> DialogueStateTracker:
    """A conversation handed off to an agent: bot turns that set slots, the handoff, a relayed and an agent turn."""
    tracker = DialogueStateTracker("visitor-1", domain.slots)
    events: List[Event] = [
        SlotSet("session_started_metadata", SESSION_METADATA),
        ActionExecuted(ACTION_SESSION_START_NAME),
        SessionStarted(),
        SlotSet("session_started_metadata", SESSION_METADATA),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("hello", "greet"),
        ActionExecuted("utter_greet"),
        BotUttered("Hey! How are you?"),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("where is NW-12345?", "order_status", entities=[{"entity": "order_number", "value": "NW-12345"}]),
        SlotSet("order_number", "NW-12345"),
        ActionExecuted("action_order_status"),
        BotUttered("NW-12345 shipped with DHL."),
        SlotSet("customer_tier", "gold"),
        SlotSet("newsletter", None),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("/talk_to_agent", handoff.TALK_TO_AGENT_INTENT),
        ActionExecuted("action_handoff_to_agent"),
        BotUttered("<utter_handoff_connecting>", metadata=handoff.handoff_metadata("system", event="connecting")),
        *[SlotSet(name, value) for name, value in handoff.start_slots(CHAT, last_index=0).items()],
        ActionExecuted(ACTION_LISTEN_NAME),
    ]
    for event in events:
        tracker.update(event, domain)
    relayed = UserMessage("my parcel never arrived", None, "visitor-1", input_channel="handoff_socketio", message_id="m2")
    record(tracker, chat_state.on_visitor_message(CHAT, relayed, False, False, tracker.current_slot_values()), domain)
    agent = FlexEvent("onMessageAdded", "CH1", "IM1", "alice", "Let me check", 1, None, None, None, False)
    record(tracker, chat_state.on_flex_event(tracker.events, tracker.current_slot_values(), agent), domain)
    assert tracker.get_slot(handoff.STATUS_SLOT) == handoff.ACTIVE
    return tracker


def is_handoff_turn(event: Event) -> bool:
    """A turn of the handoff: its request, the handoff actions, relayed visitor turns, agent and system turns."""
    if isinstance(event, UserUttered):
        return (event.intent or {}).get("name") in (handoff.TALK_TO_AGENT_INTENT, chat_state.RELAYED_INTENT, "end_chat")
    if isinstance(event, ActionExecuted):
        return event.action_name in ("action_handoff_to_agent", "action_relay_to_agent", "action_end_handoff")
    if isinstance(event, BotUttered):
        return "handoff" in (event.metadata or {})
    return isinstance(event, SlotSet) and event.key in handoff.HANDOFF_SLOTS


async def rasa_session_start(tracker: DialogueStateTracker, domain: Domain = DOMAIN) -> None:
    """What Rasa's processor does when a session starts: `action_session_start` logged, then its events."""
    tracker.update(ActionExecuted(ACTION_SESSION_START_NAME), domain)
    events = await ActionSessionStart().run(CollectingOutputChannel(), None, tracker, domain)
    tracker.update_with_events(events, domain)


def states_after(tracker: DialogueStateTracker, *events: Event, domain: Domain = DOMAIN) -> List[Dict[str, Any]]:
    """What the policies featurize once `events` are added to a copy of `tracker`."""
    copy = tracker.copy()
    copy.update_with_events(list(events), domain)
    return list(copy.past_states(domain))


def run_custom_action(
    tracker: DialogueStateTracker, name: str, messages: Sequence[Dict[str, Any]], events: Sequence[Dict[str, Any]]
) -> None:
    """What Rasa's processor records for a custom action (`_log_action_on_tracker`): the action, its messages, its events.

    The dispatcher's messages become bot turns before the returned events, as `RemoteAction.run` orders them.
    """
    tracker.update(ActionExecuted(name), DOMAIN)
    said: List[Event] = [
        BotUttered(message.get("text") or f"<{message.get('response')}>", metadata={"handoff": message.get("handoff")})
        for message in messages
    ]
    tracker.update_with_events(said + deserialise_events(list(events)), DOMAIN)


def fresh_session(*events: Event, slots: Optional[Dict[str, Any]] = None) -> DialogueStateTracker:
    """A new visitor's conversation that starts with these slots (`VISITOR_SLOTS`), then `events`."""
    carried = slots if slots is not None else VISITOR_SLOTS
    tracker = DialogueStateTracker("a-new-visitor", DOMAIN.slots)
    start: List[Event] = [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted()]
    start += [SlotSet(name, value) for name, value in carried.items()]
    tracker.update_with_events([*start, ActionExecuted(ACTION_LISTEN_NAME), *events], DOMAIN)
    return tracker
