"""The handoff's state machine, in-process: what each Flex event and relayed message does to a conversation.

Rasa events are built directly; nothing here starts a server or talks to Flex.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import handoff, payloads
from rasa_flex_handoff.after_chat import FollowUp
from rasa_flex_handoff.chat_state import (
    FLOOD_LIMIT,
    FLOOD_WINDOW,
    RELAYED_INTENT,
    Notice,
    Step,
    is_echo,
    missed_events,
    on_flex_event,
    on_visitor_message,
    over_rate,
    resume_bot,
    session_rules,
)
from rasa_flex_handoff.flex import FlexChat, FlexMedia, FlexMessage, FlexParticipant
from rasa_flex_handoff.flex_events import FlexEvent, Happening
from rasa_flex_handoff.handoff import SessionRules
from tests.unit import sessions
from tests.unit.sessions import (
    DOMAIN,
    VISITOR_SLOTS,
    fresh_session,
    handed_off,
    is_handoff_turn,
    rasa_session_start,
    record,
    states_after,
)

CHAT = FlexChat("conversations", "CH1", "visitor-identity", "IS1")
LEGACY_CHAT = FlexChat("legacy", "CH1", "visitor-identity", "IS1")
PENDING = handoff.start_slots(CHAT, last_index=0)
ACTIVE = {**PENDING, handoff.STATUS_SLOT: handoff.ACTIVE}


def message(
    sid: str = "IM1",
    author: str = "alice",
    body: str = "Hi, Alice here",
    index: int = 3,
    channel_sid: str = "CH1",
    media: Tuple[FlexMedia, ...] = (),
) -> FlexEvent:
    return FlexEvent("onMessageAdded", channel_sid, sid, author, body, index, "2024-05-01T10:00:00Z", None, None, False, media)


INVOICE = FlexMedia("ME1", "invoice.pdf", "application/pdf", 1234)


def joined(identity: str = "alice", sid: str = "MB1", chat: FlexChat = CHAT) -> FlexEvent:
    return FlexEvent.participant(chat, True, sid, identity)


def left(identity: str = "alice", sid: str = "MB1") -> FlexEvent:
    return FlexEvent.participant(CHAT, False, sid, identity)


def closed(channel_sid: str = "CH1") -> FlexEvent:
    return FlexEvent("onConversationStateUpdated", channel_sid, None, None, "", None, None, None, None, True)


def notices(steps: List[Step]) -> List[str]:
    return [step.response for step in steps if isinstance(step, Notice)]


def slots_set(steps: List[Step]) -> Dict[str, Any]:
    return {step.key: step.value for step in steps if isinstance(step, SlotSet)}


def recorded(notice: Notice, text: str) -> BotUttered:
    """A notice as the connector records it once worded."""
    return BotUttered(text, metadata={"utter_action": notice.response, **notice.metadata})


# --- join -----------------------------------------------------------------------------------


def test_an_agent_joining_is_announced_by_name_and_activates_the_handoff() -> None:
    steps = on_flex_event([], PENDING, joined())
    [notice] = [step for step in steps if isinstance(step, Notice)]
    assert notice.response == "utter_handoff_agent_joined" and notice.variables == {"agent": "alice"}
    assert notice.metadata == {
        "handoff": {
            "role": "system",
            "event": "agent_joined",
            "message_sid": "onParticipantAdded:MB1",
            "agent": "alice",
            "channel_sid": "CH1",
            "participant_sid": "MB1",
        }
    }
    assert slots_set(steps) == {handoff.STATUS_SLOT: handoff.ACTIVE}


def test_a_second_agent_joining_an_active_chat_changes_no_state() -> None:
    steps = on_flex_event([], ACTIVE, joined("bob", "MB2"))
    assert notices(steps) == ["utter_handoff_agent_joined"] and slots_set(steps) == {}


def test_an_agent_leaving_is_announced_by_name() -> None:
    steps = on_flex_event([], ACTIVE, left())
    assert notices(steps) == ["utter_handoff_agent_left"] and slots_set(steps) == {}
    assert steps[0].variables == {"agent": "alice"}  # type: ignore[union-attr]


def test_a_join_without_an_identity_says_nothing() -> None:
    assert on_flex_event([], PENDING, FlexEvent.participant(CHAT, True, "MB1", "")) == []


# --- message --------------------------------------------------------------------------------


def test_an_agent_message_becomes_a_bot_turn_quoting_the_agent() -> None:
    steps = on_flex_event([], PENDING, message())
    turn = steps[0]
    assert isinstance(turn, BotUttered)
    assert turn.text == "alice: Hi, Alice here"
    assert turn.metadata == {
        "handoff": {
            "role": "agent",
            "agent": "alice",
            "body": "Hi, Alice here",
            "message_sid": "IM1",
            "timestamp": "2024-05-01T10:00:00Z",
        }
    }
    assert slots_set(steps) == {handoff.LAST_INDEX_SLOT: 3.0, handoff.STATUS_SLOT: handoff.ACTIVE}


def test_an_older_message_leaves_the_last_index_alone() -> None:
    steps = on_flex_event([], {**ACTIVE, handoff.LAST_INDEX_SLOT: 9.0}, message(index=4))
    assert isinstance(steps[0], BotUttered) and slots_set(steps) == {}


def test_an_agents_file_is_recorded_by_name_in_the_agents_words_without_a_url() -> None:
    steps = on_flex_event([], ACTIVE, message(body="", media=(INVOICE,)))
    turn = steps[0]
    assert isinstance(turn, BotUttered) and turn.text == "alice: invoice.pdf"
    assert turn.metadata == {
        "handoff": {
            "role": "agent",
            "agent": "alice",
            "body": "invoice.pdf",
            "message_sid": "IM1",
            "timestamp": "2024-05-01T10:00:00Z",
            # where Flex keeps it (the chat's service); the URL is made when it is shown (payloads.py)
            "attachment": {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "size": 1234,
                "media_sid": "ME1",
                "service_sid": "IS1",
            },
        }
    }
    assert slots_set(steps) == {handoff.LAST_INDEX_SLOT: 3.0}
    # Twilio sends the webhook again: recorded once.
    assert on_flex_event([turn], ACTIVE, message(body="", media=(INVOICE,))) == []


def test_an_agents_words_and_file_in_one_message_are_two_turns_and_a_nameless_file_is_named_by_type() -> None:
    photo = FlexMedia("ME2", None, "image/png", 9)
    steps = on_flex_event([], ACTIVE, message(body="Here it is", media=(photo,)))
    turns = [step for step in steps if isinstance(step, BotUttered)]
    assert [t.text for t in turns] == ["alice: Here it is", "alice: attachment.png"]
    assert turns[1].metadata["handoff"]["attachment"]["media_sid"] == "ME2"


def test_a_message_with_nothing_to_show_is_skipped() -> None:
    assert on_flex_event([], ACTIVE, message(body="  ")) == []
    assert on_flex_event([], ACTIVE, message(sid="")) == []


# --- duplicate ------------------------------------------------------------------------------


def test_a_message_already_recorded_is_not_recorded_again() -> None:
    first = on_flex_event([], PENDING, message())
    history: List[Event] = [step for step in first if isinstance(step, Event)]
    assert on_flex_event(history, ACTIVE, message()) == []
    assert on_flex_event(history, ACTIVE, message(sid="IM2", body="and another thing", index=4)) != []


def test_a_join_already_announced_is_not_announced_again() -> None:
    [notice] = notices_of(on_flex_event([], PENDING, joined()))
    history: List[Event] = [recorded(notice, "alice joined the chat.")]
    assert on_flex_event(history, ACTIVE, joined()) == []
    assert notices(on_flex_event(history, ACTIVE, left())) == ["utter_handoff_agent_left"]


def notices_of(steps: List[Step]) -> List[Notice]:
    return [step for step in steps if isinstance(step, Notice)]


# --- echo -----------------------------------------------------------------------------------


def test_the_visitors_own_message_and_join_are_echoes() -> None:
    own_message = message(author="visitor-identity", body="my own words")
    own_join = joined("visitor-identity", "MB0")
    assert is_echo(CHAT.identity, own_message) and is_echo(CHAT.identity, own_join)
    assert on_flex_event([], PENDING, own_message) == []
    assert on_flex_event([], PENDING, own_join) == []
    assert not is_echo(CHAT.identity, message()) and not is_echo(CHAT.identity, closed())


def test_legacy_member_events_are_echoes_too() -> None:
    own_join = joined("visitor-identity", "MB0", chat=LEGACY_CHAT)
    assert own_join.type == "onMemberAdded" and is_echo(LEGACY_CHAT.identity, own_join)


# --- close ----------------------------------------------------------------------------------


def test_a_closed_chat_hands_back_to_the_bot() -> None:
    steps = on_flex_event([], ACTIVE, closed())
    assert notices(steps) == ["utter_handoff_agent_ended", "utter_bot_back"]
    assert steps[0].metadata == {"handoff": {"role": "system", "event": "chat_closed", "message_sid": "closed:CH1"}}  # type: ignore[union-attr]
    assert slots_set(steps[: steps.index(SessionStarted())]) == handoff.cleared_slots()
    assert steps == resume_bot(ACTIVE, key="closed:CH1")


def test_a_close_asks_the_first_after_chat_question_in_the_new_session_keeping_the_chat() -> None:
    steps = on_flex_event([], ACTIVE, closed(), after=FollowUp(survey=True))
    assert notices(steps) == ["utter_handoff_agent_ended", "utter_bot_back", "utter_handoff_survey"]
    after_session = steps[steps.index(SessionStarted()) :]
    assert slots_set(after_session)[handoff.STATUS_SLOT] == "survey"
    assert slots_set(after_session)[handoff.CHANNEL_SLOT] == "CH1"
    assert handoff.ended_chat(slots_set(after_session)) == FlexChat("conversations", "CH1", "visitor-identity", "IS1")
    assert handoff.chat_from_slots(slots_set(after_session)) is None  # not handed off: the bot answers
    survey = next(s for s in steps if isinstance(s, Notice) and s.response == "utter_handoff_survey")
    assert survey.metadata == {"handoff": {"role": "system", "event": "survey"}}
    assert handoff.TRANSCRIPT_SLOT not in slots_set(after_session)  # no email: no transcript kept
    assert on_flex_event([], ACTIVE, closed(), after=FollowUp()) == resume_bot(ACTIVE, key="closed:CH1")


def test_events_after_the_close_change_nothing() -> None:
    after = {**ACTIVE, **handoff.cleared_slots()}
    assert on_flex_event([], after, closed()) == []
    assert on_flex_event([], after, message()) == []


def test_legacy_inactive_channel_is_a_close() -> None:
    form = {"EventType": "onChannelUpdated", "ChannelSid": "CH1", "Attributes": '{"status": "INACTIVE"}'}
    event = FlexEvent.from_form(form)
    assert event.happening is Happening.CLOSED
    assert notices(on_flex_event([], ACTIVE, event)) == ["utter_handoff_agent_ended", "utter_bot_back"]


# --- the bot resumes in a new session -------------------------------------------------------
#
# Applied to a real Rasa tracker of a handed-off conversation (tests/unit/sessions.py): what the
# policies featurize afterwards (`applied_events`) starts over, the visitor's slots survive, and
# the tracker keeps every event.


def resumed_by(trigger: str, tracker: DialogueStateTracker, rules: SessionRules) -> List[Step]:
    """The steps of the connector's two ways of finding the chat over: the close webhook, a relay into the closed chat."""
    slots = tracker.current_slot_values()
    if trigger == "close":
        return on_flex_event(tracker.events, slots, closed(), rules)
    return on_visitor_message(CHAT, visitor(), closed=True, failed=False, slots=slots, rules=rules)


def until_session(steps: List[Step]) -> List[Step]:
    """The steps before the new session: the notices and the cleared handoff slots."""
    return steps[: next(i for i, step in enumerate(steps) if isinstance(step, SessionStarted))]


def kinds(events: List[Event]) -> List[str]:
    return [type(event).__name__ for event in events]


@pytest.mark.parametrize("trigger", ["close", "relay"])
def test_the_bot_resumes_in_a_new_session_without_the_handoff_and_with_the_visitors_slots(trigger: str) -> None:
    tracker = handed_off()
    before = list(tracker.events)
    record(tracker, resumed_by(trigger, tracker, session_rules(DOMAIN)))

    # What the policies featurize holds no handoff turn: the carried slots and Rasa's listen, as after a session start.
    applied = tracker.applied_events()
    assert [event for event in applied if is_handoff_turn(event)] == []
    assert applied[-1] == ActionExecuted(ACTION_LISTEN_NAME) and kinds(applied[:-1]) == ["SlotSet"] * len(VISITOR_SLOTS)
    assert slots_set(applied[:-1]) == VISITOR_SLOTS  # type: ignore[arg-type]
    # The visitor's slots survive (newsletter stays None, not its initial true); the handoff's are cleared.
    assert {name: tracker.get_slot(name) for name in VISITOR_SLOTS} == VISITOR_SLOTS
    assert {name: tracker.get_slot(name) for name in handoff.HANDOFF_SLOTS} == handoff.cleared_slots()
    assert tracker.active_loop_name is None and not tracker.is_paused()
    # Every event is still in the tracker: the handoff, then the notices, the cleared slots and the new session.
    events = list(tracker.events)
    assert events[: len(before)] == before
    added = events[len(before) :]
    assert kinds(added) == [
        "BotUttered",
        *["SlotSet"] * len(handoff.HANDOFF_SLOTS),
        "BotUttered",
        "SessionStarted",
        *["SlotSet"] * 4,
        "ActionExecuted",
    ]
    assert [e.metadata["handoff"]["event"] for e in added if isinstance(e, BotUttered)] == ["chat_closed", "bot_resumed"]
    assert tracker.followup_action is None  # listening, as Rasa leaves a tracker after its session start


@pytest.mark.parametrize("trigger", ["close", "relay"])
async def test_the_first_message_after_the_resume_is_seen_as_after_rasas_own_session_start(trigger: str) -> None:
    resumed = handed_off()
    steps = resumed_by(trigger, resumed, session_rules(DOMAIN))
    record(resumed, steps)
    rasa = handed_off()
    record(rasa, until_session(steps))
    await rasa_session_start(rasa)  # Rasa's ActionSessionStart on the same conversation
    hello = sessions.user("hello", "greet")
    assert resumed.current_slot_values() == rasa.current_slot_values()
    assert states_after(resumed, hello) == states_after(rasa, hello) == states_after(fresh_session(), hello)
    assert len(states_after(resumed, hello)) == 2  # the session's start, then the greeting's turn: nothing before
    # Without the new session the policies would see the handoff's turns before it.
    unresumed = handed_off()
    record(unresumed, until_session(steps))
    assert len(states_after(unresumed, hello)) > 2


async def test_a_domain_that_does_not_carry_slots_over_starts_the_session_without_them() -> None:
    domain = sessions.domain("session_config:\n  carry_over_slots_to_new_session: false\n")
    rules = session_rules(domain)
    assert rules == SessionRules(False, {"newsletter": True})
    resumed = handed_off(domain)
    steps = on_flex_event(resumed.events, resumed.current_slot_values(), closed(), rules)
    record(resumed, steps, domain)
    assert resumed.applied_events() == [ActionExecuted(ACTION_LISTEN_NAME)]
    rasa = handed_off(domain)
    record(rasa, until_session(steps), domain)
    await rasa_session_start(rasa, domain)
    assert resumed.current_slot_values() == rasa.current_slot_values()
    assert resumed.get_slot("order_number") is None and resumed.get_slot("newsletter") is True  # back to its initial value


def test_both_servers_read_the_same_session_rules_from_the_domain() -> None:
    assert session_rules(DOMAIN) == SessionRules(True, {"newsletter": True})
    assert SessionRules.from_domain(DOMAIN.as_dict()) == session_rules(DOMAIN)  # what rasa-sdk hands an action
    assert SessionRules.from_domain({}) == SessionRules() == session_rules(None)  # no domain sent: carry slots over
    assert not SessionRules.from_domain({"session_config": {"carry_over_slots_to_new_session": False}}).carry_over_slots


def test_what_the_handoff_reads_of_a_resumed_conversation_is_all_of_it() -> None:
    tracker = handed_off()
    record(tracker, on_flex_event(tracker.events, tracker.current_slot_values(), closed(), session_rules(DOMAIN)))
    # Dedupe reads all the tracker's events: the agent's message and the close stay recorded.
    assert {"IM1", "closed:CH1"} <= handoff.recorded_message_sids(tracker.events)
    assert handoff.recorded_message_sids(tracker.applied_events()) == set()  # what the policies see would not do
    assert on_flex_event(tracker.events, tracker.current_slot_values(), closed()) == []  # a repeated close: nothing
    assert on_flex_event(tracker.events, tracker.current_slot_values(), message(sid="IM9")) == []  # a late message: nothing
    # The agent's context of a later handoff and the visitor's history read every turn.
    said = [line["text"] for line in handoff.transcript(tracker.events)]
    assert said[:3] == ["hello", "Hey! How are you?", "where is NW-12345?"]
    assert "my parcel never arrived" in said and "alice: Let me check" in said
    shown = payloads.history([event.as_dict() for event in tracker.events], "quick_replies")
    assert [(m["sender"], m["text"]) for m in shown][-4:] == [
        ("visitor", "my parcel never arrived"),
        ("agent", "alice: Let me check"),
        ("system", "<utter_handoff_agent_ended>"),
        ("system", "<utter_bot_back>"),
    ]
    assert [m["sender"] for m in shown][:4] == ["visitor", "bot", "visitor", "bot"]


# --- stale channel sid ----------------------------------------------------------------------


def test_events_of_a_chat_that_is_no_longer_the_conversations_are_ignored() -> None:
    for event in (message(channel_sid="CH0"), joined(chat=FlexChat("conversations", "CH0", "visitor-identity")), closed("CH0")):
        assert on_flex_event([], ACTIVE, event) == [], event.type


def test_events_for_a_conversation_that_is_not_handed_off_are_ignored() -> None:
    assert on_flex_event([], {}, message()) == []
    assert on_flex_event([], {}, closed()) == []


# --- webhooks as Twilio sends them -----------------------------------------------------------


def test_both_generations_webhooks_read_the_same() -> None:
    conversations = FlexEvent.from_form(
        {
            "EventType": "onMessageAdded",
            "ConversationSid": "CH1",
            "MessageSid": "IM1",
            "Author": "alice",
            "Body": "hi",
            "Index": "3",
            "ParticipantSid": "",
        }
    )
    legacy = FlexEvent.from_form(
        {"EventType": "onMessageSent", "ChannelSid": "CH1", "MessageSid": "IM1", "From": "alice", "Body": "hi", "Index": "3"}
    )
    for event in (conversations, legacy):
        assert (event.happening, event.channel_sid, event.author, event.body, event.index) == (
            Happening.MESSAGE,
            "CH1",
            "alice",
            "hi",
            3,
        )
    media = FlexEvent.from_form(
        {
            "EventType": "onMediaMessageSent",
            "ChannelSid": "CH1",
            "MessageSid": "IM2",
            "From": "alice",
            "Body": "",
            "MediaSid": "ME1",
            "MediaFilename": "invoice.pdf",
            "MediaContentType": "application/pdf",
            "MediaSize": "1234",
            "Index": "x",
        }
    )
    assert media.has_media and media.index is None and media.media == (INVOICE,)
    # Conversations: no Body, the files as a JSON list with Twilio's capitalised keys.
    attached = FlexEvent.from_form(
        {
            "EventType": "onMessageAdded",
            "ConversationSid": "CH1",
            "MessageSid": "IM3",
            "Author": "alice",
            "Index": "4",
            "Media": '[{"Sid": "ME1", "Filename": "invoice.pdf", "ContentType": "application/pdf", "Size": 1234,'
            ' "Category": "media"}]',
        }
    )
    assert attached.happening is Happening.MESSAGE and attached.body == "" and attached.media == (INVOICE,)
    assert FlexEvent.from_form({"EventType": "onMessageAdded", "Media": "not json"}).media == ()


# --- relayed visitor messages ---------------------------------------------------------------


def visitor(text: str = "where is my order?") -> UserMessage:
    return UserMessage(text, None, "sender-1", input_channel="handoff_socketio", message_id="m1", metadata={"page": "shop"})


def test_a_relayed_message_is_recorded_as_relayed() -> None:
    [turn] = on_visitor_message(CHAT, visitor(), closed=False, failed=False, slots=ACTIVE)
    assert isinstance(turn, UserUttered)
    assert turn.text == "where is my order?" and turn.intent["name"] == RELAYED_INTENT
    assert turn.message_id == "m1" and turn.input_channel == "handoff_socketio"
    assert turn.metadata == {"page": "shop", "handoff": {"relayed_to": "CH1"}}


def test_a_failed_relay_is_recorded_with_a_notice() -> None:
    steps = on_visitor_message(CHAT, visitor(), closed=False, failed=True, slots=ACTIVE)
    assert isinstance(steps[0], UserUttered) and notices(steps) == ["utter_handoff_relay_failed"]
    assert steps[1].metadata == {"handoff": {"role": "system", "event": "relay_failed"}}  # type: ignore[union-attr]


def test_a_message_the_closed_chat_did_not_take_hands_back_and_is_left_to_the_bot() -> None:
    steps = on_visitor_message(CHAT, visitor(), closed=True, failed=False, slots=ACTIVE)
    assert not any(isinstance(step, UserUttered) for step in steps)
    assert notices(steps) == ["utter_handoff_agent_ended", "utter_bot_back"]
    assert steps == resume_bot(ACTIVE)
    assert steps[-2:] == [SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME)]  # the bot answers it in a new session


# --- catch-up -------------------------------------------------------------------------------


def announced(identity: str, sid: str, event: str = "agent_joined") -> BotUttered:
    return BotUttered(
        f"{identity} {event}",
        metadata=handoff.handoff_metadata("system", event=event, agent=identity, channel_sid="CH1", participant_sid=sid),
    )


def test_catch_up_finds_joins_messages_then_leaves() -> None:
    history: List[Event] = [announced("bob", "MB2")]
    participants = [FlexParticipant("MB0", "visitor-identity"), FlexParticipant("MB1", "alice")]
    replies = [FlexMessage("IM5", 5, "alice", "sorry for the wait")]
    found = missed_events(history, CHAT, participants, replies, closed=False)
    assert [(e.happening, e.who) for e in found] == [
        (Happening.JOINED, "alice"),
        (Happening.MESSAGE, "alice"),
        (Happening.LEFT, "bob"),
    ]


def test_catch_up_of_a_closed_chat_ends_with_the_close_alone() -> None:
    found = missed_events([announced("bob", "MB2")], CHAT, [], [FlexMessage("IM5", 5, "bob", "bye")], closed=True)
    assert [e.happening for e in found] == [Happening.MESSAGE, Happening.CLOSED]


def steps_for_all(events: List[Event], slots: Dict[str, Any], flex_events: List[FlexEvent]) -> List[Step]:
    """Apply events one after the other as the connector does, each seeing what the previous recorded."""
    steps: List[Step] = []
    current: Dict[str, Optional[Any]] = dict(slots)
    history = list(events)
    for event in flex_events:
        new = on_flex_event(history, current, event)
        for step in new:
            if isinstance(step, SlotSet):
                current[step.key] = step.value
            history.append(step if isinstance(step, Event) else recorded(step, step.response))
        steps += new
    return steps


def test_what_a_webhook_already_brought_is_not_caught_up_twice() -> None:
    webhooks = steps_for_all([], PENDING, [joined(), message(sid="IM5", index=5)])
    history = [step if isinstance(step, Event) else recorded(step, step.response) for step in webhooks]
    found = missed_events(
        history, CHAT, [FlexParticipant("MB1", "alice")], [FlexMessage("IM5", 5, "alice", "Hi, Alice here")], closed=False
    )
    assert steps_for_all(history, ACTIVE, found) == []


def visitor_turns(count: int, at: float) -> List[Event]:
    turns: List[Event] = []
    for n in range(count):
        turn = UserUttered(f"line {n}", intent={"name": RELAYED_INTENT})
        turn.timestamp = at
        turns.append(turn)
    return turns


def test_the_relay_rate_passes_up_to_the_limit_in_a_window() -> None:
    now = 1_000.0
    assert over_rate(visitor_turns(FLOOD_LIMIT - 1, now - 1), now) is None
    # Turns older than the window do not count.
    assert over_rate([*visitor_turns(50, now - FLOOD_WINDOW - 1), *visitor_turns(FLOOD_LIMIT - 1, now)], now) is None


def test_over_the_rate_the_visitor_is_told_once_per_window() -> None:
    now = 1_000.0
    events = visitor_turns(FLOOD_LIMIT, now - 1)
    steps = over_rate(events, now)
    assert steps is not None and len(steps) == 1
    notice = steps[0]
    assert isinstance(notice, Notice) and notice.response == handoff.UTTER_TOO_FAST
    told = BotUttered("too fast", metadata=notice.metadata)
    told.timestamp = now
    assert over_rate([*events, told], now + 0.5) == []  # not relayed, no second notice
    # A notice from an earlier window does not silence the next one.
    assert over_rate([*events, told], now + FLOOD_WINDOW + 0.5) is None


# --- transfer -------------------------------------------------------------------------------


def test_the_last_agent_leaving_an_open_chat_is_a_transfer_and_the_visitor_waits_again() -> None:
    history: List[Event] = []
    for step in on_flex_event(history, PENDING, joined()):
        if isinstance(step, Notice):
            history.append(recorded(step, "alice joined the chat."))
    steps = on_flex_event(history, ACTIVE, left(), chat_open=True)
    assert notices(steps) == ["utter_handoff_transferring"]
    assert steps[0].variables == {"agent": "alice"}  # type: ignore[union-attr]
    assert steps[0].metadata["handoff"]["event"] == "transferring"  # type: ignore[union-attr]
    assert slots_set(steps) == {handoff.STATUS_SLOT: handoff.PENDING}


def test_an_agent_leaving_while_another_stays_is_only_a_leave() -> None:
    history: List[Event] = []
    for event in (joined("alice", "MB1"), joined("bob", "MB2")):
        for step in on_flex_event(history, ACTIVE, event):
            if isinstance(step, Notice):
                history.append(recorded(step, "joined"))
    steps = on_flex_event(history, ACTIVE, left("alice", "MB1"), chat_open=True)
    assert notices(steps) == ["utter_handoff_agent_left"] and slots_set(steps) == {}


def test_the_next_agent_after_a_transfer_is_announced_and_counted_as_joined() -> None:
    history: List[Event] = []
    for event, chat_open in ((joined("alice", "MB1"), False), (left("alice", "MB1"), True), (joined("bob", "MB2"), False)):
        slots = PENDING if not history else ACTIVE
        for step in on_flex_event(history, slots, event, chat_open=chat_open):
            if isinstance(step, Notice):
                history.append(recorded(step, step.response))
    assert [e.metadata["handoff"]["event"] for e in history] == ["agent_joined", "transferring", "agent_joined"]  # type: ignore[attr-defined]
    assert history[-1].metadata["handoff"]["agent"] == "bob"  # type: ignore[attr-defined]
    # Bob leaving the open chat in turn is a transfer again: Alice is no longer counted as there.
    assert notices(on_flex_event(history, ACTIVE, left("bob", "MB2"), chat_open=True)) == ["utter_handoff_transferring"]
