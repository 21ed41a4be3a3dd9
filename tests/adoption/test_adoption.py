"""Adoption: a fresh `rasa init` bot takes up the built wheel and hands a website chat to Flex and back.

Per variant (a `domain.yml` bot as `rasa init` made it; a bot with a `domain/` directory and its
own policies in `config.yml`) the fixtures build and install the wheel into a separate virtualenv,
run `rasa-flex-handoff init` (a second run must change nothing), train, and start `flex-sandbox`,
the action server and the Rasa server from the bot's folder (see conftest.py). Then, per Flex
mode, a socket.io visitor asks for a person, an agent accepts in the sandbox and answers through
the `twilio` SDK, the visitor replies, the agent closes, and the bot answers again.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests
from twilio.rest import Client

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff.twilio_http import SandboxHttpClient
from tests.adoption.conftest import AGENT, MODES, Stack, Visitor, handoff_of, timed

pytestmark = pytest.mark.timeout(1200)

GREETING = "Hey! How are you?"  # rasa init: intent greet, a story's opening turn -> utter_greet
ASK_FOR_A_PERSON = "I want to talk to a human"
AGENT_LINE = "Hello from Alice"
VISITOR_REPLY = "My parcel never arrived"


class Flex:
    """The agent's side: the sandbox's agent API (tasks, accept, end) and Twilio's SDK (messages)."""

    def __init__(self, sandbox_url: str, mode: str) -> None:
        self.url = sandbox_url
        self.mode = mode
        self.twilio = Client(DEVELOPMENT.account_sid, DEVELOPMENT.auth_token, http_client=SandboxHttpClient(sandbox_url))

    def agent_api(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        r = requests.request(method, self.url + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json() if r.content else None

    def tasks(self) -> List[Dict[str, Any]]:
        return self.agent_api("GET", "/agent/api/tasks")["tasks"]

    def accept(self, task: Dict[str, Any]) -> Dict[str, Any]:
        return self.agent_api("POST", f"/agent/api/tasks/{task['sid']}/accept", {"agent": AGENT})

    def end(self, task: Dict[str, Any]) -> Dict[str, Any]:
        return self.agent_api("POST", f"/agent/api/tasks/{task['sid']}/end", {"agent": AGENT})

    @property
    def on_conversations(self) -> bool:
        """Conversations and Interactions chats are Conversations API conversations; legacy ones Programmable Chat channels."""
        return self.mode != "legacy"

    def _channel(self, task: Dict[str, Any]) -> Any:
        if self.on_conversations:
            return self.twilio.conversations.v1.conversations(task["channel_sid"])
        return self.twilio.chat.v2.services(task["service_sid"]).channels(task["channel_sid"])

    def say(self, task: Dict[str, Any], body: str) -> Any:
        """The agent's message, created over REST with webhooks on (as Flex's UI does through its SDK)."""
        messages = self._channel(task).messages
        if self.on_conversations:
            return messages.create(author=AGENT, body=body, x_twilio_webhook_enabled="true")
        return messages.create(from_=AGENT, body=body, x_twilio_webhook_enabled="true")

    def transcript(self, task: Dict[str, Any]) -> List[Dict[str, str]]:
        """The chat's messages as Flex stores them: author and body."""
        found = self._channel(task).messages.list()
        if self.on_conversations:
            return [{"author": m.author, "body": m.body} for m in found]
        return [{"author": m._from, "body": m.body} for m in found]  # twilio 8 names the author `_from` here

    def closed(self, task: Dict[str, Any]) -> bool:
        chat = self._channel(task).fetch()
        if self.on_conversations:
            return chat.state == "closed"
        return (json.loads(chat.attributes or "{}").get("status") or "").upper() == "INACTIVE"


async def poll(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Ask the (blocking) Flex side until `condition` holds; its value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(condition)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout}s (last: {last!r})")


def is_bot_turn(message: Dict[str, Any]) -> bool:
    return not handoff_of(message)


@pytest.mark.parametrize("mode", MODES)
async def test_adopted_bot_hands_a_website_chat_to_flex_and_back(stack: Stack, mode: str) -> None:
    try:
        with timed(f"{stack.project.variant}/{mode}: the handoff"):
            await full_handoff(stack, mode)
    except Exception as e:  # any failure gets the servers' logs
        raise AssertionError(f"{type(e).__name__}: {e}\n\n{stack.logs()}") from e


async def full_handoff(stack: Stack, mode: str) -> None:
    flex = Flex(stack.project.sandbox_url, mode)
    # The agent opens the desktop and goes available: otherwise the bot offers to leave a message.
    await asyncio.to_thread(flex.agent_api, "POST", "/agent/api/agents", {"agent": AGENT, "available": True})
    visitor = Visitor(stack.url, stack.channel)
    await visitor.connect(f"adopter-{uuid.uuid4().hex}")
    try:
        assert visitor.transport == "websocket"

        # The bot as rasa init made it.
        mark = await visitor.say("hello")
        await visitor.wait_for_text(GREETING, mark)

        # The visitor asks for a person: a Flex chat with a task for the agent.
        known = {t["sid"] for t in await asyncio.to_thread(flex.tasks)}
        mark = await visitor.say(ASK_FOR_A_PERSON)
        connecting = await visitor.wait_for_event("connecting", mark, timeout=45)
        assert connecting["text"].strip() and handoff_of(connecting)["sender"] == "system"
        task = await poll(lambda: next((t for t in flex.tasks() if t["sid"] not in known), None), "new Flex task")
        # The sandbox names the chat's API: Interactions route Conversations chats.
        assert task["mode"] == ("conversations" if flex.on_conversations else "legacy") and task["status"] == "pending", task
        if mode == "interactions":  # the plugin routed it itself: Flex's interaction is on the task
            assert task["attributes"]["flexInteractionSid"].startswith("KD"), task
        pre = task["pre_engagement_data"]
        pre = json.loads(pre) if isinstance(pre, str) else pre
        said = [line.get("text") for line in (pre or {}).get("transcript") or []]
        assert "hello" in said and GREETING in said, f"the agent does not see the bot conversation: {pre}"

        # The agent accepts, then answers through Twilio's SDK.
        await asyncio.to_thread(flex.accept, task)
        joined = await visitor.wait_for_event("agent_joined", mark)
        assert handoff_of(joined).get("agent", {}).get("name") == AGENT, joined
        sent = await asyncio.to_thread(flex.say, task, AGENT_LINE)
        reply = await visitor.wait_for(lambda m: handoff_of(m).get("body") == AGENT_LINE, "the agent's message", mark)
        assert handoff_of(reply)["sender"] == "agent" and handoff_of(reply)["message_sid"] == sent.sid, reply
        assert AGENT_LINE in reply["text"] and AGENT in reply["text"], reply  # a plain widget shows who spoke

        # The visitor replies: it reaches the agent, and the bot keeps quiet.
        relayed_from = await visitor.say(VISITOR_REPLY)
        await poll(
            lambda: [m for m in flex.transcript(task) if m["body"] == VISITOR_REPLY and m["author"] != AGENT],
            "visitor's reply in the Flex chat",
        )

        # The agent closes: the visitor is told, the bot is back.
        mark = len(visitor.messages)
        answered = [m for m in visitor.messages[relayed_from:mark] if is_bot_turn(m)]
        assert answered == [], f"the bot answered a line meant for the agent: {answered}"
        ended = await asyncio.to_thread(flex.end, task)
        assert ended["status"] == "ended", ended
        await visitor.wait_for_event("chat_closed", mark)
        await visitor.wait_for_event("bot_resumed", mark)
        assert await asyncio.to_thread(flex.closed, task), "the Flex chat is still open after the agent ended it"

        # The bot answers again as at the start of a conversation: rasa init's stories greet only there, and the
        # handoff ended in a new session, so its policies see none of the handoff's turns.
        mark = await visitor.say("hello")
        await visitor.wait_for_text(GREETING, mark)

        assert visitor.off_contract == [], f"payloads a Rasa widget would not render: {visitor.off_contract}"
    finally:
        await visitor.close()
