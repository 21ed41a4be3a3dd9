"""After the agent chat: the satisfaction survey and the transcript by email, end to end.

A Rasa server and action server with `HANDOFF_SURVEY=on` and `HANDOFF_SMTP_URL` pointing at a
local SMTP server process (tests/smtp_sink.py), in the Flex modes whose chats keep attributes
differently (Conversations conversation, Programmable Chat channel); the agent in the sandbox.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from northwind.processes import wait_for
from northwind.servers import AgentDesk, Stack
from tests.handoff.conftest import Visitor, handed_off, stream
from tests.smtp_sink import SmtpSink, start_smtp_sink

pytestmark = pytest.mark.timeout(240)

SENDER = "Northwind Support <support@northwind.example>"


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    sink = start_smtp_sink(tmp_path_factory.mktemp("smtp"))
    yield sink
    sink.stop()


@pytest.fixture(scope="module", params=["conversations", "legacy"])
def stack(
    request: pytest.FixtureRequest,
    sandbox: AgentDesk,
    handoff_model: Path,
    mail: SmtpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    s = Stack(request.param, sandbox, handoff_model, tmp_path_factory.mktemp(f"after-chat-{request.param}"))
    s.env.update({"HANDOFF_SURVEY": "on", "HANDOFF_SMTP_URL": mail.url, "HANDOFF_EMAIL_FROM": SENDER})
    s.start()
    yield s
    s.stop()


@pytest.fixture
def visitor(stack: Stack) -> Iterator[Visitor]:
    v = Visitor(stack.url)
    yield v
    v.close()


def ended_by_agent(stack: Stack, visitor: Visitor) -> Dict[str, Any]:
    """Hand off, let the agent say something and end the chat; the Flex task."""
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "Your refund is on its way.")
    visitor.wait_for_text("refund is on its way")
    stack.sandbox.end(task["sid"], wrap_up=True)  # as in Flex's UI: the task wraps up until the agent completes it
    return task


def event_of(visitor: Visitor, event: str, start: int = 0) -> Dict[str, Any]:
    return visitor.wait_for(lambda m: m.get("event") == event, f"{event} notice", start=start)


def test_survey_and_transcript_after_the_agent_ends(stack: Stack, visitor: Visitor, mail: SmtpSink) -> None:
    visitor.say("hello")
    visitor.wait_for(lambda m: bool(m.get("text")), "the bot's greeting")
    task = ended_by_agent(stack, visitor)
    channel_sid = stack.tracker(visitor.session_id)["slots"]["handoff_channel_sid"] or task["channel_sid"]

    survey = event_of(visitor, "survey")
    assert [q["title"] for q in survey["quick_replies"]] == ["1", "2", "3", "4", "5", "Skip"]
    start = len(visitor.messages)
    visitor.say(survey["quick_replies"][3]["payload"])  # 4
    event_of(visitor, "survey_comment", start)
    start = len(visitor.messages)
    visitor.say("Quick and kind, thank you")
    event_of(visitor, "survey_thanks", start)
    offer = event_of(visitor, "transcript_offer", start)
    answer: Dict[str, Any] = {"chat": channel_sid, "rating": 4, "comment": "Quick and kind, thank you"}
    assert stack.tracker(visitor.session_id)["slots"]["handoff_survey"] == answer
    written = {"rating": 4, "comment": "Quick and kind, thank you"}
    assert stack.sandbox.task_attributes(task["sid"])["handoff_survey"] == written
    # A Chat channel still takes attributes after the chat; a closed conversation does not (Twilio error 50377).
    assert stack.sandbox.chat_attributes(task["sid"]).get("handoff_survey") == (written if stack.mode == "legacy" else None)

    start = len(visitor.messages)
    visitor.say(offer["quick_replies"][0]["payload"])  # email me the transcript
    event_of(visitor, "transcript_email", start)
    before = len(mail.messages())
    start = len(visitor.messages)
    visitor.say("jane@example.com")
    sent = event_of(visitor, "transcript_sent", start)
    assert "j***@example.com" in sent["text"] and "jane@example.com" not in sent["text"]
    mails = mail.wait_for(before + 1)
    message = mails[-1]
    assert message["To"] == "jane@example.com"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Your refund is on its way." in body and "hello" in body
    slots = stack.tracker(visitor.session_id)["slots"]
    assert slots["handoff_status"] is None and slots["handoff_channel_sid"] is None  # the after-chat is over

    # Back with the bot.
    start = len(visitor.messages)
    visitor.say("hello")
    reply = visitor.wait_for(lambda m: bool(m.get("text")), "the bot's answer", start=start)
    assert not reply.get("event")


def test_a_visitor_who_moves_on_gets_the_bot_and_no_survey(stack: Stack, visitor: Visitor, mail: SmtpSink) -> None:
    ended_by_agent(stack, visitor)
    event_of(visitor, "survey")
    start = len(visitor.messages)
    visitor.say("hello")
    reply = visitor.wait_for(lambda m: bool(m.get("text")), "the bot's answer", start=start)
    assert not reply.get("event")  # the bot's own greeting, not an after-chat question
    slots = stack.tracker(visitor.session_id)["slots"]
    assert slots["handoff_status"] is None and slots["handoff_survey"] is None
    # A late "4" is the bot's business now, not a rating.
    start = len(visitor.messages)
    visitor.say("4")
    visitor.wait_for(lambda m: bool(m.get("text")), "the bot's answer", start=start)
    assert stack.tracker(visitor.session_id)["slots"]["handoff_survey"] is None


def test_rasa_shell_rates_and_skips(stack: Stack) -> None:
    """`rasa shell` hears of the end while it waits for the agent's reply to a line the agent got."""
    sender = f"shell-after-{stack.mode}"
    stream(stack, sender, "/talk_to_agent")
    channel_sid = wait_for(lambda: stack.tracker(sender)["slots"].get("handoff_channel_sid"), 10, "handoff slots")
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    with ThreadPoolExecutor(1) as pool:
        line = pool.submit(stream, stack, sender, "thanks, that's all")
        wait_for(
            lambda: any(m.get("body") == "thanks, that's all" for m in stack.sandbox.transcript(task["sid"])),
            10,
            "the line in Flex",
        )
        stack.sandbox.end(task["sid"])
        texts = [m.get("text") or "" for m in line.result(15)]
    assert any("rate" in t for t in texts), texts
    assert stack.tracker(sender)["slots"]["handoff_status"] == "survey"
    stream(stack, sender, "5")
    stream(stack, sender, "/handoff_skip")  # no comment
    texts = [m.get("text") or "" for m in stream(stack, sender, "/handoff_skip")]  # no transcript
    slots = stack.tracker(sender)["slots"]
    assert slots["handoff_survey"] == {"chat": channel_sid, "rating": 5, "comment": None}
    assert slots["handoff_status"] is None, texts
