"""Persistence across restarts with a SQLite file, 200 concurrent posts, and fault injection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import free_port
from northwind.servers import Sandbox, start_sandbox
from rasa_flex_handoff.twilio_http import SandboxHttpClient
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.webhook_receiver import WebhookReceiver


def test_state_survives_a_restart_with_a_file_database(tmp_path: Path, webhooks: WebhookReceiver, hook: str) -> None:
    db = tmp_path / "sandbox.db"
    port = free_port()
    first = start_sandbox(tmp_path, "flex-sandbox-file", db=db, port=port)
    try:
        sid = new_web_channel(first, "visitor-persist")
        channel = first.client.chat.v2.services(first.chat_service_sid).channels(sid)
        channel.messages.create(from_="visitor-persist", body="before restart")
        webhook = channel.webhooks.create(
            type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageSent"]
        )
        chat = new_web_chat(first)
        first.client.conversations.v1.conversations(chat.conversation_sid).messages.create(
            author=chat.identity, body="conv before"
        )
    finally:
        first.process.stop()
    second = start_sandbox(tmp_path, "flex-sandbox-file", db=db, port=port)
    try:
        assert second.info == first.info  # provisioned once: same flow, services and address
        channel = second.client.chat.v2.services(second.chat_service_sid).channels(sid)
        assert [m.body for m in channel.messages.list()] == ["before restart"]
        assert [w.sid for w in channel.webhooks.list()] == [webhook.sid]
        after = channel.messages.create(from_="visitor-persist", body="after restart", x_twilio_webhook_enabled="true")
        assert after.index == 1
        [got] = webhooks.wait(hook, 1)
        assert got.params["Body"] == "after restart" and got.signature_valid
        messages = second.client.conversations.v1.conversations(chat.conversation_sid).messages.list()
        assert [m.body for m in messages] == ["conv before"]
        tasks = second.agent("GET", "/agent/api/tasks").json()["tasks"]
        assert {t["channel_sid"] for t in tasks} == {sid, chat.conversation_sid}
    finally:
        second.process.stop()


def test_200_concurrent_posts_keep_every_message_in_order(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    url = f"{sandbox.base_url}/conversations/v1/Conversations/{chat.conversation_sid}/Messages"

    async def post_all() -> list:
        auth = aiohttp.BasicAuth(DEVELOPMENT.account_sid, DEVELOPMENT.auth_token)
        async with aiohttp.ClientSession(auth=auth, connector=aiohttp.TCPConnector(limit=200)) as session:

            async def post(i: int) -> dict:
                async with session.post(url, data={"Author": chat.identity, "Body": f"m{i}"}) as r:
                    assert r.status == 201, await r.text()
                    return await r.json()

            return await asyncio.gather(*(post(i) for i in range(200)))

    created = asyncio.run(post_all())
    assert sorted(m["index"] for m in created) == list(range(200))
    stored = sandbox.client.conversations.v1.conversations(chat.conversation_sid).messages.list(page_size=100)
    assert [m.index for m in stored] == list(range(200))
    by_index = {m["index"]: m["body"] for m in created}
    assert [m.body for m in stored] == [by_index[i] for i in range(200)]
    assert len({m.sid for m in stored}) == 200


def test_fault_injection_returns_twilio_errors_then_recovers(sandbox: Sandbox) -> None:
    chat = new_web_chat(sandbox)
    armed = sandbox.agent(
        "POST", "/sandbox/faults", {"path_regex": r"/Conversations/CH\w+/Messages$", "method": "POST", "status": 500, "times": 2}
    )
    assert armed.status_code == 201 and armed.json()["id"]
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as e:
            conversation.messages.create(author=chat.identity, body="fails")
        assert e.value.status == 500 and e.value.code == 20500
    assert conversation.messages.create(author=chat.identity, body="works").index == 0
    assert sandbox.agent("GET", "/sandbox/faults").json()["faults"] == []


def test_fault_injection_delay_makes_the_client_time_out(sandbox: Sandbox) -> None:
    sandbox.agent("POST", "/sandbox/faults", {"path_regex": "^/flex-api/v2/WebChats$", "delay": 1.5, "times": 1})
    from twilio.rest import Client

    impatient = Client(
        DEVELOPMENT.account_sid, DEVELOPMENT.auth_token, http_client=SandboxHttpClient(sandbox.base_url, timeout=0.3)
    )
    with pytest.raises(requests.exceptions.Timeout):
        impatient.flex_api.v2.web_channels.create(address_sid=sandbox.address_sid)
    assert impatient.flex_api.v2.web_channels.create(address_sid=sandbox.address_sid).conversation_sid.startswith("CH")


def test_fault_after_processing_and_control_api_validation(sandbox: Sandbox) -> None:
    sid = new_web_channel(sandbox, "visitor-fault")
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    sandbox.agent("POST", "/sandbox/faults", {"path_regex": "/Messages$", "method": "POST", "status": 503, "when": "after"})
    with pytest.raises(TwilioRestException) as e:
        channel.messages.create(from_="visitor-fault", body="stored anyway")
    assert e.value.status == 503
    assert [m.body for m in channel.messages.list()] == ["stored anyway"]
    for bad in (
        {"path_regex": "("},
        {"path_regex": "x"},
        {"path_regex": "x", "status": 200},
        {"path_regex": "x", "status": 500, "times": 0},
        {"path_regex": "x", "status": 500, "bogus": 1},
        [1, 2],
    ):
        assert sandbox.agent("POST", "/sandbox/faults", bad).status_code == 400, bad
    rule = sandbox.agent("POST", "/sandbox/faults", {"path_regex": "never", "status": 500, "times": None}).json()
    assert sandbox.agent("DELETE", f"/sandbox/faults/{rule['id']}").status_code == 204
    assert sandbox.agent("DELETE", f"/sandbox/faults/{rule['id']}").status_code == 404


def leave_a_webhook_queued(
    tmp_path: Path, name: str, db: Path, port: int, webhooks: WebhookReceiver, hook: str, visitor: str, body: str
) -> None:
    """Run a sandbox on `db` just long enough to leave one webhook undelivered in its outbox.

    The first delivery of a chat message's `onMessageSent` fails (500); its retry, 30 s later,
    is still waiting when the sandbox stops.
    """
    first = start_sandbox(tmp_path, name, db=db, port=port, extra_env={"FLEX_SANDBOX_RETRY_DELAY": "30"})
    try:
        sid = new_web_channel(first, visitor)
        channel = first.client.chat.v2.services(first.chat_service_sid).channels(sid)
        channel.webhooks.create(
            type="webhook",
            configuration_url=webhooks.url(hook),
            configuration_filters=["onMessageSent"],
            configuration_retry_count=3,
        )
        webhooks.plan(hook, statuses=[500])
        channel.messages.create(from_=visitor, body=body, x_twilio_webhook_enabled="true")
        webhooks.wait(hook, 1)
        assert requests.get(first.base_url + "/sandbox/webhooks/pending", timeout=5).json()["pending"] == 1
    finally:
        first.process.stop()


def test_queued_webhooks_survive_a_restart(tmp_path: Path, webhooks: WebhookReceiver, hook: str) -> None:
    db = tmp_path / "outbox.db"
    port = free_port()
    leave_a_webhook_queued(tmp_path, "flex-sandbox-outbox", db, port, webhooks, hook, "visitor-outbox", "queued")
    second = start_sandbox(tmp_path, "flex-sandbox-outbox", db=db, port=port)
    try:
        got = webhooks.wait(hook, 2)
        assert got[1].params["Body"] == "queued" and got[1].signature_valid
    finally:
        second.process.stop()
