"""Flex Interactions v1: an interaction (KD) ties a customer's conversation to TaskRouter through a channel (UO).

Flex makes one for every web chat (Studio's "Send to Flex"), and a client can make one itself for a conversation
it created. Closing the interaction channel is how a client ends the chat on Flex's side: waiting tasks are
canceled, the agent leaves and the conversation closes, with the webhooks an agent's close fires.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

from flex_sandbox import conversations, taskrouter
from flex_sandbox.account import Account, Actor
from flex_sandbox.store import Doc, public
from flex_sandbox.wire import TwilioError, invalid, new_sid, not_found, now_iso, twilio_url

log = logging.getLogger(__name__)

INTERACTION, CHANNEL, PARTICIPANT, INVITE, TRANSFER = (
    "interaction",
    "interaction_channel",
    "interaction_participant",
    "interaction_invite",
    "interaction_transfer",
)
CHANNEL_TYPES = ("voice", "sms", "email", "web", "whatsapp", "chat", "messenger", "gbm")
CHAT_TYPES = ("web", "chat")
INITIATORS = ("customer", "agent", "api")
PARTICIPANT_TYPES = ("supervisor", "customer", "external", "agent", "unknown")


def orchestrator() -> Actor:
    """Flex's orchestration acting on the conversation: API-sourced, and its changes fire the conversation's webhooks."""
    return Actor("API", None, True)


# -- rendering --------------------------------------------------------------------
def _url(path: str) -> str:
    return twilio_url("flex-api", f"/v1/Interactions{path}")


def routing_properties(task: Doc) -> Dict[str, Any]:
    """The task as the Interactions API reports it under `routing.properties` (epoch seconds, like the spec's example)."""
    return {
        "account_sid": task["account_sid"],
        "workspace_sid": task["workspace_sid"],
        "sid": task["sid"],
        "date_created": int(taskrouter.epoch_of(task["date_created"])),
        "date_updated": int(taskrouter.epoch_of(task["date_updated"])),
        "attributes": task["attributes"],
        "assignment_status": task["assignment_status"],
        "workflow_sid": task["workflow_sid"],
        "workflow_name": task["workflow_friendly_name"],
        "queue_sid": task["task_queue_sid"],
        "queue_name": task["task_queue_friendly_name"],
        "priority": task["priority"],
        "age": taskrouter.age_of(task),
        "reason": task.get("reason") or "",
        "timeout": task["timeout"],
        "assignmentCounter": 1 if task.get("_reservation_sid") else 0,
        "task_channel_sid": task["task_channel_sid"],
        "task_channel_unique_name": task["task_channel_unique_name"],
        "routing_target": task.get("routing_target"),
        "task_queue_entered_date": int(taskrouter.epoch_of(task["task_queue_entered_date"])),
        "age_in_queue": taskrouter.age_of(task),
        "addons": task.get("addons") or "{}",
    }


def _routing(account: Account, task_sid: Optional[str]) -> Optional[Doc]:
    task = account.store.get(taskrouter.TASK, task_sid or "")
    return {"reservation": None, "properties": routing_properties(task)} if task else None


def render_interaction(account: Account, doc: Doc) -> Doc:
    url = _url(f"/{doc['sid']}")
    return {
        "sid": doc["sid"],
        "channel": doc["channel"],
        "routing": _routing(account, doc.get("_task_sid")),
        "interaction_context_sid": doc.get("interaction_context_sid"),
        "webhook_ttid": doc.get("webhook_ttid"),
        "url": url,
        "links": {"channels": f"{url}/Channels"},
    }


def render_channel(doc: Doc) -> Doc:
    url = _url(f"/{doc['interaction_sid']}/Channels/{doc['sid']}")
    return {
        **public(doc),
        "url": url,
        "links": {"participants": f"{url}/Participants", "invites": f"{url}/Invites", "transfers": f"{url}/Transfers"},
    }


def render_participant(doc: Doc) -> Doc:
    return {**public(doc), "url": _url(f"/{doc['interaction_sid']}/Channels/{doc['channel_sid']}/Participants/{doc['sid']}")}


def render_invite(account: Account, doc: Doc) -> Doc:
    return {
        "sid": doc["sid"],
        "interaction_sid": doc["interaction_sid"],
        "channel_sid": doc["channel_sid"],
        "routing": _routing(account, doc.get("_task_sid")),
        "url": _url(f"/{doc['interaction_sid']}/Channels/{doc['channel_sid']}/Invites/{doc['sid']}"),
    }


def render_transfer(account: Account, doc: Doc) -> Doc:
    """A transfer; its status follows the task it made: waiting = active, accepted = completed, canceled = failed."""
    status = doc.get("_status")
    if status is None:
        task = account.store.get(taskrouter.TASK, doc.get("_task_sid") or "")
        state = task["assignment_status"] if task else "canceled"
        status = "active" if state in taskrouter.WAITING else "failed" if state == "canceled" else "completed"
    return {
        **public(doc),
        "status": status,
        "url": _url(f"/{doc['interaction_sid']}/Channels/{doc['channel_sid']}/Transfers/{doc['sid']}"),
    }


# -- lookups ----------------------------------------------------------------------
def interaction(account: Account, sid: str) -> Doc:
    found = account.store.get(INTERACTION, sid)
    if found is None:
        raise not_found("The requested resource /Interactions/", sid)
    return found


def channel(account: Account, interaction_sid: str, sid: str) -> Doc:
    interaction(account, interaction_sid)
    found = account.store.get(CHANNEL, sid, parent=interaction_sid)
    if found is None:
        raise not_found(f"The requested resource /Interactions/{interaction_sid}/Channels/", sid)
    return found


def child(account: Account, kind: str, chan: Doc, sid: str, label: str) -> Doc:
    found = account.store.get(kind, sid, parent=chan["sid"])
    if found is None:
        raise not_found(f"The requested resource /Interactions/{chan['interaction_sid']}/Channels/{chan['sid']}/{label}/", sid)
    return found


def instance_sid(account: Account) -> str:
    """The account's Flex instance (GO), made the first time a transfer needs it."""
    sid = account.store.meta("flex_instance_sid")
    if not sid:
        sid = new_sid("GO")
        account.store.set_meta("flex_instance_sid", sid)
    return sid


# -- parsing ----------------------------------------------------------------------
def json_object(value: Any, name: str) -> Dict[str, Any]:
    """A JSON object parameter (form parameters arrive as JSON strings)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(f"{name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(f"{name} must be a JSON object")
    return value


def _routing_request(account: Account, routing: Dict[str, Any]) -> Dict[str, Any]:
    """Checked TaskRouter routing properties: the workspace must be this account's, the workflow (or queue) one of its."""
    if str(routing.get("type") or "").lower() != "taskrouter":
        raise invalid("Routing.type must be TaskRouter")
    props = json_object(routing.get("properties") or {}, "Routing.properties")
    workspace_sid = props.get("workspace_sid")
    if not workspace_sid:
        raise invalid("Routing.properties.workspace_sid is required")
    taskrouter.workspace(account, str(workspace_sid))
    if not props.get("workflow_sid") and not props.get("queue_sid"):
        raise invalid("Routing.properties.workflow_sid is required")
    attributes = props.get("attributes") or {}
    attributes = json_object(attributes, "Routing.properties.attributes")
    timeout = props.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= taskrouter.MAX_TIMEOUT:
            raise invalid(f"Routing.properties.timeout must be an integer between 1 and {taskrouter.MAX_TIMEOUT}")
    priority = props.get("priority")
    if priority is not None and (not isinstance(priority, int) or not 0 <= priority <= taskrouter.MAX_PRIORITY):
        raise invalid("Routing.properties.priority must be an integer between 0 and 2147483647")
    return {
        "workspace_sid": str(workspace_sid),
        "workflow_sid": props.get("workflow_sid"),
        "queue_sid": props.get("queue_sid"),
        "channel": props.get("task_channel_unique_name") or props.get("task_channel_sid") or "default",
        "attributes": attributes,
        "timeout": timeout,
        "priority": priority,
        "routing_target": props.get("worker_sid") or props.get("routing_target"),
    }


# -- interactions -----------------------------------------------------------------
def create(
    account: Account,
    channel_param: Dict[str, Any],
    routing_param: Optional[Dict[str, Any]],
    interaction_context_sid: Optional[str] = None,
    webhook_ttid: Optional[str] = None,
) -> Doc:
    """`POST /v1/Interactions`: an interaction for an existing conversation, and its task when Routing is given."""
    kind = channel_param.get("type")
    if kind not in CHANNEL_TYPES:
        raise invalid(f"Channel.type must be one of {', '.join(CHANNEL_TYPES)}")
    if kind not in CHAT_TYPES:
        raise invalid(f"Channel.type {kind} is not modelled by the Flex sandbox; use web or chat")
    initiated_by = channel_param.get("initiated_by", channel_param.get("initiatedBy"))
    if initiated_by not in INITIATORS:
        raise invalid(f"Channel.initiated_by must be one of {', '.join(INITIATORS)}")
    props = json_object(channel_param.get("properties") or {}, "Channel.properties")
    media_sid = props.get("media_channel_sid")
    if not media_sid:
        raise invalid("Channel.properties.media_channel_sid is required")
    conv = account.store.get("conversation", str(media_sid))
    if conv is None:
        raise invalid(f"Channel.properties.media_channel_sid {media_sid} is not a conversation of this account")
    if conv["state"] == "closed":
        raise conversations.closed_error(conv["sid"])
    routing = _routing_request(account, routing_param) if routing_param is not None else None
    conv_attributes = taskrouter.attributes_of(conv)
    participants, _ = account.store.list("participant", parent=conv["sid"], limit=1)
    identity = participants[0]["identity"] if participants else None
    attributes = dict(routing["attributes"]) if routing else {}
    customer = str(
        attributes.get("customerName")
        or attributes.get("name")
        or attributes.get("from")
        or conv_attributes.get("customer_friendly_name")
        or conv_attributes.get("from")
        or "Customer"
    )
    pre = attributes.get("pre_engagement_data", conv_attributes.get("pre_engagement_data"))
    with account.store.transaction():
        doc = _open(
            account,
            conv,
            kind=kind,
            initiated_by=str(initiated_by),
            identity=identity,
            routing=routing,
            attributes=attributes,
            chat={"customer_friendly_name": customer, "pre_engagement_data": pre},
        )
        doc.update(interaction_context_sid=interaction_context_sid, webhook_ttid=webhook_ttid)
        account.store.replace(INTERACTION, doc)
    return doc


def route_web_chat(
    account: Account, conv: Doc, identity: str, customer: str, chat_friendly_name: Optional[str], pre_engagement: Any
) -> Doc:
    """What the web chat address's Studio flow ("Send to Flex") does: an interaction and a task for the new chat."""
    attributes = {
        "channelType": "web",
        "pre_engagement_data": pre_engagement,
        "from": customer,
        "customerName": customer,
        "name": customer,
    }
    routing = {
        "workspace_sid": account.workspace_sid,
        "workflow_sid": account.workflow_sid,
        "queue_sid": None,
        "channel": "chat",
        "attributes": attributes,
        "timeout": None,
        "priority": None,
        "routing_target": None,
    }
    doc = _open(
        account,
        conv,
        kind="web",
        initiated_by="customer",
        identity=identity,
        routing=routing,
        attributes=attributes,
        chat={
            "customer_friendly_name": customer,
            "pre_engagement_data": pre_engagement,
            "chat_friendly_name": chat_friendly_name,
        },
    )
    task = account.store.get(taskrouter.TASK, doc["_task_sid"])
    assert task is not None
    return task


def _open(
    account: Account,
    conv: Doc,
    *,
    kind: str,
    initiated_by: str,
    identity: Optional[str],
    routing: Optional[Dict[str, Any]],
    attributes: Dict[str, Any],
    chat: Dict[str, Any],
) -> Doc:
    """Store the interaction, its channel and customer participant; route a task when asked (call in a transaction)."""
    now = now_iso()
    doc: Doc = {
        "sid": new_sid("KD"),
        "channel": {"type": kind, "sid": new_sid("UO")},
        "interaction_context_sid": None,
        "webhook_ttid": None,
        "_conversation_sid": conv["sid"],
        "_initiated_by": initiated_by,
        "_task_sid": None,
        "_date_created": now,
    }
    chan = {
        "sid": doc["channel"]["sid"],
        "interaction_sid": doc["sid"],
        "type": kind,
        "status": "active",
        "error_code": None,
        "error_message": None,
        "_conversation_sid": conv["sid"],
        "_date_created": now,
    }
    account.store.insert(INTERACTION, doc)
    account.store.insert(CHANNEL, chan, parent=doc["sid"])
    if identity:
        _participant(account, chan, "customer", identity, None)
    if routing is not None:
        task = _route(account, chan, conv, routing, attributes, identity, chat)
        doc["_task_sid"] = task["sid"]
        account.store.replace(INTERACTION, doc)
    log.info("interaction %s (channel %s) opened for conversation %s", doc["sid"], chan["sid"], conv["sid"])
    return doc


def _route(
    account: Account,
    chan: Doc,
    conv: Doc,
    routing: Dict[str, Any],
    attributes: Dict[str, Any],
    identity: Optional[str],
    chat: Dict[str, Any],
    invite_sid: Optional[str] = None,
) -> Doc:
    """A task for the channel's conversation: the routing's attributes plus the links Flex adds."""
    attributes = {
        **attributes,
        "conversationSid": conv["sid"],
        "flexInteractionSid": chan["interaction_sid"],
        "flexInteractionChannelSid": chan["sid"],
    }
    attributes.setdefault("channelType", chan["type"])
    if invite_sid:
        attributes["flexChannelInviteSid"] = invite_sid
    return taskrouter.create_task(
        account,
        routing["workspace_sid"],
        attributes=json.dumps(attributes),
        workflow_sid=routing["workflow_sid"],
        queue_sid=routing["queue_sid"],
        channel=routing["channel"],
        timeout=routing["timeout"],
        priority=routing["priority"],
        routing_target=routing["routing_target"],
        chat={
            "channel_sid": conv["sid"],
            "mode": "conversations",
            "service_sid": conv["chat_service_sid"],
            "visitor_identity": identity,
            "chat_friendly_name": conv.get("friendly_name"),
            "interaction_sid": chan["interaction_sid"],
            "interaction_channel_sid": chan["sid"],
            **chat,
        },
    )


# -- participants -----------------------------------------------------------------
def _participant(account: Account, chan: Doc, kind: str, identity: str, routing_properties: Optional[Dict[str, Any]]) -> Doc:
    doc = {
        "sid": new_sid("UT"),
        "interaction_sid": chan["interaction_sid"],
        "channel_sid": chan["sid"],
        "type": kind,
        "routing_properties": routing_properties,
        "_identity": identity,
        "_status": "joined",
    }
    return account.store.insert(PARTICIPANT, doc, parent=chan["sid"])


def participants(account: Account, chan: Doc) -> List[Doc]:
    docs, _ = account.store.list(PARTICIPANT, parent=chan["sid"])
    return docs


def agent_joined(account: Account, task: Doc) -> None:
    """An agent accepted an interaction's task: they become an agent participant of its channel."""
    chan = account.store.get(CHANNEL, task.get("_interaction_channel_sid") or "")
    if chan is None:
        return
    _participant(
        account,
        chan,
        "agent",
        task["_agent"],
        {"task_sid": task["sid"], "worker_sid": task["_worker_sid"], "reservation_sid": task["_reservation_sid"]},
    )


def agent_participant(account: Account, task: Doc) -> Optional[Doc]:
    """The channel participant an agent's task made."""
    chan_sid = task.get("_interaction_channel_sid")
    if not chan_sid:
        return None
    for doc in account.store.list(PARTICIPANT, parent=chan_sid)[0]:
        if (doc.get("routing_properties") or {}).get("task_sid") == task["sid"]:
            return doc
    return None


def agent_left(account: Account, task: Doc, status: str = "closed") -> None:
    """The agent's channel participant is done (closed or in wrap-up)."""
    doc = agent_participant(account, task)
    if doc is not None and doc["_status"] == "joined":
        doc["_status"] = status
        account.store.replace(PARTICIPANT, doc)


def add_participant(account: Account, chan: Doc, kind: str, media: Dict[str, Any], routing: Optional[Dict[str, Any]]) -> Doc:
    """`POST .../Participants`: someone joins the channel's conversation (MediaProperties.identity)."""
    if kind not in PARTICIPANT_TYPES:
        raise invalid(f"Type must be one of {', '.join(PARTICIPANT_TYPES)}")
    if chan["status"] in ("closed", "inactive"):
        raise invalid(f"Channel {chan['sid']} is {chan['status']}")
    identity = media.get("identity")
    if not identity or not isinstance(identity, str):
        raise invalid("MediaProperties.identity is required for a chat channel participant")
    conv = conversations.conversation(account, chan["_conversation_sid"])
    name = media.get("friendly_name") or media.get("friendlyName") or identity
    attributes = json.dumps({"friendlyName": name, "role": kind})
    with account.store.transaction():
        conversations.add_participant(account, conv, identity, attributes, orchestrator())
        return _participant(account, chan, kind, identity, routing)


def update_participant(account: Account, chan: Doc, participant: Doc, status: str) -> Doc:
    """`Status=closed|wrapup`: the participant leaves the conversation (onParticipantRemoved); an agent's task wraps up
    or completes. The conversation stays open (Twilio calls this parking)."""
    if status not in ("closed", "wrapup"):
        raise invalid("Status must be closed or wrapup")
    conv = account.store.get("conversation", chan["_conversation_sid"])
    if conv is not None and participant["_status"] == "joined":
        found, _ = account.store.list("participant", parent=conv["sid"], where={"identity": participant["_identity"]}, limit=1)
        if found:
            conversations.remove_participant(account, conv, found[0], orchestrator())
    participant["_status"] = status
    account.store.replace(PARTICIPANT, participant)
    task_sid = (participant.get("routing_properties") or {}).get("task_sid")
    task = account.store.get(taskrouter.TASK, task_sid or "")
    if task is not None and task["assignment_status"] in ("assigned", "wrapping"):
        if status == "wrapup":
            taskrouter.change_status(account, task, "wrapping")
        else:
            taskrouter.finish(account, task, "Agent left the interaction", participant["_identity"])
    return participant


# -- channels ---------------------------------------------------------------------
def update_channel(account: Account, chan: Doc, status: Optional[str], routing: Optional[Dict[str, Any]]) -> Doc:
    """`Status=closed`: waiting tasks canceled, agents leave, the conversation closes (webhooks fire); assigned tasks
    go to wrapping (`Routing={"status":"closed"}`: completed). `Status=inactive` needs that Routing and leaves the
    conversation inactive instead of closed."""
    if status not in ("closed", "inactive"):
        raise invalid("Status must be closed or inactive")
    routing_status = (routing or {}).get("status")
    if routing_status is not None and routing_status != "closed":
        raise invalid("Routing.status must be closed")
    if status == "inactive" and routing_status != "closed":
        raise invalid("Routing status is required when the channel status is set to inactive")
    if chan["status"] == "closed":
        raise invalid(f"Channel {chan['sid']} is already closed")
    with account.store.transaction():
        chan.update(status=status, _date_updated=now_iso())
        account.store.replace(CHANNEL, chan)
        for task in taskrouter.tasks_for_chat(account, chan["_conversation_sid"]):
            if task.get("_interaction_channel_sid") != chan["sid"] or task["assignment_status"] not in taskrouter.LIVE:
                continue
            if task["assignment_status"] in taskrouter.WAITING:
                taskrouter.change_status(account, task, "canceled", "Interaction channel closed")
            elif routing_status == "closed":
                taskrouter.finish(account, task, "Interaction channel closed")
            elif task["assignment_status"] == "assigned":
                taskrouter.change_status(account, task, "wrapping")
        conv = account.store.get("conversation", chan["_conversation_sid"])
        if conv is not None:
            _agents_leave(account, chan, conv)
            fresh = account.store.get("conversation", conv["sid"]) or conv
            if fresh["state"] != "closed" and fresh["state"] != status:
                conversations.update_conversation(account, fresh, {"state": status}, orchestrator())
    log.info("interaction channel %s %s", chan["sid"], status)
    return chan


def _agents_leave(account: Account, chan: Doc, conv: Doc) -> None:
    """Every agent of the channel leaves the conversation first, as when an agent ends the chat."""
    for doc in participants(account, chan):
        if doc["type"] != "agent" or doc["_status"] != "joined":
            continue
        found, _ = account.store.list("participant", parent=conv["sid"], where={"identity": doc["_identity"]}, limit=1)
        if found and conv["state"] != "closed":
            conversations.remove_participant(account, conv, found[0], orchestrator())
        doc["_status"] = "closed"
        account.store.replace(PARTICIPANT, doc)


# -- invites and transfers --------------------------------------------------------
def invite(account: Account, chan: Doc, routing_param: Dict[str, Any]) -> Doc:
    """`POST .../Invites`: a new task for the channel's conversation (e.g. to bring in another agent)."""
    if chan["status"] in ("closed", "inactive"):
        raise invalid(f"Channel {chan['sid']} is {chan['status']}")
    routing = _routing_request(account, routing_param)
    conv = conversations.conversation(account, chan["_conversation_sid"])
    customer = next((p for p in participants(account, chan) if p["type"] == "customer"), None)
    current = taskrouter.current_task(account, conv["sid"])
    chat = {
        "customer_friendly_name": (current or {}).get("_customer_friendly_name") or "Customer",
        "pre_engagement_data": (current or {}).get("_pre_engagement_data"),
    }
    doc = {"sid": new_sid("KG"), "interaction_sid": chan["interaction_sid"], "channel_sid": chan["sid"], "_task_sid": None}
    with account.store.transaction():
        task = _route(
            account,
            chan,
            conv,
            routing,
            routing["attributes"],
            customer["_identity"] if customer else None,
            chat,
            invite_sid=doc["sid"],
        )
        doc["_task_sid"] = task["sid"]
        account.store.insert(INVITE, doc, parent=chan["sid"])
    return doc


def record_transfer(account: Account, chan: Doc, old_task: Doc, new_task: Doc, target: str, from_sid: Optional[str]) -> Doc:
    """Remember a cold transfer of the channel's chat; its status follows the new task."""
    participant = agent_participant(account, old_task)
    now = now_iso()
    doc = {
        "sid": new_sid("UX"),
        "account_sid": account.sid,
        "instance_sid": instance_sid(account),
        "interaction_sid": chan["interaction_sid"],
        "channel_sid": chan["sid"],
        "execution_sid": new_sid("QW"),
        "type": "cold",
        "from": from_sid or (participant["sid"] if participant else old_task.get("_worker_sid")),
        "to": target,
        "note_sid": None,
        "summary_sid": None,
        "date_created": now,
        "date_updated": now,
        "_task_sid": new_task["sid"],
    }
    return account.store.insert(TRANSFER, doc, parent=chan["sid"])


def transfer_status(account: Account, doc: Doc, status: Any) -> Doc:
    """`POST .../Transfers/{UX}`: record the transfer as completed or failed (else it follows its task)."""
    if status is not None:
        if status not in ("active", "failed", "completed"):
            raise invalid("status must be active, failed or completed")
        doc["_status"] = status
    doc["date_updated"] = now_iso()
    account.store.replace(TRANSFER, doc)
    return doc


def chat_channel_for(account: Account, task: Doc) -> Optional[Doc]:
    """The interaction channel a chat task belongs to, if the chat has one."""
    return account.store.get(CHANNEL, task.get("_interaction_channel_sid") or "")


def not_transferable(chan: Doc) -> TwilioError:
    return invalid(f"Channel {chan['sid']} is {chan['status']}; only an active channel can be transferred")
