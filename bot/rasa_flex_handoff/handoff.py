"""Handoff state and context as plain functions on tracker events and slots.

Events may be Rasa event objects or their dict form (what rasa-sdk actions receive), so
the action server and the connector share one implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from rasa_flex_handoff.flex import FlexChat
from rasa_flex_handoff.settings import Settings

PENDING = "pending"  # a Flex chat waits for an agent
ACTIVE = "active"  # an agent is in the chat
# Not handed off: no agent could be had, and the visitor chose to leave a message; their next turn is it.
MESSAGE = "message"

STATUS_SLOT = "handoff_status"
CHANNEL_SLOT = "handoff_channel_sid"
IDENTITY_SLOT = "handoff_identity"
MODE_SLOT = "handoff_mode"
SERVICE_SLOT = "handoff_service_sid"
LAST_INDEX_SLOT = "handoff_last_index"
INTERACTION_SLOT = "handoff_interaction"  # "KD…/UO…": the Flex interaction and its channel (interactions mode)
# The visitor's survey answer for the latest chat: {"chat": CH…, "rating": 1-5, "comment": ...} (after_chat.py).
SURVEY_SLOT = "handoff_survey"
# The ended chat's transcript lines (`chat_transcript`), kept for the email while the after-chat questions run:
# the new session the bot resumes in hides the chat from what a tracker store hands the action server.
TRANSCRIPT_SLOT = "handoff_chat_transcript"
HANDOFF_SLOTS = (
    STATUS_SLOT,
    CHANNEL_SLOT,
    IDENTITY_SLOT,
    MODE_SLOT,
    SERVICE_SLOT,
    LAST_INDEX_SLOT,
    INTERACTION_SLOT,
    TRANSCRIPT_SLOT,
)
NAME_SLOT = "visitor_name"

# Every text the visitor reads from the handoff is one of these domain responses, so a bot
# words (and translates) them in its domain; the package's domain fragment has the defaults.
UTTER_CONNECTING = "utter_handoff_connecting"
UTTER_ALREADY = "utter_handoff_already"
UTTER_FAILED = "utter_handoff_failed"
UTTER_RELAY_FAILED = "utter_handoff_relay_failed"
UTTER_WAITING = "utter_handoff_waiting"
UTTER_ENDED = "utter_handoff_ended"
UTTER_AGENT_ENDED = "utter_handoff_agent_ended"
UTTER_BOT_BACK = "utter_bot_back"
UTTER_AGENT_JOINED = "utter_handoff_agent_joined"  # {agent}: the agent's name
UTTER_AGENT_LEFT = "utter_handoff_agent_left"  # {agent}: the agent's name
UTTER_ATTACHMENT = "utter_handoff_attachment"  # stands in for an agent's file in a chat that shows text only
UTTER_TOO_FAST = "utter_handoff_too_fast"  # the visitor sends faster than the relay passes on (chat_state.FLOOD_LIMIT)
UTTER_CLOSED = "utter_handoff_closed"  # asked for an agent outside business hours
UTTER_NO_AGENTS = "utter_handoff_no_agents"  # asked for an agent while nobody is available in the queue
UTTER_OFFER = "utter_handoff_offer"  # leave a message or stay with the bot (buttons)
UTTER_ASK_MESSAGE = "utter_handoff_ask_message"
UTTER_MESSAGE_LEFT = "utter_handoff_message_left"
UTTER_STAY = "utter_handoff_stay"
UTTER_QUEUE = "utter_handoff_queue"  # {position} in line, about {minutes} min
UTTER_QUEUE_POSITION = "utter_handoff_queue_position"  # {position} in line, no estimate yet
UTTER_NOT_ACCEPTED = "utter_handoff_not_accepted"  # nobody took the chat in time
UTTER_TRANSFERRING = "utter_handoff_transferring"  # {agent} passed the chat on; waiting for the next agent
# After the chat (after_chat.py): the survey (HANDOFF_SURVEY) and the transcript by email (HANDOFF_SMTP_URL).
UTTER_SURVEY = "utter_handoff_survey"  # rate the chat 1-5 (buttons), or skip
UTTER_SURVEY_COMMENT = "utter_handoff_survey_comment"  # anything to add? (skip button)
UTTER_SURVEY_THANKS = "utter_handoff_survey_thanks"
UTTER_TRANSCRIPT_OFFER = "utter_handoff_transcript_offer"  # email the transcript? (buttons)
UTTER_ASK_EMAIL = "utter_handoff_ask_email"
UTTER_TRANSCRIPT_SENT = "utter_handoff_transcript_sent"  # {email}, masked
UTTER_TRANSCRIPT_FAILED = "utter_handoff_transcript_failed"
RESPONSES = (
    UTTER_CONNECTING,
    UTTER_ALREADY,
    UTTER_FAILED,
    UTTER_RELAY_FAILED,
    UTTER_WAITING,
    UTTER_ENDED,
    UTTER_AGENT_ENDED,
    UTTER_BOT_BACK,
    UTTER_AGENT_JOINED,
    UTTER_AGENT_LEFT,
    UTTER_ATTACHMENT,
    UTTER_TOO_FAST,
    UTTER_CLOSED,
    UTTER_NO_AGENTS,
    UTTER_OFFER,
    UTTER_ASK_MESSAGE,
    UTTER_MESSAGE_LEFT,
    UTTER_STAY,
    UTTER_QUEUE,
    UTTER_QUEUE_POSITION,
    UTTER_NOT_ACCEPTED,
    UTTER_TRANSFERRING,
    UTTER_SURVEY,
    UTTER_SURVEY_COMMENT,
    UTTER_SURVEY_THANKS,
    UTTER_TRANSCRIPT_OFFER,
    UTTER_ASK_EMAIL,
    UTTER_TRANSCRIPT_SENT,
    UTTER_TRANSCRIPT_FAILED,
)

TALK_TO_AGENT_INTENT = "talk_to_agent"
END_CHAT_INTENT = "end_chat"
END_CHAT_PAYLOAD = "/end_chat"
LEAVE_MESSAGE_INTENT = "handoff_leave_message"
STAY_INTENT = "handoff_stay"

# Rasa's own slots: the message metadata a session started with, and the slot an active form asks for.
SESSION_METADATA_SLOT = "session_started_metadata"
REQUESTED_SLOT = "requested_slot"

# Slots that never go to Flex: ours, Rasa's bookkeeping, and front-end metadata.
_PRIVATE_SLOTS = {SESSION_METADATA_SLOT, REQUESTED_SLOT}

DEFAULT_VISITOR_NAME = "Website visitor"
WEBHOOK_ROUTE = "flex"

# Message metadata our connectors stamp (overriding any client-sent value): what the channel can do.
CAPABILITIES_KEY = "handoff_connector"
# Message metadata a front end sends to ask for the Flex chat details and a Twilio access token.
TOKEN_REQUEST_KEY = "handoff_access_token"


def _as_dict(event: Any) -> Dict[str, Any]:
    return event if isinstance(event, dict) else event.as_dict()


def _iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(float(timestamp), tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ChannelCapabilities:
    """What the visitor's input channel can do, as its connector declared it in the message metadata.

    Stock channels (`rasa shell`, Rasa's `rest`, `socketio`, `twilio`, Slack...) declare
    nothing: they get no webhooks (the handoff actions poll Flex) and no access token
    (they would show it as text or fail on it).
    """

    webhook_path: Optional[str] = None  # where Flex posts this chat's events, under PUBLIC_URL
    access_token: bool = False  # the client asked for the token and the channel can carry it
    visitor: Mapping[str, str] = field(default_factory=dict)  # who the visitor is, as the channel vouches
    declared: Mapping[str, str] = field(default_factory=dict)  # who the visitor says they are (pre-engagement form)


# What a channel may say about the visitor (SocketIOInput.visitor), each at most this long.
VISITOR_FIELDS = ("name", "email", "customer_id")
MAX_VISITOR_FIELD = 200
# Message metadata our widget's optional pre-engagement form sends: {"name", "email"}, as the visitor typed them.
PRE_ENGAGEMENT_KEY = "pre_engagement"
DECLARED_FIELDS = ("name", "email")


def visitor_fields(found: Any, keys: Tuple[str, ...] = VISITOR_FIELDS) -> Dict[str, str]:
    """The known visitor fields (`keys`) of `found` that are non-empty strings, trimmed and capped."""
    if not isinstance(found, Mapping):
        return {}
    fields = {key: found.get(key) for key in keys}
    return {key: value.strip()[:MAX_VISITOR_FIELD] for key, value in fields.items() if isinstance(value, str) and value.strip()}


def _capabilities_mac(
    sender_id: str,
    webhook_path: str,
    access_token: bool,
    visitor: Mapping[str, str],
    secret: str,
    declared: Optional[Mapping[str, str]] = None,
) -> str:
    message = f"capabilities:{sender_id}:{webhook_path}:{int(access_token)}:{json.dumps(dict(visitor), sort_keys=True)}"
    if declared:  # only then: a stamp without declared fields reads as before
        message += f":declared:{json.dumps(dict(declared), sort_keys=True)}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def declare_capabilities(
    metadata: Any, webhook_path: str, sender_id: str, secret: str, visitor: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """Message metadata with our connector's capabilities stamped in, replacing whatever the client sent there.

    The stamp is signed with the handoff secret: Rasa's own channels pass client metadata
    through untouched, so an unsigned claim (a webhook route, or who the visitor is) could be
    forged by any visitor of those. What the visitor typed into the pre-engagement form
    (`metadata.pre_engagement`) is stamped as `declared`, apart from what the channel vouches for.
    """
    stamped: Dict[str, Any] = dict(metadata) if isinstance(metadata, Mapping) else {}
    wants_token = stamped.get(TOKEN_REQUEST_KEY) is True
    vouched = visitor_fields(visitor)
    declared = visitor_fields(stamped.get(PRE_ENGAGEMENT_KEY), DECLARED_FIELDS)
    stamped[CAPABILITIES_KEY] = {
        "webhook_path": webhook_path,
        "access_token": wants_token,
        "visitor": vouched,
        **({"declared": declared} if declared else {}),
        "signature": _capabilities_mac(sender_id, webhook_path, wants_token, vouched, secret, declared),
    }
    return stamped


def capabilities_of(metadata: Optional[Mapping[str, Any]], sender_id: str, secret: str) -> ChannelCapabilities:
    """The capabilities our connector declared for this message (none for stock channels or forged claims)."""
    found = (metadata or {}).get(CAPABILITIES_KEY)
    if not isinstance(found, Mapping):
        return ChannelCapabilities()
    path, token, signature = found.get("webhook_path"), found.get("access_token") is True, found.get("signature")
    visitor = visitor_fields(found.get("visitor"))
    declared = visitor_fields(found.get("declared"), DECLARED_FIELDS)
    if not isinstance(path, str) or not path.startswith("/webhooks/") or not isinstance(signature, str):
        return ChannelCapabilities()
    if not hmac.compare_digest(signature, _capabilities_mac(sender_id, path, token, visitor, secret, declared)):
        return ChannelCapabilities()
    return ChannelCapabilities(webhook_path=path, access_token=token, visitor=visitor, declared=declared)


def known_visitor(
    capabilities: ChannelCapabilities, events: Iterable[Any] = (), sender_id: str = "", secret: str = ""
) -> Dict[str, Any]:
    """Who the agent is told they talk to: what the channel vouched for (`verified`), else what the visitor declared.

    `{"name", "email", "customer_id", "verified": true}` as vouched, or the pre-engagement form's
    `{"name", "email", "verified": false}`, or `{}` when nothing is known. A form filled earlier
    in the session counts too (its message's stamp is checked like the latest one's).
    """
    if capabilities.visitor:
        return {**capabilities.visitor, "verified": True}
    declared: Mapping[str, str] = capabilities.declared
    if not declared and secret:
        for raw in reversed(list(events)):
            event = _as_dict(raw)
            if event.get("event") == "user":
                declared = capabilities_of(event.get("metadata"), sender_id, secret).declared
                if declared:
                    break
    return {**declared, "verified": False} if declared else {}


def is_active(slots: Mapping[str, Any]) -> bool:
    """Whether the conversation is handed off (pending or with an agent)."""
    return slots.get(STATUS_SLOT) in (PENDING, ACTIVE)


def is_end_chat(text: Optional[str], intent: Optional[str] = None) -> bool:
    """Whether the visitor asked to end the agent chat."""
    return said(END_CHAT_INTENT, text, intent)


def said(wanted: str, text: Optional[str], intent: Optional[str]) -> bool:
    """Whether a visitor turn is `wanted`: by its intent, or its button payload (`/wanted`) whatever NLU made of it."""
    return intent == wanted or (text or "").strip().lower().startswith(f"/{wanted}")


def is_leave_message(text: Optional[str], intent: Optional[str] = None) -> bool:
    """Whether the visitor chose to leave a message for the team (the offer's button)."""
    return said(LEAVE_MESSAGE_INTENT, text, intent)


def is_stay(text: Optional[str], intent: Optional[str] = None) -> bool:
    """Whether the visitor chose to stay with the bot (the offer's button)."""
    return said(STAY_INTENT, text, intent)


def visitor_identity(sender_id: str, secret: str) -> str:
    """A stable chat identity for the visitor that does not reveal the conversation/socket id."""
    digest = hmac.new(secret.encode(), f"identity:{sender_id}".encode(), hashlib.sha256).hexdigest()
    return f"visitor_{digest[:32]}"


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(f"handoff-webhook:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def webhook_token(sender_id: str, secret: str) -> str:
    """Encrypt the conversation id for the webhook URL: Flex sees only an opaque token."""
    return _fernet(secret).encrypt(sender_id.encode()).decode()


def sender_from_webhook_token(token: str, secret: str) -> Optional[str]:
    """The conversation id inside a webhook token, or None when it was not made with `secret`."""
    try:
        return _fernet(secret).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError, UnicodeDecodeError):
        return None


def webhook_url(public_url: str, webhook_path: str, sender_id: str, secret: str) -> str:
    """Where Flex posts this conversation's events: the channel's route plus the opaque token."""
    return f"{public_url.rstrip('/')}{webhook_path}?c={quote(webhook_token(sender_id, secret))}"


def transcript(events: Iterable[Any]) -> List[Dict[str, Any]]:
    """The conversation so far as the agent should read it: visitor, bot and agent turns."""
    lines: List[Dict[str, Any]] = []
    for raw in events:
        event = _as_dict(raw)
        kind = event.get("event")
        text = event.get("text")
        if kind == "session_started":
            continue
        if not text:
            continue
        if kind == "user":
            who = "visitor"
        elif kind == "bot":
            role = ((event.get("metadata") or {}).get("handoff") or {}).get("role")
            who = role if role in ("agent", "system") else "bot"
        else:
            continue
        lines.append({"from": who, "text": text, "timestamp": _iso(event.get("timestamp"))})
    return lines


# Notices left out of the transcript a visitor takes home: place-in-line updates (waiting.QUEUE_EVENT,
# one every few seconds of waiting) and the bot saying it is back (the chat is over by then).
_NOT_IN_CHAT_TRANSCRIPT = {"queue", "bot_resumed"}


def chat_transcript(events: Iterable[Any], channel_sid: Optional[str] = None) -> List[Dict[str, Any]]:
    """The transcript a visitor asks for after an agent chat: that chat, and the conversation with the bot that led to it.

    From the start of the dialogue session in which the handoff began (earlier sessions are
    other visits) to the chat's end: the first `handoff_status` that is neither pending nor
    active (the closing notice, recorded before it, is in), or a new session. The chat is the
    one in `channel_sid`, else the latest; none found: no lines. Lines are `transcript`'s, with
    an agent's own words as `text` and their `name`, a file's name as `file`; payloads (buttons
    the visitor pressed) and replayed turns are left out, and so are `_NOT_IN_CHAT_TRANSCRIPT`.
    """
    events = [_as_dict(raw) for raw in events]
    session, status = 0, None  # where the current session began; its handoff_status
    start: Optional[Tuple[int, int]] = None  # (session start, handoff start) of the chat
    for index, event in enumerate(events):
        if event.get("event") == "session_started":
            session, status = index, None
        elif event.get("event") == "slot" and event.get("name") == STATUS_SLOT:
            status = event.get("value")
        # A handoff begins where the chat's sid is set while pending (not where the after-chat keeps it set).
        elif event.get("event") == "slot" and event.get("name") == CHANNEL_SLOT and status == PENDING and event.get("value"):
            if channel_sid is None or event.get("value") == channel_sid:
                start = (session, index)
    if start is None:
        return []
    lines: List[Dict[str, Any]] = []
    for index, event in enumerate(events[start[0] :], start[0]):
        if index > start[1] and _chat_over(event):
            break
        lines += _chat_line(event)
    return lines


def _chat_over(event: Dict[str, Any]) -> bool:
    """Whether this event, after the handoff began, is where the chat is over: a new session, or the status leaving the chat."""
    if event.get("event") == "session_started":
        return True
    return event.get("event") == "slot" and event.get("name") == STATUS_SLOT and event.get("value") not in (PENDING, ACTIVE)


def _chat_line(event: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The event's line in `chat_transcript` ([] when it has none)."""
    found = transcript([event])
    if not found:
        return []
    line = found[0]
    meta = (event.get("metadata") or {}).get("handoff") or {}
    found_file = meta.get("attachment")
    attachment: Dict[str, Any] = found_file if isinstance(found_file, dict) else {}
    if line["from"] == "visitor" and (line["text"].startswith("/") or meta.get("replayed")):
        return []
    if line["from"] == "system" and meta.get("event") in _NOT_IN_CHAT_TRANSCRIPT:
        return []
    if attachment.get("filename"):
        line["file"] = str(attachment["filename"])
    if line["from"] == "agent":
        name = str(meta.get("agent") or "")
        prefix = agent_text(name, "")
        body = meta.get("body")
        if isinstance(body, str) and body.strip():
            line["text"] = body
        elif line.get("file"):
            line["text"] = line["file"]
        elif name and line["text"].startswith(prefix):
            line["text"] = line["text"][len(prefix) :]
        line["name"] = name
    return [line]


def latest_intent(events: Iterable[Any]) -> Optional[str]:
    """The intent of the visitor's latest message."""
    intent = None
    for raw in events:
        event = _as_dict(raw)
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
    return intent


def shared_slots(slots: Mapping[str, Any]) -> Dict[str, Any]:
    """Filled slots the agent may see (no handoff bookkeeping, no front-end metadata)."""
    return {
        name: value
        for name, value in slots.items()
        if value is not None and not name.startswith("handoff_") and name not in _PRIVATE_SLOTS
    }


def agent_text(agent: str, body: str) -> str:
    """How an agent's message reads in a plain widget or a terminal: "Alice: Hello"."""
    return f"{agent}: {body}" if agent else body


def visitor_name(slots: Mapping[str, Any], visitor: Optional[Mapping[str, Any]] = None) -> str:
    """The name the agent sees: the bot's name slot, else the visitor's (`known_visitor`), else a neutral default."""
    for name in (slots.get(NAME_SLOT), (visitor or {}).get("name")):
        if name and str(name).strip():
            return str(name).strip()[:64]
    return DEFAULT_VISITOR_NAME


LANGUAGE_SLOT = "language"
MAX_LANGUAGE = 35  # BCP 47 tags are short: "en", "pt-BR", "zh-Hant-TW"


def visitor_language(events: Iterable[Any], slots: Mapping[str, Any]) -> Optional[str]:
    """The visitor's language for routing: the bot's `language` slot, else `metadata.language` of their latest message.

    A front end sends the page's language (`<html lang>`) as message metadata; Flex routes on the
    task attribute (e.g. to a queue of agents who speak it).
    """
    found = slots.get(LANGUAGE_SLOT)
    if not isinstance(found, str) or not found.strip():
        found = None
        for raw in events:
            event = _as_dict(raw)
            if event.get("event") == "user":
                value = (event.get("metadata") or {}).get("language")
                found = value if isinstance(value, str) and value.strip() else found
    return found.strip()[:MAX_LANGUAGE] if found else None


def context(
    events: Iterable[Any],
    slots: Mapping[str, Any],
    intent: Optional[str] = None,
    visitor: Optional[Mapping[str, Any]] = None,
    summary: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Pre-engagement data for Flex: who (`known_visitor`, their language), why (the bot's `summary`), the transcript, the slots.

    `summary` is `Summary.as_context()` (summary.py): {text, intents, slots, trigger, bot_seconds}.
    """
    events = list(events)
    lines = transcript(events)
    question = next((line["text"] for line in reversed(lines) if line["from"] == "visitor"), "")
    found: Dict[str, Any] = {
        "friendlyName": visitor_name(slots, visitor),
        "visitor": dict(visitor or {}),
        "language": visitor_language(events, slots),
        "question": _clipped(question),
        "intent": intent or latest_intent(events),
        **({"summary": dict(summary)} if summary else {}),
        "transcript": [],
        "slots": shared_slots(slots),
        "source": "rasa",
    }
    found["transcript"], omitted = _latest_lines(lines, MAX_CONTEXT_CHARS - len(json.dumps(found)))
    if omitted:
        found["transcript_omitted"] = omitted
    return found


# Flex keeps the context in the chat's attributes, which Twilio caps at 16 KiB: a long conversation
# sends its latest turns, each clipped, and says how many earlier ones it left out.
MAX_CONTEXT_CHARS = 12_000
MAX_LINE_CHARS = 1_000


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


def _latest_lines(lines: List[Dict[str, Any]], budget: int) -> Tuple[List[Dict[str, Any]], int]:
    """The latest transcript lines (clipped) whose JSON fits in `budget` characters, and how many earlier ones did not."""
    kept: List[Dict[str, Any]] = []
    for line in reversed(lines):
        line = {**line, "text": _clipped(line["text"])}
        budget -= len(json.dumps(line)) + 2
        if budget < 0:
            break
        kept.append(line)
    kept.reverse()
    return kept, len(lines) - len(kept)


OPENING_MESSAGE = "(asked to talk to an agent)"


def opening_message(events: Iterable[Any]) -> str:
    """The first line the agent reads in the chat: the visitor's own request when it was typed."""
    last = next((line["text"] for line in reversed(transcript(events)) if line["from"] == "visitor"), "")
    return last if last and not last.startswith("/") else OPENING_MESSAGE


def access_token(settings: Settings, identity: str, service_sid: Optional[str]) -> str:
    """A Twilio access token with a chat grant, so a front end can use the Twilio SDK directly."""
    token = AccessToken(settings.account_sid, settings.api_key, settings.api_secret, identity=identity, ttl=settings.token_ttl)
    token.add_grant(ChatGrant(service_sid=service_sid))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else jwt


def start_slots(chat: FlexChat, last_index: int = -1) -> Dict[str, Any]:
    """Slot values once the Flex chat exists: the bot pauses until they are cleared."""
    return {
        STATUS_SLOT: PENDING,
        CHANNEL_SLOT: chat.channel_sid,
        IDENTITY_SLOT: chat.identity,
        MODE_SLOT: chat.mode,
        SERVICE_SLOT: chat.service_sid,
        LAST_INDEX_SLOT: float(last_index),
        INTERACTION_SLOT: chat.interaction,
    }


def ended_chat(slots: Mapping[str, Any]) -> Optional[FlexChat]:
    """The chat that just ended, while the visitor answers the after-chat questions (its slots stay set until then)."""
    return None if slots.get(STATUS_SLOT) in (PENDING, ACTIVE, MESSAGE, None) else _chat_in(slots)


def after_chat_slots(slots: Mapping[str, Any], status: str, events: Optional[Iterable[Any]] = None) -> Dict[str, Any]:
    """Slot values while the visitor answers after-chat questions: the first question, the ended chat's slots (from `slots`)
    and, when the transcript may be emailed (`events` given, the conversation before the chat ended), its lines."""
    kept = (CHANNEL_SLOT, IDENTITY_SLOT, MODE_SLOT, SERVICE_SLOT, INTERACTION_SLOT)
    found: Dict[str, Any] = {STATUS_SLOT: status, **{name: slots.get(name) for name in kept}}
    if events is not None:
        found[TRANSCRIPT_SLOT] = chat_transcript(events, slots.get(CHANNEL_SLOT))[-MAX_TRANSCRIPT_LINES:]
    return found


MAX_TRANSCRIPT_LINES = 500  # the latest lines of a very long chat


def cleared_slots() -> Dict[str, None]:
    """Slot values that hand the conversation back to the bot."""
    return {name: None for name in HANDOFF_SLOTS}


@dataclass(frozen=True)
class SessionRules:
    """How the bot starts a dialogue session, as its domain says: whether slots carry over, what each resets to.

    `carry_over_slots` is the domain's `session_config.carry_over_slots_to_new_session`, true
    (Rasa's default) when the domain does not say or was not sent (rasa-sdk's selective domain);
    `initial_values` maps a slot to its `initial_value`, what a session start resets it to.
    """

    carry_over_slots: bool = True
    initial_values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_domain(cls, domain: Mapping[str, Any]) -> SessionRules:
        """The rules of a domain in its dict form (`Domain.as_dict()`, what rasa-sdk hands an action)."""
        config = domain.get("session_config")
        carry = config.get("carry_over_slots_to_new_session") if isinstance(config, Mapping) else None
        slots = domain.get("slots")
        initial = {
            name: spec.get("initial_value")
            for name, spec in (slots.items() if isinstance(slots, Mapping) else [])
            if isinstance(spec, Mapping) and spec.get("initial_value") is not None
        }
        return cls(carry if isinstance(carry, bool) else True, initial)


def carried_slots(slots: Mapping[str, Any], rules: SessionRules = SessionRules()) -> Dict[str, Any]:
    """The slot values a new session starts with, set again after `SessionStarted` reset them all.

    Rasa's own session start carries every slot over when the domain says so: here every slot
    whose value the reset would change, including `session_started_metadata`, but not the
    handoff's own slots (the handoff is over) nor `requested_slot` (its form was deactivated
    when the handoff began). Nothing when the domain does not carry slots over.
    """
    if not rules.carry_over_slots:
        return {}
    return {
        name: value
        for name, value in slots.items()
        if name not in HANDOFF_SLOTS
        and name != REQUESTED_SLOT
        and (value is not None or rules.initial_values.get(name) is not None)
    }


def new_session(slots: Mapping[str, Any], rules: SessionRules = SessionRules()) -> List[Dict[str, Any]]:
    """The events that start a new dialogue session when the bot resumes: `SessionStarted`, then the carried slots.

    In Rasa's serialised form, the one both servers use: what a rasa-sdk action returns (the same
    dicts as `rasa_sdk.events.SessionStarted()` and `SlotSet(name, value)`) and what Rasa reads
    back with `rasa.shared.core.events.deserialise_events` (timestamps are set when read).

    After a handoff the bot must answer the next message as at the start of a conversation, in
    any bot: its policies featurize `DialogueStateTracker.applied_events()`, which starts over at
    the latest `SessionStarted` (or `Restarted`), so the handoff's turns (the request, relayed
    and agent turns) leave their `max_history` window while `tracker.events`, the stored
    conversation, keeps every one of them (history, transcripts). This is what Rasa's
    `ActionSessionStart` returns, without its closing `action_listen`: applying `SessionStarted`
    resets every slot and leaves the tracker's follow-up action at `action_listen`, so in the
    processor's loop after a custom action Rasa listens next, recording the same
    `ActionExecuted(action_listen)`; where the events are recorded outside the loop (the
    connector, or a replayed message) the caller records it.

    Not `Restarted`: it drops every slot and the session's metadata. Not
    `FollowupAction("action_session_start")`: Rasa runs it after all the events an action
    returned, so a replayed message would fall before the new session (out of what the policies
    see), and Rasa predicts nothing after `action_session_start` (the visitor gets no answer);
    the connector, outside the processor's loop, could not use it at all. And no
    `ActionExecuted("action_session_start")` before it, the record Rasa's processor adds when it
    runs that action: no such action runs here (a bot's custom one is not called), and Rasa 3.6's
    in-memory and Redis tracker stores split sessions at that record, the in-memory one then
    keeping only the last session at the next save: the conversation before the handoff's end
    would be lost from its history. SQL and Mongo stores split at `SessionStarted` itself.
    """
    events: List[Dict[str, Any]] = [{"event": "session_started", "timestamp": None}]
    events += [
        {"event": "slot", "timestamp": None, "name": name, "value": value} for name, value in carried_slots(slots, rules).items()
    ]
    return events


def chat_from_slots(slots: Mapping[str, Any]) -> Optional[FlexChat]:
    """The Flex chat this conversation is handed off to, if any."""
    return _chat_in(slots) if is_active(slots) else None


def _chat_in(slots: Mapping[str, Any]) -> Optional[FlexChat]:
    if not slots.get(CHANNEL_SLOT) or not slots.get(MODE_SLOT):
        return None
    return FlexChat(
        mode=slots[MODE_SLOT],
        channel_sid=slots[CHANNEL_SLOT],
        identity=slots.get(IDENTITY_SLOT) or "",
        service_sid=slots.get(SERVICE_SLOT),
        interaction=slots.get(INTERACTION_SLOT),
    )


def last_index(slots: Mapping[str, Any]) -> int:
    """Index of the last Flex message already shown to the visitor (-1: none)."""
    value = slots.get(LAST_INDEX_SLOT)
    try:
        return int(float(value)) if value is not None else -1
    except (TypeError, ValueError):
        return -1


def handoff_metadata(role: str, **fields: Any) -> Dict[str, Any]:
    """BotUttered metadata that marks a turn as coming from the Flex side."""
    return {"handoff": {"role": role, **{k: v for k, v in fields.items() if v is not None}}}


def recorded_message_sids(events: Iterable[Any]) -> Set[str]:
    """Flex message sids already recorded as bot turns (Twilio retries webhooks)."""
    sids: Set[str] = set()
    for raw in events:
        if isinstance(raw, dict):
            if raw.get("event") != "bot":
                continue
            metadata = raw.get("metadata") or {}
        else:
            if getattr(raw, "type_name", None) != "bot":
                continue
            metadata = getattr(raw, "metadata", None) or {}
        sid = (metadata.get("handoff") or {}).get("message_sid")
        if sid:
            sids.add(sid)
    return sids


def already_recorded(events: Iterable[Any], message_sid: str) -> bool:
    """Whether this Flex message was already delivered to the visitor."""
    return message_sid in recorded_message_sids(events)
