"""What an agent does in the desktop and the agent JSON API: availability, accept, chat, transfer, end, complete.

The desktop's tasks are the TaskRouter tasks: accepting one is a reservation accepted and the task assigned,
then the agent joins the chat; ending a chat closes it and the task wraps up and completes. The API's `status`
(pending | accepted | ended) is derived from the task's `assignment_status`, so older callers keep working.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

from flex_sandbox import chat, conversations, interactions, media, taskrouter
from flex_sandbox.account import Account, Actor, loads
from flex_sandbox.store import Doc
from flex_sandbox.wire import TwilioError, now_iso

log = logging.getLogger(__name__)

STATUSES = ("pending", "accepted", "ended")
CHAT_FIELDS = (
    "channel_sid",
    "mode",
    "service_sid",
    "visitor_identity",
    "customer_friendly_name",
    "chat_friendly_name",
    "pre_engagement_data",
    "interaction_sid",
    "interaction_channel_sid",
)


class AgentError(Exception):
    """An agent action that cannot happen; answered as `{"error": ...}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def agent_name(value: Any) -> str:
    """A usable agent name (identity) from user input."""
    name = str(value or "").strip()
    if not name:
        raise AgentError(400, "agent is required")
    if len(name) > 64 or any(c in name for c in "\r\n\t"):
        raise AgentError(400, "agent must be a single line of at most 64 characters")
    return name


def status_of(t: Doc) -> str:
    """The desktop's three states from TaskRouter's six."""
    state = t.get("assignment_status")
    if state in taskrouter.WAITING:
        return "pending"
    return "accepted" if state == "assigned" else "ended"


def all_tasks(account: Account, status: Optional[str] = None) -> List[Doc]:
    """Tasks newest first, optionally by status."""
    if status is not None and status not in STATUSES:
        raise AgentError(400, f"status must be one of {', '.join(STATUSES)}")
    docs = list(reversed(taskrouter.tasks_of(account)))
    return [t for t in docs if status is None or status_of(t) == status]


def task(account: Account, sid: str) -> Doc:
    """One task or a 404."""
    found = account.store.get(taskrouter.TASK, sid)
    if found is None:
        raise AgentError(404, f"task {sid} not found")
    return found


def _channel(account: Account, t: Doc) -> Doc:
    if t.get("_mode") == "legacy":
        return chat.channel(account, t["_service_sid"], t["_channel_sid"])
    return conversations.conversation(account, t["_channel_sid"])


def _is_chat(t: Doc) -> bool:
    return t.get("_kind", "chat") == "chat" and bool(t.get("_channel_sid"))


# -- availability -----------------------------------------------------------------
def set_available(account: Account, agent: str, available: bool) -> Doc:
    """Go available (activity Available) or offline (Offline); the worker is created the first time."""
    return taskrouter.worker_for_agent(account, agent, "Available" if available else "Offline")


def _worker_to_accept(account: Account, agent: str) -> Doc:
    """The agent's worker; one that does not exist yet is created Available (callers that never went available)."""
    worker = taskrouter.worker_named(account, account.workspace_sid, agent)
    return worker or taskrouter.worker_for_agent(account, agent, "Available")


def agents(account: Account) -> List[Doc]:
    """Every worker as the desktop shows it."""
    return [view_agent(account, w) for w in taskrouter.children(account, taskrouter.WORKER, account.workspace_sid)]


def view_agent(account: Account, worker: Doc) -> Dict[str, Any]:
    """A worker as the agent API returns it."""
    busy = sum(1 for t in taskrouter.tasks_of(account) if t.get("_worker_sid") == worker["sid"] and status_of(t) == "accepted")
    return {
        "agent": worker["friendly_name"],
        "worker_sid": worker["sid"],
        "activity": worker["activity_name"],
        "available": worker["available"],
        "tasks": busy,
        "date_status_changed": worker["date_status_changed"],
    }


# -- accept -----------------------------------------------------------------------
def accept(account: Account, sid: str, agent: str) -> Doc:
    """Reserve and assign the task to `agent` (first one wins), then join the agent to the chat."""
    with account.store.transaction():
        t = task(account, sid)
        state = status_of(t)
        if state == "accepted" and t.get("_agent") == agent:
            return t
        if state == "accepted":
            raise AgentError(409, f"Task already accepted by {t['_agent']}")
        if state == "ended":
            raise AgentError(409, "Task has already ended")
        target = t.get("_target_agent")
        if target and target.lower() != agent.lower():
            raise AgentError(409, f"Task is routed to {target}")
        taskrouter.assign(account, t, _worker_to_accept(account, agent))
        if _is_chat(t):
            _join(account, t, agent)
            interactions.agent_joined(account, t)
    log.info("task %s accepted by an agent", sid)
    taskrouter.publish(account, t)
    return t


def _join(account: Account, t: Doc, agent: str) -> None:
    channel = _channel(account, t)
    attributes = json.dumps({"friendlyName": agent, "role": "agent"})
    try:
        if t["_mode"] == "legacy":
            chat.add_member(account, channel, agent, attributes, Actor.agent(agent))
        else:
            conversations.add_participant(account, channel, agent, attributes, Actor.agent(agent))
    except TwilioError as e:
        if e.status != 409:  # already a member: fine
            raise AgentError(409, e.message) from None


def _assigned(account: Account, sid: str, agent: str) -> Doc:
    t = task(account, sid)
    state = status_of(t)
    if state == "ended":
        raise AgentError(409, "Task has already ended")
    if state != "accepted":
        raise AgentError(409, "Accept the task first")
    if t.get("_agent") != agent:
        raise AgentError(403, f"Task is assigned to {t.get('_agent')}")
    return t


def _chat_task(t: Doc) -> Doc:
    if not _is_chat(t):
        raise AgentError(409, "This task is a message, not a chat")
    return t


# -- chatting and ending ----------------------------------------------------------
def send(account: Account, sid: str, agent: str, body: Any) -> Doc:
    """Post the agent's message through the same path as the REST API (webhooks fire)."""
    text = str(body or "")
    if not text.strip():
        raise AgentError(400, "body is required")
    t = _chat_task(_assigned(account, sid, agent))
    channel = _channel(account, t)
    try:
        if t["_mode"] == "legacy":
            message = chat.post_message(account, channel, agent, text, "{}", Actor.agent(agent))
        else:
            message = conversations.post_message(account, channel, agent, text, "{}", Actor.agent(agent))
    except TwilioError as e:
        raise AgentError(409 if e.code == 50377 else 400, e.message) from None
    return view_message(t, message)


def send_file(
    account: Account, sid: str, agent: str, filename: Optional[str], content_type: Optional[str], data: bytes, max_bytes: int
) -> Doc:
    """What the Flex UI does when an agent attaches a file: upload it to MCS, then post a message naming it (MediaSid,
    no body) through the same path as the REST API, so the visitor's side gets onMessageAdded / onMediaMessageSent."""
    t = _chat_task(_assigned(account, sid, agent))
    channel = _channel(account, t)
    service_sid = channel["service_sid"] if t["_mode"] == "legacy" else channel["chat_service_sid"]
    try:
        uploaded = media.upload(account, service_sid, data, content_type, filename, author=agent, max_bytes=max_bytes)
        if t["_mode"] == "legacy":
            message = chat.post_message(account, channel, agent, None, "{}", Actor.agent(agent), uploaded["sid"])
        else:
            message = conversations.post_message(account, channel, agent, None, "{}", Actor.agent(agent), uploaded["sid"])
    except TwilioError as e:
        raise AgentError(409 if e.code == 50377 else e.status if e.status == 413 else 400, e.message) from None
    log.info("agent file %s sent in task %s", uploaded["sid"], sid)
    return view_message(t, message)


def end(account: Account, sid: str, agent: str, wrap_up: bool = False) -> Doc:
    """End the chat: the agent leaves, the channel closes (legacy INACTIVE / conversation closed), the task completes.

    `wrap_up`: as Flex's UI does it, the task stays `wrapping` (the agent completes it later with `complete`), so
    whatever is written to it after the chat (a survey answer in its attributes) still lands.
    """
    t = _assigned(account, sid, agent)
    if not _is_chat(t):
        return complete(account, sid, agent)
    channel = _channel(account, t)
    actor = Actor.agent(agent)
    if wrap_up:
        t["_ended_by"] = agent
        taskrouter.change_status(account, t, "wrapping")  # closing the chat below then leaves a wrapping task alone
    try:
        _leave(account, t, channel, agent, actor, "wrapup" if wrap_up else "closed")
        if t["_mode"] == "legacy":
            chat.close(account, channel, actor)
        else:
            conversations.update_conversation(account, channel, {"state": "closed"}, actor)
    except TwilioError as e:
        raise AgentError(409, e.message) from None
    account.end_task_for(t["_channel_sid"], agent)
    log.info("task %s ended by its agent", sid)
    return task(account, sid)


def _leave(account: Account, t: Doc, channel: Doc, agent: str, actor: Actor, status: str = "closed") -> None:
    """The agent leaves the chat (onMemberRemoved / onParticipantRemoved), the chat itself stays; `status` is what
    their interaction participant becomes (closed, or wrapup while they wrap up)."""
    if t["_mode"] == "legacy":
        members, _ = account.store.list("chat_member", parent=channel["sid"], where={"identity": agent}, limit=1)
        if members:
            chat.remove_member(account, channel, members[0], actor)
    else:
        participants, _ = account.store.list("participant", parent=channel["sid"], where={"identity": agent}, limit=1)
        if participants:
            conversations.remove_participant(account, channel, participants[0], actor)
    interactions.agent_left(account, t, status)


def complete(account: Account, sid: str, agent: str) -> Doc:
    """Done with a message task (accepting it first when nobody has), or with a chat in wrap-up."""
    t = task(account, sid)
    if _is_chat(t):
        if t["assignment_status"] != "wrapping":
            raise AgentError(409, "End the chat instead; only a chat in wrap-up is completed")
        if t.get("_agent") != agent:
            raise AgentError(403, f"Task is assigned to {t.get('_agent')}")
        return taskrouter.change_status(account, t, "completed", "Wrap-up done")
    if status_of(t) == "pending":
        t = accept(account, sid, agent)
    t = _assigned(account, sid, agent)
    t["_ended_by"] = agent
    return taskrouter.finish(account, t, "Completed by the agent", agent)


# -- transfers --------------------------------------------------------------------
def transfer(account: Account, sid: str, agent: str, to_agent: Optional[str] = None, to_queue: Optional[str] = None) -> Doc:
    """Cold transfer: a new task with the same attributes goes to the worker or queue; this agent leaves the chat
    (the visitor side sees onParticipantRemoved / onMemberRemoved) and their task completes."""
    if bool(to_agent) == bool(to_queue):
        raise AgentError(400, "give exactly one of to_agent or to_queue")
    t = _chat_task(_assigned(account, sid, agent))
    channel = _channel(account, t)
    ws = t["workspace_sid"]
    worker: Optional[Doc] = None
    queue_sid = t["task_queue_sid"]
    if to_agent:
        name = agent_name(to_agent)
        if name.lower() == agent.lower():
            raise AgentError(400, "cannot transfer a chat to yourself")
        worker = taskrouter.worker_named(account, ws, name) or taskrouter.create_worker(account, ws, name)
        target, target_sid = name, worker["sid"]
    else:
        queue = _queue(account, ws, str(to_queue))
        queue_sid = queue["sid"]
        target, target_sid = queue["friendly_name"], queue["sid"]
    chan = interactions.chat_channel_for(account, t)
    if chan is not None and chan["status"] != "active":
        raise AgentError(409, interactions.not_transferable(chan).message)
    with account.store.transaction():
        new = taskrouter.create_task(
            account,
            ws,
            attributes=t["attributes"],
            workflow_sid=t["workflow_sid"],
            queue_sid=queue_sid,
            channel=t["task_channel_unique_name"],
            priority=t.get("priority"),
            routing_target=worker["sid"] if worker else None,
            chat={**{key: t.get("_" + key) for key in CHAT_FIELDS}, "transferred_from": t["sid"]},
        )
        try:
            _leave(account, t, channel, agent, Actor.agent(agent))
        except TwilioError as e:
            raise AgentError(409, e.message) from None
        taskrouter.finish(account, t, f"Transferred to {target}", agent)
        if chan is not None:
            interactions.record_transfer(account, chan, t, new, target_sid, None)
    log.info("task %s transferred by its agent to %s as %s", sid, target, new["sid"])
    return new


def _queue(account: Account, workspace_sid: str, sid_or_name: str) -> Doc:
    for queue in taskrouter.children(account, taskrouter.QUEUE, workspace_sid):
        if sid_or_name in (queue["sid"], queue["friendly_name"]):
            return queue
    raise AgentError(404, f"queue {sid_or_name} not found")


# -- views ------------------------------------------------------------------------
def view_message(t: Doc, message: Doc) -> Dict[str, Any]:
    """A message as the desktop shows it, with the sender's role."""
    author = message.get("author", message.get("from"))
    if author == t.get("_visitor_identity"):
        role = "customer"
    elif t.get("_agent") and author == t["_agent"]:
        role = "agent"
    else:
        role = "system"
    attached = message.get("media") or []
    attributes = loads(message.get("attributes"))
    return {
        "sid": message["sid"],
        "index": message["index"],
        "author": author,
        "role": role,
        "body": message.get("body") or "",
        "attributes": attributes,
        "media": attached if isinstance(attached, list) else [attached],
        # the bot's summary for the agent: flagged in its attributes, posted by an author who is not a participant
        "summary": isinstance(attributes, dict) and attributes.get("handoff_summary") is True and role == "system",
        "date_created": message["date_created"],
    }


def transcript(account: Account, sid: str) -> List[Dict[str, Any]]:
    """Every message of the task's chat, oldest first (a message task has none)."""
    t = task(account, sid)
    if not _is_chat(t):
        return []
    docs = (
        chat.messages(account, t["_channel_sid"])
        if t.get("_mode") == "legacy"
        else conversations.messages(account, t["_channel_sid"])
    )
    return [view_message(t, m) for m in docs]


def positions(account: Account) -> Dict[str, int]:
    """Every waiting task's place in its queue (1 = next), computed once for a whole list."""
    placed: Dict[str, int] = {}
    queues = {t["task_queue_sid"] for t in taskrouter.tasks_of(account) if t["assignment_status"] in taskrouter.WAITING}
    for queue_sid in queues:
        for index, t in enumerate(taskrouter.waiting_in(account, queue_sid)):
            placed[t["sid"]] = index + 1
    return placed


def view(account: Account, t: Doc, placed: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """A task as the agent API returns it."""
    attributes = taskrouter.attributes_of(t)
    kind = "chat" if _is_chat(t) else "message"
    customer = t.get("_customer_friendly_name") or attributes.get("name") or attributes.get("customerName") or "Customer"
    position = (placed or {}).get(t["sid"]) if placed is not None else taskrouter.queue_position(account, t)
    return {
        "sid": t["sid"],
        "status": status_of(t),
        "kind": kind,
        "mode": t.get("_mode"),
        "channel_sid": t.get("_channel_sid"),
        "service_sid": t.get("_service_sid"),
        "agent": t.get("_agent"),
        "ended_by": t.get("_ended_by"),
        "visitor_identity": t.get("_visitor_identity"),
        "customer_friendly_name": customer,
        "chat_friendly_name": t.get("_chat_friendly_name"),
        "pre_engagement_data": t.get("_pre_engagement_data"),
        "assignment_status": t["assignment_status"],
        "reason": t.get("reason"),
        "attributes": attributes,
        "task_queue_sid": t["task_queue_sid"],
        "task_queue_name": t["task_queue_friendly_name"],
        "queue_position": position,
        "age": taskrouter.age_of(t),
        "target_agent": t.get("_target_agent"),
        "transferred_from": t.get("_transferred_from"),
        "interaction_sid": t.get("_interaction_sid"),
        "interaction_channel_sid": t.get("_interaction_channel_sid"),
        "chat_attributes": chat_attributes(account, t),
        "date_created": t["date_created"],
        "date_updated": t.get("date_updated") or now_iso(),
    }


def chat_attributes(account: Account, t: Doc) -> Any:
    """The attributes of the task's chat as they are now (the conversation's or the Chat channel's), parsed; None
    for a message task or a chat that is gone. After the chat they carry what the bot wrote back (`handoff_survey`)."""
    if not _is_chat(t):
        return None
    found = account.store.get("chat_channel" if t.get("_mode") == "legacy" else "conversation", t["_channel_sid"])
    return loads(found.get("attributes")) if found else None
