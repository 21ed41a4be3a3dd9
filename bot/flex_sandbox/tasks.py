"""Agent tasks: what the desktop and the agent JSON API do with an incoming chat (accept, chat, end)."""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

from flex_sandbox import chat, conversations
from flex_sandbox.account import Account, Actor, loads
from flex_sandbox.store import Doc
from flex_sandbox.wire import TwilioError, now_iso

log = logging.getLogger(__name__)

STATUSES = ("pending", "accepted", "ended")


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


def all_tasks(account: Account, status: Optional[str] = None) -> List[Doc]:
    """Tasks newest first, optionally by status."""
    if status is not None and status not in STATUSES:
        raise AgentError(400, f"status must be one of {', '.join(STATUSES)}")
    docs, _ = account.store.list("task", descending=True, where={"status": status} if status else None)
    return docs


def task(account: Account, sid: str) -> Doc:
    """One task or a 404."""
    found = account.store.get("task", sid)
    if found is None:
        raise AgentError(404, f"task {sid} not found")
    return found


def _channel(account: Account, t: Doc) -> Doc:
    if t["mode"] == "legacy":
        return chat.channel(account, t["service_sid"], t["channel_sid"])
    return conversations.conversation(account, t["channel_sid"])


def accept(account: Account, sid: str, agent: str) -> Doc:
    """Assign the task to `agent` (first one wins) and join the agent to the chat."""
    with account.store.transaction():
        t = task(account, sid)
        if t["status"] == "accepted" and t["agent"] == agent:
            return t
        if t["status"] == "accepted":
            raise AgentError(409, f"Task already accepted by {t['agent']}")
        if t["status"] == "ended":
            raise AgentError(409, "Task has already ended")
        t.update(status="accepted", agent=agent, date_updated=now_iso())
        account.store.replace("task", t)
        channel = _channel(account, t)
        attributes = json.dumps({"friendlyName": agent, "role": "agent"})
        try:
            if t["mode"] == "legacy":
                chat.add_member(account, channel, agent, attributes, Actor.agent(agent))
            else:
                conversations.add_participant(account, channel, agent, attributes, Actor.agent(agent))
        except TwilioError as e:
            if e.status != 409:  # already a member: fine
                raise AgentError(409, e.message) from None
    log.info("task %s accepted by an agent", sid)
    account.publish("task", t)
    return t


def _assigned(account: Account, sid: str, agent: str) -> Doc:
    t = task(account, sid)
    if t["status"] == "ended":
        raise AgentError(409, "Task has already ended")
    if t["status"] != "accepted":
        raise AgentError(409, "Accept the task first")
    if t["agent"] != agent:
        raise AgentError(403, f"Task is assigned to {t['agent']}")
    return t


def send(account: Account, sid: str, agent: str, body: Any) -> Doc:
    """Post the agent's message through the same path as the REST API (webhooks fire)."""
    text = str(body or "")
    if not text.strip():
        raise AgentError(400, "body is required")
    t = _assigned(account, sid, agent)
    channel = _channel(account, t)
    try:
        if t["mode"] == "legacy":
            message = chat.post_message(account, channel, agent, text, "{}", Actor.agent(agent))
        else:
            message = conversations.post_message(account, channel, agent, text, "{}", Actor.agent(agent))
    except TwilioError as e:
        raise AgentError(409 if e.code == 50377 else 400, e.message) from None
    return view_message(t, message)


def end(account: Account, sid: str, agent: str) -> Doc:
    """End the chat: the agent leaves, then the channel closes (legacy INACTIVE / conversation closed)."""
    t = _assigned(account, sid, agent)
    channel = _channel(account, t)
    actor = Actor.agent(agent)
    try:
        _leave_and_close(account, t, channel, agent, actor)
    except TwilioError as e:
        raise AgentError(409, e.message) from None
    account.end_task_for(t["channel_sid"], agent)
    log.info("task %s ended by its agent", sid)
    return task(account, sid)


def _leave_and_close(account: Account, t: Doc, channel: Doc, agent: str, actor: Actor) -> None:
    if t["mode"] == "legacy":
        members, _ = account.store.list("chat_member", parent=channel["sid"], where={"identity": agent}, limit=1)
        if members:
            chat.remove_member(account, channel, members[0], actor)
        chat.close(account, channel, actor)
    else:
        participants, _ = account.store.list("participant", parent=channel["sid"], where={"identity": agent}, limit=1)
        if participants:
            conversations.remove_participant(account, channel, participants[0], actor)
        conversations.update_conversation(account, channel, {"state": "closed"}, actor)


def view_message(t: Doc, message: Doc) -> Dict[str, Any]:
    """A message as the desktop shows it, with the sender's role."""
    author = message.get("author", message.get("from"))
    if author == t["visitor_identity"]:
        role = "customer"
    elif t.get("agent") and author == t["agent"]:
        role = "agent"
    else:
        role = "system"
    attached = message.get("media") or []
    return {
        "sid": message["sid"],
        "index": message["index"],
        "author": author,
        "role": role,
        "body": message.get("body") or "",
        "attributes": loads(message.get("attributes")),
        "media": attached if isinstance(attached, list) else [attached],
        "date_created": message["date_created"],
    }


def transcript(account: Account, sid: str) -> List[Dict[str, Any]]:
    """Every message of the task's chat, oldest first."""
    t = task(account, sid)
    docs = (
        chat.messages(account, t["channel_sid"]) if t["mode"] == "legacy" else conversations.messages(account, t["channel_sid"])
    )
    return [view_message(t, m) for m in docs]


def view(account: Account, t: Doc) -> Dict[str, Any]:
    """A task as the agent API returns it."""
    return {
        "sid": t["sid"],
        "status": t["status"],
        "mode": t["mode"],
        "channel_sid": t["channel_sid"],
        "service_sid": t["service_sid"],
        "agent": t["agent"],
        "ended_by": t.get("ended_by"),
        "visitor_identity": t["visitor_identity"],
        "customer_friendly_name": t["customer_friendly_name"],
        "chat_friendly_name": t["chat_friendly_name"],
        "pre_engagement_data": t["pre_engagement_data"],
        "date_created": t["date_created"],
        "date_updated": t["date_updated"],
    }
