"""The Flex client: the handoff's chat operations, one `FlexChats` class per Flex mode, and TaskRouter.

Conversations mode (Flex UI 2.x) uses v2 WebChats and the Conversations API
(`ConversationsChats`); interactions mode makes the conversation itself and routes it with the
Interactions API (`InteractionsChats`); legacy mode (Flex UI 1.x) uses v1 WebChannels and
Programmable Chat (`LegacyChats`). `flex_chats()` picks one, so the rest of the plugin never
switches on the mode. `FlexRouting` reads and feeds TaskRouter, the same in every mode.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from twilio.rest import Client

from rasa_flex_handoff.flex.chats import (
    RELAY_ID,
    ChatClosed,
    FlexChat,
    FlexChats,
    FlexError,
    FlexMedia,
    FlexMessage,
    FlexParticipant,
    NewChat,
    call,
    media_of,
)
from rasa_flex_handoff.flex.conversations import ConversationsChats
from rasa_flex_handoff.flex.interactions import InteractionsChats
from rasa_flex_handoff.flex.legacy import LegacyChats, channel_attributes_inactive
from rasa_flex_handoff.flex.taskrouter import ASSIGNED, GONE, WAITING, FlexRouting, Waiting, estimate_wait
from rasa_flex_handoff.settings import CONVERSATIONS, INTERACTIONS, LEGACY, Settings

CHATS: Dict[str, Type[FlexChats]] = {CONVERSATIONS: ConversationsChats, LEGACY: LegacyChats, INTERACTIONS: InteractionsChats}


def flex_chats(client: Client, settings: Settings, mode: Optional[str] = None) -> FlexChats:
    """The chats of one Flex generation: `mode` for an existing chat (its recorded `FlexChat.mode`), else FLEX_MODE.

    A chat is finished in the generation it was started in, even if FLEX_MODE changed since.
    Raises `FlexError` for a mode no class serves (a tampered or foreign slot value).
    """
    chosen = mode or settings.flex_mode
    kind = CHATS.get(chosen)
    if kind is None:
        raise FlexError(f"unknown Flex mode {chosen!r} (expected one of {', '.join(CHATS)})")
    return kind(client, settings)


__all__ = [
    "ASSIGNED",
    "CHATS",
    "CONVERSATIONS",
    "GONE",
    "INTERACTIONS",
    "LEGACY",
    "WAITING",
    "RELAY_ID",
    "ChatClosed",
    "ConversationsChats",
    "FlexChat",
    "FlexChats",
    "FlexError",
    "FlexMedia",
    "FlexMessage",
    "FlexParticipant",
    "FlexRouting",
    "InteractionsChats",
    "LegacyChats",
    "NewChat",
    "Waiting",
    "call",
    "channel_attributes_inactive",
    "estimate_wait",
    "flex_chats",
    "media_of",
]
