"""Group 1, the floor: what the cheapest possible versions of our two hops cost on this machine.

- `socketio_echo`: a bare socket.io round trip on our patched Sanic (Sanic 21.12 +
  python-socketio `AsyncServer(async_mode="sanic")` + `sanic_compat.apply()`, as the Rasa
  server runs them) in its own process, echoing an event back; nothing else in the process.
- `form_post`: one Twilio-style form POST to the sandbox (a Conversations message create,
  basic auth with the API key as Twilio's SDKs send it), all into one chat; the sandbox's
  indexes must stay contiguous (the sandbox's own cost, which bench/sandbox_messages.py measured before).

Both go through the same client code (bench/clients.py) and open-loop schedule as the relay,
so every other figure can be read as a multiple of the floor.
Serve the echo app alone: `python -m bench.floor --serve --port 5099`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Dict, List

import aiohttp

from bench.clients import WAIT, OpenLoop, Visitor, now, percentiles
from northwind.processes import ServerProcess, free_port
from northwind.servers import CREDENTIALS


def serve(port: int) -> None:
    """The echo app: nothing but Sanic, python-socketio and our websocket fix."""
    from sanic import Sanic, response
    from socketio import AsyncServer

    from rasa_flex_handoff import sanic_compat

    sanic_compat.apply()
    app = Sanic("bench_floor")
    sio = AsyncServer(async_mode="sanic", cors_allowed_origins=[])
    sanic_compat.answer_closed_websockets(sio.eio)  # as our channel does: a closing socket logs no error
    sio.attach(app, socketio_path="/socket.io")

    @app.get("/health")
    async def health(_: Any) -> Any:
        return response.json({"status": "ok"})

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echoed", {"text": (data or {}).get("message")}, room=sid)

    app.run(host="127.0.0.1", port=port, access_log=False, motd=False)


def start_server(log_dir: Path) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "bench-floor",
        [sys.executable, "-m", "bench.floor", "--serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        log_dir,
        startup_timeout=60,
    ).start()


def url_of(server: ServerProcess) -> str:
    assert server.health_url is not None
    return server.health_url.removesuffix("/health")


async def socketio_echo(url: str, clients: int, messages: int, interval: float) -> Dict[str, Any]:
    """`clients` sockets, each echoing `messages` texts on an open-loop schedule; latency until the echo arrived."""
    visitors = [Visitor(url, reply_event="echoed", send_event="echo") for _ in range(clients)]
    await asyncio.gather(*(v.connect(session=False) for v in visitors))
    sent: Dict[str, float] = {}

    def sender(i: int) -> Any:
        async def send(k: int) -> None:
            text = f"c{i} m{k}"
            sent[text] = await visitors[i].say(text)

        return send

    loop = OpenLoop(interval, messages)
    started = now()
    await loop.run(now() + 0.1, [sender(i) for i in range(clients)])
    await asyncio.gather(*(v.wait_count(messages, lambda m: True, WAIT) for v in visitors))
    arrived = {m.get("text"): t for v in visitors for t, m in v.received}
    latencies = [arrived[text] - t for text, t in sent.items() if text in arrived]
    wall = max(arrived.values(), default=started) - started
    await asyncio.gather(*(v.close() for v in visitors))
    return row("socketio_echo", clients, latencies, len(sent) - len(latencies), wall, loop)


async def form_post(desk_url: str, clients: int, messages: int, interval: float) -> Dict[str, Any]:
    """`clients` concurrent Twilio-style message creates into one Conversations chat; latency until the 201 came back."""
    auth = aiohttp.BasicAuth(CREDENTIALS["TWILIO_API_KEY"], CREDENTIALS["TWILIO_API_SECRET"])
    async with aiohttp.ClientSession(auth=auth) as http:
        async with http.post(f"{desk_url}/conversations/v1/Conversations", data={"FriendlyName": "bench floor"}) as r:
            r.raise_for_status()
            conversation = (await r.json())["sid"]
        url = f"{desk_url}/conversations/v1/Conversations/{conversation}/Messages"
        latencies: List[float] = []
        lost = 0

        def sender(i: int) -> Any:
            async def send(k: int) -> None:
                nonlocal lost
                started = now()
                async with http.post(url, data={"Author": f"client-{i}", "Body": f"c{i} m{k}"}) as r:
                    if r.status != 201:
                        lost += 1
                        return
                    await r.read()
                latencies.append(now() - started)

            return send

        loop = OpenLoop(interval, messages)
        started = now()
        await loop.run(now() + 0.1, [sender(i) for i in range(clients)])
        wall = now() - started
        async with http.get(url, params={"PageSize": "1000"}) as r:
            stored = (await r.json())["messages"]
    indexes = sorted(m["index"] for m in stored)
    if indexes != list(range(len(stored))) or len(stored) != clients * messages - lost:
        loop.errors.append(f"sandbox stored {len(stored)} messages with indexes {indexes[:5]}..., expected contiguous")
    return row("form_post", clients, latencies, lost, wall, loop)


def row(name: str, clients: int, latencies: List[float], lost: int, wall: float, loop: OpenLoop) -> Dict[str, Any]:
    return {
        "name": name,
        "concurrency": clients,
        "latency_ms": percentiles(latencies),
        "throughput_per_s": round(len(latencies) / wall, 1) if wall > 0 else None,
        "lost": lost,
        "client_lag_ms": percentiles(loop.lag),
        "errors": loop.errors[:5],
    }


async def measure(echo_url: str, desk_url: str, levels: List[int], messages: int, interval: float) -> List[Dict[str, Any]]:
    """Both floors at each concurrency, echo first (one at a time: each level alone on the machine)."""
    rows = []
    for clients in levels:
        rows.append(await socketio_echo(echo_url, clients, messages, interval))
    for clients in levels:
        rows.append(await form_post(desk_url, clients, messages, interval))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The floor's echo server (bench.run starts it).")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
