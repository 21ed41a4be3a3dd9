"""The Northwind assistant's servers as the tests and the benchmarks start them.

A Flex sandbox process (`start_sandbox`), an agent working it (`AgentDesk`), and one Flex
mode's action server + Rasa server (`Stack`), each a real process on a free port. One place,
so the benchmarks measure exactly what the tests prove.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import requests
from twilio.rest import Client

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import VENV_BIN, ServerProcess, free_port
from rasa_flex_handoff.settings import Settings, settings_from_env
from rasa_flex_handoff.twilio_http import twilio_client

AGENT = "alice"

CREDENTIALS = DEVELOPMENT.as_env()


@dataclass
class Sandbox:
    """A running sandbox: where it is, settings/clients aimed at it, and the SIDs it provisioned."""

    base_url: str
    settings: Settings
    client: Client
    process: ServerProcess
    info: Dict[str, Any]

    @property
    def flex_flow_sid(self) -> str:
        return self.info["flex_flow_sid"]

    @property
    def chat_service_sid(self) -> str:
        return self.info["chat_service_sid"]

    @property
    def address_sid(self) -> str:
        return self.info["conversations_address_sid"]

    def async_client(self) -> Client:
        """A client whose `*_async` methods work (create it inside the event loop that uses it)."""
        return twilio_client(self.settings, asynchronous=True)

    def agent(self, method: str, path: str, json: Optional[Dict[str, Any]] = None) -> requests.Response:
        """Call the sandbox's agent JSON API or control endpoints (no Twilio auth)."""
        return requests.request(method, self.base_url + path, json=json, timeout=10)

    def clear_faults(self) -> None:
        self.agent("DELETE", "/sandbox/faults").raise_for_status()


def start_sandbox(
    log_dir: Path,
    name: str = "flex-sandbox",
    db: Optional[Path] = None,
    port: Optional[int] = None,
    extra_env: Optional[Dict[str, str]] = None,
    credentials: Optional[Dict[str, str]] = None,
    available: Sequence[str] = (AGENT,),
) -> Sandbox:
    """Start `python -m flex_sandbox` as a real process and wait for /health.

    `credentials` (the four `TWILIO_*` variables of `CREDENTIALS`) run it as another account;
    the returned `settings`/`client` use the same ones. The agents in `available` go available
    at once, as if they had opened the desktop: a handoff finds no agent in the queue otherwise.
    """
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    storage = ["--db", str(db)] if db else ["--in-memory"]
    credentials = credentials or CREDENTIALS
    env = {**credentials, "TWILIO_API_BASE": "", "FLEX_SANDBOX_RETRY_DELAY": "0.05", **(extra_env or {})}
    process = ServerProcess(
        name,
        [sys.executable, "-m", "flex_sandbox", "--port", str(port), *storage],
        f"{base_url}/health",
        log_dir,
        env=env,
        startup_timeout=30,
    ).start()
    settings = settings_from_env({**credentials, "TWILIO_API_BASE": base_url, "PUBLIC_URL": "http://127.0.0.1:5005"})
    info = requests.get(f"{base_url}/health", timeout=5).json()
    sandbox = Sandbox(base_url, settings, twilio_client(settings), process, info)
    for name in available:
        sandbox.agent("POST", "/agent/api/agents", {"agent": name, "available": True}).raise_for_status()
    return sandbox


# The `bot_uttered` shapes Rasa's stock socket.io output sends (tests/unit/test_payloads.py derives
# them from Rasa's own code); a `metadata` key may come on top. Widgets drop anything else.
RASA_SOCKETIO_SHAPES = [{"text"}, {"text", "quick_replies"}, {"attachment"}]


def off_contract(payload: Any) -> bool:
    """Whether a `bot_uttered` payload is something a plain Rasa widget would not show.

    An image in the handoff (payloads.py) comes as its name (`text`) and Rasa's image shape
    (`attachment`) of the same file at once: a plain widget shows one of the two, either will do.
    """
    if not isinstance(payload, dict):
        return True
    keys = set(payload) - {"metadata"}
    if keys == {"text", "attachment"} and _previews_its_file(payload):
        keys = {"text"}
    if keys not in RASA_SOCKETIO_SHAPES:
        return True
    return "text" in payload and not (isinstance(payload["text"], str) and payload["text"].strip())


def _previews_its_file(payload: Dict[str, Any]) -> bool:
    """Whether the payload's `attachment` is Rasa's image shape of the file its `metadata.handoff.attachment` names."""
    image = payload.get("attachment")
    shown = ((payload.get("metadata") or {}).get("handoff") or {}).get("attachment")
    if not isinstance(image, dict) or not isinstance(shown, dict) or image.get("type") != "image":
        return False
    return bool(shown.get("url")) and (image.get("payload") or {}).get("src") == shown["url"]


def flat(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A payload as our widget reads it: Rasa's keys plus `metadata.handoff`, an agent's words as `text`.

    The payload as sent stays under `wire` (its shape is checked apart, by `off_contract`).
    """
    handoff = (payload.get("metadata") or {}).get("handoff") or {}
    found = {**{k: v for k, v in payload.items() if k != "metadata"}, **handoff, "wire": payload}
    if handoff.get("sender") == "agent" and "body" in handoff:
        found["text"] = handoff["body"]
    return found


def base_env(sandbox_url: str) -> Dict[str, str]:
    """Environment for our processes: sandbox credentials and URL, whatever .env says."""
    return {
        **CREDENTIALS,
        "TWILIO_API_BASE": sandbox_url,
        "TWILIO_TIMEOUT": "2",
        "TWILIO_RETRIES": "1",
        "HANDOFF_SHELL_WAIT": "4",
        "FLEX_FLOW_SID": "",
        "FLEX_CONVERSATIONS_ADDRESS_SID": "",
        "REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }


class AgentDesk:
    """The sandbox as an agent and a tester use it: tasks, accept, messages, end, faults."""

    def __init__(self, server: Sandbox) -> None:
        self.server = server
        self.url = server.base_url
        self.process = server.process

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        r = self.server.agent(method, path, body)
        r.raise_for_status()
        return r.json() if r.content else None

    def tasks(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/agent/api/tasks")["tasks"]

    def task_for(self, channel_sid: str) -> Optional[Dict[str, Any]]:
        return next((t for t in self.tasks() if t["channel_sid"] == channel_sid), None)

    def accept(self, task_sid: str, agent: str = AGENT) -> Dict[str, Any]:
        return self.request("POST", f"/agent/api/tasks/{task_sid}/accept", {"agent": agent})

    def send(self, task_sid: str, body: str, agent: str = AGENT) -> Dict[str, Any]:
        return self.request("POST", f"/agent/api/tasks/{task_sid}/messages", {"agent": agent, "body": body})

    def transcript(self, task_sid: str) -> List[Dict[str, Any]]:
        return self.request("GET", f"/agent/api/tasks/{task_sid}/messages")["messages"]

    def typing(self, task_sid: str, agent: str = AGENT) -> None:
        self.request("POST", f"/agent/api/tasks/{task_sid}/typing", {"agent": agent})

    def end(self, task_sid: str, agent: str = AGENT, wrap_up: bool = False) -> Dict[str, Any]:
        """End the chat; `wrap_up` leaves the task `wrapping` (as Flex's UI does) until `complete`."""
        return self.request("POST", f"/agent/api/tasks/{task_sid}/end", {"agent": agent, "wrap_up": wrap_up})

    def _task_sid(self, task_or_chat_sid: str) -> str:
        """A task SID as given, or the task of a chat (CH…): its live one, else its newest."""
        if not task_or_chat_sid.startswith("CH"):
            return task_or_chat_sid
        found = [t for t in self.tasks() if t["channel_sid"] == task_or_chat_sid]
        live = [t for t in found if t["status"] != "ended"]
        if not (live or found):
            raise LookupError(f"no task for chat {task_or_chat_sid}")
        return (live or found)[0]["sid"]

    def send_file(
        self, task_or_chat_sid: str, filename: str, content_type: str, data: bytes, agent: str = AGENT
    ) -> Dict[str, Any]:
        """The agent attaches a file, as in Flex's UI: uploaded to MCS, then a media message (MediaSid, no body).
        Returns the message as the agent API shows it (`media[0]` has sid, filename, content_type, size, url)."""
        r = requests.post(
            f"{self.url}/agent/api/tasks/{self._task_sid(task_or_chat_sid)}/media",
            data={"agent": agent},
            files={"file": (filename, data, content_type)},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def task(self, task_or_chat_sid: str) -> Dict[str, Any]:
        """The task as the agent API shows it, with `attributes` (the TaskRouter task's) and `chat_attributes`."""
        return self.request("GET", f"/agent/api/tasks/{self._task_sid(task_or_chat_sid)}")

    def task_attributes(self, task_or_chat_sid: str) -> Dict[str, Any]:
        """The TaskRouter task's attributes, parsed (what Flex Insights reads)."""
        return self.task(task_or_chat_sid)["attributes"]

    def chat_attributes(self, task_or_chat_sid: str) -> Any:
        """The chat's own attributes now (the conversation's or the Chat channel's), parsed."""
        return self.task(task_or_chat_sid)["chat_attributes"]

    def media_messages(self, task_or_chat_sid: str) -> List[Dict[str, Any]]:
        """The chat's messages that carry files (each `media` entry with a fresh pre-signed `url`)."""
        return [m for m in self.transcript(self._task_sid(task_or_chat_sid)) if m["media"]]

    def summary_messages(self, task_or_chat_sid: str) -> List[Dict[str, Any]]:
        """The messages the desktop shows as the bot's summary card (attributes `handoff_summary: true`, no participant)."""
        return [m for m in self.transcript(self._task_sid(task_or_chat_sid)) if m["summary"]]

    def media_bytes(self, item: Dict[str, Any]) -> bytes:
        """Download one `media` entry of a message through its pre-signed URL (no credentials, as a browser does)."""
        r = requests.get(item["url"], timeout=30)
        r.raise_for_status()
        return r.content

    def available(self, agent: str = AGENT, on: bool = True) -> Dict[str, Any]:
        """Go available (`on`) or offline: the agent's TaskRouter worker changes activity."""
        return self.request("POST", "/agent/api/agents", {"agent": agent, "available": on})

    def agents(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/agent/api/agents")["agents"]

    def transfer(
        self, task_sid: str, to_agent: Optional[str] = None, to_queue: Optional[str] = None, agent: str = AGENT
    ) -> Dict[str, Any]:
        """Cold-transfer an accepted chat; returns the new task (the one the next agent accepts)."""
        body: Dict[str, Any] = {"agent": agent}
        if to_agent:
            body["to_agent"] = to_agent
        if to_queue:
            body["to_queue"] = to_queue
        return self.request("POST", f"/agent/api/tasks/{task_sid}/transfer", body)

    def complete(self, task_sid: str, agent: str = AGENT) -> Dict[str, Any]:
        """Done with a message task (accepted first when nobody has it)."""
        return self.request("POST", f"/agent/api/tasks/{task_sid}/complete", {"agent": agent})

    def fault(self, **spec: Any) -> Dict[str, Any]:
        return self.request("POST", "/sandbox/faults", spec)

    def clear_faults(self) -> None:
        self.server.clear_faults()


class Stack:
    """Action server + Rasa server for one Flex mode, with the files they were started from."""

    rasa_options: Sequence[str] = ()  # more `rasa run` options, e.g. ("--cors", "*")

    def __init__(
        self,
        mode: str,
        sandbox: AgentDesk,
        model: Path,
        workdir: Path,
        shell_wait: float = 4,
        extra_channels: Sequence[str] = (),
        socketio_options: Optional[Dict[str, str]] = None,
    ) -> None:
        self.mode = mode
        self.sandbox = sandbox
        self.model = model
        self.workdir = workdir
        self.rasa_port = free_port()
        self.actions_port = free_port()
        self.url = f"http://127.0.0.1:{self.rasa_port}"
        self.env = {
            **base_env(sandbox.url),
            "FLEX_MODE": mode,
            "PUBLIC_URL": self.url,
            "HANDOFF_SHELL_WAIT": str(shell_wait),
        }
        self.tracker_db = workdir / "trackers.db"
        self.credentials = workdir / "credentials.yml"
        self.endpoints = workdir / "endpoints.yml"
        self.credentials.write_text(
            "rasa_flex_handoff.SocketIOInput:\n"
            "  session_persistence: true\n"
            "  socketio_path: /socket.io\n"
            + "".join(f"  {key}: {value}\n" for key, value in (socketio_options or {}).items())
            + "rasa_flex_handoff.RestInput: {}\n"
            "rest: {}\n" + "".join(f"{channel}: {{}}\n" for channel in extra_channels)
        )
        self.endpoints.write_text(
            f"action_endpoint:\n  url: http://127.0.0.1:{self.actions_port}/webhook\n"
            f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {self.tracker_db}\n"
            "lock_store:\n  type: in_memory\n"
        )
        self.actions: Optional[ServerProcess] = None
        self.rasa: Optional[ServerProcess] = None

    def start(self) -> Stack:
        self.actions = ServerProcess(
            f"actions-{self.mode}",
            [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(self.actions_port), "--actions", "actions"],
            f"http://127.0.0.1:{self.actions_port}/health",
            self.workdir,
            env=self.env,
        ).start()
        self.start_rasa()
        return self

    def start_rasa(self) -> None:
        self.rasa = self.rasa_server(f"rasa-{self.mode}", self.rasa_port)

    def start_replica(self, port: int) -> ServerProcess:
        """A second Rasa server on the same tracker store, with this stack's environment."""
        return self.rasa_server(f"rasa-{self.mode}-replica", port)

    def rasa_server(self, name: str, port: int) -> ServerProcess:
        """A started Rasa server of this stack (model, channels, endpoints, environment) on `port`."""
        return ServerProcess(
            name,
            [
                str(VENV_BIN / "rasa"),
                "run",
                "--enable-api",
                *self.rasa_options,
                "-m",
                str(self.model),
                "--credentials",
                str(self.credentials),
                "--endpoints",
                str(self.endpoints),
                "--port",
                str(port),
                "--interface",
                "127.0.0.1",
            ],
            f"http://127.0.0.1:{port}/status",
            self.workdir,
            env=self.env,
        ).start()

    def restart_rasa(self) -> None:
        assert self.rasa is not None
        self.rasa.stop()
        self.start_rasa()

    def stop(self) -> None:
        for process in (self.rasa, self.actions):
            if process is not None:
                process.stop()

    def logs(self) -> str:
        parts = []
        for process in (self.rasa, self.actions, self.sandbox.process):
            if process is not None:
                parts.append(f"--- {process.name} ---\n{process.tail(80)}")
        return "\n".join(parts)

    def tracker(self, sender_id: str) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/conversations/{sender_id}/tracker", timeout=10) as r:
            return json.loads(r.read())

    def rest(
        self,
        sender: str,
        message: str,
        channel: str = "handoff_rest",
        timeout: float = 30,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> List[Dict[str, Any]]:
        req = urllib.request.Request(
            f"{self.url}/webhooks/{channel}/webhook",
            data=json.dumps({"sender": sender, "message": message, "metadata": metadata or {}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return [flat(m) for m in json.loads(r.read())]

    def rest_messages(self, sender: str, since: int = 0, channel: str = "handoff_rest") -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/webhooks/{channel}/messages?sender={sender}&since={since}", timeout=10) as r:
            found = json.loads(r.read())
        return {**found, "messages": [flat(m) for m in found["messages"]]}
