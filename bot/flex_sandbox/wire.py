"""Twilio's wire conventions: SIDs, dates, error bodies, form parameters and list envelopes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlencode

from sanic import response
from sanic.response import HTTPResponse

HOSTS = {"flex-api", "chat", "conversations", "mcs.us1", "taskrouter"}  # mcs.us1: the Media Content Service
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix plus 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def now_iso() -> str:
    """The current time the way these APIs print it (ISO 8601, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def twilio_url(sub: str, path: str) -> str:
    """The absolute twilio.com URL a resource has on the real service (the SDK maps it back)."""
    return f"https://{sub}.twilio.com{path}"


class TwilioError(Exception):
    """An error the sandbox answers with Twilio's error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_response(self) -> HTTPResponse:
        """Twilio's error JSON with this error's status."""
        return error_response(self.status, self.code, self.message)


def reply(body: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> HTTPResponse:
    """A JSON response encoded like Twilio's (no escaped slashes)."""
    return response.json(body, status=status, headers=headers, dumps=_dumps)


def _dumps(body: Any, **kwargs: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def error_response(status: int, code: int, message: str) -> HTTPResponse:
    """Twilio's error body: code, message, more_info, status."""
    return reply(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status=status,
    )


def not_found(what: str = "The requested resource ", sid: str = "") -> TwilioError:
    """Twilio's 404 / 20404."""
    return TwilioError(404, 20404, f"{what}{sid} was not found")


def invalid(message: str, code: int = 20001) -> TwilioError:
    """Twilio's 400 for a missing or invalid parameter."""
    return TwilioError(400, code, message)


class Form:
    """Form-encoded parameters as Twilio reads them: repeated keys are lists."""

    def __init__(self, values: Mapping[str, List[str]]) -> None:
        self.values = dict(values)

    @classmethod
    def parse(cls, body: bytes) -> Form:
        """Parse an x-www-form-urlencoded body (invalid UTF-8 is a 400)."""
        try:
            text = body.decode("utf-8") if body else ""
        except UnicodeDecodeError:
            raise invalid("Request body is not valid UTF-8") from None
        return cls(parse_qs(text, keep_blank_values=True))

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The last value sent for `key`."""
        items = self.values.get(key)
        return items[-1] if items else default

    def required(self, key: str) -> str:
        """A parameter that must be present and non-empty."""
        value = self.get(key)
        if value is None or value == "":
            raise invalid(f"Missing required parameter {key} in the post body")
        return value

    def list(self, key: str) -> List[str]:
        """Every value sent for `key`."""
        return list(self.values.get(key, []))

    def boolean(self, key: str, default: Optional[bool] = None) -> Optional[bool]:
        """A Twilio boolean (`true`/`false`)."""
        value = self.get(key)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise invalid(f"Invalid boolean value for {key}: {value!r}")

    def integer(self, key: str, minimum: int, maximum: int) -> Optional[int]:
        """An integer parameter within bounds."""
        value = self.get(key)
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise invalid(f"Invalid integer value for {key}: {value!r}") from None
        if not minimum <= number <= maximum:
            raise invalid(f"{key} must be between {minimum} and {maximum}")
        return number

    def json_text(self, key: str, limit: int = 16384) -> Optional[str]:
        """A parameter that must hold JSON (Attributes, PreEngagementData)."""
        value = self.get(key)
        if value is None:
            return None
        if len(value) > limit:
            raise invalid(f"{key} is larger than {limit} characters")
        if value == "":
            return "{}"
        try:
            json.loads(value)
        except ValueError:
            raise invalid(f"{key} is not valid JSON") from None
        return value


class Paging:
    """Twilio list paging: PageSize, Page, PageToken, and the meta envelope the SDK follows."""

    def __init__(self, args: Mapping[str, List[str]]) -> None:
        form = Form(args)
        self.page_size = form.integer("PageSize", 1, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        self.page = form.integer("Page", 0, 10**7) or 0
        token = form.get("PageToken")
        self.offset = self.page * self.page_size
        if token:
            if not (token.startswith("PO") and token[2:].isdigit()):
                raise invalid(f"Invalid PageToken {token!r}")
            self.offset = int(token[2:])
        self.filters = {k: v for k, v in args.items() if k not in ("PageSize", "Page", "PageToken")}

    def envelope(self, key: str, sub: str, path: str, items: Sequence[Dict[str, Any]], has_more: bool) -> Dict[str, Any]:
        """The list body: items under `key` plus `meta` with page URLs."""

        def page_url(page: int, offset: Optional[int]) -> str:
            query: List[Tuple[str, str]] = [(k, v) for k, vs in self.filters.items() for v in vs]
            query += [("PageSize", str(self.page_size)), ("Page", str(page))]
            if offset:
                query.append(("PageToken", f"PO{offset}"))
            return twilio_url(sub, path) + "?" + urlencode(query)

        next_url = page_url(self.page + 1, self.offset + self.page_size) if has_more else None
        prev_url = page_url(self.page - 1, max(self.offset - self.page_size, 0)) if self.page > 0 else None
        return {
            key: list(items),
            "meta": {
                "page": self.page,
                "page_size": self.page_size,
                "first_page_url": page_url(0, None),
                "previous_page_url": prev_url,
                "url": page_url(self.page, self.offset),
                "next_page_url": next_url,
                "key": key,
            },
        }
