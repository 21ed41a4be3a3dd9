"""TaskRouter as the handoff uses it, in every Flex mode: agents free, a visitor's place in the queue, messages left.

Every Flex account routes its chats through a TaskRouter workspace, so this works the same for
legacy, Conversations and Interactions chats. The workspace, workflow and queue come from
FLEX_WORKSPACE_SID / FLEX_WORKFLOW_SID / FLEX_TASK_QUEUE_SID, else from the names a new Flex
account is provisioned with ("Flex Task Assignment", "Assign to Anyone", "Everyone"), else from
being the only one. Every request goes through `call()` (time limit, retries, `FlexError`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence

from twilio.rest import Client

from rasa_flex_handoff.flex.chats import FlexChat, FlexError, call
from rasa_flex_handoff.settings import LEGACY, Settings

# The names Twilio provisions a Flex account with.
FLEX_WORKSPACE = "Flex Task Assignment"
FLEX_WORKFLOW = "Assign to Anyone"
FLEX_QUEUE = "Everyone"

# Waiting.state
WAITING = "waiting"  # the task waits for an agent (pending, or offered to one: reserved)
ASSIGNED = "assigned"  # an agent took it (assigned, wrapping or completed)
GONE = "gone"  # canceled (customer left, TTL) or deleted: no agent will take it

QUEUED_STATUSES = ("pending", "reserved")
TAKEN_STATUSES = ("assigned", "wrapping", "completed")

# The Flex task attributes that name the chat a task is for: a conversation's, or (legacy) a Programmable Chat channel's.
CONVERSATION_ATTRIBUTE = "conversationSid"
CHANNEL_ATTRIBUTE = "channelSid"
CHAT_ATTRIBUTES = (CONVERSATION_ATTRIBUTE, CHANNEL_ATTRIBUTE)
# The task attribute that finds a task the plugin made again after an ambiguous failure.
REF_ATTRIBUTE = "handoff_ref"
MESSAGE_TYPE = "handoff_message"
# A message left out of hours must outlive a long weekend: TaskRouter's maximum TTL, two weeks.
MESSAGE_TIMEOUT = 1_209_600
# How far back the acceptance average looks (TaskRouter's default is the last 15 minutes).
HISTORY_MINUTES = 8 * 60
# Tasks listed at most to find a position or a task by its attributes.
LIST_LIMIT = 200

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Waiting:
    """Where a visitor's chat stands with the agents: what the waiting visitor is told.

    `position` is 1-based among the queue's pending and reserved tasks, oldest first, and
    `eta_seconds` a rough estimate (None without acceptance history); both only while waiting.
    `reason` says why: TaskRouter's cancel reason ("Task TTL Exceeded") or "no task yet".
    """

    state: str
    position: Optional[int] = None
    eta_seconds: Optional[int] = None
    reason: Optional[str] = None
    task_sid: Optional[str] = None


# How long a read of a queue (its waiting tasks and statistics) serves every visitor waiting in it.
QUEUE_VIEW_SECONDS = 1.0


@dataclass(frozen=True)
class QueueView:
    """A queue as read at `read_at` (monotonic): its waiting task sids oldest first, free agents, average acceptance."""

    queued: List[str]
    available: int
    average: Optional[float]
    read_at: float

    def waiting(self, position: int, *, reason: Optional[str] = None, task_sid: Optional[str] = None) -> Waiting:
        """Waiting at `position` in this queue, with the ETA its free agents and acceptance history give."""
        eta = estimate_wait(position, self.average, self.available)
        return Waiting(state=WAITING, position=position, eta_seconds=eta, reason=reason, task_sid=task_sid)


def estimate_wait(position: int, average_acceptance: Optional[float], available: int) -> Optional[int]:
    """Seconds until an agent accepts the chat at `position`: one average acceptance per round of free agents.

    With `available` agents free, the first `available` chats are each accepted in about the
    average time, the next ones after another average, and so on; with none free, one agent is
    assumed to come back per round (someone always does). None when the queue has no history
    (no average, or zero), since any number would be invented.
    """
    if average_acceptance is None or average_acceptance <= 0:
        return None
    rounds = math.ceil(max(1, position) / max(1, available))
    return max(1, round(rounds * average_acceptance))


def mean_acceptance(
    avg_task_acceptance_time: Optional[float], wait_duration_until_accepted: Any, accepted: Optional[int] = 0
) -> Optional[float]:
    """The queue's average seconds from task creation to acceptance, from its cumulative statistics; None without history.

    TaskRouter counts whole seconds: a queue whose `accepted` tasks were all taken within the first
    second averages 0, which is history (about a second), not the lack of it.
    """
    if avg_task_acceptance_time:
        return float(avg_task_acceptance_time)
    if isinstance(wait_duration_until_accepted, Mapping):
        value = wait_duration_until_accepted.get("avg")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return 1.0 if accepted else None


def task_attributes(raw: Optional[str]) -> Dict[str, Any]:
    """A task's JSON attributes as a dict ({} when they are not a JSON object)."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_task_of(attributes: Mapping[str, Any], chat: FlexChat) -> bool:
    """Whether a task's attributes name this chat, as Flex writes them (conversationSid, or channelSid for legacy chats)."""
    return bool(chat.channel_sid) and any(attributes.get(name) == chat.channel_sid for name in CHAT_ATTRIBUTES)


def queue_position(queued: Sequence[str], task_sid: str) -> int:
    """1-based place of `task_sid` among the queue's task sids, oldest first; last in line when not (yet) listed."""
    return queued.index(task_sid) + 1 if task_sid in queued else len(queued) + 1


def choose(found: Sequence[Any], name: str) -> Optional[str]:
    """The sid of the resource called `name`, else of the only one; None when neither tells which."""
    named = [item for item in found if item.friendly_name == name]
    if named:
        return str(named[0].sid)
    return str(found[0].sid) if len(found) == 1 else None


def _expression(name: str, value: str) -> str:
    """A TaskRouter `name == "value"` expression, for values we made or that look like a sid (nothing to escape)."""
    if not _SAFE_VALUE.match(value):
        raise FlexError(f"cannot look tasks up by {name}: unexpected characters in the value")
    return f'{name} == "{value}"'


class FlexRouting:
    """The account's TaskRouter workspace, workflow and queue, as the handoff reads and feeds them.

    Found once per instance (configured, else looked up) and cached, so one instance per action
    run or per connector keeps the lookups to one each.
    """

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._workspace: Optional[str] = settings.flex_workspace_sid
        self._workflow: Optional[str] = settings.flex_workflow_sid
        self._queue: Optional[str] = settings.flex_task_queue_sid
        self._views: Dict[str, QueueView] = {}

    def _ws(self, sid: str) -> Any:
        """The SDK's handle on the workspace (no request yet)."""
        return self.client.taskrouter.v1.workspaces(sid)

    async def _found(
        self, what: str, name: str, setting: str, listing: Callable[[], Awaitable[List[Any]]], within: Optional[str] = None
    ) -> str:
        """The sid of the `what` called `name` (Flex's default), else of the only one; a FlexError naming `setting` if neither."""
        found = await call(f"list TaskRouter {what}s", listing, self.settings)
        sid = choose(found, name)
        if sid is None:
            where = f" in {within}" if within else ""
            raise FlexError(f"no TaskRouter {what} named {name!r} and {len(found)} others{where} (set {setting})")
        return sid

    async def workspace(self) -> str:
        """FLEX_WORKSPACE_SID, else the workspace named "Flex Task Assignment", else the only one."""
        if self._workspace is None:
            listing = self.client.taskrouter.v1.workspaces.list_async
            self._workspace = await self._found("workspace", FLEX_WORKSPACE, "FLEX_WORKSPACE_SID", lambda: listing(limit=50))
        return self._workspace

    async def workflow(self) -> str:
        """FLEX_WORKFLOW_SID, else the workspace's workflow named "Assign to Anyone", else its only one."""
        if self._workflow is None:
            ws = await self.workspace()
            listing = self._ws(ws).workflows.list_async
            self._workflow = await self._found("workflow", FLEX_WORKFLOW, "FLEX_WORKFLOW_SID", lambda: listing(limit=50), ws)
        return self._workflow

    async def queue(self) -> str:
        """FLEX_TASK_QUEUE_SID, else the workspace's task queue named "Everyone", else its only one."""
        if self._queue is None:
            ws = await self.workspace()
            listing = self._ws(ws).task_queues.list_async
            self._queue = await self._found("task queue", FLEX_QUEUE, "FLEX_TASK_QUEUE_SID", lambda: listing(limit=50), ws)
        return self._queue

    async def available_agents(self, queue_sid: Optional[str] = None) -> int:
        """How many agents of the queue (FLEX_TASK_QUEUE_SID or found) are available now."""
        ws = await self.workspace()
        queue = queue_sid or await self.queue()
        stats = await call(
            "fetch queue real-time statistics",
            lambda: self._ws(ws).task_queues(queue).real_time_statistics().fetch_async(),
            self.settings,
        )
        return int(stats.total_available_workers or 0)

    async def average_acceptance(self, queue_sid: Optional[str] = None) -> Optional[float]:
        """The queue's average seconds until a task is accepted, over the last hours; None without history."""
        ws = await self.workspace()
        queue = queue_sid or await self.queue()
        stats = await call(
            "fetch queue cumulative statistics",
            lambda: self._ws(ws).task_queues(queue).cumulative_statistics().fetch_async(minutes=HISTORY_MINUTES),
            self.settings,
        )
        return mean_acceptance(stats.avg_task_acceptance_time, stats.wait_duration_until_accepted, stats.reservations_accepted)

    async def waiting(self, chat: FlexChat) -> Waiting:
        """Where the chat's task stands: waiting (with position and ETA), assigned, or gone.

        The task is the one recorded on the chat (interactions mode), else the newest whose
        attributes name the chat. No task at all reads as waiting at the end of the queue: Flex
        makes a Conversations chat's task when its first message reaches the Studio flow, a
        moment after the chat exists (the caller's accept timeout bounds a task that never comes).
        """
        task = await self._task_of(chat)
        if task is None and chat.task_sid:
            return Waiting(state=GONE, reason="task deleted", task_sid=chat.task_sid)
        if task is None:
            view = await self._view(await self.queue())
            return view.waiting(len(view.queued) + 1, reason="no task yet")
        if task.assignment_status in QUEUED_STATUSES:
            view = await self._view(task.task_queue_sid or await self.queue())
            return view.waiting(queue_position(view.queued, task.sid), task_sid=task.sid)
        if task.assignment_status in TAKEN_STATUSES:
            return Waiting(state=ASSIGNED, task_sid=task.sid)
        return Waiting(state=GONE, reason=task.reason or task.assignment_status, task_sid=task.sid)

    async def _view(self, queue: str) -> QueueView:
        """The queue as every waiting visitor reads it: read from TaskRouter at most once per QUEUE_VIEW_SECONDS.

        The waiting room looks at each waiting visitor in turn; they share their queue's task list
        and statistics, so a round costs one task lookup per visitor plus three calls, not four each.
        """
        cached = self._views.get(queue)
        if cached is not None and time.monotonic() - cached.read_at < QUEUE_VIEW_SECONDS:
            return cached
        queued, available, average = await asyncio.gather(
            self._queued(queue), self.available_agents(queue), self.average_acceptance(queue)
        )
        view = QueueView(queued=queued, available=available, average=average, read_at=time.monotonic())
        self._views[queue] = view
        return view

    async def _queued(self, queue: str) -> List[str]:
        """The sids of the queue's pending and reserved tasks, oldest first."""
        ws = await self.workspace()
        tasks = await call(
            "list queued tasks",
            lambda: self._ws(ws).tasks.list_async(
                assignment_status=list(QUEUED_STATUSES),
                task_queue_sid=queue,
                ordering="DateCreated:asc",
                limit=LIST_LIMIT,
                page_size=LIST_LIMIT,
            ),
            self.settings,
        )
        return [str(t.sid) for t in tasks]

    async def _task_of(self, chat: FlexChat) -> Any:
        """The chat's task (SDK instance): by its recorded sid, else the newest naming the chat; None when none does."""
        ws = await self.workspace()
        if chat.task_sid:
            try:
                return await call("fetch task", lambda: self._ws(ws).tasks(chat.task_sid).fetch_async(), self.settings)
            except FlexError as e:
                if e.status == 404:
                    return None
                raise
        name = CHANNEL_ATTRIBUTE if chat.mode == LEGACY else CONVERSATION_ATTRIBUTE
        found = await self._tasks_where(_expression(name, chat.channel_sid))
        return next((t for t in found if is_task_of(task_attributes(t.attributes), chat)), None)

    async def _tasks_where(self, expression: str) -> List[Any]:
        """The workspace's tasks whose attributes match a TaskRouter expression, newest first."""
        ws = await self.workspace()
        return list(
            await call(
                "find tasks by attributes",
                lambda: self._ws(ws).tasks.list_async(
                    evaluate_task_attributes=expression, ordering="DateCreated:desc", limit=LIST_LIMIT, page_size=LIST_LIMIT
                ),
                self.settings,
            )
        )

    async def annotate_task(self, chat: FlexChat, key: str, value: Any) -> bool:
        """Set `key` in the attributes of the chat's task, keeping the rest; False when the chat has no task."""
        task = await self._task_of(chat)
        if task is None:
            return False
        merged = {**task_attributes(task.attributes), key: value}
        ws = await self.workspace()
        await call(
            "update task attributes",
            lambda: self._ws(ws).tasks(task.sid).update_async(attributes=json.dumps(merged)),
            self.settings,
        )
        return True

    async def task_by_ref(self, ref: str) -> Any:
        """The task whose `handoff_ref` attribute is `ref` (SDK instance), None when there is none."""
        found = await self._tasks_where(_expression(REF_ATTRIBUTE, ref))
        return next((t for t in found if task_attributes(t.attributes).get(REF_ATTRIBUTE) == ref), None)

    async def leave_message(self, *, name: str, message: str, context: Mapping[str, Any], ref: Optional[str] = None) -> str:
        """Leave the visitor's message for an agent as a task on the workflow; returns the task sid. Never makes two.

        An agent picks it up whenever one is free (the task lives two weeks). The task carries
        its own `handoff_ref` (give a stable `ref` when the caller may itself run twice: a task
        with it already is the result), so a request that failed ambiguously is looked up
        before it is sent again.
        """
        if ref is not None and not _SAFE_VALUE.match(ref):
            raise FlexError("leave a message: the ref may hold only letters, digits and _.:- (at most 128)")
        given = ref is not None
        ref = ref or f"message-{uuid.uuid4().hex}"
        ws = await self.workspace()
        workflow = await self.workflow()
        attributes = json.dumps(
            {
                "type": MESSAGE_TYPE,
                "name": name,
                "message": message,
                "context": dict(context),
                "channelType": "web",
                REF_ATTRIBUTE: ref,
            }
        )

        async def landed() -> Optional[str]:
            task = await self.task_by_ref(ref)
            return str(task.sid) if task is not None else None

        earlier = await landed() if given else None
        if earlier is not None:
            return earlier
        return await call(
            "leave a message",
            lambda: self._created_task_sid(ws, workflow, attributes),
            self.settings,
            creates=True,
            landed=landed,
        )

    async def _created_task_sid(self, ws: str, workflow: str, attributes: str) -> str:
        task = await self._ws(ws).tasks.create_async(
            workflow_sid=workflow, task_channel="default", attributes=attributes, timeout=MESSAGE_TIMEOUT
        )
        return str(task.sid)
