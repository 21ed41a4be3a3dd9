"""TaskRouter v1 as Flex uses it: one workspace per account, workers with activities, a queue, a workflow and tasks.

Every chat the sandbox receives becomes a task here, so the numbers a client reads (queue position, available
workers, average acceptance time) come from what really happened: tasks entering, agents accepting, customers
leaving, time-to-live running out. No module here touches chats; `tasks.py` joins agents to chats and calls in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from flex_sandbox.store import Doc, public
from flex_sandbox.wire import TwilioError, invalid, new_sid, not_found, now_iso, twilio_url

if TYPE_CHECKING:  # account.py imports this module to provision and to close tasks
    from flex_sandbox.account import Account

log = logging.getLogger(__name__)

WORKSPACE_NAME = "Flex Task Assignment"
QUEUE_NAME = "Everyone"
WORKFLOW_NAME = "Assign to Anyone"
ACTIVITIES = (("Offline", False), ("Available", True), ("Unavailable", False), ("Break", False))
TASK_CHANNELS = (("default", "Default"), ("chat", "Programmable Chat"), ("voice", "Voice"))
DEFAULT_TIMEOUT = 86400  # Twilio's default task TTL: 24 hours
MAX_TIMEOUT = 1209600  # "Can be up to a maximum of 2 weeks"
MAX_PRIORITY = 2**31 - 1
RESERVATION_TIMEOUT = 120
TTL_REASON = "Task TTL Exceeded"

WAITING = ("pending", "reserved")
LIVE = ("pending", "reserved", "assigned", "wrapping")
FINAL = ("canceled", "completed")
STATUSES = ("pending", "reserved", "assigned", "canceled", "completed", "wrapping")

# Resource kinds in the store (one workspace per account; its children have it as parent).
WORKSPACE, ACTIVITY, TASK_CHANNEL, QUEUE, WORKFLOW, WORKER = (
    "tr_workspace",
    "tr_activity",
    "tr_task_channel",
    "tr_task_queue",
    "tr_workflow",
    "tr_worker",
)
TASK, RESERVATION, EVENT = "task", "tr_reservation", "tr_event"


def default_timeout() -> int:
    """The workflow's task TTL; FLEX_SANDBOX_TASK_TIMEOUT shortens it for demos and tests."""
    value = os.environ.get("FLEX_SANDBOX_TASK_TIMEOUT")
    try:
        return max(1, int(value)) if value else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def epoch_of(iso: Optional[str]) -> float:
    """Seconds since the epoch of one of our ISO dates (0 when absent)."""
    if not iso:
        return 0.0
    try:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def iso_of(epoch: float) -> str:
    """An epoch as these APIs print dates."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def attributes_of(task: Doc) -> Dict[str, Any]:
    """A task's attributes as an object (anything else reads as empty)."""
    try:
        value = json.loads(task.get("attributes") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- provisioning -----------------------------------------------------------------
def provision(account: Account) -> None:
    """Give the account what every Flex account has in TaskRouter (once; an older state file gets it on next start)."""
    if account.store.meta("tr_workspace_sid"):
        return
    now = now_iso()
    base = {"account_sid": account.sid, "date_created": now, "date_updated": now}
    ws = new_sid("WS")
    with account.store.transaction():
        activities = {}
        for name, available in ACTIVITIES:
            sid = new_sid("WA")
            activities[name] = sid
            account.store.insert(
                ACTIVITY, {**base, "sid": sid, "workspace_sid": ws, "friendly_name": name, "available": available}, parent=ws
            )
        account.store.insert(
            WORKSPACE,
            {
                **base,
                "sid": ws,
                "friendly_name": WORKSPACE_NAME,
                "default_activity_name": "Offline",
                "default_activity_sid": activities["Offline"],
                "timeout_activity_name": "Offline",
                "timeout_activity_sid": activities["Offline"],
                "event_callback_url": None,
                "events_filter": None,
                "multi_task_enabled": True,
                "prioritize_queue_order": "FIFO",
            },
        )
        for unique_name, friendly_name in TASK_CHANNELS:
            account.store.insert(
                TASK_CHANNEL,
                {
                    **base,
                    "sid": new_sid("TC"),
                    "workspace_sid": ws,
                    "unique_name": unique_name,
                    "friendly_name": friendly_name,
                    "channel_optimized_routing": False,
                },
                parent=ws,
            )
        queue = new_sid("WQ")
        account.store.insert(
            QUEUE,
            {
                **base,
                "sid": queue,
                "workspace_sid": ws,
                "friendly_name": QUEUE_NAME,
                "target_workers": "1==1",
                "max_reserved_workers": 1,
                "task_order": "FIFO",
                # chat agents stay Available while they handle chats (multitasking), so reservations keep it
                "reservation_activity_sid": activities["Available"],
                "reservation_activity_name": "Available",
                "assignment_activity_sid": activities["Available"],
                "assignment_activity_name": "Available",
            },
            parent=ws,
        )
        workflow = new_sid("WW")
        config = {
            "task_routing": {
                "filters": [{"filter_friendly_name": QUEUE_NAME, "expression": "1==1", "targets": [{"queue": queue}]}],
                "default_filter": {"queue": queue},
            }
        }
        account.store.insert(
            WORKFLOW,
            {
                **base,
                "sid": workflow,
                "workspace_sid": ws,
                "friendly_name": WORKFLOW_NAME,
                "configuration": json.dumps(config),
                "document_content_type": "application/json",
                "assignment_callback_url": None,
                "fallback_assignment_callback_url": None,
                "task_reservation_timeout": RESERVATION_TIMEOUT,
            },
            parent=ws,
        )
        account.store.set_meta("tr_workspace_sid", ws)
        account.store.set_meta("tr_workflow_sid", workflow)
        account.store.set_meta("tr_task_queue_sid", queue)
    log.info("provisioned TaskRouter workspace %s for %s", ws, account.sid)


def upgrade_tasks(account: Account) -> None:
    """Turn agent tasks a sandbox stored before TaskRouter existed into TaskRouter tasks (idempotent)."""
    every, _ = account.store.list(TASK)
    old = [t for t in every if "assignment_status" not in t]
    if not old:
        return
    status_map = {"pending": "pending", "accepted": "assigned", "ended": "completed"}
    with account.store.transaction():
        for t in old:
            created = t.get("date_created") or now_iso()
            chat = {
                "channel_sid": t.get("channel_sid"),
                "mode": t.get("mode") or "conversations",
                "service_sid": t.get("service_sid"),
                "visitor_identity": t.get("visitor_identity"),
                "customer_friendly_name": t.get("customer_friendly_name"),
                "chat_friendly_name": t.get("chat_friendly_name"),
                "pre_engagement_data": t.get("pre_engagement_data"),
            }
            attributes = {"channelSid": chat["channel_sid"], "channelType": "web", "name": chat["customer_friendly_name"]}
            status = status_map.get(str(t.get("status")), "pending")
            if status == "completed" and not t.get("agent"):
                status = "canceled"
            doc = _new_task_doc(
                account, attributes=json.dumps(attributes), queue=_queue_doc(account), workflow=_workflow_doc(account)
            )
            doc.update(
                sid=t["sid"],
                assignment_status=status,
                date_created=created,
                date_updated=t.get("date_updated") or created,
                task_queue_entered_date=created,
                virtual_start_time=created,
                reason=None if status in LIVE else "Upgraded from an older sandbox",
                _created=epoch_of(created),
                _agent=t.get("agent"),
                _ended_by=t.get("ended_by"),
                **{"_" + k: v for k, v in chat.items()},
            )
            account.store.replace(TASK, doc)
    log.info("upgraded %d tasks from an older state file to TaskRouter tasks", len(old))


# -- rendering --------------------------------------------------------------------
def ws_url(workspace_sid: str, path: str = "") -> str:
    return twilio_url("taskrouter", f"/v1/Workspaces/{workspace_sid}{path}")


def render_workspace(doc: Doc) -> Doc:
    url = ws_url(doc["sid"])
    links = {
        name: f"{url}/{path}"
        for name, path in (
            ("activities", "Activities"),
            ("statistics", "Statistics"),
            ("real_time_statistics", "RealTimeStatistics"),
            ("cumulative_statistics", "CumulativeStatistics"),
            ("task_queues", "TaskQueues"),
            ("tasks", "Tasks"),
            ("workers", "Workers"),
            ("workflows", "Workflows"),
            ("task_channels", "TaskChannels"),
            ("events", "Events"),
        )
    }
    return {**public(doc), "url": url, "links": links}


def render_activity(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    return {**public(doc), "url": ws_url(ws, f"/Activities/{doc['sid']}"), "links": {"workspace": ws_url(ws)}}


def render_task_channel(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    return {**public(doc), "url": ws_url(ws, f"/TaskChannels/{doc['sid']}"), "links": {"workspace": ws_url(ws)}}


def render_queue(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    url = ws_url(ws, f"/TaskQueues/{doc['sid']}")
    links = {
        "workspace": ws_url(ws),
        "statistics": f"{url}/Statistics",
        "real_time_statistics": f"{url}/RealTimeStatistics",
        "cumulative_statistics": f"{url}/CumulativeStatistics",
        "list_statistics": ws_url(ws, "/TaskQueues/Statistics"),
        "bulk_real_time_statistics": ws_url(ws, "/TaskQueues/RealTimeStatistics"),
    }
    if doc.get("assignment_activity_sid"):
        links["assignment_activity"] = ws_url(ws, f"/Activities/{doc['assignment_activity_sid']}")
    if doc.get("reservation_activity_sid"):
        links["reservation_activity"] = ws_url(ws, f"/Activities/{doc['reservation_activity_sid']}")
    return {**public(doc), "url": url, "links": links}


def render_workflow(doc: Doc) -> Doc:
    url = ws_url(doc["workspace_sid"], f"/Workflows/{doc['sid']}")
    links = {
        "statistics": f"{url}/Statistics",
        "real_time_statistics": f"{url}/RealTimeStatistics",
        "cumulative_statistics": f"{url}/CumulativeStatistics",
    }
    return {**public(doc), "url": url, "links": links}


def render_worker(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    url = ws_url(ws, f"/Workers/{doc['sid']}")
    links = {
        "channels": f"{url}/Channels",
        "activity": ws_url(ws, f"/Activities/{doc['activity_sid']}"),
        "workspace": ws_url(ws),
        "statistics": ws_url(ws, "/Workers/Statistics"),
        "real_time_statistics": ws_url(ws, "/Workers/RealTimeStatistics"),
        "cumulative_statistics": ws_url(ws, "/Workers/CumulativeStatistics"),
        "worker_statistics": f"{url}/Statistics",
        "worker_channels": f"{url}/Channels",
        "reservations": f"{url}/Reservations",
    }
    return {**public(doc), "url": url, "links": links}


def render_task(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    url = ws_url(ws, f"/Tasks/{doc['sid']}")
    links = {
        "task_queue": ws_url(ws, f"/TaskQueues/{doc['task_queue_sid']}"),
        "workflow": ws_url(ws, f"/Workflows/{doc['workflow_sid']}"),
        "workspace": ws_url(ws),
        "reservations": f"{url}/Reservations",
    }
    return {**public(doc), "age": age_of(doc), "url": url, "links": links}


def render_reservation(doc: Doc) -> Doc:
    ws = doc["workspace_sid"]
    links = {
        "task": ws_url(ws, f"/Tasks/{doc['task_sid']}"),
        "worker": ws_url(ws, f"/Workers/{doc['worker_sid']}"),
        "workspace": ws_url(ws),
    }
    return {**public(doc), "url": ws_url(ws, f"/Tasks/{doc['task_sid']}/Reservations/{doc['sid']}"), "links": links}


def age_of(task: Doc) -> int:
    """Seconds since the task was created."""
    return max(0, int(time.time() - (task.get("_created") or epoch_of(task.get("date_created")))))


# -- lookups ----------------------------------------------------------------------
def workspace(account: Account, sid: str) -> Doc:
    found = account.store.get(WORKSPACE, sid)
    if found is None:
        raise not_found("The requested resource /Workspaces/", sid)
    return found


def child(account: Account, kind: str, workspace_sid: str, sid: str, label: str) -> Doc:
    """A resource of the workspace, or Twilio's 404."""
    workspace(account, workspace_sid)
    found = account.store.get(kind, sid)
    if found is None or found.get("workspace_sid") != workspace_sid:
        raise not_found(f"The requested resource /Workspaces/{workspace_sid}/{label}/", sid)
    return found


def children(account: Account, kind: str, workspace_sid: str) -> List[Doc]:
    """Every resource of a kind in the workspace, in creation order."""
    docs, _ = account.store.list(kind, where={"workspace_sid": workspace_sid})
    return docs


def _queue_doc(account: Account) -> Doc:
    doc = account.store.get(QUEUE, account.store.meta("tr_task_queue_sid") or "")
    assert doc is not None, "provision() runs first"
    return doc


def _workflow_doc(account: Account) -> Doc:
    doc = account.store.get(WORKFLOW, account.store.meta("tr_workflow_sid") or "")
    assert doc is not None, "provision() runs first"
    return doc


def activity_named(account: Account, workspace_sid: str, name: str) -> Doc:
    for doc in children(account, ACTIVITY, workspace_sid):
        if doc["friendly_name"].lower() == name.lower():
            return doc
    raise not_found(f"The requested resource /Workspaces/{workspace_sid}/Activities/", name)


def task_channel(account: Account, workspace_sid: str, sid_or_name: str) -> Doc:
    for doc in children(account, TASK_CHANNEL, workspace_sid):
        if sid_or_name in (doc["sid"], doc["unique_name"]):
            return doc
    raise invalid(f"TaskChannel {sid_or_name!r} does not exist in this workspace")


def worker_named(account: Account, workspace_sid: str, name: str) -> Optional[Doc]:
    """A worker by friendly name (case-insensitive, like Twilio's uniqueness)."""
    for doc in children(account, WORKER, workspace_sid):
        if doc["friendly_name"].lower() == name.lower():
            return doc
    return None


def tasks_of(account: Account, workspace_sid: Optional[str] = None) -> List[Doc]:
    """Every task in creation order."""
    docs, _ = account.store.list(TASK, where={"workspace_sid": workspace_sid} if workspace_sid else None)
    return docs


def tasks_for_chat(account: Account, channel_sid: str) -> List[Doc]:
    """A chat's tasks, newest first (a transfer makes a new one)."""
    docs, _ = account.store.list(TASK, descending=True, where={"_channel_sid": channel_sid})
    return docs


def current_task(account: Account, channel_sid: str) -> Optional[Doc]:
    """The chat's live task, else its newest one."""
    docs = tasks_for_chat(account, channel_sid)
    return next((t for t in docs if t["assignment_status"] in LIVE), docs[0] if docs else None)


# -- events (the history statistics are computed from) -------------------------------
def record(account: Account, task: Doc, event_type: str, **extra: Any) -> None:
    """Remember something that happened to a task, with when."""
    account.store.insert(
        EVENT,
        {
            "sid": new_sid("EV"),
            "workspace_sid": task["workspace_sid"],
            "event_type": event_type,
            "task_sid": task["sid"],
            "task_queue_sid": task["task_queue_sid"],
            "task_channel_unique_name": task["task_channel_unique_name"],
            "epoch": time.time(),
            **extra,
        },
        parent=task["workspace_sid"],
    )


# -- workers ----------------------------------------------------------------------
def create_worker(
    account: Account, workspace_sid: str, friendly_name: str, activity_sid: Optional[str] = None, attributes: str = "{}"
) -> Doc:
    """A new worker in the workspace's default activity (Offline) unless another is given."""
    ws = workspace(account, workspace_sid)
    if worker_named(account, workspace_sid, friendly_name) is not None:
        raise TwilioError(409, 20001, f"Worker with FriendlyName {friendly_name!r} already exists in this workspace")
    activity = _activity(account, workspace_sid, activity_sid or ws["default_activity_sid"])
    now = now_iso()
    doc = {
        "sid": new_sid("WK"),
        "account_sid": account.sid,
        "workspace_sid": workspace_sid,
        "friendly_name": friendly_name,
        "attributes": attributes,
        "activity_sid": activity["sid"],
        "activity_name": activity["friendly_name"],
        "available": activity["available"],
        "date_created": now,
        "date_updated": now,
        "date_status_changed": now,
    }
    account.store.insert(WORKER, doc, parent=workspace_sid)
    log.info("worker %s (%s) created, %s", doc["sid"], friendly_name, activity["friendly_name"])
    account.live.publish({"type": "worker", "worker_sid": doc["sid"], "name": friendly_name})
    return doc


def _activity(account: Account, workspace_sid: str, sid: str) -> Doc:
    found = account.store.get(ACTIVITY, sid)
    if found is None or found["workspace_sid"] != workspace_sid:
        raise invalid(f"ActivitySid {sid} is not an Activity of this workspace")
    return found


def update_worker(account: Account, worker: Doc, changes: Dict[str, Any]) -> Doc:
    """Change a worker's activity (its availability), attributes or name."""
    now = now_iso()
    if "activity_sid" in changes and changes["activity_sid"] != worker["activity_sid"]:
        activity = _activity(account, worker["workspace_sid"], changes.pop("activity_sid"))
        worker.update(
            activity_sid=activity["sid"],
            activity_name=activity["friendly_name"],
            available=activity["available"],
            date_status_changed=now,
        )
    changes.pop("activity_sid", None)
    name = changes.get("friendly_name")
    if name is not None and name.lower() != worker["friendly_name"].lower():
        if worker_named(account, worker["workspace_sid"], name) is not None:
            raise TwilioError(409, 20001, f"Worker with FriendlyName {name!r} already exists in this workspace")
    worker.update(changes, date_updated=now)
    account.store.replace(WORKER, worker)
    log.info("worker %s is %s", worker["friendly_name"], worker["activity_name"])
    account.live.publish({"type": "worker", "worker_sid": worker["sid"], "name": worker["friendly_name"]})
    return worker


def worker_for_agent(account: Account, name: str, activity: Optional[str] = None) -> Doc:
    """The agent's worker, created when missing; `activity` (a name) moves it there."""
    ws = account.store.meta("tr_workspace_sid") or ""
    worker = worker_named(account, ws, name)
    wanted = activity_named(account, ws, activity)["sid"] if activity else None
    if worker is None:
        return create_worker(account, ws, name, wanted)
    if wanted and worker["activity_sid"] != wanted:
        return update_worker(account, worker, {"activity_sid": wanted})
    return worker


# -- routing ----------------------------------------------------------------------
def _new_task_doc(account: Account, *, attributes: str, queue: Doc, workflow: Doc) -> Doc:
    now = now_iso()
    default_channel = task_channel(account, queue["workspace_sid"], "default")
    return {
        "sid": new_sid("WT"),
        "account_sid": account.sid,
        "workspace_sid": queue["workspace_sid"],
        "assignment_status": "pending",
        "attributes": attributes,
        "addons": "{}",
        "date_created": now,
        "date_updated": now,
        "task_queue_entered_date": now,
        "virtual_start_time": now,
        "priority": 0,
        "reason": None,
        "task_queue_sid": queue["sid"],
        "task_queue_friendly_name": queue["friendly_name"],
        "task_channel_sid": default_channel["sid"],
        "task_channel_unique_name": default_channel["unique_name"],
        "timeout": default_timeout(),
        "workflow_sid": workflow["sid"],
        "workflow_friendly_name": workflow["friendly_name"],
        "ignore_capacity": False,
        "routing_target": None,
        "_created": time.time(),
        "_kind": "message",
    }


def route_by_workflow(account: Account, workflow: Doc, attributes: Dict[str, Any]) -> Doc:
    """The queue the workflow's first matching filter targets (else its default filter)."""
    try:
        routing = json.loads(workflow["configuration"]).get("task_routing") or {}
    except (ValueError, AttributeError):
        routing = {}
    for rule in routing.get("filters") or []:
        try:
            matched = matches(attributes, str(rule.get("expression") or "1==1"))
        except TwilioError:
            continue
        targets = rule.get("targets") or []
        if matched and targets and targets[0].get("queue"):
            found = account.store.get(QUEUE, targets[0]["queue"])
            if found is not None:
                return found
    default = (routing.get("default_filter") or {}).get("queue")
    found = account.store.get(QUEUE, default) if default else None
    return found or _queue_doc(account)


def create_task(
    account: Account,
    workspace_sid: str,
    *,
    attributes: str = "{}",
    workflow_sid: Optional[str] = None,
    queue_sid: Optional[str] = None,
    channel: Optional[str] = None,
    timeout: Optional[int] = None,
    priority: Optional[int] = None,
    routing_target: Optional[str] = None,
    chat: Optional[Dict[str, Any]] = None,
) -> Doc:
    """A new pending task routed by its workflow (or straight to a queue / worker); `chat` links it to a chat."""
    workspace(account, workspace_sid)
    workflows = children(account, WORKFLOW, workspace_sid)
    if workflow_sid:
        workflow = child(account, WORKFLOW, workspace_sid, workflow_sid, "Workflows")
    elif len(workflows) == 1 or queue_sid:
        workflow = workflows[0]
    else:
        raise invalid("Missing required parameter WorkflowSid in the post body")
    parsed = json.loads(attributes or "{}")
    if not isinstance(parsed, dict):
        raise invalid("Attributes must be a JSON object")
    target_worker: Optional[Doc] = None
    if routing_target:
        if routing_target.startswith("WK"):
            target_worker = child(account, WORKER, workspace_sid, routing_target, "Workers")
        elif routing_target.startswith("WQ"):
            queue_sid = routing_target
        elif routing_target.startswith("WW"):
            workflow = child(account, WORKFLOW, workspace_sid, routing_target, "Workflows")
        else:
            raise invalid(f"RoutingTarget {routing_target!r} is not a Worker, TaskQueue or Workflow SID")
    if queue_sid:
        queue = child(account, QUEUE, workspace_sid, queue_sid, "TaskQueues")
    else:
        queue = route_by_workflow(account, workflow, parsed)
    doc = _new_task_doc(account, attributes=attributes or "{}", queue=queue, workflow=workflow)
    if channel:
        found = task_channel(account, workspace_sid, channel)
        doc.update(task_channel_sid=found["sid"], task_channel_unique_name=found["unique_name"])
    if timeout is not None:
        doc["timeout"] = timeout
    if priority is not None:
        doc["priority"] = priority
    if target_worker is not None:
        doc["routing_target"] = target_worker["sid"]
        doc["_target_agent"] = target_worker["friendly_name"]
    if chat:
        doc["_kind"] = "chat"
        doc.update({"_" + key: value for key, value in chat.items()})
    with account.store.transaction():
        account.store.insert(TASK, doc, parent=workspace_sid)
        record(account, doc, "task.created")
        record(account, doc, "task-queue.entered")
    account.timers.schedule(doc)
    log.info("task %s created in %s (%s)", doc["sid"], queue["friendly_name"], doc["_kind"])
    publish(account, doc)
    return doc


def publish(account: Account, task: Doc) -> None:
    """Tell desktops a task changed."""
    account.live.publish({"type": "task", "task_sid": task["sid"], "channel_sid": task.get("_channel_sid")})


# -- assignment and the end of a task -----------------------------------------------
def assign(account: Account, task: Doc, worker: Doc) -> Doc:
    """The worker accepts the task: a reservation accepted, the task assigned to them."""
    now = now_iso()
    reservation = {
        "sid": new_sid("WR"),
        "account_sid": account.sid,
        "workspace_sid": task["workspace_sid"],
        "task_sid": task["sid"],
        "worker_sid": worker["sid"],
        "worker_name": worker["friendly_name"],
        "reservation_status": "accepted",
        "date_created": now,
        "date_updated": now,
    }
    wait = time.time() - (task.get("_created") or epoch_of(task["date_created"]))
    with account.store.transaction():
        account.store.insert(RESERVATION, reservation, parent=task["sid"])
        task.update(
            assignment_status="assigned",
            date_updated=now,
            _agent=worker["friendly_name"],
            _worker_sid=worker["sid"],
            _reservation_sid=reservation["sid"],
            _accepted=time.time(),
        )
        account.store.replace(TASK, task)
        record(account, task, "reservation.created", worker_sid=worker["sid"])
        record(account, task, "reservation.accepted", worker_sid=worker["sid"], wait=wait)
    account.timers.discard(task["sid"])
    log.info("task %s assigned to %s", task["sid"], worker["friendly_name"])
    return task


def change_status(account: Account, task: Doc, status: str, reason: Optional[str] = None) -> Doc:
    """Move a task along TaskRouter's lifecycle, refusing what Twilio refuses."""
    current = task["assignment_status"]
    where = f"task {task['sid']} in workspace {task['workspace_sid']} for account {account.sid}"
    if status == current and status not in FINAL:  # ending twice is refused like any other invalid move
        return task
    if status == "canceled" and current not in WAITING:
        raise invalid(f"Cannot cancel {where} because it is not pending or reserved.")
    if status == "wrapping" and current != "assigned":
        raise invalid(f"Cannot wrap up {where} because it is not assigned.")
    if status == "completed" and current not in ("assigned", "wrapping"):
        raise invalid(f"Cannot complete {where} because it is not assigned or wrapping.")
    if status not in ("canceled", "wrapping", "completed"):
        raise invalid(f"AssignmentStatus {status!r} cannot be set; use canceled, wrapping or completed")
    now = now_iso()
    with account.store.transaction():
        task.update(assignment_status=status, date_updated=now)
        if status in FINAL:
            task["reason"] = reason
        account.store.replace(TASK, task)
        reservation = account.store.get(RESERVATION, task.get("_reservation_sid") or "")
        if reservation is not None:
            reservation_status = {"canceled": "canceled", "wrapping": "wrapping", "completed": "completed"}[status]
            reservation.update(reservation_status=reservation_status, date_updated=now)
            account.store.replace(RESERVATION, reservation)
        event = {"canceled": "task.canceled", "wrapping": "task.wrapup", "completed": "task.completed"}[status]
        wait = time.time() - (task.get("_created") or epoch_of(task["date_created"]))
        record(account, task, event, wait=wait, reason=reason)
    if status in FINAL:
        account.timers.discard(task["sid"])
    log.info("task %s %s -> %s (%s)", task["sid"], current, status, reason or "no reason")
    publish(account, task)
    return task


def finish(account: Account, task: Doc, reason: str, ended_by: Optional[str] = None) -> Doc:
    """End a live task the way its state allows: waiting ones are canceled, assigned ones wrap up and complete."""
    if task["assignment_status"] not in LIVE:
        return task
    if ended_by is not None:
        task["_ended_by"] = ended_by
    if task["assignment_status"] in WAITING:
        return change_status(account, task, "canceled", reason)
    if task["assignment_status"] == "assigned":
        change_status(account, task, "wrapping")
    return change_status(account, task, "completed", reason)


def chat_closed(account: Account, channel_sid: str, ended_by: str) -> None:
    """A chat ended (agent, customer or API): its live tasks end and its interaction channel closes."""
    for task in tasks_for_chat(account, channel_sid):
        if task["assignment_status"] in WAITING or task["assignment_status"] == "assigned":  # wrapping: the agent wraps up
            agent_ended = task.get("_agent") is not None and task["_agent"] == ended_by
            finish(account, task, "Chat ended by the agent" if agent_ended else "Chat closed", ended_by)
        channel = account.store.get("interaction_channel", task.get("_interaction_channel_sid") or "")
        if channel is not None and channel["status"] not in ("closed", "inactive"):
            channel.update(status="closed", _date_updated=now_iso())
            account.store.replace("interaction_channel", channel)


# -- queue ------------------------------------------------------------------------
def waiting_in(account: Account, queue_sid: str) -> List[Doc]:
    """The queue's waiting tasks in the order agents get them: priority, then age."""
    docs = [t for t in tasks_of(account) if t["task_queue_sid"] == queue_sid and t["assignment_status"] in WAITING]
    return sorted(docs, key=lambda t: (-int(t.get("priority") or 0), t.get("_created") or 0.0))


def queue_position(account: Account, task: Doc) -> Optional[int]:
    """1 for the next task an agent gets; None when the task is not waiting."""
    if task["assignment_status"] not in WAITING:
        return None
    order = [t["sid"] for t in waiting_in(account, task["task_queue_sid"])]
    return order.index(task["sid"]) + 1 if task["sid"] in order else None


# -- TaskRouter expressions (EvaluateTaskAttributes) ---------------------------------
_CLAUSE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][\w.]*)\s*(?P<op>==|!=)\s*(?P<value>"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false)\s*$""",
    re.IGNORECASE,
)


def matches(attributes: Dict[str, Any], expression: str) -> bool:
    """Whether attributes satisfy `key == "value"` clauses joined by `and` (the subset the sandbox evaluates).

    `1==1` matches everything; anything else the sandbox does not understand is Twilio's 400, not a silent miss.
    """
    if re.fullmatch(r"\s*1\s*==\s*1\s*", expression):
        return True
    clauses = re.split(r"\s+(?:and|AND|&&)\s+", expression.strip())
    for clause in clauses:
        m = _CLAUSE.match(clause)
        if m is None:
            raise invalid(f'Unsupported expression {expression!r}: the sandbox evaluates key == "value" clauses joined by and')
        actual = _lookup(attributes, m["key"])
        expected = _literal(m["value"])
        equal = actual == expected or (isinstance(actual, str) and isinstance(expected, str) and actual == expected)
        if equal != (m["op"] == "=="):
            return False
    return True


def _lookup(attributes: Dict[str, Any], path: str) -> Any:
    value: Any = attributes
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _literal(text: str) -> Any:
    if text[0] in "\"'":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text) if "." in text else int(text)


# -- statistics -------------------------------------------------------------------
def _on_channel(doc: Doc, channel: Optional[Doc]) -> bool:
    return channel is None or doc.get("task_channel_unique_name") == channel["unique_name"]


def real_time_statistics(account: Account, queue: Doc, channel: Optional[Doc] = None) -> Doc:
    """What the queue looks like now: its live tasks, and its workers by activity."""
    ws = queue["workspace_sid"]
    live = [
        t
        for t in tasks_of(account, ws)
        if t["task_queue_sid"] == queue["sid"] and t["assignment_status"] in LIVE and _on_channel(t, channel)
    ]
    by_status = {status: 0 for status in ("pending", "reserved", "assigned", "wrapping")}
    by_priority: Dict[str, int] = {}
    for t in live:
        by_status[t["assignment_status"]] += 1
        key = str(t.get("priority") or 0)
        by_priority[key] = by_priority.get(key, 0) + 1
    waiting = sorted((t for t in live if t["assignment_status"] in WAITING), key=lambda t: t.get("_created") or 0.0)
    oldest = waiting[0] if waiting else None
    entered = sorted(waiting, key=lambda t: epoch_of(t.get("task_queue_entered_date")))
    workers = children(account, WORKER, ws)
    return {
        "account_sid": account.sid,
        "workspace_sid": ws,
        "task_queue_sid": queue["sid"],
        "activity_statistics": [
            {"sid": a["sid"], "friendly_name": a["friendly_name"], "workers": sum(w["activity_sid"] == a["sid"] for w in workers)}
            for a in children(account, ACTIVITY, ws)
        ],
        "longest_task_waiting_age": age_of(oldest) if oldest else 0,
        "longest_task_waiting_sid": oldest["sid"] if oldest else None,
        "longest_relative_task_age_in_queue": (
            max(0, int(time.time() - epoch_of(entered[0]["task_queue_entered_date"]))) if entered else 0
        ),
        "longest_relative_task_sid_in_queue": entered[0]["sid"] if entered else None,
        "tasks_by_priority": by_priority,
        "tasks_by_status": by_status,
        "total_available_workers": sum(1 for w in workers if w["available"]),
        "total_eligible_workers": len(workers),
        "total_tasks": len(live),
        "url": ws_url(ws, f"/TaskQueues/{queue['sid']}/RealTimeStatistics"),
    }


def _durations(values: Iterable[float]) -> Dict[str, int]:
    items = [max(0, round(v)) for v in values]
    if not items:
        return {"avg": 0, "min": 0, "max": 0, "total": 0}
    return {"avg": round(sum(items) / len(items)), "min": min(items), "max": max(items), "total": sum(items)}


def cumulative_statistics(
    account: Account, queue: Doc, window: Tuple[float, float], channel: Optional[Doc] = None, split: Optional[List[int]] = None
) -> Doc:
    """What happened in the queue between `window` (epochs): tasks entering, accepted, canceled, and how long they waited."""
    ws = queue["workspace_sid"]
    start, end = window
    events = [
        e
        for e in account.store.list(EVENT, parent=ws)[0]
        if e["task_queue_sid"] == queue["sid"] and start <= e["epoch"] <= end and _on_channel(e, channel)
    ]

    def count(kind: str) -> int:
        return sum(1 for e in events if e["event_type"] == kind)

    accepted = [e["wait"] for e in events if e["event_type"] == "reservation.accepted"]
    canceled = [e["wait"] for e in events if e["event_type"] == "task.canceled"]
    accepted_stats = _durations(accepted)
    split_stats = None
    if split:
        split_stats = {
            str(threshold): {
                "above": {
                    "tasks_canceled": sum(1 for w in canceled if w > threshold),
                    "reservations_accepted": sum(1 for w in accepted if w > threshold),
                },
                "below": {
                    "tasks_canceled": sum(1 for w in canceled if w <= threshold),
                    "reservations_accepted": sum(1 for w in accepted if w <= threshold),
                },
            }
            for threshold in split
        }
    return {
        "account_sid": account.sid,
        "workspace_sid": ws,
        "task_queue_sid": queue["sid"],
        "start_time": iso_of(start),
        "end_time": iso_of(end),
        "avg_task_acceptance_time": accepted_stats["avg"],
        "reservations_created": count("reservation.created"),
        "reservations_accepted": count("reservation.accepted"),
        "reservations_rejected": count("reservation.rejected"),
        "reservations_timed_out": count("reservation.timeout"),
        "reservations_canceled": count("reservation.canceled"),
        "reservations_rescinded": count("reservation.rescinded"),
        "split_by_wait_time": split_stats,
        "wait_duration_until_accepted": accepted_stats,
        "wait_duration_until_canceled": _durations(canceled),
        "wait_duration_in_queue_until_accepted": accepted_stats,
        "tasks_canceled": count("task.canceled"),
        "tasks_completed": count("task.completed"),
        "tasks_deleted": count("task.deleted"),
        "tasks_entered": count("task-queue.entered"),
        "tasks_moved": count("task-queue.moved"),
        "url": ws_url(ws, f"/TaskQueues/{queue['sid']}/CumulativeStatistics"),
    }


# -- time to live -----------------------------------------------------------------
class TaskTimers:
    """One asyncio timer per waiting task: when its TTL runs out it is canceled with Twilio's reason.

    Timers live in the server's event loop (started by the app's listeners); a task created before the loop runs,
    or left waiting by a previous run of a file DB, is scheduled when `start()` runs.
    """

    def __init__(self, account: Account) -> None:
        self.account = account
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._handles: Dict[str, asyncio.TimerHandle] = {}

    def start(self) -> None:
        """Schedule every waiting task (call inside the running loop)."""
        self._loop = asyncio.get_running_loop()
        for task in tasks_of(self.account):
            if task["assignment_status"] in WAITING:
                self.schedule(task)

    def stop(self) -> None:
        """Drop every timer (the server is stopping; a file DB's tasks are rescheduled on the next start)."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._loop = None

    def schedule(self, task: Doc) -> None:
        """Arm the task's TTL timer (no-op before the loop runs)."""
        if self._loop is None:
            return
        self.discard(task["sid"])
        deadline = (task.get("_created") or epoch_of(task["date_created"])) + int(task["timeout"])
        self._handles[task["sid"]] = self._loop.call_later(max(0.0, deadline - time.time()), self._expire, task["sid"])

    def discard(self, sid: str) -> None:
        """Forget a task's timer (it was accepted or ended)."""
        handle = self._handles.pop(sid, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, sid: str) -> None:
        self._handles.pop(sid, None)
        task = self.account.store.get(TASK, sid)
        if task is None or task["assignment_status"] not in WAITING:
            return
        try:
            change_status(self.account, task, "canceled", TTL_REASON)
        except Exception:  # a timer must never take the loop down
            log.exception("could not expire task %s", sid)


def route_chat(
    account: Account,
    attributes: Dict[str, Any],
    chat: Dict[str, Any],
    *,
    channel: str = "chat",
    workflow_sid: Optional[str] = None,
    timeout: Optional[int] = None,
    priority: Optional[int] = None,
) -> Doc:
    """A chat's task in the account's workspace, routed by its workflow (what Flex's web flow does)."""
    return create_task(
        account,
        account.workspace_sid,
        attributes=json.dumps(attributes),
        workflow_sid=workflow_sid or account.workflow_sid,
        channel=channel,
        timeout=timeout,
        priority=priority,
        chat=chat,
    )
