"""Client code every benchmark group shares: socket.io visitors, the sandbox's live feed, agents, schedules, percentiles.

One implementation measures the floor, the bot, the handoff and the relay, so the groups differ
only in what the server does. Every timestamp is `time.perf_counter()`, which on Linux is
CLOCK_MONOTONIC: one clock for the whole machine, so a send recorded in a client process and an
arrival recorded in another compare directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import defaultdict
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import aiohttp
import numpy as np
import socketio

WAIT = 60.0  # seconds one message may take before it counts as lost (1,000 chats on 2 cores queue a while)
AGENT_PREFIX = "agent-"


def now() -> float:
    return time.perf_counter()


def percentiles(seconds: Sequence[float]) -> Dict[str, Optional[float]]:
    """p50/p95/p99 (and max) in milliseconds; None when there are no samples (a group that produced none says so)."""
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    ms = np.asarray(seconds, dtype=float) * 1000.0
    p50, p95, p99 = (float(round(x, 2)) for x in np.percentile(ms, [50, 95, 99]))
    return {"p50": p50, "p95": p95, "p99": p99, "max": float(round(ms.max(), 2)), "n": int(ms.size)}


def as_shown(payload: Any) -> Dict[str, Any]:
    """A `bot_uttered` payload with `metadata.handoff` read out: sender, event, an agent's words as `body`."""
    if not isinstance(payload, dict):
        return {}
    return {**payload, **((payload.get("metadata") or {}).get("handoff") or {})}


class Visitor:
    """A socket.io client as the widget connects (websocket only), recording every reply with its arrival time.

    The floor's echo server and Rasa are measured through this same class, so client-side costs
    (python-socketio, JSON, the event loop) are in the floor too and cancel out of the ratios.
    """

    def __init__(
        self,
        url: str,
        reply_event: str = "bot_uttered",
        send_event: str = "user_uttered",
        activity: Optional[asyncio.Event] = None,
    ) -> None:
        """`activity`, shared by many visitors, is set on every reply any of them gets (see `until_stalled`)."""
        self.url = url
        self.activity = activity
        self.agent_count = 0
        self.disconnects = 0  # the server dropped this socket (we never reconnect: what it missed is lost live)
        self.send_event = send_event
        self.sio = socketio.AsyncClient(reconnection=False)
        self.session_id: Optional[str] = None
        self.received: List[Tuple[float, Dict[str, Any]]] = []
        self.changed = asyncio.Condition()
        self._confirmed = asyncio.Event()
        self.channel_sid = ""
        self.task_sid = ""

        @self.sio.on(reply_event)
        async def on_reply(data: Any) -> None:
            arrived = now()
            shown = as_shown(data)
            if shown.get("sender") == "agent":
                self.agent_count += 1
            if self.activity is not None:
                self.activity.set()
            async with self.changed:
                self.received.append((arrived, shown))
                self.changed.notify_all()

        @self.sio.on("disconnect")
        async def on_disconnect() -> None:
            self.disconnects += 1

        @self.sio.on("session_confirm")
        async def on_confirm(data: Any) -> None:
            self.session_id = data if isinstance(data, str) else (data or {}).get("session_id")
            self._confirmed.set()

    async def connect(self, session: bool = True) -> None:
        """Connect; with `session`, ask Rasa for a session as the widget does (session persistence)."""
        # python-socketio gives the namespace 1 s by default: a busy server is not a failed connection.
        await self.sio.connect(self.url, socketio_path="/socket.io", transports=["websocket"], wait_timeout=WAIT)
        if session:
            await self.sio.emit("session_request", {"session_id": None})
            await asyncio.wait_for(self._confirmed.wait(), WAIT)

    async def say(self, text: str) -> float:
        """Send a message; returns when it was handed to the socket."""
        sent = now()
        await self.sio.emit(self.send_event, {"message": text, "session_id": self.session_id})
        return sent

    async def wait_for(
        self, predicate: Callable[[Dict[str, Any]], bool], timeout: float = WAIT, start: int = 0
    ) -> Optional[float]:
        """Arrival time of the first reply from position `start` matching `predicate` (None on timeout)."""

        def found() -> Optional[float]:
            return next((t for t, m in self.received[start:] if predicate(m)), None)

        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: found() is not None), timeout)
            except TimeoutError:
                return None
            return found()

    async def wait_count(self, count: int, predicate: Callable[[Dict[str, Any]], bool], timeout: float) -> bool:
        """Until `count` replies match `predicate` (False on timeout)."""

        def enough() -> bool:
            return sum(1 for _, m in self.received if predicate(m)) >= count

        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(enough), timeout)
            except TimeoutError:
                return False
            return True

    def agent_lines(self) -> List[Tuple[float, str]]:
        """The agent's words this visitor was shown, with arrival times, in arrival order."""
        return [(t, m["body"]) for t, m in self.received if m.get("sender") == "agent" and "body" in m]

    async def close(self) -> None:
        try:
            await self.sio.disconnect()
        except Exception:  # noqa: BLE001 - a dead server at the end is reported elsewhere, not here
            pass


class SseFeed:
    """The sandbox's live feed (server-sent events, what the agent desktop listens to), one callback per event.

    `/sandbox/events?type=...` is the same feed as the desktop's `/agent/events`, filtered in the
    sandbox, so a listener that needs only messages does not parse every typing event.
    """

    def __init__(self, url: str, on_event: Callable[[Dict[str, Any], float], None]) -> None:
        self.url = url
        self.on_event = on_event
        self.ready = asyncio.Event()
        self.task: Optional[asyncio.Task[None]] = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.task = asyncio.create_task(self._run(http))
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait({ready, self.task}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            raise RuntimeError(f"live feed {self.url} did not start: {self.task.exception() if self.task.done() else 'timeout'}")

    async def _run(self, http: aiohttp.ClientSession) -> None:
        async with http.get(self.url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            r.raise_for_status()
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("event: hello"):
                    self.ready.set()
                elif line.startswith("data: "):
                    self.on_event(json.loads(line[len("data: ") :]), now())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class TaskWatch:
    """Flex tasks as they appear (the live feed's `task` events): which task belongs to which chat, and when it appeared."""

    def __init__(self, desk_url: str) -> None:
        self.task_of: Dict[str, str] = {}
        self.appeared: Dict[str, float] = {}
        self.changed = asyncio.Condition()
        self.feed = SseFeed(f"{desk_url}/sandbox/events?type=task", self._on_event)

    def _on_event(self, event: Dict[str, Any], at: float) -> None:
        channel = event.get("channel_sid")
        if channel and "task_sid" in event and channel not in self.task_of:
            self.task_of[channel] = event["task_sid"]
            self.appeared[channel] = at
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def task_for(self, channel_sid: str, timeout: float = WAIT) -> Optional[str]:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: channel_sid in self.task_of), timeout)
            except TimeoutError:
                return None
        return self.task_of[channel_sid]


class AgentApi:
    """The sandbox's agent JSON API over aiohttp, as the agent desktop calls it."""

    def __init__(self, http: aiohttp.ClientSession, desk_url: str) -> None:
        self.http = http
        self.url = desk_url

    async def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        async with self.http.request(method, f"{self.url}{path}", json=body) as r:
            r.raise_for_status()
            return await r.json()

    async def accept(self, task_sid: str, agent: str) -> None:
        await self.call("POST", f"/agent/api/tasks/{task_sid}/accept", {"agent": agent})

    async def send(self, task_sid: str, agent: str, body: str) -> None:
        await self.call("POST", f"/agent/api/tasks/{task_sid}/messages", {"agent": agent, "body": body})

    async def transcript(self, task_sid: str) -> List[Dict[str, Any]]:
        return (await self.call("GET", f"/agent/api/tasks/{task_sid}/messages"))["messages"]


async def hand_off(visitor: Visitor, tasks: TaskWatch, agents: AgentApi, agent: str) -> Dict[str, float]:
    """Ask for an agent, wait for the chat in Flex and the `connecting` notice, have `agent` accept; the times.

    `setup` is `/talk_to_agent` until both the Flex task exists and the visitor was told
    (whichever comes last); `joined` until the visitor saw the agent join.
    """
    start = len(visitor.received)
    sent = await visitor.say("/talk_to_agent")
    told = await visitor.wait_for(lambda m: m.get("event") == "connecting", start=start)
    if told is None:
        raise RuntimeError(f"no handoff for {visitor.session_id}: {[m.get('text') for _, m in visitor.received[start:]]}")
    # The visitor is never shown the chat's SID (it is server-only): the tracker's slot has it. Rasa sends
    # the action's messages before it saves the turn, so the slot may show up a moment after the notice.
    url = f"{visitor.url}/conversations/{visitor.session_id}/tracker?include_events=NONE"
    deadline = now() + WAIT
    visitor.channel_sid = ""
    while not visitor.channel_sid and now() < deadline:
        async with agents.http.get(url) as r:
            r.raise_for_status()
            visitor.channel_sid = (await r.json())["slots"]["handoff_channel_sid"] or ""
        if not visitor.channel_sid:
            await asyncio.sleep(0.02)
    task_sid = await tasks.task_for(visitor.channel_sid)
    if task_sid is None:
        raise RuntimeError(f"no Flex task for chat {visitor.channel_sid}")
    visitor.task_sid = task_sid
    in_flex = tasks.appeared[visitor.channel_sid]
    await agents.accept(task_sid, agent)
    joined = await visitor.wait_for(lambda m: m.get("event") == "agent_joined", start=start)
    if joined is None:
        raise RuntimeError(f"visitor {visitor.session_id}: no agent_joined notice")
    return {"setup": max(told, in_flex) - sent, "told": told - sent, "in_flex": in_flex - sent, "joined": joined - sent}


async def bounded(coros: Iterable[Awaitable[Any]], limit: int) -> List[Any]:
    """Run coroutines with at most `limit` in flight; results in order (exceptions returned, not raised)."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


class OpenLoop:
    """A fixed send schedule per client, kept whatever the replies do (open loop), with how late each send started.

    Client `i` sends message `k` at `t0 + phase_i + k * interval` (`phase_i` random in one
    interval, so clients do not all fire together). Each send runs as its own task, so a slow
    reply never delays the next send: latency is not hidden by pacing. `lag` (actual start minus
    scheduled start) shows when the client itself could not keep the schedule.
    """

    def __init__(self, interval: float, messages: int, seed: int = 13) -> None:
        self.interval = interval
        self.messages = messages
        self.rng = random.Random(seed)
        self.lag: List[float] = []
        self.errors: List[str] = []

    async def run(self, t0: float, senders: Sequence[Callable[[int], Awaitable[None]]], offset: float = 0.0) -> None:
        """Run every sender's schedule from `t0` (a perf_counter time) until all sends finished."""
        phases = [self.rng.uniform(0, self.interval) for _ in senders]
        pending: List[asyncio.Task[None]] = []

        async def one(send: Callable[[int], Awaitable[None]], phase: float) -> None:
            for k in range(self.messages):
                at = t0 + phase + offset + k * self.interval
                delay = at - now()
                if delay > 0:
                    await asyncio.sleep(delay)  # the schedule itself, not a wait for a result
                self.lag.append(max(0.0, now() - at))
                pending.append(asyncio.create_task(self._guarded(send, k)))

        await asyncio.gather(*(one(s, p) for s, p in zip(senders, phases, strict=True)))
        await asyncio.gather(*pending)

    async def _guarded(self, send: Callable[[int], Awaitable[None]], k: int) -> None:
        try:
            await send(k)
        except Exception as e:  # noqa: BLE001 - a failed send is counted and reported, the schedule goes on
            self.errors.append(f"{type(e).__name__}: {e}")


async def until_stalled(done: Callable[[], bool], progress: Callable[[], int], activity: asyncio.Event, stall: float) -> bool:
    """Wait until `done()`, for as long as `progress()` keeps growing; False once nothing moved for `stall` seconds.

    An overloaded server is slow, not lossy: a message counts as lost only when deliveries stopped
    altogether, not when a fixed deadline passed while a queue was still draining.
    """
    last = -1
    while not done():
        if progress() == last:
            return False
        last = progress()
        activity.clear()
        if done():
            break
        try:
            await asyncio.wait_for(activity.wait(), stall)
        except TimeoutError:
            pass
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (/proc/<pid>/stat, fields 14 and 15)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def descendants(pid: int) -> List[int]:
    found: List[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of one process (VmRSS in /proc/<pid>/status), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def own_cpu() -> float:
    """This process's user + system CPU seconds (all threads)."""
    t = os.times()
    return t.user + t.system


class Arrivals:
    """First arrival time per key, with a waiter for "at least n keys arrived" (feeds and webhooks count here)."""

    def __init__(self) -> None:
        self.at: Dict[Any, float] = {}
        self.count: Dict[Any, int] = defaultdict(int)
        self._waiters: List[Tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def add(self, key: Any, at: float) -> None:
        self.count[key] += 1
        self.at.setdefault(key, at)
        for check, fut in list(self._waiters):
            if not fut.done() and check():
                fut.set_result(None)

    async def until(self, check: Callable[[], bool], timeout: float) -> bool:
        if check():
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (check, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)
