"""`HandoffPolicy`: while a conversation is handed off, every visitor turn goes to the agent.

The connector relays visitor messages itself, but stock channels (`rasa shell`'s cmdline,
Rasa's `rest` and `socketio`) run NLU and policies on every message. This policy outranks
the others while `handoff_status` is pending/active, so those turns run
`action_relay_to_agent` (or `action_end_handoff` for `/end_chat`) instead of bot replies.

When no agent could be had, it also runs the offer's choices in any bot, without rules: the
"leave a message" button, the message the visitor then types (whatever NLU makes of it), and
"stay with the bot". And after the chat, the answers to the survey and the transcript offer
(after_chat.py); a visitor who moves on instead gets the bot's answer, and the after-chat ends.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.core.constants import POLICY_PRIORITY, RULE_POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction, confidence_scores_for
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import after_chat
from rasa_flex_handoff.domain_check import check_domain
from rasa_flex_handoff.handoff import MESSAGE, STATUS_SLOT, cleared_slots, is_active, is_end_chat, is_leave_message, is_stay

RELAY_ACTION = "action_relay_to_agent"
END_ACTION = "action_end_handoff"
HANDOFF_ACTION = "action_handoff_to_agent"
LEAVE_MESSAGE_ACTION = "action_handoff_leave_message"
TAKE_MESSAGE_ACTION = "action_handoff_take_message"
STAY_ACTION = "action_handoff_stay"
AFTER_CHAT_ACTION = "action_handoff_after_chat"
_OWN_ACTIONS = (RELAY_ACTION, END_ACTION, LEAVE_MESSAGE_ACTION, TAKE_MESSAGE_ACTION, STAY_ACTION, AFTER_CHAT_ACTION)


def action_for_turn(status: Optional[str], text: Optional[str], intent: Optional[str]) -> Optional[str]:
    """The handoff action a visitor turn needs with `handoff_status` = `status`, or None when the bot answers it."""
    if is_active({STATUS_SLOT: status}):
        return END_ACTION if is_end_chat(text, intent) else RELAY_ACTION
    if status in after_chat.STATUSES and after_chat.is_answer(status, text, intent):
        return AFTER_CHAT_ACTION
    if is_stay(text, intent):
        return STAY_ACTION
    if is_leave_message(text, intent):
        return LEAVE_MESSAGE_ACTION
    if status == MESSAGE:
        return TAKE_MESSAGE_ACTION  # whatever they typed is the message
    return None


def moved_on(tracker: DialogueStateTracker) -> List[Event]:
    """The events that end the after-chat when the visitor's new turn does not answer its question (none otherwise).

    The bot answers that turn as usual; the events go with whatever the bot's policies predict
    (an ensemble applies every policy's mandatory events), so the question is not asked again.
    """
    status = tracker.get_slot(STATUS_SLOT)
    latest = _latest(tracker)
    # After an action, not the turn's first prediction: the after-chat was ended (or answered) by then.
    if status not in after_chat.STATUSES or not isinstance(latest, UserUttered):
        return []
    if after_chat.is_answer(status, latest.text, (latest.intent or {}).get("name")):
        return []
    return [SlotSet(name, value) for name, value in cleared_slots().items()]


def _latest(tracker: DialogueStateTracker) -> Optional[Event]:
    """The tracker's latest visitor turn or action run, whichever came last (slot events aside)."""
    return next((e for e in reversed(tracker.events) if isinstance(e, (UserUttered, ActionExecuted))), None)


def next_action(tracker: DialogueStateTracker) -> Optional[str]:
    """The action this policy insists on for the tracker, or None to abstain."""
    latest = _latest(tracker)
    if isinstance(latest, UserUttered):
        intent: Optional[str] = (latest.intent or {}).get("name")
        return action_for_turn(tracker.get_slot(STATUS_SLOT), latest.text, intent)
    if isinstance(latest, ActionExecuted) and latest.action_name in _OWN_ACTIONS:
        listen: str = ACTION_LISTEN_NAME
        return listen
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class HandoffPolicy(Policy):
    """Routes visitor turns to the agent while handed off; abstains otherwise. Needs no data."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Outranks RulePolicy, so a `talk_to_agent` or fallback rule cannot interrupt the agent chat."""
        return {POLICY_PRIORITY: RULE_POLICY_PRIORITY + 6}

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[Any] = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn: persist an empty resource so the model loads like any other.

        Checks the domain first: `rasa train` on a bot lacking something the handoff needs fails
        with a `HandoffSetupError` naming it, instead of training a bot whose handoff does nothing.
        """
        check_domain(domain)
        with self._model_storage.write_to(self._resource):
            pass
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """Confidence 1.0 for the handoff action the tracker needs, all zeros otherwise."""
        action = next_action(tracker)
        if action is None or action not in domain.action_names_or_texts:
            return self._prediction(self._default_predictions(domain), events=moved_on(tracker))
        return self._prediction(confidence_scores_for(action, 1.0, domain))
