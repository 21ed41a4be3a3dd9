"""Twilio failing during handoff and relay: the visitor is told, the bot keeps the chat, nothing is left behind."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from northwind.processes import wait_for
from northwind.servers import AgentDesk, Stack
from tests.handoff.conftest import handed_off

FAILED = "couldn't reach an agent"


def create_path(stack: Stack) -> str:
    return r"/flex-api/v2/WebChats$" if stack.mode == "conversations" else r"/flex-api/v1/WebChannels$"


def webhook_path(stack: Stack) -> str:
    return r"/conversations/v1/Conversations/CH\w+/Webhooks$" if stack.mode == "conversations" else r"/Channels/CH\w+/Webhooks$"


def message_path(stack: Stack) -> str:
    return r"/conversations/v1/Conversations/CH\w+/Messages$" if stack.mode == "conversations" else r"/Channels/CH\w+/Messages$"


def open_tasks(desk: AgentDesk) -> List[Dict[str, Any]]:
    return [t for t in desk.tasks() if t["status"] in ("pending", "accepted")]


def assert_stays_with_bot(stack: Stack, visitor: Any, open_before: int) -> None:
    """Clear message, no handoff slots, no open Flex chat, and the bot still answers."""
    assert stack.tracker(visitor.session_id)["slots"]["handoff_status"] is None
    wait_for(lambda: len(open_tasks(stack.sandbox)) == open_before, 10, "no leftover Flex chat")
    mark = len(visitor.messages)
    visitor.say("/ask_opening_hours")
    visitor.wait_for_text("Monday to Friday", start=mark)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 500, "times": 5}, id="create-500"),
        pytest.param({"status": 500, "times": 1, "when": "after"}, id="create-500-after-processing"),
        pytest.param({"status": 429, "times": 1}, id="create-429-then-ok"),
    ],
)
def test_twilio_error_while_creating_the_chat(stack: Stack, visitors, faults: AgentDesk, fault: Dict[str, Any]) -> None:
    visitor = visitors()
    open_before = len(open_tasks(faults))
    faults.fault(path_regex=create_path(stack), method="POST", **fault)
    mark = len(visitor.messages)
    visitor.say("/talk_to_agent")
    if fault["status"] == 429:  # rejected, nothing made: retried and the handoff goes through
        visitor.wait_for(lambda m: m.get("event") == "connecting", "handoff after a retried 429", start=mark)
        return
    visitor.wait_for_text(FAILED, start=mark)
    assert_stays_with_bot(stack, visitor, open_before)


@pytest.mark.parametrize("step", ["webhook-500", "webhook-timeout"])
def test_failure_after_the_chat_exists_removes_it(stack: Stack, visitors, faults: AgentDesk, step: str) -> None:
    visitor = visitors()
    open_before = len(open_tasks(faults))
    if step == "webhook-500":
        faults.fault(path_regex=webhook_path(stack), method="POST", status=500, times=5)
    else:
        faults.fault(path_regex=webhook_path(stack), method="POST", delay=3, times=5)  # TWILIO_TIMEOUT is 2
    mark = len(visitor.messages)
    visitor.say("/talk_to_agent")
    visitor.wait_for_text(FAILED, start=mark, timeout=30)
    assert_stays_with_bot(stack, visitor, open_before)


def test_timeout_while_creating_the_chat(stack: Stack, visitors, faults: AgentDesk) -> None:
    visitor = visitors()
    open_before = len(open_tasks(faults))
    faults.fault(path_regex=create_path(stack), method="POST", status=504, delay=3, times=1)
    mark = len(visitor.messages)
    visitor.say("/talk_to_agent")
    visitor.wait_for_text(FAILED, start=mark, timeout=30)
    assert_stays_with_bot(stack, visitor, open_before)


@pytest.mark.parametrize("fault", [{"status": 500, "times": 5}, {"delay": 3, "times": 5}], ids=["500", "timeout"])
def test_relay_failure_is_reported_to_the_visitor(stack: Stack, visitors, faults: AgentDesk, fault: Dict[str, Any]) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    faults.accept(task["sid"])
    faults.fault(path_regex=message_path(stack), method="POST", **fault)
    mark = len(visitor.messages)
    visitor.say("this one is lost")
    notice = visitor.wait_for(lambda m: m.get("event") == "relay_failed", "relay failure notice", start=mark, timeout=30)
    assert notice["sender"] == "system" and "could not be delivered" in notice["text"]
    faults.clear_faults()
    visitor.say("this one arrives")
    wait_for(lambda: any(m["body"] == "this one arrives" for m in faults.transcript(task["sid"])), 15, "relay after recovery")
    assert stack.tracker(visitor.session_id)["slots"]["handoff_status"] in ("pending", "active")


@pytest.mark.parametrize(
    "fault",
    [{"status": 500, "times": 1, "when": "after"}, {"delay": 3, "times": 1, "when": "after"}],
    ids=["500-after-processing", "timeout-after-processing"],
)
def test_relay_that_went_through_despite_an_error_reaches_the_agent_once(
    stack: Stack, visitors, faults: AgentDesk, fault: Dict[str, Any]
) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    faults.accept(task["sid"])
    faults.fault(path_regex=message_path(stack), method="POST", **fault)
    mark = len(visitor.messages)
    visitor.say("exactly once")
    visitor.say("and then this")

    def bodies() -> List[str]:
        return [m["body"] for m in faults.transcript(task["sid"])]

    wait_for(lambda: "and then this" in bodies(), 20, "the next line at the agent")
    assert bodies().count("exactly once") == 1
    assert bodies().index("exactly once") < bodies().index("and then this")
    assert not any(m.get("event") == "relay_failed" for m in visitor.messages[mark:])


def test_transient_relay_error_is_retried(stack: Stack, visitors, faults: AgentDesk) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    faults.fault(path_regex=message_path(stack), method="POST", status=503, times=1)
    mark = len(visitor.messages)
    visitor.say("retried line")
    wait_for(lambda: [m["body"] for m in faults.transcript(task["sid"])].count("retried line") == 1, 15, "relayed once")
    assert not any(m.get("event") == "relay_failed" for m in visitor.messages[mark:])
