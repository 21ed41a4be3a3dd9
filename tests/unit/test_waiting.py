"""A visitor waiting for an agent (waiting.py, chat_state.on_waiting): told as the queue moves, once; given up on in time."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.shared.core.events import BotUttered, SessionStarted, SlotSet

from rasa_flex_handoff import handoff, waiting
from rasa_flex_handoff.chat_state import Notice, Step, on_waiting
from rasa_flex_handoff.flex import FlexChat
from rasa_flex_handoff.waiting import Place, Verdict, judge, last_told, minutes, waiting_since

CHAT = FlexChat("interactions", "CH1", "visitor-identity", "IS1")
PENDING = handoff.start_slots(CHAT, last_index=0)


def status(value: Optional[str], at: float) -> SlotSet:
    return SlotSet(handoff.STATUS_SLOT, value, timestamp=at)


def told(position: int, eta: Optional[int], at: float) -> BotUttered:
    notice = waiting.queue_notice(position, eta, "CH1")
    return BotUttered("…", metadata={"utter_action": notice.response, **notice.metadata}, timestamp=at)


def verdict(
    state: str = "waiting",
    position: Optional[int] = 2,
    eta: Optional[float] = 120,
    since: Optional[float] = 100.0,
    now: float = 110.0,
    timeout: float = 300,
    place: Optional[Place] = None,
) -> Verdict:
    return judge(state=state, position=position, eta_seconds=eta, since=since, now=now, timeout=timeout, told=place)


def test_the_wait_starts_at_the_latest_pending_status() -> None:
    events = [status("pending", 10), status("active", 20), status("pending", 30)]  # a transfer waits anew
    assert waiting_since(events) == 30
    assert waiting_since([*events, status("active", 40)]) is None
    assert waiting_since([e.as_dict() for e in events]) == 30  # the action server's dict events read the same
    assert waiting_since([]) is None


def test_what_was_told_is_read_back_from_the_tracker_since_the_wait_began() -> None:
    events = [told(3, 300, 5), status("pending", 10), told(2, 120, 11), told(1, None, 12)]
    assert last_told(events, 10) == Place(1, None)
    assert last_told(events[:3], 10) == Place(2, 2)
    assert last_told(events[:2], 10) is None  # an earlier wait's notice does not count


def test_a_changed_place_is_told_and_the_same_place_is_not() -> None:
    assert verdict() is Verdict.TELL
    assert verdict(place=Place(2, 2)) is Verdict.NOTHING
    assert verdict(place=Place(3, 2)) is Verdict.TELL
    assert verdict(place=Place(2, 3)) is Verdict.TELL
    assert verdict(eta=None, place=Place(2, 2)) is Verdict.TELL  # the estimate went away


def test_estimates_are_told_in_whole_minutes_rounded_up() -> None:
    assert [minutes(s) for s in (None, 0, 1, 60, 61, 3600)] == [None, 1, 1, 1, 2, 60]
    assert verdict(eta=61, place=Place(2, 2)) is Verdict.NOTHING  # still "about 2 min": not told again


def test_nobody_accepting_in_time_gives_up() -> None:
    assert verdict(now=399.9) is not Verdict.GIVE_UP
    assert verdict(now=400) is Verdict.GIVE_UP
    assert verdict(now=10_000, timeout=0) is Verdict.TELL  # no limit set


def test_a_task_flex_dropped_gives_up_and_an_accepted_one_says_nothing() -> None:
    assert verdict(state="gone") is Verdict.GIVE_UP
    assert verdict(state="assigned", now=10_000) is Verdict.NOTHING  # the agent's join comes with its webhook


def test_a_task_not_routed_yet_is_only_timed_out() -> None:
    assert verdict(position=None) is Verdict.NOTHING
    assert verdict(position=None, now=500) is Verdict.GIVE_UP


def notices(steps: List[Step]) -> List[str]:
    return [step.response for step in steps if isinstance(step, Notice)]


def test_telling_the_place_words_it_with_or_without_an_estimate() -> None:
    [with_eta] = on_waiting(Verdict.TELL, CHAT, PENDING, 2, 150)
    [without] = on_waiting(Verdict.TELL, CHAT, PENDING, 1, None)
    assert isinstance(with_eta, Notice) and isinstance(without, Notice)
    assert (with_eta.response, with_eta.variables) == ("utter_handoff_queue", {"position": "2", "minutes": "3"})
    assert (without.response, without.variables) == ("utter_handoff_queue_position", {"position": "1"})
    expected: Dict[str, Any] = {"role": "system", "event": "queue", "position": 2, "eta_seconds": 150, "channel_sid": "CH1"}
    assert with_eta.metadata == {"handoff": expected}
    assert on_waiting(Verdict.NOTHING, CHAT, PENDING, 2, 150) == []


def test_giving_up_hands_back_to_the_bot_and_offers_a_message() -> None:
    steps = on_waiting(Verdict.GIVE_UP, CHAT, {**PENDING, "visitor_name": "Ada"}, 2, 150)
    assert notices(steps) == ["utter_handoff_not_accepted", "utter_handoff_offer"]
    cleared = {step.key: step.value for step in steps if isinstance(step, SlotSet) and step.key.startswith("handoff_")}
    assert cleared == handoff.cleared_slots()
    started = next(i for i, step in enumerate(steps) if isinstance(step, SessionStarted))
    assert SlotSet("visitor_name", "Ada") in steps[started:]  # the visitor's slots carry over
    assert isinstance(steps[-1], Notice) and steps[-1].response == "utter_handoff_offer"  # offered in the new session
