"""`make demo`: start the Flex sandbox, action server, Rasa server and the demo shop, then wait for Ctrl-C.

Everything listens on 127.0.0.1 unless `--host` (DEMO_HOST) names another address of this machine,
e.g. its LAN address for a demo other machines can open. Rasa's HTTP API (trackers, models) is
off: nothing in the demo uses it. With RASA_AUTH_TOKEN set it is on, and every call needs the token.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from flex_sandbox.credentials import DEFAULT_PORT as SANDBOX_PORT
from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import ROOT, VENV_BIN, ServerProcess, http_ok, popen_tied, port_in_use

MODELS_DIR = ROOT / "models"
DOTENV = ROOT / ".env"
DEFAULT_HOST = "127.0.0.1"


def load_dotenv(path: Path = DOTENV) -> None:
    """Fill os.environ from the demo's `.env` without overriding what the shell already set.

    Only the demo launcher reads `.env`; the plugin itself reads the environment it is given.
    """
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def sandbox_port() -> int:
    return int(os.environ.get("FLEX_SANDBOX_PORT") or SANDBOX_PORT)


def use_sandbox_unless_configured(host: str) -> None:
    """The demo's embedded defaults: with no Twilio account configured, the local sandbox and its
    development credentials. Real credentials (TWILIO_ACCOUNT_SID) without TWILIO_API_BASE mean real Twilio."""
    if os.environ.get("TWILIO_ACCOUNT_SID", "").strip() or os.environ.get("TWILIO_API_BASE", "").strip():
        return
    os.environ["TWILIO_API_BASE"] = f"http://{url_host(host)}:{sandbox_port()}"
    for key, value in DEVELOPMENT.as_env().items():
        os.environ[key] = value


def url_host(host: str) -> str:
    """`host` as it goes into a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


@dataclass
class Service:
    name: str
    host: str
    port: int
    args: List[str]
    health_path: str
    open_path: str = ""
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"


def demo_endpoints(state_dir: Path, actions_port: int, host: str = DEFAULT_HOST) -> Path:
    """endpoints.yml with the demo's action server address and the SQLite tracker file under `state_dir`."""
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text())
    endpoints["action_endpoint"]["url"] = f"http://{url_host(host)}:{actions_port}/webhook"
    store = endpoints.get("tracker_store") or {}
    if store.get("dialect") == "sqlite":
        store["db"] = str(state_dir / "rasa-trackers.db")
    path = state_dir / "endpoints.yml"
    path.write_text(yaml.safe_dump(endpoints, sort_keys=False))
    return path


def shop_origins(host: str, shop_port: int) -> List[str]:
    """The origins the shop page is served from: the only ones Rasa answers cross-origin requests for."""
    hosts = [url_host(host)] + (["127.0.0.1", "localhost"] if is_loopback(host) else [])
    return list(dict.fromkeys(f"http://{h}:{shop_port}" for h in hosts))


def rasa_args(host: str, port: int, state_dir: Path, shop_port: int, auth_token: Optional[str]) -> List[str]:
    """`rasa run` for the demo. The widget needs socket.io and the history webhook, with CORS for
    the shop page (another port, so another origin), not the HTTP API: that is only enabled with a
    token, so no one reads or writes trackers without it, on the network or from a web page."""
    args = [
        str(VENV_BIN / "rasa"),
        "run",
        "-m",
        str(MODELS_DIR),
        "--interface",
        host,
        "--port",
        str(port),
        "--credentials",
        "credentials.yml",
        "--endpoints",
        str(state_dir / "endpoints.yml"),
        "--cors",
        *shop_origins(host, shop_port),
    ]
    if auth_token:
        args += ["--enable-api", "--auth-token", auth_token]
    return args


def services(
    rasa_port: int, actions_port: int, shop_port: int, state_dir: Path, host: str = DEFAULT_HOST, auth_token: Optional[str] = None
) -> List[Service]:
    """What the demo runs, in start order, every server listening on `host` only."""
    python = sys.executable
    found: List[Service] = []
    if os.environ.get("TWILIO_API_BASE", "").strip():
        found.append(
            Service("flex-sandbox", host, sandbox_port(), [python, "-m", "flex_sandbox", "--host", host], "/health", "/agent")
        )
    # rasa-sdk 3.6 has no --interface option; it binds to SANIC_HOST (default 0.0.0.0).
    found.append(
        Service(
            "action-server",
            host,
            actions_port,
            [str(VENV_BIN / "rasa"), "run", "actions", "--port", str(actions_port)],
            "/health",
            env={"SANIC_HOST": host},
        )
    )
    found.append(Service("rasa", host, rasa_port, rasa_args(host, rasa_port, state_dir, shop_port, auth_token), "/"))
    rasa_url = f"http://{url_host(host)}:{rasa_port}"
    found.append(
        Service(
            "shop",
            host,
            shop_port,
            [python, "-m", "northwind.widget", "--host", host, "--port", str(shop_port), "--rasa-url", rasa_url],
            "/health",
            "/",
        )
    )
    return found


def train_if_needed() -> None:
    """Train once; Rasa's fingerprinting makes this a no-op when nothing changed."""
    print("==> checking the model (trains only if the data changed)", flush=True)
    training = popen_tied(
        [str(VENV_BIN / "rasa"), "train", "--fixed-model-name", "northwind", "--out", str(MODELS_DIR)],
        cwd=ROOT,
    )
    try:
        code = training.wait()
    except BaseException:
        training.terminate()  # Ctrl-C: stop it with us (a launcher killed outright takes it along anyway)
        training.wait()
        raise
    if code != 0:
        raise subprocess.CalledProcessError(code, training.args)


def main() -> int:
    """Start everything, print where to look, and stop it all on Ctrl-C."""
    load_dotenv()  # before the defaults below, so .env wins over them (the shell's variables win over .env)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--host",
        default=os.environ.get("DEMO_HOST", DEFAULT_HOST),
        help="the one address every server listens on and the URLs use (default: DEMO_HOST or "
        "127.0.0.1); for a demo other machines can open, this machine's LAN address",
    )
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    parser.add_argument("--actions-port", type=int, default=int(os.environ.get("ACTIONS_PORT", 5055)))
    parser.add_argument("--shop-port", type=int, default=int(os.environ.get("SHOP_PORT", 8000)))
    parser.add_argument(
        "--state-dir", type=Path, default=ROOT / "var", help="logs, the sandbox database and the tracker store (default: var/)"
    )
    args = parser.parse_args()
    host: str = args.host.strip()
    if is_wildcard(host):
        print(
            f"!! --host/DEMO_HOST must be one address of this machine that browsers can open "
            f"(127.0.0.1, or e.g. its LAN address), not {host or 'empty'}",
            file=sys.stderr,
        )
        return 2
    auth_token = os.environ.get("RASA_AUTH_TOKEN", "").strip() or None
    state_dir: Path = args.state_dir.resolve()
    log_dir = state_dir / "log"
    # Every child sees the same addresses: the plugin finds the sandbox and its own public URL from these.
    os.environ.setdefault("PUBLIC_URL", f"http://{url_host(host)}:{args.rasa_port}")
    os.environ.setdefault("FLEX_SANDBOX_DB", str(state_dir / "flex-sandbox.db"))
    os.environ.setdefault("HANDOFF_SURVEY", "on")  # the demo shows the survey after the agent chat (.env can turn it off)
    use_sandbox_unless_configured(host)

    plan = services(args.rasa_port, args.actions_port, args.shop_port, state_dir, host, auth_token)
    busy = [s for s in plan if port_in_use(s.port, host)]
    if busy:
        for s in busy:
            ours = _answers(s)
            what = f"{s.name} is already running at {s.url}" if ours else f"port {s.port} ({s.name}) is taken by another program"
            print(f"!! {what}", file=sys.stderr)
        print("!! Stop the running demo (Ctrl-C in its terminal) or free the ports, then run `make demo` again.", file=sys.stderr)
        return 1

    train_if_needed()
    log_dir.mkdir(parents=True, exist_ok=True)
    demo_endpoints(state_dir, args.actions_port, host)
    running: List[ServerProcess] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for s in plan:
            print(f"==> starting {s.name} on {s.url} (log: {log_dir / (s.name + '.log')})", flush=True)
            running.append(ServerProcess(s.name, s.args, s.url + s.health_path, log_dir, env=s.env, startup_timeout=300).start())
        print("\nEverything is up:")
        for s in plan:
            print(f"  {s.name:14s} {s.url}{s.open_path}")
        if auth_token:
            print("\nRasa's HTTP API is on: every call needs ?token=<RASA_AUTH_TOKEN>.")
        print("\nOpen the shop page and the agent desktop side by side. Ctrl-C stops everything.", flush=True)
        while not stop.wait(1):
            for p in running:
                if p.proc.poll() is not None:
                    print(f"!! {p.name} exited ({p.proc.returncode}); last lines of its log:\n{p.tail(20)}", file=sys.stderr)
                    return 1
    except KeyboardInterrupt:
        pass
    except AssertionError as e:
        print(f"!! {e}", file=sys.stderr)
        return 1
    finally:
        print("\n==> stopping", flush=True)
        for p in reversed(running):
            p.stop()
    return 0


def _answers(s: Service) -> bool:
    try:
        return http_ok(s.url + s.health_path)
    except Exception:  # noqa: BLE001 - anything else on the port is "not ours"
        return False


if __name__ == "__main__":
    sys.exit(main())
