"""`make demo` as a user runs it: everything comes up, answers, refuses a second copy, stops on Ctrl-C;
listens on the loopback only, without Rasa's HTTP API; and its servers die with it, however it dies."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

import northwind.__main__ as demo_module
from northwind.processes import ROOT, free_port, popen_tied, port_in_use, wait_for

pytestmark = pytest.mark.timeout(600)


def post_json(url: str, body: dict) -> list:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def get_status(url: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str]]:
    """Status and (lower-cased) headers of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


class Demo:
    """`python -m northwind` on free ports, with its output collected."""

    def __init__(self, tmp_path: Path) -> None:
        self.ports = {name: free_port() for name in ("rasa", "actions", "shop", "sandbox")}
        self.args = [
            sys.executable,
            "-m",
            "northwind",
            "--rasa-port",
            str(self.ports["rasa"]),
            "--actions-port",
            str(self.ports["actions"]),
            "--shop-port",
            str(self.ports["shop"]),
            "--state-dir",
            str(tmp_path),
        ]
        self.env = {**os.environ, "FLEX_SANDBOX_PORT": str(self.ports["sandbox"]), "PYTHONPATH": str(ROOT)}
        for key in (
            "PUBLIC_URL",
            "TWILIO_API_BASE",
            "TWILIO_ACCOUNT_SID",
            "FLEX_SANDBOX_DB",
            "FLEX_SANDBOX_HOST",
            "DEMO_HOST",
            "RASA_AUTH_TOKEN",
        ):
            self.env.pop(key, None)
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self._lines.put(line) for line in self.proc.stdout], daemon=True).start()
        self.seen: List[str] = []

    def printed(self, fragment: str) -> bool:
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return any(fragment in line for line in self.seen)

    def output(self, lines: int = 40) -> str:
        self.printed("")
        return "".join(self.seen[-lines:])

    def wait_until_up(self) -> None:
        wait_for(lambda: self.printed("Everything is up") or self.proc.poll() is not None, 400, "the demo to come up")
        assert self.proc.poll() is None, self.output()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


# --- /proc readers (Linux) ---------------------------------------------------------------------


def listening_addresses(ports: Set[int]) -> Dict[int, Set[str]]:
    """The local addresses of the TCP sockets listening on `ports` (from /proc/net/tcp and tcp6)."""
    found: Dict[int, Set[str]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            address, port = fields[1].split(":")
            if fields[3] != "0A" or int(port, 16) not in ports:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.setdefault(int(port, 16), set()).add(socket.inet_ntop(family, raw))
    return found


def process_identity(pid: int) -> Optional[Tuple[int, int]]:
    """(parent pid, start time) of a live process; None once it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def children_of(pid: int) -> Dict[int, int]:
    """{child pid: start time} of the live children of `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            identity = process_identity(int(entry.name))
            if identity and identity[0] == pid:
                found[int(entry.name)] = identity[1]
    return found


def still_running(processes: Dict[int, int]) -> Dict[int, int]:
    """Those of `processes` ({pid: start time}) that are still alive (same pid *and* start time)."""
    return {
        pid: start for pid, start in processes.items() if (identity := process_identity(pid)) is not None and identity[1] == start
    }


# --- the demo end to end --------------------------------------------------------------------------


def test_demo_starts_everything_and_stops_cleanly(trained_model: Path, tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    ports = demo.ports
    try:
        demo.wait_until_up()
        rasa = demo.url("rasa")
        reply = post_json(f"{rasa}/webhooks/rest/webhook", {"sender": "x", "message": "hi"})
        assert "Northwind assistant" in reply[0]["text"]
        shop = get_text(f"{demo.url('shop')}/")
        assert "widget.js" in shop and rasa in shop
        assert "<html" in get_text(f"{demo.url('sandbox')}/agent").lower()
        assert demo.printed(f"{demo.url('sandbox')}/agent")
        assert (tmp_path / "log" / "rasa.log").is_file()

        second = subprocess.run(demo.args, cwd=ROOT, env=demo.env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        demo.proc.send_signal(signal.SIGINT)
        demo.proc.wait(60)
    assert demo.proc.returncode == 0, demo.output()
    for name, port in ports.items():
        assert not port_in_use(port), f"{name} still listening on {port}"


def test_demo_listens_on_the_loopback_only_without_rasas_http_api(trained_model: Path, tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    try:
        demo.wait_until_up()
        listening = listening_addresses(set(demo.ports.values()))
        assert set(listening) == set(demo.ports.values()), listening
        exposed = {port: addresses for port, addresses in listening.items() if addresses != {"127.0.0.1"}}
        assert not exposed, f"demo servers listen beyond 127.0.0.1: {exposed} (ports: {demo.ports})"

        rasa = demo.url("rasa")
        status, _ = get_status(f"{rasa}/conversations/someone/tracker")
        assert status == 404, f"Rasa's HTTP API answers without a token ({status})"
        # The widget's own routes stay open to the shop page (another port, so another origin) only.
        history = f"{rasa}/webhooks/handoff_socketio/history/someone"
        shop_origin = demo.url("shop")
        _, headers = get_status(history, {"Origin": shop_origin})
        assert headers.get("access-control-allow-origin") == shop_origin, headers
        _, headers = get_status(history, {"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in headers, headers
    finally:
        demo.proc.terminate()
        demo.proc.wait(60)


def test_killing_the_launcher_kills_every_server_it_started(trained_model: Path, tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    children: Dict[int, int] = {}
    try:
        demo.wait_until_up()
        children = children_of(demo.proc.pid)
        assert len(children) == len(demo.ports), (children, demo.output())
        demo.proc.kill()  # SIGKILL: no handler, no `finally` runs in the launcher
        demo.proc.wait(30)
        wait_for(lambda: not still_running(children), 60, "every server to die with the launcher", interval=0.2)
        wait_for(
            lambda: not any(port_in_use(port) for port in demo.ports.values()), 30, "the demo's ports to be free", interval=0.2
        )
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
        for pid in still_running(children):  # only what this test saw the launcher start
            os.killpg(pid, signal.SIGKILL)  # each server leads its own session and process group


# --- without starting the demo ----------------------------------------------------------------------


def test_a_lan_demo_binds_that_address_and_keeps_rasas_api_behind_a_token(tmp_path: Path) -> None:
    lan = "192.0.2.10"  # TEST-NET-1: only built into command lines, never contacted
    plan = {s.name: s for s in demo_module.services(5005, 5055, 8000, tmp_path, lan)}
    rasa = plan["rasa"].args
    assert rasa[rasa.index("--interface") + 1] == lan
    assert "--enable-api" not in rasa and "--auth-token" not in rasa
    assert rasa[rasa.index("--cors") + 1 :] == [f"http://{lan}:8000"]  # the shop page, not "*"
    assert plan["action-server"].env == {"SANIC_HOST": lan}  # rasa-sdk 3.6 reads no --interface
    for name in ("flex-sandbox", "shop"):
        if name in plan:
            args = plan[name].args
            assert args[args.index("--host") + 1] == lan, args
    assert all(s.url.startswith(f"http://{lan}:") for s in plan.values())

    with_token = {s.name: s for s in demo_module.services(5005, 5055, 8000, tmp_path, lan, "s3cret")}["rasa"].args
    assert "--enable-api" in with_token
    assert with_token[with_token.index("--auth-token") + 1] == "s3cret"

    local = {s.name: s for s in demo_module.services(5005, 5055, 8000, tmp_path)}["rasa"].args
    assert local[local.index("--interface") + 1] == "127.0.0.1"
    assert "--enable-api" not in local
    assert local[local.index("--cors") + 1 :] == ["http://127.0.0.1:8000", "http://localhost:8000"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_the_demo_refuses_to_listen_on_every_interface(host: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEMO_HOST": host}
    result = subprocess.run([sys.executable, "-m", "northwind"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--host/DEMO_HOST must be one address" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


LAUNCHER = textwrap.dedent("""
    import sys, threading
    from northwind.processes import popen_tied
    children = [popen_tied([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)]
    # From a thread that ends at once: PR_SET_PDEATHSIG follows the forking *thread*.
    thread = threading.Thread(target=lambda: children.append(
        popen_tied([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)))
    thread.start()
    thread.join()
    print(" ".join(str(c.pid) for c in children), flush=True)
    sys.stdin.read()
""")


def test_tied_children_outlive_their_forking_thread_and_die_with_the_process() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    children: Dict[int, int] = {}
    try:
        pids = [int(pid) for pid in launcher.stdout.readline().split()]
        assert len(pids) == 2
        children = {pid: identity[1] for pid in pids if (identity := process_identity(pid))}
        assert len(children) == 2
        # The thread that asked for the second child has ended; the child must not die with it.
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            assert len(still_running(children)) == 2, "a child died with the thread that asked for it"
            time.sleep(0.05)
        launcher.kill()
        launcher.wait(10)
        wait_for(lambda: not still_running(children), 30, "the children to die with their parent", interval=0.1)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in still_running(children):
            os.killpg(pid, signal.SIGKILL)


def test_a_tied_child_of_the_main_thread_is_an_ordinary_popen() -> None:
    child = popen_tied([sys.executable, "-c", "print('ok')"], stdout=subprocess.PIPE, text=True)
    assert child.communicate(timeout=30)[0].strip() == "ok"
    assert child.returncode == 0
