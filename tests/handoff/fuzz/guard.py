"""What every fuzz example and the webhook storm check: the server is alive, logged no traceback, and a bystander is untouched.

The bystander is a visitor handed off to an agent for the whole module. Nothing the fuzz sends
is for them, so any payload they receive or any event added to their tracker is a delivery to
the wrong visitor.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import requests
import socketio

from northwind.processes import wait_for
from northwind.servers import Stack
from tests.handoff.conftest import Visitor, handed_off

# What a handler failure leaves in the Rasa server's log (Sanic's 500s, a socket.io handler task that raised).
FAILURE_MARKS = ("Traceback (most recent call last)", "Exception occurred while handling", "Task exception was never retrieved")


WEBSOCKET_CLOSED = re.compile(
    r"[^\n]*Exception occurred while handling uri: 'ws://[^']*'\nTraceback \(most recent call last\):\n(?:  [^\n]*\n)*"
    r"sanic\.exceptions\.ServerError: Invalid response type None \(need HTTPResponse\)\n"
)


class LogWatch:
    """New lines of a server's log since the last look (by byte offset: the log only grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", errors="replace")
        self.offset += len(text.encode("utf-8", errors="replace"))
        return text

    def failures(self) -> str:
        """The new log text when it holds a traceback or handler failure, else ''.

        Sanic 21.12 logs every websocket that closes (a client leaving, or one the server dropped
        for an oversized frame) as a ServerError on the socket.io URI: that is no failure.
        """
        text = self.new()
        rest = WEBSOCKET_CLOSED.sub("", text)
        return text if any(mark in rest for mark in FAILURE_MARKS) else ""


class Bystander:
    """A visitor handed off to an agent (who accepted) while fuzz traffic hits the server."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.visitor = Visitor(stack.url)
        self.task = handed_off(stack, self.visitor)
        stack.sandbox.accept(self.task["sid"])
        self.visitor.wait_for(lambda m: m.get("event") == "agent_joined", "bystander's agent joined")
        # The join is recorded before it is emitted; let the tracker settle before the snapshot.
        self.events = wait_for(self._settled, 10, "bystander tracker settled")
        self.received = len(self.visitor.messages)

    def _settled(self) -> Optional[List[Dict[str, Any]]]:
        events = self.tracker_events()
        joined = any(((e.get("metadata") or {}).get("handoff") or {}).get("event") == "agent_joined" for e in events)
        return events if joined else None

    @property
    def session_id(self) -> str:
        assert self.visitor.session_id
        return self.visitor.session_id

    @property
    def channel_sid(self) -> str:
        return self.task["channel_sid"]

    def tracker_events(self) -> List[Dict[str, Any]]:
        return self.stack.tracker(self.session_id)["events"]

    def unexpected(self) -> Tuple[List[Dict[str, Any]], int]:
        """Payloads the bystander got since the snapshot, and how many events their tracker gained."""
        return list(self.visitor.messages)[self.received :], len(self.tracker_events()) - len(self.events)

    def close(self) -> None:
        self.visitor.close()


class Guard:
    """After each example: the server answers, logged no failure, and the bystander got nothing."""

    def __init__(self, stack: Stack, bystander: Bystander) -> None:
        self.stack = stack
        self.bystander = bystander
        assert stack.rasa is not None
        self.log = LogWatch(stack.rasa.log_path)

    def begin(self) -> None:
        """Start an example: log lines of an earlier example (already reported, if it failed) are not this one's."""
        self.log.new()

    def check(self, what: Any = None, tracker: bool = True) -> None:
        assert self.stack.rasa is not None and self.stack.rasa.proc is not None
        assert self.stack.rasa.proc.poll() is None, f"Rasa server died after {what!r}:\n{self.stack.rasa.tail()}"
        health = requests.get(f"{self.stack.url}/webhooks/handoff_rest/", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}, f"health after {what!r}: {health.text}"
        failures = self.log.failures()
        assert not failures, f"the server logged a failure after {what!r}:\n{failures[-6000:]}"
        got = list(self.bystander.visitor.messages)[self.bystander.received :]
        assert got == [], f"the bystander received {got!r} after {what!r}"
        if tracker:
            gained = self.bystander.tracker_events()[len(self.bystander.events) :]
            assert gained == [], f"the bystander's tracker gained {gained!r} after {what!r}"


class RawSocket:
    """A socket.io client that emits whatever it is given (any event, any number and kind of arguments)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: List[Tuple[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sio = socketio.AsyncClient(reconnection=False)

        @self.sio.on("*")
        async def any_event(event: str, *data: Any) -> None:
            self.received.append((event, data))

        self.connect()

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self) -> None:
        """(Re)connect: a server may drop a client that sent something it could not read."""
        if not self.sio.connected:
            self._run(self.sio.connect(self.url, socketio_path="/socket.io", transports=["websocket"]), 15)

    def call(self, event: str, args: Tuple[Any, ...], timeout: float) -> Any:
        """Emit and wait for the server's acknowledgement: it comes once the handler has returned (TimeoutError: it failed)."""
        try:
            return self._run(self.sio.call(event, args, timeout=timeout), timeout + 5)
        except socketio.exceptions.TimeoutError:
            raise TimeoutError(f"no acknowledgement of {event!r}") from None

    def handled(self, event: str, args: Tuple[Any, ...], log: LogWatch, timeout: float) -> str:
        """Emit and wait until the server acknowledges it or drops us ('') or logs a failure (the log text).

        A handler that raised never acknowledges; waiting for the log instead of the timeout keeps
        a failing example (and Hypothesis's shrinking of it) fast.
        """
        done = threading.Event()
        self._run(self.sio.emit(event, args, callback=lambda *_: done.set()), 15)
        failure = ""

        def finished() -> bool:
            nonlocal failure
            failure = log.failures()
            # Not connected any more: the server dropped a client whose frame was over its size limit (1 MB).
            return done.is_set() or bool(failure) or not self.sio.connected

        wait_for(finished, timeout, f"acknowledgement of {event!r}", interval=0.02)
        return failure

    def emit(self, event: str, args: Tuple[Any, ...]) -> None:
        self._run(self.sio.emit(event, args), 15)

    def close(self) -> None:
        try:
            if self.sio.connected:
                self._run(self.sio.disconnect(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
