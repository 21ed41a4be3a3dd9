"""A visitor's chat with a Flex agent: start it, relay to it, poll it, end it.

These are the steps behind the handoff actions, kept apart from rasa-sdk so they can be
tested (and reused by the connector) without an action server. Each takes the `FlexChats`
of the chat's generation (`rasa_flex_handoff.flex.flex_chats`), so none of them asks which
generation it talks to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable, List, Mapping, Optional

from twilio.rest import Client

from rasa_flex_handoff import handoff, summariser
from rasa_flex_handoff.flex import ChatClosed, FlexChat, FlexChats, FlexError, FlexMessage, FlexParticipant
from rasa_flex_handoff.settings import Settings
from rasa_flex_handoff.twilio_http import twilio_client

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5
SYSTEM_AUTHOR = "system"


@asynccontextmanager
async def flex_client(settings: Settings) -> AsyncIterator[Client]:
    """An async Twilio client whose HTTP session is closed afterwards."""
    client = twilio_client(settings, asynchronous=True)
    try:
        yield client
    finally:
        await client.http_client.close()


async def start(
    chats: FlexChats,
    *,
    sender_id: str,
    events: Iterable[Any],
    slots: Mapping[str, Any],
    capabilities: handoff.ChannelCapabilities,
    intent: Optional[str] = None,
) -> FlexChat:
    """Create the visitor's Flex chat with the bot context, scoped webhook included when the channel takes them.

    The agent learns who the visitor is (`handoff.known_visitor`) and reads the bot's summary
    (summariser.py) first, in the chat and in its context.
    """
    settings = chats.settings
    url = None
    if capabilities.webhook_path:
        url = handoff.webhook_url(settings.public_url, capabilities.webhook_path, sender_id, settings.signing_secret)
    events = list(events)
    visitor = handoff.known_visitor(capabilities, events, sender_id, settings.signing_secret)
    summary = await summariser.summary_for(settings.summariser, events, slots)
    return await chats.start_chat(
        identity=handoff.visitor_identity(sender_id, settings.signing_secret),
        customer_name=handoff.visitor_name(slots, visitor),
        pre_engagement_data=handoff.context(events, slots, intent, visitor, summary.as_context()),
        webhook_url=url,
        unique_name=f"handoff-{uuid.uuid4().hex}",
        opening_message=handoff.opening_message(events),
        summary=summary.text,
    )


@dataclass
class Relayed:
    """What happened to one relayed visitor message, and what the agent said meanwhile."""

    replies: List[FlexMessage] = field(default_factory=list)
    last_index: int = -1
    closed: bool = False
    delivered: bool = False  # the visitor's message reached the chat (a chat found closed took nothing)
    failure: Optional[str] = None
    participants: List[FlexParticipant] = field(default_factory=list)  # only when catching up


def is_from_agent_side(message: FlexMessage, chat: FlexChat) -> bool:
    """Everything not written by the visitor's own identity comes from the Flex side, but the bot's summary for the agent."""
    return message.author != chat.identity and not message.summary


async def relay(
    chats: FlexChats,
    chat: FlexChat,
    text: str,
    last_index: int,
    wait: float = 0.0,
    relay_id: Optional[str] = None,
) -> Relayed:
    """Post the visitor's message (once per `relay_id`, e.g. Rasa's message id).

    With `wait`, collect agent replies for up to `wait` seconds (channels without webhooks).
    """
    outcome = Relayed(last_index=last_index)
    try:
        await chats.post_visitor_message(chat, text, relay_id)
    except ChatClosed:
        outcome.closed = True
        return outcome
    except FlexError as e:
        logger.info("relay to Flex chat %s failed: %s", chat.channel_sid, e.reason)
        outcome.failure = e.reason
        return outcome
    except Exception:  # a relay failure must reach the visitor, never vanish in a log
        logger.exception("relay to Flex chat %s failed unexpectedly", chat.channel_sid)
        outcome.failure = "unexpected error"
        return outcome
    outcome.delivered = True
    if wait > 0:
        await poll(chats, chat, outcome, wait)
    return outcome


async def poll(chats: FlexChats, chat: FlexChat, outcome: Relayed, wait: float) -> Relayed:
    """Collect agent messages after `outcome.last_index` until one arrives, the chat closes, or `wait` ends."""
    deadline = time.monotonic() + wait
    while True:
        try:
            await _collect(chats, chat, outcome, check_closed=False)
        except FlexError as e:
            logger.info("polling Flex chat %s failed: %s", chat.channel_sid, e.reason)
            return outcome
        if outcome.replies or outcome.closed or time.monotonic() >= deadline:
            return outcome
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


async def missed(chats: FlexChats, chat: FlexChat, last_index: int) -> Relayed:
    """Who is in the chat, agent messages after `last_index` and whether it closed: what failed webhooks did not bring."""
    outcome = Relayed(last_index=last_index)
    try:
        outcome.participants = await chats.participants(chat)
        await _collect(chats, chat, outcome, check_closed=True)
    except FlexError as e:
        logger.info("catching up with Flex chat %s failed: %s", chat.channel_sid, e.reason)
        outcome.failure = e.reason
    return outcome


async def _collect(chats: FlexChats, chat: FlexChat, outcome: Relayed, check_closed: bool) -> None:
    """One look at the chat: new agent-side messages into `outcome`, and the closed state when asked or none came."""
    for message in await chats.messages_after(chat, outcome.last_index):
        outcome.last_index = max(outcome.last_index, message.index)
        if is_from_agent_side(message, chat):
            outcome.replies.append(message)
    if check_closed or not outcome.replies:
        outcome.closed = await chats.chat_is_closed(chat)


async def end(chats: FlexChats, chat: FlexChat) -> bool:
    """Close the Flex side because the visitor left; False when Twilio could not be told."""
    try:
        await chats.close_chat(chat)
        return True
    except FlexError as e:
        logger.info("closing Flex chat %s failed: %s", chat.channel_sid, e.reason)
        return False
