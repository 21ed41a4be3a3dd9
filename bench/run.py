"""`make bench`: every figure of issue #13 in one run, on one machine, side by side.

Starts the floor's echo server, the Flex sandbox, the action server and one Rasa server (the
tests' `Stack`, SQLite tracker store, Twilio timeouts as in production), then measures in turn:

1. floor: a bare socket.io echo on our patched Sanic, and a bare Twilio-style form POST to the sandbox;
2. bot turn: "hello" until the bot's answer, at 1, 10 and 50 concurrent visitors;
3. handoff set-up: `/talk_to_agent` until the chat is in Flex and the visitor told;
4. relay: 1, 10, 100 and 1,000 handed-off chats exchanging messages both ways, open loop;
5. length: relay latency at 10, 100 and 1,000 tracker events;
6. CPU: each process's CPU time per group, and per relayed message.

Prints a table, writes `<out>/latest.json` and `<out>/latest.png`. Exits 0 unless a message was
lost, duplicated, reordered or misrouted, or something crashed; a missed speed target is
reported, not an error.
Run: `python -m bench.run [--smoke] [--out DIR]` (`--smoke`: tiny numbers, a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import aiohttp
from tqdm import tqdm

from bench import bot_turn, floor, handoff_setup, length, relay, report
from bench.clients import own_cpu
from northwind.processes import ROOT
from northwind.servers import AgentDesk, Stack, start_sandbox


@dataclass
class Plan:
    """How much of everything to do: the full run (~10 minutes on 2 cores) or the smoke run (seconds)."""

    # concurrency -> (messages per client each way, seconds between a client's messages); the floor
    # uses the relay's schedule at its concurrency, so both carry the same offered load.
    relay: Dict[int, Tuple[int, float]]
    floor_levels: List[int]
    bot_turns: Dict[int, int]  # visitors -> measured turns each (after one that starts the session)
    handoffs: List[Tuple[int, int]]  # (concurrency, count)
    lengths: List[int]
    length_messages: int = 10
    length_interval: float = 0.6
    biggest_level_clients: int = 2  # client processes for the 1,000-chat level (one below 1,000)
    # Handoffs in flight per client process: set-up is not what level 1,000 measures, and more in
    # flight only queues them in Rasa until the sandbox's webhooks to it time out.
    setup_limit: int = 8
    extra: Dict[str, Any] = field(default_factory=dict)


# The relay refuses a visitor's 11th message within 5 s (chat_state.FLOOD_LIMIT/FLOOD_WINDOW, flood
# protection): no schedule sends faster than one message per 0.6 s per visitor, or it would
# measure the refusal, which the integrity check counts as lost.
FULL = Plan(
    relay={1: (20, 0.6), 10: (10, 0.6), 100: (5, 2.0), 1000: (3, 2.0)},
    floor_levels=[1, 10, 100],
    bot_turns={1: 10, 10: 5, 50: 3},
    handoffs=[(1, 10), (10, 10)],
    lengths=[10, 100, 1000],
)
SMOKE = Plan(
    relay={1: (2, 0.6), 3: (2, 0.6)},
    floor_levels=[1, 3],
    bot_turns={1: 2, 3: 1},
    handoffs=[(1, 2)],
    lengths=[10, 100],
    length_messages=2,
    length_interval=0.6,
    biggest_level_clients=1,
)


def stable_model(model: Path, into: Path) -> Path:
    """A private copy of the model, checked whole (a `rasa train` elsewhere rewrites it in place)."""
    copy = into / model.name
    deadline = time.monotonic() + 120
    while True:
        shutil.copyfile(model, copy)
        try:
            with tarfile.open(copy) as archive:
                archive.getmembers()
            return copy
        except (tarfile.TarError, EOFError, OSError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{model} stays incomplete; is a training run writing it?") from None
            time.sleep(1)  # polling the file another process is writing; nothing to wait on


class Cpu:
    """CPU seconds per process over each group: the sandbox's cost apart from ours (group 6)."""

    def __init__(self, procs: relay.Processes) -> None:
        self.procs = procs
        self.per_group: Dict[str, Dict[str, float]] = {}

    async def over(self, group: str, work: Callable[[], Any], client_extra: Callable[[], float] = lambda: 0.0) -> Any:
        before, client = self.procs.cpu(), own_cpu()
        result = await work()
        after = self.procs.cpu()
        spent = {name: round(after[name] - before[name], 3) for name in before}
        spent["bench_client"] = round(own_cpu() - client + client_extra(), 3)
        self.per_group[group] = spent
        return result


async def run_groups(plan: Plan, stack: Stack, echo_url: str, procs: relay.Processes, bar: tqdm, groups: Dict[str, Any]) -> None:
    """Each group in turn, its results into `groups` as soon as it is done (a crash keeps what was measured)."""
    desk = stack.sandbox.url
    cpu = Cpu(procs)
    groups["cpu"] = {"per_group_s": cpu.per_group, "relay_cpu_ms_per_message": {}}

    def step(what: str) -> None:
        bar.set_description(what[:60])
        bar.update(1)

    async def floors() -> List[Dict[str, Any]]:
        rows = []
        for c in plan.floor_levels:
            messages, interval = plan.relay.get(c, (10, 0.5))
            rows.append(await floor.socketio_echo(echo_url, c, messages, interval))
            step(f"floor: socket.io echo x{c}")
        for c in plan.floor_levels:
            messages, interval = plan.relay.get(c, (10, 0.5))
            rows.append(await floor.form_post(desk, c, messages, interval))
            step(f"floor: form POST x{c}")
        return rows

    groups["floor"] = {"rows": await cpu.over("floor", floors)}

    async def bot_turns() -> List[Dict[str, Any]]:
        rows = []
        for visitors, turns in plan.bot_turns.items():
            rows.append(await bot_turn.measure(stack.url, visitors, turns))
            step(f"bot turn x{visitors}")
        return rows

    groups["bot_turn"] = {"rows": await cpu.over("bot_turn", bot_turns)}

    async def handoffs() -> List[Dict[str, Any]]:
        rows = []
        for concurrency, count in plan.handoffs:
            rows.append(await handoff_setup.measure(stack.url, desk, concurrency, count))
            step(f"handoff set-up x{concurrency}")
        return rows

    groups["handoff_setup"] = {"rows": await cpu.over("handoff_setup", handoffs)}

    feed = relay.MessageFeed(desk)
    async with aiohttp.ClientSession() as http:
        await feed.feed.start(http)
        levels: List[Dict[str, Any]] = []
        groups["relay"] = {"levels": levels}
        biggest = max(plan.relay)

        async def relays() -> List[Dict[str, Any]]:
            for chats, (messages, interval) in plan.relay.items():
                clients = plan.biggest_level_clients if chats == biggest and chats >= 1000 else 1
                levels.append(
                    await relay.measure_level(
                        stack.url,
                        desk,
                        procs,
                        feed,
                        chats,
                        messages,
                        interval,
                        clients,
                        plan.setup_limit,
                        progress=lambda what: bar.set_description(what[:60]),
                    )
                )
                step(f"relay x{chats}")
            return levels

        await cpu.over("relay", relays, lambda: sum(level["client_processes_cpu_s_total"] for level in levels))
        groups["cpu"]["relay_cpu_ms_per_message"] = {str(level["chats"]): level["cpu_ms_per_message"] for level in levels}

        async def lengths() -> Dict[str, Any]:
            found = await length.measure(stack.url, desk, feed, plan.lengths, plan.length_messages, plan.length_interval)
            step("length")
            return found

        groups["length"] = await cpu.over("length", lengths)
        await feed.feed.stop()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny numbers: proves the harness works, measures nothing")
    parser.add_argument(
        "--out", type=Path, default=None, help="where latest.json/.png go (default bench/results; smoke: a temp dir)"
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "northwind.tar.gz")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if not args.model.is_file():
        print(f"no model at {args.model}: run `make train` first", file=sys.stderr)
        return 2
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else ROOT / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    steps = 2 * len(plan.floor_levels) + len(plan.bot_turns) + len(plan.handoffs) + len(plan.relay) + 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        logs = work if args.smoke else ROOT / "var" / "log" / "bench"
        shutil.rmtree(logs / "servers", ignore_errors=True)
        model = stable_model(args.model, work)
        bar = tqdm(total=steps + 1, file=sys.stderr, desc="starting servers", unit="step", dynamic_ncols=True)
        echo = sandbox = stack = None
        crashed: Optional[str] = None
        groups: Dict[str, Any] = {}
        try:
            echo = floor.start_server(logs / "servers")
            sandbox = start_sandbox(logs / "servers")
            stack = Stack("conversations", AgentDesk(sandbox), model, work)
            # Relay timings, not failure handling: Twilio timeouts as in production, not the tests' 2 s.
            stack.env.update({"TWILIO_TIMEOUT": "10", "TWILIO_RETRIES": "2"})
            stack.start()
            bar.update(1)
            assert echo.proc and sandbox.process.proc and stack.rasa and stack.rasa.proc and stack.actions and stack.actions.proc
            procs = relay.Processes(
                {
                    "sandbox": sandbox.process.proc.pid,
                    "rasa": stack.rasa.proc.pid,
                    "actions": stack.actions.proc.pid,
                    "floor_echo": echo.proc.pid,
                }
            )
            asyncio.run(run_groups(plan, stack, floor.url_of(echo), procs, bar, groups))
        except Exception as e:  # noqa: BLE001 - a crash is reported in the results and fails the run
            crashed = f"{type(e).__name__}: {e}"
            if stack is not None:
                crashed += "\n" + stack.logs()
        finally:
            bar.close()
            for process in (stack, echo, sandbox.process if sandbox else None):
                if process is not None:
                    process.stop()
            if not args.smoke:  # the Stack logs into its work folder, which goes away
                for log in work.glob("*.log"):
                    shutil.copyfile(log, logs / "servers" / log.name)
    results = report.build(groups, plan_summary(plan, args.smoke), crashed, time.monotonic() - started)
    report.write(results, out)
    print(report.table(results))
    print(f"\nwrote {out / 'latest.json'} and {out / 'latest.png'}")
    return 0 if results["ok"] else 1


def plan_summary(plan: Plan, smoke: bool) -> Dict[str, Any]:
    return {
        "smoke": smoke,
        "relay_levels": {str(c): {"messages_each_way": m, "interval_s": i} for c, (m, i) in plan.relay.items()},
        "floor_levels": plan.floor_levels,
        "bot_turn_levels": {str(v): t for v, t in plan.bot_turns.items()},
        "handoffs": [{"concurrency": c, "count": n} for c, n in plan.handoffs],
        "lengths": plan.lengths,
        "biggest_level_client_processes": plan.biggest_level_clients,
    }


if __name__ == "__main__":
    sys.exit(main())
