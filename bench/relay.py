"""Group 4, the relay: handed-off chats exchanging messages both ways at a steady rate, and nothing lost.

For each level (1, 10, 100, 1,000 chats) fresh visitors are handed off and accepted by an agent
each, in client processes of their own (`clients` of them: 1,000 python-socketio clients in one
process would measure that process), then every chat runs an open-loop schedule (bench/clients.py
`OpenLoop`): the visitor sends every `interval`, the agent too, half an interval later.

- visitor -> agent: `user_uttered` emitted until the message shows in the sandbox's live feed
  (the SSE stream the agent desktop listens to), matched by the Flex transcript's index;
- agent -> visitor: the agent API POST until the visitor's `bot_uttered`;
- aggregate messages/s (both ways) from the first scheduled send to the last arrival;
- RSS of the Rasa process per handed-off chat (after the level's set-up minus before, / chats);
- integrity: the Flex transcripts (agent API), what each visitor received, and the Rasa trackers
  must each hold exactly this level's messages, once, in order, in the right chat.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import aiohttp

from bench.clients import (
    WAIT,
    AgentApi,
    Arrivals,
    OpenLoop,
    SseFeed,
    TaskWatch,
    Visitor,
    bounded,
    cpu_seconds,
    hand_off,
    now,
    own_cpu,
    percentiles,
    rss_kib,
    until_stalled,
)

INTEGRITY_KEYS = ("lost", "duplicated", "out_of_order", "misrouted")


@dataclass
class Chat:
    """One handed-off chat as the coordinator checks it."""

    chat: int
    session_id: str
    channel_sid: str
    task_sid: str


def agent_name(tag: str, chat: int) -> str:
    return f"agent-{tag}-{chat}"


def visitor_text(tag: str, chat: int, k: int) -> str:
    return f"{tag} c{chat} v{k}"


def agent_text(tag: str, chat: int, k: int) -> str:
    return f"{tag} c{chat} a{k}"


async def exchange(
    visitors: Dict[int, Visitor], agents: AgentApi, tag: str, messages: int, interval: float, t0: float, seed: int
) -> Dict[str, Any]:
    """Every chat's open-loop schedule both ways from `t0`; then wait until each visitor got the agent's lines.

    Used by the relay's client processes and, in-process, by the length group: one implementation.
    """
    visitor_sent: Dict[str, float] = {}
    agent_sent: Dict[str, float] = {}
    to_agent = OpenLoop(interval, messages, seed)
    to_visitor = OpenLoop(interval, messages, seed + 1)

    def visitor_side(c: int) -> Callable[[int], Any]:
        async def send(k: int) -> None:
            text = visitor_text(tag, c, k)
            visitor_sent[text] = await visitors[c].say(text)

        return send

    def agent_side(c: int) -> Callable[[int], Any]:
        async def send(k: int) -> None:
            text = agent_text(tag, c, k)
            agent_sent[text] = now()
            await agents.send(visitors[c].task_sid, agent_name(tag, c), text)

        return send

    chats = sorted(visitors)
    await asyncio.gather(
        to_agent.run(t0, [visitor_side(c) for c in chats]),
        to_visitor.run(t0, [agent_side(c) for c in chats], offset=interval / 2),
    )
    prefix = f"{tag} "
    activity = asyncio.Event()
    for v in visitors.values():
        v.activity = activity

    def delivered() -> int:
        return sum(v.agent_count for v in visitors.values())

    await until_stalled(lambda: delivered() >= messages * len(chats), delivered, activity, WAIT)
    return {
        "visitor_sent": visitor_sent,
        "agent_sent": agent_sent,
        "received": {c: [(t, b) for t, b in visitors[c].agent_lines() if b.startswith(prefix)] for c in chats},
        "lag": to_agent.lag + to_visitor.lag,
        # The relay's flood protection refused a visitor message (the schedule should never trigger it).
        "too_fast_notices": sum(1 for v in visitors.values() for _, m in v.received if m.get("event") == "too_fast"),
        "disconnects": sum(v.disconnects for v in visitors.values()),
        "errors": to_agent.errors + to_visitor.errors,
    }


# -- client process -------------------------------------------------------------------------------


def client_main(conn: Connection, spec: Dict[str, Any]) -> None:
    """Entry point of one client process (multiprocessing, spawn)."""
    try:
        asyncio.run(_client(conn, spec))
    except Exception as e:  # noqa: BLE001 - reported to the coordinator, which fails the run
        conn.send({"crashed": f"{type(e).__name__}: {e}"})


async def _client(conn: Connection, spec: Dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    tag = spec["tag"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
        tasks = TaskWatch(spec["desk_url"])
        await tasks.feed.start(http)
        agents = AgentApi(http, spec["desk_url"])
        visitors = {c: Visitor(spec["rasa_url"]) for c in spec["chats"]}

        async def set_up(c: int) -> Dict[str, float]:
            await visitors[c].connect()
            return await hand_off(visitors[c], tasks, agents, agent_name(tag, c))

        results = await bounded((set_up(c) for c in spec["chats"]), spec["setup_limit"])
        failed = {c: r for c, r in zip(spec["chats"], results, strict=True) if isinstance(r, BaseException)}
        ready = [
            {"chat": c, "session_id": v.session_id, "channel_sid": v.channel_sid, "task_sid": v.task_sid}
            for c, v in visitors.items()
            if c not in failed
        ]
        conn.send({"ready": ready, "errors": [f"chat {c}: {type(e).__name__}: {e}" for c, e in failed.items()]})
        order = await loop.run_in_executor(None, conn.recv)
        cpu_before = own_cpu()
        live = {c: v for c, v in visitors.items() if c not in failed}
        result = await exchange(live, agents, tag, spec["messages"], spec["interval"], order["t0"], spec["seed"])
        result["cpu_s"] = own_cpu() - cpu_before
        conn.send(result)
        await loop.run_in_executor(None, conn.recv)  # "close": the coordinator has checked everything
        await asyncio.gather(*(v.close() for v in visitors.values()))
        await tasks.feed.stop()
    conn.send({"closed": True, "cpu_s_total": own_cpu()})


# -- coordinator ----------------------------------------------------------------------------------


@dataclass
class Integrity:
    """Counts per kind of failure and where it was seen (flex, visitor, tracker)."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: List[str] = field(default_factory=list)

    def check(self, where: str, chat: int, got: Sequence[str], expected: Sequence[str], pattern: re.Pattern[str]) -> None:
        """Compare one chat's lines (already filtered to this run's tag) with what should be there, in order."""
        own = set(expected)
        misrouted = [g for g in got if g not in own and pattern.match(g)]
        mine = [g for g in got if g in own]
        seen = Counter(mine)
        found = {
            "lost": sum(1 for e in expected if e not in seen),
            "duplicated": sum(n - 1 for n in seen.values()),
            "misrouted": len(misrouted),
        }
        position = {e: i for i, e in enumerate(expected)}
        highest = -1
        out_of_order = 0
        for g in dict.fromkeys(mine):  # first occurrences, in order
            if position[g] < highest:
                out_of_order += 1
            highest = max(highest, position[g])
        found["out_of_order"] = out_of_order
        for kind, n in found.items():
            if n:
                self.counts[kind] += n
                self.counts[f"{kind}_{where}"] += n
                if len(self.examples) < 10:
                    missing = [e for e in expected if e not in seen]
                    self.examples.append(f"{where} chat {chat}: {kind} {n}; missing {missing[:5]}, got {list(got)[:30]}")

    def summary(self) -> Dict[str, int]:
        return {k: int(self.counts.get(k, 0)) for k in INTEGRITY_KEYS}


class MessageFeed:
    """The coordinator's one listener on the sandbox's live feed: when each Flex message (chat, index) appeared."""

    def __init__(self, desk_url: str) -> None:
        self.arrivals = Arrivals()
        self.per_channel: Counter[str] = Counter()
        self.watched: Set[str] = set()
        self.watched_count = 0
        self.feed = SseFeed(f"{desk_url}/sandbox/events?type=message", self._on_event)

    def _on_event(self, event: Dict[str, Any], at: float) -> None:
        if "channel_sid" not in event:
            return  # the stream's hello
        self.per_channel[event["channel_sid"]] += 1
        if event["channel_sid"] in self.watched:
            self.watched_count += 1
        self.arrivals.add((event["channel_sid"], event["index"]), at)

    def watch(self, channels: Iterable[str]) -> None:
        """Count new messages of these chats from now on (`watched_count`)."""
        self.watched = set(channels)
        self.watched_count = 0

    async def until_count(self, count: int, stall: float) -> bool:
        """Until `count` watched messages arrived, as long as any keep arriving (nothing for `stall` s: False)."""
        seen = -1
        while self.watched_count < count:
            if self.watched_count == seen:
                return False
            seen = self.watched_count
            await self.arrivals.until(lambda seen=seen: self.watched_count >= count or self.watched_count > seen, stall)
        return True


async def fetch_tracker(http: aiohttp.ClientSession, rasa_url: str, session_id: str) -> Dict[str, Any]:
    async with http.get(f"{rasa_url}/conversations/{session_id}/tracker") as r:
        r.raise_for_status()
        result: Dict[str, Any] = await r.json()
        return result


async def verify(
    http: aiohttp.ClientSession,
    rasa_url: str,
    agents: AgentApi,
    feed: MessageFeed,
    chats: Sequence[Chat],
    tag: str,
    messages: int,
    sent: Dict[str, Any],
    integrity: Integrity,
) -> Tuple[List[float], List[float], int, float]:
    """Check transcripts, visitors and trackers.

    Returns the latencies both ways, how many Flex messages the live feed never showed (the
    sandbox drops events for a listener more than 1,000 behind), and the last arrival either way.
    """
    pattern = re.compile(rf"^{re.escape(tag)} c\d+ [va]\d+$")
    prefix = f"{tag} "
    to_agent: List[float] = []
    to_visitor: List[float] = []
    feed_missed = 0
    last = 0.0
    transcripts = await bounded((agents.transcript(c.task_sid) for c in chats), 16)
    trackers = await bounded((fetch_tracker(http, rasa_url, c.session_id) for c in chats), 8)
    for chat, transcript, tracker in zip(chats, transcripts, trackers, strict=True):
        c = chat.chat
        expected_v = [visitor_text(tag, c, k) for k in range(messages)]
        expected_a = [agent_text(tag, c, k) for k in range(messages)]
        if isinstance(transcript, BaseException) or isinstance(tracker, BaseException):
            integrity.counts["lost"] += 2 * messages
            integrity.examples.append(f"chat {c}: could not read transcript/tracker: {transcript!r} {tracker!r}"[:300])
            continue
        customer = [(m["body"], m["index"]) for m in transcript if m["role"] == "customer" and m["body"].startswith(prefix)]
        integrity.check("flex", c, [b for b, _ in customer], expected_v, pattern)
        for body, index in customer:
            arrived = feed.arrivals.at.get((chat.channel_sid, index))
            if body in sent["visitor_sent"] and arrived is None:
                feed_missed += 1
            elif arrived is not None and body in sent["visitor_sent"] and body in expected_v:
                to_agent.append(arrived - sent["visitor_sent"][body])
                last = max(last, arrived)
        received = sent["received"].get(c, [])
        integrity.check("visitor", c, [b for _, b in received], expected_a, pattern)
        for t, body in dict((b, (t, b)) for t, b in reversed(received)).values():
            if body in sent["agent_sent"] and body in expected_a:
                to_visitor.append(t - sent["agent_sent"][body])
                last = max(last, t)
        events = tracker["events"]
        agent_turns = [
            str(e["metadata"]["handoff"].get("body"))
            for e in events
            if e.get("event") == "bot" and ((e.get("metadata") or {}).get("handoff") or {}).get("role") == "agent"
        ]
        visitor_turns = [str(e.get("text")) for e in events if e.get("event") == "user"]
        integrity.check("tracker", c, [t for t in agent_turns if t.startswith(prefix)], expected_a, pattern)
        integrity.check("tracker", c, [t for t in visitor_turns if t.startswith(prefix)], expected_v, pattern)
    return to_agent, to_visitor, feed_missed, last


@dataclass
class Processes:
    """The server processes whose CPU and memory the relay figures are read from."""

    pids: Dict[str, int]  # name -> pid: sandbox, rasa, actions (the bench client is added per level)

    def cpu(self) -> Dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}


def split(chats: int, parts: int) -> List[List[int]]:
    return [list(range(i, chats, parts)) for i in range(parts) if i < chats]


async def measure_level(
    rasa_url: str,
    desk_url: str,
    procs: Processes,
    feed: MessageFeed,
    chats_n: int,
    messages: int,
    interval: float,
    clients: int,
    setup_limit: int,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """One level: set up `chats_n` handed-off chats in `clients` processes, run the schedule, check everything."""
    tag = f"L{chats_n}"
    say = progress or (lambda _: None)
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    rss_before = rss_kib(procs.pids["rasa"])
    cpu_setup = procs.cpu()
    workers: List[Tuple[Any, Connection]] = []
    client_total_cpu = 0.0  # the client processes' whole lives, set-up included (for group 6)
    for part, chat_ids in enumerate(split(chats_n, clients)):
        ours, theirs = context.Pipe()
        spec = {
            "rasa_url": rasa_url,
            "desk_url": desk_url,
            "chats": chat_ids,
            "tag": tag,
            "messages": messages,
            "interval": interval,
            "seed": 1000 * chats_n + part,
            "setup_limit": setup_limit,
        }
        process = context.Process(target=client_main, args=(theirs, spec), name=f"bench-client-{tag}-{part}", daemon=True)
        process.start()
        workers.append((process, ours))

    async def receive(conn: Connection, timeout: float) -> Dict[str, Any]:
        message: Dict[str, Any] = await asyncio.wait_for(loop.run_in_executor(None, conn.recv), timeout)
        if "crashed" in message:
            raise RuntimeError(f"bench client crashed: {message['crashed']}")
        return message

    try:
        say(f"relay {tag}: handing off {chats_n} chats")
        setup_started = now()
        readies = await asyncio.gather(*(receive(conn, 60 + 2 * chats_n) for _, conn in workers))
        setup_wall = now() - setup_started
        rss_after = rss_kib(procs.pids["rasa"])
        chats = [Chat(**c) for r in readies for c in r["ready"]]
        setup_errors = [e for r in readies for e in r["errors"]]
        lost_to_setup = chats_n - len(chats)  # a chat never handed off is a set-up error, reported apart
        feed.watch(c.channel_sid for c in chats)
        expected_events = 2 * messages * len(chats)
        cpu_before = procs.cpu()
        coordinator_cpu = own_cpu()
        t0 = now() + 0.5
        for _, conn in workers:
            conn.send({"t0": t0})
        say(f"relay {tag}: exchanging {expected_events} messages")
        flex_done = feed.until_count(expected_events, WAIT)
        # The clients answer once their visitors got everything or deliveries stalled for WAIT s.
        got = await asyncio.gather(flex_done, *(receive(conn, 3600) for _, conn in workers))
        cpu_after = procs.cpu()
        coordinator_cpu = own_cpu() - coordinator_cpu
        results: List[Dict[str, Any]] = list(got[1:])
        sent: Dict[str, Any] = {"visitor_sent": {}, "agent_sent": {}, "received": {}}
        for r in results:
            sent["visitor_sent"].update(r["visitor_sent"])
            sent["agent_sent"].update(r["agent_sent"])
            sent["received"].update({int(c): v for c, v in r["received"].items()})
        say(f"relay {tag}: checking transcripts, visitors and trackers")
        integrity = Integrity()
        async with aiohttp.ClientSession() as http:
            agents = AgentApi(http, desk_url)
            to_agent, to_visitor, feed_missed, last_arrival = await verify(
                http, rasa_url, agents, feed, chats, tag, messages, sent, integrity
            )
        wall = last_arrival - t0
        relayed = len(to_agent) + len(to_visitor) + feed_missed
    finally:
        for _, conn in workers:
            try:
                conn.send({"close": True})
            except (BrokenPipeError, OSError):
                pass
        for process, conn in workers:
            try:
                if conn.poll(30):
                    client_total_cpu += conn.recv().get("cpu_s_total", 0.0)
            except (EOFError, OSError):
                pass
            process.join(10)
            if process.is_alive():
                process.kill()
    cpu = {name: round(cpu_after[name] - cpu_before[name], 3) for name in cpu_before}
    client_cpu = coordinator_cpu + sum(r["cpu_s"] for r in results)
    cpu["bench_client"] = round(client_cpu, 3)
    return {
        "chats": chats_n,
        "chats_handed_off": len(chats),
        "messages_per_chat_each_way": messages,
        "interval_s": interval,
        "offered_msgs_per_s": round(2 * chats_n / interval, 1),
        "aggregate_msgs_per_s": round(relayed / wall, 1) if wall > 0 else None,
        "wall_s": round(wall, 2),
        "setup_wall_s": round(setup_wall, 2),
        "setup_cpu_s": {name: round(cpu_before[name] - cpu_setup[name], 3) for name in cpu_setup},
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "rss_kib_per_chat": round((rss_after - rss_before) / max(1, len(chats)), 1),
        "visitor_to_agent_ms": percentiles(to_agent),
        "agent_to_visitor_ms": percentiles(to_visitor),
        "feed_events_missed": feed_missed,
        "too_fast_notices": sum(r["too_fast_notices"] for r in results),
        # Sockets the server dropped during the exchange: agent messages emitted meanwhile reach
        # the tracker (history) but not the visitor live, so they count as lost to the visitor.
        "visitor_disconnects": sum(r["disconnects"] for r in results),
        "integrity": integrity.summary(),
        "integrity_detail": dict(integrity.counts),
        "integrity_examples": integrity.examples,
        "setup_errors": setup_errors[:10],
        "setup_failed": lost_to_setup,
        "send_errors": [e for r in results for e in r["errors"]][:10],
        "client": {
            "processes": len(workers),
            "cpu_s": round(client_cpu, 3),
            "cpu_share_of_one_core": round(client_cpu / wall / max(1, len(workers)), 3) if wall > 0 else None,
            "schedule_lag_ms": percentiles([x for r in results for x in r["lag"]]),
        },
        "cpu_s": cpu,
        "client_processes_cpu_s_total": round(client_total_cpu, 3),
        "cpu_ms_per_message": {
            name: round(1000 * cpu[name] / relayed, 3) if relayed else None
            for name in ("rasa", "sandbox", "actions", "bench_client")
        },
    }
