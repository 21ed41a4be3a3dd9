"""Group 3, handoff set-up: `/talk_to_agent` until the chat exists in Flex and the visitor was told (`connecting`).

One visitor at a time, then a batch at once. The path is the bot turn plus the action server
creating the Flex web chat, its webhook and the first message (several sandbox calls), so it is
expected to cost more than a bot turn; it happens once per chat. An agent accepts each task
(not timed here) so the chats are real handed-off chats afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import aiohttp

from bench.clients import AgentApi, TaskWatch, Visitor, hand_off, now, percentiles


async def measure(rasa_url: str, desk_url: str, concurrency: int, count: int) -> Dict[str, Any]:
    """`count` handoffs, `concurrency` at a time (each wave together)."""
    setups: List[float] = []
    errors: List[str] = []
    async with aiohttp.ClientSession() as http:
        tasks = TaskWatch(desk_url)
        await tasks.feed.start(http)
        agents = AgentApi(http, desk_url)
        started = now()
        for wave in range(0, count, concurrency):
            visitors = [Visitor(rasa_url) for _ in range(min(concurrency, count - wave))]
            await asyncio.gather(*(v.connect() for v in visitors))
            results = await asyncio.gather(
                *(hand_off(v, tasks, agents, f"setup-{wave + i}") for i, v in enumerate(visitors)), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    errors.append(f"{type(r).__name__}: {r}")
                else:
                    setups.append(r["setup"])
            await asyncio.gather(*(v.close() for v in visitors))
        wall = now() - started
        await tasks.feed.stop()
    return {
        "name": "handoff_setup",
        "concurrency": concurrency,
        "latency_ms": percentiles(setups),
        "throughput_per_s": round(len(setups) / wall, 2) if wall > 0 else None,
        "lost": count - len(setups),
        "errors": errors[:5],
    }
