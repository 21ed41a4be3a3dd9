"""Start the project's server processes, wait until they answer, and stop them cleanly."""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]  # the repository: the demo runs the Northwind assistant from it
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessExited(RuntimeError):
    """A server process ended while something waited for it: no point in waiting any longer."""


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds.

    The condition may raise until it holds, except `ProcessExited`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except ProcessExited:
            raise
        except Exception as e:  # noqa: BLE001 - the condition may fail until the server is up
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return 200 <= r.status < 300


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on `host` (an IPv4 or IPv6 address, or a name) and `port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Optional[Callable[[], None]]:
    """A preexec_fn that makes Linux send the child SIGTERM when its parent dies, or None elsewhere.

    This covers what no `finally` can: the launcher killed with SIGKILL, by the OOM killer, or
    crashing. Without it the children, in their own sessions, keep running and holding the ports.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, between fork and exec
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


_spawn_requests: queue.Queue[tuple] = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: Optional[threading.Thread] = None


def _spawner_loop() -> None:
    while True:
        future, args, kwargs = _spawn_requests.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(subprocess.Popen(args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)


def popen_tied(args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen for a child that dies with this process (Linux; elsewhere a plain Popen).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. So a
    call from any thread but the main one is forked from one long-lived daemon thread instead,
    which lasts as long as the process.
    """
    preexec = _die_with_parent()
    if preexec is None:
        return subprocess.Popen(args, **kwargs)
    kwargs["preexec_fn"] = preexec
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(args, **kwargs)
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawner_loop, name="popen-tied-spawner", daemon=True)
            _spawner.start()
    future: concurrent.futures.Future[subprocess.Popen] = concurrent.futures.Future()
    _spawn_requests.put((future, list(args), kwargs))
    return future.result()


class ServerProcess:
    """A subprocess with its output in a log file, stopped with SIGTERM (then SIGKILL).

    It runs in its own session (so `stop` can signal its whole process group, and a Ctrl-C in the
    terminal reaches only the launcher, which stops it), and gets SIGTERM when its launcher dies.
    """

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

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = popen_tied(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()  # the child has its own copy

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise ProcessExited(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return self.health() if self.health is not None else http_ok(self.health_url)

        where = self.health_url or "its health check"
        try:
            wait_for(healthy, self.startup_timeout, f"{self.name} at {where}", interval=0.2)
        except ProcessExited as e:
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
