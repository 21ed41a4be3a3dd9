"""Every Twilio route the sandbox serves, checked against Twilio's own OpenAPI descriptions (tests/sandbox/twilio_oai).

The routes come from the sandbox's Sanic router; each maps to the spec operation with the same path and method, and
each has at least one scenario in SCENARIOS that calls it on a real sandbox process with real resources. A response
must use a status the operation declares and match its response schema exactly: every declared property present,
nothing undeclared, types, `nullable`, enums, SID patterns and formats (date-time, uri, uri-map); `links` carry the
keys Twilio's own examples show. Errors carry Twilio's error body; methods a path does not declare answer 405.

Adding a route to the sandbox = one `Scenario` line below (plus a `world` entry if it needs a new resource).
The Media Content Service (`mcs.us1`) is not in twilio-oai; the wire reference covers it, so it is left out here.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from flex_sandbox.app import create_app
from flex_sandbox.credentials import DEVELOPMENT
from flex_sandbox.wire import HOSTS
from northwind.servers import Sandbox, start_sandbox

SPEC_DIR = Path(__file__).parent / "twilio_oai"
SPEC_FILES = {
    ("flex-api", "v1"): "twilio_flex_v1.json",
    ("flex-api", "v2"): "twilio_flex_v2.json",
    ("chat", "v2"): "twilio_chat_v2.json",
    ("conversations", "v1"): "twilio_conversations_v1.json",
    ("taskrouter", "v1"): "twilio_taskrouter_v1.json",
}
NOT_IN_SPEC_HOSTS = {"mcs.us1"}  # the Media Content Service: no public OpenAPI description
METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
Vars = Dict[str, str]
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}-{uuid.uuid4().hex[:6]}"


# -- the spec ---------------------------------------------------------------------
@cache
def spec_doc(host: str, version: str) -> Dict[str, Any]:
    return json.loads((SPEC_DIR / SPEC_FILES[(host, version)]).read_text())


def segments(path: str) -> Tuple[str, ...]:
    """Path segments with every parameter (`<sid:str>`, `{Sid}`, `{channel}`) as `*`."""
    return tuple("*" if s[:1] in "<{" else s for s in path.strip("/").split("/"))


@dataclass(frozen=True)
class Operation:
    host: str
    version: str
    path: str  # the spec's path, e.g. /v1/Conversations/{Sid}
    method: str

    @property
    def doc(self) -> Dict[str, Any]:
        return spec_doc(self.host, self.version)

    @property
    def item(self) -> Dict[str, Any]:
        return self.doc["paths"][self.path]

    @property
    def declared(self) -> List[str]:
        return [m.upper() for m in self.item if m.upper() in METHODS]

    @property
    def op(self) -> Optional[Dict[str, Any]]:
        return self.item.get(self.method.lower())

    def __str__(self) -> str:
        return f"{self.method} {self.host}{self.path}"


def spec_operation(route_path: str, method: str) -> Optional[Operation]:
    """The spec operation for a sandbox route (`host/version/...`), or None when the spec has no such path."""
    parts = segments(route_path)
    host, version = parts[0], parts[1]
    if (host, version) not in SPEC_FILES:
        return None
    for path in spec_doc(host, version)["paths"]:
        if segments(path) == parts[1:]:
            return Operation(host, version, path, method)
    return None


def resolve(doc: Dict[str, Any], schema: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = {**doc["components"]["schemas"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


# -- the sandbox's routes -----------------------------------------------------------
@cache
def served_routes() -> Tuple[Tuple[str, str], ...]:
    """(route path, method) for every Twilio REST route the sandbox registers (spec hosts; MCS left out)."""
    app = create_app(DEVELOPMENT, None, name="spec_fidelity_" + uuid.uuid4().hex[:8])
    hosts = (set(HOSTS) | {h for h, _ in SPEC_FILES}) - NOT_IN_SPEC_HOSTS
    found = {
        (route.path, method) for route in app.router.routes for method in route.methods if route.path.split("/", 1)[0] in hosts
    }
    return tuple(sorted(found))


# -- a small validator for Twilio's OpenAPI 3.0 response schemas ----------------------
TYPES: Dict[str, Tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def is_uri(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def validate(doc: Dict[str, Any], schema: Dict[str, Any], value: Any, where: str = "$") -> List[str]:
    """Problems of `value` against `schema`: exact property sets, types, nullable, enum, pattern, formats."""
    schema = resolve(doc, schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null, but the spec does not declare it nullable"]
    kind = schema.get("type")
    if kind is None and "properties" not in schema:
        return []  # the spec leaves it free-form (e.g. `timers`, `bindings`)
    if kind is not None:
        expected = TYPES[kind]
        if not isinstance(value, expected) or (kind in ("integer", "number") and isinstance(value, bool)):
            return [f"{where}: {type(value).__name__} {value!r:.60}, the spec says {kind}"]
    problems: List[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in the spec's enum {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
        fmt = schema.get("format")
        if fmt == "date-time" and not DATE_TIME.match(value):
            problems.append(f"{where}: {value!r} is not an ISO 8601 date-time")
        if fmt == "uri" and not is_uri(value):
            problems.append(f"{where}: {value!r} is not an absolute URI")
    if isinstance(value, dict):
        if "properties" in schema:
            declared = set(schema["properties"])
            missing, extra = declared - set(value), set(value) - declared
            if missing:
                problems.append(f"{where}: missing {sorted(missing)}")
            if extra:
                problems.append(f"{where}: not in the spec {sorted(extra)}")
            for name in sorted(declared & set(value)):
                problems += validate(doc, schema["properties"][name], value[name], f"{where}.{name}")
        elif schema.get("format") == "uri-map":
            problems += [f"{where}.{k}: {v!r} is not a URI" for k, v in value.items() if v is not None and not is_uri(v)]
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(doc, schema["items"], item, f"{where}[{i}]")
    return problems


def example_links(response: Dict[str, Any], items_key: Optional[str]) -> Optional[set[str]]:
    """The `links` keys Twilio's own examples of this response show (None: the examples show none)."""
    keys: set[str] = set()
    for example in (response.get("examples") or {}).values():
        value = example.get("value") or {}
        for resource in value.get(items_key, []) if items_key else [value]:
            if isinstance(resource, dict) and isinstance(resource.get("links"), dict):
                keys |= set(resource["links"])
    return keys or None


def check_response(operation: Operation, response: requests.Response, expected: Optional[int]) -> None:
    """The response uses a declared status and its body matches the operation's schema for that status."""
    op = operation.op
    assert op is not None, f"{operation} is not in the spec"
    declared = sorted(int(code) for code in op["responses"])
    assert response.status_code in declared, (
        f"{operation}: status {response.status_code}, the spec declares {declared}: {response.text[:300]}"
    )
    if expected is not None:
        assert response.status_code == expected, f"{operation}: {response.status_code} != {expected}: {response.text[:300]}"
    content = op["responses"][str(response.status_code)].get("content")
    if content is None:
        assert response.content == b"", f"{operation}: {response.status_code} must have no body: {response.text[:200]}"
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    body = response.json()
    media = content["application/json"]
    schema = resolve(operation.doc, media["schema"])
    problems = validate(operation.doc, schema, body)
    items_key = (
        next((k for k in schema.get("properties", {}) if k != "meta"), None) if "meta" in schema.get("properties", {}) else None
    )
    if items_key is not None:
        meta = body.get("meta") or {}
        if meta.get("key") != items_key:
            problems.append(f"$.meta.key: {meta.get('key')!r}, the items are under {items_key!r}")
    links = example_links(media, items_key)
    if links is not None:
        resources = (body.get(items_key) or []) if items_key else [body]
        for i, resource in enumerate(resources):
            got = set(resource.get("links") or {})
            # a link to an optional related resource (`assignment_activity` <-> `assignment_activity_sid`) goes with it
            wanted = {k for k in links if resource.get(f"{k}_sid", "") is not None}
            if not wanted <= got <= links:
                problems.append(f"$[{i}].links: keys {sorted(got)}, Twilio's examples show {sorted(links)}")
    assert not problems, f"{operation} ({response.request.method} {response.url}):\n  " + "\n  ".join(problems)


def check_error(response: requests.Response, status: int, code: Optional[int] = None) -> None:
    """Twilio's error body: exactly code (int), message (str), more_info (uri), status (int, = the HTTP status)."""
    assert response.status_code == status, (
        f"{response.request.method} {response.url}: {response.status_code} {response.text[:300]}"
    )
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert isinstance(body["code"], int) and not isinstance(body["code"], bool), body
    assert isinstance(body["message"], str) and body["message"], body
    assert is_uri(body["more_info"]) and body["more_info"].endswith(str(body["code"])), body
    assert body["status"] == status, body
    if code is not None:
        assert body["code"] == code, body


# -- talking to the sandbox --------------------------------------------------------
class Api:
    """Raw HTTP with basic auth: the exact JSON and status the sandbox answers."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.base_url
        self.auth = (DEVELOPMENT.account_sid, DEVELOPMENT.auth_token)

    def call(
        self,
        method: str,
        path: str,
        data: Optional[Dict[str, Any]] = None,
        params: Optional[Any] = None,
    ) -> requests.Response:
        return requests.request(method, self.base + path, data=data, params=params, auth=self.auth, timeout=10)

    def ok(self, method: str, path: str, data: Optional[Dict[str, Any]] = None, params: Optional[Any] = None) -> Any:
        response = self.call(method, path, data, params)
        assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def follow(self, url: str) -> requests.Response:
        """A page URL as the SDK follows it (the https://<sub>.twilio.com host mapped onto the sandbox)."""
        parsed = urlparse(url)
        sub = parsed.netloc.split(".twilio.com")[0]
        return requests.get(f"{self.base}/{sub}{parsed.path}?{parsed.query}", auth=self.auth, timeout=10)


# -- the resources scenarios use ------------------------------------------------------
def new_web_channel(api: Api, v: Vars) -> Vars:
    web = api.ok(
        "POST",
        "/flex-api/v1/WebChannels",
        {"FlexFlowSid": v["flow"], "Identity": unique("visitor"), "CustomerFriendlyName": "Ann", "ChatFriendlyName": "Chat"},
    )
    return {"web_x": web["sid"]}


def new_channel(api: Api, v: Vars) -> Vars:
    return {"channel_x": api.ok("POST", f"/chat/v2/Services/{v['svc']}/Channels", {"FriendlyName": "x"})["sid"]}


def new_member(api: Api, v: Vars) -> Vars:
    path = f"/chat/v2/Services/{v['svc']}/Channels/{v['channel']}/Members"
    return {"member_x": api.ok("POST", path, {"Identity": unique("member")})["sid"], "identity_x": unique("member")}


def new_chat_webhook(api: Api, v: Vars) -> Vars:
    channel = new_channel(api, v)["channel_x"]
    path = f"/chat/v2/Services/{v['svc']}/Channels/{channel}/Webhooks"
    hook = api.ok(
        "POST", path, {"Type": "webhook", "Configuration.Url": "http://127.0.0.1:9/hook", "Configuration.Method": "POST"}
    )
    return {"channel_x": channel, "chat_webhook_x": hook["sid"]}


def new_conversation(api: Api, v: Vars) -> Vars:
    return {"conv_x": api.ok("POST", "/conversations/v1/Conversations", {"FriendlyName": "x"})["sid"]}


def new_participant(api: Api, v: Vars) -> Vars:
    path = f"/conversations/v1/Conversations/{v['conv']}/Participants"
    return {"participant_x": api.ok("POST", path, {"Identity": unique("participant")})["sid"]}


def new_conversation_webhook(api: Api, v: Vars) -> Vars:
    conv = new_conversation(api, v)["conv_x"]
    hook = api.ok(
        "POST",
        f"/conversations/v1/Conversations/{conv}/Webhooks",
        {"Target": "webhook", "Configuration.Url": "http://127.0.0.1:9/hook", "Configuration.Method": "POST"},
    )
    return {"conv_x": conv, "conv_webhook_x": hook["sid"]}


def fresh_identity(api: Api, v: Vars) -> Vars:
    return {"identity_x": unique("identity")}


def uploaded_media(service: str) -> Callable[[Api, Vars], Vars]:
    """A file uploaded to the service's Media Content Service (not in the spec; the message that names it is)."""

    def upload(api: Api, v: Vars) -> Vars:
        response = requests.post(
            f"{api.base}/mcs.us1/v1/Services/{v[service]}/Media",
            data=b"\x89PNG\r\n\x1a\n" + b"\0" * 24,
            params={"Filename": "spec.png"},
            headers={"Content-Type": "image/png"},
            auth=api.auth,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return {"media_x": response.json()["sid"]}

    return upload


def inactive_web_channel(api: Api, v: Vars) -> Vars:
    """A legacy chat after it ended (channel attributes status INACTIVE): the bot writes its survey back there."""
    web = new_web_channel(api, v)["web_x"]
    api.ok("POST", f"/flex-api/v1/WebChannels/{web}", {"ChatStatus": "inactive"})
    return {"channel_x": web}


def closed_conversation(api: Api, v: Vars) -> Vars:
    conv = new_conversation(api, v)["conv_x"]
    api.ok("POST", f"/conversations/v1/Conversations/{conv}", {"State": "closed"})
    return {"conv_x": conv}


def ended_task(wrap_up: bool) -> Callable[[Api, Vars], Vars]:
    """An accepted chat task the agent ended: `wrapping` when they wrap up (Flex's UI), else `completed`."""

    def end(api: Api, v: Vars) -> Vars:
        found = new_interaction(api, v, agent="spec-agent")
        body = {"agent": "spec-agent", "wrap_up": wrap_up}
        ended = requests.post(f"{api.base}/agent/api/tasks/{found['task_x']}/end", json=body, timeout=10)
        assert ended.json()["assignment_status"] == ("wrapping" if wrap_up else "completed"), ended.text
        return found

    return end


def build_world(api: Api, info: Dict[str, Any]) -> Vars:
    """One of everything: a legacy web chat with a member, message and webhook; a conversation likewise."""
    v: Vars = {
        "flow": info["flex_flow_sid"],
        "svc": info["chat_service_sid"],
        "address": info["conversations_address_sid"],
        "conv_svc": info["conversations_service_sid"],
    }
    web = api.ok(
        "POST",
        "/flex-api/v1/WebChannels",
        {"FlexFlowSid": v["flow"], "Identity": "spec-visitor", "CustomerFriendlyName": "Ann", "ChatFriendlyName": "Chat"},
    )
    v["web"] = v["channel"] = web["sid"]
    chat_base = f"/chat/v2/Services/{v['svc']}/Channels/{v['channel']}"
    v["member"] = api.ok("GET", chat_base + "/Members")["members"][0]["sid"]
    v["message"] = api.ok("POST", chat_base + "/Messages", {"From": "spec-visitor", "Body": "hello"})["sid"]
    hook = {"Type": "webhook", "Configuration.Url": "http://127.0.0.1:9/hook", "Configuration.Filters": "onMessageSent"}
    v["chat_webhook"] = api.ok("POST", chat_base + "/Webhooks", hook)["sid"]
    v["conv"] = api.ok("POST", "/conversations/v1/Conversations", {"FriendlyName": "spec"})["sid"]
    conv_base = f"/conversations/v1/Conversations/{v['conv']}"
    v["participant"] = api.ok("POST", conv_base + "/Participants", {"Identity": "spec-visitor"})["sid"]
    v["cmessage"] = api.ok("POST", conv_base + "/Messages", {"Author": "spec-visitor", "Body": "hello"})["sid"]
    hook = {"Target": "webhook", "Configuration.Url": "http://127.0.0.1:9/hook", "Configuration.Filters": "onMessageAdded"}
    v["conv_webhook"] = api.ok("POST", conv_base + "/Webhooks", hook)["sid"]
    if any(path.startswith("taskrouter/") for path, _ in served_routes()):
        v = build_routing_world(api, v)
    return v


def interaction_routing(v: Vars, **extra: Any) -> str:
    properties = {"workspace_sid": v["ws"], "workflow_sid": v["workflow"], "task_channel_unique_name": "chat"}
    return json.dumps({"type": "TaskRouter", "properties": {**properties, "attributes": {"spec": True}, **extra}})


def new_interaction(api: Api, v: Vars, agent: Optional[str] = None) -> Vars:
    """A conversation with a visitor handed to Flex through `POST /v1/Interactions` (accepted by `agent` if given)."""
    conv = api.ok("POST", "/conversations/v1/Conversations", {"FriendlyName": "interaction"})["sid"]
    api.ok("POST", f"/conversations/v1/Conversations/{conv}/Participants", {"Identity": unique("visitor")})
    channel = {"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": conv}}
    created = api.ok("POST", "/flex-api/v1/Interactions", {"Channel": json.dumps(channel), "Routing": interaction_routing(v)})
    found = {"kd_x": created["sid"], "uo_x": created["channel"]["sid"], "task_x": created["routing"]["properties"]["sid"]}
    if agent:
        accepted = requests.post(f"{api.base}/agent/api/tasks/{found['task_x']}/accept", json={"agent": agent}, timeout=10)
        assert accepted.status_code == 200, accepted.text
    return found


def new_task(api: Api, v: Vars) -> Vars:
    task = api.ok(
        "POST",
        f"/taskrouter/v1/Workspaces/{v['ws']}/Tasks",
        {"WorkflowSid": v["workflow"], "TaskChannel": "default", "Attributes": '{"type": "spec"}'},
    )
    return {"task_x": task["sid"]}


def build_routing_world(api: Api, v: Vars) -> Vars:
    """TaskRouter and Interactions resources: the provisioned workspace, an agent's worker, an accepted interaction."""
    tr = "/taskrouter/v1/Workspaces"
    v = dict(v)
    v["ws"] = api.ok("GET", tr)["workspaces"][0]["sid"]
    ws = f"{tr}/{v['ws']}"
    v["activity"] = api.ok("GET", ws + "/Activities")["activities"][0]["sid"]
    v["task_channel"] = api.ok("GET", ws + "/TaskChannels")["channels"][0]["sid"]
    v["queue"] = api.ok("GET", ws + "/TaskQueues", params={"FriendlyName": "Everyone"})["task_queues"][0]["sid"]
    v["workflow"] = api.ok("GET", ws + "/Workflows")["workflows"][0]["sid"]
    available = api.ok("GET", ws + "/Activities", params={"Available": "true"})["activities"][0]["sid"]
    v["worker"] = api.ok("POST", ws + "/Workers", {"FriendlyName": "spec-agent", "ActivitySid": available})["sid"]
    api.ok("POST", ws + "/Workers", {"FriendlyName": "spec-agent-2", "ActivitySid": available})
    accepted = new_interaction(api, v, agent="spec-agent")
    v.update(kd=accepted["kd_x"], uo=accepted["uo_x"], task=accepted["task_x"])
    v["reservation"] = api.ok("GET", f"{ws}/Tasks/{v['task']}/Reservations")["reservations"][0]["sid"]
    channel = f"/flex-api/v1/Interactions/{v['kd']}/Channels/{v['uo']}"
    v["ut"] = api.ok("GET", channel + "/Participants")["participants"][0]["sid"]
    transferred = agent_interaction(api, v)
    v.update(kd_t=transferred["kd_x"], uo_t=transferred["uo_x"])
    body = {"type": "cold", "from": transferred["agent_ut_x"], "to": v["queue"]}
    response = requests.post(
        f"{api.base}/flex-api/v1/Interactions/{v['kd_t']}/Channels/{v['uo_t']}/Transfers",
        json=body,
        auth=api.auth,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    v["ux"] = response.json()["sid"]
    return v


def accepted_interaction(api: Api, v: Vars) -> Vars:
    return new_interaction(api, v, agent="spec-agent")


def agent_interaction(api: Api, v: Vars) -> Vars:
    """An accepted interaction and its agent's participant (UT), the `From` of a transfer."""
    found = accepted_interaction(api, v)
    participants = api.ok("GET", f"/flex-api/v1/Interactions/{found['kd_x']}/Channels/{found['uo_x']}/Participants")
    return {**found, "agent_ut_x": next(p["sid"] for p in participants["participants"] if p["type"] == "agent")}


def customer_participant(api: Api, v: Vars) -> Vars:
    found = new_interaction(api, v)
    participants = api.ok("GET", f"/flex-api/v1/Interactions/{found['kd_x']}/Channels/{found['uo_x']}/Participants")
    return {**found, "ut_x": participants["participants"][0]["sid"]}


# -- the scenarios: one line (or a few) per route -------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One call: path and form values are templates over the world's SIDs (plus whatever `setup` adds)."""

    method: str
    path: str
    data: Dict[str, str] = field(default_factory=dict)
    query: Sequence[Tuple[str, str]] = ()
    setup: Optional[Callable[[Api, Vars], Vars]] = None
    status: Optional[int] = None  # default: the one success status the spec declares

    @property
    def id(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query) if self.query else ""
        return f"{self.method} {self.path}{query}"

    def run(self, api: Api, world: Vars) -> requests.Response:
        v = {**world, **(self.setup(api, world) if self.setup else {})}
        data = {k: fill(value, v) for k, value in self.data.items()} or None
        query = [(k, fill(value, v)) for k, value in self.query] or None
        return api.call(self.method, fill(self.path, v), data, query)


def fill(template: str, v: Vars, default: Optional[str] = None) -> str:
    """`{name}` replaced by the world's value (JSON braces in form values stay as they are)."""
    return re.sub(r"\{(\w+)\}", lambda m: v.get(m.group(1), default) if default else v[m.group(1)], template)


CHAT = "/chat/v2/Services/{svc}"
CHANNEL = CHAT + "/Channels/{channel}"
CONV = "/conversations/v1/Conversations/{conv}"
HOOK_URL = "http://127.0.0.1:9/hook"
WS = "/taskrouter/v1/Workspaces/{ws}"
ICHANNEL = "/flex-api/v1/Interactions/{kd}/Channels/{uo}"
S = Scenario

SCENARIOS: List[Scenario] = [
    # Flex v1
    S("GET", "/flex-api/v1/FlexFlows"),
    S("GET", "/flex-api/v1/FlexFlows", query=[("FriendlyName", "Flex Web Channel Flow")]),
    S("GET", "/flex-api/v1/FlexFlows/{flow}"),
    S("GET", "/flex-api/v1/WebChannels"),
    S(
        "POST",
        "/flex-api/v1/WebChannels",
        {
            "FlexFlowSid": "{flow}",
            "Identity": "{identity_x}",
            "CustomerFriendlyName": "Bo",
            "ChatFriendlyName": "Chat",
            "PreEngagementData": '{"q": 1}',
        },
        setup=fresh_identity,
    ),
    S("GET", "/flex-api/v1/WebChannels/{web}"),
    S("POST", "/flex-api/v1/WebChannels/{web_x}", {"ChatStatus": "inactive", "PostEngagementData": "{}"}, setup=new_web_channel),
    S("DELETE", "/flex-api/v1/WebChannels/{web_x}", setup=new_web_channel),
    # Flex v2
    S("POST", "/flex-api/v2/WebChats", {"AddressSid": "{address}", "CustomerFriendlyName": "Ann", "PreEngagementData": "{}"}),
    # Chat v2
    S("GET", CHAT),
    S("GET", CHAT + "/Channels"),
    S("GET", CHAT + "/Channels", query=[("Type", "private"), ("Type", "public"), ("PageSize", "2")]),
    S("POST", CHAT + "/Channels", {"FriendlyName": "new", "UniqueName": "{identity_x}", "Type": "public"}, setup=fresh_identity),
    S("GET", CHANNEL),
    S("POST", CHANNEL, {"FriendlyName": "renamed"}),
    S(
        "POST",
        CHAT + "/Channels/{channel_x}",
        {"Attributes": '{"status": "INACTIVE", "handoff_survey": {"rating": 4}}'},
        setup=inactive_web_channel,
    ),
    S("DELETE", CHAT + "/Channels/{channel_x}", setup=new_channel),
    S("GET", CHANNEL + "/Members"),
    S("GET", CHANNEL + "/Members", query=[("Identity", "spec-visitor")]),
    S("POST", CHANNEL + "/Members", {"Identity": "{identity_x}"}, setup=fresh_identity),
    S("GET", CHANNEL + "/Members/{member}"),
    S("DELETE", CHANNEL + "/Members/{member_x}", setup=new_member),
    S("GET", CHANNEL + "/Messages"),
    S("GET", CHANNEL + "/Messages", query=[("Order", "desc"), ("PageSize", "1")]),
    S("POST", CHANNEL + "/Messages", {"From": "spec-visitor", "Body": "hi", "Attributes": '{"a": 1}'}),
    S("POST", CHANNEL + "/Messages", {"From": "spec-visitor", "MediaSid": "{media_x}"}, setup=uploaded_media("svc")),
    S("GET", CHANNEL + "/Messages/{message}"),
    S("GET", CHANNEL + "/Webhooks"),
    S(
        "POST",
        CHAT + "/Channels/{channel_x}/Webhooks",
        {"Type": "webhook", "Configuration.Url": HOOK_URL, "Configuration.Filters": "onMessageSent"},
        setup=new_channel,
    ),
    S("GET", CHANNEL + "/Webhooks/{chat_webhook}"),
    S("POST", CHANNEL + "/Webhooks/{chat_webhook}", {"Configuration.RetryCount": "2"}),
    S("DELETE", CHAT + "/Channels/{channel_x}/Webhooks/{chat_webhook_x}", setup=new_chat_webhook),
    # Conversations v1
    S("GET", "/conversations/v1/Conversations"),
    S("GET", "/conversations/v1/Conversations", query=[("State", "active"), ("PageSize", "2")]),
    S(
        "POST",
        "/conversations/v1/Conversations",
        {"FriendlyName": "new", "UniqueName": "{identity_x}", "Attributes": "{}", "Timers.Inactive": "PT1H"},
        setup=fresh_identity,
    ),
    S("GET", CONV),
    S("POST", CONV, {"FriendlyName": "renamed", "Attributes": '{"x": 1}'}),
    S("DELETE", "/conversations/v1/Conversations/{conv_x}", setup=new_conversation),
    S("GET", CONV + "/Participants"),
    S("POST", CONV + "/Participants", {"Identity": "{identity_x}", "Attributes": "{}"}, setup=fresh_identity),
    S("GET", CONV + "/Participants/{participant}"),
    S("DELETE", CONV + "/Participants/{participant_x}", setup=new_participant),
    S("GET", CONV + "/Messages"),
    S("GET", CONV + "/Messages", query=[("Order", "desc"), ("PageSize", "1")]),
    S("POST", CONV + "/Messages", {"Author": "spec-visitor", "Body": "hi"}),
    S("POST", CONV + "/Messages", {"Author": "spec-visitor", "MediaSid": "{media_x}"}, setup=uploaded_media("conv_svc")),
    S("GET", CONV + "/Messages/{cmessage}"),
    S("GET", CONV + "/Webhooks"),
    S(
        "POST",
        "/conversations/v1/Conversations/{conv_x}/Webhooks",
        {"Target": "webhook", "Configuration.Url": HOOK_URL, "Configuration.Filters": "onMessageAdded"},
        setup=new_conversation,
    ),
    S("GET", CONV + "/Webhooks/{conv_webhook}"),
    S("POST", CONV + "/Webhooks/{conv_webhook}", {"Configuration.Filters": "onConversationUpdated"}),
    S("DELETE", "/conversations/v1/Conversations/{conv_x}/Webhooks/{conv_webhook_x}", setup=new_conversation_webhook),
    S("GET", "/conversations/v1/Configuration/Addresses"),
    S("GET", "/conversations/v1/Configuration/Addresses", query=[("Type", "chat")]),
    S("GET", "/conversations/v1/Configuration/Addresses/{address}"),
    # TaskRouter v1
    S("GET", "/taskrouter/v1/Workspaces"),
    S("GET", "/taskrouter/v1/Workspaces", query=[("FriendlyName", "Flex Task Assignment")]),
    S("GET", WS),
    S("GET", WS + "/Activities"),
    S("GET", WS + "/Activities", query=[("Available", "true"), ("FriendlyName", "Available")]),
    S("GET", WS + "/Activities/{activity}"),
    S("GET", WS + "/TaskChannels"),
    S("GET", WS + "/TaskChannels/{task_channel}"),
    S("GET", WS + "/TaskQueues"),
    S("GET", WS + "/TaskQueues", query=[("FriendlyName", "Everyone")]),
    S("GET", WS + "/TaskQueues/{queue}"),
    S("GET", WS + "/TaskQueues/{queue}/RealTimeStatistics"),
    S("GET", WS + "/TaskQueues/{queue}/RealTimeStatistics", query=[("TaskChannel", "chat")]),
    S("GET", WS + "/TaskQueues/{queue}/CumulativeStatistics"),
    S("GET", WS + "/TaskQueues/{queue}/CumulativeStatistics", query=[("Minutes", "60"), ("SplitByWaitTime", "10,60")]),
    S("GET", WS + "/Workflows"),
    S("GET", WS + "/Workflows", query=[("FriendlyName", "Assign to Anyone")]),
    S("GET", WS + "/Workflows/{workflow}"),
    S("GET", WS + "/Workers"),
    S("GET", WS + "/Workers", query=[("FriendlyName", "spec-agent"), ("Available", "true")]),
    S("POST", WS + "/Workers", {"FriendlyName": "{identity_x}", "Attributes": "{}"}, setup=fresh_identity),
    S("GET", WS + "/Workers/{worker}"),
    S("POST", WS + "/Workers/{worker}", {"Attributes": '{"skills": ["chat"]}'}),
    S("GET", WS + "/Tasks"),
    S(
        "GET",
        WS + "/Tasks",
        query=[
            ("AssignmentStatus", "pending"),
            ("AssignmentStatus", "reserved"),
            ("TaskQueueSid", "{queue}"),
            ("Ordering", "DateCreated:asc"),
        ],
    ),
    S(
        "POST",
        WS + "/Tasks",
        {"WorkflowSid": "{workflow}", "TaskChannel": "default", "Attributes": '{"type": "spec"}', "Timeout": "600"},
    ),
    S("GET", WS + "/Tasks/{task}"),
    S("POST", WS + "/Tasks/{task_x}", {"Attributes": '{"type": "changed"}'}, setup=new_task),
    S("POST", WS + "/Tasks/{task_x}", {"Attributes": '{"handoff_survey": {"rating": 5}}'}, setup=ended_task(wrap_up=True)),
    S("POST", WS + "/Tasks/{task_x}", {"AssignmentStatus": "canceled", "Reason": "spec"}, setup=new_task),
    S("DELETE", WS + "/Tasks/{task_x}", setup=new_task),
    S("GET", WS + "/Tasks/{task}/Reservations"),
    S("GET", WS + "/Tasks/{task}/Reservations/{reservation}"),
    # Flex v1 Interactions
    S(
        "POST",
        "/flex-api/v1/Interactions",
        {
            "Channel": '{"type": "web", "initiated_by": "customer", "properties": {"media_channel_sid": "{conv_x}"}}',
            "Routing": "{routing}",
        },
        setup=lambda api, v: {**new_conversation(api, v), "routing": interaction_routing(v)},
    ),
    S("GET", "/flex-api/v1/Interactions/{kd}"),
    S("POST", "/flex-api/v1/Interactions/{kd}", {"WebhookTtid": "flex_interactionwebhook_00000000000000000000000000"}),
    S("GET", "/flex-api/v1/Interactions/{kd}/Channels"),
    S("GET", ICHANNEL),
    S("POST", "/flex-api/v1/Interactions/{kd_x}/Channels/{uo_x}", {"Status": "closed"}, setup=accepted_interaction),
    S("GET", ICHANNEL + "/Participants"),
    S(
        "POST",
        ICHANNEL + "/Participants",
        {"Type": "supervisor", "MediaProperties": '{"identity": "{identity_x}"}'},
        setup=fresh_identity,
    ),
    S(
        "POST",
        "/flex-api/v1/Interactions/{kd_x}/Channels/{uo_x}/Participants/{ut_x}",
        {"Status": "closed"},
        setup=customer_participant,
    ),
    S("GET", ICHANNEL + "/Invites"),
    S("POST", ICHANNEL + "/Invites", {"Routing": "{routing}"}, setup=lambda api, v: {"routing": interaction_routing(v)}),
    S(
        "POST",
        "/flex-api/v1/Interactions/{kd_x}/Channels/{uo_x}/Transfers",
        {"Type": "cold", "From": "{agent_ut_x}", "To": "{queue}"},
        setup=agent_interaction,
    ),
    S("GET", "/flex-api/v1/Interactions/{kd_t}/Channels/{uo_t}/Transfers/{ux}"),
    S("POST", "/flex-api/v1/Interactions/{kd_t}/Channels/{uo_t}/Transfers/{ux}", {"Status": "completed"}),
]


def route_of(scenario: Scenario) -> Optional[Tuple[str, str]]:
    """The served route a scenario calls."""
    return next(
        (
            (path, method)
            for path, method in served_routes()
            if method == scenario.method and segments(path) == segments(scenario.path)
        ),
        None,
    )


def operation_of(scenario: Scenario) -> Operation:
    route = route_of(scenario)
    assert route is not None, f"{scenario.id}: the sandbox serves no such route"
    operation = spec_operation(*route)
    assert operation is not None and operation.op is not None, f"{scenario.id}: no spec operation"
    return operation


# -- fixtures ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    server = start_sandbox(tmp_path_factory.mktemp("spec-sandbox-logs"), name="spec-sandbox")
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def api(spec_sandbox: Sandbox) -> Api:
    return Api(spec_sandbox)


@pytest.fixture(scope="module")
def world(api: Api, spec_sandbox: Sandbox) -> Vars:
    return build_world(api, spec_sandbox.info)


# -- coverage ------------------------------------------------------------------------
def test_every_served_route_has_a_spec_operation_and_a_scenario() -> None:
    routes = served_routes()
    assert len(routes) >= 40, routes
    no_spec = [f"{m} /{p}" for p, m in routes if (op := spec_operation(p, m)) is None or op.op is None]
    covered = {route_of(s) for s in SCENARIOS}
    no_scenario = [f"{m} /{p}" for p, m in routes if (p, m) not in covered]
    stray = [s.id for s in SCENARIOS if route_of(s) is None]
    assert not no_spec, "served routes without a spec operation:\n  " + "\n  ".join(no_spec)
    assert not no_scenario, "served routes without a scenario in SCENARIOS:\n  " + "\n  ".join(no_scenario)
    assert not stray, "scenarios for routes the sandbox does not serve:\n  " + "\n  ".join(stray)


def test_spec_copies_are_the_pinned_twilio_oai_files() -> None:
    readme = (SPEC_DIR / "README.md").read_text()
    assert "d50069b44ea8cd23141385bdb6db48f16ff75bb5" in readme and (SPEC_DIR / "LICENSE").is_file()
    for name in SPEC_FILES.values():
        assert name in readme and spec_doc(*next(k for k, v in SPEC_FILES.items() if v == name))["openapi"].startswith("3.")


# -- every route: status and body as the spec declares ------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_response_matches_the_spec(scenario: Scenario, api: Api, world: Vars) -> None:
    check_response(operation_of(scenario), scenario.run(api, world), scenario.status)


def first_scenarios() -> List[Scenario]:
    seen: Dict[Tuple[str, ...], Scenario] = {}
    for scenario in SCENARIOS:
        seen.setdefault(segments(scenario.path), scenario)
    return list(seen.values())


@pytest.mark.parametrize("scenario", first_scenarios(), ids=[s.path for s in first_scenarios()])
def test_undeclared_methods_are_405_with_twilio_error_body(scenario: Scenario, api: Api, world: Vars) -> None:
    """Methods the spec does not declare for a path answer 405 with an Allow header; so do declared ones the sandbox
    does not model (e.g. `DELETE /v1/FlexFlows/{Sid}`): it never pretends to have done them."""
    route_path = next(p for p, _ in served_routes() if segments(p) == segments(scenario.path))
    operation = spec_operation(route_path, "GET")
    assert operation is not None
    served = {m for p, m in served_routes() if p == route_path}
    assert served <= set(operation.declared), f"{route_path}: serves {served}, the spec declares {operation.declared}"
    path = fill(scenario.path, world, default="XX" + "0" * 32)  # Sanic routes by path alone
    for method in METHODS:
        if method in served:
            continue
        response = api.call(method, path, data={"FriendlyName": "x"} if method != "GET" else None)
        check_error(response, 405, 20004)
        assert set(response.headers["Allow"].split(", ")) == served, response.headers


@pytest.mark.parametrize(
    "scenario", [s for s in first_scenarios() if "{" in s.path], ids=[s.path for s in first_scenarios() if "{" in s.path]
)
def test_unknown_sids_are_404_with_twilio_error_body(scenario: Scenario, api: Api, world: Vars) -> None:
    """The last SID in the path replaced by one that does not exist: 404 / 20404 for every method served there."""
    head, _, _ = scenario.path.rpartition("{")
    name = scenario.path[len(head) + 1 :].split("}")[0]
    v = {**world, **{k + "_x": value for k, value in world.items()}}  # setup-made resources: the world's own
    real = v[name]
    v[name] = real[:2] + "0" * 32
    route_path = next(p for p, _ in served_routes() if segments(p) == segments(scenario.path))
    for method in sorted(m for p, m in served_routes() if p == route_path):
        same = next((s for s in SCENARIOS if s.method == method and segments(s.path) == segments(scenario.path)), scenario)
        data = {k: fill(value, v, default="x") for k, value in same.data.items()} or None
        response = api.call(method, fill(scenario.path, v), data=data)
        check_error(response, 404, None)
        assert response.json()["code"] in (20404, 45744), response.text


# -- errors the scenarios provoke ------------------------------------------------------------
ERRORS: List[Tuple[Scenario, int]] = [
    (S("POST", "/flex-api/v1/WebChannels", {"FlexFlowSid": "{flow}"}), 400),
    (S("POST", "/flex-api/v2/WebChats", {}), 400),
    (S("GET", "/conversations/v1/Conversations", query=[("PageSize", "0")]), 400),
    (S("GET", CONV + "/Messages", query=[("Order", "sideways")]), 400),
    (S("POST", CHANNEL + "/Members", {"Identity": "spec-visitor"}), 409),
    (S("POST", CONV + "/Messages", {"Author": "x"}), 400),
    # after the chat: a closed conversation is final (50377), a completed task takes no attributes (20001)
    (S("POST", "/conversations/v1/Conversations/{conv_x}", {"Attributes": "{}"}, setup=closed_conversation), 400),
    (S("POST", WS + "/Tasks/{task_x}", {"Attributes": "{}"}, setup=ended_task(wrap_up=False)), 400),
]


@pytest.mark.parametrize("scenario,status", ERRORS, ids=[f"{s.id}->{c}" for s, c in ERRORS])
def test_errors_have_twilio_error_body(scenario: Scenario, status: int, api: Api, world: Vars) -> None:
    check_error(scenario.run(api, world), status)


# -- documented list filters and parameters ---------------------------------------------------
def items(api: Api, path: str, key: str, params: Any = None) -> List[Dict[str, Any]]:
    """Every item of a list, following next_page_url like the SDK."""
    page = api.ok("GET", path, params=params)
    found = list(page[key])
    while page["meta"]["next_page_url"]:
        response = api.follow(page["meta"]["next_page_url"])
        assert response.status_code == 200, response.text
        page = response.json()
        found += page[key]
    return found


def test_conversations_state_filter(api: Api, world: Vars) -> None:
    inactive = api.ok("POST", "/conversations/v1/Conversations", {"FriendlyName": "idle", "State": "inactive"})["sid"]
    for state in ("active", "inactive"):
        listed = items(api, "/conversations/v1/Conversations", "conversations", {"State": state})
        assert listed and all(c["state"] == state for c in listed)
        assert (inactive in {c["sid"] for c in listed}) == (state == "inactive")
        assert (world["conv"] in {c["sid"] for c in listed}) == (state == "active")


def test_conversations_date_range_filter(api: Api, world: Vars) -> None:
    """StartDate/EndDate bound the creation date; with either, the newest conversation comes first."""
    everything = items(api, "/conversations/v1/Conversations", "conversations")
    today = everything[-1]["date_created"][:10]
    since = items(api, "/conversations/v1/Conversations", "conversations", {"StartDate": f"{today}T00:00:00Z"})
    assert {c["sid"] for c in since} == {c["sid"] for c in everything if c["date_created"] >= f"{today}T00:00:00Z"}
    assert [c["date_created"] for c in since] == sorted((c["date_created"] for c in since), reverse=True)
    assert items(api, "/conversations/v1/Conversations", "conversations", {"EndDate": "2000-01-01T23:59:59Z"}) == []


@pytest.mark.parametrize("base", [CHANNEL, CONV])
def test_messages_order(base: str, api: Api, world: Vars) -> None:
    path = fill(base, world) + "/Messages"
    author = {"From": "spec-visitor"} if base == CHANNEL else {"Author": "spec-visitor"}
    for n in range(3):
        api.ok("POST", path, {**author, "Body": f"order {n}"})
    ascending = [m["index"] for m in items(api, path, "messages", {"Order": "asc", "PageSize": "2"})]
    descending = [m["index"] for m in items(api, path, "messages", {"Order": "desc", "PageSize": "2"})]
    assert ascending == sorted(ascending) and len(ascending) >= 4
    assert descending == ascending[::-1]


def test_members_identity_filter_takes_several_identities(api: Api, world: Vars) -> None:
    path = fill(CHANNEL, world) + "/Members"
    other = unique("member")
    api.ok("POST", path, {"Identity": other})
    assert [m["identity"] for m in items(api, path, "members", {"Identity": "spec-visitor"})] == ["spec-visitor"]
    both = items(api, path, "members", [("Identity", "spec-visitor"), ("Identity", other)])
    assert sorted(m["identity"] for m in both) == sorted(["spec-visitor", other])
    assert items(api, path, "members", {"Identity": "nobody"}) == []


def test_channels_type_filter_takes_several_types(api: Api, world: Vars) -> None:
    path = fill(CHAT, world) + "/Channels"
    public = api.ok("POST", path, {"Type": "public", "FriendlyName": "pub"})["sid"]
    privates = items(api, path, "channels", {"Type": "private"})
    assert privates and all(c["type"] == "private" for c in privates) and public not in {c["sid"] for c in privates}
    both = {c["sid"] for c in items(api, path, "channels", [("Type", "private"), ("Type", "public")])}
    assert public in both and world["channel"] in both


def test_flex_flows_friendly_name_filter(api: Api, world: Vars) -> None:
    assert [f["sid"] for f in items(api, "/flex-api/v1/FlexFlows", "flex_flows", {"FriendlyName": "Flex Web Channel Flow"})] == [
        world["flow"]
    ]
    assert items(api, "/flex-api/v1/FlexFlows", "flex_flows", {"FriendlyName": "no such flow"}) == []


def test_addresses_type_filter(api: Api, world: Vars) -> None:
    path = "/conversations/v1/Configuration/Addresses"
    assert [a["sid"] for a in items(api, path, "address_configurations", {"Type": "chat"})] == [world["address"]]
    assert items(api, path, "address_configurations", {"Type": "sms"}) == []


def test_paging_page_size_page_and_page_token(api: Api, world: Vars) -> None:
    """PageSize bounds a page; next/previous/first page URLs carry Page and PageToken and the filters; no item twice."""
    conv = api.ok("POST", "/conversations/v1/Conversations", {"FriendlyName": "paging"})["sid"]
    path = f"/conversations/v1/Conversations/{conv}/Participants"
    for _ in range(5):
        api.ok("POST", path, {"Identity": unique("p")})
    first = api.ok("GET", path, params={"PageSize": "2"})
    assert len(first["participants"]) == 2 and first["meta"]["page"] == 0 and first["meta"]["page_size"] == 2
    assert first["meta"]["previous_page_url"] is None
    second = api.follow(first["meta"]["next_page_url"]).json()
    assert second["meta"]["page"] == 1 and len(second["participants"]) == 2
    assert parse_qs(urlparse(second["meta"]["url"]).query)["PageToken"]
    back = api.follow(second["meta"]["previous_page_url"]).json()
    assert [p["sid"] for p in back["participants"]] == [p["sid"] for p in first["participants"]]
    every = items(api, path, "participants", {"PageSize": "2"})
    assert len(every) == 5 == len({p["sid"] for p in every})
    assert api.follow(first["meta"]["first_page_url"]).json()["participants"] == first["participants"]
    query = parse_qs(
        urlparse(
            api.ok("GET", "/conversations/v1/Conversations", params={"State": "active", "PageSize": "1"})["meta"]["next_page_url"]
        ).query
    )
    assert query["State"] == ["active"] and query["PageSize"] == ["1"] and query["Page"] == ["1"]


def test_the_validator_catches_what_it_must() -> None:
    """A test that can fail: an extra field, a missing one, a wrong type and a bad date are all reported."""
    operation = Operation("conversations", "v1", "/v1/Conversations/{ConversationSid}/Participants/{Sid}", "GET")
    schema = resolve(operation.doc, operation.op["responses"]["200"]["content"]["application/json"]["schema"])  # type: ignore[index]
    good = {name: None for name in schema["properties"]}
    assert validate(operation.doc, schema, good) == []
    bad = {**good, "extra": 1, "date_created": "yesterday", "last_read_message_index": "3"}
    del bad["sid"]
    problems = "\n".join(validate(operation.doc, schema, bad))
    for needle in ("missing ['sid']", "not in the spec ['extra']", "date_created", "last_read_message_index"):
        assert needle in problems, problems
    assert validate(operation.doc, {"type": "string", "nullable": False}, None)
