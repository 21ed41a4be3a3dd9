"""Socket.io over a real websocket (no polling fallback) to the running Rasa server.

Sanic 21.12 closes every websocket on Python 3.11 unless `rasa_flex_handoff.sanic_compat` is applied; the
connector applies it when Rasa loads it, so this test fails without the fix.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import socketio
import yaml

from northwind.processes import ROOT, ServerProcess, free_port
from northwind.servers import base_env
from rasa_flex_handoff import sanic_compat

pytestmark = pytest.mark.timeout(300)


def socketio_channel() -> tuple:
    """The socket.io channel configured in credentials.yml and its settings."""
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text())
    for name, config in credentials.items():
        if "socketio" in name.lower():
            return name, config or {}
    raise AssertionError("credentials.yml configures no socket.io channel")


@pytest.fixture(scope="module")
def rasa_server(trained_model: Path, output_dir: Path, tmp_path_factory):
    port = free_port()
    tmp = tmp_path_factory.mktemp("ws")
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tmp / 'trackers.db'}\n")
    server = ServerProcess(
        "rasa-websocket",
        [
            "rasa",
            "run",
            "-m",
            str(trained_model),
            "--port",
            str(port),
            "--credentials",
            str(ROOT / "credentials.yml"),
            "--endpoints",
            str(endpoints),
        ],
        f"http://127.0.0.1:{port}/",
        output_dir / "logs",
        # The plugin's settings; no sandbox is needed for bot turns (nothing listens at TWILIO_API_BASE).
        env={**base_env(f"http://127.0.0.1:{free_port()}"), "PUBLIC_URL": f"http://127.0.0.1:{port}"},
    ).start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_this_stack_has_the_sanic_websocket_bug_and_the_fix_applies() -> None:
    assert sanic_compat.needs_patch()
    assert sanic_compat.apply()

    from sanic.server.websockets import impl

    async def wait_on_a_bare_coroutine() -> set:
        done, _ = await impl.asyncio.wait([asyncio.sleep(0, result="ok")])
        return {t.result() for t in done}

    assert asyncio.run(wait_on_a_bare_coroutine()) == {"ok"}


async def test_bot_replies_over_websocket_with_session_persistence(rasa_server: str) -> None:
    name, config = socketio_channel()
    assert config.get("session_persistence") is True
    path = (config.get("socketio_path") or "/socket.io").strip("/")
    replies: asyncio.Queue = asyncio.Queue()
    confirmed = asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)
    client.on(config.get("bot_message_evt", "bot_uttered"), lambda data: replies.put_nowait(data))
    client.on("session_confirm", lambda *_: confirmed.set())

    await client.connect(rasa_server, transports=["websocket"], socketio_path=path)
    try:
        assert client.transport() == "websocket"
        session_id = uuid.uuid4().hex
        await client.emit("session_request", {"session_id": session_id})
        await asyncio.wait_for(confirmed.wait(), 20)
        await client.emit(config.get("user_message_evt", "user_uttered"), {"message": "hi", "session_id": session_id})
        reply = await asyncio.wait_for(replies.get(), 60)
        assert "Northwind assistant" in reply["text"]
        # Still on the websocket: the server did not drop it after the first exchange.
        assert client.connected and client.transport() == "websocket"
    finally:
        await client.disconnect()
