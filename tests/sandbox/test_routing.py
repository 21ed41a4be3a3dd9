"""TaskRouter and Flex Interactions in the sandbox, through the real `twilio` SDK against a real sandbox process.

Every chat becomes a TaskRouter task; agents accept, end and transfer through the agent API; statistics come
from what really happened; a pending task's TTL cancels it; closing an interaction channel ends the chat.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from flex_sandbox.account import Account
from flex_sandbox.credentials import DEVELOPMENT
from flex_sandbox.store import Store
from northwind.processes import wait_for
from northwind.servers import Sandbox, start_sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.webhook_receiver import WebhookReceiver

AUTH = (DEVELOPMENT.account_sid, DEVELOPMENT.auth_token)


# -- helpers ----------------------------------------------------------------------
def workspace(sandbox: Sandbox) -> Any:
    return sandbox.client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"])


def rest(sandbox: Sandbox, method: str, path: str, data: Optional[Dict[str, Any]] = None, **kwargs: Any) -> requests.Response:
    """A raw Twilio REST call (status codes and bodies exactly as sent)."""
    return requests.request(method, sandbox.base_url + path, data=data, auth=AUTH, timeout=10, **kwargs)


def agent_task(sandbox: Sandbox, channel_sid: str) -> Dict[str, Any]:
    """The chat's current task in the agent API (a transfer makes a newer one)."""
    tasks = sandbox.agent("GET", "/agent/api/tasks").json()["tasks"]
    return next(t for t in tasks if t["channel_sid"] == channel_sid)


def accept(sandbox: Sandbox, task_sid: str, agent: str) -> Dict[str, Any]:
    response = sandbox.agent("POST", f"/agent/api/tasks/{task_sid}/accept", {"agent": agent})
    assert response.status_code == 200, response.text
    return response.json()


def routing(sandbox: Sandbox, **properties: Any) -> Dict[str, Any]:
    base = {
        "workspace_sid": sandbox.info["workspace_sid"],
        "workflow_sid": sandbox.info["workflow_sid"],
        "task_channel_unique_name": "chat",
    }
    return {"type": "TaskRouter", "properties": {**base, **properties}}


def plugin_conversation(sandbox: Sandbox, webhooks: Optional[WebhookReceiver] = None, hook: str = "") -> Dict[str, str]:
    """What the plugin does in `interactions` mode before handing over: conversation, visitor, webhook, a message."""
    conversations = sandbox.client.conversations.v1.conversations
    ref = f"handoff-{time.monotonic_ns()}"
    conv = conversations.create(unique_name=ref, attributes=json.dumps({"pre_engagement_data": {"intent": "human"}}))
    visitor = f"visitor-{ref}"
    conversations(conv.sid).participants.create(identity=visitor)
    if webhooks is not None:
        conversations(conv.sid).webhooks.create(
            target="webhook",
            configuration_url=webhooks.url(hook),
            configuration_filters=["onParticipantAdded", "onParticipantRemoved", "onConversationStateUpdated"],
        )
    conversations(conv.sid).messages.create(author=visitor, body="I need a human")
    return {"conversation_sid": conv.sid, "visitor": visitor}


def hand_over(sandbox: Sandbox, conversation_sid: str, **properties: Any) -> Dict[str, Any]:
    """`POST /v1/Interactions` for the conversation; the raw response body (its status is checked)."""
    channel = {"type": "web", "initiatedBy": "customer", "properties": {"media_channel_sid": conversation_sid}}
    response = rest(
        sandbox,
        "POST",
        "/flex-api/v1/Interactions",
        {"Channel": json.dumps(channel), "Routing": json.dumps(routing(sandbox, **properties))},
    )
    assert response.status_code == 200, response.text
    return response.json()


def events(webhooks: WebhookReceiver, hook: str) -> List[str]:
    return webhooks.events(hook)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox of our own: statistics and worker counts start from nothing."""
    server = start_sandbox(tmp_path, name="routing-sandbox")
    try:
        yield server
    finally:
        server.process.stop()


# -- provisioning -----------------------------------------------------------------
def test_every_account_has_the_flex_workspace(sandbox: Sandbox) -> None:
    taskrouter = sandbox.client.taskrouter.v1
    found = taskrouter.workspaces.list(friendly_name="Flex Task Assignment")
    assert [w.sid for w in found] == [sandbox.info["workspace_sid"]]
    assert taskrouter.workspaces.list(friendly_name="nope") == []
    ws = workspace(sandbox).fetch()
    assert ws.default_activity_name == "Offline" and ws.multi_task_enabled is True
    activities = {a.friendly_name: a.available for a in workspace(sandbox).activities.list()}
    assert activities == {"Offline": False, "Available": True, "Unavailable": False, "Break": False}
    assert [a.friendly_name for a in workspace(sandbox).activities.list(available="true")] == ["Available"]
    assert {c.unique_name for c in workspace(sandbox).task_channels.list()} >= {"default", "chat", "voice"}
    queues = workspace(sandbox).task_queues.list(friendly_name="Everyone")
    assert [q.sid for q in queues] == [sandbox.info["task_queue_sid"]] and queues[0].target_workers == "1==1"
    assert workspace(sandbox).task_queues(queues[0].sid).fetch().friendly_name == "Everyone"
    flows = workspace(sandbox).workflows.list(friendly_name="Assign to Anyone")
    assert [f.sid for f in flows] == [sandbox.info["workflow_sid"]]
    config = json.loads(workspace(sandbox).workflows(flows[0].sid).fetch().configuration)
    assert config["task_routing"]["default_filter"]["queue"] == sandbox.info["task_queue_sid"]
    with pytest.raises(TwilioRestException) as missing:
        sandbox.client.taskrouter.v1.workspaces("WS" + "0" * 32).fetch()
    assert missing.value.status == 404 and missing.value.code == 20404


def test_a_state_file_from_before_taskrouter_gets_a_workspace_and_its_tasks_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "before.db"
    Store(str(db)).close()
    owner, channel, old_task = DEVELOPMENT.account_sid, "CH" + "3" * 32, "WT" + "4" * 32
    with sqlite3.connect(db) as conn:  # provisioned before TaskRouter: messaging keys only, an old-style task
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"{owner}:provisioned", "2026-11-01T00:00:00Z"))
        doc = {"sid": old_task, "channel_sid": channel, "mode": "conversations", "status": "accepted", "agent": "alice"}
        insert = "INSERT INTO resources (kind, sid, parent, doc, account) VALUES ('task', ?, '', ?, ?)"
        conn.execute(insert, (old_task, json.dumps(doc), owner))
    store = Store(str(db))
    try:
        account = Account(DEVELOPMENT, store)
        assert account.workspace_sid.startswith("WS") and account.task_queue_sid.startswith("WQ")
        task = account.store.get("task", old_task)
        assert task is not None and task["assignment_status"] == "assigned" and task["_agent"] == "alice"
        assert account.task_for_channel(channel) == task
        again = Account(DEVELOPMENT, store)  # provisioning and the upgrade happen once
        assert again.workspace_sid == account.workspace_sid
        assert len(again.store.list("tr_workspace")[0]) == 1 and again.store.get("task", old_task) == task
    finally:
        store.close()


# -- every chat gets a task ---------------------------------------------------------
def test_a_legacy_web_channel_gets_a_task_in_everyone(sandbox: Sandbox) -> None:
    pre = {"intent": "human", "order": "A-1"}
    channel_sid = new_web_channel(sandbox, "visitor-routing", pre)
    view = agent_task(sandbox, channel_sid)
    task = workspace(sandbox).tasks(view["sid"]).fetch()
    attributes = json.loads(task.attributes)
    assert attributes == {"channelSid": channel_sid, "channelType": "web", "name": "Ada Visitor", "pre_engagement_data": pre}
    assert task.assignment_status == "pending" and task.task_queue_sid == sandbox.info["task_queue_sid"]
    assert task.workflow_sid == sandbox.info["workflow_sid"] and task.task_channel_unique_name == "chat"
    assert task.timeout == 86400 and task.task_queue_friendly_name == "Everyone"
    assert view["assignment_status"] == "pending" and view["kind"] == "chat" and view["attributes"] == attributes
    assert view["queue_position"] >= 1 and view["task_queue_sid"] == task.task_queue_sid and view["reason"] is None


def test_a_web_chat_gets_an_interaction_and_a_task_like_send_to_flex(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox, {"intent": "human"}, customer="Lin")
    view = agent_task(sandbox, chat.conversation_sid)
    attributes = view["attributes"]
    assert attributes["conversationSid"] == chat.conversation_sid and attributes["channelType"] == "web"
    assert attributes["pre_engagement_data"] == {"intent": "human"}
    assert attributes["from"] == attributes["customerName"] == "Lin"
    interaction = sandbox.client.flex_api.v1.interaction(attributes["flexInteractionSid"]).fetch()
    assert interaction.channel["sid"] == attributes["flexInteractionChannelSid"]
    assert interaction.routing["properties"]["sid"] == view["sid"]
    channel = sandbox.client.flex_api.v1.interaction(interaction.sid).channels(interaction.channel["sid"]).fetch()
    assert channel.status == "active" and channel.type == "web"
    participants = sandbox.client.flex_api.v1.interaction(interaction.sid).channels(channel.sid).participants.list()
    assert [p.type for p in participants] == ["customer"]


def test_post_interactions_routes_the_plugins_conversation(sandbox: Sandbox) -> None:
    conv = plugin_conversation(sandbox)
    body = hand_over(sandbox, conv["conversation_sid"], attributes={"handoff_ref": "r-1", "name": "Grace"}, timeout=600)
    assert body["sid"].startswith("KD") and body["channel"]["type"] == "web" and body["channel"]["sid"].startswith("UO")
    properties = body["routing"]["properties"]
    assert properties["sid"].startswith("WT") and properties["assignment_status"] == "pending"
    assert properties["workspace_sid"] == sandbox.info["workspace_sid"] and properties["timeout"] == 600
    task = workspace(sandbox).tasks(properties["sid"]).fetch()
    assert json.loads(task.attributes) == {
        "handoff_ref": "r-1",
        "name": "Grace",
        "conversationSid": conv["conversation_sid"],
        "flexInteractionSid": body["sid"],
        "flexInteractionChannelSid": body["channel"]["sid"],
        "channelType": "web",
    }
    view = sandbox.agent("GET", f"/agent/api/tasks/{task.sid}").json()
    assert view["channel_sid"] == conv["conversation_sid"] and view["visitor_identity"] == conv["visitor"]
    assert view["customer_friendly_name"] == "Grace" and view["pre_engagement_data"] == {"intent": "human"}
    # the SDK's own call works too, with `initiated_by`
    again = plugin_conversation(sandbox)
    made = sandbox.client.flex_api.v1.interaction.create(
        channel={"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": again["conversation_sid"]}},
        routing=routing(sandbox),
    )
    assert made.routing["properties"]["sid"].startswith("WT")


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": "CH" + "0" * 32}}, "not a conversation"),
        ({"type": "fax", "initiated_by": "customer", "properties": {}}, "Channel.type"),
        ({"type": "web", "properties": {"media_channel_sid": "CH" + "0" * 32}}, "initiated_by"),
        ({"type": "web", "initiated_by": "customer", "properties": {}}, "media_channel_sid"),
    ],
)
def test_interactions_refuse_what_twilio_refuses(sandbox: Sandbox, channel: Dict[str, Any], message: str) -> None:
    response = rest(sandbox, "POST", "/flex-api/v1/Interactions", {"Channel": json.dumps(channel)})
    assert response.status_code == 400 and response.json()["code"] == 20001 and message in response.json()["message"]
    assert rest(sandbox, "POST", "/flex-api/v1/Interactions", {}).status_code == 400
    bad_routing = routing(sandbox, workspace_sid="WS" + "0" * 32)
    conv = plugin_conversation(sandbox)
    ok_channel = {"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": conv["conversation_sid"]}}
    response = rest(
        sandbox, "POST", "/flex-api/v1/Interactions", {"Channel": json.dumps(ok_channel), "Routing": json.dumps(bad_routing)}
    )
    assert response.status_code == 404


# -- tasks ------------------------------------------------------------------------
def message_task(sandbox: Sandbox, ref: str, **extra: Any) -> Any:
    attributes = {"type": "handoff_message", "name": "Ada", "message": "Call me back", "ref": ref, "context": {"order": "A-7"}}
    return workspace(sandbox).tasks.create(
        workflow_sid=sandbox.info["workflow_sid"], task_channel="default", attributes=json.dumps(attributes), **extra
    )


def test_task_lists_filter_order_and_evaluate_attributes(sandbox: Sandbox) -> None:
    ref = f"list-{time.monotonic_ns()}"
    first, second, third = (message_task(sandbox, ref) for _ in range(3))
    tasks = workspace(sandbox).tasks
    tasks(third.sid).update(assignment_status="canceled", reason="not needed")
    expression = f'type == "handoff_message" and ref == "{ref}"'
    waiting = tasks.list(
        assignment_status=["pending", "reserved"],
        task_queue_sid=sandbox.info["task_queue_sid"],
        evaluate_task_attributes=expression,
        ordering="DateCreated:asc",
    )
    assert [t.sid for t in waiting] == [first.sid, second.sid]
    newest_first = tasks.list(evaluate_task_attributes=expression, ordering="DateCreated:desc")
    assert [t.sid for t in newest_first] == [third.sid, second.sid, first.sid]
    assert [t.sid for t in tasks.list(assignment_status=["canceled"], evaluate_task_attributes=expression)] == [third.sid]
    nobody = f'ref == "{ref}" and name == "Bo"'
    assert tasks.list(workflow_sid=sandbox.info["workflow_sid"], evaluate_task_attributes=nobody) == []
    for bad in ({"EvaluateTaskAttributes": "ref IN ['x']"}, {"AssignmentStatus": "lost"}, {"Ordering": "Age:asc"}):
        response = rest(sandbox, "GET", f"/taskrouter/v1/Workspaces/{sandbox.info['workspace_sid']}/Tasks", params=bad)
        assert response.status_code == 400 and response.json()["code"] == 20001, bad


def test_task_updates_follow_twilios_rules(sandbox: Sandbox) -> None:
    task = message_task(sandbox, "rules", timeout=3600, priority=5)
    assert task.timeout == 3600 and task.priority == 5 and task.assignment_status == "pending"
    tasks = workspace(sandbox).tasks
    with pytest.raises(TwilioRestException) as no_reason:
        tasks(task.sid).update(assignment_status="canceled")
    assert no_reason.value.status == 400 and "Reason" in no_reason.value.msg
    with pytest.raises(TwilioRestException) as not_assigned:
        tasks(task.sid).update(assignment_status="completed", reason="done")
    assert not_assigned.value.status == 400 and "not assigned or wrapping" in not_assigned.value.msg
    updated = tasks(task.sid).update(attributes=json.dumps({"type": "handoff_message", "seen": True}))
    assert json.loads(updated.attributes)["seen"] is True
    canceled = tasks(task.sid).update(assignment_status="canceled", reason="Visitor went away")
    assert canceled.assignment_status == "canceled" and canceled.reason == "Visitor went away"
    with pytest.raises(TwilioRestException) as again:
        tasks(task.sid).update(assignment_status="canceled", reason="twice")
    assert again.value.status == 400 and "not pending or reserved" in again.value.msg
    view = sandbox.agent("GET", f"/agent/api/tasks/{task.sid}").json()
    assert view["status"] == "ended" and view["reason"] == "Visitor went away" and view["kind"] == "message"


def test_queue_positions_follow_the_queue(sandbox: Sandbox) -> None:
    a, b = new_web_chat(sandbox), new_web_chat(sandbox)
    first, second = agent_task(sandbox, a.conversation_sid), agent_task(sandbox, b.conversation_sid)
    assert second["queue_position"] == first["queue_position"] + 1
    queue = workspace(sandbox).tasks.list(
        assignment_status=["pending", "reserved"], task_queue_sid=sandbox.info["task_queue_sid"], ordering="DateCreated:asc"
    )
    order = [t.sid for t in queue]
    assert order.index(second["sid"]) + 1 == second["queue_position"]
    accept(sandbox, first["sid"], "positions-agent")
    assert agent_task(sandbox, b.conversation_sid)["queue_position"] == second["queue_position"] - 1
    assert agent_task(sandbox, a.conversation_sid)["queue_position"] is None


def test_accept_is_a_reservation_and_end_completes_the_task(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    sid = agent_task(sandbox, chat.conversation_sid)["sid"]
    assert accept(sandbox, sid, "reserve-agent")["assignment_status"] == "assigned"
    task = workspace(sandbox).tasks(sid)
    reservations = task.reservations.list()
    assert len(reservations) == 1 and reservations[0].reservation_status == "accepted"
    assert reservations[0].worker_name == "reserve-agent" and reservations[0].worker_sid.startswith("WK")
    assert task.reservations(reservations[0].sid).fetch().task_sid == sid
    ended = sandbox.agent("POST", f"/agent/api/tasks/{sid}/end", {"agent": "reserve-agent"}).json()
    assert ended["status"] == "ended" and ended["assignment_status"] == "completed"
    assert task.fetch().reason == "Chat ended by the agent"
    assert task.reservations.list()[0].reservation_status == "completed"


def test_customer_leaving_cancels_a_waiting_task_and_completes_an_assigned_one(sandbox: Sandbox) -> None:
    waiting = new_web_chat(sandbox)
    sandbox.client.conversations.v1.conversations(waiting.conversation_sid).update(state="closed")
    view = agent_task(sandbox, waiting.conversation_sid)
    assert view["assignment_status"] == "canceled" and view["ended_by"] == "customer"
    interaction = sandbox.client.flex_api.v1.interaction(view["interaction_sid"])
    assert interaction.channels(view["interaction_channel_sid"]).fetch().status == "closed"

    legacy = new_web_channel(sandbox, "visitor-leaves")
    accept(sandbox, agent_task(sandbox, legacy)["sid"], "legacy-agent")
    sandbox.client.flex_api.v1.web_channel(legacy).update(chat_status="inactive")
    assert agent_task(sandbox, legacy)["assignment_status"] == "completed"

    deleted = new_web_chat(sandbox)
    sandbox.client.conversations.v1.conversations(deleted.conversation_sid).delete()
    assert agent_task(sandbox, deleted.conversation_sid)["assignment_status"] == "canceled"


# -- time to live ------------------------------------------------------------------
def test_a_pending_task_past_its_timeout_is_canceled(sandbox: Sandbox) -> None:
    task = message_task(sandbox, "ttl", timeout=1)
    fetched = wait_for(
        lambda: (t := workspace(sandbox).tasks(task.sid).fetch()).assignment_status == "canceled" and t, 5, "TTL cancel"
    )
    assert fetched.reason == "Task TTL Exceeded"
    kept = message_task(sandbox, "ttl-kept", timeout=1)
    sandbox.agent("POST", f"/agent/api/tasks/{kept.sid}/accept", {"agent": "ttl-agent"}).raise_for_status()
    witness = message_task(sandbox, "ttl-witness", timeout=1)  # made later: once it expires, kept's TTL has passed too
    wait_for(lambda: workspace(sandbox).tasks(witness.sid).fetch().assignment_status == "canceled", 5, "witness TTL")
    assert workspace(sandbox).tasks(kept.sid).fetch().assignment_status == "assigned"  # accepted: no longer waiting


def test_flex_sandbox_task_timeout_overrides_the_workflow_default(tmp_path: Path) -> None:
    server = start_sandbox(tmp_path, name="ttl-sandbox", extra_env={"FLEX_SANDBOX_TASK_TIMEOUT": "1"})
    try:
        chat = new_web_chat(server)
        view = wait_for(lambda: (v := agent_task(server, chat.conversation_sid))["status"] == "ended" and v, 5, "TTL")
        assert view["assignment_status"] == "canceled" and view["reason"] == "Task TTL Exceeded"
        assert workspace(server).tasks(view["sid"]).fetch().timeout == 1
        assert server.client.conversations.v1.conversations(chat.conversation_sid).fetch().state == "active"
    finally:
        server.process.stop()


# -- statistics ----------------------------------------------------------------------
def test_queue_statistics_come_from_what_happened(fresh: Sandbox) -> None:
    queue = workspace(fresh).task_queues(fresh.info["task_queue_sid"])
    fresh.agent("POST", "/agent/api/agents", {"agent": "alice", "available": True}).raise_for_status()
    fresh.agent("POST", "/agent/api/agents", {"agent": "bob", "available": False}).raise_for_status()
    empty = queue.real_time_statistics().fetch()
    assert empty.total_available_workers == 1 and empty.total_eligible_workers == 2 and empty.total_tasks == 0
    by_activity = {a["friendly_name"]: a["workers"] for a in empty.activity_statistics}
    assert by_activity == {"Offline": 1, "Available": 1, "Unavailable": 0, "Break": 0}

    first, second = new_web_chat(fresh), new_web_chat(fresh)
    first_sid = agent_task(fresh, first.conversation_sid)["sid"]
    waiting = wait_for(lambda: (s := queue.real_time_statistics().fetch()).longest_task_waiting_age >= 1 and s, 5, "age 1 s")
    assert waiting.tasks_by_status == {"pending": 2, "reserved": 0, "assigned": 0, "wrapping": 0}
    assert waiting.longest_task_waiting_sid == first_sid and waiting.total_tasks == 2
    accept(fresh, first_sid, "alice")
    fresh.client.conversations.v1.conversations(second.conversation_sid).update(state="closed")

    now = queue.real_time_statistics().fetch()
    assert now.tasks_by_status == {"pending": 0, "reserved": 0, "assigned": 1, "wrapping": 0}
    assert now.longest_task_waiting_sid is None
    stats = queue.cumulative_statistics().fetch()
    assert stats.tasks_entered == 2 and stats.reservations_created == stats.reservations_accepted == 1
    assert stats.tasks_canceled == 1 and stats.tasks_completed == 0
    accepted = stats.wait_duration_until_accepted
    assert accepted["min"] == accepted["max"] == accepted["total"] == accepted["avg"] == stats.avg_task_acceptance_time >= 1
    assert stats.wait_duration_until_canceled["total"] >= 1
    long_ago = queue.cumulative_statistics().fetch(end_date="2020-01-01T00:00:00Z", minutes=5)
    assert long_ago.tasks_entered == 0 and long_ago.avg_task_acceptance_time == 0


# -- availability --------------------------------------------------------------------
def test_agents_go_available_and_offline_as_taskrouter_workers(sandbox: Sandbox) -> None:
    name = f"avail-{time.monotonic_ns()}"
    on = sandbox.agent("POST", "/agent/api/agents", {"agent": name, "available": True}).json()
    assert on["available"] is True and on["activity"] == "Available" and on["worker_sid"].startswith("WK")
    workers = workspace(sandbox).workers
    assert [w.sid for w in workers.list(friendly_name=name)] == [on["worker_sid"]]
    assert on["worker_sid"] in {w.sid for w in workers.list(available="true")}
    off = sandbox.agent("POST", "/agent/api/agents", {"agent": name, "available": False}).json()
    assert off["activity"] == "Offline" and off["worker_sid"] == on["worker_sid"]
    assert on["worker_sid"] in {w.sid for w in workers.list(activity_name="Offline")}
    assert on["worker_sid"] not in {w.sid for w in workers.list(available="true")}
    # the REST API moves the same worker, and the agent API sees it
    break_sid = next(a.sid for a in workspace(sandbox).activities.list(friendly_name="Break"))
    assert workers(on["worker_sid"]).update(activity_sid=break_sid).activity_name == "Break"
    listed = {a["agent"]: a for a in sandbox.agent("GET", "/agent/api/agents").json()["agents"]}
    assert listed[name]["activity"] == "Break" and listed[name]["available"] is False
    with pytest.raises(TwilioRestException) as duplicate:
        workers.create(friendly_name=name.upper())
    assert duplicate.value.status == 409
    created = workers.create(friendly_name=f"{name}-rest")
    assert created.activity_name == "Offline" and created.available is False
    # accepting auto-creates a missing worker, Available
    chat = new_web_chat(sandbox)
    newcomer = f"{name}-new"
    accept(sandbox, agent_task(sandbox, chat.conversation_sid)["sid"], newcomer)
    assert workers.list(friendly_name=newcomer)[0].activity_name == "Available"


# -- message tasks --------------------------------------------------------------------
def test_a_message_task_is_shown_and_completed(sandbox: Sandbox) -> None:
    task = message_task(sandbox, "message")
    view = sandbox.agent("GET", f"/agent/api/tasks/{task.sid}").json()
    assert view["kind"] == "message" and view["status"] == "pending" and view["channel_sid"] is None
    assert view["customer_friendly_name"] == "Ada" and view["attributes"]["message"] == "Call me back"
    assert sandbox.agent("GET", f"/agent/api/tasks/{task.sid}/messages").json() == {"messages": []}
    done = sandbox.agent("POST", f"/agent/api/tasks/{task.sid}/complete", {"agent": "msg-agent"}).json()
    assert done["assignment_status"] == "completed" and done["agent"] == "msg-agent" and done["status"] == "ended"
    assert workspace(sandbox).tasks(task.sid).fetch().reason == "Completed by the agent"
    again = sandbox.agent("POST", f"/agent/api/tasks/{task.sid}/complete", {"agent": "msg-agent"})
    assert again.status_code == 409
    chat = new_web_chat(sandbox)
    chat_task = agent_task(sandbox, chat.conversation_sid)["sid"]
    assert sandbox.agent("POST", f"/agent/api/tasks/{chat_task}/complete", {"agent": "msg-agent"}).status_code == 409


# -- transfers -------------------------------------------------------------------------
def test_transfer_to_an_agent_fires_the_visitor_side_webhooks(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(
        target="webhook",
        configuration_url=webhooks.url(hook),
        configuration_filters=["onParticipantAdded", "onParticipantRemoved", "onConversationStateUpdated"],
    )
    first = agent_task(sandbox, chat.conversation_sid)
    accept(sandbox, first["sid"], "alice-t")
    moved = sandbox.agent("POST", f"/agent/api/tasks/{first['sid']}/transfer", {"agent": "alice-t", "to_agent": "bob-t"})
    assert moved.status_code == 201, moved.text
    new = moved.json()
    assert new["sid"] != first["sid"] and new["status"] == "pending" and new["target_agent"] == "bob-t"
    assert new["attributes"] == first["attributes"] and new["transferred_from"] == first["sid"]
    old = sandbox.agent("GET", f"/agent/api/tasks/{first['sid']}").json()
    assert old["assignment_status"] == "completed" and old["reason"] == "Transferred to bob-t"
    assert sandbox.agent("POST", f"/agent/api/tasks/{new['sid']}/accept", {"agent": "carol-t"}).status_code == 409
    accept(sandbox, new["sid"], "bob-t")
    got = webhooks.wait(hook, 3)
    assert [(r.params["EventType"], r.params["Identity"]) for r in got] == [
        ("onParticipantAdded", "alice-t"),
        ("onParticipantRemoved", "alice-t"),
        ("onParticipantAdded", "bob-t"),
    ]
    assert conversation.fetch().state == "active"
    assert sorted(p.identity for p in conversation.participants.list()) == sorted([chat.identity, "bob-t"])
    fetched = rest(sandbox, "GET", f"/taskrouter/v1/Workspaces/{sandbox.info['workspace_sid']}/Tasks/{new['sid']}").json()
    assert fetched["routing_target"].startswith("WK")  # the SDK 8.2 has no routing_target attribute


def test_transfer_to_the_queue_in_a_legacy_chat(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    channel_sid = new_web_channel(sandbox, "visitor-queue-transfer")
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(channel_sid)
    channel.webhooks.create(
        type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMemberAdded", "onMemberRemoved"]
    )
    first = agent_task(sandbox, channel_sid)
    accept(sandbox, first["sid"], "dana-q")
    for bad in ({"to_agent": "dana-q"}, {}, {"to_agent": "x", "to_queue": "Everyone"}, {"to_queue": "Nowhere"}):
        response = sandbox.agent("POST", f"/agent/api/tasks/{first['sid']}/transfer", {"agent": "dana-q", **bad})
        assert response.status_code in (400, 404), bad
    new = sandbox.agent("POST", f"/agent/api/tasks/{first['sid']}/transfer", {"agent": "dana-q", "to_queue": "Everyone"}).json()
    assert new["target_agent"] is None and new["task_queue_sid"] == sandbox.info["task_queue_sid"] and new["queue_position"]
    accept(sandbox, new["sid"], "erin-q")
    got = webhooks.wait(hook, 3)
    assert [(r.params["EventType"], r.params["Identity"]) for r in got] == [
        ("onMemberAdded", "dana-q"),
        ("onMemberRemoved", "dana-q"),
        ("onMemberAdded", "erin-q"),
    ]


def test_interaction_transfers_api(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    conv = plugin_conversation(sandbox, webhooks, hook)
    body = hand_over(sandbox, conv["conversation_sid"])
    kd, uo, task_sid = body["sid"], body["channel"]["sid"], body["routing"]["properties"]["sid"]
    accept(sandbox, task_sid, "frank-x")
    base = f"/flex-api/v1/Interactions/{kd}/Channels/{uo}/Transfers"
    participants = rest(sandbox, "GET", f"/flex-api/v1/Interactions/{kd}/Channels/{uo}/Participants").json()["participants"]
    agent_ut = next(p["sid"] for p in participants if p["type"] == "agent")
    assert participants[-1]["routing_properties"]["task_sid"] == task_sid  # not an attribute of the SDK 8.2 instance
    grace = sandbox.agent("POST", "/agent/api/agents", {"agent": "grace-x", "available": True}).json()
    assert rest(sandbox, "POST", base, json={"type": "warm", "to": grace["worker_sid"]}).status_code == 400
    assert rest(sandbox, "POST", base, json={"type": "cold", "to": "XX123"}).status_code == 400
    made = rest(sandbox, "POST", base, json={"type": "cold", "from": agent_ut, "to": grace["worker_sid"]})
    assert made.status_code == 201, made.text
    transfer = made.json()
    assert transfer["sid"].startswith("UX") and transfer["status"] == "active" and transfer["type"] == "cold"
    assert transfer["from"] == agent_ut and transfer["to"] == grace["worker_sid"]
    new_task = agent_task(sandbox, conv["conversation_sid"])
    assert new_task["target_agent"] == "grace-x" and new_task["interaction_channel_sid"] == uo
    accept(sandbox, new_task["sid"], "grace-x")
    assert rest(sandbox, "GET", f"{base}/{transfer['sid']}").json()["status"] == "completed"
    updated = rest(sandbox, "POST", f"{base}/{transfer['sid']}", json={"status": "failed"})
    assert updated.status_code == 200 and updated.json()["status"] == "failed"
    # Named by their worker, the transferring agent is recorded as their participant all the same (`from` is a UT… sid).
    participants = rest(sandbox, "GET", f"/flex-api/v1/Interactions/{kd}/Channels/{uo}/Participants").json()["participants"]
    grace_ut = next(p["sid"] for p in participants if p["type"] == "agent" and p["sid"] != agent_ut)
    queue = workspace(sandbox).task_queues.list()[0].sid
    again = rest(sandbox, "POST", base, json={"type": "cold", "from": grace["worker_sid"], "to": queue})
    assert again.status_code == 201, again.text
    assert again.json()["from"] == grace_ut
    got = webhooks.wait(hook, 3)
    assert [(r.params["EventType"], r.params["Identity"]) for r in got[:3]] == [
        ("onParticipantAdded", "frank-x"),
        ("onParticipantRemoved", "frank-x"),
        ("onParticipantAdded", "grace-x"),
    ]


def test_invites_make_a_new_task_for_the_channel(sandbox: Sandbox) -> None:
    conv = plugin_conversation(sandbox)
    body = hand_over(sandbox, conv["conversation_sid"])
    channel = sandbox.client.flex_api.v1.interaction(body["sid"]).channels(body["channel"]["sid"])
    invite = channel.invites.create(routing=routing(sandbox, attributes={"reason": "second opinion"}))
    assert invite.sid.startswith("KG")
    task_sid = invite.routing["properties"]["sid"]
    attributes = json.loads(workspace(sandbox).tasks(task_sid).fetch().attributes)
    assert attributes["flexChannelInviteSid"] == invite.sid and attributes["reason"] == "second opinion"
    assert attributes["conversationSid"] == conv["conversation_sid"]
    assert [i.sid for i in channel.invites.list()] == [invite.sid]


# -- closing an interaction ---------------------------------------------------------------
def test_closing_the_interaction_channel_ends_the_chat(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    conv = plugin_conversation(sandbox, webhooks, hook)
    body = hand_over(sandbox, conv["conversation_sid"])
    kd, uo, task_sid = body["sid"], body["channel"]["sid"], body["routing"]["properties"]["sid"]
    accept(sandbox, task_sid, "henry-c")
    closed = sandbox.client.flex_api.v1.interaction(kd).channels(uo).update(status="closed")
    assert closed.status == "closed"
    assert workspace(sandbox).tasks(task_sid).fetch().assignment_status == "wrapping"  # the spec: no Routing = wrapping
    assert sandbox.client.conversations.v1.conversations(conv["conversation_sid"]).fetch().state == "closed"
    got = webhooks.wait(hook, 3)
    assert [r.params["EventType"] for r in got] == ["onParticipantAdded", "onParticipantRemoved", "onConversationStateUpdated"]
    assert got[1].params["Identity"] == "henry-c" and got[2].params["StateTo"] == "closed"
    done = sandbox.agent("POST", f"/agent/api/tasks/{task_sid}/complete", {"agent": "henry-c"}).json()
    assert done["assignment_status"] == "completed"
    again = rest(sandbox, "POST", f"/flex-api/v1/Interactions/{kd}/Channels/{uo}", {"Status": "closed"})
    assert again.status_code == 400


def test_closing_a_waiting_interaction_cancels_its_task(sandbox: Sandbox) -> None:
    conv = plugin_conversation(sandbox)
    body = hand_over(sandbox, conv["conversation_sid"])
    channel = sandbox.client.flex_api.v1.interaction(body["sid"]).channels(body["channel"]["sid"])
    path = f"/flex-api/v1/Interactions/{body['sid']}/Channels/{body['channel']['sid']}"
    assert rest(sandbox, "POST", path, {}).status_code == 400  # Status is required
    channel.update(status="closed", routing={"status": "closed"})
    task = workspace(sandbox).tasks(body["routing"]["properties"]["sid"]).fetch()
    assert task.assignment_status == "canceled" and task.reason == "Interaction channel closed"


def test_inactive_with_routing_closed_completes_and_parks(sandbox: Sandbox) -> None:
    conv = plugin_conversation(sandbox)
    body = hand_over(sandbox, conv["conversation_sid"])
    task_sid = body["routing"]["properties"]["sid"]
    accept(sandbox, task_sid, "ivy-c")
    channel = sandbox.client.flex_api.v1.interaction(body["sid"]).channels(body["channel"]["sid"])
    with pytest.raises(TwilioRestException):
        channel.update(status="inactive")  # the spec: Routing status is required for inactive
    channel.update(status="inactive", routing={"status": "closed"})
    assert workspace(sandbox).tasks(task_sid).fetch().assignment_status == "completed"
    conversation = sandbox.client.conversations.v1.conversations(conv["conversation_sid"])
    assert conversation.fetch().state == "inactive"
    assert [p.identity for p in conversation.participants.list()] == [conv["visitor"]]


def test_channel_participants_leave_without_closing_the_chat(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    conv = plugin_conversation(sandbox, webhooks, hook)
    body = hand_over(sandbox, conv["conversation_sid"])
    kd, uo, task_sid = body["sid"], body["channel"]["sid"], body["routing"]["properties"]["sid"]
    accept(sandbox, task_sid, "jack-p")
    channel = sandbox.client.flex_api.v1.interaction(kd).channels(uo)
    supervisor = channel.participants.create(type="supervisor", media_properties={"identity": "sup-p"})
    assert supervisor.type == "supervisor" and supervisor.sid.startswith("UT")
    agent_ut = next(p.sid for p in channel.participants.list() if p.type == "agent")
    channel.participants(agent_ut).update(status="wrapup")
    assert workspace(sandbox).tasks(task_sid).fetch().assignment_status == "wrapping"
    conversation = sandbox.client.conversations.v1.conversations(conv["conversation_sid"])
    assert conversation.fetch().state == "active"
    assert sorted(p.identity for p in conversation.participants.list()) == sorted([conv["visitor"], "sup-p"])
    got = webhooks.wait(hook, 3)
    assert [(r.params["EventType"], r.params["Identity"]) for r in got] == [
        ("onParticipantAdded", "jack-p"),
        ("onParticipantAdded", "sup-p"),
        ("onParticipantRemoved", "jack-p"),
    ]
