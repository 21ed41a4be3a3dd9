"""What the agent should know first, read off the conversation: a deterministic summary of the visitor's time with the bot.

Pure: tracker events (Rasa objects or their dicts, what rasa-sdk hands an action) and slots in,
a `Summary` out. The agent reads its `text` as the chat's first message and Flex keeps the rest
in the context and the task attributes (what the visitor asked for, the key slots, how the
handoff came about, how long they were with the bot). No model: the same conversation always
reads the same. A bot with its own idea of a summary sets `HANDOFF_SUMMARISER` (summariser.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from rasa_flex_handoff import handoff

DIRECT = "direct"  # the visitor asked for a person in their own words
FALLBACK = "fallback"  # right after the bot did not understand them
BUTTON = "button"  # with a button (a `/intent` payload)
TRIGGERS = (DIRECT, FALLBACK, BUTTON)

FALLBACK_INTENT = "nlu_fallback"
# Intents that say nothing about what the visitor came for: Rasa's fallback and the handoff's own.
_NOT_ASKED = {FALLBACK_INTENT, handoff.TALK_TO_AGENT_INTENT, handoff.END_CHAT_INTENT}
_HANDOFF_INTENTS = "handoff_"  # handoff_relay, handoff_leave_message, handoff_stay, the after-chat answers...

# Bounds: the text is one chat message (Conversations takes 1,600 characters), the rest rides in
# the chat's attributes and the task's, which Twilio caps too.
MAX_TEXT = 1_500
MAX_INTENTS = 20
MAX_SLOT_CHARS = 200
MAX_SLOTS = 30


@dataclass(frozen=True)
class Summary:
    """The visitor's time with the bot, for the agent who takes over.

    `intents`: what they asked for, in order (consecutive repeats folded; fallbacks and the
    handoff's own intents left out); `slots`: what the bot learnt (`handoff.shared_slots`);
    `trigger`: how the handoff came about (`direct`, `fallback`, `button`); `bot_seconds`: from
    their first message of the session to the handoff request; `text`: all of it, for a person.
    """

    intents: Tuple[str, ...]
    slots: Dict[str, Any]
    trigger: str
    bot_seconds: int
    text: str

    def as_context(self) -> Dict[str, Any]:
        """The JSON the chat's context and the task attributes carry, under `summary`."""
        return {
            "text": self.text,
            "intents": list(self.intents),
            "slots": dict(self.slots),
            "trigger": self.trigger,
            "bot_seconds": self.bot_seconds,
        }


def _as_dict(event: Any) -> Dict[str, Any]:
    return event if isinstance(event, dict) else event.as_dict()


def session_events(events: Iterable[Any]) -> List[Dict[str, Any]]:
    """The events of the latest dialogue session (after its `session_started`), as dicts.

    A handoff that ended started a new session (`handoff.new_session`), so the next summary
    is about the visitor's time with the bot since then, not their whole history.
    """
    found: List[Dict[str, Any]] = []
    for raw in events:
        event = _as_dict(raw)
        if event.get("event") == "session_started":
            found = []
        else:
            found.append(event)
    return found


def intent_of(event: Mapping[str, Any]) -> Optional[str]:
    """The intent NLU gave a visitor turn (None when it has none)."""
    name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
    return name if isinstance(name, str) and name else None


def _asked(intent: Optional[str]) -> bool:
    return bool(intent) and intent not in _NOT_ASKED and not str(intent).startswith(_HANDOFF_INTENTS)


def asked_intents(turns: Sequence[Mapping[str, Any]]) -> Tuple[str, ...]:
    """What the visitor asked for, in order: consecutive repeats folded, fallbacks and handoff intents left out."""
    found: List[str] = []
    for turn in turns:
        intent = intent_of(turn)
        if _asked(intent) and (not found or found[-1] != intent):
            found.append(str(intent))
    return tuple(found[-MAX_INTENTS:])


def is_fallback_action(name: Any) -> bool:
    """Rasa's `action_default_fallback` and `action_two_stage_fallback`, or a bot's own fallback action (`action_fallback`)."""
    return isinstance(name, str) and "fallback" in name


def _turns(events: Sequence[Dict[str, Any]]) -> List[Tuple[Dict[str, Any], List[str]]]:
    """Each visitor turn with the names of the actions the bot ran in reply."""
    turns: List[Tuple[Dict[str, Any], List[str]]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append((event, []))
        elif event.get("event") == "action" and turns:
            turns[-1][1].append(str(event.get("name") or ""))
    return turns


def fallbacks_before(turns: Sequence[Tuple[Dict[str, Any], List[str]]]) -> int:
    """How many visitor turns in a row just before the last one the bot did not understand."""
    count = 0
    for turn, actions in reversed(turns[:-1]):
        if intent_of(turn) != FALLBACK_INTENT and not any(is_fallback_action(name) for name in actions):
            break
        count += 1
    return count


def fallback_count(turns: Sequence[Tuple[Dict[str, Any], List[str]]]) -> int:
    """How many visitor turns up to the handoff request the bot did not understand in a row (the request itself included)."""
    if not turns:
        return 0
    return fallbacks_before(turns) + int(intent_of(turns[-1][0]) == FALLBACK_INTENT)


def trigger_of(turns: Sequence[Tuple[Dict[str, Any], List[str]]]) -> str:
    """How the handoff came about, read off its turn (the last) and the turns just before it.

    `fallback` when it followed turns the bot did not understand (or was itself one), even when
    the visitor then pressed the fallback's "talk to a person" button: that the bot was lost
    is what the agent needs to know. Else `button` for a `/payload`, else `direct`.
    """
    if not turns:
        return DIRECT
    last = turns[-1][0]
    if fallback_count(turns):
        return FALLBACK
    return BUTTON if str(last.get("text") or "").strip().startswith("/") else DIRECT


def _seconds(turns: Sequence[Tuple[Dict[str, Any], List[str]]]) -> int:
    stamps = [turn.get("timestamp") for turn, _ in turns]
    first, last = (stamps[0], stamps[-1]) if stamps else (None, None)
    if not isinstance(first, (int, float)) or not isinstance(last, (int, float)):
        return 0
    return max(0, int(last - first))


def key_slots(slots: Mapping[str, Any]) -> Dict[str, Any]:
    """The slots the agent may see (`handoff.shared_slots`), each value small enough to travel with the chat."""
    kept: Dict[str, Any] = {}
    for name, value in list(handoff.shared_slots(slots).items())[:MAX_SLOTS]:
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError):  # not JSON (a set, an object): as text
            value = str(value)
            size = len(value) + 2
        kept[name] = value if size <= MAX_SLOT_CHARS else _clip(str(value), MAX_SLOT_CHARS)
    return kept


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: int) -> str:
    """Seconds as a person reads them: "45 s", "2 min 5 s", "1 h 3 min"."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"


_HOW = {
    DIRECT: "asked for a person",
    BUTTON: "asked for a person with a button",
    FALLBACK: "after the bot did not understand",
}


def summary_text(intents: Sequence[str], slots: Mapping[str, Any], trigger: str, bot_seconds: int, fallbacks: int = 0) -> str:
    """The summary as the agent reads it in the chat: one fact a line."""
    how = _HOW.get(trigger, trigger)
    if trigger == FALLBACK and fallbacks > 1:
        how = f"after the bot did not understand {fallbacks} messages in a row"
    asked = ", ".join(intent.replace("_", " ") for intent in intents) if intents else "nothing before the handoff"
    lines = ["Summary from the bot", f"Asked about: {asked}", f"Handoff: {how}"]
    if slots:
        shown = (f"{name}: {value if isinstance(value, str) else json.dumps(value)}" for name, value in slots.items())
        lines.append("Known: " + "; ".join(_clip(part, 120) for part in shown))
    lines.append(f"Time with the bot: {duration(bot_seconds)}")
    return _clip("\n".join(lines), MAX_TEXT)


def summarise(events: Iterable[Any], slots: Mapping[str, Any]) -> Summary:
    """The default summary of a conversation about to be handed off (its latest visitor turn is the handoff request)."""
    turns = _turns(session_events(events))
    intents = asked_intents([turn for turn, _ in turns])
    trigger = trigger_of(turns)
    seconds = _seconds(turns)
    shared = key_slots(slots)
    text = summary_text(intents, shared, trigger, seconds, fallback_count(turns))
    return Summary(intents=intents, slots=shared, trigger=trigger, bot_seconds=seconds, text=text)


def bounded(summary: Summary) -> Summary:
    """A summary (e.g. a bot's own) within the bounds every summary keeps, fields of the right types."""
    intents = tuple(str(intent) for intent in summary.intents)[-MAX_INTENTS:]
    slots = key_slots(summary.slots) if isinstance(summary.slots, Mapping) else {}
    trigger = summary.trigger if summary.trigger in TRIGGERS else DIRECT
    seconds = max(0, int(summary.bot_seconds)) if isinstance(summary.bot_seconds, (int, float)) else 0
    return dataclasses.replace(
        summary, intents=intents, slots=slots, trigger=trigger, bot_seconds=seconds, text=_clip(str(summary.text), MAX_TEXT)
    )
