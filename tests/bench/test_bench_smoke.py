"""`make bench` cannot rot: its smoke run (`python -m bench.run --smoke`) completes and writes everything.

Tiny numbers (1-3 chats, 2 messages each way, lengths 10 and 100) through the same code as the
full run, on the real processes. It checks the report's shape and that nothing was lost,
duplicated, reordered or misrouted; never speed (this machine's neighbours decide that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from northwind.processes import ROOT

GROUPS = {"floor", "bot_turn", "handoff_setup", "relay", "length", "cpu"}
TOP_KEYS = {
    "schema_version",
    "machine",
    "plan",
    "duration_s",
    "crashed",
    "groups",
    "integrity",
    "handoffs_failed",
    "unanswered",
    "targets",
    "ok",
}
MACHINE_KEYS = {"cpu_model", "cores", "python", "rasa", "platform", "date", "git_commit", "git_dirty"}
ROW_KEYS = {"name", "concurrency", "latency_ms", "floor_ms", "ratio_to_floor"}
LATENCY_KEYS = {"p50", "p95", "p99", "max", "n"}
INTEGRITY = {"lost": 0, "duplicated": 0, "out_of_order": 0, "misrouted": 0}


def test_smoke_run_writes_every_group_and_loses_nothing(trained_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bot")])}
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path), "--model", str(trained_model)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = json.loads((tmp_path / "latest.json").read_text())
    assert set(results) == TOP_KEYS
    assert set(results["machine"]) == MACHINE_KEYS
    assert set(results["groups"]) == GROUPS
    assert results["crashed"] is None and results["ok"] is True
    assert results["integrity"] == INTEGRITY
    assert results["handoffs_failed"] == 0 and results["unanswered"] == 0

    groups = results["groups"]
    for name in ("floor", "bot_turn", "handoff_setup", "relay", "length"):
        rows = groups[name]["rows"]
        assert rows, f"{name} has no rows"
        for row in rows:
            assert ROW_KEYS <= set(row), (name, row)
            assert set(row["latency_ms"]) == LATENCY_KEYS
            assert row["latency_ms"]["n"] > 0 and row["latency_ms"]["p50"] is not None, (name, row)
        assert set(groups[name]["cpu_s"]) == {"sandbox", "rasa", "actions", "floor_echo", "bench_client"}
    assert {r["name"] for r in groups["floor"]["rows"]} == {"socketio_echo", "form_post"}
    assert {r["name"] for r in groups["relay"]["rows"]} == {"relay_visitor_to_agent", "relay_agent_to_visitor"}
    for level in groups["relay"]["levels"]:
        assert level["integrity"] == INTEGRITY, level["integrity_examples"]
        assert level["setup_failed"] == 0 and level["chats_handed_off"] == level["chats"]
        assert {"aggregate_msgs_per_s", "rss_kib_per_chat", "cpu_ms_per_message", "client"} <= set(level)
    assert groups["length"]["integrity"] == INTEGRITY
    assert {r["events"] for r in groups["length"]["rows"]} == {10, 100}
    assert set(groups["length"]["ratio_p50_longest_to_shortest"]) == {"visitor_to_agent", "agent_to_visitor"}
    assert set(groups["cpu"]) == {"per_group_s", "relay_cpu_ms_per_message"}
    names = {t["name"] for t in results["targets"]}
    assert names >= {"aggregate_msgs_per_s", "concurrent_chats_none_lost", "relay_flat_in_length"}
    assert all(set(t) == {"name", "goal", "value", "limit", "pass"} for t in results["targets"])

    png = (tmp_path / "latest.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "lost 0, duplicated 0, out of order 0, misrouted 0" in run.stdout
