"""Benchmark: many visitors posting to one Flex sandbox channel at once, through the real twilio SDK.

Prints throughput and latency percentiles, and checks that no message was lost or reordered
(indexes contiguous, every body present once). Run: `.venv/bin/python -m bench.sandbox_messages`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from northwind.servers import start_sandbox


async def post_all(sandbox, channel_sid: str, clients: int, per_client: int) -> List[float]:
    client = sandbox.async_client()
    latencies: List[float] = []

    async def visitor(n: int) -> None:
        for i in range(per_client):
            started = time.perf_counter()
            await client.conversations.v1.conversations(channel_sid).messages.create_async(author=f"visitor-{n}", body=f"{n}:{i}")
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(visitor(n) for n in range(clients)))
    await client.http_client.session.close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = start_sandbox(Path(tmp), db=Path(tmp) / "bench.db")
        try:
            chat = sandbox.client.flex_api.v2.web_channels.create(address_sid=sandbox.address_sid, customer_friendly_name="Bench")
            started = time.perf_counter()
            latencies = asyncio.run(post_all(sandbox, chat.conversation_sid, args.clients, args.per_client))
            elapsed = time.perf_counter() - started
            messages = sandbox.client.conversations.v1.conversations(chat.conversation_sid).messages.list(page_size=100)
        finally:
            sandbox.process.stop()
    total = args.clients * args.per_client
    indexes = [m.index for m in messages]
    bodies = sorted(m.body for m in messages)
    ok = indexes == list(range(total)) and bodies == sorted(
        f"{n}:{i}" for n in range(args.clients) for i in range(args.per_client)
    )
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{total} messages from {args.clients} concurrent clients in {elapsed:.2f} s "
        f"({total / elapsed:.0f} msg/s; SQLite file store)"
    )
    print(
        f"latency p50 {quantiles[49] * 1000:.1f} ms, p95 {quantiles[94] * 1000:.1f} ms, "
        f"p99 {quantiles[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(f"stored {len(messages)} messages, indexes contiguous and bodies complete: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
