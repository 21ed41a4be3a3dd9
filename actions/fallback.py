"""Low-confidence handling: ask to rephrase once, then offer a person."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

FALLBACK_ACTION = "action_fallback"
OFFER_AGENT_AFTER = 2


def consecutive_fallbacks(events: List[Dict[str, Any]]) -> int:
    """How many visitor turns in a row, counting the current one, the bot did not understand."""
    turns: List[List[str]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append([])
        elif event.get("event") == "action" and turns:
            turns[-1].append(event.get("name"))
    count = 1  # the current turn, whose fallback is running now
    for actions in reversed(turns[:-1]):
        if FALLBACK_ACTION not in actions:
            break
        count += 1
    return count


class ActionFallback(Action):
    def name(self) -> str:
        return FALLBACK_ACTION

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[Dict[str, Any]]:
        if consecutive_fallbacks(tracker.events) >= OFFER_AGENT_AFTER:
            dispatcher.utter_message(
                text="I'm still not sure I understand. Would you like to talk to a person?",
                buttons=[
                    {"title": "Talk to an agent", "payload": "/talk_to_agent"},
                    {"title": "No, show me what you can do", "payload": "/help"},
                ],
            )
        else:
            dispatcher.utter_message(text='Sorry, I didn\'t quite get that. Could you rephrase? You can also type "help".')
        # Keep the bot waiting for the visitor instead of replaying its last turn.
        return []
