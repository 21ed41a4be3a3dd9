"""The agent side of Flex: the desktop page, its live feed, and the JSON API tests use to act as an agent."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, Optional

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from flex_sandbox import media, media_rest, tasks
from flex_sandbox.account import Account
from flex_sandbox.faults import Fault, Faults, FaultSpecError
from flex_sandbox.media import MediaSettings
from flex_sandbox.tasks import AgentError
from flex_sandbox.wire import TwilioError, reply

log = logging.getLogger(__name__)

DESKTOP = Path(__file__).resolve().parent / "desktop"
ASSETS = {"app.js": "application/javascript", "style.css": "text/css"}
Handler = Callable[..., Coroutine[Any, Any, Optional[HTTPResponse]]]


def json_body(request: Request) -> Dict[str, Any]:
    """A JSON object body (form bodies are accepted too, for curl users)."""
    if not request.body:
        return {}
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in request.form.items()} if request.form else {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise AgentError(400, "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise AgentError(400, "body must be a JSON object")
    return data


def agent_errors(handler: Handler) -> Handler:
    """Answer AgentError as `{"error": ...}` with its status."""

    async def wrapped(request: Request, **kwargs: Any) -> Optional[HTTPResponse]:
        try:
            return await handler(request, **kwargs)
        except AgentError as e:
            return reply({"error": e.message}, status=e.status)

    wrapped.__name__ = handler.__name__
    return wrapped


def register(app: Sanic, account: Account, faults: Faults, media_settings: Optional[MediaSettings] = None) -> None:
    """Add the desktop, agent API and sandbox control routes."""
    settings = media_settings or MediaSettings()

    def route(uri: str, *methods: str, stream: bool = False) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            app.add_route(agent_errors(handler), uri, methods=list(methods), name="agent_" + handler.__name__, stream=stream)
            return handler

        return decorate

    def with_media_urls(request: Request, message: Dict[str, Any]) -> Dict[str, Any]:
        """A message as the API shows it: each stored file with a fresh pre-signed URL (previews, downloads)."""
        base = media_rest.base_url(request, settings)
        return {**message, "media": media.with_urls(account, message["media"], base, settings.url_ttl)}

    @route("/agent", "GET")
    async def desktop(request: Request) -> HTTPResponse:
        return await response.file(DESKTOP / "index.html", mime_type="text/html", headers={"Cache-Control": "no-store"})

    @route("/agent/static/<name>", "GET")
    async def asset(request: Request, name: str) -> HTTPResponse:
        if name not in ASSETS:
            return reply({"error": "not found"}, status=404)
        return await response.file(DESKTOP / name, mime_type=ASSETS[name], headers={"Cache-Control": "no-store"})

    @route("/agent/events", "GET")
    async def desktop_events(request: Request) -> None:
        await account.live.stream(request)

    @route("/agent/api/tasks", "GET")
    async def task_list(request: Request) -> HTTPResponse:
        status = request.args.get("status")
        placed = tasks.positions(account)
        return reply({"tasks": [tasks.view(account, t, placed) for t in tasks.all_tasks(account, status)]})

    @route("/agent/api/tasks/<sid>", "GET")
    async def task_fetch(request: Request, sid: str) -> HTTPResponse:
        return reply(tasks.view(account, tasks.task(account, sid)))

    @route("/agent/api/tasks/<sid>/accept", "POST")
    async def task_accept(request: Request, sid: str) -> HTTPResponse:
        agent = tasks.agent_name(json_body(request).get("agent"))
        return reply(tasks.view(account, tasks.accept(account, sid, agent)))

    @route("/agent/api/tasks/<sid>/messages", "GET")
    async def task_messages(request: Request, sid: str) -> HTTPResponse:
        return reply({"messages": [with_media_urls(request, m) for m in tasks.transcript(account, sid)]})

    @route("/agent/api/tasks/<sid>/media", "POST", stream=True)
    async def task_send_file(request: Request, sid: str) -> HTTPResponse:
        """multipart/form-data: `agent` and one `file` (its filename and Content-Type are kept)."""
        try:
            body = await media_rest.read_limited(request, settings.max_bytes + 64 * 1024)
            content_type = request.headers.get("content-type")
            if media.media_type(content_type) != "multipart/form-data":
                raise AgentError(400, "send the file as multipart/form-data with fields agent and file")
            upload = media.parse_upload(body, content_type, None)
            agent = tasks.agent_name(media.form_field(body, content_type or "", "agent"))
        except TwilioError as e:
            raise AgentError(e.status, e.message) from None
        message = tasks.send_file(account, sid, agent, upload.filename, upload.content_type, upload.content, settings.max_bytes)
        return reply(with_media_urls(request, message), status=201)

    @route("/agent/api/tasks/<sid>/messages", "POST")
    async def task_send(request: Request, sid: str) -> HTTPResponse:
        body = json_body(request)
        agent = tasks.agent_name(body.get("agent"))
        return reply(tasks.send(account, sid, agent, body.get("body")), status=201)

    @route("/agent/api/tasks/<sid>/end", "POST")
    async def task_end(request: Request, sid: str) -> HTTPResponse:
        body = json_body(request)
        agent = tasks.agent_name(body.get("agent"))
        wrap_up = body.get("wrap_up", False)
        if isinstance(wrap_up, str):  # a form post from curl
            wrap_up = {"true": True, "false": False}.get(wrap_up.strip().lower(), wrap_up)
        if not isinstance(wrap_up, bool):
            raise AgentError(400, "wrap_up must be true or false")
        return reply(tasks.view(account, tasks.end(account, sid, agent, wrap_up)))

    @route("/agent/api/tasks/<sid>/typing", "POST")
    async def task_typing(request: Request, sid: str) -> HTTPResponse:
        agent = tasks.agent_name(json_body(request).get("agent"))
        t = tasks.task(account, sid)
        account.live.publish(
            {"type": "typing", "channel_sid": t.get("_channel_sid"), "task_sid": sid, "identity": agent, "role": "agent"}
        )
        return reply({"ok": True})

    @route("/agent/api/tasks/<sid>/transfer", "POST")
    async def task_transfer(request: Request, sid: str) -> HTTPResponse:
        body = json_body(request)
        agent = tasks.agent_name(body.get("agent"))
        to_agent, to_queue = body.get("to_agent"), body.get("to_queue")
        new = tasks.transfer(account, sid, agent, str(to_agent) if to_agent else None, str(to_queue) if to_queue else None)
        return reply(tasks.view(account, new), status=201)

    @route("/agent/api/tasks/<sid>/complete", "POST")
    async def task_complete(request: Request, sid: str) -> HTTPResponse:
        agent = tasks.agent_name(json_body(request).get("agent"))
        return reply(tasks.view(account, tasks.complete(account, sid, agent)))

    @route("/agent/api/agents", "GET")
    async def agent_list(request: Request) -> HTTPResponse:
        return reply({"agents": tasks.agents(account)})

    @route("/agent/api/agents", "POST")
    async def agent_availability(request: Request) -> HTTPResponse:
        body = json_body(request)
        agent = tasks.agent_name(body.get("agent"))
        available = body.get("available", True)
        if isinstance(available, str):
            available = available.strip().lower() in ("true", "1", "yes", "on")
        if not isinstance(available, bool):
            raise AgentError(400, "available must be true or false")
        return reply(tasks.view_agent(account, tasks.set_available(account, agent, available)))

    # -- sandbox controls (not part of Twilio) ------------------------------------
    @route("/sandbox/typing", "POST")
    async def visitor_typing(request: Request) -> HTTPResponse:
        body = json_body(request)
        channel_sid = str(body.get("channel_sid") or "")
        identity = str(body.get("identity") or "")
        role = str(body.get("role") or "customer")
        if not channel_sid or not identity:
            raise AgentError(400, "channel_sid and identity are required")
        t = account.task_for_channel(channel_sid)
        account.live.publish(
            {
                "type": "typing",
                "channel_sid": channel_sid,
                "task_sid": t["sid"] if t else None,
                "identity": identity,
                "role": role,
            }
        )
        return reply({"ok": True})

    @route("/sandbox/events", "GET")
    async def sandbox_events(request: Request) -> None:
        channel_sid, kind = request.args.get("channel_sid"), request.args.get("type")

        def wanted(event: Dict[str, Any]) -> bool:
            return (not channel_sid or event.get("channel_sid") == channel_sid) and (not kind or event.get("type") == kind)

        await account.live.stream(request, wanted)

    @route("/sandbox/faults", "GET")
    async def fault_list(request: Request) -> HTTPResponse:
        return reply({"faults": [f.to_json() for f in faults.rules]})

    @route("/sandbox/faults", "POST")
    async def fault_add(request: Request) -> HTTPResponse:
        try:
            fault = Fault.from_json(json_body(request))
        except FaultSpecError as e:
            raise AgentError(400, str(e)) from None
        return reply(faults.add(fault).to_json(), status=201)

    @route("/sandbox/faults", "DELETE")
    async def fault_clear(request: Request) -> HTTPResponse:
        return reply({"cleared": faults.clear()})

    @route("/sandbox/faults/<fault_id:int>", "DELETE")
    async def fault_remove(request: Request, fault_id: int) -> HTTPResponse:
        if not faults.remove(fault_id):
            raise AgentError(404, f"fault {fault_id} not found")
        return response.empty()

    @route("/sandbox/webhooks/pending", "GET")
    async def webhooks_pending(request: Request) -> HTTPResponse:
        return reply({"queues": account.webhooks.queued(), "pending": len(account.store.pending_deliveries())})
