"""What every Flex mode shares: the records, the errors, `call()`, and the `FlexChats` interface.

Every Twilio call is async, bounded by `TWILIO_TIMEOUT` and retried with backoff on 429/5xx and
timeouts when that is safe. Twilio's REST API has no idempotency key, so a visitor message
carries its own id in the message attributes, and after an ambiguous failure the chat is
checked before posting again. Each mode (conversations.py, interactions.py, legacy.py) says only
how its API does one step; the order of the steps and what a failure means are decided here, once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, TypeVar
from urllib.parse import quote

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from rasa_flex_handoff.settings import Settings
from rasa_flex_handoff.twilio_http import map_url

logger = logging.getLogger(__name__)

# The SDK logs every request with headers at INFO; keep INFO for what happened to the handoff.
for _name in ("twilio.http_client", "twilio.async_http_client"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")

# The attribute of a relayed visitor message that says which relay made it.
RELAY_ID = "handoff_relay_id"
# How far back a retry looks for a visitor message that may have landed.
RELAY_LOOKBACK = 20
# Twilio's Media Content Service, where chat media is uploaded (one host for every account).
MCS_BASE = "https://mcs.us1.twilio.com/v1"
# The slowest an upload may go before it counts as failed: TWILIO_TIMEOUT plus a second per MiB.
UPLOAD_BYTES_PER_SECOND = 1024 * 1024
# The bot's summary for the agent: the chat's first message, by this author, marked with this attribute,
# posted without webhooks so it neither routes the chat nor comes back; the relay never shows it to the visitor.
SUMMARY_ATTRIBUTE = "handoff_summary"
SUMMARY_AUTHOR = "Rasa"

_RETRY_STATUSES = {429, 500, 502, 503, 504}
# A rejected request made nothing: safe to retry even when the call creates something.
_REJECTED_STATUSES = {429, 503}


class FlexError(Exception):
    """A Flex operation failed for good (after retries); `reason` is safe to log."""

    def __init__(self, reason: str, status: Optional[int] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ChatClosed(FlexError):
    """The Flex chat no longer accepts messages."""


@dataclass(frozen=True)
class FlexChat:
    """One visitor's chat in Flex, as stored in the handoff slots.

    `mode` is the generation the chat was made in: it picks the `FlexChats` class that finishes
    the chat, even if FLEX_MODE changed meanwhile. Chats the plugin routes itself (interactions
    mode) also record their Flex Interaction as "KD…/UO…" (interaction, channel), which is what
    ends them, and the TaskRouter task it made; pass these two by keyword.
    """

    mode: str
    channel_sid: str
    identity: str
    service_sid: Optional[str] = None
    interaction: Optional[str] = None
    task_sid: Optional[str] = None


@dataclass(frozen=True)
class FlexMedia:
    """A file attached to a Flex message (Media Content Service): its sid, and what Twilio says it is."""

    sid: str
    filename: Optional[str] = None
    content_type: Optional[str] = None
    size: Optional[int] = None


@dataclass(frozen=True)
class FlexMessage:
    """A message in the Flex chat, in the shape both APIs share."""

    sid: str
    index: int
    author: str
    body: str
    date_created: Optional[str] = None
    relay_id: Optional[str] = None
    media: Tuple[FlexMedia, ...] = ()
    summary: bool = False  # the bot's summary for the agent (SUMMARY_ATTRIBUTE), never the visitor's to see

    @property
    def has_media(self) -> bool:
        """Whether the message carries a file."""
        return bool(self.media)


@dataclass(frozen=True)
class FlexParticipant:
    """Someone in the chat: the visitor or an agent (Conversations participant, Chat member)."""

    sid: str
    identity: str


@dataclass(frozen=True)
class NewChat:
    """What a new web chat is made with, whatever the generation (each API takes its part of it)."""

    route: str  # the Flex Flow (legacy) or web chat address (Conversations) that routes it
    identity: str  # the visitor's chat identity (Conversations lets Flex choose one)
    customer_name: str
    chat_name: str
    pre_engagement_data: Dict[str, Any]  # JSON for the agent: who, why, transcript, slots
    unique_name: str  # our reference, to find the chat again after an ambiguous failure


async def call(
    what: str,
    make: Callable[[], Awaitable[T]],
    settings: Settings,
    creates: bool = False,
    landed: Optional[Callable[[], Awaitable[Optional[T]]]] = None,
    timeout: Optional[float] = None,
) -> T:
    """Run one Twilio call with a time limit, retrying 429/5xx/timeouts with exponential backoff.

    `creates=True` marks calls that would make a second resource if retried after an
    ambiguous failure (timeout, 500, dropped connection): those are retried only when Twilio
    rejected them, or when `landed` can look the resource up and finds it was not made (when it
    was, that is the result). `timeout` replaces TWILIO_TIMEOUT for a call that sends a lot (an upload).
    """
    limit = settings.twilio_timeout if timeout is None else timeout
    attempts = 1 + max(0, settings.twilio_retries)
    delay = 0.25
    for attempt in range(1, attempts + 1):
        retryable = ambiguous = False
        try:
            return await asyncio.wait_for(make(), timeout=limit)
        except TwilioException as e:
            answer = twilio_answer(e)
            if answer is None:
                error = FlexError(f"{what}: {type(e).__name__}")
            else:
                status, code = answer
                retryable = status in (_REJECTED_STATUSES if creates else _RETRY_STATUSES)
                ambiguous = creates and status in _RETRY_STATUSES - _REJECTED_STATUSES
                error = FlexError(f"{what}: Twilio answered {status} (code {code})", status)
        except asyncio.TimeoutError:  # noqa: UP041 - not the builtin before Python 3.11 (Rasa 3.6 runs on 3.8+)
            retryable = not creates
            ambiguous = creates
            error = FlexError(f"{what}: no answer within {limit:g}s")
        except (aiohttp.ClientError, OSError) as e:
            retryable = not creates or isinstance(e, aiohttp.ClientConnectorError)
            ambiguous = not retryable
            error = FlexError(f"{what}: {type(e).__name__}")
        if ambiguous and landed is not None:
            await asyncio.sleep(delay)  # a request that timed out here may still be landing there
            delay *= 2
            try:
                made = await landed()
            except FlexError:
                raise error from None  # cannot tell whether it was made: do not make it twice
            if made is not None:
                logger.info("%s failed (%s) but had gone through", what, error.reason)
                return made
            if attempt == attempts:
                raise error
            logger.info("%s failed (%s) and did not go through, retry %d/%d", what, error.reason, attempt, attempts - 1)
            continue
        if not retryable or attempt == attempts:
            raise error
        logger.info("%s failed (%s), retry %d/%d", what, error.reason, attempt, attempts - 1)
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def twilio_answer(e: TwilioException) -> Optional[Tuple[int, Optional[int]]]:
    """The HTTP status and Twilio error code of a refused request; None when Twilio did not answer.

    The SDK raises `TwilioRestException` for most calls but a bare `TwilioException("Unable to
    fetch page", response)` for a list page, which must be retried and read the same way.
    """
    if isinstance(e, TwilioRestException):
        return e.status, e.code
    response = e.args[1] if len(e.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None
    try:
        code = json.loads(getattr(response, "text", "") or "{}").get("code")
    except (ValueError, AttributeError):
        code = None
    return status, code if isinstance(code, int) else None


def is_summary(attributes: Optional[str]) -> bool:
    """Whether a message's JSON attributes mark it as the bot's summary for the agent."""
    try:
        value = json.loads(attributes or "{}")
    except ValueError:
        return False
    return isinstance(value, dict) and value.get(SUMMARY_ATTRIBUTE) is True


def relay_id_of(attributes: Optional[str]) -> Optional[str]:
    """The relay id a message's JSON attributes carry (None for messages we did not relay)."""
    try:
        value = json.loads(attributes or "{}")
    except ValueError:
        return None
    found = value.get(RELAY_ID) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def mcs_url(service_sid: str, media_sid: Optional[str] = None) -> str:
    """The Media resources of a chat service, or one of them."""
    url = f"{MCS_BASE}/Services/{quote(service_sid, safe='')}/Media"
    return f"{url}/{quote(media_sid, safe='')}" if media_sid else url


def upload_timeout(twilio_timeout: float, size: int) -> float:
    """How long an upload of `size` bytes may take: the usual limit plus the time to send it at UPLOAD_BYTES_PER_SECOND."""
    return twilio_timeout + size / UPLOAD_BYTES_PER_SECOND


def _first(item: Mapping[str, Any], *keys: str) -> Any:
    return next((item[key] for key in keys if item.get(key) is not None), None)


def media_of(found: Any) -> Tuple[FlexMedia, ...]:
    """The files a message carries, however Twilio wrote them down; () for none.

    Conversations lists them (`media: [{sid, filename, content_type, size}]`, its webhook's
    `Media` JSON with `Sid, Filename, ContentType, Size`), Programmable Chat has one object, and
    MCS answers an upload with the Media resource itself. Entries without a sid are skipped.
    """
    if isinstance(found, str):
        try:
            found = json.loads(found)
        except ValueError:
            return ()
    items = [found] if isinstance(found, Mapping) else found if isinstance(found, list) else []
    media: List[FlexMedia] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        sid = _first(item, "sid", "Sid")
        if not isinstance(sid, str) or not sid:
            continue
        filename = _first(item, "filename", "Filename")
        content_type = _first(item, "content_type", "ContentType")
        size = _first(item, "size", "Size")
        try:
            size = int(size) if size is not None else None
        except (TypeError, ValueError):
            size = None
        media.append(
            FlexMedia(
                sid,
                filename if isinstance(filename, str) and filename else None,
                content_type if isinstance(content_type, str) and content_type else None,
                size,
            )
        )
    return tuple(media)


def iso(value: object) -> Optional[str]:
    """A Twilio timestamp (datetime from the SDK, or already a string) as ISO 8601."""
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return value if isinstance(value, str) else None


class FlexChats(ABC):
    """The web chats of one Flex generation: every operation the handoff needs, one interface for both.

    Pick the class with `rasa_flex_handoff.flex.flex_chats()`: by FLEX_MODE for a new chat, by the
    chat's recorded `mode` for an existing one; nothing else asks which generation it talks to.
    The public operations keep their meaning across generations (what "closed" is, which calls
    may be retried); subclasses implement the underscored steps with their API.
    """

    mode: ClassVar[str]
    # Programmable Chat takes messages into an ended (INACTIVE) channel, where no agent reads them.
    posts_into_closed_chats: ClassVar[bool] = False
    # Whether an ended chat's attributes can still be set (a closed conversation refuses: Twilio error 50377).
    annotates_ended_chats: ClassVar[bool] = True

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def call(
        self,
        what: str,
        make: Callable[[], Awaitable[T]],
        creates: bool = False,
        landed: Optional[Callable[[], Awaitable[Optional[T]]]] = None,
        timeout: Optional[float] = None,
    ) -> T:
        """`call()` with this client's settings."""
        return await call(what, make, self.settings, creates, landed, timeout)

    async def start_chat(
        self,
        *,
        identity: str,
        customer_name: str,
        pre_engagement_data: Dict[str, Any],
        webhook_url: Optional[str],
        unique_name: str,
        opening_message: Optional[str] = None,
        summary: Optional[str] = None,
    ) -> FlexChat:
        """Create the web chat, register its scoped webhook, post the summary and the opening message; remove all on failure.

        The summary is the first message the agent reads (`post_summary`: no webhooks). The opening
        message is what routes a Flex Conversations chat (the address's Studio flow or webhook
        reacts to the first message that fires webhooks, as with Twilio's own webchat app); a
        generation that routes the chat itself does so last, so the agent who accepts finds it complete.
        """
        new = NewChat(
            route=await self.find_route(),
            identity=identity,
            customer_name=customer_name,
            chat_name=f"Web chat with {customer_name}",
            pre_engagement_data={**pre_engagement_data, "handoff_ref": unique_name},
            unique_name=unique_name,
        )
        chat = await self._create(new)
        try:
            chat = await self._prepare(chat, new)
            if webhook_url:
                await self.register_webhook(chat, webhook_url)
            if summary:
                await self.post_summary(chat, summary)
            if opening_message:
                await self.post_visitor_message(chat, opening_message)
            chat = await self._route(chat, new)
        except FlexError:
            await self.discard_chat(chat)
            raise
        logger.info("Flex %s chat %s created", chat.mode, chat.channel_sid)
        return chat

    @abstractmethod
    async def find_route(self) -> str:
        """The Flex Flow or web chat address new chats are routed through (configured, else looked up)."""

    @abstractmethod
    async def _create(self, new: NewChat) -> FlexChat:
        """Make the chat once; after an ambiguous failure, remove what may have been made, then raise."""

    async def _prepare(self, chat: FlexChat, new: NewChat) -> FlexChat:
        """What a new chat needs before the agent sees it (nothing, unless the generation says so)."""
        return chat

    async def _route(self, chat: FlexChat, new: NewChat) -> FlexChat:
        """Put the ready chat in front of the agents (nothing where Flex routes the chat it made)."""
        return chat

    @abstractmethod
    async def register_webhook(self, chat: FlexChat, url: str) -> None:
        """Point a chat-scoped webhook at the connector, for the events it turns into visitor messages."""

    async def post_visitor_message(self, chat: FlexChat, body: str, relay_id: Optional[str] = None) -> FlexMessage:
        """Post the visitor's message as the visitor, with webhooks on so Flex routing sees it; at most once per `relay_id`.

        Raises `ChatClosed` when the chat no longer takes messages, `FlexError` on other failures.
        """
        return await self._post_as_visitor(chat, "message", relay_id, lambda attributes: self._post(chat, body, attributes))

    async def post_visitor_media(self, chat: FlexChat, media: FlexMedia, relay_id: str) -> FlexMessage:
        """Post a file the visitor uploaded (`upload_media`) as a message of its own, no text; at most once per `relay_id`.

        The relay id is the client's own, sent again when it retries an upload, so the chat is
        looked at first: a message that went through before (its answer lost) is not posted twice.
        Raises like `post_visitor_message`.
        """
        return await self._post_as_visitor(
            chat, "media message", relay_id, lambda attributes: self._post_media(chat, media.sid, attributes), look_first=True
        )

    async def _post_as_visitor(
        self,
        chat: FlexChat,
        what: str,
        relay_id: Optional[str],
        post: Callable[[str], Awaitable[FlexMessage]],
        look_first: bool = False,
    ) -> FlexMessage:
        """Post one visitor message with `post(attributes)`, the relay id in its attributes, at most once per relay id.

        After an ambiguous failure the chat is looked at before posting again (`call`'s `landed`);
        with `look_first`, before the first attempt too. A refusal from a chat that turns out to
        be closed is `ChatClosed`.
        """
        relay_id = relay_id or uuid.uuid4().hex
        attributes = json.dumps({RELAY_ID: relay_id})

        async def landed() -> Optional[FlexMessage]:
            recent = await self.recent_messages(chat, RELAY_LOOKBACK)
            return next((m for m in recent if m.relay_id == relay_id and m.author == chat.identity), None)

        if look_first:
            found = await landed()
            if found is not None:
                logger.info("%s %s had gone through already", what, relay_id)
                return found
        if self.posts_into_closed_chats and await self.chat_is_closed(chat):
            raise ChatClosed("the chat is closed")
        try:
            return await self.call(f"post {self.mode} {what}", lambda: post(attributes), creates=True, landed=landed)
        except FlexError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status != 429 and await self.chat_is_closed(chat):
                raise ChatClosed(e.reason, e.status) from None
            raise

    async def post_summary(self, chat: FlexChat, text: str) -> None:
        """Post the bot's summary for the agent: author SUMMARY_AUTHOR, attributes {SUMMARY_ATTRIBUTE: true}, webhooks off.

        Without webhooks it neither routes the chat nor comes back to the relay; the relay's other
        paths (polling, catch-up) know it by its attribute. Best effort: the context carries the
        same summary, so a chat whose summary could not be posted is still handed off.
        """

        async def landed() -> Optional[FlexMessage]:
            return next((m for m in await self.recent_messages(chat, RELAY_LOOKBACK) if m.summary), None)

        attributes = json.dumps({SUMMARY_ATTRIBUTE: True})
        try:
            await self.call(
                f"post {self.mode} summary",
                lambda: self._post_summary(chat, SUMMARY_AUTHOR, text, attributes),
                creates=True,
                landed=landed,
            )
        except FlexError as e:
            logger.info("summary for Flex chat %s not posted: %s", chat.channel_sid, e.reason)

    @abstractmethod
    async def _post_summary(self, chat: FlexChat, author: str, body: str, attributes: str) -> FlexMessage:
        """One attempt at posting a message by `author` (not a participant) with webhooks disabled."""

    @abstractmethod
    async def _post(self, chat: FlexChat, body: str, attributes: str) -> FlexMessage:
        """One attempt at posting a visitor message with these JSON attributes (webhooks enabled)."""

    @abstractmethod
    async def _post_media(self, chat: FlexChat, media_sid: str, attributes: str) -> FlexMessage:
        """One attempt at posting a visitor message carrying this media and no body (webhooks enabled)."""

    async def upload_media(self, service_sid: Optional[str], data: bytes, filename: str, content_type: str) -> FlexMedia:
        """Upload a file to the chat service's Media Content Service; a message then names it by sid (`post_visitor_media`).

        Retried like a read: an upload that went through twice leaves only an unused media, which
        Twilio removes. Its time limit grows with the file (`upload_timeout`).
        """
        if not service_sid:
            raise FlexError("upload media: the chat has no chat service")
        answer = await self.call(
            "upload media",
            lambda: self._mcs("POST", mcs_url(service_sid), {"Filename": filename}, data, {"Content-Type": content_type}),
            timeout=upload_timeout(self.settings.twilio_timeout, len(data)),
        )
        media = media_of(answer)
        if not media:
            raise FlexError("upload media: answer without a sid")
        found = media[0]
        return FlexMedia(found.sid, found.filename or filename, found.content_type or content_type, found.size or len(data))

    async def media_link(self, service_sid: str, media_sid: str) -> str:
        """A link to the file's bytes that needs no credentials and expires in a few minutes (`content_direct_temporary`).

        Fetched anew each time it is needed: never stored, never shown twice. With the sandbox,
        a twilio.com link is mapped onto TWILIO_API_BASE like every other Twilio URL.
        """
        answer = await self.call("fetch media", lambda: self._mcs("GET", mcs_url(service_sid, media_sid)))
        links = answer.get("links")
        link = links.get("content_direct_temporary") if isinstance(links, dict) else None
        if not isinstance(link, str) or not link:
            raise FlexError("fetch media: answer without links.content_direct_temporary")
        return map_url(link, self.settings.api_base)

    async def _mcs(
        self,
        method: str,
        url: str,
        params: Optional[Dict[str, object]] = None,
        data: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Dict[str, Any]:
        """One request to the Media Content Service with the account's credentials (the SDK has no client for it).

        Twilio's error answers raise `TwilioRestException`, as the SDK's own calls do, so `call()` retries them alike.
        """
        answer = await self.client.request_async(method, url, params=params, data=data, headers=headers)
        try:
            found = json.loads(answer.text or "{}")
        except ValueError:
            found = {}
        found = found if isinstance(found, dict) else {}
        if not 200 <= answer.status_code < 300:
            code = found.get("code")
            raise TwilioRestException(
                answer.status_code, url, str(found.get("message") or "MCS error"), code if isinstance(code, int) else None
            )
        return found

    @abstractmethod
    async def participants(self, chat: FlexChat) -> List[FlexParticipant]:
        """Who is in the chat now."""

    async def messages_after(self, chat: FlexChat, index: int) -> List[FlexMessage]:
        """Messages with an index above `index`, oldest first (for channels that poll)."""
        messages = await self.recent_messages(chat, 100)
        return sorted((m for m in messages if m.index > index), key=lambda m: m.index)

    @abstractmethod
    async def recent_messages(self, chat: FlexChat, limit: int) -> List[FlexMessage]:
        """The chat's last `limit` messages, newest first."""

    async def chat_is_closed(self, chat: FlexChat) -> bool:
        """True when the agent side ended the chat or it is gone."""
        try:
            return await self._is_closed(chat)
        except FlexError as e:
            if e.status == 404:
                return True
            raise

    @abstractmethod
    async def _is_closed(self, chat: FlexChat) -> bool:
        """Whether the chat, as fetched now, is ended (a 404 raises: the caller counts gone as closed)."""

    async def annotate(self, chat: FlexChat, key: str, value: Any) -> None:
        """Set `key` in the chat's JSON attributes, keeping the rest (e.g. the visitor's survey answer, after the chat).

        Twilio has no partial update: the attributes are read, merged and written back. Flex keeps
        its own keys there (pre-engagement data, a Chat channel's status), so nothing else changes.
        """
        raw = await self.call(f"fetch {self.mode} chat attributes", lambda: self._attributes(chat))
        try:
            found = json.loads(raw or "{}")
        except ValueError:
            found = {}
        merged = {**(found if isinstance(found, dict) else {}), key: value}
        await self.call(f"update {self.mode} chat attributes", lambda: self._set_attributes(chat, json.dumps(merged)))

    @abstractmethod
    async def _attributes(self, chat: FlexChat) -> Optional[str]:
        """The chat's JSON attributes as Flex has them now."""

    @abstractmethod
    async def _set_attributes(self, chat: FlexChat, attributes: str) -> None:
        """Replace the chat's JSON attributes (no webhook: nothing for the relay to hear)."""

    async def close_chat(self, chat: FlexChat) -> None:
        """End the chat on the Flex side (the visitor left); already closed or gone counts as done."""
        try:
            await self._close(chat)
        except FlexError as e:
            if e.status is None or e.status == 429 or e.status >= 500:
                raise
            if e.status != 404 and not await self.chat_is_closed(chat):
                raise
        logger.info("Flex %s chat %s closed", chat.mode, chat.channel_sid)

    @abstractmethod
    async def _close(self, chat: FlexChat) -> None:
        """Ask Flex to end the chat (webhooks on, so the agent's side hears of it)."""

    async def discard_chat(self, chat: FlexChat) -> None:
        """Best-effort removal of a chat a failed handoff half-created; never raises."""
        try:
            await self._discard(chat)
            logger.info("Flex %s chat %s discarded after a failed handoff", chat.mode, chat.channel_sid)
        except FlexError as e:
            logger.warning("could not discard Flex chat %s: %s", chat.channel_sid, e.reason)

    @abstractmethod
    async def _discard(self, chat: FlexChat) -> None:
        """Remove the chat as far as the API allows; raises `FlexError` when that failed."""
