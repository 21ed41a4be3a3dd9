"""TaskRouter as the handoff reads and feeds it: lookups, free agents, a waiting visitor's place and ETA, messages left.

Against a real Flex sandbox process through the real `twilio` SDK; the arithmetic and the
matching are pure functions, tested on their own first.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pytest

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import wait_for
from northwind.servers import Sandbox, start_sandbox
from rasa_flex_handoff.flex import (
    ASSIGNED,
    GONE,
    WAITING,
    ConversationsChats,
    FlexChat,
    FlexError,
    FlexRouting,
    LegacyChats,
    Waiting,
    estimate_wait,
)
from rasa_flex_handoff.flex.taskrouter import choose, is_task_of, mean_acceptance, queue_position
from rasa_flex_handoff.settings import Settings, settings_from_env

# -- pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "average", "available", "eta"),
    [
        (1, 30, 1, 30),  # next in line, one agent free: the usual wait
        (3, 30, 1, 90),  # two chats ahead, one agent: three rounds
        (3, 30, 3, 30),  # as many agents as chats: all in the first round
        (4, 30, 3, 60),  # one more than the agents: a second round
        (2, 30, 0, 60),  # nobody free: one agent per round is assumed
        (1, 0.4, 1, 1),  # never promises "now"
        (2, 12.5, 1, 25),
    ],
)
def test_estimate_wait_is_average_acceptance_per_round_of_free_agents(
    position: int, average: float, available: int, eta: int
) -> None:
    assert estimate_wait(position, average, available) == eta


@pytest.mark.parametrize("average", [None, 0, 0.0, -5])
def test_no_estimate_without_history(average: Any) -> None:
    assert estimate_wait(1, average, 3) is None


def test_the_average_comes_from_either_statistic() -> None:
    assert mean_acceptance(42, {"avg": 7}) == 42
    assert mean_acceptance(0, {"avg": 7, "min": 1}) == 7
    assert mean_acceptance(None, None) is None
    assert mean_acceptance(0, {"avg": 0}) is None
    assert mean_acceptance(0, {"avg": "7"}) is None
    assert mean_acceptance(0, {"avg": 0}, accepted=3) == 1.0  # all taken within the first second: history all the same


def test_a_task_is_the_chats_by_its_flex_attributes() -> None:
    chat = FlexChat(mode="conversations", channel_sid="CH1", identity="visitor")
    assert is_task_of({"conversationSid": "CH1"}, chat)
    assert is_task_of({"channelSid": "CH1", "channelType": "web"}, chat)  # legacy Flex
    assert not is_task_of({"conversationSid": "CH2", "channelSid": None}, chat)
    assert not is_task_of({}, chat)
    assert not is_task_of({"conversationSid": ""}, dataclasses.replace(chat, channel_sid=""))


def test_queue_position_is_one_based_oldest_first() -> None:
    assert queue_position(["WT1", "WT2", "WT3"], "WT1") == 1
    assert queue_position(["WT1", "WT2", "WT3"], "WT3") == 3
    assert queue_position(["WT1", "WT2"], "WT9") == 3  # not listed yet: last in line
    assert queue_position([], "WT9") == 1


def test_choose_by_name_else_the_only_one() -> None:
    def item(sid: str, name: str) -> Any:
        return SimpleNamespace(sid=sid, friendly_name=name)

    assert choose([item("WQ1", "Sales"), item("WQ2", "Everyone")], "Everyone") == "WQ2"
    assert choose([item("WQ1", "Sales")], "Everyone") == "WQ1"
    assert choose([item("WQ1", "Sales"), item("WQ2", "Support")], "Everyone") is None
    assert choose([], "Everyone") is None


# -- against the sandbox ---------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh sandbox per test: no agent available, queue positions and acceptance history start from nothing."""
    server = start_sandbox(tmp_path, "flex-sandbox-routing", available=())
    try:
        yield server
    finally:
        server.process.stop()


def settings_of(sandbox: Sandbox, **changes: Any) -> Settings:
    return dataclasses.replace(sandbox.settings, twilio_timeout=2.0, twilio_retries=1, **changes)


def agent(sandbox: Sandbox, method: str, path: str, body: Any = None) -> Any:
    r = sandbox.agent(method, path, body)
    assert r.ok, r.text
    return r.json() if r.content else None


def go(sandbox: Sandbox, name: str, available: bool) -> None:
    agent(sandbox, "POST", "/agent/api/agents", {"agent": name, "available": available})


async def start_chat(chats: ConversationsChats, name: str) -> FlexChat:
    return await chats.start_chat(
        identity="",
        customer_name=name,
        pre_engagement_data={"question": f"{name} asks"},
        webhook_url=None,
        unique_name=f"handoff-{uuid.uuid4().hex}",
        opening_message=f"hello from {name}",
    )


def task_view(sandbox: Sandbox, chat: FlexChat) -> Dict[str, Any]:
    def look() -> Optional[Dict[str, Any]]:
        tasks = agent(sandbox, "GET", "/agent/api/tasks")["tasks"]
        return next((t for t in tasks if t["channel_sid"] == chat.channel_sid), None)

    found = wait_for(look, 10, f"the task of {chat.channel_sid}")
    assert isinstance(found, dict)
    return found


def fault(sandbox: Sandbox, **spec: Any) -> Dict[str, Any]:
    return agent(sandbox, "POST", "/sandbox/faults", spec)  # type: ignore[no-any-return]


async def test_workspace_workflow_and_queue_are_found_by_flex_names_once(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox))
    assert await routing.workspace() == sandbox.info["workspace_sid"]
    assert await routing.workflow() == sandbox.info["workflow_sid"]
    assert await routing.queue() == sandbox.info["task_queue_sid"]
    # Cached: with every TaskRouter list failing, the same instance still answers.
    fault(sandbox, path_regex=r"^/taskrouter/v1/Workspaces", method="GET", status=500, times=None)
    assert (await routing.workspace(), await routing.workflow(), await routing.queue()) == (
        sandbox.info["workspace_sid"],
        sandbox.info["workflow_sid"],
        sandbox.info["task_queue_sid"],
    )
    with pytest.raises(FlexError) as failed:
        await FlexRouting(client, settings_of(sandbox)).workspace()
    assert failed.value.reason.startswith("list TaskRouter workspaces")
    await client.http_client.close()


async def test_configured_sids_are_used_without_asking(sandbox: Sandbox) -> None:
    configured = {
        "flex_workspace_sid": "WS" + "1" * 32,
        "flex_workflow_sid": "WW" + "2" * 32,
        "flex_task_queue_sid": "WQ" + "3" * 32,
    }
    fault(sandbox, path_regex=r"^/taskrouter/", status=500, times=None)
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox, **configured))
    assert (await routing.workspace(), await routing.workflow(), await routing.queue()) == tuple(configured.values())
    await client.http_client.close()


class Listing:
    """The SDK's `list_async` over fixed resources, and `(sid)` for a workspace's sub-lists.

    The sandbox provisions Flex's names and cannot create or rename TaskRouter resources, so
    accounts without them are played by this stand-in: only the listing is faked, the choice
    and the error are the plugin's.
    """

    def __init__(self, *names: str, workflows: Sequence[str] = (), task_queues: Sequence[str] = ()) -> None:
        self.items = [SimpleNamespace(sid=f"XX{n}", friendly_name=name) for n, name in enumerate(names)]
        self.workflows = Listing(*workflows) if workflows else None
        self.task_queues = Listing(*task_queues) if task_queues else None

    async def list_async(self, **_: Any) -> List[Any]:
        return self.items

    def __call__(self, sid: str) -> Any:
        return SimpleNamespace(workflows=self.workflows or Listing(), task_queues=self.task_queues or Listing())


def routing_over(workspaces: Listing) -> FlexRouting:
    client = SimpleNamespace(taskrouter=SimpleNamespace(v1=SimpleNamespace(workspaces=workspaces)))
    settings = settings_from_env({**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com"})
    return FlexRouting(client, settings)  # type: ignore[arg-type]


async def test_nothing_to_find_is_a_flex_error_that_names_the_setting() -> None:
    with pytest.raises(FlexError) as failed:
        await routing_over(Listing("Sales", "Support")).workspace()
    assert failed.value.reason == "no TaskRouter workspace named 'Flex Task Assignment' and 2 others (set FLEX_WORKSPACE_SID)"
    with pytest.raises(FlexError) as failed:
        await routing_over(Listing()).workspace()
    assert "and 0 others (set FLEX_WORKSPACE_SID)" in failed.value.reason

    only = routing_over(Listing("My workspace", workflows=["Route A", "Route B"], task_queues=["Sales", "Support"]))
    assert await only.workspace() == "XX0"  # the only one, whatever its name
    with pytest.raises(FlexError) as failed:
        await only.workflow()
    assert failed.value.reason == "no TaskRouter workflow named 'Assign to Anyone' and 2 others in XX0 (set FLEX_WORKFLOW_SID)"
    with pytest.raises(FlexError) as failed:
        await only.queue()
    assert failed.value.reason == "no TaskRouter task queue named 'Everyone' and 2 others in XX0 (set FLEX_TASK_QUEUE_SID)"


async def test_a_configured_workspace_that_is_not_there_is_a_flex_error(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox, flex_workspace_sid="WS" + "9" * 32))
    with pytest.raises(FlexError) as failed:
        await routing.workflow()
    assert failed.value.reason.startswith("list TaskRouter workflows: Twilio answered 404")
    await client.http_client.close()


async def test_available_agents_counts_who_went_available(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox))
    assert await routing.available_agents() == 0
    go(sandbox, "alice", True)
    go(sandbox, "bob", True)
    assert await routing.available_agents() == 2
    go(sandbox, "bob", False)
    assert await routing.available_agents() == 1
    await client.http_client.close()


async def test_several_waiting_visitors_each_learn_their_place_and_wait(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    settings = settings_of(sandbox)
    routing = FlexRouting(client, settings)
    chats = ConversationsChats(client, settings)

    def now_reading() -> FlexRouting:
        """A fresh reader: one instance reads a queue at most once a second (QUEUE_VIEW_SECONDS), as a waiting room round does."""
        return FlexRouting(client, settings)

    first, second, third = [await start_chat(chats, name) for name in ("Ann", "Ben", "Cem")]
    places = [await routing.waiting(chat) for chat in (first, second, third)]
    assert [(p.state, p.position, p.eta_seconds) for p in places] == [(WAITING, 1, None), (WAITING, 2, None), (WAITING, 3, None)]
    assert places[0].task_sid == task_view(sandbox, first)["sid"]

    # History: the first chat is accepted after about two seconds; alice is then busy, nobody is free.
    time.sleep(2.1)
    go(sandbox, "alice", True)
    agent(sandbox, "POST", f"/agent/api/tasks/{task_view(sandbox, first)['sid']}/accept", {"agent": "alice"})
    go(sandbox, "alice", False)
    assert await now_reading().waiting(first) == Waiting(state=ASSIGNED, task_sid=places[0].task_sid)
    assert await now_reading().waiting(second) == Waiting(state=WAITING, position=1, eta_seconds=2, task_sid=places[1].task_sid)
    assert (await now_reading().waiting(third)).eta_seconds == 4  # two rounds of one agent
    go(sandbox, "bob", True)
    go(sandbox, "carol", True)
    assert (await now_reading().waiting(third)).eta_seconds == 2  # two agents free: both in the first round

    # The second visitor leaves while waiting: the task is canceled, the third moves up.
    await chats.close_chat(second)
    gone = await now_reading().waiting(second)
    assert gone.state == GONE and gone.position is None and gone.reason
    assert (await now_reading().waiting(third)).position == 1
    await client.http_client.close()


async def test_visitors_waiting_in_one_queue_share_one_read_of_it_per_round(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    settings = settings_of(sandbox)
    chats = ConversationsChats(client, settings)
    first, second = [await start_chat(chats, name) for name in ("Dee", "Eve")]
    routing = FlexRouting(client, settings)
    before = [await routing.waiting(chat) for chat in (first, second)]
    await chats.close_chat(first)
    # Within the round the queue's read stands (the second visitor is not told twice within a second)...
    assert (await routing.waiting(second)).position == before[1].position
    # ...and the next read sees the queue move.
    assert (await FlexRouting(client, settings).waiting(second)).position == before[1].position - 1
    await chats.close_chat(second)
    await client.http_client.close()


async def test_a_legacy_chat_is_found_by_its_channel_sid(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    settings = settings_of(sandbox, flex_mode="legacy")
    chats = LegacyChats(client, settings)
    conversation = await start_chat(ConversationsChats(client, settings), "Ann")
    chat = await chats.start_chat(
        identity="visitor_legacy",
        customer_name="Ben",
        pre_engagement_data={},
        webhook_url=None,
        unique_name=f"handoff-{uuid.uuid4().hex}",
        opening_message="hi",
    )
    routing = FlexRouting(client, settings)
    place = await routing.waiting(chat)
    assert place.state == WAITING and place.position == 2 and place.task_sid == task_view(sandbox, chat)["sid"]
    assert (await routing.waiting(conversation)).position == 1
    await client.http_client.close()


async def test_a_chat_whose_task_is_not_made_yet_waits_at_the_end(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    settings = settings_of(sandbox)
    chats = ConversationsChats(client, settings)
    await start_chat(chats, "Ann")
    stranger = FlexChat(mode="conversations", channel_sid="CH" + "0" * 32, identity="visitor")
    assert await FlexRouting(client, settings).waiting(stranger) == Waiting(state=WAITING, position=2, reason="no task yet")
    await client.http_client.close()


async def test_a_task_canceled_by_its_ttl_is_gone_with_twilios_reason(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    settings = settings_of(sandbox)
    workspace = sandbox.info["workspace_sid"]
    task = await client.taskrouter.v1.workspaces(workspace).tasks.create_async(
        workflow_sid=sandbox.info["workflow_sid"],
        task_channel="chat",
        attributes=json.dumps({"conversationSid": "CH" + "5" * 32}),
        timeout=1,
    )
    chat = FlexChat(mode="interactions", channel_sid="CH" + "5" * 32, identity="visitor", task_sid=task.sid)
    routing = FlexRouting(client, settings)
    assert (await routing.waiting(chat)).state == WAITING
    time.sleep(1.6)
    assert await routing.waiting(chat) == Waiting(state=GONE, reason="Task TTL Exceeded", task_sid=task.sid)
    # Found by its attributes too (no sid recorded), as for a Conversations chat.
    by_attributes = await routing.waiting(dataclasses.replace(chat, mode="conversations", task_sid=None))
    assert by_attributes.state == GONE and by_attributes.reason == "Task TTL Exceeded"
    await client.http_client.close()


def message_tasks(sandbox: Sandbox) -> List[Dict[str, Any]]:
    return [t for t in agent(sandbox, "GET", "/agent/api/tasks")["tasks"] if t.get("kind") == "message"]


async def test_leave_message_makes_a_task_an_agent_picks_up_later(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox))
    context = {"question": "Where is my order?", "slots": {"order": "A-17"}}
    sid = await routing.leave_message(name="Ann", message="Please call me back", context=context)
    task = await client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"]).tasks(sid).fetch_async()
    attributes = json.loads(task.attributes)
    assert {k: attributes[k] for k in ("type", "name", "message", "context", "channelType")} == {
        "type": "handoff_message",
        "name": "Ann",
        "message": "Please call me back",
        "context": context,
        "channelType": "web",
    }
    assert task.workflow_sid == sandbox.info["workflow_sid"] and task.task_channel_unique_name == "default"
    assert task.assignment_status == "pending" and task.timeout == 1_209_600
    assert [t["sid"] for t in message_tasks(sandbox)] == [sid]
    await client.http_client.close()


@pytest.mark.parametrize("when", ["after", "before"], ids=["made-then-500", "500-not-made"])
async def test_a_message_is_never_left_twice_after_an_ambiguous_failure(sandbox: Sandbox, when: str) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox))
    fault(sandbox, path_regex=r"^/taskrouter/v1/Workspaces/WS\w+/Tasks$", method="POST", status=500, when=when)
    sid = await routing.leave_message(name="Ann", message="Call me", context={})
    assert [t["sid"] for t in message_tasks(sandbox)] == [sid]
    await client.http_client.close()


async def test_a_message_with_a_given_ref_is_left_once_however_often_asked(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    routing = FlexRouting(client, settings_of(sandbox))
    first = await routing.leave_message(name="Ann", message="Call me", context={}, ref="sender-1:msg-1")
    again = await routing.leave_message(name="Ann", message="Call me", context={}, ref="sender-1:msg-1")
    other = await routing.leave_message(name="Ann", message="Call me", context={}, ref="sender-1:msg-2")
    assert first == again != other
    assert sorted(t["sid"] for t in message_tasks(sandbox)) == sorted([first, other])
    with pytest.raises(FlexError):
        await routing.leave_message(name="Ann", message="x", context={}, ref='" OR 1==1')
    await client.http_client.close()
