"""The benchmark's results: the JSON (stable keys), the printed table, the chart, and the targets of issue #13.

The JSON is what other tools and the README read; its keys stay the same from run to run (a
group that could not run keeps its keys with empty rows), so runs can be compared side by side.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

from northwind.processes import ROOT

SCHEMA_VERSION = 1
GROUPS = ("floor", "bot_turn", "handoff_setup", "relay", "length", "cpu")
INTEGRITY_KEYS = ("lost", "duplicated", "out_of_order", "misrouted")
RELAY_TO_BOT = 0.25  # relay p50 at most this share of the bot turn's p50
MIN_THROUGHPUT = 1000.0  # relayed messages/s, aggregate, one Rasa process
BIG_LEVEL = 1000  # concurrent handed-off chats, none lost
FLAT_LENGTH = 1.5  # longest-conversation p50 at most this many times the shortest's


def machine() -> Dict[str, Any]:
    """Where the figures come from: they mean little without it."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "cpu_model": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "rasa": metadata.version("rasa"),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _p50(row: Optional[Dict[str, Any]]) -> Optional[float]:
    return None if row is None else row["latency_ms"]["p50"]


def _nearest(rows: List[Dict[str, Any]], name: str, concurrency: int) -> Optional[Dict[str, Any]]:
    """The row of `name` at the highest concurrency not above `concurrency` (else the lowest there is)."""
    own = sorted((r for r in rows if r["name"] == name), key=lambda r: r["concurrency"])
    below = [r for r in own if r["concurrency"] <= concurrency]
    return below[-1] if below else (own[0] if own else None)


def _ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    return round(value / base, 2) if value is not None and base else None


def build(groups: Dict[str, Any], plan: Dict[str, Any], crashed: Optional[str], duration: float) -> Dict[str, Any]:
    """The results document: groups with floor ratios, relay rows, integrity totals, targets, ok."""
    floor_rows: List[Dict[str, Any]] = groups.get("floor", {}).get("rows", [])
    bot_rows: List[Dict[str, Any]] = groups.get("bot_turn", {}).get("rows", [])
    handoff_rows: List[Dict[str, Any]] = groups.get("handoff_setup", {}).get("rows", [])
    levels: List[Dict[str, Any]] = groups.get("relay", {}).get("levels", [])
    length: Dict[str, Any] = groups.get("length", {"rows": [], "ratio_p50_longest_to_shortest": {}, "integrity": {}})
    cpu: Dict[str, Any] = groups.get("cpu", {"per_group_s": {}, "relay_cpu_ms_per_message": {}})

    def echo(c: int) -> Optional[float]:
        return _p50(_nearest(floor_rows, "socketio_echo", c))

    def both_hops(c: int) -> Optional[float]:
        e, p = echo(c), _p50(_nearest(floor_rows, "form_post", c))
        return e + p if e is not None and p is not None else None

    for r in floor_rows:
        r["floor_ms"] = r["latency_ms"]["p50"]
        r["ratio_to_floor"] = 1.0 if r["latency_ms"]["p50"] else None
    for r in bot_rows + handoff_rows:
        r["floor_ms"] = echo(r["concurrency"])
        r["ratio_to_floor"] = _ratio(r["latency_ms"]["p50"], r["floor_ms"])
    relay_rows: List[Dict[str, Any]] = []
    for level in levels:
        for direction in ("visitor_to_agent", "agent_to_visitor"):
            latency = level[f"{direction}_ms"]
            base = both_hops(level["chats"])
            relay_rows.append(
                {
                    "name": f"relay_{direction}",
                    "concurrency": level["chats"],
                    "latency_ms": latency,
                    "throughput_per_s": level["aggregate_msgs_per_s"],
                    "floor_ms": base,
                    "ratio_to_floor": _ratio(latency["p50"], base),
                }
            )
    for r in length.get("rows", []):
        r["floor_ms"] = both_hops(1)
        r["ratio_to_floor"] = _ratio(r["latency_ms"]["p50"], r["floor_ms"])

    integrity = {k: 0 for k in INTEGRITY_KEYS}
    for part in [level["integrity"] for level in levels] + [length.get("integrity", {})]:
        for k in INTEGRITY_KEYS:
            integrity[k] += int(part.get(k, 0))
    setup_failed = sum(level["setup_failed"] for level in levels) + sum(r["lost"] for r in handoff_rows)
    unanswered = sum(r["lost"] for r in bot_rows) + sum(r["lost"] for r in floor_rows)

    targets = _targets(bot_rows, levels, length)
    ok = crashed is None and not any(integrity.values()) and setup_failed == 0 and unanswered == 0 and bool(levels)
    return {
        "schema_version": SCHEMA_VERSION,
        "machine": machine(),
        "plan": plan,
        "duration_s": round(duration, 1),
        "crashed": crashed,
        "groups": {
            "floor": {"rows": floor_rows, "cpu_s": cpu["per_group_s"].get("floor", {})},
            "bot_turn": {"rows": bot_rows, "cpu_s": cpu["per_group_s"].get("bot_turn", {})},
            "handoff_setup": {"rows": handoff_rows, "cpu_s": cpu["per_group_s"].get("handoff_setup", {})},
            "relay": {"rows": relay_rows, "levels": levels, "cpu_s": cpu["per_group_s"].get("relay", {})},
            "length": {**length, "cpu_s": cpu["per_group_s"].get("length", {})},
            "cpu": cpu,
        },
        "integrity": integrity,
        "handoffs_failed": setup_failed,
        "unanswered": unanswered,
        "targets": targets,
        "ok": ok,
    }


def _targets(bot_rows: List[Dict[str, Any]], levels: List[Dict[str, Any]], length: Dict[str, Any]) -> List[Dict[str, Any]]:
    targets: List[Dict[str, Any]] = []
    for level in levels:
        bot = _nearest(bot_rows, "bot_turn", level["chats"])
        bot_p50 = _p50(bot)
        worst = max((level[f"{d}_ms"]["p50"] or 0.0) for d in ("visitor_to_agent", "agent_to_visitor"))
        share = _ratio(worst, bot_p50)
        targets.append(
            {
                "name": f"relay_p50_vs_bot_turn_at_{level['chats']}",
                "goal": f"relay p50 (slower way) at {level['chats']} chats <= {RELAY_TO_BOT:.0%} of bot turn p50 at "
                f"{bot['concurrency'] if bot else '?'}",
                "value": share,
                "limit": RELAY_TO_BOT,
                "pass": share is not None and share <= RELAY_TO_BOT,
            }
        )
    best = max((level["aggregate_msgs_per_s"] or 0.0 for level in levels), default=0.0)
    targets.append(
        {
            "name": "aggregate_msgs_per_s",
            "goal": f">= {MIN_THROUGHPUT:.0f} relayed messages/s aggregate, one Rasa process",
            "value": best,
            "limit": MIN_THROUGHPUT,
            "pass": best >= MIN_THROUGHPUT,
        }
    )
    big = next((level for level in levels if level["chats"] >= BIG_LEVEL), None)
    big_ok = big is not None and big["setup_failed"] == 0 and not any(big["integrity"].values())
    targets.append(
        {
            "name": "concurrent_chats_none_lost",
            "goal": f"{BIG_LEVEL} concurrent handed-off chats in one process, 0 lost",
            "value": None if big is None else big["chats_handed_off"],
            "limit": BIG_LEVEL,
            "pass": big_ok,
        }
    )
    ratios = [r for r in (length.get("ratio_p50_longest_to_shortest") or {}).values() if r is not None]
    worst_ratio = max(ratios) if ratios else None
    targets.append(
        {
            "name": "relay_flat_in_length",
            "goal": f"relay p50 at {length.get('longest')} events <= {FLAT_LENGTH} x p50 at {length.get('shortest')}",
            "value": worst_ratio,
            "limit": FLAT_LENGTH,
            "pass": worst_ratio is not None and worst_ratio <= FLAT_LENGTH,
        }
    )
    return targets


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def table(results: Dict[str, Any]) -> str:
    """The results as text (also what the README's table is made from)."""
    m = results["machine"]
    lines = [
        f"{m['cpu_model']}, {m['cores']} cores, Python {m['python']}, Rasa {m['rasa']}, "
        f"{m['date']}, commit {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''}",
        "",
        f"| {'group':<14} | {'case':<30} | {'conc.':>5} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} "
        f"| {'per s':>7} | {'x floor':>7} |",
        f"|{'-' * 16}|{'-' * 32}|{'-' * 7}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|",
    ]
    g = results["groups"]
    sections = [
        ("floor", g["floor"]["rows"]),
        ("bot turn", g["bot_turn"]["rows"]),
        ("handoff set-up", g["handoff_setup"]["rows"]),
        ("relay", g["relay"]["rows"]),
        ("length", g["length"].get("rows", [])),
    ]
    for group, rows in sections:
        for r in rows:
            case = r["name"].replace("relay_", "").replace("_to_", "->")
            if "events" in r:
                case = f"{case} @{r['events']} ev ({r['events_at_start']})"
            lat = r["latency_ms"]
            throughput = r.get("throughput_per_s")
            lines.append(
                f"| {group:<14} | {case:<30} | {r['concurrency']:>5} | {_ms(lat['p50']):>7} | {_ms(lat['p95']):>7} | "
                f"{_ms(lat['p99']):>7} | {_ms(throughput):>7} | {_ms(r.get('ratio_to_floor')):>7} |"
            )
    lines += [
        "",
        "| relay chats | msgs/s offered | msgs/s done | RSS KiB/chat | Rasa CPU ms/msg | sandbox CPU ms/msg "
        "| client CPU s (procs) | lost/dup/ooo/misr |",
    ]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for level in g["relay"]["levels"]:
        per = level["cpu_ms_per_message"]
        i = level["integrity"]
        lines.append(
            f"| {level['chats']} | {level['offered_msgs_per_s']:.0f} | {_ms(level['aggregate_msgs_per_s'])} | "
            f"{level['rss_kib_per_chat']:.1f} | {_ms(per['rasa'])} | {_ms(per['sandbox'])} | "
            f"{level['client']['cpu_s']:.1f} ({level['client']['processes']}) | "
            f"{i['lost']}/{i['duplicated']}/{i['out_of_order']}/{i['misrouted']} |"
        )
    per_group = g["cpu"]["per_group_s"]
    if per_group:
        names = sorted({name for spent in per_group.values() for name in spent})
        lines += ["", "| CPU s per group | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for group, spent in per_group.items():
            lines.append(f"| {group} | " + " | ".join(f"{spent.get(n, 0):.1f}" for n in names) + " |")
    lines += ["", "| target | value | pass |", "|---|---:|---|"]
    for t in results["targets"]:
        value = "-" if t["value"] is None else t["value"]
        lines.append(f"| {t['goal']} | {value} | {'PASS' if t['pass'] else 'FAIL'} |")
    i = results["integrity"]
    lines.append("")
    lines.append(
        f"lost {i['lost']}, duplicated {i['duplicated']}, out of order {i['out_of_order']}, misrouted {i['misrouted']}; "
        f"failed handoffs {results['handoffs_failed']}, unanswered {results['unanswered']}; "
        f"{'OK' if results['ok'] else 'FAILED'} in {results['duration_s']:.0f} s"
    )
    if results["crashed"]:
        lines.append(f"crashed: {results['crashed'][:2000]}")
    return "\n".join(lines)


def chart(results: Dict[str, Any], path: Path) -> None:
    """Latency against concurrent chats (log-log), floor to relay, with the machine in the title."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = results["groups"]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    series = [
        ("floor: socket.io echo", g["floor"]["rows"], "socketio_echo", "tab:gray", ":"),
        ("floor: form POST to sandbox", g["floor"]["rows"], "form_post", "tab:olive", ":"),
        ("bot turn", g["bot_turn"]["rows"], "bot_turn", "tab:red", "-"),
        ("relay visitor -> agent", g["relay"]["rows"], "relay_visitor_to_agent", "tab:blue", "-"),
        ("relay agent -> visitor", g["relay"]["rows"], "relay_agent_to_visitor", "tab:green", "-"),
    ]
    for label, rows, name, color, style in series:
        measured = (r for r in rows if r["name"] == name and r["latency_ms"]["p50"] is not None)
        own = sorted(measured, key=lambda r: r["concurrency"])
        if not own:
            continue
        xs = [r["concurrency"] for r in own]
        ax.plot(xs, [r["latency_ms"]["p50"] for r in own], style, marker="o", color=color, label=f"{label} p50")
        ax.plot(xs, [r["latency_ms"]["p95"] for r in own], "--", marker=".", color=color, alpha=0.5, label=f"{label} p95")
    ax.set_xscale("log")
    ax.set_yscale("log")
    levels = sorted({r["concurrency"] for _, rows, *_ in series for r in rows})
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("concurrent chats (visitors)")
    ax.set_ylabel("latency, ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    m = results["machine"]
    ax.set_title(
        f"rasa_flex_handoff latency: {m['cpu_model']}, {m['cores']} cores, Python {m['python']}, Rasa {m['rasa']}\n"
        f"{m['date'][:10]}, commit {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results: Dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    chart(results, out / "latest.png")
