"""The after-chat questions: which turn answers which, and what it does (after_chat.py)."""

from __future__ import annotations

from typing import Optional

import pytest

from rasa_flex_handoff import after_chat
from rasa_flex_handoff.after_chat import COMMENT, EMAIL, SURVEY, TRANSCRIPT, Answer, FollowUp

BOTH = FollowUp(survey=True, transcript=True)


@pytest.mark.parametrize(
    ("text", "intent", "rating"),
    [
        ('/handoff_rating{"rating": 4}', "handoff_rating", 4),
        ('/handoff_rating{"rating": "2"}', None, 2),
        ('/handoff_rating{"rating": 9}', None, None),
        ("/handoff_rating{broken", None, None),
        ("5", None, 5),
        (" 3/5 ", None, 3),
        ("4 stars", None, 4),
        ("0", None, None),
        ("6", None, None),
        ("I'd give it a four", "handoff_rating", 4),
        ("I'd give it a four", "greet", None),
        ("between 2 and 3", "handoff_rating", None),
        ("order 12345", None, None),
    ],
)
def test_rating_of(text: str, intent: Optional[str], rating: Optional[int]) -> None:
    assert after_chat.rating_of(text, intent) == rating


def test_the_survey_then_the_transcript() -> None:
    assert BOTH.first() == SURVEY
    assert after_chat.answer(SURVEY, "4", None, BOTH) == Answer(record={"rating": 4}, ask=COMMENT)
    assert after_chat.answer(COMMENT, "Quick and kind", "greet", BOTH) == Answer(
        record={"comment": "Quick and kind"}, thanks=True, ask=TRANSCRIPT
    )
    assert after_chat.answer(TRANSCRIPT, "/handoff_transcript", None, BOTH) == Answer(ask=EMAIL)
    assert after_chat.answer(TRANSCRIPT, "/handoff_transcript", None, BOTH, "jane@example.com") == Answer(
        send_to="jane@example.com"
    )
    assert after_chat.answer(EMAIL, " jane@example.com ", None, BOTH) == Answer(send_to="jane@example.com")


def test_skips_go_on_to_the_next_question() -> None:
    assert after_chat.answer(SURVEY, "/handoff_skip", None, BOTH) == Answer(ask=TRANSCRIPT)
    assert after_chat.answer(COMMENT, "skip", "handoff_skip", BOTH) == Answer(thanks=True, ask=TRANSCRIPT)
    assert after_chat.answer(TRANSCRIPT, "/handoff_skip", None, BOTH) == Answer()
    assert after_chat.answer(EMAIL, "/handoff_skip", None, BOTH) == Answer()
    survey_only = FollowUp(survey=True)
    assert after_chat.answer(SURVEY, "/handoff_skip", None, survey_only) == Answer()
    assert after_chat.answer(COMMENT, "fine", None, survey_only) == Answer(record={"comment": "fine"}, thanks=True)


def test_what_does_not_answer_is_moving_on() -> None:
    assert after_chat.answer(SURVEY, "where is my order?", "order_status", BOTH) is None
    assert after_chat.answer(COMMENT, "/talk_to_agent", "talk_to_agent", BOTH) is None  # another button
    assert after_chat.answer(COMMENT, "   ", None, BOTH) is None
    assert after_chat.answer(TRANSCRIPT, "hello", "greet", BOTH) is None
    assert after_chat.answer(EMAIL, "not an address", None, BOTH) is None
    assert after_chat.answer(None, "4", None, BOTH) is None


def test_a_long_comment_is_capped() -> None:
    found = after_chat.answer(COMMENT, "x" * 5000, None, BOTH)
    assert found is not None and len(found.record["comment"]) == after_chat.MAX_COMMENT


def test_first_question_follows_the_settings() -> None:
    assert FollowUp().first() is None
    assert FollowUp(transcript=True).first() == TRANSCRIPT
