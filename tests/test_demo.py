"""`make demo` as a user runs it: everything comes up, answers, refuses a second copy, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.servers import ROOT, free_port, port_in_use, wait_for

pytestmark = pytest.mark.timeout(600)


def post_json(url: str, body: dict) -> list:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_demo_starts_everything_and_stops_cleanly(trained_model: Path, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("rasa", "actions", "shop", "sandbox")}
    args = [sys.executable, "-m", "bot.demo", "--rasa-port", str(ports["rasa"]),
            "--actions-port", str(ports["actions"]), "--shop-port", str(ports["shop"]),
            "--state-dir", str(tmp_path)]
    env = {**os.environ, "FLEX_SANDBOX_PORT": str(ports["sandbox"]), "PYTHONPATH": str(ROOT)}
    for key in ("PUBLIC_URL", "TWILIO_API_BASE", "TWILIO_ACCOUNT_SID", "FLEX_SANDBOX_DB"):
        env.pop(key, None)
    demo = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()
    seen = []

    def printed(fragment: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(fragment in line for line in seen)

    try:
        wait_for(lambda: printed("Everything is up") or demo.poll() is not None, 400, "the demo to come up")
        assert demo.poll() is None, "".join(seen[-40:])
        rasa = f"http://127.0.0.1:{ports['rasa']}"
        reply = post_json(f"{rasa}/webhooks/rest/webhook", {"sender": "x", "message": "hi"})
        assert "Northwind assistant" in reply[0]["text"]
        shop = get_text(f"http://127.0.0.1:{ports['shop']}/")
        assert "widget.js" in shop and rasa in shop
        assert "<html" in get_text(f"http://127.0.0.1:{ports['sandbox']}/agent").lower()
        assert printed(f"http://127.0.0.1:{ports['sandbox']}/agent")
        assert (tmp_path / "log" / "rasa.log").is_file()

        second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
    assert demo.returncode == 0, "".join(seen[-40:])
    for name, port in ports.items():
        assert not port_in_use(port), f"{name} still listening on {port}"
