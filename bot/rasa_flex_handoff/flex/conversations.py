"""Flex Conversations (Flex UI 2.x): v2 WebChats and the Conversations API."""

from __future__ import annotations

import json
import logging
from typing import Any, List, Optional, cast

from rasa_flex_handoff.flex.chats import (
    FlexChat,
    FlexChats,
    FlexError,
    FlexMessage,
    FlexParticipant,
    NewChat,
    is_summary,
    iso,
    media_of,
    relay_id_of,
)
from rasa_flex_handoff.settings import CONVERSATIONS

logger = logging.getLogger(__name__)

# Only what the connector turns into visitor-facing events.
CONVERSATION_FILTERS = [
    "onMessageAdded",
    "onConversationStateUpdated",
    "onParticipantAdded",
    "onParticipantRemoved",
]

# How Twilio labels the web chat address configuration (not documented consistently).
WEBCHAT_ADDRESS_TYPES = ("web", "webchat", "chat")


class ConversationsChats(FlexChats):
    """Web chats as Flex Conversations makes them: the conversation sid is the chat's, Flex picks the visitor identity."""

    mode = CONVERSATIONS

    def _conversation(self, chat: FlexChat) -> Any:
        """The SDK's handle on the chat's conversation (no request yet)."""
        return self.client.conversations.v1.conversations(chat.channel_sid)

    async def find_route(self) -> str:
        if self.settings.conversations_address_sid:
            return self.settings.conversations_address_sid
        addresses = await self.call(
            "list address configurations",
            lambda: self.client.conversations.v1.address_configurations.list_async(limit=200, page_size=50),  # the spec's maximum
        )
        for kind in WEBCHAT_ADDRESS_TYPES:
            for address in addresses:
                if address.type == kind:
                    return str(address.sid)
        raise FlexError("no web chat address configuration (set FLEX_CONVERSATIONS_ADDRESS_SID)")

    async def _create(self, new: NewChat) -> FlexChat:
        try:
            created = await self.call(
                "create WebChat",
                lambda: self.client.flex_api.v2.web_channels.create_async(
                    address_sid=new.route,
                    chat_friendly_name=new.chat_name,
                    customer_friendly_name=new.customer_name,
                    pre_engagement_data=json.dumps(new.pre_engagement_data),
                ),
                creates=True,
            )
        except FlexError as e:
            if e.status is None or e.status >= 500:
                # Ambiguous: Flex may have made the conversation anyway; its handoff_ref finds it.
                await self._discard_by_ref(new.unique_name)
            raise
        if not created.conversation_sid or not created.identity:
            raise FlexError("create WebChat: answer without conversation_sid/identity")
        return FlexChat(CONVERSATIONS, created.conversation_sid, created.identity, self.settings.chat_service_sid)

    async def _discard_by_ref(self, ref: str) -> None:
        try:
            conversations = await self.call(
                "list conversations",
                lambda: self.client.conversations.v1.conversations.list_async(state="active", limit=200, page_size=100),
            )
        except FlexError:
            return
        for conversation in conversations:
            if ref in (conversation.attributes or ""):
                await self.discard_chat(FlexChat(CONVERSATIONS, conversation.sid, ""))

    async def _prepare(self, chat: FlexChat, new: NewChat) -> FlexChat:
        """Make sure the conversation attributes carry `pre_engagement_data`, where Flex shows it."""
        conversation = await self.call("fetch conversation", lambda: self._conversation(chat).fetch_async())
        try:
            attributes = json.loads(conversation.attributes or "{}")
        except ValueError:
            attributes = {}
        if not isinstance(attributes, dict):
            attributes = {}
        if "pre_engagement_data" not in attributes:
            attributes["pre_engagement_data"] = new.pre_engagement_data
            await self.call(
                "update conversation attributes",
                lambda: self._conversation(chat).update_async(attributes=json.dumps(attributes)),
            )
        service_sid = cast(Optional[str], conversation.chat_service_sid) or chat.service_sid
        return FlexChat(chat.mode, chat.channel_sid, chat.identity, service_sid)

    async def register_webhook(self, chat: FlexChat, url: str) -> None:
        await self.call(
            "register conversation webhook",
            lambda: self._conversation(chat).webhooks.create_async(
                target="webhook",
                configuration_url=url,
                configuration_method="POST",
                configuration_filters=CONVERSATION_FILTERS,
            ),
            creates=True,
        )

    async def _post_summary(self, chat: FlexChat, author: str, body: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._conversation(chat).messages.create_async(
                x_twilio_webhook_enabled="false", author=author, body=body, attributes=attributes
            )
        )

    async def _post(self, chat: FlexChat, body: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._conversation(chat).messages.create_async(
                x_twilio_webhook_enabled="true", author=chat.identity, body=body, attributes=attributes
            )
        )

    async def _post_media(self, chat: FlexChat, media_sid: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._conversation(chat).messages.create_async(
                x_twilio_webhook_enabled="true", author=chat.identity, media_sid=media_sid, attributes=attributes
            )
        )

    async def participants(self, chat: FlexChat) -> List[FlexParticipant]:
        found = await self.call(
            "list conversation participants",
            lambda: self._conversation(chat).participants.list_async(limit=50, page_size=50),
        )
        return [FlexParticipant(p.sid, p.identity or "") for p in found]

    async def recent_messages(self, chat: FlexChat, limit: int) -> List[FlexMessage]:
        found = await self.call(
            "list conversation messages",
            lambda: self._conversation(chat).messages.list_async(order="desc", limit=limit, page_size=limit),
        )
        return [message_of(m) for m in found]

    annotates_ended_chats = False  # a closed conversation's attributes are read-only (50377): its task takes them

    async def _attributes(self, chat: FlexChat) -> Optional[str]:
        conversation = await self._conversation(chat).fetch_async()
        return conversation.attributes  # type: ignore[no-any-return]

    async def _set_attributes(self, chat: FlexChat, attributes: str) -> None:
        await self._conversation(chat).update_async(attributes=attributes)

    async def _is_closed(self, chat: FlexChat) -> bool:
        conversation = await self.call("fetch conversation", lambda: self._conversation(chat).fetch_async())
        return bool(conversation.state == "closed")

    async def _close(self, chat: FlexChat) -> None:
        await self.call(
            "close conversation",
            lambda: self._conversation(chat).update_async(x_twilio_webhook_enabled="true", state="closed"),
        )

    async def _discard(self, chat: FlexChat) -> None:
        try:
            await self.call("delete conversation", lambda: self._conversation(chat).delete_async())
        except FlexError:
            await self.close_chat(chat)


def message_of(m: Any) -> FlexMessage:
    """A Conversations message (SDK instance) as a `FlexMessage`."""
    return FlexMessage(
        m.sid,
        int(m.index or 0),
        m.author or "",
        m.body or "",
        iso(m.date_created),
        relay_id_of(m.attributes),
        media_of(m.media),
        summary=is_summary(m.attributes),
    )
