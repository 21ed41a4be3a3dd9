"""`make demo`: start the Flex sandbox, action server, Rasa server and the demo shop, then wait for Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List

import yaml

from bot.processes import ROOT, ServerProcess, VENV_BIN, http_ok, port_in_use
from bot.settings import load_dotenv, settings_from_env

MODELS_DIR = ROOT / "models"


@dataclass
class Service:
    name: str
    port: int
    args: List[str]
    health_path: str
    open_path: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def demo_endpoints(state_dir: Path, actions_port: int) -> Path:
    """endpoints.yml with the demo's action server port and the SQLite tracker file under `state_dir`."""
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text())
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    store = endpoints.get("tracker_store") or {}
    if store.get("dialect") == "sqlite":
        store["db"] = str(state_dir / "rasa-trackers.db")
    path = state_dir / "endpoints.yml"
    path.write_text(yaml.safe_dump(endpoints, sort_keys=False))
    return path


def services(rasa_port: int, actions_port: int, shop_port: int, state_dir: Path) -> List[Service]:
    """What the demo runs, in start order."""
    settings = settings_from_env()
    python = sys.executable
    rasa = str(VENV_BIN / "rasa")
    found: List[Service] = []
    if settings.uses_sandbox:
        found.append(Service("flex-sandbox", settings.sandbox_port, [python, "-m", "bot.sandbox"], "/health", "/agent"))
    found.append(Service("action-server", actions_port, [rasa, "run", "actions", "--port", str(actions_port)], "/health"))
    found.append(
        Service(
            "rasa",
            rasa_port,
            [rasa, "run", "--enable-api", "--cors", "*", "-m", str(MODELS_DIR), "--port", str(rasa_port),
             "--credentials", "credentials.yml", "--endpoints", str(state_dir / "endpoints.yml")],
            "/status",
        )
    )
    found.append(
        Service("shop", shop_port, [python, "-m", "bot.widget", "--port", str(shop_port),
                                    "--rasa-url", f"http://127.0.0.1:{rasa_port}"], "/health", "/")
    )
    return found


def train_if_needed() -> None:
    """Train once; Rasa's fingerprinting makes this a no-op when nothing changed."""
    print("==> checking the model (trains only if the data changed)", flush=True)
    subprocess.run(
        [str(VENV_BIN / "rasa"), "train", "--fixed-model-name", "northwind", "--out", str(MODELS_DIR)],
        cwd=ROOT, check=True,
    )


def main() -> int:
    """Start everything, print where to look, and stop it all on Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    parser.add_argument("--actions-port", type=int, default=int(os.environ.get("ACTIONS_PORT", 5055)))
    parser.add_argument("--shop-port", type=int, default=int(os.environ.get("SHOP_PORT", 8000)))
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var",
                        help="logs, the sandbox database and the tracker store (default: var/)")
    args = parser.parse_args()
    load_dotenv()  # before the defaults below, so .env wins over them
    state_dir: Path = args.state_dir.resolve()
    log_dir = state_dir / "log"
    # Every child sees the same ports: the plugin finds the sandbox and its own public URL from these.
    os.environ.setdefault("PUBLIC_URL", f"http://127.0.0.1:{args.rasa_port}")
    os.environ.setdefault("FLEX_SANDBOX_DB", str(state_dir / "flex-sandbox.db"))

    plan = services(args.rasa_port, args.actions_port, args.shop_port, state_dir)
    busy = [s for s in plan if port_in_use(s.port)]
    if busy:
        for s in busy:
            ours = _answers(s)
            what = f"{s.name} is already running at {s.url}" if ours else f"port {s.port} ({s.name}) is taken by another program"
            print(f"!! {what}", file=sys.stderr)
        print("!! Stop the running demo (Ctrl-C in its terminal) or free the ports, then run `make demo` again.",
              file=sys.stderr)
        return 1

    train_if_needed()
    log_dir.mkdir(parents=True, exist_ok=True)
    demo_endpoints(state_dir, args.actions_port)
    running: List[ServerProcess] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for s in plan:
            print(f"==> starting {s.name} on {s.url} (log: {log_dir / (s.name + '.log')})", flush=True)
            running.append(
                ServerProcess(s.name, s.args, s.url + s.health_path, log_dir, startup_timeout=300).start()
            )
        print("\nEverything is up:")
        for s in plan:
            print(f"  {s.name:14s} {s.url}{s.open_path}")
        print("\nOpen the shop page and the agent desktop side by side. Ctrl-C stops everything.", flush=True)
        while not stop.wait(1):
            for p in running:
                if p.proc.poll() is not None:
                    print(f"!! {p.name} exited ({p.proc.returncode}); last lines of its log:\n{p.tail(20)}",
                          file=sys.stderr)
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
