"""The handoff's state machine: what a Flex event or a relayed visitor message does to a handed-off conversation.

Pure functions over the tracker's events and slots: given them and what happened, they return
the steps to take, in order: Rasa events to record as they are, and `Notice`s, the
visitor-facing texts, which the caller words through the bot's domain (Rasa's NLG) and records
as bot turns. The rules live here (duplicates, echoes, closes, chats that are no longer the
conversation's); relay.py does the I/O around them (lock, tracker store, NLG, sockets), so
every rule is tested without a server (tests/unit/test_chat_state.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Reversible, Sequence, Set, Union

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered, deserialise_events

from rasa_flex_handoff import after_chat, attachments, handoff, waiting
from rasa_flex_handoff.flex import FlexChat, FlexMedia, FlexMessage, FlexParticipant
from rasa_flex_handoff.flex_events import FlexEvent, Happening
from rasa_flex_handoff.handoff import SessionRules

logger = logging.getLogger(__name__)

# The intent recorded for relayed visitor turns: NLU did not run, and no policy knows it.
RELAYED_INTENT = "handoff_relay"


@dataclass(frozen=True)
class Notice:
    """A text for the visitor: the domain response `response`, filled with `variables`, recorded with `metadata`.

    The caller words it with the bot's domain (variations, conditions, `channel:`), so every text
    a visitor reads is one place to translate. `spoken_by` names the agent whose message the text
    stands in for (a file the chat cannot show): it then reads as theirs, "Alice: <text>".
    """

    response: str
    metadata: Dict[str, Any]
    variables: Dict[str, str] = field(default_factory=dict)
    spoken_by: Optional[str] = None


# One thing to do to the tracker: an event recorded as it is, or a notice worded first.
Step = Union[Event, Notice]


def is_echo(visitor_identity: str, event: FlexEvent) -> bool:
    """Whether Flex is telling us what the visitor with this chat identity did (their own message or join): nothing to show them.

    The identity is derived from the conversation id (`handoff.visitor_identity`), so the webhook
    route drops echoes, half of a chat's webhooks, without reading the tracker.
    """
    return event.happening in (Happening.MESSAGE, Happening.JOINED, Happening.LEFT) and event.who == visitor_identity


def on_flex_event(
    events: Iterable[Event],
    slots: Mapping[str, Any],
    event: FlexEvent,
    rules: SessionRules = SessionRules(),
    chat_open: bool = False,
    after: Optional[after_chat.FollowUp] = None,
) -> List[Step]:
    """The steps one Flex event takes in a conversation with these events and slots (none: ignore it).

    Ignored: events of a chat that is not the conversation's current one (handed back, or an
    earlier handoff's chat still sending), the visitor's own echoes, and what is already recorded
    (Twilio retries webhooks; catch-up and a late webhook bring the same message): `events` are
    all the tracker's events, not only the applied ones. A close resumes the bot in a new
    session started by the domain's `rules`. `chat_open` says the chat was seen open after an
    agent left it: with no agent left in it, the agent passed it on (a transfer), so the visitor
    waits again for the next one. `after` says which after-chat questions (after_chat.py) a close asks.
    """
    chat = handoff.chat_from_slots(slots)
    if chat is None or chat.channel_sid != event.channel_sid:
        logger.info("Flex event %s for a chat no longer handed off; ignored", event.type)
        return []
    if is_echo(chat.identity, event):
        return []
    seen = handoff.recorded_message_sids(events)
    happening = event.happening
    if happening is Happening.MESSAGE:
        return _agent_message(chat, slots, event, seen)
    if happening is Happening.JOINED:
        return _participant_change(chat, slots, event, seen, joined=True)
    if happening is Happening.LEFT:
        passed_on = chat_open and not set(agents_recorded_in(events, chat)) - {event.participant_sid}
        return _participant_change(chat, slots, event, seen, joined=False, passed_on=passed_on)
    if happening is Happening.CLOSED:
        logger.info("Flex chat %s closed by the agent side; bot resumes", chat.channel_sid)
        return resume_bot(slots, rules, f"closed:{chat.channel_sid}", after, events)
    return []


def _agent_message(chat: FlexChat, slots: Mapping[str, Any], event: FlexEvent, seen: Set[str]) -> List[Step]:
    if not event.message_sid or event.message_sid in seen or event.summary:
        return []  # a retried webhook, or the bot's summary for the agent (never the visitor's)
    author = event.author or ""
    steps: List[Step] = []
    if event.body.strip():
        steps.append(
            BotUttered(
                handoff.agent_text(author, event.body),
                metadata=handoff.handoff_metadata(
                    "agent", agent=author, body=event.body, message_sid=event.message_sid, timestamp=event.timestamp
                ),
            )
        )
    steps += [_agent_file(chat, event, author, media) for media in event.media]
    if not steps:
        return []  # nothing a visitor could be shown
    if event.index is not None and event.index > handoff.last_index(slots):
        steps.append(SlotSet(handoff.LAST_INDEX_SLOT, float(event.index)))
    steps += _agent_is_there(slots)
    logger.info("agent message delivered for Flex chat %s", chat.channel_sid)
    return steps


def _agent_file(chat: FlexChat, event: FlexEvent, author: str, media: FlexMedia) -> BotUttered:
    """An agent's file as the visitor's turn: "Alice: invoice.pdf", the file recorded (no URL: payloads.py makes one)."""
    name = attachments.display_name(media.filename, media.content_type)
    attachment = attachments.recorded(name, attachments.normal_type(media.content_type), media.size, media.sid, chat.service_sid)
    metadata = handoff.handoff_metadata(
        "agent", agent=author, body=name, message_sid=event.message_sid, timestamp=event.timestamp, attachment=attachment
    )
    return BotUttered(handoff.agent_text(author, name), metadata=metadata)


# What a participant event tells the visitor: (the notice's event, its response), by what happened.
_JOINED = ("agent_joined", handoff.UTTER_AGENT_JOINED)
_LEFT = ("agent_left", handoff.UTTER_AGENT_LEFT)
_PASSED_ON = ("transferring", handoff.UTTER_TRANSFERRING)


def _participant_change(
    chat: FlexChat, slots: Mapping[str, Any], event: FlexEvent, seen: Set[str], joined: bool, passed_on: bool = False
) -> List[Step]:
    """An agent joined or left, by name, once per participant event.

    `passed_on`: the last agent left a chat that stays open, so Flex routes it to the next agent
    (a transfer) and the visitor waits again.
    """
    key = f"{event.type}:{event.participant_sid or event.identity}"
    if not event.identity or key in seen:
        return []
    kind, response = _JOINED if joined else _PASSED_ON if passed_on else _LEFT
    metadata = handoff.handoff_metadata(
        "system",
        event=kind,
        message_sid=key,
        agent=event.identity,
        channel_sid=chat.channel_sid,
        participant_sid=event.participant_sid,
    )
    steps: List[Step] = [Notice(response, metadata, {"agent": event.identity})]
    if joined:
        steps += _agent_is_there(slots)
    elif passed_on:
        steps.append(SlotSet(handoff.STATUS_SLOT, handoff.PENDING))
    logger.info("%s for Flex chat %s", kind, chat.channel_sid)
    return steps


def _agent_is_there(slots: Mapping[str, Any]) -> List[Step]:
    """A waiting handoff becomes active once an agent shows up."""
    return [SlotSet(handoff.STATUS_SLOT, handoff.ACTIVE)] if slots.get(handoff.STATUS_SLOT) == handoff.PENDING else []


def session_rules(domain: Optional[Domain]) -> SessionRules:
    """How the bot's domain starts a session: `session_config.carry_over_slots_to_new_session` and the slots' initial values."""
    if domain is None:
        return SessionRules()
    initial = {slot.name: slot.initial_value for slot in domain.slots if slot.initial_value is not None}
    return SessionRules(domain.session_config.carry_over_slots, initial)


def new_session(slots: Mapping[str, Any], rules: SessionRules = SessionRules()) -> List[Event]:
    """A new dialogue session for a tracker with these slots, listening: `handoff.new_session`, then `action_listen`.

    The events Rasa's own session start leaves in a tracker after `action_session_start`, so the
    next visitor message is handled as at the start of a conversation (see `handoff.new_session`).
    """
    return [*deserialise_events(handoff.new_session(slots, rules)), ActionExecuted(ACTION_LISTEN_NAME)]


def resume_bot(
    slots: Mapping[str, Any],
    rules: SessionRules = SessionRules(),
    key: Optional[str] = None,
    after: Optional[after_chat.FollowUp] = None,
    events: Iterable[Event] = (),
) -> List[Step]:
    """The steps that end the handoff after the chat closed: the notice, cleared slots, the bot saying it is back, a new session.

    `slots` are the conversation's before the close: the new session keeps the visitor's (the
    domain's `rules` permitting). `key` records the close (like a message sid) so a repeated close
    webhook is not shown twice. `after`'s first question is asked in the new session, which keeps
    the chat's slots (and, for the email, its transcript from `events`) until the visitor is done.
    """
    closed = handoff.handoff_metadata("system", event="chat_closed", message_sid=key)
    steps: List[Step] = [Notice(handoff.UTTER_AGENT_ENDED, closed)]
    steps += [SlotSet(name, value) for name, value in handoff.cleared_slots().items()]
    steps.append(Notice(handoff.UTTER_BOT_BACK, handoff.handoff_metadata("system", event="bot_resumed")))
    steps += new_session(slots, rules)
    question = after.first() if after is not None else None
    if after is not None and question is not None:
        response, event = after_chat.QUESTIONS[question]
        steps.append(Notice(response, handoff.handoff_metadata("system", event=event)))
        kept = handoff.after_chat_slots(slots, question, events if after.transcript else None)
        steps += [SlotSet(name, value) for name, value in kept.items()]
    return steps


# At most this many visitor messages reach the agent in any FLOOD_WINDOW seconds (two a second,
# in bursts of ten): more than anyone types, fewer than a stuck key or a script sends. The rest
# are not relayed, and the visitor is told once per window.
FLOOD_LIMIT = 10
FLOOD_WINDOW = 5.0
TOO_FAST = "too_fast"


def over_rate(events: Reversible[Event], now: float) -> Optional[List[Step]]:
    """The steps for a visitor message over the relay's rate (None: within it, relay it).

    Counted from the tracker, as relayed (the visitor's turns recorded in the last FLOOD_WINDOW
    seconds), so every replica counts the same; the newest events are read until the window ends.
    The first message over the rate gets the notice, the others in the window nothing.
    """
    relayed = 0
    told = False
    for event in reversed(events):
        if event.timestamp < now - FLOOD_WINDOW:
            break
        if isinstance(event, UserUttered):
            relayed += 1
        elif isinstance(event, BotUttered) and ((event.metadata or {}).get("handoff") or {}).get("event") == TOO_FAST:
            told = True
    if relayed < FLOOD_LIMIT:
        return None
    if told:
        return []
    logger.info("visitor over the relay rate (%d messages in %.0f s); not relayed", FLOOD_LIMIT, FLOOD_WINDOW)
    return [Notice(handoff.UTTER_TOO_FAST, handoff.handoff_metadata("system", event=TOO_FAST))]


def on_visitor_message(
    chat: FlexChat,
    message: UserMessage,
    closed: bool,
    failed: bool,
    slots: Mapping[str, Any],
    rules: SessionRules = SessionRules(),
) -> List[Step]:
    """The steps after relaying the visitor's `message` to `chat`: the turn as relayed, or the bot back if the chat closed.

    A message the closed chat did not take is not recorded here: the bot answers it next, as
    a normal turn (the first of the new session), so nothing the visitor wrote is dropped. A
    failed relay is recorded (the visitor did say it) with a notice that it did not reach the agent.
    """
    if closed:
        return resume_bot(slots, rules)  # no after-chat question: the bot answers the message first
    steps: List[Step] = [
        UserUttered(
            message.text,
            intent={"name": RELAYED_INTENT, "confidence": 1.0},
            input_channel=message.input_channel,
            message_id=message.message_id,
            metadata={**(message.metadata or {}), "handoff": {"relayed_to": chat.channel_sid}},
        )
    ]
    if failed:
        steps.append(Notice(handoff.UTTER_RELAY_FAILED, handoff.handoff_metadata("system", event="relay_failed")))
    return steps


def on_visitor_file(
    chat: FlexChat,
    attachment: Mapping[str, Any],
    relay_id: str,
    input_channel: str,
    closed: bool,
    slots: Mapping[str, Any],
    rules: SessionRules = SessionRules(),
) -> List[Step]:
    """The steps after posting the visitor's file (`attachments.recorded`) to `chat`: their turn, or the bot back if closed.

    The turn reads as the file's name, so every transcript and plain widget shows it; a closed
    chat took nothing and the visitor is told, as after a text relay (the upload answers that no
    agent is there). The relay id is the client's: `uploaded_turn` finds the turn again when the
    upload is retried.
    """
    if closed:
        return resume_bot(slots, rules)
    handoff_meta = {"relayed_to": chat.channel_sid, "relay_id": relay_id, "attachment": dict(attachment)}
    return [
        UserUttered(
            str(attachment.get("filename") or ""),
            intent={"name": RELAYED_INTENT, "confidence": 1.0},
            input_channel=input_channel,
            message_id=relay_id,
            metadata={"handoff": handoff_meta},
        )
    ]


def uploaded_turn(events: Reversible[Event], relay_id: str) -> Optional[UserUttered]:
    """The visitor's file turn recorded for this relay id, if an earlier try of the upload got that far."""
    for event in reversed(events):
        if isinstance(event, UserUttered):
            meta = (event.metadata or {}).get("handoff") or {}
            if meta.get("relay_id") == relay_id and meta.get("attachment"):
                return event
    return None


def agents_recorded_in(events: Iterable[Event], chat: FlexChat) -> Dict[str, str]:
    """Participant sid -> identity of the agents the visitor was told joined this chat and not told left."""
    agents: Dict[str, str] = {}
    for event in events:
        if not isinstance(event, BotUttered):
            continue
        meta = (event.metadata or {}).get("handoff") or {}
        if meta.get("role") != "system" or meta.get("channel_sid") != chat.channel_sid or not meta.get("participant_sid"):
            continue
        if meta.get("event") == _JOINED[0]:
            agents[meta["participant_sid"]] = meta.get("agent", "")
        elif meta.get("event") in (_LEFT[0], _PASSED_ON[0]):
            agents.pop(meta["participant_sid"], None)
    return agents


def missed_events(
    events: Iterable[Event],
    chat: FlexChat,
    participants: Sequence[FlexParticipant],
    replies: Sequence[FlexMessage],
    closed: bool,
) -> List[FlexEvent]:
    """What catch-up found in the chat, as the webhooks would have brought it: joins, messages, then leaves or the close.

    Agents in the chat now count as joined, recorded agents no longer there as left; a closed
    chat says it all (no "left" notices before the close). `on_flex_event` then drops what the
    conversation already has.
    """
    present = {p.sid: p.identity for p in participants if p.identity and p.identity != chat.identity}
    found = [FlexEvent.participant(chat, True, sid, identity) for sid, identity in present.items()]
    found += [FlexEvent.from_message(chat, message) for message in replies]
    if closed:
        found.append(FlexEvent.chat_closed(chat))
    else:
        gone = {sid: who for sid, who in agents_recorded_in(events, chat).items() if sid not in present}
        found += [FlexEvent.participant(chat, False, sid, who) for sid, who in gone.items()]
    return found


def offer() -> List[Step]:
    """No agent can be had: offer to leave a message or stay with the bot (buttons; `HandoffPolicy` runs either choice)."""
    return [Notice(handoff.UTTER_OFFER, handoff.handoff_metadata("system", event="offer"))]


def not_accepted(slots: Mapping[str, Any], rules: SessionRules = SessionRules()) -> List[Step]:
    """The steps after nobody accepted the chat in time (it is closed by then): say so, hand back to the bot, offer the choices.

    Like `resume_bot`, a new session starts (the waiting turns leave the bot's view); the
    offer comes after it, so its "leave a message" is the new session's business.
    """
    told = handoff.handoff_metadata("system", event=waiting.NOT_ACCEPTED_EVENT)
    steps: List[Step] = [Notice(handoff.UTTER_NOT_ACCEPTED, told)]
    steps += [SlotSet(name, value) for name, value in handoff.cleared_slots().items()]
    steps += new_session(slots, rules)
    return steps + offer()


def on_waiting(
    verdict: waiting.Verdict,
    chat: FlexChat,
    slots: Mapping[str, Any],
    position: Optional[int],
    eta_seconds: Optional[float],
    rules: SessionRules = SessionRules(),
) -> List[Step]:
    """The steps after a look at the queue (`waiting.judge`): the visitor's new place in line, or giving up."""
    if verdict is waiting.Verdict.GIVE_UP:
        logger.info("nobody accepted Flex chat %s in time; bot resumes", chat.channel_sid)
        return not_accepted(slots, rules)
    if verdict is waiting.Verdict.TELL and position is not None:
        notice = waiting.queue_notice(position, eta_seconds, chat.channel_sid)
        return [Notice(notice.response, notice.metadata, notice.variables)]
    return []
