"""HandoffPolicy: visitor turns go to the agent while handed off; otherwise it abstains."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff.domain_check import HandoffSetupError, fragment_text
from rasa_flex_handoff.policy import HandoffPolicy

# The package's fragment (all the handoff needs) plus one intent of the bot's own.
DOMAIN = Domain.from_yaml(fragment_text()).merge(
    Domain.from_yaml('version: "3.1"\nintents: [greet]\nresponses:\n  utter_greet: [{text: hi}]\n')
)


@pytest.fixture
def policy(tmp_path: Path) -> HandoffPolicy:
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    resource = Resource("handoff_policy")
    trained = HandoffPolicy.create(HandoffPolicy.get_default_config(), storage, resource, context)
    trained.train([], DOMAIN)
    return HandoffPolicy.load(HandoffPolicy.get_default_config(), storage, resource, context)


def predicted(policy: HandoffPolicy, events: List[Event]) -> Optional[str]:
    tracker = DialogueStateTracker.from_events("visitor", events, slots=DOMAIN.slots)
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    if max(prediction.probabilities) == 0:
        return None
    assert max(prediction.probabilities) == 1.0
    return DOMAIN.action_names_or_texts[prediction.max_confidence_index]


def user(text: str, intent: str) -> List[Event]:
    return [ActionExecuted("action_listen"), UserUttered(text, intent={"name": intent, "confidence": 1.0})]


def test_outranks_rule_policy(policy: HandoffPolicy) -> None:
    from rasa.core.constants import RULE_POLICY_PRIORITY

    assert policy.priority > RULE_POLICY_PRIORITY


@pytest.mark.parametrize("status", ["pending", "active"])
def test_relays_every_visitor_turn_while_handed_off(policy: HandoffPolicy, status: str) -> None:
    assert predicted(policy, [SlotSet("handoff_status", status), *user("hello", "greet")]) == "action_relay_to_agent"
    assert predicted(policy, [SlotSet("handoff_status", status), *user("agent!", "talk_to_agent")]) == "action_relay_to_agent"


def test_end_chat_ends_the_handoff(policy: HandoffPolicy) -> None:
    assert predicted(policy, [SlotSet("handoff_status", "active"), *user("/end_chat", "end_chat")]) == "action_end_handoff"


def test_listens_after_its_own_actions(policy: HandoffPolicy) -> None:
    events = [SlotSet("handoff_status", "active"), *user("hi", "greet"), ActionExecuted("action_relay_to_agent")]
    assert predicted(policy, events) == "action_listen"
    events = [*user("/end_chat", "end_chat"), ActionExecuted("action_end_handoff"), SlotSet("handoff_status", None)]
    assert predicted(policy, events) == "action_listen"


def test_abstains_when_not_handed_off(policy: HandoffPolicy) -> None:
    assert predicted(policy, user("hello", "greet")) is None
    assert predicted(policy, [SlotSet("handoff_status", None), *user("/end_chat", "end_chat")]) is None
    assert predicted(policy, [*user("agent", "talk_to_agent"), ActionExecuted("action_handoff_to_agent")]) is None


def test_training_on_a_domain_without_the_handoff_slots_names_them(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    policy = HandoffPolicy.create(HandoffPolicy.get_default_config(), storage, Resource("p"), context)
    lacking = Domain.from_yaml('version: "3.1"\nintents: [greet, talk_to_agent, end_chat]\n')
    with pytest.raises(HandoffSetupError, match="slots handoff_status, handoff_channel_sid"):
        policy.train([], lacking)


@pytest.mark.parametrize("status", [None, "message"])
def test_the_offers_buttons_run_their_actions_whatever_nlu_made_of_them(policy: HandoffPolicy, status: Optional[str]) -> None:
    before = [SlotSet("handoff_status", status)]
    assert predicted(policy, [*before, *user("/handoff_leave_message", "greet")]) == "action_handoff_leave_message"
    assert predicted(policy, [*before, *user("stay", "handoff_stay")]) == "action_handoff_stay"


def test_the_turn_after_choosing_to_leave_a_message_is_the_message(policy: HandoffPolicy) -> None:
    events = [SlotSet("handoff_status", "message"), *user("my order 123 never came, call me on 555", "greet")]
    assert predicted(policy, events) == "action_handoff_take_message"
    assert predicted(policy, [*events, ActionExecuted("action_handoff_take_message")]) == "action_listen"
    # Without having chosen to, the same words are the bot's business.
    assert predicted(policy, [SlotSet("handoff_status", None), *user("my order 123 never came", "greet")]) is None


@pytest.mark.parametrize("status", ["pending", "active"])
def test_while_handed_off_the_offers_words_go_to_the_agent(policy: HandoffPolicy, status: str) -> None:
    assert predicted(policy, [SlotSet("handoff_status", status), *user("leave a message", "handoff_leave_message")]) == (
        "action_relay_to_agent"
    )


def prediction_events(policy: HandoffPolicy, events: List[Event]) -> List[Event]:
    tracker = DialogueStateTracker.from_events("visitor", events, slots=DOMAIN.slots)
    return list(policy.predict_action_probabilities(tracker, DOMAIN).events)


@pytest.mark.parametrize(
    ("status", "text", "intent"),
    [
        ("survey", '/handoff_rating{"rating": 4}', "handoff_rating"),
        ("survey", "5", "nlu_fallback"),
        ("survey", "/handoff_skip", "handoff_skip"),
        ("survey_comment", "The agent was quick, thanks", "greet"),
        ("transcript", "/handoff_transcript", "handoff_transcript"),
        ("transcript_email", "jane@example.com", "nlu_fallback"),
    ],
)
def test_after_chat_answers_run_the_after_chat_action(policy: HandoffPolicy, status: str, text: str, intent: str) -> None:
    events = [SlotSet("handoff_status", status), *user(text, intent)]
    assert predicted(policy, events) == "action_handoff_after_chat"
    assert prediction_events(policy, events) == []
    # Then it listens.
    assert predicted(policy, [*events, ActionExecuted("action_handoff_after_chat")]) == "action_listen"


@pytest.mark.parametrize(
    ("status", "text", "intent"),
    [("survey", "where is my order?", "greet"), ("transcript", "hi", "greet"), ("transcript_email", "no idea", "greet")],
)
def test_a_visitor_who_moves_on_gets_the_bot_and_the_after_chat_ends(
    policy: HandoffPolicy, status: str, text: str, intent: str
) -> None:
    events = [SlotSet("handoff_status", status), SlotSet("handoff_channel_sid", "CH" + "0" * 32), *user(text, intent)]
    assert predicted(policy, events) is None  # the bot's policies answer
    ended = prediction_events(policy, events)
    assert SlotSet("handoff_status", None) in ended and SlotSet("handoff_channel_sid", None) in ended
    # Only on the turn's first prediction: later ones (after the bot's action) leave the slots alone.
    assert prediction_events(policy, [*events, ActionExecuted("utter_greet")]) == []
