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
from typing import Any, Awaitable, Callable, ClassVar, Dict, List, Optional, Tuple, TypeVar

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from rasa_flex_handoff.settings import Settings

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
class FlexMessage:
    """A message in the Flex chat, in the shape both APIs share."""

    sid: str
    index: int
    author: str
    body: str
    date_created: Optional[str] = None
    relay_id: Optional[str] = None
    has_media: bool = False


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
) -> T:
    """Run one Twilio call with a time limit, retrying 429/5xx/timeouts with exponential backoff.

    `creates=True` marks calls that would make a second resource if retried after an
    ambiguous failure (timeout, 500, dropped connection): those are retried only when Twilio
    rejected them, or when `landed` can look the resource up and finds it was not made (when it
    was, that is the result).
    """
    attempts = 1 + max(0, settings.twilio_retries)
    delay = 0.25
    for attempt in range(1, attempts + 1):
        retryable = ambiguous = False
        try:
            return await asyncio.wait_for(make(), timeout=settings.twilio_timeout)
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
            error = FlexError(f"{what}: no answer within {settings.twilio_timeout:g}s")
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


def relay_id_of(attributes: Optional[str]) -> Optional[str]:
    """The relay id a message's JSON attributes carry (None for messages we did not relay)."""
    try:
        value = json.loads(attributes or "{}")
    except ValueError:
        return None
    found = value.get(RELAY_ID) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


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

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def call(
        self,
        what: str,
        make: Callable[[], Awaitable[T]],
        creates: bool = False,
        landed: Optional[Callable[[], Awaitable[Optional[T]]]] = None,
    ) -> T:
        """`call()` with this client's settings."""
        return await call(what, make, self.settings, creates, landed)

    async def start_chat(
        self,
        *,
        identity: str,
        customer_name: str,
        pre_engagement_data: Dict[str, Any],
        webhook_url: Optional[str],
        unique_name: str,
        opening_message: Optional[str] = None,
    ) -> FlexChat:
        """Create the web chat, register its scoped webhook, post the opening message; on failure remove what was made.

        The opening message is what routes a Flex Conversations chat (the address's Studio flow
        or webhook reacts to the first message, as with Twilio's own webchat app); a generation
        that routes the chat itself does so last, so the agent who accepts finds it complete.
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
        relay_id = relay_id or uuid.uuid4().hex
        attributes = json.dumps({RELAY_ID: relay_id})

        async def landed() -> Optional[FlexMessage]:
            recent = await self.recent_messages(chat, RELAY_LOOKBACK)
            return next((m for m in recent if m.relay_id == relay_id and m.author == chat.identity), None)

        if self.posts_into_closed_chats and await self.chat_is_closed(chat):
            raise ChatClosed("the chat is closed")
        try:
            return await self.call(
                f"post {self.mode} message", lambda: self._post(chat, body, attributes), creates=True, landed=landed
            )
        except FlexError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status != 429 and await self.chat_is_closed(chat):
                raise ChatClosed(e.reason, e.status) from None
            raise

    @abstractmethod
    async def _post(self, chat: FlexChat, body: str, attributes: str) -> FlexMessage:
        """One attempt at posting a visitor message with these JSON attributes (webhooks enabled)."""

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
