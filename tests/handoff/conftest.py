"""Real processes for handoff tests: Flex sandbox, action server, Rasa server, socket.io visitors, agents."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import socketio

from flex_sandbox.credentials import DEVELOPMENT
from tests.sandbox.conftest import Sandbox as SandboxServer, start_sandbox
from tests.servers import VENV_BIN, ServerProcess, free_port, wait_for

MODES = ["conversations", "legacy"]
AGENT = "alice"

# The `bot_uttered` shapes Rasa's stock socket.io output sends (tests/unit/test_payloads.py derives
# them from Rasa's own code); a `metadata` key may come on top. Widgets drop anything else.
RASA_SOCKETIO_SHAPES = [{"text"}, {"text", "quick_replies"}, {"attachment"}]


def off_contract(payload: Any) -> bool:
    """Whether a `bot_uttered` payload is something a plain Rasa widget would not show."""
    if not isinstance(payload, dict) or (set(payload) - {"metadata"}) not in RASA_SOCKETIO_SHAPES:
        return True
    return "text" in payload and not (isinstance(payload["text"], str) and payload["text"].strip())


def flat(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A payload as our widget reads it: Rasa's keys plus `metadata.handoff`, an agent's words as `text`.

    The payload as sent stays under `wire` (its shape is checked apart, by `off_contract`).
    """
    handoff = (payload.get("metadata") or {}).get("handoff") or {}
    found = {**{k: v for k, v in payload.items() if k != "metadata"}, **handoff, "wire": payload}
    if handoff.get("sender") == "agent" and "body" in handoff:
        found["text"] = handoff["body"]
    return found


@pytest.fixture(scope="session")
def handoff_model(request: pytest.FixtureRequest) -> Path:
    """The project's model (tests/conftest.py trains it when data changed), or HANDOFF_TEST_MODEL."""
    override = os.environ.get("HANDOFF_TEST_MODEL")
    if override:
        return Path(override)
    return request.getfixturevalue("trained_model")


def base_env(sandbox_url: str) -> Dict[str, str]:
    """Environment for our processes: sandbox credentials and URL, whatever .env says."""
    return {
        "TWILIO_ACCOUNT_SID": DEVELOPMENT.account_sid,
        "TWILIO_AUTH_TOKEN": DEVELOPMENT.auth_token,
        "TWILIO_API_KEY": DEVELOPMENT.api_key,
        "TWILIO_API_SECRET": DEVELOPMENT.api_secret,
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

    def __init__(self, server: SandboxServer) -> None:
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

    def end(self, task_sid: str, agent: str = AGENT) -> Dict[str, Any]:
        return self.request("POST", f"/agent/api/tasks/{task_sid}/end", {"agent": agent})

    def fault(self, **spec: Any) -> Dict[str, Any]:
        return self.request("POST", "/sandbox/faults", spec)

    def clear_faults(self) -> None:
        self.server.clear_faults()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentDesk]:
    """One in-memory Flex sandbox for the session (it serves both Flex modes)."""
    server = start_sandbox(tmp_path_factory.mktemp("sandbox-logs"), extra_env={"FLEX_SANDBOX_RETRY_DELAY": "0.2"})
    try:
        yield AgentDesk(server)
    finally:
        server.process.stop()


class Stack:
    """Action server + Rasa server for one Flex mode, with the files they were started from."""

    def __init__(self, mode: str, sandbox: AgentDesk, model: Path, workdir: Path, shell_wait: float = 4) -> None:
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
            "rasa_flex_handoff.RestInput: {}\n"
            "tests.handoff.renamed_channel.SupportChatInput: {}\n"
            "rest: {}\n"
        )
        self.endpoints.write_text(
            f"action_endpoint:\n  url: http://127.0.0.1:{self.actions_port}/webhook\n"
            f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {self.tracker_db}\n"
            "lock_store:\n  type: in_memory\n"
        )
        self.actions: Optional[ServerProcess] = None
        self.rasa: Optional[ServerProcess] = None

    def start(self) -> "Stack":
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
        self.rasa = ServerProcess(
            f"rasa-{self.mode}",
            [
                str(VENV_BIN / "rasa"), "run", "--enable-api", "-m", str(self.model),
                "--credentials", str(self.credentials), "--endpoints", str(self.endpoints),
                "--port", str(self.rasa_port), "--interface", "127.0.0.1",
            ],
            f"{self.url}/status",
            self.workdir,
            env=self.env,
        ).start()

    def start_replica(self, port: int) -> ServerProcess:
        """A second Rasa server on the same tracker store, with this stack's environment."""
        return ServerProcess(
            f"rasa-{self.mode}-replica",
            [
                str(VENV_BIN / "rasa"), "run", "--enable-api", "-m", str(self.model),
                "--credentials", str(self.credentials), "--endpoints", str(self.endpoints),
                "--port", str(port), "--interface", "127.0.0.1",
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
        self, sender: str, message: str, channel: str = "handoff_rest", timeout: float = 30, metadata: Optional[Dict[str, Any]] = None
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


def stream(
    stack: Stack, sender: str, message: str, input_channel: str = "cmdline", metadata: Optional[Dict[str, Any]] = None
) -> List[Dict[str, Any]]:
    """What `rasa shell` does per line: POST to Rasa's rest webhook with stream=true, as channel `cmdline`."""
    req = urllib.request.Request(
        f"{stack.url}/webhooks/rest/webhook?stream=true",
        data=json.dumps({"sender": sender, "message": message, "input_channel": input_channel, "metadata": metadata}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:  # rasa shell's default stream timeout is 10 s
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


@pytest.fixture(scope="session", params=MODES)
def stack(request: pytest.FixtureRequest, sandbox: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running action server + Rasa server per Flex mode, shared by the tests of that mode."""
    s = Stack(request.param, sandbox, handoff_model, tmp_path_factory.mktemp(f"stack-{request.param}")).start()
    yield s
    s.stop()


@pytest.fixture
def faults(sandbox: AgentDesk) -> Iterator[AgentDesk]:
    """The sandbox, with every injected fault cleared afterwards."""
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


class Visitor:
    """A website visitor on socket.io (websocket transport, session persistence), as the widget connects."""

    def __init__(self, url: str, session_id: Optional[str] = None) -> None:
        self.url = url
        self.messages: List[Dict[str, Any]] = []  # as `flat` reads them
        self.off_contract: List[Any] = []  # payloads a plain Rasa widget would drop
        self.agent_typing: List[Dict[str, Any]] = []
        self.session_id: Optional[str] = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sio = socketio.AsyncClient(reconnection=False)

        @self.sio.on("bot_uttered")
        async def on_bot(data: Any) -> None:
            if off_contract(data):
                self.off_contract.append(data)
            self.messages.append(flat(data) if isinstance(data, dict) else {"raw": data})

        @self.sio.on("agent_typing")
        async def on_agent_typing(data: Any) -> None:
            self.agent_typing.append(data)

        @self.sio.on("session_confirm")
        async def on_confirm(data: Any) -> None:
            self.session_id = data if isinstance(data, str) else (data or {}).get("session_id")

        self._run(self.sio.connect(url, socketio_path="/socket.io", transports=["websocket"]))
        self._run(self.sio.emit("session_request", {"session_id": session_id}))
        wait_for(lambda: self.session_id, 10, "session_confirm")

    def _run(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def transport(self) -> str:
        return self.sio.transport()

    def say(self, text: str, metadata: Optional[Dict[str, Any]] = None) -> None:
        data: Dict[str, Any] = {"message": text, "session_id": self.session_id}
        if metadata is not None:
            data["metadata"] = metadata
        self._run(self.sio.emit("user_uttered", data))

    def texts(self) -> List[str]:
        return [m.get("text", "") for m in list(self.messages)]

    def wait_for(self, predicate: Callable[[Dict[str, Any]], bool], what: str, timeout: float = 20, start: int = 0) -> Dict[str, Any]:
        """The first message (from position `start`) matching `predicate`."""
        return wait_for(lambda: next((m for m in list(self.messages)[start:] if predicate(m)), None), timeout, what)

    def wait_for_text(self, fragment: str, timeout: float = 20, start: int = 0) -> Dict[str, Any]:
        return self.wait_for(lambda m: fragment.lower() in (m.get("text") or "").lower(), f"message containing {fragment!r}", timeout, start)

    def close(self) -> None:
        if not self.thread.is_alive():
            return
        try:
            self._run(self.sio.disconnect(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def visitors(stack: Stack) -> Iterator[Callable[..., Visitor]]:
    """Make connected visitors for the stack's Rasa server; all disconnected afterwards."""
    made: List[Visitor] = []

    def make(session_id: Optional[str] = None) -> Visitor:
        v = Visitor(stack.url, session_id)
        made.append(v)
        return v

    yield make
    for v in made:
        v.close()
    # Every payload any visitor got had a shape Rasa's own widgets render.
    assert [p for v in made for p in v.off_contract] == []


def handed_off(stack: Stack, visitor: Visitor, timeout: float = 30, metadata: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Ask for an agent and wait until the chat exists; returns the Flex task."""
    start = len(visitor.messages)
    visitor.say("/talk_to_agent", metadata)
    visitor.wait_for(lambda m: m.get("event") == "connecting", "connecting notice", timeout, start)
    channel_sid = wait_for(
        lambda: stack.tracker(visitor.session_id)["slots"].get("handoff_channel_sid"), 10, "handoff slots"
    )
    return wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
