"""Which agents the visitor was told are in a Flex chat: what catch-up compares with the chat's participants."""

from __future__ import annotations

from rasa.shared.core.events import BotUttered, SlotSet, UserUttered

from rasa_flex_handoff import handoff
from rasa_flex_handoff.chat_state import agents_recorded_in
from rasa_flex_handoff.flex import FlexChat

CHAT = FlexChat("conversations", "CH1", "visitor-identity")


def notice(event: str, sid: str, agent: str, channel_sid: str = "CH1") -> BotUttered:
    meta = handoff.handoff_metadata("system", event=event, agent=agent, channel_sid=channel_sid, participant_sid=sid)
    return BotUttered(f"{agent} {event}", metadata=meta)


def test_joined_and_not_left_agents_of_this_chat_only() -> None:
    events = [
        UserUttered("hi"),
        notice("agent_joined", "MB1", "alice"),
        notice("agent_joined", "MB2", "bob"),
        notice("agent_joined", "MB9", "carol", channel_sid="CH0"),  # an earlier handoff
        BotUttered("hello", metadata=handoff.handoff_metadata("agent", agent="alice", message_sid="IM1")),
        notice("agent_left", "MB1", "alice"),
        SlotSet("handoff_status", "active"),
    ]
    assert agents_recorded_in(events, CHAT) == {"MB2": "bob"}


def test_notices_without_a_participant_sid_are_not_counted() -> None:
    legacy_notice = BotUttered("alice joined", metadata=handoff.handoff_metadata("system", event="agent_joined", agent="alice"))
    assert agents_recorded_in([legacy_notice], CHAT) == {}
