"""Routing like Flex does it, end to end: availability, business hours, waiting in line, giving up, transfers.

Real processes (the Flex sandbox with its TaskRouter, the action server, the Rasa server) and a
visitor on socket.io or REST. The sandbox is this module's own: these tests change who is
available and what waits in the queue, which other modules must not see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from northwind.processes import wait_for
from northwind.servers import AgentDesk, Stack, start_sandbox
from tests.handoff.conftest import Visitor, handed_off, stream

AGENTS = ("alice", "bob")
QUEUE_UPDATE = "0.3"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentDesk]:
    server = start_sandbox(tmp_path_factory.mktemp("routing-sandbox"), extra_env={"FLEX_SANDBOX_RETRY_DELAY": "0.2"})
    desk = AgentDesk(server)
    try:
        yield desk
    finally:
        server.process.stop()


@pytest.fixture
def agents(desk: AgentDesk) -> Iterator[AgentDesk]:
    """Alice and Bob available; every waiting chat ended afterwards, so the next test finds an empty queue."""
    for name in AGENTS:
        desk.available(name, True)
    yield desk
    for name in AGENTS:
        desk.available(name, True)
    for task in desk.tasks():
        if task["status"] == "accepted" and task.get("kind", "chat") == "chat":
            desk.end(task["sid"], task["agent"])


def start_stack(desk: AgentDesk, model: Path, workdir: Path, mode: str, **env: str) -> Stack:
    stack = Stack(mode, desk, model, workdir)
    stack.env.update({"HANDOFF_QUEUE_UPDATE": QUEUE_UPDATE, **env})
    return stack.start()


@pytest.fixture(scope="module", params=["conversations", "interactions"])
def stack(
    request: pytest.FixtureRequest, desk: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A bot whose visitors wait up to two minutes for an agent."""
    s = start_stack(desk, handoff_model, tmp_path_factory.mktemp(f"routing-{request.param}"), request.param)
    yield s
    s.stop()


@pytest.fixture
def visitors(stack: Stack) -> Iterator[Callable[[], Visitor]]:
    made: List[Visitor] = []

    def make() -> Visitor:
        made.append(Visitor(stack.url))
        return made[-1]

    yield make
    for v in made:
        v.close()
    assert [p for v in made for p in v.off_contract] == []  # every state is a payload plain Rasa widgets render


def event(name: str, **fields: Any) -> Callable[[Dict[str, Any]], bool]:
    return lambda m: m.get("event") == name and all(m.get(k) == v for k, v in fields.items())


def buttons(message: Dict[str, Any]) -> List[str]:
    """The payloads of a socket.io message's quick replies (Rasa's shape for buttons)."""
    return [reply["payload"] for reply in message["wire"].get("quick_replies") or []]


def chat_tasks(desk: AgentDesk, **where: Any) -> List[Dict[str, Any]]:
    return [t for t in desk.tasks() if t.get("kind", "chat") == "chat" and all(t.get(k) == v for k, v in where.items())]


def message_tasks(desk: AgentDesk) -> List[Dict[str, Any]]:
    return [t for t in desk.tasks() if t.get("kind") == "message"]


# --- waiting in line -------------------------------------------------------------------------


def test_waiting_visitors_see_their_place_in_line_and_it_moves(
    stack: Stack, agents: AgentDesk, visitors: Callable[[], Visitor]
) -> None:
    first, second = visitors(), visitors()
    first_task = handed_off(stack, first)
    first.wait_for(event("queue", position=1), "first in line")
    second_task = handed_off(stack, second)
    told = second.wait_for(event("queue", position=2), "second in line")
    assert "number 2 in line" in told["text"]

    agents.accept(first_task["sid"], "alice")
    first.wait_for(event("agent_joined"), "alice joins the first chat")
    moved = second.wait_for(event("queue", position=1), "moved up")
    # Flex now has an acceptance to estimate from: the place comes with an estimate in minutes.
    assert moved["eta_seconds"] >= 0 and "min" in moved["text"]
    assert [m for m in second.messages if m.get("event") == "queue" and m.get("position") == 2] == [told]  # told once
    agents.accept(second_task["sid"], "bob")
    second.wait_for(event("agent_joined"), "bob joins the second chat")


def test_a_waiting_visitor_can_cancel_and_flex_is_left_with_nothing_open(
    stack: Stack, agents: AgentDesk, visitors: Callable[[], Visitor]
) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor)
    start = len(visitor.messages)
    visitor.say("/end_chat")  # the widget's Cancel
    visitor.wait_for(event("bot_resumed"), "bot back", start=start)
    ended = wait_for(
        lambda: next((t for t in agents.tasks() if t["sid"] == task["sid"] and t["status"] == "ended"), None),
        10,
        "the task ended",
    )
    assert ended["assignment_status"] == "canceled"
    conversation = stack.sandbox.server.client.conversations.v1.conversations(task["channel_sid"]).fetch()
    assert conversation.state == "closed"
    if stack.mode == "interactions":
        interaction, channel = ended["attributes"]["flexInteractionSid"], ended["attributes"]["flexInteractionChannelSid"]
        fetched = stack.sandbox.server.client.flex_api.v1.interaction(interaction).channels(channel).fetch()
        assert fetched.status == "closed"
    slots = stack.tracker(visitor.session_id or "")["slots"]
    assert slots["handoff_status"] is None and slots["handoff_channel_sid"] is None


def test_rest_visitors_read_their_place_in_line_from_the_messages(stack: Stack, agents: AgentDesk) -> None:
    sender = f"rest-{stack.mode}-waiting"
    answered = stack.rest(sender, "/talk_to_agent")
    assert [m["event"] for m in answered if m.get("event")][:2] == ["connecting", "queue"]
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "the chat's task")
    agents.accept(task["sid"], "alice")
    found = wait_for(
        lambda: [m for m in stack.rest_messages(sender)["messages"] if m.get("event") == "agent_joined"], 15, "the join"
    )
    assert found[0]["agent"] == {"name": "alice"}


# --- what the task tells the agent -------------------------------------------------------


def test_the_task_carries_the_bots_summary_and_the_visitor_for_flex_insights(
    stack: Stack, agents: AgentDesk, visitors: Callable[[], Visitor]
) -> None:
    visitor = visitors()
    form = {"name": "Ada Lovelace", "email": "ada@example.com"}  # the widget's pre-engagement form: declared, not vouched
    start = len(visitor.messages)
    visitor.say("/ask_shipping", {"pre_engagement": form})
    visitor.wait_for_text("shipping", start=start)
    task = handed_off(stack, visitor, metadata={"pre_engagement": form})
    context = task["pre_engagement_data"]
    assert context["summary"]["intents"] == ["ask_shipping"] and context["summary"]["trigger"] == "button"
    assert context["visitor"] == {**form, "verified": False} and task["customer_friendly_name"] == "Ada Lovelace"
    if stack.mode == "interactions":  # the bot sets the task attributes itself: routing and Flex Insights read them
        attributes = task["attributes"]
        assert attributes["summary"] == context["summary"]
        assert attributes["customers"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
        assert attributes["visitor"]["verified"] is False
    start = len(visitor.messages)
    visitor.say("/end_chat")
    visitor.wait_for(event("bot_resumed"), "bot back", start=start)


# --- transfers ----------------------------------------------------------------------------


def test_an_agent_transfers_the_chat_and_the_visitor_sees_the_next_agent_by_name(
    stack: Stack, agents: AgentDesk, visitors: Callable[[], Visitor]
) -> None:
    visitor = visitors()
    task = handed_off(stack, visitor, metadata={"language": "de"})  # the page's language, as a widget sends it
    assert task["pre_engagement_data"]["language"] == "de"
    if stack.mode == "interactions":  # the bot sets the task attributes itself
        assert task["attributes"]["language"] == "de" and task["attributes"]["intent"] == "talk_to_agent"
    agents.accept(task["sid"], "alice")
    visitor.wait_for(event("agent_joined"), "alice joined")
    agents.send(task["sid"], "Let me get my colleague who handles refunds.", "alice")
    visitor.wait_for_text("colleague who handles refunds")

    start = len(visitor.messages)
    agents.transfer(task["sid"], to_agent="bob", agent="alice")
    passing = visitor.wait_for(event("transferring"), "transfer notice", start=start)
    assert passing["agent"] == {"name": "alice"} and "alice" in passing["text"]
    assert stack.tracker(visitor.session_id or "")["slots"]["handoff_status"] == "pending"

    new_task = wait_for(
        lambda: next((t for t in chat_tasks(agents, channel_sid=task["channel_sid"]) if t["sid"] != task["sid"]), None),
        10,
        "the transferred task",
    )
    # The next agent gets the whole context the bot gave the first one.
    assert new_task["pre_engagement_data"]["transcript"] == task["pre_engagement_data"]["transcript"]
    agents.accept(new_task["sid"], "bob")
    joined = visitor.wait_for(event("agent_joined"), "bob joined", start=start)
    assert joined["agent"] == {"name": "bob"}
    agents.send(new_task["sid"], "Hi, Bob here. I can refund that.", "bob")
    visitor.wait_for_text("Bob here")
    visitor.say("Thanks Bob!")
    wait_for(lambda: any("Thanks Bob" in m["body"] for m in agents.transcript(new_task["sid"])), 10, "bob reads the reply")
    assert not [m for m in visitor.messages if m.get("event") in ("bot_resumed", "chat_closed")]  # the bot stayed out
    assert stack.tracker(visitor.session_id or "")["slots"]["handoff_status"] == "active"


# --- nobody there --------------------------------------------------------------------------


def test_with_no_agent_available_the_visitor_is_offered_a_message_or_the_bot(
    stack: Stack, agents: AgentDesk, visitors: Callable[[], Visitor]
) -> None:
    for name in AGENTS:
        agents.available(name, False)
    tasks_before = len(agents.tasks())
    visitor = visitors()
    visitor.say("/talk_to_agent")
    told = visitor.wait_for(event("unavailable"), "no agents notice")
    assert told["reason"] == "no_agents"
    offer = visitor.wait_for(event("offer"), "the offer")
    assert buttons(offer) == ["/handoff_leave_message", "/handoff_stay"]
    assert len(agents.tasks()) == tasks_before  # no chat was made
    assert stack.tracker(visitor.session_id or "")["slots"]["handoff_channel_sid"] is None

    start = len(visitor.messages)
    visitor.say("/handoff_stay")
    visitor.wait_for(event("stay"), "staying with the bot", start=start)
    start = len(visitor.messages)
    visitor.say("hello")
    visitor.wait_for(lambda m: not m.get("event") and bool(m.get("text")), "the bot answers", start=start)


# --- out of hours and leaving a message ----------------------------------------------------


@pytest.fixture(scope="module")
def closed_stack(desk: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A bot whose team is on holiday today (wherever "today" falls for the test run)."""
    today = datetime.now(UTC).date()
    holidays = ",".join(str(today + timedelta(days=d)) for d in (-1, 0, 1))
    s = start_stack(
        desk,
        handoff_model,
        tmp_path_factory.mktemp("routing-closed"),
        "conversations",
        HANDOFF_HOURS="mon-sun 00:00-24:00",
        HANDOFF_HOLIDAYS=holidays,
    )
    yield s
    s.stop()


def test_out_of_hours_the_visitor_leaves_a_message_flex_gets_with_the_context(closed_stack: Stack, agents: AgentDesk) -> None:
    visitor = Visitor(closed_stack.url)
    try:
        visitor.say("my parcel never arrived")
        visitor.wait_for(lambda m: bool(m.get("text")), "the bot's answer")
        visitor.say("/talk_to_agent")
        assert visitor.wait_for(event("unavailable"), "closed notice")["reason"] == "closed"
        offer = visitor.wait_for(event("offer"), "the offer")
        assert buttons(offer) == ["/handoff_leave_message", "/handoff_stay"]
        before = {t["sid"] for t in agents.tasks()}

        start = len(visitor.messages)
        visitor.say(buttons(offer)[0])
        visitor.wait_for(event("leave_message"), "asked for the message", start=start)
        visitor.say("Order 4711 never came. Please call me on +1 555 0100.")
        visitor.wait_for(event("message_left"), "message passed on", start=start)
        assert visitor.off_contract == []
    finally:
        visitor.close()

    [left] = [t for t in message_tasks(agents) if t["sid"] not in before]
    assert left["attributes"]["message"] == "Order 4711 never came. Please call me on +1 555 0100."
    transcript = [line["text"] for line in left["attributes"]["context"]["transcript"]]
    assert "my parcel never arrived" in transcript  # the agent reads what the visitor told the bot
    assert [t for t in agents.tasks() if t["sid"] not in before and t.get("kind", "chat") == "chat"] == []
    agents.accept(left["sid"], "alice")
    assert agents.complete(left["sid"], "alice")["assignment_status"] == "completed"
    slots = closed_stack.tracker(visitor.session_id or "")["slots"]
    assert slots["handoff_status"] is None


def test_over_rest_the_offer_comes_with_rests_buttons_and_a_message_can_be_left(closed_stack: Stack, agents: AgentDesk) -> None:
    sender = "rest-closed-visitor"
    answered = closed_stack.rest(sender, "/talk_to_agent")
    [offer] = [m for m in answered if m.get("event") == "offer"]
    assert [b["payload"] for b in offer["wire"]["buttons"]] == ["/handoff_leave_message", "/handoff_stay"]
    before = {t["sid"] for t in message_tasks(agents)}
    assert [m.get("event") for m in closed_stack.rest(sender, "/handoff_leave_message")] == ["leave_message"]
    assert [m.get("event") for m in closed_stack.rest(sender, "Please email me: ada@example.com")] == ["message_left"]
    [left] = [t for t in message_tasks(agents) if t["sid"] not in before]
    assert left["attributes"]["message"] == "Please email me: ada@example.com"


def test_in_rasa_shell_the_offer_is_text_with_buttons_and_a_message_can_be_left(closed_stack: Stack, agents: AgentDesk) -> None:
    said = stream(closed_stack, "shell-closed-visitor", "/talk_to_agent")
    offer = next(m for m in said if m.get("buttons"))
    assert [b["payload"] for b in offer["buttons"]] == ["/handoff_leave_message", "/handoff_stay"]
    assert any("opening hours" in (m.get("text") or "") for m in said)
    before = {t["sid"] for t in message_tasks(agents)}
    stream(closed_stack, "shell-closed-visitor", "/handoff_leave_message")
    said = stream(closed_stack, "shell-closed-visitor", "Call me back on +1 555 0199 please")
    assert any("with our team" in (m.get("text") or "") for m in said)
    [left] = [t for t in message_tasks(agents) if t["sid"] not in before]
    assert left["attributes"]["message"] == "Call me back on +1 555 0199 please"


# --- nobody accepts in time ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["conversations", "interactions"])
def impatient_stack(
    request: pytest.FixtureRequest, desk: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A bot whose visitors wait at most 3 seconds (interactions mode also passes it to Flex as the task's timeout)."""
    s = start_stack(
        desk, handoff_model, tmp_path_factory.mktemp(f"routing-impatient-{request.param}"), request.param,
        HANDOFF_ACCEPT_TIMEOUT="3",
    )  # fmt: skip
    yield s
    s.stop()


def test_when_nobody_accepts_in_time_the_chat_closes_and_the_visitor_gets_the_offer(
    impatient_stack: Stack, agents: AgentDesk
) -> None:
    visitor = Visitor(impatient_stack.url)
    try:
        task = handed_off(impatient_stack, visitor)
        told = visitor.wait_for(event("not_accepted"), "nobody accepted", timeout=20)
        offer = visitor.wait_for(event("offer"), "the offer", start=visitor.messages.index(told))
        assert buttons(offer) == ["/handoff_leave_message", "/handoff_stay"]
        assert visitor.off_contract == []
    finally:
        visitor.close()
    ended = wait_for(
        lambda: next((t for t in agents.tasks() if t["sid"] == task["sid"] and t["status"] == "ended"), None),
        10,
        "the task ended",
    )
    assert ended["assignment_status"] == "canceled"
    conversation = impatient_stack.sandbox.server.client.conversations.v1.conversations(task["channel_sid"]).fetch()
    assert conversation.state == "closed"
    slots = impatient_stack.tracker(visitor.session_id or "")["slots"]
    assert slots["handoff_status"] is None and slots["handoff_channel_sid"] is None


def test_in_rasa_shell_the_visitor_hears_their_place_and_that_nobody_came(impatient_stack: Stack, agents: AgentDesk) -> None:
    sender = f"shell-impatient-{impatient_stack.mode}"
    said = stream(impatient_stack, sender, "/talk_to_agent")
    assert any("in line" in (m.get("text") or "") for m in said)  # the place in line, on the shell's own turn
    channel_sid = impatient_stack.tracker(sender)["slots"]["handoff_channel_sid"]

    def nobody_came() -> List[Dict[str, Any]]:
        turn = stream(impatient_stack, sender, "anyone there?")  # each turn waits HANDOFF_SHELL_WAIT for a reply
        return turn if any("none of our agents" in (m.get("text") or "") for m in turn) else []

    said = wait_for(nobody_came, 30, "told nobody accepted")
    assert [m for m in said if m.get("buttons")], said  # the offer follows
    task = wait_for(lambda: impatient_stack.sandbox.task_for(channel_sid), 10, "the chat's task")
    assert task["status"] == "ended"
    assert impatient_stack.tracker(sender)["slots"]["handoff_status"] is None
