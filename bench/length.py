"""Group 5, conversation length: relay latency when the handed-off conversation holds 10, 100 or 1,000 tracker events.

A relay loads and saves the conversation's tracker under its lock; if that grew with the
conversation, a long chat with an agent would slow down message by message. Each length gets
its own handed-off chat, grown to that many events through Rasa's HTTP API (`POST
/conversations/<id>/tracker/events`, bot turns, during the handoff so they are in the session a
relay loads), then the relay is measured both ways exactly as group 4 does, one chat alone.
The handoff itself already writes some events, so the shortest "10" starts at whatever that is
(`events_at_start` says).
"""

from __future__ import annotations

from typing import Any, Dict, List

import aiohttp

from bench.clients import WAIT, AgentApi, TaskWatch, Visitor, hand_off, now, percentiles
from bench.relay import Chat, Integrity, MessageFeed, agent_name, exchange, fetch_tracker, verify

BATCH = 250  # events per append call


async def grow(http: aiohttp.ClientSession, rasa_url: str, session_id: str, events: int) -> int:
    """Append bot turns until the conversation holds `events` events; returns the count reached."""
    have = len((await fetch_tracker(http, rasa_url, session_id))["events"])
    while have < events:
        batch = [{"event": "bot", "text": f"earlier answer {have + i}"} for i in range(min(BATCH, events - have))]
        url = f"{rasa_url}/conversations/{session_id}/tracker/events?include_events=NONE"
        async with http.post(url, json=batch) as r:
            r.raise_for_status()
        have = len((await fetch_tracker(http, rasa_url, session_id))["events"])
    return have


async def measure(
    rasa_url: str, desk_url: str, feed: MessageFeed, lengths: List[int], messages: int, interval: float
) -> Dict[str, Any]:
    rows: List[Dict[str, Any]] = []
    integrity = Integrity()
    async with aiohttp.ClientSession() as http:
        tasks = TaskWatch(desk_url)
        await tasks.feed.start(http)
        agents = AgentApi(http, desk_url)
        for length in lengths:
            tag = f"N{length}"
            visitor = Visitor(rasa_url)
            await visitor.connect()
            await hand_off(visitor, tasks, agents, agent_name(tag, 0))
            assert visitor.session_id is not None
            at_start = await grow(http, rasa_url, visitor.session_id, length)
            feed.watch([visitor.channel_sid])
            sent = await exchange({0: visitor}, agents, tag, messages, interval, now() + 0.2, seed=length)
            await feed.until_count(2 * messages, WAIT)
            chat = Chat(0, visitor.session_id, visitor.channel_sid, visitor.task_sid)
            to_agent, to_visitor, _, _ = await verify(http, rasa_url, agents, feed, [chat], tag, messages, sent, integrity)
            at_end = len((await fetch_tracker(http, rasa_url, visitor.session_id))["events"])
            await visitor.close()
            for direction, latencies in (("visitor_to_agent", to_agent), ("agent_to_visitor", to_visitor)):
                rows.append(
                    {
                        "name": f"relay_{direction}",
                        "events": length,
                        "events_at_start": at_start,
                        "events_at_end": at_end,
                        "concurrency": 1,
                        "latency_ms": percentiles(latencies),
                    }
                )
        await tasks.feed.stop()

    def p50(length: int, direction: str) -> float:
        row = next(r for r in rows if r["events"] == length and r["name"] == f"relay_{direction}")
        return float(row["latency_ms"]["p50"] or 0.0)

    ratios = {}
    shortest, longest = min(lengths), max(lengths)
    for direction in ("visitor_to_agent", "agent_to_visitor"):
        base = p50(shortest, direction)
        ratios[direction] = round(p50(longest, direction) / base, 2) if base else None
    return {
        "rows": rows,
        "ratio_p50_longest_to_shortest": ratios,
        "longest": longest,
        "shortest": shortest,
        "integrity": integrity.summary(),
        "integrity_examples": integrity.examples,
    }
