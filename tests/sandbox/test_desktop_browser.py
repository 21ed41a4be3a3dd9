"""The agent desktop in headless Chromium: a web chat appears live, one agent accepts, both sides chat, the agent ends it."""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from northwind.processes import wait_for
from northwind.servers import Sandbox
from tests.sandbox.webhook_receiver import WebhookReceiver

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def open_desktop(browser: Browser, sandbox: Sandbox, agent: str) -> Page:
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{sandbox.base_url}/agent")
    expect(page.locator("#live")).to_have_class("live on")
    page.fill("#agent-name", agent)
    page.click("#agent-save")
    expect(page.locator("#agent-status")).to_have_text(f"available as {agent}")
    return page


def test_agent_desktop_accepts_and_chats(browser: Browser, sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    alice = open_desktop(browser, sandbox, "alice")
    bob = open_desktop(browser, sandbox, "bob")

    customer = "<img src=x onerror=alert(1)> Grace"
    pre = {
        "transcript": [{"sender": "user", "text": "where is my order?"}, {"sender": "bot", "text": "Let me get a human."}],
        "intent": "human_handoff",
        "slots": {"order_id": "A-42"},
    }
    chat = sandbox.client.flex_api.v2.web_channels.create(
        address_sid=sandbox.address_sid,
        customer_friendly_name=customer,
        chat_friendly_name="Web chat",
        pre_engagement_data=json.dumps(pre),
    )
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(
        target="webhook",
        configuration_url=webhooks.url(hook),
        configuration_filters=["onMessageAdded", "onParticipantAdded", "onConversationStateUpdated"],
    )
    conversation.messages.create(author=chat.identity, body="Hello, anyone there?", x_twilio_webhook_enabled="true")

    # The task shows up live in both tabs, with the name rendered as text, not HTML.
    task_in_alice = alice.locator(f'.task[data-channel="{chat.conversation_sid}"]')
    task_in_bob = bob.locator(f'.task[data-channel="{chat.conversation_sid}"]')
    expect(task_in_alice).to_contain_text(customer)
    expect(task_in_bob).to_contain_text("pending")
    assert alice.locator("img").count() == 0

    bob.click(f'.task[data-channel="{chat.conversation_sid}"]')
    task_in_alice.click()
    expect(alice.locator("#task-customer")).to_have_text(customer)
    expect(alice.locator("#pre-engagement .transcript li")).to_have_count(2)
    expect(alice.locator("#pre-engagement .transcript")).to_contain_text("Let me get a human.")
    expect(alice.locator("#pre-engagement > .kv")).to_contain_text("human_handoff")
    expect(alice.locator("#pre-engagement > .kv")).to_contain_text("A-42")
    expect(alice.locator("#messages .message.role-customer")).to_contain_text("Hello, anyone there?")

    alice.click("#accept")
    expect(alice.locator("#task-status")).to_have_text("accepted · alice")
    expect(alice.locator("#composer")).to_be_visible()
    # The other agent is told clearly that the task is taken and cannot accept it any more.
    expect(bob.locator("#notice")).to_have_text("This task is handled by alice.")
    expect(bob.locator("#accept")).to_be_hidden()
    expect(bob.locator("#composer")).to_be_hidden()

    alice.fill("#message-input", "Hi Grace, I'm Alice. <script>x</script>")
    alice.press("#message-input", "Enter")
    expect(alice.locator("#messages .message.role-agent")).to_contain_text("<script>x</script>")
    got = webhooks.wait(hook, 3)
    assert [r.params["EventType"] for r in got] == ["onMessageAdded", "onParticipantAdded", "onMessageAdded"]
    assert got[2].params["Author"] == "alice" and got[2].params["Source"] == "SDK" and got[2].signature_valid

    sandbox.agent(
        "POST", "/sandbox/typing", {"channel_sid": chat.conversation_sid, "identity": chat.identity, "role": "customer"}
    )
    expect(alice.locator("#typing")).to_be_visible()
    conversation.messages.create(author=chat.identity, body="Thanks! It's order A-42.", x_twilio_webhook_enabled="true")
    expect(alice.locator("#messages .message.role-customer").last).to_contain_text("Thanks! It's order A-42.")
    expect(bob.locator("#messages .message")).to_have_count(3)

    alice.click("#end")
    expect(alice.locator("#task-status")).to_have_text("ended · alice")
    expect(alice.locator("#composer")).to_be_hidden()
    wait_for(lambda: conversation.fetch().state == "closed", 5, "conversation closed")
    ended = webhooks.wait(hook, 5)[4]
    assert ended.params["EventType"] == "onConversationStateUpdated" and ended.params["StateTo"] == "closed"
    alice.close()
    bob.close()


def test_desktop_availability_queue_and_transfer(
    browser: Browser, sandbox: Sandbox, webhooks: WebhookReceiver, hook: str
) -> None:
    """Go available/offline sets the worker's activity; the queue shows positions and ages; a chat moves to another agent."""
    kim = open_desktop(browser, sandbox, "kim")
    lee = open_desktop(browser, sandbox, "lee")

    def workers() -> Dict[str, Dict[str, object]]:
        return {a["agent"]: a for a in sandbox.agent("GET", "/agent/api/agents").json()["agents"]}

    assert workers()["kim"]["activity"] == workers()["lee"]["activity"] == "Available"
    kim.click("#agent-offline")
    expect(kim.locator("#agent-status")).to_have_text("offline as kim")
    assert workers()["kim"]["activity"] == "Offline" and workers()["kim"]["available"] is False
    kim.click("#agent-save")
    expect(kim.locator("#agent-status")).to_have_text("available as kim")

    chat = sandbox.client.flex_api.v2.web_channels.create(
        address_sid=sandbox.address_sid, customer_friendly_name="Queue Visitor", chat_friendly_name="Web chat"
    )
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(
        target="webhook",
        configuration_url=webhooks.url(hook),
        configuration_filters=["onParticipantAdded", "onParticipantRemoved"],
    )
    item = kim.locator(f'.task[data-channel="{chat.conversation_sid}"]')
    expect(item.locator(".queue")).to_have_text(re.compile(r"^#\d+$"))
    expect(item.locator(".age")).to_have_text(re.compile(r"^waiting \d+"))
    item.click()
    kim.click("#accept")
    expect(kim.locator("#task-status")).to_have_text("accepted · kim")
    expect(kim.locator("#transfer")).to_be_visible()
    kim.select_option("#transfer-target", "agent:lee")
    kim.click("#transfer-button")
    expect(kim.locator("#notice")).to_have_text("Transferred to lee.")

    moved = lee.locator(f'.task[data-channel="{chat.conversation_sid}"]').filter(has_text="pending")
    expect(moved).to_contain_text("→ lee")
    moved.click()
    lee.click("#accept")
    expect(lee.locator("#task-status")).to_have_text("accepted · lee")
    got = webhooks.wait(hook, 3)
    assert [(r.params["EventType"], r.params["Identity"]) for r in got] == [
        ("onParticipantAdded", "kim"),
        ("onParticipantRemoved", "kim"),
        ("onParticipantAdded", "lee"),
    ]
    kim.close()
    lee.close()


def test_desktop_shows_a_message_task_and_marks_it_done(browser: Browser, sandbox: Sandbox) -> None:
    page = open_desktop(browser, sandbox, "mo")
    attributes = {"type": "handoff_message", "name": "Nia", "message": "Please call me <b>back</b>", "context": {"order": "B-9"}}
    task = (
        sandbox.client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"])
        .tasks.create(workflow_sid=sandbox.info["workflow_sid"], attributes=json.dumps(attributes))
        .sid
    )
    page.click(f'.task[data-sid="{task}"]')
    expect(page.locator("#message-body")).to_have_text("Please call me <b>back</b>")
    expect(page.locator("#message-context")).to_contain_text("B-9")
    expect(page.locator("#accept")).to_be_hidden()
    page.click("#done")
    expect(page.locator("#task-status")).to_have_text("ended · mo")
    assert sandbox.agent("GET", f"/agent/api/tasks/{task}").json()["assignment_status"] == "completed"
    page.close()


def tiny_png() -> bytes:
    """A real 2x2 PNG (red), so the desktop's preview actually decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_desktop_files_summary_card_and_after_chat_survey(browser: Browser, sandbox: Sandbox, tmp_path: Path) -> None:
    """Visitor files preview, the agent attaches a file, the bot's summary is a card on top, the customer and the
    survey written back after the chat show in the context pane; End chat leaves the task in wrap-up until Complete."""
    pre = {
        "summary": {"text": "Asked about: order status, returns", "trigger": "button"},
        "customers": {"name": "Ria Known", "email": "ria@example.com", "external_id": "C-77"},
    }
    chat = sandbox.client.flex_api.v2.web_channels.create(
        address_sid=sandbox.address_sid, customer_friendly_name="Ria Known", pre_engagement_data=json.dumps(pre)
    )
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.messages.create(author="Rasa", body="Summary: wants a refund for A-42", attributes='{"handoff_summary": true}')
    png = tiny_png()
    uploaded = requests.post(
        f"{sandbox.base_url}/mcs.us1/v1/Services/{sandbox.info['conversations_service_sid']}/Media",
        data=png,
        params={"Filename": "damaged.png"},
        headers={"Content-Type": "image/png"},
        auth=(sandbox.settings.api_key, sandbox.settings.api_secret),
        timeout=10,
    ).json()
    conversation.messages.create(author=chat.identity, media_sid=uploaded["sid"], x_twilio_webhook_enabled="true")

    page = open_desktop(browser, sandbox, "fay")
    page.click(f'.task[data-channel="{chat.conversation_sid}"]')
    expect(page.locator("#summary-card")).to_be_visible()
    expect(page.locator("#summary-card")).to_contain_text("Summary: wants a refund for A-42")
    expect(page.locator("#messages")).not_to_contain_text("wants a refund")  # the card, not a chat line
    expect(page.locator("#customer-details")).to_contain_text("ria@example.com")
    expect(page.locator("#customer-details")).to_contain_text("C-77")
    expect(page.locator("#task-summary")).to_contain_text("Asked about: order status, returns")
    preview = page.locator("#messages .message.role-customer img.preview")
    expect(preview).to_be_visible()
    wait_for(lambda: preview.evaluate("img => img.complete && img.naturalWidth") == 2, 5, "the preview decodes")
    expect(page.locator("#survey-box")).to_be_hidden()

    page.click("#accept")
    expect(page.locator("#composer")).to_be_visible()
    pdf = tmp_path / "returns-form.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    page.set_input_files("#file-input", str(pdf))
    link = page.locator("#messages .message.role-agent .file a")
    expect(link).to_have_text("📎 returns-form.pdf")
    assert requests.get(link.get_attribute("href") or "", timeout=10).content == pdf.read_bytes()
    sent = conversation.messages.list(order="desc", limit=1)[0]
    assert sent.author == "fay" and sent.body is None and sent.media[0]["filename"] == "returns-form.pdf"

    page.screenshot(path=str(tmp_path / "desktop-files.png"))
    page.click("#end")
    expect(page.locator("#done")).to_have_text("Complete")
    task = page.locator(f'.task[data-channel="{chat.conversation_sid}"]').get_attribute("data-sid") or ""
    tasks = sandbox.client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"]).tasks
    assert tasks(task).fetch().assignment_status == "wrapping"
    attributes = {**json.loads(tasks(task).fetch().attributes), "handoff_survey": {"rating": 4, "comment": "Quick help"}}
    tasks(task).update(attributes=json.dumps(attributes))  # what the bot writes back after the chat
    expect(page.locator("#survey")).to_contain_text("Quick help")
    page.click("#done")
    expect(page.locator("#done")).to_be_hidden()
    assert tasks(task).fetch().assignment_status == "completed"
    page.close()
