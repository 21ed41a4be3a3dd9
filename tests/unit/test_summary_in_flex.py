"""The bot's summary in each Flex mode: the first message the agent reads, never a webhook, never the visitor's.

Against a real Flex sandbox process through the real `twilio` SDK, with a local HTTP server as
the chat's webhook target: the summary is posted before the visitor's opening message, by a
non-participant author, marked in its attributes, with webhooks disabled (so it neither routes
the chat nor reaches the connector); the relay's listing paths (polling, catch-up) skip it; a
refused summary does not stop the handoff, and an ambiguous failure never posts it twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any, AsyncIterator, Dict, List

import pytest
from aiohttp import web

from northwind.processes import free_port
from northwind.servers import Sandbox
from rasa_flex_handoff import agent_chat
from rasa_flex_handoff.flex import FlexChat, FlexChats, flex_chats
from rasa_flex_handoff.flex.chats import SUMMARY_AUTHOR

IDENTITY = "visitor_" + "cd" * 16
SUMMARY = "Summary from the bot\nAsked about: ask shipping\nHandoff: asked for a person\nTime with the bot: 12 s"
OPENING = "I want to talk to a human"
CONTEXT: Dict[str, Any] = {"friendlyName": "Ann", "visitor": {}, "transcript": [], "source": "rasa"}
MODES = ["conversations", "legacy", "interactions"]


@pytest.fixture(autouse=True)
def _no_leftover_faults(clean_sandbox: Sandbox) -> None:
    """Faults one test injects end with it (the session's sandbox is tests/unit/conftest.py's)."""


class Receiver:
    """The chat's webhook target: every event the sandbox posts, as forms."""

    def __init__(self) -> None:
        self.events: List[Dict[str, str]] = []
        self.url = ""

    async def wait_for(self, body: str, timeout: float = 10) -> None:
        """Until the message with `body` was posted here (webhooks of one chat come in order)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(e.get("Body") == body for e in self.events):
            assert asyncio.get_running_loop().time() < deadline, f"no webhook for {body!r}: {self.events}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def hook(request: web.Request) -> web.Response:
        found.events.append(dict(await request.post()))  # type: ignore[arg-type]
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


def chats_for(sandbox: Sandbox, mode: str) -> FlexChats:
    settings = dataclasses.replace(sandbox.settings, flex_mode=mode, twilio_timeout=2.0, twilio_retries=1)
    return flex_chats(sandbox.async_client(), settings)


async def start(chats: FlexChats, webhook_url: str) -> FlexChat:
    return await chats.start_chat(
        identity=IDENTITY,
        customer_name="Ann",
        pre_engagement_data=CONTEXT,
        webhook_url=webhook_url,
        unique_name=f"handoff-{uuid.uuid4().hex}",
        opening_message=OPENING,
        summary=SUMMARY,
    )


def messages(sandbox: Sandbox, chat: FlexChat) -> List[Any]:
    """The chat's messages, oldest first, read with the real SDK."""
    if chat.mode == "legacy":
        return list(sandbox.client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).messages.list())
    return list(sandbox.client.conversations.v1.conversations(chat.channel_sid).messages.list())


def author(message: Any) -> str:
    return str(getattr(message, "author", None) or getattr(message, "_from", None))


def fault(sandbox: Sandbox, **spec: Any) -> None:
    r = sandbox.agent("POST", "/sandbox/faults", spec)
    assert r.ok, r.text


@pytest.mark.parametrize("mode", MODES)
async def test_the_agent_reads_the_summary_first_and_no_webhook_brings_it_back(
    sandbox: Sandbox, receiver: Receiver, mode: str
) -> None:
    chats = chats_for(sandbox, mode)
    chat = await start(chats, receiver.url)
    summary, opening = messages(sandbox, chat)
    assert (summary.index, author(summary), summary.body) == (0, SUMMARY_AUTHOR, SUMMARY)
    assert json.loads(summary.attributes) == {"handoff_summary": True}
    assert (author(opening), opening.body) == (chat.identity, OPENING)

    # Webhooks of a chat arrive in order: once the opening message's has, the summary's would have.
    await receiver.wait_for(OPENING)
    assert [e for e in receiver.events if SUMMARY_AUTHOR in (e.get("Author"), e.get("From"))] == []

    # Polling and catch-up list the chat's messages: neither takes the summary for an agent's.
    caught = await agent_chat.missed(chats, chat, -1)
    assert caught.failure is None and caught.replies == [] and caught.last_index == 1
    listed = await chats.messages_after(chat, -1)
    assert [m.summary for m in listed] == [True, False]
    await chats.client.http_client.close()


async def test_a_refused_summary_does_not_stop_the_handoff(sandbox: Sandbox, receiver: Receiver) -> None:
    fault(sandbox, path_regex=r"/Messages$", method="POST", status=400, times=1)  # the first post is the summary
    chats = chats_for(sandbox, "conversations")
    chat = await start(chats, receiver.url)
    assert [(author(m), m.body) for m in messages(sandbox, chat)] == [(chat.identity, OPENING)]
    await chats.client.http_client.close()


@pytest.mark.parametrize("mode", ["conversations", "legacy"])
async def test_a_summary_posted_despite_an_error_is_not_posted_again(sandbox: Sandbox, receiver: Receiver, mode: str) -> None:
    fault(sandbox, path_regex=r"/Messages$", method="POST", status=500, times=1, when="after")  # made, then a 500
    chats = chats_for(sandbox, mode)
    chat = await start(chats, receiver.url)
    assert [author(m) for m in messages(sandbox, chat)] == [SUMMARY_AUTHOR, chat.identity]
    await chats.client.http_client.close()
