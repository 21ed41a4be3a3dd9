"""Twilio HTTP clients that send the SDK's requests to the Flex sandbox when `TWILIO_API_BASE` is set.

The SDK builds `https://<sub>.twilio.com/<path>`; the sandbox serves it at `<base>/<sub>/<path>`.
With no base the clients behave exactly like the SDK's own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientSession
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from rasa_flex_handoff.settings import Settings

_TWILIO_SUFFIX = ".twilio.com"


def map_url(url: str, api_base: Optional[str]) -> str:
    """Rewrite a twilio.com URL onto the sandbox base; other URLs pass through untouched."""
    if not api_base:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.endswith(_TWILIO_SUFFIX):
        return url
    sub = host[: -len(_TWILIO_SUFFIX)]
    base = urlsplit(api_base.rstrip("/"))
    path = f"{base.path}/{sub}{parts.path}"
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


class SandboxHttpClient(TwilioHttpClient):
    """The SDK's `requests` client, pointed at `api_base` when one is given."""

    def __init__(self, api_base: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_base = api_base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, map_url(url, self.api_base), *args, **kwargs)


class AsyncSandboxHttpClient(AsyncTwilioHttpClient):
    """The SDK's `aiohttp` client, pointed at `api_base`, with one session per event loop."""

    def __init__(self, api_base: Optional[str] = None, timeout: Optional[float] = None) -> None:
        # No session yet: an aiohttp session must be created inside the loop that uses it.
        super().__init__(pool_connections=False, timeout=timeout)
        self.api_base = api_base
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.session: Optional[ClientSession] = None

    def _session_for_loop(self) -> ClientSession:
        loop = asyncio.get_running_loop()
        if self.session is None or self._loop is not loop or self.session.closed:
            self.session = ClientSession()
            self._loop = loop
        return self.session

    async def request(
        self,
        method: str,
        url: str,
        params: Optional[Dict[str, object]] = None,
        data: Optional[Dict[str, object]] = None,
        headers: Optional[Dict[str, str]] = None,
        auth: Optional[Tuple[str, str]] = None,
        timeout: Optional[float] = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._session_for_loop()
        return await super().request(
            method,
            map_url(url, self.api_base),
            params,
            data,
            headers,
            auth,
            timeout if timeout is not None else self.timeout,
            allow_redirects,
        )


def twilio_client(settings: Settings, asynchronous: bool = False) -> Client:
    """A real `twilio.rest.Client` for these settings (API key when available, else the auth token)."""
    http_client = (
        AsyncSandboxHttpClient(settings.api_base, timeout=settings.twilio_timeout)
        if asynchronous
        else SandboxHttpClient(settings.api_base, timeout=settings.twilio_timeout)
    )
    if settings.api_key and settings.api_secret:
        return Client(settings.api_key, settings.api_secret, settings.account_sid, http_client=http_client)
    return Client(settings.account_sid, settings.auth_token, http_client=http_client)
