"""Accounts on one state file: every resource belongs to the account that created it, never a mix.

A sandbox restarted with other credentials on an existing database provisions that account its own Flex flow,
chat services and web chat address, lists only its own resources, and answers 404/20404 for another account's
SIDs. The first account's resources keep its account_sid and come back when it does.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from flex_sandbox.account import Account
from flex_sandbox.credentials import DEVELOPMENT, credentials_from_env
from flex_sandbox.store import Store
from northwind.processes import free_port
from northwind.servers import start_sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.test_robustness import leave_a_webhook_queued
from tests.sandbox.webhook_receiver import WebhookReceiver

ACCOUNT_B = {
    "TWILIO_ACCOUNT_SID": "AC" + "b1" * 16,
    "TWILIO_AUTH_TOKEN": "b2" * 16,
    "TWILIO_API_KEY": "SK" + "b3" * 16,
    "TWILIO_API_SECRET": "b4" * 16,
}


def assert_404(call: Callable[[], object]) -> None:
    """Twilio's 404 with code 20404 (the SDK raises TwilioRestException, or TwilioException for a list page)."""
    with pytest.raises(TwilioException) as e:
        call()
    if isinstance(e.value, TwilioRestException):
        assert (e.value.status, e.value.code) == (404, 20404), e.value
    else:
        response = e.value.args[1]
        assert response.status_code == 404 and json.loads(response.text)["code"] == 20404, e.value


def test_a_second_account_on_the_same_file_sees_only_its_own_resources(tmp_path: Path) -> None:
    db = tmp_path / "accounts.db"
    port = free_port()
    a = start_sandbox(tmp_path, "flex-sandbox-account-a", db=db, port=port)
    try:
        legacy_sid = new_web_channel(a, "visitor-a")
        a_channel = a.client.chat.v2.services(a.chat_service_sid).channels(legacy_sid)
        a_channel.messages.create(from_="visitor-a", body="legacy hello")
        chat = new_web_chat(a)
        a_conversation = a.client.conversations.v1.conversations(chat.conversation_sid)
        a_message = a_conversation.messages.create(author=chat.identity, body="conversations hello")
        a_hook = a_conversation.webhooks.create(
            target="webhook", configuration_url="http://127.0.0.1:9/a", configuration_filters=["onMessageAdded"]
        )
        plain = a.client.conversations.v1.conversations.create(friendly_name="plain", unique_name="shared-name")
        a_info = a.info
    finally:
        a.process.stop()
    assert a_info["account_sid"] == DEVELOPMENT.account_sid

    b = start_sandbox(tmp_path, "flex-sandbox-account-b", db=db, port=port, credentials=ACCOUNT_B)
    try:
        b_sid = ACCOUNT_B["TWILIO_ACCOUNT_SID"]
        info = b.info
        assert info["account_sid"] == b_sid
        for key in ("flex_flow_sid", "chat_service_sid", "conversations_service_sid", "conversations_address_sid"):
            assert info[key] and info[key] != a_info[key], key  # provisioned for B, not A's
        client = b.client
        # Lists hold B's own resources only.
        assert [(f.sid, f.account_sid) for f in client.flex_api.v1.flex_flow.list()] == [(info["flex_flow_sid"], b_sid)]
        assert [(x.sid, x.account_sid) for x in client.conversations.v1.address_configurations.list()] == [
            (info["conversations_address_sid"], b_sid)
        ]
        assert client.conversations.v1.conversations.list() == []
        assert client.chat.v2.services(b.chat_service_sid).channels.list() == []
        assert client.chat.v2.services(b.chat_service_sid).fetch().account_sid == b_sid
        assert b.agent("GET", "/agent/api/tasks").json()["tasks"] == []
        # A's SIDs do not exist for B.
        for call in (
            lambda: client.flex_api.v1.flex_flow(a_info["flex_flow_sid"]).fetch(),
            lambda: client.conversations.v1.address_configurations(a_info["conversations_address_sid"]).fetch(),
            lambda: client.chat.v2.services(a_info["chat_service_sid"]).fetch(),
            lambda: client.chat.v2.services(a_info["chat_service_sid"]).channels(legacy_sid).fetch(),
            lambda: client.chat.v2.services(a_info["chat_service_sid"]).channels(legacy_sid).messages.list(),
            lambda: client.flex_api.v1.web_channel(legacy_sid).fetch(),
            lambda: client.conversations.v1.conversations(chat.conversation_sid).fetch(),
            lambda: client.conversations.v1.conversations("shared-name").fetch(),
            lambda: client.conversations.v1.conversations(chat.conversation_sid).messages(a_message.sid).fetch(),
            lambda: client.conversations.v1.conversations(chat.conversation_sid).messages.create(body="intrusion"),
            lambda: client.conversations.v1.conversations(chat.conversation_sid).webhooks(a_hook.sid).fetch(),
            lambda: client.conversations.v1.conversations(chat.conversation_sid).delete(),
        ):
            assert_404(call)
        raw = requests.get(
            f"{b.base_url}/conversations/v1/Conversations/{chat.conversation_sid}",
            auth=(b.settings.api_key, b.settings.api_secret),
            timeout=10,
        )
        body = raw.json()
        assert raw.status_code == 404 and body["code"] == 20404 and body["status"] == 404
        assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"
        with pytest.raises(TwilioRestException) as e:
            client.flex_api.v2.web_channels.create(address_sid=a_info["conversations_address_sid"])
        assert e.value.status == 404 and e.value.code == 45744  # A's address is not B's
        # B works normally on its own provisioning; unique names are per account.
        b_chat = client.flex_api.v2.web_channels.create(address_sid=info["conversations_address_sid"], customer_friendly_name="B")
        b_conversation = client.conversations.v1.conversations(b_chat.conversation_sid).fetch()
        assert b_conversation.account_sid == b_sid and b_conversation.chat_service_sid == info["conversations_service_sid"]
        assert client.conversations.v1.conversations.create(unique_name="shared-name").account_sid == b_sid
        b_legacy = new_web_channel(b, "visitor-b")
        assert client.chat.v2.services(b.chat_service_sid).channels(b_legacy).fetch().account_sid == b_sid
        assert {t["channel_sid"] for t in b.agent("GET", "/agent/api/tasks").json()["tasks"]} == {
            b_chat.conversation_sid,
            b_legacy,
        }
    finally:
        b.process.stop()

    again = start_sandbox(tmp_path, "flex-sandbox-account-a2", db=db, port=port)
    try:
        assert again.info == a_info  # A's provisioning is unchanged
        client = again.client
        conversation = client.conversations.v1.conversations(chat.conversation_sid).fetch()
        assert conversation.account_sid == DEVELOPMENT.account_sid
        assert {c.sid for c in client.conversations.v1.conversations.list()} == {chat.conversation_sid, plain.sid}
        assert client.conversations.v1.conversations("shared-name").fetch().sid == plain.sid
        assert [m.account_sid for m in client.conversations.v1.conversations(chat.conversation_sid).messages.list()] == [
            DEVELOPMENT.account_sid
        ]
        channel = client.chat.v2.services(again.chat_service_sid).channels(legacy_sid).fetch()
        assert channel.account_sid == DEVELOPMENT.account_sid
        assert [m.body for m in client.chat.v2.services(again.chat_service_sid).channels(legacy_sid).messages.list()] == [
            "legacy hello"
        ]
        assert [c.sid for c in client.chat.v2.services(again.chat_service_sid).channels.list()] == [legacy_sid]
        assert {t["channel_sid"] for t in again.agent("GET", "/agent/api/tasks").json()["tasks"]} == {
            legacy_sid,
            chat.conversation_sid,
        }
        assert_404(lambda: client.conversations.v1.conversations(b_chat.conversation_sid).fetch())
    finally:
        again.process.stop()


def test_queued_webhooks_wait_for_their_own_account(tmp_path: Path, webhooks: WebhookReceiver, hook: str) -> None:
    """Another account's credentials never sign (or deliver) A's queued webhooks; A delivers them when it is back."""
    db = tmp_path / "outbox-accounts.db"
    port = free_port()
    leave_a_webhook_queued(tmp_path, "flex-sandbox-outbox-a", db, port, webhooks, hook, "visitor-outbox-a", "queued for A")
    b = start_sandbox(tmp_path, "flex-sandbox-outbox-b", db=db, port=port, credentials=ACCOUNT_B)
    try:
        assert requests.get(b.base_url + "/sandbox/webhooks/pending", timeout=5).json()["pending"] == 0
        with pytest.raises(TimeoutError):
            webhooks.wait(hook, 2, timeout=1.5)
    finally:
        b.process.stop()
    again = start_sandbox(tmp_path, "flex-sandbox-outbox-a2", db=db, port=port)
    try:
        got = webhooks.wait(hook, 2)
        assert got[1].params["Body"] == "queued for A" and got[1].params["AccountSid"] == DEVELOPMENT.account_sid
        assert got[1].signature_valid  # signed with A's auth token
    finally:
        again.process.stop()


LEGACY_SCHEMA = """
CREATE TABLE resources (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, sid TEXT NOT NULL,
                        parent TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL);
CREATE UNIQUE INDEX resources_sid ON resources (kind, sid);
CREATE INDEX resources_parent ON resources (kind, parent, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, doc TEXT NOT NULL);
"""


def test_a_state_file_from_before_accounts_belongs_to_the_account_that_provisioned_it(tmp_path: Path) -> None:
    """A file written when resources had no owner: its flow's account keeps everything; another account starts fresh."""
    db = tmp_path / "legacy.db"
    a_sid, chat_service, flow, channel, task = (
        DEVELOPMENT.account_sid,
        "IS" + "1" * 32,
        "FO" + "2" * 32,
        "CH" + "3" * 32,
        "WT" + "4" * 32,
    )
    with sqlite3.connect(db) as conn:
        conn.executescript(LEGACY_SCHEMA)
        rows = [
            ("service", chat_service, "", {"sid": chat_service, "friendly_name": "Flex Chat Service"}),
            ("flex_flow", flow, "", {"sid": flow, "account_sid": a_sid, "chat_service_sid": chat_service, "enabled": True}),
            ("chat_channel", channel, chat_service, {"sid": channel, "account_sid": a_sid, "service_sid": chat_service}),
            ("task", task, "", {"sid": task, "channel_sid": channel, "status": "pending"}),
        ]
        conn.executemany(
            "INSERT INTO resources (kind, sid, parent, doc) VALUES (?, ?, ?, ?)",
            [(k, s, p, json.dumps(d)) for k, s, p, d in rows],
        )
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("provisioned", "2026-11-01T00:00:00Z"), ("chat_service_sid", chat_service)],
        )
        conn.execute(
            "INSERT INTO deliveries (queue, doc) VALUES (?, ?)", (f"{channel}/WH1", json.dumps({"params": {"AccountSid": a_sid}}))
        )

    store = Store(str(db))
    try:
        a = Account(credentials_from_env({"TWILIO_ACCOUNT_SID": a_sid, "TWILIO_AUTH_TOKEN": "x" * 32}), store)
        assert a.chat_service_sid == chat_service  # not provisioned again
        assert [f["sid"] for f in a.store.list("flex_flow")[0]] == [flow]
        assert a.store.get("chat_channel", channel) is not None and a.store.get("task", task) is not None
        assert a.store.get("service", chat_service) is not None and len(a.store.pending_deliveries()) == 1
        b = Account(credentials_from_env(ACCOUNT_B), store)
        assert b.chat_service_sid not in ("", chat_service)
        assert [f["account_sid"] for f in b.store.list("flex_flow")[0]] == [ACCOUNT_B["TWILIO_ACCOUNT_SID"]]
        assert b.store.get("chat_channel", channel) is None and b.store.get("task", task) is None
        assert b.store.get("service", chat_service) is None and b.store.pending_deliveries() == []
    finally:
        store.close()
    reopened = Store(str(db))  # migrating twice changes nothing
    try:
        assert (
            Account(credentials_from_env({"TWILIO_ACCOUNT_SID": a_sid, "TWILIO_AUTH_TOKEN": "x" * 32}), reopened).chat_service_sid
            == chat_service
        )
    finally:
        reopened.close()
