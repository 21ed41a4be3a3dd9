"""Outgoing webhooks as Twilio sends them: signed form POSTs, retried, ordered per channel and webhook."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import uuid
from typing import Dict, List, Mapping, Optional
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from flex_sandbox.store import AccountStore, Doc

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = float(os.environ.get("FLEX_SANDBOX_WEBHOOK_TIMEOUT", "5"))
RETRY_DELAY = float(os.environ.get("FLEX_SANDBOX_RETRY_DELAY", "1"))
CONVERSATIONS_RETRIES = 2


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 over the URL plus every param name+value sorted by name."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def matches(webhook: Doc, event_type: str) -> bool:
    """Whether a scoped webhook of type/target `webhook` subscribes to this event."""
    config = webhook.get("configuration") or {}
    kind = webhook.get("type") or webhook.get("target")
    return kind == "webhook" and bool(config.get("url")) and event_type in (config.get("filters") or [])


class WebhookDispatcher:
    """Delivers events asynchronously: one queue and worker per (channel, webhook), outbox in SQLite."""

    def __init__(self, store: AccountStore, auth_token: str) -> None:
        self.store = store
        self.auth_token = auth_token
        self._queues: Dict[str, asyncio.Queue[int]] = {}
        self._workers: Dict[str, asyncio.Task[None]] = {}
        self._session: Optional[aiohttp.ClientSession] = None
        self._closing = False

    async def start(self) -> None:
        """Open the HTTP session and resume deliveries a previous run left queued."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT))
        pending = self.store.pending_deliveries()
        if pending:
            log.info("resuming %d queued webhook deliveries", len(pending))
        for delivery_id, queue in pending:
            self._push(queue, delivery_id)

    async def stop(self) -> None:
        """Stop workers; undelivered events stay in the outbox for the next start."""
        self._closing = True
        left = sum(q.qsize() for q in self._queues.values())
        if left:
            log.warning("stopping with %d webhook deliveries queued (kept for the next start)", left)
        for task in self._workers.values():
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def enqueue(self, channel_sid: str, webhook: Doc, params: Dict[str, str], retries: int) -> int:
        """Record a delivery durably and schedule it behind earlier ones for the same channel and webhook."""
        queue = f"{channel_sid}/{webhook['sid']}"
        config = webhook["configuration"]
        delivery_id = self.store.add_delivery(
            queue,
            {
                "url": config["url"],
                "method": (config.get("method") or "POST").upper(),
                "params": params,
                "retries": retries,
                "token": str(uuid.uuid4()),
            },
        )
        self._push(queue, delivery_id)
        return delivery_id

    def _push(self, queue: str, delivery_id: int) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (provisioning); start() picks it up from the outbox
        q = self._queues.setdefault(queue, asyncio.Queue())
        q.put_nowait(delivery_id)
        worker = self._workers.get(queue)
        if worker is None or worker.done():
            self._workers[queue] = asyncio.get_running_loop().create_task(self._work(queue, q))

    async def _work(self, queue: str, q: asyncio.Queue[int]) -> None:
        while not q.empty() and not self._closing:
            delivery_id = q.get_nowait()
            doc = self.store.delivery(delivery_id)
            if doc is None:
                continue
            try:
                await self._deliver(doc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery %s failed unexpectedly", delivery_id)
            self.store.finish_delivery(delivery_id)

    async def _deliver(self, doc: Doc) -> bool:
        """POST (or GET) one event, retrying on non-2xx and timeouts; True when delivered."""
        assert self._session is not None
        retries: int = doc["retries"]
        event = doc["params"].get("EventType", "?")
        for attempt in range(retries + 1):
            params = {**doc["params"], "RetryCount": str(attempt)}
            url, body = doc["url"], None
            if doc["method"] == "GET":
                parts = urlsplit(url)
                query = "&".join(filter(None, [parts.query, urlencode(sorted(params.items()))]))
                url = urlunsplit(parts._replace(query=query))
                sign_params: Dict[str, str] = {}
            else:
                body = urlencode(params)
                sign_params = params
            headers = {
                "X-Twilio-Signature": signature(self.auth_token, url, sign_params),
                "User-Agent": "TwilioProxy/1.1",
                "I-Twilio-Idempotency-Token": doc["token"],
                "X-Home-Region": "us1",
            }
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
            try:
                # encoded=True: send the URL byte-for-byte as signed (yarl would otherwise re-quote it)
                async with self._session.request(doc["method"], URL(url, encoded=True), data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        log.info("webhook %s delivered to %s (attempt %d)", event, doc["url"], attempt + 1)
                        return True
                    reason = f"HTTP {resp.status}"
            except TimeoutError:
                reason = f"timeout after {WEBHOOK_TIMEOUT}s"
            except aiohttp.ClientError as e:
                reason = f"{type(e).__name__}: {e}"
            log.warning("webhook %s to %s failed (%s), attempt %d of %d", event, doc["url"], reason, attempt + 1, retries + 1)
            if attempt < retries:
                await asyncio.sleep(RETRY_DELAY * (attempt + 1))
        log.error("webhook %s to %s dropped after %d attempts", event, doc["url"], retries + 1)
        return False

    async def drain(self) -> None:
        """Wait until every queued delivery has been attempted (used on shutdown and in tests)."""
        while any(not t.done() for t in self._workers.values()):
            await asyncio.sleep(0.01)

    def queued(self) -> List[str]:
        """Queue names with work left, for diagnostics."""
        return [name for name, q in self._queues.items() if not q.empty()]
