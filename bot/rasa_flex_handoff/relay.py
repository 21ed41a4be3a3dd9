"""The connector side of the handoff, shared by the socket.io and REST channels.

Visitor messages of a handed-off conversation go straight to Flex (no NLU, no policies)
and Flex webhooks become agent/system turns; what a webhook could not bring (Rasa was down)
is caught up from the Flex chat when the visitor comes back. All update the tracker under Rasa's lock
store, and nothing about a conversation is kept in this process: the tracker holds the
handoff state and the signed webhook URL carries the (encrypted) conversation id.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Text, Tuple
from urllib.parse import parse_qs

import aiohttp
from rasa.core.agent import Agent
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage, decode_bearer_token
from rasa.shared.core.events import BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request, RequestParameters
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from rasa_flex_handoff import agent_chat, flex, handoff
from rasa_flex_handoff.flex import FlexChat, FlexMessage
from rasa_flex_handoff.settings import Settings, settings_from_env
from rasa_flex_handoff.twilio_http import twilio_client
from rasa_flex_handoff import payloads

logger = logging.getLogger(__name__)

# The intent recorded for relayed visitor turns: NLU did not run, and no policy knows it.
RELAYED_INTENT = "handoff_relay"

# Notices only the connector gives (the others are domain responses, see `handoff.DEFAULT_RESPONSES`).
PARTICIPANT_TEXTS = {
    "agent_joined": "{name} joined the chat.",
    "agent_left": "{name} left the chat.",
}

MESSAGE_EVENTS = {"onMessageAdded", "onMessageSent", "onMediaMessageSent"}
JOIN_EVENTS = {"onParticipantAdded", "onMemberAdded"}
LEAVE_EVENTS = {"onParticipantRemoved", "onMemberRemoved"}
ECHO_EVENTS = MESSAGE_EVENTS | JOIN_EVENTS | LEAVE_EVENTS  # ignored when the visitor caused them

# How often a waiting relay or webhook retries the conversation lock (Rasa's default, 1 s, shows
# as a second of lag whenever a visitor message and a webhook of the same chat meet).
LOCK_POLL_SECONDS = 0.05

# Longer ids are no conversation of ours (Rasa's are 32 hex digits; clients may choose their own).
MAX_SENDER_ID = 256

# Delivers visitor-facing payloads for one conversation (socket room emit; REST: nothing).
Deliver = Callable[[Text, List[Dict[Text, Any]]], Awaitable[None]]


def started_on(tracker: DialogueStateTracker, channel: Text) -> bool:
    """Whether the visitor wrote over `channel`: other channels' conversations (guessable ids) stay private."""
    return any(isinstance(event, UserUttered) and event.input_channel == channel for event in tracker.events)


def visitor_message(
    channel: InputChannel,
    text: Optional[Text],
    output: OutputChannel,
    sender_id: Text,
    metadata: Any,
    secret: Text,
    visitor: Optional[Mapping[Text, Any]] = None,
) -> UserMessage:
    """A visitor's message as our connectors pass it on, with the channel's capabilities stamped in its metadata.

    The handoff actions read them to decide webhooks or polling and whether to send the
    access token, so a subclassed or renamed connector keeps working and a client cannot
    claim capabilities for a channel that has none (the stamp is signed with `secret`).
    """
    webhook_path = f"/webhooks/{channel.url_prefix()}/{handoff.WEBHOOK_ROUTE}"
    return UserMessage(
        text, output, sender_id, input_channel=channel.name(),
        metadata=handoff.declare_capabilities(metadata, webhook_path, sender_id, secret, visitor),
    )


def may_read_history(request: Request, sender_id: Text, jwt_key: Optional[Text], jwt_algorithm: Optional[Text]) -> bool:
    """Whether the request may read this conversation's history.

    Without `jwt_key`, whoever holds the conversation id (as with Rasa's own channels). With
    it, a bearer token signed with that key, for this conversation or an admin, the way Rasa's
    HTTP API reads its tokens: `{"user": {"username": <conversation id>}}` or `{"user": {"role": "admin"}}`.
    """
    if not jwt_key:
        return True
    bearer = request.headers.get("Authorization", "")
    claims = decode_bearer_token(bearer, jwt_key, jwt_algorithm or "HS256") if bearer.startswith("Bearer ") else None
    user = (claims or {}).get("user") if isinstance(claims, dict) else None
    if not isinstance(user, dict):
        return False
    return user.get("role") == "admin" or (user.get("username") == sender_id and bool(sender_id))


def conversation_lock(agent: Agent, sender_id: Text) -> AsyncContextManager[Any]:
    """Rasa's lock store lock for one conversation, polled often: relays and webhooks are short."""
    return agent.lock_store.lock(sender_id, wait_time_in_seconds=LOCK_POLL_SECONDS)


def _visitor_payloads(event: Event) -> List[Dict[Text, Any]]:
    """What the visitor is shown for a recorded event (agent and system turns only)."""
    turn = payloads.from_bot_event(event.as_dict()) if isinstance(event, BotUttered) else None
    return [turn] if turn else []


def _system_event(event: Text, text: Text, key: Optional[Text] = None, agent: Optional[Text] = None, **extra: Any) -> BotUttered:
    return BotUttered(text, metadata=handoff.handoff_metadata("system", event=event, message_sid=key, agent=agent, **extra))


def agents_recorded_in(events: Iterable[Event], chat: FlexChat) -> Dict[Text, Text]:
    """Participant sid -> identity of the agents the visitor was told joined this chat and not told left."""
    agents: Dict[Text, Text] = {}
    for event in events:
        if not isinstance(event, BotUttered):
            continue
        meta = (event.metadata or {}).get("handoff") or {}
        if meta.get("role") != "system" or meta.get("channel_sid") != chat.channel_sid or not meta.get("participant_sid"):
            continue
        if meta.get("event") == "agent_joined":
            agents[meta["participant_sid"]] = meta.get("agent", "")
        elif meta.get("event") == "agent_left":
            agents.pop(meta["participant_sid"], None)
    return agents


def webhook_params(body: bytes) -> Optional[RequestParameters]:
    """The form parameters exactly as Twilio sent them, blank values kept (None: not a form body).

    Twilio signs every parameter it posts, empty ones included (a Programmable Chat media
    message's `Body=`, any attribute a client set to ""). Sanic's `request.form` drops blank
    values, so a signature checked over it fails for exactly those webhooks.
    """
    try:
        text = body.decode("utf-8")
        return RequestParameters(parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)))
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass
class FlexEvent:
    """The fields of a Flex webhook that matter here, for both APIs."""

    type: Text
    channel_sid: Text
    message_sid: Optional[Text]
    author: Optional[Text]
    body: Text
    index: Optional[int]
    timestamp: Optional[Text]
    identity: Optional[Text]
    participant_sid: Optional[Text]
    closed: bool
    has_media: bool = False

    @classmethod
    def from_form(cls, form: Mapping[Text, Text]) -> "FlexEvent":
        """Read a Conversations or Programmable Chat post-event webhook."""
        kind = form.get("EventType", "")
        closed = (kind == "onConversationStateUpdated" and form.get("StateTo") == "closed") or (
            kind == "onChannelUpdated" and flex.channel_attributes_inactive(form.get("Attributes"))
        ) or kind in ("onConversationRemoved", "onChannelDestroyed")
        index = form.get("Index")
        return cls(
            type=kind,
            channel_sid=form.get("ConversationSid") or form.get("ChannelSid") or "",
            message_sid=form.get("MessageSid"),
            author=form.get("Author") or form.get("From"),
            body=form.get("Body") or "",
            index=int(index) if index not in (None, "") and str(index).lstrip("-").isdigit() else None,
            timestamp=form.get("DateCreated"),
            identity=form.get("Identity"),
            participant_sid=form.get("ParticipantSid") or form.get("MemberSid"),
            closed=closed,
            has_media=bool(form.get("MediaSid")) or form.get("Media") not in (None, "", "null", "[]"),
        )

    @classmethod
    def from_message(cls, chat: FlexChat, message: FlexMessage) -> "FlexEvent":
        """A message found by listing the chat, as its `onMessageAdded` webhook would have said it."""
        return cls("onMessageAdded", chat.channel_sid, message.sid, message.author, message.body, message.index,
                   message.date_created, None, None, False, has_media=message.has_media)

    @classmethod
    def participant(cls, chat: FlexChat, joined: bool, sid: Text, identity: Text) -> "FlexEvent":
        """Someone found in the chat (or found gone), as its participant webhook would have said it."""
        if chat.mode == flex.CONVERSATIONS:
            kind = "onParticipantAdded" if joined else "onParticipantRemoved"
        else:
            kind = "onMemberAdded" if joined else "onMemberRemoved"
        return cls(kind, chat.channel_sid, None, None, "", None, None, identity, sid, False)

    @classmethod
    def chat_closed(cls, chat: FlexChat) -> "FlexEvent":
        """The chat found closed, as its state-change webhook would have said it."""
        return cls("onConversationStateUpdated", chat.channel_sid, None, None, "", None, None, None, None, True)


@dataclass
class Relay:
    """What became of a visitor message: `notices` to show now; `to_bot` when the bot must answer it."""

    notices: List[Dict[Text, Any]] = field(default_factory=list)
    to_bot: bool = False


class Handoff:
    """Relays visitor turns to Flex and turns Flex events into visitor turns, for one Rasa server."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.settings = settings or settings_from_env()
        self.client = twilio_client(self.settings, asynchronous=True)
        self.validator = RequestValidator(self.settings.auth_token)

    async def close(self) -> None:
        """Release the HTTP session to Twilio."""
        await self.client.http_client.close()

    def _response_text(self, agent: Agent, response: Text) -> Text:
        """The domain's wording for a notice the handoff actions also say, so both paths read the same."""
        responses = agent.domain.responses if agent.domain else {}
        for variation in responses.get(response) or []:
            if variation.get("text"):
                return variation["text"]
        return handoff.DEFAULT_RESPONSES[response]

    def _resume_bot(self, agent: Agent, key: Optional[Text]) -> List[Event]:
        """Events that end the handoff after the chat closed: the notice, cleared slots, and the bot saying it is back."""
        closed = self._response_text(agent, "utter_handoff_agent_ended")
        events: List[Event] = [_system_event("chat_closed", closed, key)]
        events += [SlotSet(name, value) for name, value in handoff.cleared_slots().items()]
        back = self._response_text(agent, "utter_bot_back")
        events.append(
            BotUttered(back, metadata={"utter_action": "utter_bot_back", **handoff.handoff_metadata("system", event="bot_resumed")})
        )
        return events

    async def relay_visitor_message(self, agent: Agent, message: UserMessage) -> Relay:
        """Relay a visitor message when the conversation is handed off.

        `to_bot` means the bot answers it: the conversation is not handed off, the visitor
        asked to end the chat (`HandoffPolicy` runs `action_end_handoff`), or the relay found
        the chat closed (after the notices, the message is a normal bot turn: nothing is dropped).
        """
        if not agent.is_ready() or handoff.is_end_chat(message.text):
            return Relay(to_bot=True)  # not handed off
        async with conversation_lock(agent, message.sender_id):
            tracker = await agent.tracker_store.retrieve(message.sender_id)
            if tracker is None:
                return Relay(to_bot=True)  # not handed off
            slots = tracker.current_slot_values()
            chat = handoff.chat_from_slots(slots)
            if chat is None:
                return Relay(to_bot=True)  # not handed off
            if not (message.text or "").strip():
                return Relay()  # nothing to relay (e.g. a metadata-only event)
            outcome = await agent_chat.relay(
                self.client, self.settings, chat, message.text or "", handoff.last_index(slots), relay_id=message.message_id
            )
            relay = Relay()
            events: List[Event] = []
            if outcome.closed:
                logger.info("relay found Flex chat %s closed; bot resumes and answers", chat.channel_sid)
                events = self._resume_bot(agent, None)
                relay.to_bot = True
            else:
                events.append(
                    UserUttered(
                        message.text,
                        intent={"name": RELAYED_INTENT, "confidence": 1.0},
                        input_channel=message.input_channel,
                        message_id=message.message_id,
                        metadata={**(message.metadata or {}), "handoff": {"relayed_to": chat.channel_sid}},
                    )
                )
                if outcome.failure:
                    logger.info("relay to Flex chat %s failed; visitor told", chat.channel_sid)
                    events.append(_system_event("relay_failed", handoff.DEFAULT_RESPONSES["utter_handoff_relay_failed"]))
            for event in events:
                tracker.update(event, agent.domain)
                relay.notices += _visitor_payloads(event)
            await agent.tracker_store.save(tracker)
        return relay

    async def apply_flex_event(self, agent: Agent, sender_id: Text, event: FlexEvent) -> List[Dict[Text, Any]]:
        """Record a Flex webhook event in the tracker; returns what the visitor should be shown."""
        if event.type in ECHO_EVENTS:
            chat = await self.chat_of(agent, sender_id)
            if chat is not None and (event.author or event.identity) == chat.identity:
                return []  # the visitor's own message or join, echoed: nothing to record, no lock needed
        async with conversation_lock(agent, sender_id):
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                return []
            chat = handoff.chat_from_slots(tracker.current_slot_values())
            if chat is None or chat.channel_sid != event.channel_sid:
                logger.info("Flex event %s for a chat no longer handed off; ignored", event.type)
                return []
            before = len(tracker.events)
            payloads = self._record(agent, tracker, chat, [event])
            if len(tracker.events) > before:
                await agent.tracker_store.save(tracker)
        return payloads

    async def catch_up(self, agent: Agent, sender_id: Text) -> List[Dict[Text, Any]]:
        """Record agent messages and a close that Flex could not deliver (e.g. Rasa was down); returns the new payloads.

        Runs under the conversation lock and dedupes by message sid like the webhook path,
        so whichever of the two comes first records a message and the other skips it.
        """
        if await self.chat_of(agent, sender_id) is None:
            return []  # not handed off: no lock, no Flex call
        async with conversation_lock(agent, sender_id):
            tracker = await agent.tracker_store.retrieve(sender_id)
            slots = tracker.current_slot_values() if tracker else {}
            chat = handoff.chat_from_slots(slots)
            if tracker is None or chat is None:
                return []
            found = await agent_chat.missed(self.client, self.settings, chat, handoff.last_index(slots))
            if found.failure:
                return []
            # Agents who joined, their messages, agents who left, the close: the order webhooks bring them in.
            present = {p.sid: p.identity for p in found.participants if p.identity and p.identity != chat.identity}
            events = [FlexEvent.participant(chat, True, sid, identity) for sid, identity in present.items()]
            events += [FlexEvent.from_message(chat, message) for message in found.replies]
            if found.closed:
                events.append(FlexEvent.chat_closed(chat))  # says it all: no "left" notices before it
            else:
                gone = {sid: who for sid, who in agents_recorded_in(tracker.events, chat).items() if sid not in present}
                events += [FlexEvent.participant(chat, False, sid, who) for sid, who in gone.items()]
            before = len(tracker.events)
            payloads = self._record(agent, tracker, chat, events)
            slots = tracker.current_slot_values()
            if handoff.chat_from_slots(slots) is not None and found.last_index > handoff.last_index(slots):
                tracker.update(SlotSet(handoff.LAST_INDEX_SLOT, float(found.last_index)), agent.domain)
            if len(tracker.events) > before:
                await agent.tracker_store.save(tracker)
        if payloads:
            logger.info("caught up %d missed turn(s) from Flex chat %s", len(payloads), chat.channel_sid)
        return payloads

    async def history(
        self, agent: Agent, sender_id: Text, channel: Text, buttons_as: Text, since: int = 0
    ) -> Optional[Tuple[List[Dict[Text, Any]], int]]:
        """The conversation's turns from event `since` on and the next `since`, for a visitor of `channel`.

        None when there is no such conversation on this channel: conversation ids of other
        channels (`default` for `rasa shell`, phone numbers, ...) are guessable and stay private.
        Both channels' history routes use this, so what they reveal cannot drift apart.
        """
        if not sender_id or len(sender_id) > MAX_SENDER_ID:
            return None
        tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
        if tracker is None or not started_on(tracker, channel):
            return None
        events = [event.as_dict() for event in tracker.events]
        return payloads.history(events, buttons_as, start=since), len(events)

    def _record(
        self, agent: Agent, tracker: DialogueStateTracker, chat: FlexChat, flex_events: List[FlexEvent]
    ) -> List[Dict[Text, Any]]:
        """Apply Flex events to the tracker in order (stopping once the handoff ended); the visitor's payloads."""
        payloads: List[Dict[Text, Any]] = []
        for flex_event in flex_events:
            slots = tracker.current_slot_values()
            if handoff.chat_from_slots(slots) is None:
                break
            for new in self._events_for(agent, tracker, chat, slots, flex_event):
                tracker.update(new, agent.domain)
                payloads += _visitor_payloads(new)
        return payloads

    def _events_for(
        self, agent: Agent, tracker: DialogueStateTracker, chat: FlexChat, slots: Mapping[Text, Any], event: FlexEvent
    ) -> List[Event]:
        seen = handoff.recorded_message_sids(tracker.events)
        is_visitor = (event.author or event.identity) == chat.identity
        if event.type in MESSAGE_EVENTS:
            if is_visitor or not event.message_sid or event.message_sid in seen:
                return []
            body = handoff.agent_body(event.body, event.has_media)
            if not body.strip():
                return []  # nothing a visitor could be shown
            author = event.author or ""
            events: List[Event] = [
                BotUttered(
                    handoff.agent_text(author, body),
                    metadata=handoff.handoff_metadata(
                        "agent", agent=author, body=body, message_sid=event.message_sid, timestamp=event.timestamp
                    ),
                )
            ]
            if event.index is not None and event.index > handoff.last_index(slots):
                events.append(SlotSet(handoff.LAST_INDEX_SLOT, float(event.index)))
            if slots.get(handoff.STATUS_SLOT) == handoff.PENDING:
                events.append(SlotSet(handoff.STATUS_SLOT, handoff.ACTIVE))
            logger.info("agent message delivered for Flex chat %s", chat.channel_sid)
            return events
        if event.type in JOIN_EVENTS or event.type in LEAVE_EVENTS:
            joined = event.type in JOIN_EVENTS
            key = f"{event.type}:{event.participant_sid or event.identity}"
            if is_visitor or not event.identity or key in seen:
                return []
            kind = "agent_joined" if joined else "agent_left"
            text = PARTICIPANT_TEXTS[kind].format(name=event.identity)
            events = [
                _system_event(kind, text, key, agent=event.identity, channel_sid=chat.channel_sid, participant_sid=event.participant_sid)
            ]
            if joined and slots.get(handoff.STATUS_SLOT) == handoff.PENDING:
                events.append(SlotSet(handoff.STATUS_SLOT, handoff.ACTIVE))
            logger.info("%s for Flex chat %s", kind, chat.channel_sid)
            return events
        if event.closed:
            logger.info("Flex chat %s closed by the agent side; bot resumes", chat.channel_sid)
            return self._resume_bot(agent, f"closed:{chat.channel_sid}")
        return []

    async def chat_of(self, agent: Agent, sender_id: Text) -> Optional[FlexChat]:
        """The Flex chat the conversation is handed off to, if any (read without the lock)."""
        if not agent.is_ready():
            return None
        tracker = await agent.tracker_store.retrieve(sender_id)
        return handoff.chat_from_slots(tracker.current_slot_values()) if tracker else None

    async def forward_typing(self, agent: Agent, sender_id: Text) -> None:
        """Tell the sandbox desktop the visitor is typing (real Twilio has no REST typing call)."""
        chat = await self.chat_of(agent, sender_id) if self.settings.uses_sandbox else None
        if chat is None:
            return
        body = {"channel_sid": chat.channel_sid, "identity": chat.identity, "role": "customer"}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                async with session.post(f"{self.settings.api_base}/sandbox/typing", json=body) as r:
                    await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            logger.debug("typing indicator not forwarded")

    def add_shutdown(self, blueprint: Blueprint) -> None:
        """Close the Twilio HTTP session when the server stops."""

        @blueprint.listener("after_server_stop")
        async def close_twilio(_app: Any, _loop: Any) -> None:
            await self.close()

    def public_url_of(self, request: Request) -> Text:
        """The URL Twilio signed: PUBLIC_URL plus the path and raw query we were called with."""
        query = request.query_string
        return f"{self.settings.public_url}{request.path}" + (f"?{query}" if query else "")

    def add_webhook_route(self, blueprint: Blueprint, deliver: Deliver) -> None:
        """Mount `POST <channel>/flex`: Flex's signed webhooks for this channel's visitors."""

        @blueprint.route(f"/{handoff.WEBHOOK_ROUTE}", methods=["POST"], name=f"{blueprint.name}_flex")
        async def flex_webhook(request: Request) -> HTTPResponse:
            signature = request.headers.get("X-Twilio-Signature", "")
            form = webhook_params(request.body)
            if form is None:
                return response.text("expected a form-encoded body", status=400)
            if not signature or not self.validator.validate(self.public_url_of(request), form, signature):
                logger.warning("Flex webhook with a missing or invalid signature rejected")
                return response.text("invalid signature", status=403)
            sender_id = handoff.sender_from_webhook_token(request.args.get("c", ""), self.settings.signing_secret)
            if sender_id is None:
                return response.text("unknown conversation", status=404)
            event = FlexEvent.from_form({key: form.get(key) for key in form})
            agent: Agent = request.app.ctx.agent
            payloads = await self.apply_flex_event(agent, sender_id, event)
            if payloads:
                await deliver(sender_id, payloads)
            return response.text("", status=204)
