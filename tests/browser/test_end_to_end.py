"""The whole path in a real browser: a visitor on the shop page and an agent on the Flex sandbox desktop.

Real processes: Flex sandbox (`python -m flex_sandbox --in-memory`), action server, Rasa with our
socket.io connector (`rasa_flex_handoff.SocketIOInput`), and the shop page (`python -m northwind.widget`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import expect

from northwind.processes import ROOT, ServerProcess, free_port
from northwind.servers import Stack, start_sandbox
from tests.browser.agent_desktop import AgentDesktop
from tests.browser.conftest import LOGS
from tests.browser.visitor import Visitor

XSS = '<img src=x onerror="window.__xss = 1">'
AGENT = "Alex"
TIMEOUT = 30_000  # the bot's first answers include model warm-up


class WebStack(Stack):
    """The handoff stack with CORS open, as `make demo` runs it: the shop page is another origin."""

    rasa_options = ("--cors", "*")


class Desk:
    """What Stack needs from the sandbox: its URL and process."""

    def __init__(self, server) -> None:
        self.url = server.base_url
        self.process = server.process


@pytest.fixture(scope="module")
def model(request) -> Path:
    override = os.environ.get("HANDOFF_TEST_MODEL")
    return Path(override) if override else request.getfixturevalue("trained_model")


@pytest.fixture(scope="module")
def web_stack(model, tmp_path_factory) -> Iterator[dict]:
    """Sandbox, action server, Rasa (with CORS) and the shop page; URLs of the shop and desktop."""
    workdir = LOGS / "e2e"  # logs, credentials/endpoints files and the tracker database
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "trackers.db").unlink(missing_ok=True)
    sandbox = start_sandbox(workdir, name="flex-sandbox", extra_env={"FLEX_SANDBOX_RETRY_DELAY": "0.2"})
    stack = shop = None
    try:
        stack = WebStack("conversations", Desk(sandbox), model, workdir)
        stack.start()
        port = free_port()
        shop = ServerProcess(
            "shop",
            [sys.executable, "-m", "northwind.widget", "--port", str(port), "--rasa-url", stack.url],
            f"http://127.0.0.1:{port}/health",
            workdir,
            env={"PYTHONPATH": str(ROOT)},
            startup_timeout=60,
        ).start()
        yield {"shop": f"http://127.0.0.1:{port}/", "desktop": sandbox.base_url, "stack": stack}
    finally:
        for process in (shop, stack):
            if process is not None:
                process.stop()
        sandbox.process.stop()


def visitor_on_shop(new_page, url: str) -> Visitor:
    page = new_page()
    page.set_default_timeout(TIMEOUT)
    visitor = Visitor(page).visit(url).open_chat()
    visitor.wait_until_connected()
    return visitor


def test_visitor_bot_agent_and_back(web_stack, new_page, screenshots):
    visitor = visitor_on_shop(new_page, web_stack["shop"])
    page = visitor.page

    # The bot: greeting with buttons, then an FAQ.
    visitor.send("hi")
    visitor.expect_text("bot", "Northwind assistant")
    expect(page.get_by_role("group", name="Suggested replies")).to_be_visible()
    visitor.send("what are your opening hours?")
    visitor.expect_text("bot", "Monday to Friday")
    screenshots.take(page, "visitor-bot")

    # Hand off: the waiting state until the agent accepts.
    page.get_by_role("button", name="Talk to an agent", exact=True).last.click()
    expect(page.locator(".hw-waiting")).to_be_visible(timeout=TIMEOUT)
    screenshots.take(page, "visitor-waiting")

    desk_page = new_page()
    desk = AgentDesktop(desk_page, web_stack["desktop"], AGENT)
    task = desk.task()
    desk.open_task(task.first)
    expect(desk.transcript).to_contain_text("what are your opening hours?")
    expect(desk.transcript).to_contain_text("Monday to Friday")
    screenshots.take(desk_page, "agent-task-with-transcript")
    desk.accept()

    visitor.expect_text("system", f"{AGENT} joined the chat")
    expect(page.locator(".hw-waiting")).to_be_hidden()

    # Both ways, typing included.
    visitor.input.type("Hello?")
    expect(desk_page.locator("#typing")).to_be_visible(timeout=TIMEOUT)
    visitor.input.fill("")
    desk_page.locator("#message-input").type("Hi")
    expect(page.locator(".hw-typing")).to_contain_text(f"{AGENT} is typing", timeout=TIMEOUT)
    screenshots.take(page, "visitor-sees-agent-typing")
    desk.send("Hi, I'm Alex. How can I help?")
    visitor.expect_text("agent", "Hi, I'm Alex")
    expect(visitor.messages("agent").first.locator(".hw-author")).to_contain_text(AGENT)
    visitor.send("My parcel NW-12345 is late")
    desk.expect_message("My parcel NW-12345 is late", role="customer")
    desk.send("Sorry about that! It left our warehouse this morning; you'll get it tomorrow.")
    visitor.expect_text("agent", "It left our warehouse this morning")
    screenshots.take(page, "visitor-with-agent")
    screenshots.take(desk_page, "agent-chatting")

    # Markup is text on both sides.
    visitor.send(XSS)
    desk.expect_message(XSS, role="customer")
    desk.send(XSS)
    visitor.expect_text("agent", XSS)
    assert page.locator(".hw-log img").count() == 0 and desk_page.locator("#messages img").count() == 0
    assert page.evaluate("() => window.__xss") is None and desk_page.evaluate("() => window.__xss") is None
    screenshots.take(page, "visitor-markup-as-text")

    # Reload mid-chat: same session, history restored (agent messages included), still with the agent.
    session_id = visitor.session_id()
    page.reload()
    visitor.expect_text("agent", "Hi, I'm Alex")
    visitor.expect_text("visitor", "My parcel NW-12345 is late")
    visitor.expect_text("bot", "Monday to Friday")
    assert visitor.wait_until_connected() == session_id
    expect(visitor.bubble("agent", "Hi, I'm Alex")).to_have_count(1)
    expect(page.get_by_role("button", name="End chat")).to_be_visible()
    screenshots.take(page, "visitor-after-reload")

    desk.send("Still there after your reload?")
    visitor.expect_text("agent", "Still there after your reload?")

    # The Rasa server restarts mid-handoff; the agent writes meanwhile (Flex retries its webhook).
    stack = web_stack["stack"]
    stack.rasa.stop()
    expect(page.get_by_role("status").filter(has_text="Connection lost")).to_be_visible(timeout=TIMEOUT)
    screenshots.take(page, "visitor-offline")
    desk.send("Sent while the server restarted")
    stack.start_rasa()
    expect(page.get_by_role("status").filter(has_text="You're back online")).to_be_visible(timeout=60_000)
    visitor.expect_text("agent", "Sent while the server restarted")
    expect(visitor.bubble("agent", "Still there after your reload?")).to_have_count(1)
    visitor.send("Thanks, got it")
    desk.expect_message("Thanks, got it", role="customer")

    # The agent ends the chat; the bot is back and answers.
    desk.end_chat()
    visitor.expect_text("system", "ended the chat")
    expect(page.get_by_role("button", name="Talk to an agent", exact=True)).to_be_visible(timeout=TIMEOUT)
    visitor.send("how long does shipping take?")
    visitor.expect_text("bot", "Standard shipping takes")
    screenshots.take(page, "visitor-bot-back")


def test_two_visitors_stay_separate(web_stack, new_page, screenshots):
    anna = visitor_on_shop(new_page, web_stack["shop"])
    ben = visitor_on_shop(new_page, web_stack["shop"])
    assert anna.session_id() != ben.session_id()

    anna.send("what are your opening hours?")
    ben.send("how long does shipping take?")
    anna.expect_text("bot", "Monday to Friday")
    ben.expect_text("bot", "Standard shipping takes")

    anna.page.get_by_role("button", name="Talk to an agent", exact=True).last.click()
    expect(anna.page.locator(".hw-waiting")).to_be_visible(timeout=TIMEOUT)
    desk_page = new_page()
    desk = AgentDesktop(desk_page, web_stack["desktop"], "Sam")
    desk.open_task(desk.task().filter(has_text="pending").first)
    desk.accept()
    desk.send("Hello Anna, Sam here.")
    anna.expect_text("agent", "Hello Anna, Sam here.")

    ben.send("what are your opening hours?")
    ben.expect_text("bot", "Monday to Friday")
    screenshots.take(anna.page, "anna")
    screenshots.take(ben.page, "ben")
    for text in ("Hello Anna", "how long does shipping take?"):
        assert anna.page.locator(".hw-log").get_by_text(text).count() == (1 if text == "Hello Anna" else 0)
    assert ben.page.locator(".hw-log").get_by_text("Hello Anna").count() == 0
    assert ben.page.locator(".hw-log").get_by_text("Sam").count() == 0
    desk.end_chat()
    anna.expect_text("system", "ended the chat")
