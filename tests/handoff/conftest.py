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

from northwind.processes import wait_for
from northwind.servers import AgentDesk, Stack, flat, off_contract, start_sandbox

MODES = ["conversations", "legacy"]
# Our REST channel under another name, as a user might subclass it (tests/handoff/renamed_channel.py).
RENAMED_CHANNEL = "tests.handoff.renamed_channel.SupportChatInput"
# The bot's own summariser hook, loaded by a real action server (tests/handoff/summariser.py, test_summary.py).
SUMMARISER = "tests.handoff.summariser:signed"


@pytest.fixture(scope="session")
def handoff_model(request: pytest.FixtureRequest) -> Path:
    """The project's model (tests/conftest.py trains it when data changed), or HANDOFF_TEST_MODEL."""
    override = os.environ.get("HANDOFF_TEST_MODEL")
    if override:
        return Path(override)
    return request.getfixturevalue("trained_model")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentDesk]:
    """One in-memory Flex sandbox for the session (it serves both Flex modes)."""
    server = start_sandbox(tmp_path_factory.mktemp("sandbox-logs"), extra_env={"FLEX_SANDBOX_RETRY_DELAY": "0.2"})
    try:
        yield AgentDesk(server)
    finally:
        server.process.stop()


def stream(
    stack: Stack, sender: str, message: str, input_channel: str = "cmdline", metadata: Optional[Dict[str, Any]] = None
) -> List[Dict[str, Any]]:
    """What `rasa shell` does per line: POST to Rasa's rest webhook with stream=true, as channel `cmdline`."""
    req = urllib.request.Request(
        f"{stack.url}/webhooks/rest/webhook?stream=true",
        data=json.dumps({"sender": sender, "message": message, "input_channel": input_channel, "metadata": metadata}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:  # rasa shell's default stream timeout is 10 s
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


@pytest.fixture(scope="session", params=MODES)
def stack(
    request: pytest.FixtureRequest, sandbox: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A running action server + Rasa server per Flex mode, shared by the tests of that mode."""
    s = Stack(
        request.param,
        sandbox,
        handoff_model,
        tmp_path_factory.mktemp(f"stack-{request.param}"),
        extra_channels=[RENAMED_CHANNEL],
    )
    s.env["HANDOFF_SUMMARISER"] = SUMMARISER
    s.start()
    yield s
    s.stop()


@pytest.fixture
def faults(sandbox: AgentDesk) -> Iterator[AgentDesk]:
    """The sandbox, with every injected fault cleared afterwards."""
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


class Visitor:
    """A website visitor on socket.io (websocket transport, session persistence), as the widget connects.

    With `reconnection`, a dropped socket reconnects on its own and asks for the same session again
    (`session_request` with its id), as the widget's RasaConnection does; `confirms` counts the
    `session_confirm`s.
    """

    def __init__(self, url: str, session_id: Optional[str] = None, namespace: str = "/", reconnection: bool = False) -> None:
        self.url = url
        self.namespace = namespace
        self.messages: List[Dict[str, Any]] = []  # as `flat` reads them
        self.off_contract: List[Any] = []  # payloads a plain Rasa widget would drop
        self.agent_typing: List[Dict[str, Any]] = []
        self.session_id: Optional[str] = None
        self.confirms = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sio = socketio.AsyncClient(reconnection=reconnection, reconnection_delay=0.5, reconnection_delay_max=2)

        @self.sio.on("connect", namespace=namespace)
        async def on_connect() -> None:
            if self.session_id is not None:  # a reconnect (the first session_request is sent below)
                await self.sio.emit("session_request", {"session_id": self.session_id}, namespace=namespace)

        @self.sio.on("bot_uttered", namespace=namespace)
        async def on_bot(data: Any) -> None:
            if off_contract(data):
                self.off_contract.append(data)
            self.messages.append(flat(data) if isinstance(data, dict) else {"raw": data})

        @self.sio.on("agent_typing", namespace=namespace)
        async def on_agent_typing(data: Any) -> None:
            self.agent_typing.append(data)

        @self.sio.on("session_confirm", namespace=namespace)
        async def on_confirm(data: Any) -> None:
            self.session_id = data if isinstance(data, str) else (data or {}).get("session_id")
            self.confirms += 1

        self._run(self.sio.connect(url, socketio_path="/socket.io", transports=["websocket"], namespaces=[namespace]))
        self._run(self.sio.emit("session_request", {"session_id": session_id}, namespace=namespace))
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
        self._run(self.sio.emit("user_uttered", data, namespace=self.namespace))

    def texts(self) -> List[str]:
        return [m.get("text", "") for m in list(self.messages)]

    def wait_for(
        self, predicate: Callable[[Dict[str, Any]], bool], what: str, timeout: float = 20, start: int = 0
    ) -> Dict[str, Any]:
        """The first message (from position `start`) matching `predicate`."""
        return wait_for(lambda: next((m for m in list(self.messages)[start:] if predicate(m)), None), timeout, what)

    def wait_for_text(self, fragment: str, timeout: float = 20, start: int = 0) -> Dict[str, Any]:
        return self.wait_for(
            lambda m: fragment.lower() in (m.get("text") or "").lower(), f"message containing {fragment!r}", timeout, start
        )

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
    channel_sid = wait_for(lambda: stack.tracker(visitor.session_id)["slots"].get("handoff_channel_sid"), 10, "handoff slots")
    return wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
