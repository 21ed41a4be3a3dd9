"""Flex Interactions: the plugin makes the conversation itself and routes it with the Interactions API.

For accounts without a web chat address (or whose address flow should not decide the routing):
a Conversations conversation with the visitor in it, then a Flex Interaction whose TaskRouter
task carries the attributes the bot chose. Messages, participants and the closed state are the
conversation's, as in Conversations mode; the chat ends by closing the interaction channel,
which closes the conversation and wraps up or cancels the task (Twilio advises against
canceling an interaction's task directly).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from twilio.rest import Client

from rasa_flex_handoff.flex.chats import FlexChat, FlexError, NewChat
from rasa_flex_handoff.flex.conversations import ConversationsChats
from rasa_flex_handoff.flex.taskrouter import REF_ATTRIBUTE, FlexRouting, task_attributes
from rasa_flex_handoff.settings import INTERACTIONS, Settings

logger = logging.getLogger(__name__)

# Flex's task channel for chats, and the task attributes Flex gives an interaction's task.
CHAT_TASK_CHANNEL = "chat"
INTERACTION_ATTRIBUTE = "flexInteractionSid"
INTERACTION_CHANNEL_ATTRIBUTE = "flexInteractionChannelSid"
# Transcript lines the task (what routing and the agent's task list see) carries; the whole context is on the conversation.
TASK_TRANSCRIPT_LINES = 5

_INTERACTION = re.compile(r"^(KD[0-9a-fA-F]{32})/(UO[0-9a-fA-F]{32})$")


@dataclass(frozen=True)
class Routed:
    """What `POST /v1/Interactions` made: the interaction (KD), its channel (UO) and the TaskRouter task (WT)."""

    interaction_sid: str
    channel_sid: str
    task_sid: Optional[str] = None

    @property
    def interaction(self) -> str:
        """The "KD…/UO…" a `FlexChat` records."""
        return f"{self.interaction_sid}/{self.channel_sid}"


def routed_of(sid: Optional[str], channel: Any, routing: Any) -> Routed:
    """An Interaction as Twilio answered it (`sid`, `channel.sid`, `routing.properties.sid`)."""
    channel_sid = channel.get("sid") if isinstance(channel, Mapping) else None
    properties = routing.get("properties") if isinstance(routing, Mapping) else None
    task_sid = properties.get("sid") if isinstance(properties, Mapping) else None
    if not sid or not isinstance(channel_sid, str):
        raise FlexError("create Interaction: answer without sid/channel.sid")
    return Routed(interaction_sid=sid, channel_sid=channel_sid, task_sid=task_sid if isinstance(task_sid, str) else None)


def interaction_of(chat: FlexChat) -> Optional[Tuple[str, str]]:
    """The chat's (interaction sid, channel sid), None when it has none; `FlexError` for a malformed (tampered) value."""
    if not chat.interaction:
        return None
    found = _INTERACTION.match(chat.interaction)
    if found is None:
        raise FlexError("the chat's interaction is not KD…/UO…")
    return found.group(1), found.group(2)


# The context's visitor fields as Flex Insights names its customer attributes (task attribute `customers`).
INSIGHTS_CUSTOMER = {"name": "name", "email": "email", "customer_id": "external_id"}


def insights_customers(visitor: Any) -> Dict[str, str]:
    """Flex Insights' `customers` task attributes ({name, email, external_id}) of the context's `visitor`, vouched or declared."""
    if not isinstance(visitor, Mapping):
        return {}
    return {key: visitor[field] for field, key in INSIGHTS_CUSTOMER.items() if isinstance(visitor.get(field), str)}


def interaction_task_attributes(new: NewChat, conversation_sid: str) -> Dict[str, Any]:
    """The TaskRouter task attributes of a chat: who, why, intent, slots, summary and the latest lines, plus what Flex reads.

    Routing (workflow expressions) and the agent's task list see only these; the full context
    stays on the conversation, under `pre_engagement_data`. Who the visitor is goes to Flex
    Insights as `customers` (whether vouched for is `visitor.verified`).
    """
    data = new.pre_engagement_data
    transcript = data.get("transcript")
    lines: List[Any] = list(transcript) if isinstance(transcript, list) else []
    kept = lines[-TASK_TRANSCRIPT_LINES:]
    omitted = len(lines) - len(kept) + int(data.get("transcript_omitted") or 0)
    attributes: Dict[str, Any] = {
        REF_ATTRIBUTE: new.unique_name,
        "name": new.customer_name,
        "customerName": new.customer_name,
        "channelType": "web",
        "conversationSid": conversation_sid,
        "visitor": data.get("visitor") or {},
        "language": data.get("language"),
        "question": data.get("question") or "",
        "intent": data.get("intent"),
        "slots": data.get("slots") or {},
        "transcript": kept,
    }
    if isinstance(data.get("summary"), Mapping):
        attributes["summary"] = data["summary"]
    customers = insights_customers(data.get("visitor"))
    if customers:
        attributes["customers"] = customers
    if omitted:
        attributes["transcript_omitted"] = omitted
    return attributes


def task_timeout(accept_timeout: float) -> Optional[int]:
    """HANDOFF_ACCEPT_TIMEOUT as the task's TTL in whole seconds (TaskRouter cancels it then); None for no limit (0)."""
    return max(1, math.ceil(accept_timeout)) if accept_timeout > 0 else None


class InteractionsChats(ConversationsChats):
    """Chats the plugin makes and routes itself: a conversation, the visitor in it, then a Flex Interaction.

    Everything the conversation does (messages, participants, webhook, closed state) is
    Conversations mode's; what differs is how the chat is made, routed and ended.
    """

    mode = INTERACTIONS

    def __init__(self, client: Client, settings: Settings) -> None:
        super().__init__(client, settings)
        self.routing = FlexRouting(client, settings)

    def _channel(self, interaction: Tuple[str, str]) -> Any:
        """The SDK's handle on an interaction channel (no request yet)."""
        interaction_sid, channel_sid = interaction
        return self.client.flex_api.v1.interaction(interaction_sid).channels(channel_sid)

    async def find_route(self) -> str:
        """The TaskRouter workflow the interaction's task goes through (FLEX_WORKFLOW_SID or found)."""
        return await self.routing.workflow()

    async def _fetch_by_unique_name(self, unique_name: str) -> Any:
        """The conversation called `unique_name` (SDK instance), None when there is none."""
        try:
            return await self.call(
                "find conversation", lambda: self.client.conversations.v1.conversations(unique_name).fetch_async()
            )
        except FlexError as e:
            if e.status == 404:
                return None
            raise

    async def _create(self, new: NewChat) -> FlexChat:
        attributes = json.dumps({"pre_engagement_data": new.pre_engagement_data})
        try:
            conversation = await self.call(
                "create conversation",
                lambda: self.client.conversations.v1.conversations.create_async(
                    friendly_name=new.chat_name,
                    unique_name=new.unique_name,
                    attributes=attributes,
                ),
                creates=True,
                landed=lambda: self._fetch_by_unique_name(new.unique_name),
            )
        except FlexError as e:
            if e.status is None or e.status >= 500:
                # Ambiguous and not found yet: it may still land; its unique name finds it.
                await self._discard_by_unique_name(new.unique_name)
            raise
        return FlexChat(
            mode=INTERACTIONS, channel_sid=conversation.sid, identity=new.identity, service_sid=conversation.chat_service_sid
        )

    async def _discard_by_unique_name(self, unique_name: str) -> None:
        try:
            conversation = await self._fetch_by_unique_name(unique_name)
        except FlexError:
            return
        if conversation is not None:
            await self.discard_chat(FlexChat(mode=INTERACTIONS, channel_sid=conversation.sid, identity=""))

    async def _prepare(self, chat: FlexChat, new: NewChat) -> FlexChat:
        """Add the visitor as the conversation's participant, under the identity the plugin chose."""

        async def landed() -> Any:
            try:
                return await self.call(
                    "find visitor participant", lambda: self._conversation(chat).participants(new.identity).fetch_async()
                )
            except FlexError as e:
                if e.status == 404:
                    return None
                raise

        await self.call(
            "add visitor participant",
            lambda: self._conversation(chat).participants.create_async(
                identity=new.identity, attributes=json.dumps({"friendlyName": new.customer_name})
            ),
            creates=True,
            landed=landed,
        )
        return chat

    async def _route(self, chat: FlexChat, new: NewChat) -> FlexChat:
        """Create the Flex Interaction for the ready conversation: its task goes to the agents through the workflow."""
        workspace = await self.routing.workspace()
        properties: Dict[str, Any] = {
            "workspace_sid": workspace,
            "workflow_sid": new.route,
            "task_channel_unique_name": CHAT_TASK_CHANNEL,
            "attributes": interaction_task_attributes(new, chat.channel_sid),
        }
        timeout = task_timeout(self.settings.accept_timeout)
        if timeout is not None:
            properties["timeout"] = timeout
        channel = {"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": chat.channel_sid}}
        routing = {"type": "TaskRouter", "properties": properties}

        async def create() -> Routed:
            made = await self.client.flex_api.v1.interaction.create_async(channel=channel, routing=routing)
            return routed_of(made.sid, made.channel, made.routing)

        async def landed() -> Optional[Routed]:
            task = await self.routing.task_by_ref(new.unique_name)
            if task is None:
                return None
            found = task_attributes(task.attributes)
            interaction, channel_sid = found.get(INTERACTION_ATTRIBUTE), found.get(INTERACTION_CHANNEL_ATTRIBUTE)
            if not isinstance(interaction, str) or not isinstance(channel_sid, str):
                raise FlexError("the interaction's task does not name its interaction")
            return Routed(interaction_sid=interaction, channel_sid=channel_sid, task_sid=str(task.sid))

        routed = await self.call("create Interaction", create, creates=True, landed=landed)
        return dataclasses.replace(chat, interaction=routed.interaction, task_sid=routed.task_sid)

    async def _close(self, chat: FlexChat) -> None:
        interaction = interaction_of(chat)
        if interaction is None:  # never routed: only the conversation exists
            await super()._close(chat)
            return
        await self.call("close interaction channel", lambda: self._channel(interaction).update_async(status="closed"))

    async def _discard(self, chat: FlexChat) -> None:
        """Close the interaction channel when there is one (its task with it), then delete the conversation."""
        try:
            if interaction_of(chat) is not None:
                await self._close(chat)
        finally:
            await super()._discard(chat)
