"""What happened in a Flex chat, in one shape for both generations: from a webhook, or found by catch-up.

Conversations and Programmable Chat name their webhook events and fields differently; the
state machine (chat_state.py) reads only `FlexEvent`, so it never learns which one spoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Dict, Mapping, Optional, Tuple

from rasa_flex_handoff.flex import FlexChat, FlexMedia, FlexMessage, channel_attributes_inactive, media_of
from rasa_flex_handoff.flex.chats import is_summary
from rasa_flex_handoff.settings import CONVERSATIONS, INTERACTIONS, LEGACY

MESSAGE_EVENTS = frozenset({"onMessageAdded", "onMessageSent", "onMediaMessageSent"})
JOIN_EVENTS = frozenset({"onParticipantAdded", "onMemberAdded"})
LEAVE_EVENTS = frozenset({"onParticipantRemoved", "onMemberRemoved"})
CLOSE_EVENTS = frozenset({"onConversationRemoved", "onChannelDestroyed"})

# Each generation's participant events (joined, left): catch-up names what it finds as the webhook would,
# because a notice is recorded under "<event type>:<participant sid>" and must not come twice.
_PARTICIPANT_EVENTS: Dict[str, Tuple[str, str]] = {
    CONVERSATIONS: ("onParticipantAdded", "onParticipantRemoved"),
    INTERACTIONS: ("onParticipantAdded", "onParticipantRemoved"),
    LEGACY: ("onMemberAdded", "onMemberRemoved"),
}


class Happening(Enum):
    """What a Flex event means for the visitor."""

    MESSAGE = "message"
    JOINED = "joined"
    LEFT = "left"
    CLOSED = "closed"
    OTHER = "other"


@dataclass(frozen=True)
class FlexEvent:
    """The fields of a Flex webhook that matter here, for both APIs."""

    type: str
    channel_sid: str
    message_sid: Optional[str]
    author: Optional[str]
    body: str
    index: Optional[int]
    timestamp: Optional[str]
    identity: Optional[str]
    participant_sid: Optional[str]
    closed: bool
    media: Tuple[FlexMedia, ...] = ()  # the message's files (one, from Flex)
    summary: bool = False  # the bot's summary for the agent (flex.chats.SUMMARY_ATTRIBUTE): never shown to the visitor

    @property
    def happening(self) -> Happening:
        """What this event means, whichever API named it."""
        if self.type in MESSAGE_EVENTS:
            return Happening.MESSAGE
        if self.type in JOIN_EVENTS:
            return Happening.JOINED
        if self.type in LEAVE_EVENTS:
            return Happening.LEFT
        return Happening.CLOSED if self.closed else Happening.OTHER

    @property
    def has_media(self) -> bool:
        """Whether the message carries a file."""
        return bool(self.media)

    @property
    def who(self) -> Optional[str]:
        """The chat identity that caused the event (a message's author, a participant's identity)."""
        return self.author or self.identity

    @classmethod
    def from_form(cls, form: Mapping[str, Optional[str]]) -> FlexEvent:
        """Read a Conversations or Programmable Chat post-event webhook."""
        kind = form.get("EventType") or ""
        closed = (
            (kind == "onConversationStateUpdated" and form.get("StateTo") == "closed")
            or (kind == "onChannelUpdated" and channel_attributes_inactive(form.get("Attributes")))
            or kind in CLOSE_EVENTS
        )
        index = form.get("Index")
        return cls(
            type=kind,
            channel_sid=form.get("ConversationSid") or form.get("ChannelSid") or "",
            message_sid=form.get("MessageSid"),
            author=form.get("Author") or form.get("From"),
            body=form.get("Body") or "",
            index=int(index) if index is not None and index.lstrip("-").isdigit() else None,
            timestamp=form.get("DateCreated"),
            identity=form.get("Identity"),
            participant_sid=form.get("ParticipantSid") or form.get("MemberSid"),
            closed=closed,
            media=webhook_media(form),
            summary=is_summary(form.get("Attributes")),
        )

    @classmethod
    def from_message(cls, chat: FlexChat, message: FlexMessage) -> FlexEvent:
        """A message found by listing the chat, as its `onMessageAdded` webhook would have said it."""
        return cls(
            "onMessageAdded",
            chat.channel_sid,
            message.sid,
            message.author,
            message.body,
            message.index,
            message.date_created,
            None,
            None,
            False,
            media=message.media,
            summary=message.summary,
        )

    @classmethod
    def participant(cls, chat: FlexChat, joined: bool, sid: str, identity: str) -> FlexEvent:
        """Someone found in the chat (or found gone), as its participant webhook would have said it."""
        added, removed = _PARTICIPANT_EVENTS.get(chat.mode, _PARTICIPANT_EVENTS[LEGACY])
        return cls(added if joined else removed, chat.channel_sid, None, None, "", None, None, identity, sid, False)

    @classmethod
    def chat_closed(cls, chat: FlexChat) -> FlexEvent:
        """The chat found closed, as its state-change webhook would have said it."""
        return cls("onConversationStateUpdated", chat.channel_sid, None, None, "", None, None, None, None, True)


def webhook_media(form: Mapping[str, Optional[str]]) -> Tuple[FlexMedia, ...]:
    """The files a message webhook names: Conversations' `Media` JSON list, or Programmable Chat's `MediaSid` fields."""
    sid = form.get("MediaSid")
    if sid:
        size = form.get("MediaSize")
        return (
            FlexMedia(
                sid,
                form.get("MediaFilename") or None,
                form.get("MediaContentType") or None,
                int(size) if size and size.isdigit() else None,
            ),
        )
    return media_of(form.get("Media"))
