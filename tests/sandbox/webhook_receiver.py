"""A local webhook receiver for tests: records Twilio webhooks and checks X-Twilio-Signature with the SDK's validator."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

from northwind.processes import free_port


@dataclass
class Received:
    """One webhook request as it arrived."""

    method: str
    url: str
    params: Dict[str, str]
    headers: Dict[str, str]
    signature_valid: bool
    body: str = ""  # the raw form body exactly as posted (GET: empty; the fields are in the URL)


@dataclass
class _Plan:
    statuses: List[int] = field(default_factory=list)  # answered in turn, then 200
    delays: List[float] = field(default_factory=list)  # seconds to stall, in turn
    gate: Optional[threading.Event] = None  # the next request waits until the test sets it


class WebhookReceiver:
    """Threaded HTTP server; each test uses its own path (`url(name)`) and reads what arrived there."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.port = free_port()
        self._lock = threading.Lock()
        self._received: Dict[str, List[Received]] = {}
        self._plans: Dict[str, _Plan] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                url = f"http://127.0.0.1:{receiver.port}{self.path}"
                parts = urlsplit(self.path)
                if self.command == "GET":
                    params: Dict[str, str] = {}
                    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
                else:
                    params = dict(parse_qsl(body, keep_blank_values=True))
                    fields = params
                valid = receiver.validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
                name = parts.path.rsplit("/", 1)[-1]
                status, delay, gate = receiver._next(name)
                if gate is not None:
                    gate.wait(10)
                if delay:
                    time.sleep(delay)
                with receiver._lock:
                    receiver._received.setdefault(name, []).append(
                        Received(self.command, url, fields, dict(self.headers.items()), valid, body)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _handle
            do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, name: str) -> str:
        """The webhook URL for one test's receiver path."""
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def plan(self, name: str, statuses: Optional[List[int]] = None, delays: Optional[List[float]] = None) -> None:
        """Answer the next requests on `name` with these statuses / stalls (afterwards: 200 at once)."""
        with self._lock:
            self._plans[name] = _Plan(list(statuses or []), list(delays or []))

    def hold(self, name: str) -> threading.Event:
        """Make the next request on `name` wait until the returned event is set (at most 10 s)."""
        gate = threading.Event()
        with self._lock:
            self._plans.setdefault(name, _Plan()).gate = gate
        return gate

    def _next(self, name: str) -> Tuple[int, float, Optional[threading.Event]]:
        with self._lock:
            plan = self._plans.get(name)
            if plan is None:
                return 200, 0.0, None
            status = plan.statuses.pop(0) if plan.statuses else 200
            delay = plan.delays.pop(0) if plan.delays else 0.0
            gate, plan.gate = plan.gate, None
            return status, delay, gate

    def received(self, name: str) -> List[Received]:
        with self._lock:
            return list(self._received.get(name, []))

    def wait(self, name: str, count: int, timeout: float = 10.0) -> List[Received]:
        """Block until at least `count` requests arrived on `name`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(name)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise TimeoutError(
            f"expected {count} webhooks on {name}, got {len(self.received(name))}: "
            f"{[r.params.get('EventType') for r in self.received(name)]}"
        )

    def events(self, name: str) -> List[str]:
        return [r.params.get("EventType", "") for r in self.received(name)]
