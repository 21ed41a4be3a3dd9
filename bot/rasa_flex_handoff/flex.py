"""Flex operations for both messaging generations: route, create, webhook, relay, list, close.

Conversations mode (Flex UI 2.x) uses v2 WebChats and the Conversations API; legacy mode
(Flex UI 1.x) uses v1 WebChannels and Programmable Chat. Every call is async, bounded by
`TWILIO_TIMEOUT` and retried with backoff on 429/5xx and timeouts when that is safe.
Twilio's REST API has no idempotency key, so a visitor message carries its own id in the
message attributes, and after an ambiguous failure the chat is checked before posting again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar

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

CONVERSATIONS = "conversations"
LEGACY = "legacy"

# Only what the connector turns into visitor-facing events.
CONVERSATION_FILTERS = [
    "onMessageAdded",
    "onConversationStateUpdated",
    "onParticipantAdded",
    "onParticipantRemoved",
]
CHANNEL_FILTERS = ["onMessageSent", "onMediaMessageSent", "onChannelUpdated", "onMemberAdded", "onMemberRemoved"]

# How Twilio labels the web chat address configuration (not documented consistently).
WEBCHAT_ADDRESS_TYPES = ("web", "webchat", "chat")

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
    """One visitor's chat in Flex, as stored in the handoff slots."""

    mode: str
    channel_sid: str
    identity: str
    service_sid: Optional[str] = None


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
        except TwilioRestException as e:
            retryable = e.status in (_REJECTED_STATUSES if creates else _RETRY_STATUSES)
            ambiguous = creates and e.status in _RETRY_STATUSES - _REJECTED_STATUSES
            error = FlexError(f"{what}: Twilio answered {e.status} (code {e.code})", e.status)
        except asyncio.TimeoutError:
            retryable = not creates
            ambiguous = creates
            error = FlexError(f"{what}: no answer within {settings.twilio_timeout:g}s")
        except (aiohttp.ClientError, OSError) as e:
            retryable = not creates or isinstance(e, aiohttp.ClientConnectorError)
            ambiguous = not retryable
            error = FlexError(f"{what}: {type(e).__name__}")
        except TwilioException as e:
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


async def find_route(client: Client, settings: Settings) -> str:
    """The Flex Flow (legacy) or web chat address (Conversations) new chats are routed through."""
    if settings.flex_mode == LEGACY:
        if settings.flex_flow_sid:
            return settings.flex_flow_sid
        flows = await call("list Flex Flows", lambda: client.flex_api.v1.flex_flow.list_async(limit=200), settings)
        for flow in flows:
            if flow.enabled and flow.channel_type == "web":
                return flow.sid
        raise FlexError("no enabled Flex Flow with channel type web (set FLEX_FLOW_SID)")
    if settings.conversations_address_sid:
        return settings.conversations_address_sid
    addresses = await call(
        "list address configurations",
        lambda: client.conversations.v1.address_configurations.list_async(limit=200),
        settings,
    )
    for kind in WEBCHAT_ADDRESS_TYPES:
        for address in addresses:
            if address.type == kind:
                return address.sid
    raise FlexError("no web chat address configuration (set FLEX_CONVERSATIONS_ADDRESS_SID)")


async def start_chat(
    client: Client,
    settings: Settings,
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
    or webhook reacts to the first message, as with Twilio's own webchat app).
    """
    route = await find_route(client, settings)
    chat_name = f"Web chat with {customer_name}"
    pre_engagement_data = {**pre_engagement_data, "handoff_ref": unique_name}
    pre_engagement = json.dumps(pre_engagement_data)
    if settings.flex_mode == LEGACY:
        chat = await _create_web_channel(client, settings, route, identity, customer_name, chat_name, pre_engagement, unique_name)
    else:
        chat = await _create_web_chat(client, settings, route, customer_name, chat_name, pre_engagement_data, unique_name)
    try:
        if chat.mode == CONVERSATIONS:
            chat = await _show_pre_engagement(client, settings, chat, pre_engagement_data)
        if webhook_url:
            await register_webhook(client, settings, chat, webhook_url)
        if opening_message:
            await post_visitor_message(client, settings, chat, opening_message)
    except FlexError:
        await discard_chat(client, settings, chat)
        raise
    logger.info("Flex %s chat %s created", chat.mode, chat.channel_sid)
    return chat


async def _create_web_channel(
    client: Client,
    settings: Settings,
    flow_sid: str,
    identity: str,
    customer_name: str,
    chat_name: str,
    pre_engagement: str,
    unique_name: str,
) -> FlexChat:
    flow = await call("fetch Flex Flow", lambda: client.flex_api.v1.flex_flow(flow_sid).fetch_async(), settings)
    service_sid = flow.chat_service_sid or settings.chat_service_sid
    try:
        created = await call(
            "create WebChannel",
            lambda: client.flex_api.v1.web_channel.create_async(
                flex_flow_sid=flow_sid,
                identity=identity,
                customer_friendly_name=customer_name,
                chat_friendly_name=chat_name,
                chat_unique_name=unique_name,
                pre_engagement_data=pre_engagement,
            ),
            settings,
            creates=True,
        )
    except FlexError as e:
        if (e.status is None or e.status >= 500) and service_sid:
            # Timed out: the channel may exist anyway; its unique name finds it.
            await _discard_by_unique_name(client, settings, service_sid, unique_name)
        raise
    return FlexChat(LEGACY, created.sid, identity, service_sid)


async def _create_web_chat(
    client: Client,
    settings: Settings,
    address_sid: str,
    customer_name: str,
    chat_name: str,
    pre_engagement_data: Dict[str, Any],
    ref: str,
) -> FlexChat:
    try:
        created = await call(
            "create WebChat",
            lambda: client.flex_api.v2.web_channels.create_async(
                address_sid=address_sid,
                chat_friendly_name=chat_name,
                customer_friendly_name=customer_name,
                pre_engagement_data=json.dumps(pre_engagement_data),
            ),
            settings,
            creates=True,
        )
    except FlexError as e:
        if e.status is None or e.status >= 500:
            # Ambiguous: Flex may have made the conversation anyway; its handoff_ref finds it.
            await _discard_by_ref(client, settings, ref)
        raise
    if not created.conversation_sid or not created.identity:
        raise FlexError("create WebChat: answer without conversation_sid/identity")
    return FlexChat(CONVERSATIONS, created.conversation_sid, created.identity, settings.chat_service_sid)


async def _discard_by_ref(client: Client, settings: Settings, ref: str) -> None:
    try:
        conversations = await call(
            "list conversations",
            lambda: client.conversations.v1.conversations.list_async(state="active", limit=200, page_size=100),
            settings,
        )
    except FlexError:
        return
    for conversation in conversations:
        if ref in (conversation.attributes or ""):
            await discard_chat(client, settings, FlexChat(CONVERSATIONS, conversation.sid, ""))


async def _discard_by_unique_name(client: Client, settings: Settings, service_sid: str, unique_name: str) -> None:
    try:
        channel = await call(
            "find chat channel",
            lambda: client.chat.v2.services(service_sid).channels(unique_name).fetch_async(),
            settings,
        )
    except FlexError:
        return
    await discard_chat(client, settings, FlexChat(LEGACY, channel.sid, "", service_sid))


async def _show_pre_engagement(
    client: Client, settings: Settings, chat: FlexChat, data: Dict[str, Any]
) -> FlexChat:
    """Make sure the conversation attributes carry `pre_engagement_data`, where Flex shows it."""
    conversation = await call(
        "fetch conversation", lambda: client.conversations.v1.conversations(chat.channel_sid).fetch_async(), settings
    )
    try:
        attributes = json.loads(conversation.attributes or "{}")
    except ValueError:
        attributes = {}
    if not isinstance(attributes, dict):
        attributes = {}
    if "pre_engagement_data" not in attributes:
        attributes["pre_engagement_data"] = data
        await call(
            "update conversation attributes",
            lambda: client.conversations.v1.conversations(chat.channel_sid).update_async(
                attributes=json.dumps(attributes)
            ),
            settings,
        )
    service_sid = conversation.chat_service_sid or chat.service_sid
    return FlexChat(chat.mode, chat.channel_sid, chat.identity, service_sid)


async def register_webhook(client: Client, settings: Settings, chat: FlexChat, url: str) -> None:
    """Point a chat-scoped webhook at the connector, for the events it turns into visitor messages."""
    if chat.mode == CONVERSATIONS:
        await call(
            "register conversation webhook",
            lambda: client.conversations.v1.conversations(chat.channel_sid).webhooks.create_async(
                target="webhook",
                configuration_url=url,
                configuration_method="POST",
                configuration_filters=CONVERSATION_FILTERS,
            ),
            settings,
            creates=True,
        )
    else:
        await call(
            "register channel webhook",
            lambda: client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).webhooks.create_async(
                type="webhook",
                configuration_url=url,
                configuration_method="POST",
                configuration_filters=CHANNEL_FILTERS,
                configuration_retry_count=1,
            ),
            settings,
            creates=True,
        )


async def post_visitor_message(
    client: Client, settings: Settings, chat: FlexChat, body: str, relay_id: Optional[str] = None
) -> FlexMessage:
    """Post the visitor's message as the visitor, with webhooks on so Flex routing sees it; at most once per `relay_id`."""
    relay_id = relay_id or uuid.uuid4().hex
    attributes = json.dumps({RELAY_ID: relay_id})

    async def landed() -> Optional[FlexMessage]:
        recent = await _recent_messages(client, settings, chat, RELAY_LOOKBACK)
        return next((m for m in recent if m.relay_id == relay_id and m.author == chat.identity), None)

    async def post() -> FlexMessage:
        if chat.mode == CONVERSATIONS:
            return _conversation_message(await client.conversations.v1.conversations(chat.channel_sid).messages.create_async(
                x_twilio_webhook_enabled="true", author=chat.identity, body=body, attributes=attributes
            ))
        return _chat_message(await client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).messages.create_async(
            x_twilio_webhook_enabled="true", from_=chat.identity, body=body, attributes=attributes
        ))

    if chat.mode != CONVERSATIONS and await chat_is_closed(client, settings, chat):
        # Programmable Chat takes messages into an INACTIVE channel, where no agent reads them any more.
        raise ChatClosed("the chat channel is inactive")
    try:
        return await call(f"post {chat.mode} message", post, settings, creates=True, landed=landed)
    except FlexError as e:
        if e.status is not None and 400 <= e.status < 500 and e.status != 429 and await chat_is_closed(client, settings, chat):
            raise ChatClosed(e.reason, e.status) from None
        raise


@dataclass(frozen=True)
class FlexParticipant:
    """Someone in the chat: the visitor or an agent (Conversations participant, Chat member)."""

    sid: str
    identity: str


async def participants(client: Client, settings: Settings, chat: FlexChat) -> List[FlexParticipant]:
    """Who is in the chat now."""
    if chat.mode == CONVERSATIONS:
        found = await call(
            "list conversation participants",
            lambda: client.conversations.v1.conversations(chat.channel_sid).participants.list_async(limit=50, page_size=50),
            settings,
        )
    else:
        found = await call(
            "list chat members",
            lambda: client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).members.list_async(limit=50, page_size=50),
            settings,
        )
    return [FlexParticipant(p.sid, p.identity or "") for p in found]


async def messages_after(client: Client, settings: Settings, chat: FlexChat, index: int) -> List[FlexMessage]:
    """Messages with an index above `index`, oldest first (for channels that poll)."""
    messages = await _recent_messages(client, settings, chat, 100)
    return sorted((m for m in messages if m.index > index), key=lambda m: m.index)


async def _recent_messages(client: Client, settings: Settings, chat: FlexChat, limit: int) -> List[FlexMessage]:
    """The chat's last `limit` messages, newest first."""
    if chat.mode == CONVERSATIONS:
        found = await call(
            "list conversation messages",
            lambda: client.conversations.v1.conversations(chat.channel_sid).messages.list_async(
                order="desc", limit=limit, page_size=limit
            ),
            settings,
        )
        return [_conversation_message(m) for m in found]
    found = await call(
        "list chat messages",
        lambda: client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).messages.list_async(
            order="desc", limit=limit, page_size=limit
        ),
        settings,
    )
    return [_chat_message(m) for m in found]


def _conversation_message(m: Any) -> FlexMessage:
    return FlexMessage(
        m.sid, int(m.index or 0), m.author or "", m.body or "", _iso(m.date_created), _relay_id(m.attributes), bool(m.media)
    )


def _chat_message(m: Any) -> FlexMessage:
    return FlexMessage(
        m.sid, int(m.index or 0), m._from or "", m.body or "", _iso(m.date_created), _relay_id(m.attributes), bool(m.media)
    )


def _relay_id(attributes: Optional[str]) -> Optional[str]:
    try:
        value = json.loads(attributes or "{}")
    except ValueError:
        return None
    return value.get(RELAY_ID) if isinstance(value, dict) else None


async def chat_is_closed(client: Client, settings: Settings, chat: FlexChat) -> bool:
    """True when the agent side ended the chat (conversation closed / channel INACTIVE) or it is gone."""
    try:
        if chat.mode == CONVERSATIONS:
            conversation = await call(
                "fetch conversation",
                lambda: client.conversations.v1.conversations(chat.channel_sid).fetch_async(),
                settings,
            )
            return conversation.state == "closed"
        channel = await call(
            "fetch chat channel",
            lambda: client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).fetch_async(),
            settings,
        )
        return channel_attributes_inactive(channel.attributes)
    except FlexError as e:
        if e.status == 404:
            return True
        raise


def channel_attributes_inactive(attributes: Optional[str]) -> bool:
    """Legacy Flex marks an ended chat with `status: INACTIVE` in the channel attributes."""
    try:
        data = json.loads(attributes or "{}")
    except ValueError:
        return False
    return isinstance(data, dict) and str(data.get("status", "")).upper() == "INACTIVE"


async def close_chat(client: Client, settings: Settings, chat: FlexChat) -> None:
    """End the chat on the Flex side (the visitor left); already closed counts as done."""
    try:
        if chat.mode == CONVERSATIONS:
            await call(
                "close conversation",
                lambda: client.conversations.v1.conversations(chat.channel_sid).update_async(
                    x_twilio_webhook_enabled="true", state="closed"
                ),
                settings,
            )
        else:
            await call(
                "end WebChannel",
                lambda: client.flex_api.v1.web_channel(chat.channel_sid).update_async(chat_status="inactive"),
                settings,
            )
    except FlexError as e:
        if e.status is None or e.status == 429 or e.status >= 500:
            raise
        if e.status != 404 and not await chat_is_closed(client, settings, chat):
            raise
    logger.info("Flex %s chat %s closed", chat.mode, chat.channel_sid)


async def discard_chat(client: Client, settings: Settings, chat: FlexChat) -> None:
    """Best-effort removal of a chat a failed handoff half-created; never raises."""
    try:
        if chat.mode == CONVERSATIONS:
            try:
                await call(
                    "delete conversation",
                    lambda: client.conversations.v1.conversations(chat.channel_sid).delete_async(),
                    settings,
                )
            except FlexError:
                await close_chat(client, settings, chat)
        else:
            try:
                await close_chat(client, settings, chat)
            finally:
                if chat.service_sid:
                    await call(
                        "delete chat channel",
                        lambda: client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).delete_async(),
                        settings,
                    )
        logger.info("Flex %s chat %s discarded after a failed handoff", chat.mode, chat.channel_sid)
    except FlexError as e:
        logger.warning("could not discard Flex chat %s: %s", chat.channel_sid, e.reason)


def _iso(value: Any) -> Optional[str]:
    return value.isoformat() if hasattr(value, "isoformat") else value
