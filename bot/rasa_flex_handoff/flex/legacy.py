"""Legacy Flex (Flex UI 1.x): v1 WebChannels on a Flex Flow, and Programmable Chat."""

from __future__ import annotations

import json
import logging
from typing import Any, List, Optional

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
from rasa_flex_handoff.settings import LEGACY

logger = logging.getLogger(__name__)

# Only what the connector turns into visitor-facing events.
CHANNEL_FILTERS = ["onMessageSent", "onMediaMessageSent", "onChannelUpdated", "onMemberAdded", "onMemberRemoved"]


def channel_attributes_inactive(attributes: Optional[str]) -> bool:
    """Legacy Flex marks an ended chat with `status: INACTIVE` in the channel attributes."""
    try:
        data = json.loads(attributes or "{}")
    except ValueError:
        return False
    return isinstance(data, dict) and str(data.get("status", "")).upper() == "INACTIVE"


class LegacyChats(FlexChats):
    """Web chats as legacy Flex makes them: a Programmable Chat channel in the Flex Flow's chat service."""

    mode = LEGACY
    posts_into_closed_chats = True

    def _channel(self, chat: FlexChat) -> Any:
        """The SDK's handle on the chat's channel (no request yet)."""
        return self.client.chat.v2.services(chat.service_sid).channels(chat.channel_sid)

    async def find_route(self) -> str:
        if self.settings.flex_flow_sid:
            return self.settings.flex_flow_sid
        flows = await self.call("list Flex Flows", lambda: self.client.flex_api.v1.flex_flow.list_async(limit=200))
        for flow in flows:
            if flow.enabled and flow.channel_type == "web":
                return str(flow.sid)
        raise FlexError("no enabled Flex Flow with channel type web (set FLEX_FLOW_SID)")

    async def _create(self, new: NewChat) -> FlexChat:
        flow = await self.call("fetch Flex Flow", lambda: self.client.flex_api.v1.flex_flow(new.route).fetch_async())
        service_sid: Optional[str] = flow.chat_service_sid or self.settings.chat_service_sid
        try:
            created = await self.call(
                "create WebChannel",
                lambda: self.client.flex_api.v1.web_channel.create_async(
                    flex_flow_sid=new.route,
                    identity=new.identity,
                    customer_friendly_name=new.customer_name,
                    chat_friendly_name=new.chat_name,
                    chat_unique_name=new.unique_name,
                    pre_engagement_data=json.dumps(new.pre_engagement_data),
                ),
                creates=True,
            )
        except FlexError as e:
            if (e.status is None or e.status >= 500) and service_sid:
                # Timed out: the channel may exist anyway; its unique name finds it.
                await self._discard_by_unique_name(service_sid, new.unique_name)
            raise
        return FlexChat(LEGACY, created.sid, new.identity, service_sid)

    async def _discard_by_unique_name(self, service_sid: str, unique_name: str) -> None:
        try:
            channel = await self.call(
                "find chat channel",
                lambda: self.client.chat.v2.services(service_sid).channels(unique_name).fetch_async(),
            )
        except FlexError:
            return
        await self.discard_chat(FlexChat(LEGACY, channel.sid, "", service_sid))

    async def register_webhook(self, chat: FlexChat, url: str) -> None:
        await self.call(
            "register channel webhook",
            lambda: self._channel(chat).webhooks.create_async(
                type="webhook",
                configuration_url=url,
                configuration_method="POST",
                configuration_filters=CHANNEL_FILTERS,
                configuration_retry_count=1,
            ),
            creates=True,
        )

    async def _post_summary(self, chat: FlexChat, author: str, body: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._channel(chat).messages.create_async(
                x_twilio_webhook_enabled="false", from_=author, body=body, attributes=attributes
            )
        )

    async def _post(self, chat: FlexChat, body: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._channel(chat).messages.create_async(
                x_twilio_webhook_enabled="true", from_=chat.identity, body=body, attributes=attributes
            )
        )

    async def _post_media(self, chat: FlexChat, media_sid: str, attributes: str) -> FlexMessage:
        return message_of(
            await self._channel(chat).messages.create_async(
                x_twilio_webhook_enabled="true", from_=chat.identity, media_sid=media_sid, attributes=attributes
            )
        )

    async def participants(self, chat: FlexChat) -> List[FlexParticipant]:
        found = await self.call("list chat members", lambda: self._channel(chat).members.list_async(limit=50, page_size=50))
        return [FlexParticipant(p.sid, p.identity or "") for p in found]

    async def recent_messages(self, chat: FlexChat, limit: int) -> List[FlexMessage]:
        found = await self.call(
            "list chat messages",
            lambda: self._channel(chat).messages.list_async(order="desc", limit=limit, page_size=limit),
        )
        return [message_of(m) for m in found]

    async def _attributes(self, chat: FlexChat) -> Optional[str]:
        channel = await self._channel(chat).fetch_async()
        return channel.attributes  # type: ignore[no-any-return]

    async def _set_attributes(self, chat: FlexChat, attributes: str) -> None:
        await self._channel(chat).update_async(attributes=attributes)

    async def _is_closed(self, chat: FlexChat) -> bool:
        channel = await self.call("fetch chat channel", lambda: self._channel(chat).fetch_async())
        return channel_attributes_inactive(channel.attributes)

    async def _close(self, chat: FlexChat) -> None:
        await self.call(
            "end WebChannel",
            lambda: self.client.flex_api.v1.web_channel(chat.channel_sid).update_async(chat_status="inactive"),
        )

    async def _discard(self, chat: FlexChat) -> None:
        try:
            await self.close_chat(chat)
        finally:
            if chat.service_sid:
                await self.call("delete chat channel", lambda: self._channel(chat).delete_async())


def message_of(m: Any) -> FlexMessage:
    """A Programmable Chat message (SDK instance) as a `FlexMessage`."""
    return FlexMessage(
        m.sid,
        int(m.index or 0),
        m._from or "",
        m.body or "",
        iso(m.date_created),
        relay_id_of(m.attributes),
        media_of(m.media),
        summary=is_summary(m.attributes),
    )
