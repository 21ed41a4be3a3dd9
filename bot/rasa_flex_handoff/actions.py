"""Handoff actions: connect the visitor to a Flex agent, relay their turns, and hand back to the bot."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_flex_handoff import agent_chat, handoff
from rasa_flex_handoff.flex import FlexChat, FlexError, FlexMessage
from rasa_flex_handoff.settings import Settings, settings_from_env

logger = logging.getLogger(__name__)

# Fallback wording when domain.yml has no such response.
def say(dispatcher: CollectingDispatcher, domain: Dict[Text, Any], response: Text, **kwargs: Any) -> None:
    """Utter a domain response, or its default wording when the domain lacks it."""
    if response in (domain.get("responses") or {}):
        dispatcher.utter_message(response=response, **kwargs)
    else:
        dispatcher.utter_message(text=handoff.DEFAULT_RESPONSES[response], **kwargs)


def slot_events(values: Dict[Text, Any]) -> List[EventType]:
    """SlotSet events for a {slot: value} mapping."""
    return [SlotSet(name, value) for name, value in values.items()]


class ActionHandoffToAgent(Action):
    """Open a Flex chat carrying the bot context and pause the bot for this conversation."""

    def name(self) -> Text:
        return "action_handoff_to_agent"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        if handoff.is_active(tracker.slots):
            say(dispatcher, domain, "utter_handoff_already")
            return []
        settings = settings_from_env()
        capabilities = handoff.capabilities_of(
            tracker.latest_message.get("metadata"), tracker.sender_id, settings.signing_secret
        )
        try:
            async with agent_chat.flex_client(settings) as client:
                chat = await agent_chat.start(
                    client,
                    settings,
                    sender_id=tracker.sender_id,
                    events=tracker.events,
                    slots=tracker.slots,
                    capabilities=capabilities,
                    intent=(tracker.latest_message.get("intent") or {}).get("name"),
                )
        except FlexError as e:
            logger.info("handoff failed: %s", e.reason)
            say(dispatcher, domain, "utter_handoff_failed")
            return []
        logger.info("handoff started: %s chat %s", chat.mode, chat.channel_sid)
        # The chat details and access token only for a client that asked, over a channel that can carry them.
        details = {"handoff": token_payload(settings, chat)} if capabilities.access_token else None
        say(dispatcher, domain, "utter_handoff_connecting", json_message=details, **notice("connecting", chat))
        events: List[EventType] = slot_events(handoff.start_slots(chat))
        if tracker.active_loop_name:
            events.insert(0, ActiveLoop(None))
        return events


def notice(event: Text, chat: Optional[FlexChat] = None) -> Dict[Text, Any]:
    """Marks a bot turn as a handoff notice, so handoff-aware front ends can follow the chat's state."""
    return handoff.handoff_metadata("system", event=event, channel_sid=chat.channel_sid if chat else None)


def token_payload(settings: Settings, chat: FlexChat) -> Dict[Text, Any]:
    """The custom payload for front ends that talk to Twilio directly."""
    return {
        "event": "connecting",
        "mode": chat.mode,
        "channel_sid": chat.channel_sid,
        "identity": chat.identity,
        "service_sid": chat.service_sid,
        # No API key (auth-token-only setup): no token can be signed; front ends use the socket only.
        "token": handoff.access_token(settings, chat.identity, chat.service_sid) if settings.api_key else None,
        "ttl": settings.token_ttl,
    }


class ActionRelayToAgent(Action):
    """Pass a visitor turn to the agent; on polling channels, show what the agent said meanwhile."""

    def name(self) -> Text:
        return "action_relay_to_agent"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        chat = handoff.chat_from_slots(tracker.slots)
        if chat is None:
            return []
        settings = settings_from_env()
        metadata = tracker.latest_message.get("metadata")
        polls = not handoff.capabilities_of(metadata, tracker.sender_id, settings.signing_secret).webhook_path
        text = tracker.latest_message.get("text") or ""
        async with agent_chat.flex_client(settings) as client:
            outcome = await agent_chat.relay(
                client,
                settings,
                chat,
                text,
                handoff.last_index(tracker.slots),
                wait=settings.shell_wait if polls else 0.0,
                relay_id=tracker.latest_message.get("message_id"),
            )
        if outcome.failure:
            say(dispatcher, domain, "utter_handoff_relay_failed", **notice("relay_failed"))
            return []
        events: List[EventType] = []
        for message in outcome.replies:
            utter_flex_message(dispatcher, chat, message)
        if outcome.closed:
            say(dispatcher, domain, "utter_handoff_agent_ended", **notice("chat_closed"))
            say(dispatcher, domain, "utter_bot_back", **notice("bot_resumed"))
            return slot_events(handoff.cleared_slots()) + ([] if outcome.delivered else answer_again(tracker))
        if polls:
            if not outcome.replies:
                say(dispatcher, domain, "utter_handoff_waiting")
            events.append(SlotSet(handoff.LAST_INDEX_SLOT, float(outcome.last_index)))
            if outcome.replies and tracker.get_slot(handoff.STATUS_SLOT) == handoff.PENDING:
                events.append(SlotSet(handoff.STATUS_SLOT, handoff.ACTIVE))
        return events


def answer_again(tracker: Tracker) -> List[EventType]:
    """Replay the visitor's message as a new turn, so the bot answers what the closed chat could not take.

    The visitor's original turn stays where it was (history shows it once); the replay is marked.
    """
    latest = tracker.latest_message or {}
    return [
        ActionExecuted("action_listen"),
        {
            "event": "user",
            "text": latest.get("text"),
            "parse_data": {key: latest.get(key) for key in ("intent", "entities", "text", "intent_ranking") if key in latest},
            "input_channel": tracker.get_latest_input_channel(),
            "metadata": {**(latest.get("metadata") or {}), "handoff": {"replayed": True}},
        },
    ]


def utter_flex_message(dispatcher: CollectingDispatcher, chat: FlexChat, message: FlexMessage) -> None:
    """An agent (or Flex system) message as a bot turn, marked in its metadata."""
    if message.author == agent_chat.SYSTEM_AUTHOR:
        dispatcher.utter_message(
            text=message.body,
            handoff=handoff.handoff_metadata("system", event="flex_system", message_sid=message.sid),
        )
        return
    body = handoff.agent_body(message.body, message.has_media)
    dispatcher.utter_message(
        text=handoff.agent_text(message.author, body),
        handoff=handoff.handoff_metadata("agent", agent=message.author, body=body, message_sid=message.sid),
    )


class ActionEndHandoff(Action):
    """The visitor ends the agent chat: close the Flex side and resume the bot."""

    def name(self) -> Text:
        return "action_end_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        chat = handoff.chat_from_slots(tracker.slots)
        if chat is not None:
            settings = settings_from_env()
            async with agent_chat.flex_client(settings) as client:
                closed = await agent_chat.end(client, settings, chat)
            if not closed:
                logger.info("Flex chat %s left open after the visitor ended it", chat.channel_sid)
            logger.info("handoff ended by the visitor: chat %s", chat.channel_sid)
        say(dispatcher, domain, "utter_handoff_ended", **notice("visitor_left"))
        say(dispatcher, domain, "utter_bot_back", **notice("bot_resumed"))
        return slot_events(handoff.cleared_slots())
