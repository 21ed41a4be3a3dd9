"""The connector side of the handoff, shared by the socket.io and REST channels: the I/O around the state machine.

Visitor messages of a handed-off conversation go straight to Flex (no NLU, no policies)
and Flex webhooks become agent/system turns; what a webhook could not bring (Rasa was down)
is caught up from the Flex chat when the visitor comes back. Each path takes the tracker under
Rasa's lock store (trackers.py), asks chat_state.py what to do, words the notices with the bot's domain
(notices.py), saves, and hands the visitor's payloads (payloads.py) to the channel. Nothing
about a conversation is kept in this process: the tracker holds the handoff state and the
signed webhook URL carries the (encrypted) conversation id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import aiohttp
from rasa.core.agent import Agent
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import BotUttered, Event, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint

from rasa_flex_handoff import (
    after_chat,
    agent_chat,
    attachments,
    chat_state,
    handoff,
    media_routes,
    notices,
    payloads,
    waiting,
    webhooks,
)
from rasa_flex_handoff.attachments import Refusal, Upload
from rasa_flex_handoff.chat_state import Step
from rasa_flex_handoff.flex import ChatClosed, FlexChat, FlexChats, FlexError, FlexMedia, flex_chats
from rasa_flex_handoff.flex.taskrouter import FlexRouting
from rasa_flex_handoff.flex_events import FlexEvent, Happening
from rasa_flex_handoff.history_access import MAX_SENDER_ID, started_on
from rasa_flex_handoff.settings import Settings, settings_from_env
from rasa_flex_handoff.startup import settle_loaded_model, stop_on_domain_problem
from rasa_flex_handoff.trackers import Trackers
from rasa_flex_handoff.twilio_http import twilio_client
from rasa_flex_handoff.waiting_room import WaitingRoom

logger = logging.getLogger(__name__)

# Delivers visitor-facing payloads for one conversation (socket room emit; REST: nothing).
Deliver = Callable[[str, List[Dict[str, Any]]], Awaitable[None]]


def visitor_message(
    channel: InputChannel,
    text: Optional[str],
    output: OutputChannel,
    sender_id: str,
    metadata: Any,
    secret: str,
    visitor: Optional[Mapping[str, Any]] = None,
) -> UserMessage:
    """A visitor's message as our connectors pass it on, with the channel's capabilities stamped in its metadata.

    The handoff actions read them to decide webhooks or polling and whether to send the
    access token, so a subclassed or renamed connector keeps working and a client cannot
    claim capabilities for a channel that has none (the stamp is signed with `secret`).
    """
    webhook_path = f"/webhooks/{channel.url_prefix()}/{handoff.WEBHOOK_ROUTE}"
    return UserMessage(
        text,
        output,
        sender_id,
        input_channel=channel.name(),
        metadata=handoff.declare_capabilities(metadata, webhook_path, sender_id, secret, visitor),
    )


def _visitor_payloads(event: Event, link: Optional[payloads.Link] = None) -> List[Dict[str, Any]]:
    """What the visitor is shown for a recorded event (agent and system turns only)."""
    turn = payloads.from_bot_event(event.as_dict(), link=link) if isinstance(event, BotUttered) else None
    return [turn] if turn else []


class History(NamedTuple):
    """A conversation's turns for a front end, the `since` to ask from next, and whether the visitor waits for an agent."""

    messages: List[Dict[str, Any]]
    next: int
    waiting: bool


@dataclass
class FileRelay:
    """What became of a visitor's file: the turn recorded (as history shows it), or why not; `notices` to show now."""

    message: Optional[Dict[str, Any]] = None
    refusal: Optional[Refusal] = None
    notices: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class Relay:
    """What became of a visitor message: `notices` to show now; `to_bot` when the bot must answer it."""

    notices: List[Dict[str, Any]] = field(default_factory=list)
    to_bot: bool = False


class Handoff:
    """Relays visitor turns to Flex and turns Flex events into visitor turns, for one Rasa server."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.settings = settings or settings_from_env()
        self.client = twilio_client(self.settings, asynchronous=True)
        self.trackers = Trackers()
        self.routing = FlexRouting(self.client, self.settings)
        self.waiting_room: Optional[WaitingRoom] = None
        self.media_path: Optional[str] = None  # where the channel serves files ("/webhooks/<prefix>/media"): add_media_routes
        self.after_chat = after_chat.follow_up(self.settings)  # what a chat's end asks

    async def close(self) -> None:
        """Stop the waiting updates; release the HTTP session to Twilio."""
        if self.waiting_room is not None:
            await self.waiting_room.close()
        await self.client.http_client.close()

    def chats_of(self, chat: FlexChat) -> FlexChats:
        """The Flex client for this chat's generation (the one it was started in)."""
        return flex_chats(self.client, self.settings, chat.mode)

    async def _take(
        self, agent: Agent, tracker: DialogueStateTracker, steps: Sequence[Step], output_channel: str
    ) -> List[Dict[str, Any]]:
        """Record the steps in the tracker in order, notices worded for its state then; the visitor's payloads.

        Each event is stamped when recorded, so timestamps follow the order: Rasa's SQL tracker
        store finds the latest session by the `SessionStarted` timestamp.
        """
        shown: List[Dict[str, Any]] = []
        for step in steps:
            if isinstance(step, chat_state.Notice):
                event = await notices.word(agent, step, tracker, output_channel)
                if event is None:
                    continue
            else:
                event = step
                event.timestamp = time.time()
            tracker.update(event, agent.domain)
            shown += _visitor_payloads(event, self.link(tracker.sender_id))
        return shown

    async def relay_visitor_message(self, agent: Agent, message: UserMessage) -> Relay:
        """Relay a visitor message when the conversation is handed off.

        `to_bot` means the bot answers it: the conversation is not handed off, the visitor
        asked to end the chat (`HandoffPolicy` runs `action_end_handoff`), or the relay found
        the chat closed (after the notices, the message is a normal bot turn: nothing is dropped).
        """
        if not agent.is_ready() or handoff.is_end_chat(message.text):
            return Relay(to_bot=True)  # not handed off
        if not self.trackers.may_be_handed_off(agent, message.sender_id):
            return Relay(to_bot=True)  # not handed off, told without loading the tracker
        async with self.trackers.changing(agent, message.sender_id) as tracker:
            if tracker is None:
                return Relay(to_bot=True)  # not handed off
            slots = tracker.current_slot_values()
            chat = handoff.chat_from_slots(slots)
            if chat is None:
                return Relay(to_bot=True)  # not handed off
            if not (message.text or "").strip():
                return Relay()  # nothing to relay (e.g. a metadata-only event)
            too_fast = chat_state.over_rate(tracker.events, time.time())
            if too_fast is not None:
                return Relay(notices=await self._take(agent, tracker, too_fast, message.output_channel.name()))
            outcome = await agent_chat.relay(
                self.chats_of(chat), chat, message.text or "", handoff.last_index(slots), relay_id=message.message_id
            )
            if outcome.closed:
                logger.info("relay found Flex chat %s closed; bot resumes and answers", chat.channel_sid)
            elif outcome.failure:
                logger.info("relay to Flex chat %s failed; visitor told", chat.channel_sid)
            steps = chat_state.on_visitor_message(
                chat, message, outcome.closed, bool(outcome.failure), slots, chat_state.session_rules(agent.domain)
            )
            relay = Relay(to_bot=outcome.closed)
            relay.notices = await self._take(agent, tracker, steps, message.output_channel.name())
        return relay

    async def apply_flex_event(self, agent: Agent, sender_id: str, event: FlexEvent, output_channel: str) -> List[Dict[str, Any]]:
        """Record a Flex webhook event in the tracker; returns what the visitor should be shown."""
        if chat_state.is_echo(handoff.visitor_identity(sender_id, self.settings.signing_secret), event):
            return []  # the visitor's own message or join, echoed: nothing to record, no lock, no tracker read
        async with self.trackers.changing(agent, sender_id) as tracker:
            if tracker is None:
                return []
            chat = handoff.chat_from_slots(tracker.current_slot_values())
            chat_open = event.happening is Happening.LEFT and chat is not None and await self._still_open(chat)
            return await self._record(agent, tracker, [event], output_channel, chat_open)

    async def _still_open(self, chat: FlexChat) -> bool:
        """Whether the chat an agent just left is open: then they passed it on (an agent ending it closes it first)."""
        try:
            return not await self.chats_of(chat).chat_is_closed(chat)
        except FlexError as e:
            logger.info("could not tell whether Flex chat %s is still open: %s", chat.channel_sid, e.reason)
            return False

    async def catch_up(self, agent: Agent, sender_id: str, output_channel: str) -> List[Dict[str, Any]]:
        """Record agent messages and a close that Flex could not deliver (e.g. Rasa was down); returns the new payloads.

        Runs under the conversation lock and dedupes by message sid like the webhook path,
        so whichever of the two comes first records a message and the other skips it.
        """
        if await self.chat_of(agent, sender_id) is None:
            return []  # not handed off: no lock, no Flex call
        async with self.trackers.changing(agent, sender_id) as tracker:
            slots = tracker.current_slot_values() if tracker else {}
            chat = handoff.chat_from_slots(slots)
            if tracker is None or chat is None:
                return []
            found = await agent_chat.missed(self.chats_of(chat), chat, handoff.last_index(slots))
            if found.failure:
                return []
            missed = chat_state.missed_events(tracker.events, chat, found.participants, found.replies, found.closed)
            shown = await self._record(agent, tracker, missed, output_channel, chat_open=not found.closed)
            slots = tracker.current_slot_values()
            if handoff.chat_from_slots(slots) is not None and found.last_index > handoff.last_index(slots):
                tracker.update(SlotSet(handoff.LAST_INDEX_SLOT, float(found.last_index)), agent.domain)
        if shown:
            logger.info("caught up %d missed turn(s) from Flex chat %s", len(shown), chat.channel_sid)
        return shown

    async def _record(
        self,
        agent: Agent,
        tracker: DialogueStateTracker,
        flex_events: Sequence[FlexEvent],
        output_channel: str,
        chat_open: bool = False,
    ) -> List[Dict[str, Any]]:
        """Apply Flex events to the tracker in order, each seeing what the ones before it recorded; the visitor's payloads."""
        shown: List[Dict[str, Any]] = []
        for flex_event in flex_events:
            steps = chat_state.on_flex_event(
                tracker.events,
                tracker.current_slot_values(),
                flex_event,
                chat_state.session_rules(agent.domain),
                chat_open,
                self.after_chat,
            )
            shown += await self._take(agent, tracker, steps, output_channel)
        return shown

    async def keep_informed(self, agent: Agent, sender_id: str, output_channel: str) -> Tuple[List[Dict[str, Any]], bool]:
        """One look at a waiting visitor's place in Flex's queue: what to show them, and whether they still wait.

        Under the conversation's lock: a changed place in line is recorded and shown; when nobody
        accepted in time (HANDOFF_ACCEPT_TIMEOUT) or Flex dropped the task (the workflow's own
        timeout), the chat is closed in Flex, the bot resumes and the visitor is offered a message.
        """
        async with self.trackers.changing(agent, sender_id) as tracker:
            slots = tracker.current_slot_values() if tracker else {}
            chat = handoff.chat_from_slots(slots)
            if tracker is None or chat is None or slots.get(handoff.STATUS_SLOT) != handoff.PENDING:
                return [], False
            try:
                place = await self.routing.waiting(chat)
            except FlexError as e:
                logger.info("queue position of Flex chat %s unknown: %s", chat.channel_sid, e.reason)
                return [], True
            verdict = waiting.verdict_on(place, tracker.events, time.time(), self.settings.accept_timeout)
            if verdict is waiting.Verdict.GIVE_UP:
                await agent_chat.end(self.chats_of(chat), chat)  # nothing is left open in Flex
            steps = chat_state.on_waiting(
                verdict, chat, slots, place.position, place.eta_seconds, chat_state.session_rules(agent.domain)
            )
            shown = await self._take(agent, tracker, steps, output_channel)
        return shown, verdict is not waiting.Verdict.GIVE_UP

    def open_waiting_room(self, agent_of: Callable[[], Agent], deliver: Deliver, output_channel: str) -> WaitingRoom:
        """The channel's waiting room: each look records via `keep_informed` and hands what changed to `deliver`."""

        async def look(sender_id: str) -> bool:
            shown, still = await self.keep_informed(agent_of(), sender_id, output_channel)
            if shown:
                await deliver(sender_id, shown)
            return still

        self.waiting_room = WaitingRoom(look, self.settings.queue_update)
        return self.waiting_room

    def starts_waiting(self, sender_id: str, shown: Sequence[Mapping[str, Any]]) -> None:
        """Put the visitor in the waiting room when what they were just shown starts a wait (a handoff, a transfer)."""
        if self.waiting_room is not None and any(payloads.starts_waiting(p) for p in shown):
            self.waiting_room.enter(sender_id)

    async def history(self, agent: Agent, sender_id: str, channel: str, buttons_as: str, since: int = 0) -> Optional[History]:
        """The conversation's turns from event `since` on, for a visitor of `channel`.

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
        waits = tracker.get_slot(handoff.STATUS_SLOT) == handoff.PENDING
        return History(payloads.history(events, buttons_as, start=since, link=self.link(sender_id)), len(events), waits)

    def link(self, sender_id: str) -> Optional[payloads.Link]:
        """How this conversation's files are linked for its visitor: our media-file route with a token (None: no route)."""
        path, settings = self.media_path, self.settings
        if path is None:
            return None
        return lambda found: attachments.file_url(settings.public_url, path, settings.signing_secret, sender_id, found)

    async def file_refusal(self, agent: Agent, sender_id: str, channel: str) -> Optional[Refusal]:
        """Why no file can be taken for this conversation now (unknown on `channel`, no agent chat), read without the lock."""
        found = _file_chat(await self.trackers.read(agent, sender_id), channel)
        return found if isinstance(found, Refusal) else None

    async def relay_visitor_file(
        self, agent: Agent, sender_id: str, channel: str, output_channel: str, buttons_as: str, upload: Upload
    ) -> FileRelay:
        """Send the visitor's checked file to their agent chat and record it as their turn, at most once per relay id.

        The file goes to Twilio's Media Content Service without the conversation's lock (an upload
        may take seconds; agent messages meanwhile are not held up); the media message is then
        posted and the turn recorded under the lock, like a relayed text, flood limit included.
        A retried upload whose turn is recorded is answered with that turn, nothing sent again.
        """
        tracker = await self.trackers.read(agent, sender_id)
        chat = _file_chat(tracker, channel)
        if isinstance(chat, Refusal) or tracker is None:
            return FileRelay(refusal=chat if isinstance(chat, Refusal) else attachments.UNKNOWN_CONVERSATION)
        if chat_state.uploaded_turn(tracker.events, upload.relay_id) is not None:
            return await self._file_turn(agent, sender_id, upload.relay_id, buttons_as)
        media: Optional[FlexMedia] = None
        if chat_state.over_rate(tracker.events, time.time()) is None:
            try:
                chats = self.chats_of(chat)
                media = await chats.upload_media(chat.service_sid, upload.data, upload.filename, upload.content_type)
            except FlexError as e:
                logger.info("upload to Flex chat %s failed: %s", chat.channel_sid, e.reason)
                return FileRelay(refusal=attachments.FLEX_FAILED)
        refused = await self._post_file(agent, sender_id, channel, output_channel, upload, chat, media)
        return refused or await self._file_turn(agent, sender_id, upload.relay_id, buttons_as)

    async def _post_file(
        self,
        agent: Agent,
        sender_id: str,
        channel: str,
        output_channel: str,
        upload: Upload,
        chat: FlexChat,
        media: Optional[FlexMedia],
    ) -> Optional[FileRelay]:
        """Under the conversation's lock: post the uploaded `media` and record the visitor's turn; None once it is recorded."""
        async with self.trackers.changing(agent, sender_id) as tracker:
            now = _file_chat(tracker, channel)
            if isinstance(now, Refusal) or tracker is None:
                return FileRelay(refusal=now if isinstance(now, Refusal) else attachments.UNKNOWN_CONVERSATION)
            if chat_state.uploaded_turn(tracker.events, upload.relay_id) is not None:
                return None  # an earlier try got there meanwhile
            if now.channel_sid != chat.channel_sid:
                return FileRelay(refusal=attachments.NOT_HANDED_OFF)  # another chat since the upload: send it again
            too_fast = chat_state.over_rate(tracker.events, time.time())
            if too_fast is not None or media is None:
                told = await self._take(agent, tracker, too_fast or [], output_channel)
                return FileRelay(refusal=attachments.TOO_FAST, notices=told)
            closed = False
            try:
                await self.chats_of(chat).post_visitor_media(chat, media, upload.relay_id)
            except ChatClosed:
                closed = True
                logger.info("file for Flex chat %s found it closed; bot resumes", chat.channel_sid)
            except FlexError as e:
                logger.info("file to Flex chat %s failed: %s", chat.channel_sid, e.reason)
                return FileRelay(refusal=attachments.FLEX_FAILED)
            recorded = attachments.recorded(upload.filename, upload.content_type, media.size, media.sid, chat.service_sid)
            slots = tracker.current_slot_values()
            rules = chat_state.session_rules(agent.domain)
            steps = chat_state.on_visitor_file(chat, recorded, upload.relay_id, channel, closed, slots, rules)
            shown = await self._take(agent, tracker, steps, output_channel)
        if closed:
            return FileRelay(refusal=attachments.NOT_HANDED_OFF, notices=shown)
        logger.info("visitor file relayed to Flex chat %s", chat.channel_sid)
        return None

    async def _file_turn(self, agent: Agent, sender_id: str, relay_id: str, buttons_as: str) -> FileRelay:
        """The visitor's recorded file turn as history shows it, its `index` counted as history counts (every session)."""
        tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
        events = list(tracker.events) if tracker is not None else []
        found = chat_state.uploaded_turn(events, relay_id)
        index = next((i for i, event in enumerate(events) if event is found), None) if found is not None else None
        if index is None:
            return FileRelay(refusal=attachments.STORE_UNAVAILABLE)  # recorded, yet not read back: a retry finds it
        entries = payloads.history([event.as_dict() for event in events[: index + 1]], buttons_as, index, self.link(sender_id))
        return FileRelay(message=entries[0])

    async def file_link(self, token: str) -> Optional[str]:
        """A fresh temporary link to the file a media token names; None for a token we did not make (nothing is fetched).

        Raises `FlexError` when Twilio cannot say (404: the file is gone).
        """
        ref = attachments.media_of_token(self.settings.signing_secret, token)
        if ref is None:
            return None
        return await flex_chats(self.client, self.settings).media_link(ref.service_sid, ref.media_sid)

    async def chat_of(self, agent: Agent, sender_id: str) -> Optional[FlexChat]:
        """The Flex chat the conversation is handed off to, if any (read without the lock)."""
        if not agent.is_ready():
            return None
        tracker = await self.trackers.read(agent, sender_id)
        return handoff.chat_from_slots(tracker.current_slot_values()) if tracker else None

    async def forward_typing(self, agent: Agent, sender_id: str) -> None:
        """Tell the sandbox desktop the visitor is typing (real Twilio has no REST typing call)."""
        chat = await self.chat_of(agent, sender_id) if self.settings.uses_sandbox else None
        if chat is None:
            return
        body = {"channel_sid": chat.channel_sid, "identity": chat.identity, "role": "customer"}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                async with session.post(f"{self.settings.api_base}/sandbox/typing", json=body) as r:
                    await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):  # noqa: UP041 - not the builtin before Python 3.11
            logger.debug("typing indicator not forwarded")

    def add_lifecycle(self, blueprint: Blueprint) -> None:
        """Check the bot once its model is loaded and settle its heap (startup.py); close the Twilio session at stop."""

        @blueprint.listener("after_server_start")
        async def check_bot(app: Any, _loop: Any) -> None:
            stop_on_domain_problem(app)
            settle_loaded_model()

        @blueprint.listener("after_server_stop")
        async def close_twilio(_app: Any, _loop: Any) -> None:
            await self.close()

    def add_webhook_route(self, blueprint: Blueprint, deliver: Deliver, output_channel: str) -> None:
        """Mount `POST <channel>/flex` (webhooks.py): each verified event is recorded, its notices worded for `output_channel`."""

        async def on_event(agent: Agent, sender_id: str, event: FlexEvent) -> None:
            shown = await self.apply_flex_event(agent, sender_id, event, output_channel)
            if shown:
                await deliver(sender_id, shown)
                self.starts_waiting(sender_id, shown)

        webhooks.add_flex_route(blueprint, self.settings, on_event)

    def add_media_routes(
        self,
        blueprint: Blueprint,
        url_prefix: str,
        channel: str,
        output_channel: str,
        buttons_as: str,
        deliver: Deliver,
        authorised: media_routes.Authorised,
    ) -> None:
        """Mount the channel's file routes (media_routes.py): the visitor's upload, and links to files in the chat.

        From then on, files in this channel's turns are shown with links to `/webhooks/<url_prefix>/media/file/...`.
        """
        self.media_path = f"/webhooks/{url_prefix}/media"
        media_routes.add_media_routes(blueprint, self, channel, output_channel, buttons_as, deliver, authorised)


def _file_chat(tracker: Optional[DialogueStateTracker], channel: str) -> Union[FlexChat, Refusal]:
    """The agent chat a file of this conversation goes to, or why none: unknown on `channel`, or not handed off."""
    if tracker is None or not started_on(tracker, channel):
        return attachments.UNKNOWN_CONVERSATION
    chat = handoff.chat_from_slots(tracker.current_slot_values())
    return attachments.NOT_HANDED_OFF if chat is None else chat
