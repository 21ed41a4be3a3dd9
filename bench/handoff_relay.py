"""Benchmark: relay latency of N concurrent handed-off socket.io visitors, both ways, through real processes.

Starts the Flex sandbox, the action server and one Rasa server (the handoff tests' `Stack`),
connects N visitors over socket.io (websocket, session persistence), hands them all off at
once, has an agent accept each chat, then measures, with every visitor active concurrently:

- visitor -> agent: `user_uttered` emitted until the message is in the Flex chat, as the agent
  desktop learns it (the sandbox's live feed `/agent/events`, which the desktop listens to);
- agent -> visitor: the agent's POST to the sandbox agent API until the visitor's `bot_uttered`.

Each visitor sends its messages one after another (next one when the previous arrived); so do
the agents. At the end it checks that nothing was lost, duplicated or reordered: the Flex
transcripts, what each visitor received, and the Rasa trackers. Prints p50/p95/max.
Run: `.venv/bin/python -m bench.handoff_relay [--visitors 20] [--messages 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
import socketio

from northwind.processes import ROOT
from northwind.servers import AgentDesk, Stack, start_sandbox
from rasa_flex_handoff.handoff import OPENING_MESSAGE

WAIT = 30.0  # seconds a single message may take before it counts as lost


class LiveFeed:
    """The sandbox's server-sent events: when each Flex chat got a new message (arrival times)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: Dict[str, List[float]] = defaultdict(list)
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()
        self.task: Optional[asyncio.Task] = None

    async def run(self, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{self.url}/agent/events", timeout=aiohttp.ClientTimeout(total=None)) as r:
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("event: hello"):
                    self.ready.set()
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[len("data: ") :])
                if event.get("type") == "message":
                    now = time.perf_counter()
                    async with self.changed:
                        self.arrivals[event["channel_sid"]].append(now)
                        self.changed.notify_all()

    async def wait_for_count(self, channel_sid: str, count: int, timeout: float) -> Optional[float]:
        """When the chat's `count`-th message arrived (None on timeout)."""
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: len(self.arrivals[channel_sid]) >= count), timeout)
            except TimeoutError:
                return None
            return self.arrivals[channel_sid][count - 1]


def as_shown(payload: Any) -> Dict[str, Any]:
    """A `bot_uttered` payload with its `metadata.handoff` read out: sender, event, the agent's words as `body`."""
    if not isinstance(payload, dict):
        return {}
    return {**payload, **((payload.get("metadata") or {}).get("handoff") or {})}


class BenchVisitor:
    """One website visitor: socket.io client plus what it received, with arrival times."""

    def __init__(self, n: int, url: str) -> None:
        self.n = n
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.session_id: Optional[str] = None
        self.received: List[tuple] = []  # (perf_counter, payload)
        self.changed = asyncio.Condition()
        self.confirmed = asyncio.Event()
        self.channel_sid = ""
        self.task_sid = ""

        @self.sio.on("bot_uttered")
        async def on_bot(data: Any) -> None:
            now = time.perf_counter()
            async with self.changed:
                self.received.append((now, as_shown(data)))
                self.changed.notify_all()

        @self.sio.on("session_confirm")
        async def on_confirm(data: Any) -> None:
            self.session_id = data if isinstance(data, str) else (data or {}).get("session_id")
            self.confirmed.set()

    async def connect(self) -> None:
        await self.sio.connect(self.url, socketio_path="/socket.io", transports=["websocket"])
        await self.sio.emit("session_request", {"session_id": None})
        await asyncio.wait_for(self.confirmed.wait(), WAIT)

    async def say(self, text: str) -> None:
        await self.sio.emit("user_uttered", {"message": text, "session_id": self.session_id})

    async def wait_for(self, predicate, timeout: float = WAIT) -> Optional[float]:
        """Arrival time of the first received payload matching `predicate` (None on timeout)."""

        def found() -> Optional[float]:
            return next((t for t, m in self.received if predicate(m)), None)

        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: found() is not None), timeout)
            except TimeoutError:
                return None
            return found()


def percentiles(values: List[float]) -> str:
    if not values:
        return "no samples"
    ms = sorted(v * 1000 for v in values)
    p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


async def bench(stack: Stack, visitors_n: int, messages: int) -> bool:
    desk_url = stack.sandbox.url
    problems: List[str] = []
    async with aiohttp.ClientSession() as http:
        feed = LiveFeed(desk_url)
        feed.task = asyncio.create_task(feed.run(http))
        await asyncio.wait_for(feed.ready.wait(), WAIT)

        async def agent_api(method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
            async with http.request(method, f"{desk_url}{path}", json=body) as r:
                r.raise_for_status()
                return await r.json()

        async def tracker(session_id: str) -> Dict[str, Any]:
            async with http.get(f"{stack.url}/conversations/{session_id}/tracker") as r:
                r.raise_for_status()
                return await r.json()

        visitors = [BenchVisitor(n, stack.url) for n in range(visitors_n)]
        await asyncio.gather(*(v.connect() for v in visitors))

        # All hand off at once; an agent accepts each chat.
        handoff_times: List[float] = []

        async def hand_off(v: BenchVisitor) -> None:
            started = time.perf_counter()
            await v.say("/talk_to_agent")
            arrived = await v.wait_for(lambda m: m.get("event") == "connecting")
            if arrived is None:
                raise RuntimeError(f"visitor {v.n}: no handoff")
            handoff_times.append(arrived - started)
            v.channel_sid = (await tracker(v.session_id))["slots"]["handoff_channel_sid"]
            for _ in range(int(WAIT / 0.1)):
                tasks = (await agent_api("GET", "/agent/api/tasks"))["tasks"]
                task = next((t for t in tasks if t["channel_sid"] == v.channel_sid), None)
                if task:
                    v.task_sid = task["sid"]
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"visitor {v.n}: no Flex task")
            await agent_api("POST", f"/agent/api/tasks/{v.task_sid}/accept", {"agent": f"agent-{v.n}"})
            if await v.wait_for(lambda m: m.get("event") == "agent_joined") is None:
                raise RuntimeError(f"visitor {v.n}: no agent_joined notice")

        await asyncio.gather(*(hand_off(v) for v in visitors))

        # Visitor -> agent, all visitors at once, each message after the previous one arrived.
        to_agent: List[float] = []

        async def visitor_side(v: BenchVisitor) -> None:
            already = len(feed.arrivals[v.channel_sid])
            for k in range(messages):
                started = time.perf_counter()
                await v.say(f"visitor {v.n} line {k}")
                arrived = await feed.wait_for_count(v.channel_sid, already + k + 1, WAIT)
                if arrived is None:
                    problems.append(f"visitor {v.n} line {k} never reached the agent")
                    return
                to_agent.append(arrived - started)

        started = time.perf_counter()
        await asyncio.gather(*(visitor_side(v) for v in visitors))
        to_agent_wall = time.perf_counter() - started

        # Agent -> visitor, all agents at once.
        to_visitor: List[float] = []

        async def agent_side(v: BenchVisitor) -> None:
            for k in range(messages):
                text = f"agent {v.n} line {k}"
                started = time.perf_counter()
                await agent_api("POST", f"/agent/api/tasks/{v.task_sid}/messages", {"agent": f"agent-{v.n}", "body": text})
                arrived = await v.wait_for(lambda m, text=text: m.get("sender") == "agent" and m.get("body") == text)
                if arrived is None:
                    problems.append(f"agent line {text!r} never reached visitor {v.n}")
                    return
                to_visitor.append(arrived - started)

        started = time.perf_counter()
        await asyncio.gather(*(agent_side(v) for v in visitors))
        to_visitor_wall = time.perf_counter() - started

        # Nothing lost, duplicated or reordered, and nobody saw anyone else's messages.
        for v in visitors:
            transcript = (await agent_api("GET", f"/agent/api/tasks/{v.task_sid}/messages"))["messages"]
            customer = [m["body"] for m in transcript if m["role"] == "customer"]
            expected = [OPENING_MESSAGE] + [f"visitor {v.n} line {k}" for k in range(messages)]
            if customer != expected:
                problems.append(f"visitor {v.n}: agent saw {customer}, expected {expected}")
            agent_texts = [m["body"] for _, m in v.received if m.get("sender") == "agent"]
            if agent_texts != [f"agent {v.n} line {k}" for k in range(messages)]:
                problems.append(f"visitor {v.n} received agent turns {agent_texts}")
            events = (await tracker(v.session_id))["events"]
            recorded = [
                e["metadata"]["handoff"].get("body")
                for e in events
                if e.get("event") == "bot" and ((e.get("metadata") or {}).get("handoff") or {}).get("role") == "agent"
            ]
            if recorded != [f"agent {v.n} line {k}" for k in range(messages)]:
                problems.append(f"visitor {v.n}: tracker has agent turns {recorded}")
            relayed = [e["text"] for e in events if e.get("event") == "user" and e.get("text", "").startswith("visitor ")]
            if relayed != [f"visitor {v.n} line {k}" for k in range(messages)]:
                problems.append(f"visitor {v.n}: tracker has visitor turns {relayed}")

        # Hand everyone back to the bot.
        await asyncio.gather(
            *(agent_api("POST", f"/agent/api/tasks/{v.task_sid}/end", {"agent": f"agent-{v.n}"}) for v in visitors)
        )
        resumed = await asyncio.gather(*(v.wait_for(lambda m: m.get("event") == "bot_resumed") for v in visitors))
        if any(t is None for t in resumed):
            problems.append(f"{sum(t is None for t in resumed)} visitor(s) never got the bot back")
        await asyncio.gather(*(v.sio.disconnect() for v in visitors))
        feed.task.cancel()

    total = visitors_n * messages
    print(
        f"{visitors_n} concurrent socket.io visitors handed off, {messages} messages each way per visitor "
        f"({total} each way), Flex mode {stack.mode}, one Rasa server"
    )
    print(f"handoff (/talk_to_agent -> token)  {percentiles(handoff_times)}")
    print(f"visitor -> agent                   {percentiles(to_agent)}   {len(to_agent) / to_agent_wall:.0f} msg/s")
    print(f"agent -> visitor                   {percentiles(to_visitor)}   {len(to_visitor) / to_visitor_wall:.0f} msg/s")
    print(f"lost, duplicated or reordered: {'none' if not problems else len(problems)}")
    for problem in problems[:20]:
        print(f"  - {problem}")
    return not problems


def stable_model(model: Path, into: Path) -> Path:
    """A private copy of the model, checked whole (a `rasa train` elsewhere rewrites it in place)."""
    copy = into / model.name
    for _ in range(60):
        shutil.copyfile(model, copy)
        try:
            with tarfile.open(copy) as archive:
                archive.getmembers()
            return copy
        except (tarfile.TarError, EOFError, OSError):
            time.sleep(1)
    raise SystemExit(f"{model} stays incomplete; is a training run writing it?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5, help="messages each way per visitor")
    parser.add_argument("--mode", choices=["conversations", "legacy"], default="conversations")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "northwind.tar.gz")
    args = parser.parse_args()
    if not args.model.is_file():
        print(f"no model at {args.model}: run `make train` first", file=sys.stderr)
        return 2
    log_dir = ROOT / "var" / "log" / "bench-handoff-relay"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = stable_model(args.model, Path(tmp))
        sandbox = start_sandbox(log_dir)
        stack = Stack(args.mode, AgentDesk(sandbox), model, log_dir)
        # Relay timings, not failure handling: Twilio timeouts as in production, not the tests' 2 s.
        stack.env.update({"TWILIO_TIMEOUT": "10", "TWILIO_RETRIES": "2"})
        try:
            print("starting sandbox, action server and Rasa server...", flush=True)
            stack.start()
            ok = asyncio.run(bench(stack, args.visitors, args.messages))
        finally:
            stack.stop()
            sandbox.process.stop()
    print(f"logs: {log_dir.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
