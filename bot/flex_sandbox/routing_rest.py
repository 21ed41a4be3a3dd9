"""The routing REST surface: TaskRouter v1 (`/taskrouter/v1/Workspaces/...`) and Flex Interactions (`/flex-api/v1/Interactions`).

Parameters, list keys, status codes and bodies follow Twilio's OpenAPI description of these APIs; filtering that
SQL cannot do (expressions, repeated statuses, orderings) happens here, over one workspace's documents.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Callable, Coroutine, Dict, List, Optional, Sequence

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from flex_sandbox import interactions, taskrouter, tasks
from flex_sandbox.account import Account
from flex_sandbox.rest import args_of, form_of
from flex_sandbox.store import Doc
from flex_sandbox.tasks import AgentError
from flex_sandbox.wire import Form, Paging, TwilioError, invalid, not_found, now_iso, reply

log = logging.getLogger(__name__)

Handler = Callable[..., Coroutine[Any, Any, Optional[HTTPResponse]]]
ORDERING_FIELDS = {"DateCreated": "_created", "Priority": "priority", "VirtualStartTime": "virtual_start_time"}


def page(request: Request, key: str, sub: str, path: str, docs: Sequence[Doc], render: Callable[[Doc], Doc]) -> HTTPResponse:
    """One page of an already filtered list, in Twilio's envelope."""
    paging = Paging(args_of(request))
    chunk = docs[paging.offset : paging.offset + paging.page_size]
    more = len(docs) > paging.offset + paging.page_size
    return reply(paging.envelope(key, sub, path, [render(d) for d in chunk], more))


def truthy(value: str) -> bool:
    """TaskRouter's list booleans: `true`, `1` or `yes`; anything else is false."""
    return value.strip().lower() in ("true", "1", "yes")


def parse_date(value: str, name: str) -> float:
    """An ISO 8601 query date as an epoch."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 date-time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def ordered(docs: List[Doc], ordering: Optional[str]) -> List[Doc]:
    """Tasks sorted by `Attribute:asc|desc[,Attribute:asc|desc]` (default: DateCreated ascending)."""
    if not ordering:
        return docs
    keys = []
    for part in ordering.split(","):
        field, _, direction = part.strip().partition(":")
        if field not in ORDERING_FIELDS or direction.lower() not in ("asc", "desc"):
            raise invalid(f"Invalid Ordering {ordering!r}: use DateCreated, Priority or VirtualStartTime with :asc or :desc")
        keys.append((ORDERING_FIELDS[field], direction.lower() == "desc"))
    for field, descending in reversed(keys):  # stable sorts, least significant first
        docs = sorted(docs, key=_sort_key(field), reverse=descending)
    return docs


def _sort_key(field: str) -> Callable[[Doc], Any]:
    def key(doc: Doc) -> Any:
        return doc.get(field) or 0

    return key


def json_body_or_form(request: Request) -> Dict[str, Any]:
    """Transfers take a JSON body (the spec's requestBody); a form body works too, with its keys lower-cased."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            raise invalid("Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise invalid("Request body must be a JSON object")
        return data
    form = form_of(request)
    return {key.lower(): values[-1] for key, values in form.values.items() if values}


def register(app: Sanic, account: Account) -> None:
    """Add the TaskRouter and Interactions routes."""

    def route(uri: str, *methods: str) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            slug = uri.replace("/", "_").replace("<", "").replace(">", "").replace("-", "_")
            name = "routing_" + "_".join(methods).lower() + slug
            app.add_route(handler, uri, methods=list(methods), name=name)
            return handler

        return decorate

    base = "/taskrouter/v1/Workspaces"
    ws_base = base + "/<ws>"

    def named(request: Request, docs: List[Doc]) -> List[Doc]:
        name = Form(args_of(request)).get("FriendlyName")
        return [d for d in docs if d["friendly_name"] == name] if name else docs

    # -- workspaces ---------------------------------------------------------------
    @route(base, "GET")
    async def workspaces(request: Request) -> HTTPResponse:
        docs, _ = account.store.list(taskrouter.WORKSPACE)
        return page(request, "workspaces", "taskrouter", "/v1/Workspaces", named(request, docs), taskrouter.render_workspace)

    @route(ws_base, "GET")
    async def workspace_fetch(request: Request, ws: str) -> HTTPResponse:
        return reply(taskrouter.render_workspace(taskrouter.workspace(account, ws)))

    # -- activities, task channels, queues, workflows --------------------------------
    @route(ws_base + "/Activities", "GET")
    async def activities(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        docs = named(request, taskrouter.children(account, taskrouter.ACTIVITY, ws))
        available = Form(args_of(request)).get("Available")
        if available is not None:
            docs = [d for d in docs if d["available"] == truthy(available)]
        return page(request, "activities", "taskrouter", f"/v1/Workspaces/{ws}/Activities", docs, taskrouter.render_activity)

    @route(ws_base + "/Activities/<sid>", "GET")
    async def activity_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        return reply(taskrouter.render_activity(taskrouter.child(account, taskrouter.ACTIVITY, ws, sid, "Activities")))

    @route(ws_base + "/TaskChannels", "GET")
    async def task_channels(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        docs = taskrouter.children(account, taskrouter.TASK_CHANNEL, ws)
        return page(request, "channels", "taskrouter", f"/v1/Workspaces/{ws}/TaskChannels", docs, taskrouter.render_task_channel)

    @route(ws_base + "/TaskChannels/<sid>", "GET")
    async def task_channel_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        for doc in taskrouter.children(account, taskrouter.TASK_CHANNEL, ws):
            if sid in (doc["sid"], doc["unique_name"]):
                return reply(taskrouter.render_task_channel(doc))
        raise not_found(f"The requested resource /Workspaces/{ws}/TaskChannels/", sid)

    @route(ws_base + "/TaskQueues", "GET")
    async def task_queues(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        docs = named(request, taskrouter.children(account, taskrouter.QUEUE, ws))
        return page(request, "task_queues", "taskrouter", f"/v1/Workspaces/{ws}/TaskQueues", docs, taskrouter.render_queue)

    @route(ws_base + "/TaskQueues/<sid>", "GET")
    async def task_queue_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        return reply(taskrouter.render_queue(taskrouter.child(account, taskrouter.QUEUE, ws, sid, "TaskQueues")))

    def channel_filter(request: Request, ws: str) -> Optional[Doc]:
        name = Form(args_of(request)).get("TaskChannel")
        return taskrouter.task_channel(account, ws, name) if name else None

    @route(ws_base + "/TaskQueues/<sid>/RealTimeStatistics", "GET")
    async def queue_real_time(request: Request, ws: str, sid: str) -> HTTPResponse:
        queue = taskrouter.child(account, taskrouter.QUEUE, ws, sid, "TaskQueues")
        return reply(taskrouter.real_time_statistics(account, queue, channel_filter(request, ws)))

    @route(ws_base + "/TaskQueues/<sid>/CumulativeStatistics", "GET")
    async def queue_cumulative(request: Request, ws: str, sid: str) -> HTTPResponse:
        queue = taskrouter.child(account, taskrouter.QUEUE, ws, sid, "TaskQueues")
        form = Form(args_of(request))
        end = parse_date(form.get("EndDate") or "", "EndDate") if form.get("EndDate") else time.time()
        minutes = form.integer("Minutes", 1, 60 * 24 * 30) or 15
        start = parse_date(form.get("StartDate") or "", "StartDate") if form.get("StartDate") else end - minutes * 60
        if start > end:
            raise invalid("StartDate must be before EndDate")
        split = None
        if form.get("SplitByWaitTime"):
            try:
                split = [int(v) for v in (form.get("SplitByWaitTime") or "").split(",") if v.strip()]
            except ValueError:
                raise invalid("SplitByWaitTime must be a comma-separated list of seconds") from None
        stats = taskrouter.cumulative_statistics(account, queue, (start, end), channel_filter(request, ws), split)
        return reply(stats)

    @route(ws_base + "/Workflows", "GET")
    async def workflows(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        docs = named(request, taskrouter.children(account, taskrouter.WORKFLOW, ws))
        return page(request, "workflows", "taskrouter", f"/v1/Workspaces/{ws}/Workflows", docs, taskrouter.render_workflow)

    @route(ws_base + "/Workflows/<sid>", "GET")
    async def workflow_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        return reply(taskrouter.render_workflow(taskrouter.child(account, taskrouter.WORKFLOW, ws, sid, "Workflows")))

    # -- workers ------------------------------------------------------------------
    @route(ws_base + "/Workers", "GET")
    async def workers(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        form = Form(args_of(request))
        docs = taskrouter.children(account, taskrouter.WORKER, ws)
        name = form.get("FriendlyName")
        if name:
            docs = [d for d in docs if d["friendly_name"].lower() == name.lower()]
        if form.get("Available") is not None:
            wanted = truthy(form.get("Available") or "")
            docs = [d for d in docs if d["available"] == wanted]
        if form.get("ActivityName"):
            docs = [d for d in docs if d["activity_name"] == form.get("ActivityName")]
        if form.get("ActivitySid"):
            docs = [d for d in docs if d["activity_sid"] == form.get("ActivitySid")]
        queue_sid, queue_name = form.get("TaskQueueSid"), form.get("TaskQueueName")
        if queue_sid or queue_name:  # every sandbox queue targets every worker (1==1)
            queues = taskrouter.children(account, taskrouter.QUEUE, ws)
            if not any(q["sid"] == queue_sid or q["friendly_name"] == queue_name for q in queues):
                docs = []
        return page(request, "workers", "taskrouter", f"/v1/Workspaces/{ws}/Workers", docs, taskrouter.render_worker)

    @route(ws_base + "/Workers", "POST")
    async def worker_create(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        form = form_of(request)
        worker = taskrouter.create_worker(
            account, ws, form.required("FriendlyName"), form.get("ActivitySid") or None, form.json_text("Attributes") or "{}"
        )
        return reply(taskrouter.render_worker(worker), status=201)

    @route(ws_base + "/Workers/<sid>", "GET")
    async def worker_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        return reply(taskrouter.render_worker(taskrouter.child(account, taskrouter.WORKER, ws, sid, "Workers")))

    @route(ws_base + "/Workers/<sid>", "POST")
    async def worker_update(request: Request, ws: str, sid: str) -> HTTPResponse:
        worker = taskrouter.child(account, taskrouter.WORKER, ws, sid, "Workers")
        form = form_of(request)
        changes: Dict[str, Any] = {}
        if form.get("ActivitySid"):
            changes["activity_sid"] = form.get("ActivitySid")
        if "Attributes" in form:
            changes["attributes"] = form.json_text("Attributes")
        if form.get("FriendlyName"):
            changes["friendly_name"] = form.get("FriendlyName")
        return reply(taskrouter.render_worker(taskrouter.update_worker(account, worker, changes)))

    # -- tasks --------------------------------------------------------------------
    @route(ws_base + "/Tasks", "GET")
    async def task_list(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        args = args_of(request)
        form = Form(args)
        docs = taskrouter.tasks_of(account, ws)
        statuses = [s for value in args.get("AssignmentStatus", []) for s in value.split(",") if s]
        for status in statuses:
            if status not in taskrouter.STATUSES:
                raise invalid(f"Invalid AssignmentStatus {status!r}")
        if statuses:
            docs = [d for d in docs if d["assignment_status"] in statuses]
        for param, field in (
            ("TaskQueueSid", "task_queue_sid"),
            ("TaskQueueName", "task_queue_friendly_name"),
            ("WorkflowSid", "workflow_sid"),
            ("WorkflowName", "workflow_friendly_name"),
            ("RoutingTarget", "routing_target"),
        ):
            if form.get(param):
                docs = [d for d in docs if d.get(field) == form.get(param)]
        priority = form.integer("Priority", 0, taskrouter.MAX_PRIORITY)
        if priority is not None:
            docs = [d for d in docs if int(d.get("priority") or 0) == priority]
        expression = form.get("EvaluateTaskAttributes")
        if expression:
            docs = [d for d in docs if taskrouter.matches(taskrouter.attributes_of(d), expression)]
            if not docs:
                taskrouter.matches({}, expression)  # an unsupported expression is a 400 even when nothing is listed
        docs = ordered(docs, form.get("Ordering"))
        return page(request, "tasks", "taskrouter", f"/v1/Workspaces/{ws}/Tasks", docs, taskrouter.render_task)

    @route(ws_base + "/Tasks", "POST")
    async def task_create(request: Request, ws: str) -> HTTPResponse:
        taskrouter.workspace(account, ws)
        form = form_of(request)
        doc = taskrouter.create_task(
            account,
            ws,
            attributes=form.json_text("Attributes") or "{}",
            workflow_sid=form.get("WorkflowSid") or None,
            queue_sid=form.get("TaskQueueSid") or None,
            channel=form.get("TaskChannel") or None,
            timeout=form.integer("Timeout", 1, taskrouter.MAX_TIMEOUT),
            priority=form.integer("Priority", 0, taskrouter.MAX_PRIORITY),
            routing_target=form.get("RoutingTarget") or None,
        )
        return reply(taskrouter.render_task(doc), status=201)

    @route(ws_base + "/Tasks/<sid>", "GET")
    async def task_fetch(request: Request, ws: str, sid: str) -> HTTPResponse:
        return reply(taskrouter.render_task(taskrouter.child(account, taskrouter.TASK, ws, sid, "Tasks")))

    @route(ws_base + "/Tasks/<sid>", "POST")
    async def task_update(request: Request, ws: str, sid: str) -> HTTPResponse:
        form = form_of(request)
        with account.store.transaction():
            doc = taskrouter.child(account, taskrouter.TASK, ws, sid, "Tasks")
            status = form.get("AssignmentStatus")
            reason = form.get("Reason")
            if status in taskrouter.FINAL and not reason:
                raise invalid("Missing required parameter Reason in the post body")
            if "Attributes" in form or form.get("Priority"):
                if doc["assignment_status"] not in taskrouter.LIVE:
                    raise invalid(f"Task {sid} is {doc['assignment_status']} and can no longer be updated")
                if "Attributes" in form:
                    doc["attributes"] = form.json_text("Attributes") or "{}"
                priority = form.integer("Priority", 0, taskrouter.MAX_PRIORITY)
                if priority is not None:
                    doc["priority"] = priority
                doc["date_updated"] = now_iso()
                account.store.replace(taskrouter.TASK, doc)
            if status:
                if status not in taskrouter.STATUSES:
                    raise invalid(f"Invalid AssignmentStatus {status!r}")
                doc = taskrouter.change_status(account, doc, status, reason)
            else:
                taskrouter.publish(account, doc)
        return reply(taskrouter.render_task(doc))

    @route(ws_base + "/Tasks/<sid>", "DELETE")
    async def task_delete(request: Request, ws: str, sid: str) -> HTTPResponse:
        doc = taskrouter.child(account, taskrouter.TASK, ws, sid, "Tasks")
        with account.store.transaction():
            taskrouter.record(account, doc, "task.deleted")
            account.store.delete(taskrouter.TASK, sid)
        account.timers.discard(sid)
        taskrouter.publish(account, doc)
        return response.empty()

    @route(ws_base + "/Tasks/<task_sid>/Reservations", "GET")
    async def reservations(request: Request, ws: str, task_sid: str) -> HTTPResponse:
        taskrouter.child(account, taskrouter.TASK, ws, task_sid, "Tasks")
        form = Form(args_of(request))
        docs, _ = account.store.list(taskrouter.RESERVATION, parent=task_sid)
        if form.get("ReservationStatus"):
            docs = [d for d in docs if d["reservation_status"] == form.get("ReservationStatus")]
        if form.get("WorkerSid"):
            docs = [d for d in docs if d["worker_sid"] == form.get("WorkerSid")]
        path = f"/v1/Workspaces/{ws}/Tasks/{task_sid}/Reservations"
        return page(request, "reservations", "taskrouter", path, docs, taskrouter.render_reservation)

    @route(ws_base + "/Tasks/<task_sid>/Reservations/<sid>", "GET")
    async def reservation_fetch(request: Request, ws: str, task_sid: str, sid: str) -> HTTPResponse:
        taskrouter.child(account, taskrouter.TASK, ws, task_sid, "Tasks")
        found = account.store.get(taskrouter.RESERVATION, sid, parent=task_sid)
        if found is None:
            raise not_found(f"The requested resource /Workspaces/{ws}/Tasks/{task_sid}/Reservations/", sid)
        return reply(taskrouter.render_reservation(found))

    # -- Flex Interactions ----------------------------------------------------------
    ibase = "/flex-api/v1/Interactions"
    cbase = ibase + "/<kd>/Channels/<uo>"

    @route(ibase, "POST")
    async def interaction_create(request: Request) -> HTTPResponse:
        form = form_of(request)
        channel = interactions.json_object(form.required("Channel"), "Channel")
        routing = interactions.json_object(form.get("Routing"), "Routing") if form.get("Routing") else None
        doc = interactions.create(account, channel, routing, form.get("InteractionContextSid"), form.get("WebhookTtid"))
        return reply(interactions.render_interaction(account, doc))

    @route(ibase + "/<kd>", "GET")
    async def interaction_fetch(request: Request, kd: str) -> HTTPResponse:
        return reply(interactions.render_interaction(account, interactions.interaction(account, kd)))

    @route(ibase + "/<kd>", "POST")
    async def interaction_update(request: Request, kd: str) -> HTTPResponse:
        form = form_of(request)
        doc = interactions.interaction(account, kd)
        if "WebhookTtid" in form:
            doc["webhook_ttid"] = form.get("WebhookTtid") or None
            account.store.replace(interactions.INTERACTION, doc)
        return reply(interactions.render_interaction(account, doc))

    @route(ibase + "/<kd>/Channels", "GET")
    async def interaction_channels(request: Request, kd: str) -> HTTPResponse:
        interactions.interaction(account, kd)
        docs, _ = account.store.list(interactions.CHANNEL, parent=kd)
        return page(request, "channels", "flex-api", f"/v1/Interactions/{kd}/Channels", docs, interactions.render_channel)

    @route(cbase, "GET")
    async def interaction_channel_fetch(request: Request, kd: str, uo: str) -> HTTPResponse:
        return reply(interactions.render_channel(interactions.channel(account, kd, uo)))

    @route(cbase, "POST")
    async def interaction_channel_update(request: Request, kd: str, uo: str) -> HTTPResponse:
        form = form_of(request)
        chan = interactions.channel(account, kd, uo)
        routing = interactions.json_object(form.get("Routing"), "Routing") if form.get("Routing") else None
        chan = interactions.update_channel(account, chan, form.required("Status"), routing)
        return reply(interactions.render_channel(chan))

    @route(cbase + "/Participants", "GET")
    async def interaction_participants(request: Request, kd: str, uo: str) -> HTTPResponse:
        chan = interactions.channel(account, kd, uo)
        path = f"/v1/Interactions/{kd}/Channels/{uo}/Participants"
        docs = interactions.participants(account, chan)
        return page(request, "participants", "flex-api", path, docs, interactions.render_participant)

    @route(cbase + "/Participants", "POST")
    async def interaction_participant_create(request: Request, kd: str, uo: str) -> HTTPResponse:
        form = form_of(request)
        chan = interactions.channel(account, kd, uo)
        media = interactions.json_object(form.required("MediaProperties"), "MediaProperties")
        routing_text = form.get("RoutingProperties")
        routing = interactions.json_object(routing_text, "RoutingProperties") if routing_text else None
        doc = interactions.add_participant(account, chan, form.required("Type"), media, routing)
        return reply(interactions.render_participant(doc))

    @route(cbase + "/Participants/<ut>", "POST")
    async def interaction_participant_update(request: Request, kd: str, uo: str, ut: str) -> HTTPResponse:
        form = form_of(request)
        chan = interactions.channel(account, kd, uo)
        participant = interactions.child(account, interactions.PARTICIPANT, chan, ut, "Participants")
        doc = interactions.update_participant(account, chan, participant, form.required("Status"))
        return reply(interactions.render_participant(doc))

    @route(cbase + "/Invites", "GET")
    async def interaction_invites(request: Request, kd: str, uo: str) -> HTTPResponse:
        chan = interactions.channel(account, kd, uo)
        docs, _ = account.store.list(interactions.INVITE, parent=chan["sid"])
        path = f"/v1/Interactions/{kd}/Channels/{uo}/Invites"
        return page(request, "invites", "flex-api", path, docs, lambda d: interactions.render_invite(account, d))

    @route(cbase + "/Invites", "POST")
    async def interaction_invite_create(request: Request, kd: str, uo: str) -> HTTPResponse:
        form = form_of(request)
        chan = interactions.channel(account, kd, uo)
        doc = interactions.invite(account, chan, interactions.json_object(form.required("Routing"), "Routing"))
        return reply(interactions.render_invite(account, doc))

    @route(cbase + "/Transfers", "POST")
    async def interaction_transfer_create(request: Request, kd: str, uo: str) -> HTTPResponse:
        body = json_body_or_form(request)
        chan = interactions.channel(account, kd, uo)
        doc = transfer(chan, body)
        return reply(interactions.render_transfer(account, doc), status=201)

    def _senders(task: Doc) -> Sequence[Optional[str]]:
        """Who may be named as a transfer's `from`: the agent's worker or their channel participant."""
        return (task.get("_worker_sid"), (interactions.agent_participant(account, task) or {}).get("sid"))

    def transfer(chan: Doc, body: Dict[str, Any]) -> Doc:
        """A cold transfer of the channel's assigned chat to a worker (WK), queue (WQ) or workflow (WW)."""
        kind = body.get("type") or "cold"
        if kind != "cold":
            raise invalid(f"Transfer type {kind!r} is not modelled by the Flex sandbox; use cold")
        target = str(body.get("to") or "")
        if target[:2] not in ("WK", "WQ", "WW"):
            raise invalid("to must be a Worker (WK), TaskQueue (WQ) or Workflow (WW) SID")
        if chan["status"] != "active":
            raise interactions.not_transferable(chan)
        live = [
            t
            for t in taskrouter.tasks_for_chat(account, chan["_conversation_sid"])
            if t.get("_interaction_channel_sid") == chan["sid"] and t["assignment_status"] == "assigned"
        ]
        from_sid = str(body.get("from") or "") or None
        if from_sid:
            live = [t for t in live if from_sid in _senders(t)]
        if not live:
            raise invalid(f"Channel {chan['sid']} has no assigned task to transfer" + (f" from {from_sid}" if from_sid else ""))
        old = live[0]
        ws = old["workspace_sid"]
        try:
            if target.startswith("WK"):
                worker = taskrouter.child(account, taskrouter.WORKER, ws, target, "Workers")
                tasks.transfer(account, old["sid"], old["_agent"], to_agent=worker["friendly_name"])
            elif target.startswith("WQ"):
                taskrouter.child(account, taskrouter.QUEUE, ws, target, "TaskQueues")
                tasks.transfer(account, old["sid"], old["_agent"], to_queue=target)
            else:
                workflow = taskrouter.child(account, taskrouter.WORKFLOW, ws, target, "Workflows")
                queue = taskrouter.route_by_workflow(account, workflow, taskrouter.attributes_of(old))
                tasks.transfer(account, old["sid"], old["_agent"], to_queue=queue["sid"])
        except AgentError as e:
            raise TwilioError(400 if e.status < 500 else e.status, 20001, e.message) from None
        transfers, _ = account.store.list(interactions.TRANSFER, parent=chan["sid"], descending=True, limit=1)
        doc = transfers[0]
        # `from` is the transferring agent's participant (UT…) even when the request named their worker.
        participant = (interactions.agent_participant(account, old) or {}).get("sid")
        sender = participant if from_sid and from_sid.startswith("WK") and participant else from_sid
        if sender or target != doc["to"]:
            doc.update({"to": target, **({"from": sender} if sender else {})})
            account.store.replace(interactions.TRANSFER, doc)
        return doc

    @route(cbase + "/Transfers/<ux>", "GET")
    async def interaction_transfer_fetch(request: Request, kd: str, uo: str, ux: str) -> HTTPResponse:
        chan = interactions.channel(account, kd, uo)
        doc = interactions.child(account, interactions.TRANSFER, chan, ux, "Transfers")
        return reply(interactions.render_transfer(account, doc))

    @route(cbase + "/Transfers/<ux>", "POST")
    async def interaction_transfer_update(request: Request, kd: str, uo: str, ux: str) -> HTTPResponse:
        body = json_body_or_form(request) if request.body else {}
        chan = interactions.channel(account, kd, uo)
        doc = interactions.child(account, interactions.TRANSFER, chan, ux, "Transfers")
        return reply(interactions.render_transfer(account, interactions.transfer_status(account, doc, body.get("status"))))
