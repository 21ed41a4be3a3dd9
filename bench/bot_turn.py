"""Group 2, the bot turn: `user_uttered` "hello" until the bot's `bot_uttered`, through our socket.io channel.

That is NLU + policies + the response, the cost a relayed message is meant to skip; the relay
target is a fraction of it. Each visitor types like a person (closed loop: the next "hello"
after the answer), which spares the bot any queueing of its own, so the relay comparison is
conservative. The first turn of each visitor starts a Rasa session and is not counted.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from bench.clients import WAIT, Visitor, now, percentiles

GREETING = "Hi!"  # utter_greet starts so: one reply per "hello" (domain.yml)


async def measure(rasa_url: str, visitors_n: int, turns: int) -> Dict[str, Any]:
    visitors = [Visitor(rasa_url) for _ in range(visitors_n)]
    await asyncio.gather(*(v.connect() for v in visitors))
    latencies: List[float] = []
    errors: List[str] = []

    async def converse(v: Visitor) -> None:
        for k in range(turns + 1):  # turn 0 starts the session
            start = len(v.received)
            sent = await v.say("hello")
            arrived = await v.wait_for(lambda m: True, WAIT, start)
            if arrived is None:
                errors.append(f"{v.session_id}: no answer to hello #{k}")
                return
            text = str(v.received[start][1].get("text", ""))
            if not text.startswith(GREETING):
                errors.append(f"{v.session_id}: answered {text[:60]!r}")
            if k:
                latencies.append(arrived - sent)

    started = now()
    await asyncio.gather(*(converse(v) for v in visitors))
    wall = now() - started
    await asyncio.gather(*(v.close() for v in visitors))
    return {
        "name": "bot_turn",
        "concurrency": visitors_n,
        "latency_ms": percentiles(latencies),
        "throughput_per_s": round(len(latencies) / wall, 1) if wall > 0 else None,
        "lost": visitors_n * turns - len(latencies),
        "errors": errors[:5],
    }
