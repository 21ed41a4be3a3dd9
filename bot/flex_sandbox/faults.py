"""Fault injection: make chosen Twilio routes fail or stall so callers' error handling meets real HTTP failures."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from sanic.response import HTTPResponse

from flex_sandbox.wire import error_response

log = logging.getLogger(__name__)

DEFAULT_CODES = {400: 20001, 401: 20003, 403: 20403, 404: 20404, 429: 20429, 500: 20500, 502: 20502, 503: 20503, 504: 20504}
_ids = itertools.count(1)


class FaultSpecError(ValueError):
    """A fault rule that cannot be used."""


@dataclass
class Fault:
    """One rule: requests whose path matches `path_regex` (and method) get `delay` seconds and/or an error."""

    path_regex: str
    method: Optional[str] = None
    status: Optional[int] = None
    delay: float = 0.0
    times: Optional[int] = 1
    code: Optional[int] = None
    message: str = "Injected fault (Flex sandbox)"
    when: str = "before"
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        try:
            self.pattern = re.compile(self.path_regex)
        except (re.error, TypeError) as e:
            raise FaultSpecError(f"path_regex is not a valid regular expression: {e}") from None

    @classmethod
    def from_json(cls, spec: Any) -> Fault:
        """Validate a rule posted to /sandbox/faults."""
        if not isinstance(spec, dict):
            raise FaultSpecError("expected a JSON object")
        unknown = set(spec) - {"path_regex", "method", "status", "delay", "times", "code", "message", "when"}
        if unknown:
            raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
        if not isinstance(spec.get("path_regex"), str) or not spec["path_regex"]:
            raise FaultSpecError("path_regex is required")
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise FaultSpecError("status must be an HTTP error status (400-599) or null")
        delay = spec.get("delay", 0)
        if not isinstance(delay, (int, float)) or not 0 <= delay <= 300:
            raise FaultSpecError("delay must be a number of seconds between 0 and 300")
        times = spec.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultSpecError("times must be a positive integer or null (until cleared)")
        if status is None and not delay:
            raise FaultSpecError("a fault needs a status, a delay, or both")
        when = spec.get("when", "before")
        if when not in ("before", "after"):
            raise FaultSpecError("when must be 'before' (request not processed) or 'after' (processed, then fails)")
        method = spec.get("method")
        return cls(
            path_regex=spec["path_regex"],
            method=method.upper() if isinstance(method, str) else None,
            status=status,
            delay=float(delay),
            times=times,
            code=spec.get("code") if isinstance(spec.get("code"), int) else None,
            message=str(spec.get("message") or cls.message),
            when=when,
        )

    def to_json(self) -> Dict[str, Any]:
        """The rule as the control API shows it."""
        return {
            "id": self.id,
            "path_regex": self.path_regex,
            "method": self.method,
            "status": self.status,
            "delay": self.delay,
            "times": self.times,
            "code": self.code,
            "message": self.message,
            "when": self.when,
            "hits": self.hits,
        }

    async def apply(self) -> Optional[HTTPResponse]:
        """Wait the delay, then return the error response (None: let the request through)."""
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is None:
            return None
        return error_response(self.status, self.code or DEFAULT_CODES.get(self.status, 20500), self.message)


class Faults:
    """The active rules, first match wins; a rule with `times` expires after that many hits."""

    def __init__(self) -> None:
        self.rules: List[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Arm a rule."""
        self.rules.append(fault)
        log.info(
            "fault %d armed: %s %s -> status %s delay %.1fs times %s",
            fault.id,
            fault.method or "*",
            fault.path_regex,
            fault.status,
            fault.delay,
            fault.times,
        )
        return fault

    def clear(self) -> int:
        """Disarm every rule; returns how many there were."""
        count = len(self.rules)
        self.rules.clear()
        return count

    def remove(self, fault_id: int) -> bool:
        """Disarm one rule; False when it was not armed."""
        before = len(self.rules)
        self.rules = [f for f in self.rules if f.id != fault_id]
        return len(self.rules) < before

    def take(self, method: str, path: str) -> Optional[Fault]:
        """The first rule matching this request, counting the hit."""
        for fault in self.rules:
            if fault.method and fault.method != method.upper():
                continue
            if not fault.pattern.search(path):
                continue
            fault.hits += 1
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.rules.remove(fault)
            log.info("fault %d hit by %s %s", fault.id, method, path)
            return fault
        return None
