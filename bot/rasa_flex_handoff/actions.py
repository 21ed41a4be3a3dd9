"""Handoff actions: connect the visitor to a Flex agent, relay their turns, and hand back to the bot.

Every text the visitor reads is a domain response (`handoff.RESPONSES`): the actions utter it by
name and Rasa words it, so a bot translates or rewords the handoff in its own domain.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from twilio.rest import Client

from rasa_flex_handoff import after_chat, agent_chat, attachments, handoff, startup, transcript_mail, waiting
from rasa_flex_handoff.flex import FlexChat, FlexChats, FlexError, FlexMessage, flex_chats
from rasa_flex_handoff.flex.taskrouter import WAITING, FlexRouting, Waiting
from rasa_flex_handoff.settings import Settings, settings_from_env

logger = logging.getLogger(__name__)


def responses_of(domain: DomainDict) -> Dict[str, Any]:
    """The domain's responses, as rasa-sdk hands the domain to an action."""
    responses = domain.get("responses")
    return responses if isinstance(responses, dict) else {}


def say(dispatcher: CollectingDispatcher, domain: DomainDict, response: str, **kwargs: Any) -> None:
    """Utter a domain response; one the domain lacks is logged by name and not sent.

    The plugin's startup check reports a missing response before any visitor arrives; should
    one still be missing, the visitor misses a notice rather than the action failing.
    """
    if response not in responses_of(domain):
        logger.error("the bot has no response %s: add it to the domain; the visitor was not told", response)
        return
    dispatcher.utter_message(response=response, **kwargs)


def domain_text(domain: DomainDict, response: str) -> Optional[str]:
    """The text of a domain response (its first variation with one), for words an action puts together itself.

    rasa-sdk has no NLG: an agent's message quotes the agent ("Alice: ..."), so when the
    domain's wording stands in for what the agent sent, the action reads the text directly.
    """
    for variation in responses_of(domain).get(response) or []:
        text = variation.get("text") if isinstance(variation, dict) else None
        if isinstance(text, str) and text.strip():
            return text
    return None


def slot_events(values: Dict[str, Any]) -> List[EventType]:
    """SlotSet events for a {slot: value} mapping."""
    return [SlotSet(name, value) for name, value in values.items()]


class ActionHandoffToAgent(Action):
    """Open a Flex chat carrying the bot context and pause the bot for this conversation.

    Unless nobody could take it: out of business hours, or with no agent available in Flex's
    queue, the visitor is told before any chat is made and offered to leave a message.
    """

    def name(self) -> str:
        return "action_handoff_to_agent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if handoff.is_active(tracker.slots):
            say(dispatcher, domain, handoff.UTTER_ALREADY)
            return []
        settings = settings_from_env()
        if not settings.business_hours.is_open(datetime.now(UTC)):
            logger.info("handoff asked for outside business hours; offered a message instead")
            return unavailable(dispatcher, domain, tracker, "closed")
        capabilities = handoff.capabilities_of(tracker.latest_message.get("metadata"), tracker.sender_id, settings.signing_secret)
        try:
            async with agent_chat.flex_client(settings) as client:
                routing = FlexRouting(client, settings)
                if await agents_available(routing) == 0:
                    logger.info("handoff asked for with no agent available; offered a message instead")
                    return unavailable(dispatcher, domain, tracker, "no_agents")
                chat = await agent_chat.start(
                    flex_chats(client, settings),
                    sender_id=tracker.sender_id,
                    events=tracker.events,
                    slots=tracker.slots,
                    capabilities=capabilities,
                    intent=(tracker.latest_message.get("intent") or {}).get("name"),
                )
                place = await look_at_queue(routing, chat)
        except FlexError as e:
            logger.info("handoff failed: %s", e.reason)
            say(dispatcher, domain, handoff.UTTER_FAILED)
            return []
        logger.info("handoff started: %s chat %s", chat.mode, chat.channel_sid)
        # The chat details and access token only for a client that asked, over a channel that can carry them.
        details = {"handoff": token_payload(settings, chat)} if capabilities.access_token else None
        # Our channels take files during the chat: the widget learns the limits and where to upload.
        files = attachments.limits(settings.attachment_max_bytes, settings.attachment_types, capabilities.webhook_path)
        say(dispatcher, domain, handoff.UTTER_CONNECTING, json_message=details, **notice("connecting", chat, attachments=files))
        if place is not None and place.position is not None and place.state == WAITING:
            tell_place(dispatcher, domain, waiting.queue_notice(place.position, place.eta_seconds, chat.channel_sid))
        events: List[EventType] = slot_events(handoff.start_slots(chat))
        if tracker.active_loop_name:
            events.insert(0, ActiveLoop(None))
        return events


async def agents_available(routing: FlexRouting) -> Optional[int]:
    """How many agents are available in the target queue; None when Flex could not say (the handoff goes ahead)."""
    try:
        return await routing.available_agents()
    except FlexError as e:
        logger.info("agent availability unknown (%s); handing off anyway", e.reason)
        return None


async def look_at_queue(routing: FlexRouting, chat: FlexChat) -> Optional[Waiting]:
    """The chat's place in Flex's queue now; None when TaskRouter could not say (the visitor is simply not told)."""
    try:
        return await routing.waiting(chat)
    except FlexError as e:
        logger.info("queue position of Flex chat %s unknown: %s", chat.channel_sid, e.reason)
        return None


def tell_place(dispatcher: CollectingDispatcher, domain: DomainDict, found: waiting.QueueNotice) -> None:
    """Say the visitor's place in line (the metadata lets a widget show it as a waiting state)."""
    say(dispatcher, domain, found.response, **found.variables, **found.metadata)


def offer(dispatcher: CollectingDispatcher, domain: DomainDict) -> None:
    """Offer to leave a message or stay with the bot (the response's buttons; `HandoffPolicy` runs either choice)."""
    say(dispatcher, domain, handoff.UTTER_OFFER, **notice("offer"))


def unavailable(dispatcher: CollectingDispatcher, domain: DomainDict, tracker: Tracker, reason: str) -> List[EventType]:
    """Nobody can take a chat now (`reason` closed | no_agents): say why, offer a message or the bot; no chat is made."""
    response = handoff.UTTER_CLOSED if reason == "closed" else handoff.UTTER_NO_AGENTS
    say(dispatcher, domain, response, **notice("unavailable", reason=reason))
    offer(dispatcher, domain)
    return [ActiveLoop(None)] if tracker.active_loop_name else []


class ActionHandoffLeaveMessage(Action):
    """The visitor chose to leave a message: ask for it; their next turn is the message (`HandoffPolicy`)."""

    def name(self) -> str:
        return "action_handoff_leave_message"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        say(dispatcher, domain, handoff.UTTER_ASK_MESSAGE, **notice("leave_message"))
        return [SlotSet(handoff.STATUS_SLOT, handoff.MESSAGE)]


class ActionHandoffTakeMessage(Action):
    """Deliver the visitor's message to Flex as a task an agent picks up later, with the bot conversation as context."""

    def name(self) -> str:
        return "action_handoff_take_message"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        text = (tracker.latest_message.get("text") or "").strip()
        if not text:
            say(dispatcher, domain, handoff.UTTER_ASK_MESSAGE, **notice("leave_message"))
            return []
        settings = settings_from_env()
        capabilities = handoff.capabilities_of(tracker.latest_message.get("metadata"), tracker.sender_id, settings.signing_secret)
        visitor = handoff.known_visitor(capabilities, tracker.events, tracker.sender_id, settings.signing_secret)
        context = handoff.context(tracker.events, tracker.slots, None, visitor)
        try:
            async with agent_chat.flex_client(settings) as client:
                task = await FlexRouting(client, settings).leave_message(
                    name=handoff.visitor_name(tracker.slots, visitor), message=text, context=context
                )
        except FlexError as e:
            logger.info("leaving a message failed: %s", e.reason)
            say(dispatcher, domain, handoff.UTTER_FAILED)
            return [SlotSet(handoff.STATUS_SLOT, None)]
        logger.info("visitor left a message: Flex task %s", task)
        say(dispatcher, domain, handoff.UTTER_MESSAGE_LEFT, **notice("message_left"))
        return [SlotSet(handoff.STATUS_SLOT, None)]


class ActionHandoffStay(Action):
    """The visitor stays with the bot instead of leaving a message."""

    def name(self) -> str:
        return "action_handoff_stay"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        say(dispatcher, domain, handoff.UTTER_STAY, **notice("stay"))
        return [SlotSet(handoff.STATUS_SLOT, None)] if tracker.get_slot(handoff.STATUS_SLOT) else []


def notice(event: str, chat: Optional[FlexChat] = None, **fields: Any) -> Dict[str, Any]:
    """Marks a bot turn as a handoff notice, so handoff-aware front ends can follow the chat's state."""
    return handoff.handoff_metadata("system", event=event, channel_sid=chat.channel_sid if chat else None, **fields)


def token_payload(settings: Settings, chat: FlexChat) -> Dict[str, Any]:
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

    def name(self) -> str:
        return "action_relay_to_agent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        chat = handoff.chat_from_slots(tracker.slots)
        if chat is None:
            return []
        settings = settings_from_env()
        metadata = tracker.latest_message.get("metadata")
        polls = not handoff.capabilities_of(metadata, tracker.sender_id, settings.signing_secret).webhook_path
        text = tracker.latest_message.get("text") or ""
        async with agent_chat.flex_client(settings) as client:
            chats = flex_chats(client, settings, chat.mode)
            outcome = await agent_chat.relay(
                chats,
                chat,
                text,
                handoff.last_index(tracker.slots),
                wait=settings.shell_wait if polls else 0.0,
                relay_id=tracker.latest_message.get("message_id"),
            )
            waits = polls and not (outcome.failure or outcome.closed or outcome.replies)
            look = await look_again(client, settings, chat, tracker) if waits else None
            links = await media_links(chats, chat, outcome.replies)
        if outcome.failure:
            say(dispatcher, domain, handoff.UTTER_RELAY_FAILED, **notice("relay_failed"))
            return []
        events: List[EventType] = []
        for message in outcome.replies:
            utter_flex_message(dispatcher, domain, message, links)
        if outcome.closed:
            say(dispatcher, domain, handoff.UTTER_AGENT_ENDED, **notice("chat_closed"))
            say(dispatcher, domain, handoff.UTTER_BOT_BACK, **notice("bot_resumed"))
            if not outcome.delivered:  # the bot answers what the closed chat did not take, rather than ask
                return resume(tracker, domain) + answer_again(tracker)
            return resume(tracker, domain) + ask_after_chat(dispatcher, domain, tracker, settings)
        if polls:
            if not outcome.replies:
                say(dispatcher, domain, handoff.UTTER_WAITING)
            events.append(SlotSet(handoff.LAST_INDEX_SLOT, float(outcome.last_index)))
            if outcome.replies and tracker.get_slot(handoff.STATUS_SLOT) == handoff.PENDING:
                events.append(SlotSet(handoff.STATUS_SLOT, handoff.ACTIVE))
            elif look is not None:
                return events + keep_waiting(dispatcher, tracker, domain, chat, look)
        return events


async def look_again(
    client: Client, settings: Settings, chat: FlexChat, tracker: Tracker
) -> Optional[Tuple[Waiting, waiting.Verdict]]:
    """A waiting visitor's place in Flex's queue and what it means; the chat is closed when nobody accepted in time.

    For channels without a waiting room (`rasa shell`, Rasa's own channels), on the visitor's own
    turn. None when the visitor does not wait or TaskRouter could not say.
    """
    if tracker.get_slot(handoff.STATUS_SLOT) != handoff.PENDING:
        return None
    place = await look_at_queue(FlexRouting(client, settings), chat)
    if place is None:
        return None
    verdict = waiting.verdict_on(place, tracker.events, time.time(), settings.accept_timeout)
    if verdict is waiting.Verdict.GIVE_UP:
        await agent_chat.end(flex_chats(client, settings, chat.mode), chat)
    return place, verdict


def keep_waiting(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    domain: DomainDict,
    chat: FlexChat,
    look: Tuple[Waiting, waiting.Verdict],
) -> List[EventType]:
    """What the visitor is told after `look_again`, as the connector's waiting room tells its visitors.

    Their place in line when it changed; when nobody accepted in time, that, the offer of a message
    or the bot, and the events that hand back to the bot.
    """
    place, verdict = look
    if verdict is waiting.Verdict.TELL and place.position is not None:
        tell_place(dispatcher, domain, waiting.queue_notice(place.position, place.eta_seconds, chat.channel_sid))
    if verdict is not waiting.Verdict.GIVE_UP:
        return []
    logger.info("nobody accepted Flex chat %s in time; bot resumes", chat.channel_sid)
    say(dispatcher, domain, handoff.UTTER_NOT_ACCEPTED, **notice(waiting.NOT_ACCEPTED_EVENT))
    offer(dispatcher, domain)
    return resume(tracker, domain)


def resume(tracker: Tracker, domain: DomainDict) -> List[EventType]:
    """The events that hand the conversation back to the bot: the handoff slots cleared, then a new session.

    The new session (`handoff.new_session`: `SessionStarted`, then the visitor's slots set again
    as the domain's `session_config` says) hides the handoff from the bot's policies, so the
    next message is answered as at the start of a conversation, in any bot. It ends without
    `action_listen`: applying `SessionStarted` leaves Rasa's follow-up action at `action_listen`,
    so the processor records that next, as after its own session start; `answer_again` adds a
    replayed message after it instead. The tracker keeps every event; only the policies' view
    starts over.
    """
    return slot_events(handoff.cleared_slots()) + handoff.new_session(tracker.slots, handoff.SessionRules.from_domain(domain))


def answer_again(tracker: Tracker) -> List[EventType]:
    """Replay the visitor's message as a new turn, so the bot answers what the closed chat could not take.

    Returned after `resume`, it is the new session's first turn: the bot answers it as at the
    start of a conversation. The visitor's original turn stays where it was (history shows it
    once); the replay is marked.
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


async def media_links(chats: FlexChats, chat: FlexChat, messages: List[FlexMessage]) -> Dict[str, str]:
    """Temporary links to the files among these messages (media sid -> link), for channels that show text only.

    A terminal opens such a link as it is (Twilio's `content_direct_temporary`, valid a few
    minutes); a file whose link Twilio does not give is mentioned without one.
    """
    found: Dict[str, str] = {}
    for media in (media for message in messages for media in message.media):
        if not chat.service_sid:
            break
        try:
            found[media.sid] = await chats.media_link(chat.service_sid, media.sid)
        except FlexError as e:
            logger.info("no link to a file of Flex chat %s: %s", chat.channel_sid, e.reason)
    return found


def filled(text: str, variables: Dict[str, str]) -> str:
    """A response text with its `{name}` variables filled in, as Rasa fills them (unknown names stay as written)."""
    return re.sub(r"\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), text)


def utter_flex_message(
    dispatcher: CollectingDispatcher, domain: DomainDict, message: FlexMessage, links: Optional[Dict[str, str]] = None
) -> None:
    """An agent (or Flex system) message as bot turns, marked in their metadata: its text, then each file as the domain words it.

    A file is `utter_handoff_attachment` with `{filename}` and `{url}` (from `links`), spoken by the agent.
    """
    if message.author == agent_chat.SYSTEM_AUTHOR:
        dispatcher.utter_message(
            text=message.body,
            **handoff.handoff_metadata("system", event="flex_system", message_sid=message.sid),
        )
        return
    if message.body.strip():
        dispatcher.utter_message(
            text=handoff.agent_text(message.author, message.body),
            **handoff.handoff_metadata("agent", agent=message.author, body=message.body, message_sid=message.sid),
        )
    wording = domain_text(domain, handoff.UTTER_ATTACHMENT) if message.media else None
    if message.media and wording is None:
        logger.error("the bot has no response %s: add it to the domain; the agent's file was not shown", handoff.UTTER_ATTACHMENT)
        return
    for media in message.media:
        name = attachments.display_name(media.filename, media.content_type)
        body = filled(wording or "", {"filename": name, "url": (links or {}).get(media.sid, "")}).strip()
        file = attachments.recorded(name, attachments.normal_type(media.content_type), media.size, media.sid, None)
        dispatcher.utter_message(
            text=handoff.agent_text(message.author, body),
            **handoff.handoff_metadata("agent", agent=message.author, body=body, message_sid=message.sid, attachment=file),
        )


class ActionHandoffAfterChat(Action):
    """The visitor's answer to an after-chat question (`HandoffPolicy` runs it only for answers): record it, go on.

    A rating or comment is recorded in the tracker (`handoff_survey`) and written to the ended
    chat in Flex (its attributes and its task's); the transcript goes to the address asked for.
    """

    def name(self) -> str:
        return "action_handoff_after_chat"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        settings = settings_from_env()
        capabilities = handoff.capabilities_of(tracker.latest_message.get("metadata"), tracker.sender_id, settings.signing_secret)
        status = tracker.get_slot(handoff.STATUS_SLOT)
        found = after_chat.answer(
            status,
            tracker.latest_message.get("text"),
            (tracker.latest_message.get("intent") or {}).get("name"),
            after_chat.follow_up(settings),
            handoff.known_visitor(capabilities, tracker.events, tracker.sender_id, settings.signing_secret).get("email"),
        )
        if found is None:  # not an answer after all (a stale prediction): the after-chat ends
            return slot_events(handoff.cleared_slots())
        chat = handoff.ended_chat(tracker.slots)
        events: List[EventType] = []
        if found.record and chat is not None:
            answered = survey_answer(tracker.get_slot(handoff.SURVEY_SLOT), chat, found.record)
            events.append(SlotSet(handoff.SURVEY_SLOT, answered))
            await write_back(settings, chat, answered)
        if found.thanks:
            say(dispatcher, domain, handoff.UTTER_SURVEY_THANKS, **notice("survey_thanks"))
        if found.send_to is not None:
            await send_transcript(dispatcher, domain, settings, tracker, found.send_to)
        if found.ask is None:
            return events + slot_events(handoff.cleared_slots())
        response, event = after_chat.QUESTIONS[found.ask]
        say(dispatcher, domain, response, **notice(event))
        return events + [SlotSet(handoff.STATUS_SLOT, found.ask)]


def survey_answer(recorded: Any, chat: FlexChat, given: Dict[str, Any]) -> Dict[str, Any]:
    """The chat's survey answer so far (`handoff_survey`, when it is this chat's) with what the visitor just gave."""
    before = recorded if isinstance(recorded, dict) and recorded.get("chat") == chat.channel_sid else {}
    return {"chat": chat.channel_sid, "rating": None, "comment": None, **before, **given}


async def write_back(settings: Settings, chat: FlexChat, answer: Dict[str, Any]) -> None:
    """The survey answer into the ended chat's task's attributes (and the chat's, where Flex takes them); failures are logged.

    The task takes it until the agent completes their wrap-up; a closed conversation takes nothing.
    """
    value = {key: answer.get(key) for key in ("rating", "comment")}
    async with agent_chat.flex_client(settings) as client:
        chats = flex_chats(client, settings, chat.mode)
        try:
            if chats.annotates_ended_chats:
                await chats.annotate(chat, handoff.SURVEY_SLOT, value)
        except FlexError as e:
            logger.warning("survey answer not written to Flex chat %s: %s", chat.channel_sid, e.reason)
        try:
            if not await FlexRouting(client, settings).annotate_task(chat, handoff.SURVEY_SLOT, value):
                logger.info("Flex chat %s has no task to record the survey answer in", chat.channel_sid)
        except FlexError as e:
            logger.warning("survey answer not written to the task of Flex chat %s: %s", chat.channel_sid, e.reason)
    logger.info("survey answer recorded for Flex chat %s", chat.channel_sid)


async def send_transcript(
    dispatcher: CollectingDispatcher, domain: DomainDict, settings: Settings, tracker: Tracker, to: str
) -> None:
    """Email the conversation's transcript; the visitor is told it went (to the masked address) or that it failed."""
    smtp = settings.smtp
    lines = tracker.get_slot(handoff.TRANSCRIPT_SLOT)
    if smtp is None or not isinstance(lines, list):
        return
    message = transcript_mail.compose(lines, to, smtp.sender, zone=settings.business_hours.zone)
    try:
        await transcript_mail.send(message, smtp, settings.twilio_timeout)
    except transcript_mail.TranscriptError as e:
        logger.warning("transcript not sent: %s", e.reason)
        say(dispatcher, domain, handoff.UTTER_TRANSCRIPT_FAILED, **notice("transcript_failed"))
        return
    logger.info("transcript sent by email")
    say(dispatcher, domain, handoff.UTTER_TRANSCRIPT_SENT, email=transcript_mail.masked(to), **notice("transcript_sent"))


def ask_after_chat(dispatcher: CollectingDispatcher, domain: DomainDict, tracker: Tracker, settings: Settings) -> List[EventType]:
    """After the chat ended: the first after-chat question, and the slots that keep the chat until it is answered (or nothing)."""
    follow_up = after_chat.follow_up(settings)
    question = follow_up.first()
    if question is None:
        return []
    response, event = after_chat.QUESTIONS[question]
    say(dispatcher, domain, response, **notice(event))
    return slot_events(handoff.after_chat_slots(tracker.slots, question, tracker.events if follow_up.transcript else None))


class ActionEndHandoff(Action):
    """The visitor ends the agent chat: close the Flex side and resume the bot."""

    def name(self) -> str:
        return "action_end_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        chat = handoff.chat_from_slots(tracker.slots)
        settings = settings_from_env()
        if chat is not None:
            async with agent_chat.flex_client(settings) as client:
                closed = await agent_chat.end(flex_chats(client, settings, chat.mode), chat)
            if not closed:
                logger.info("Flex chat %s left open after the visitor ended it", chat.channel_sid)
            logger.info("handoff ended by the visitor: chat %s", chat.channel_sid)
        say(dispatcher, domain, handoff.UTTER_ENDED, **notice("visitor_left"))
        say(dispatcher, domain, handoff.UTTER_BOT_BACK, **notice("bot_resumed"))
        if not handoff.is_active(tracker.slots):
            return slot_events(handoff.cleared_slots())  # not handed off: the bot's own dialogue goes on
        return resume(tracker, domain) + ask_after_chat(dispatcher, domain, tracker, settings)


# The action server's start: stop it here, naming what is missing, rather than fail each handoff.
startup.check_action_server_start()
