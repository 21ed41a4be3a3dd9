"""Start the project's server processes, wait until they answer, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - the condition may fail until the server is up
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return 200 <= r.status < 300


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class ServerProcess:
    """A subprocess with its output in a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        health_url: Optional[str],
        log_dir: Path,
        env: Optional[Mapping[str, str]] = None,
        cwd: Path = ROOT,
        startup_timeout: float = 180,
        health: Optional[Callable[[], bool]] = None,
    ) -> None:
        """Healthy when `health_url` answers 2xx, or, for servers that speak no HTTP, when `health()` is truthy."""
        if (health_url is None) == (health is None):
            raise ValueError("give exactly one of health_url and health")
        self.name = name
        self.args = list(args)
        self.health_url = health_url
        self.health = health
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return self.health() if self.health is not None else http_ok(self.health_url)

        where = self.health_url or "its health check"
        try:
            wait_for(healthy, self.startup_timeout, f"{self.name} at {where}", interval=0.2)
        except RuntimeError as e:
            # A crashed process is not worth polling further: surface its log.
            raise AssertionError(str(e)) from None
        except TimeoutError as e:
            self.stop()
            raise AssertionError(f"{e}\n--- {self.name} log ---\n{self.tail()}") from None
        return self

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
