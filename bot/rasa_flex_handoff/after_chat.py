"""After the agent chat: the satisfaction survey, then the transcript by email.

Both are optional (`HANDOFF_SURVEY`, `HANDOFF_SMTP_URL`). The bot is back when they run (the
chat's end started a new session), and `handoff_status` says which question the visitor was
last asked; the chat's own slots stay set meanwhile, so the answers are written back to that
chat in Flex. The visitor may answer, skip, or move on: anything that is not an answer to the
question is a turn for the bot, and the after-chat ends without a word (`HandoffPolicy`).

Pure functions, shared by the policy (is this an answer?) and the action (what it does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from rasa_flex_handoff import handoff, transcript_mail
from rasa_flex_handoff.settings import Settings

# The question the visitor was last asked, as `handoff_status`.
SURVEY = "survey"  # rate the chat 1-5 (or skip)
COMMENT = "survey_comment"  # anything to add? (or skip)
TRANSCRIPT = "transcript"  # email you the transcript? (or skip)
EMAIL = "transcript_email"  # which address?
STATUSES = (SURVEY, COMMENT, TRANSCRIPT, EMAIL)

RATING_INTENT = "handoff_rating"
SKIP_INTENT = "handoff_skip"
TRANSCRIPT_INTENT = "handoff_transcript"

# The response that asks each question, and the event a front end knows it by (`metadata.handoff.event`).
QUESTIONS: Dict[str, Tuple[str, str]] = {
    SURVEY: (handoff.UTTER_SURVEY, "survey"),
    COMMENT: (handoff.UTTER_SURVEY_COMMENT, "survey_comment"),
    TRANSCRIPT: (handoff.UTTER_TRANSCRIPT_OFFER, "transcript_offer"),
    EMAIL: (handoff.UTTER_ASK_EMAIL, "transcript_email"),
}

MAX_COMMENT = 1_000
_RATING_PAYLOAD = re.compile(r"^/" + RATING_INTENT + r"\s*(\{.*\})\s*$", re.DOTALL)
_RATING_TEXT = re.compile(r"^\s*([1-5])\s*(?:/\s*5|stars?|★+)?\s*[.!]?\s*$", re.IGNORECASE)
_EMAIL = re.compile(
    r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


@dataclass(frozen=True)
class FollowUp:
    """Which after-chat questions this bot asks."""

    survey: bool = False
    transcript: bool = False

    def first(self) -> Optional[str]:
        """The first question after the chat ends, None when the bot asks none."""
        return SURVEY if self.survey else self.after_survey()

    def after_survey(self) -> Optional[str]:
        return TRANSCRIPT if self.transcript else None


@dataclass(frozen=True)
class Answer:
    """What the visitor's answer does: what to record, whether to thank them, where to send the transcript, what to ask next."""

    record: Dict[str, Any] = field(default_factory=dict)  # survey fields given: rating, comment
    thanks: bool = False  # the survey is done
    send_to: Optional[str] = None  # email the transcript here
    ask: Optional[str] = None  # the next question (a status); None: the after-chat is over


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_ANY_RATING = re.compile(r"\b([1-5]|one|two|three|four|five)\b", re.IGNORECASE)


def rating_of(text: Optional[str], intent: Optional[str] = None) -> Optional[int]:
    """The 1-5 rating in a visitor turn: the survey button's payload (`/handoff_rating{"rating": 4}`), a typed "4",
    "4/5", "4 stars", or, when NLU read the turn as a rating, the one number it names ("I'd give it a four")."""
    text = (text or "").strip()
    found = _RATING_PAYLOAD.match(text)
    if found:
        try:
            value = json.loads(found.group(1)).get("rating")
        except (ValueError, AttributeError):
            return None
        try:
            rating = int(str(value))
        except ValueError:
            return None
        return rating if 1 <= rating <= 5 else None
    typed = _RATING_TEXT.match(text)
    if typed:
        return int(typed.group(1))
    named = {m.lower() for m in _ANY_RATING.findall(text)} if intent == RATING_INTENT else set()
    if len(named) != 1:
        return None
    word = named.pop()
    return _NUMBER_WORDS.get(word) or int(word)


def is_skip(text: Optional[str], intent: Optional[str]) -> bool:
    """The visitor skipped the question (the Skip / No thanks button)."""
    return handoff.said(SKIP_INTENT, text, intent)


def wants_transcript(text: Optional[str], intent: Optional[str]) -> bool:
    """The visitor asked for the transcript (the offer's button)."""
    return handoff.said(TRANSCRIPT_INTENT, text, intent)


def _is_payload(text: Optional[str]) -> bool:
    return (text or "").strip().startswith("/")


def answer(
    status: Optional[str], text: Optional[str], intent: Optional[str], follow_up: FollowUp, known_email: Optional[str] = None
) -> Optional[Answer]:
    """What the visitor's turn does to the after-chat question `status`; None when it is not an answer (they moved on).

    A rating or a typed comment is recorded; Skip goes on to the next question; asking for the
    transcript sends it to the address the page vouched for, else asks for one.
    """
    skip = is_skip(text, intent)
    if status == SURVEY:
        rating = rating_of(text, intent)
        if rating is not None:
            return Answer(record={"rating": rating}, ask=COMMENT)
        return Answer(ask=follow_up.after_survey()) if skip else None
    if status == COMMENT:
        if skip:
            return Answer(thanks=True, ask=follow_up.after_survey())
        comment = (text or "").strip()
        if not comment or _is_payload(comment):
            return None
        return Answer(record={"comment": comment[:MAX_COMMENT]}, thanks=True, ask=follow_up.after_survey())
    if status == TRANSCRIPT:
        if wants_transcript(text, intent):
            return Answer(send_to=known_email) if known_email else Answer(ask=EMAIL)
        return Answer() if skip else None
    if status == EMAIL:
        email = transcript_mail.valid_email(text or "")
        if email is not None:
            return Answer(send_to=email)
        return Answer() if skip else None
    return None


def is_answer(status: Optional[str], text: Optional[str], intent: Optional[str]) -> bool:
    """Whether a visitor turn answers the after-chat question `status` (else the bot answers it)."""
    return answer(status, text, intent, FollowUp(survey=True, transcript=True), known_email=None) is not None


def follow_up(settings: Settings) -> FollowUp:
    """The after-chat questions the settings ask for: the survey (`HANDOFF_SURVEY`), the transcript (an SMTP server set)."""
    return FollowUp(survey=settings.survey, transcript=settings.smtp is not None)
