"""The chat widget in headless Chromium against a fake Rasa socket.io server (tests/browser/fake_rasa.py)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from northwind.processes import wait_for
from tests.browser.fake_rasa import on_the_wire
from tests.browser.visitor import TIMEOUT, Visitor

XSS = '<img src=x onerror="window.__xss = 1">'


def test_enter_sends_clears_and_styles_visitor_and_bot_apart(fake_shop, new_page, screenshots):
    visitor = Visitor(new_page()).visit(fake_shop)
    screenshots.take(visitor.page, "shop-page")
    visitor.open_chat()
    visitor.wait_until_connected()
    expect(visitor.input).to_be_focused()

    visitor.send("hello")
    expect(visitor.input).to_have_value("")
    visitor.expect_text("visitor", "hello")
    bot = visitor.expect_text("bot", "Hi! I'm Nori")
    expect(visitor.messages("bot").first.locator(".hw-author")).to_have_text("Nori")
    expect(visitor.messages("visitor").first.locator("time")).to_have_text(re.compile(r"\d{1,2}:\d{2}"))

    mine = visitor.bubble("visitor", "hello")
    assert mine.evaluate("e => getComputedStyle(e).backgroundColor") != bot.evaluate("e => getComputedStyle(e).backgroundColor")
    assert mine.bounding_box()["x"] > bot.bounding_box()["x"], "visitor messages sit on the right, bot ones on the left"
    screenshots.take(visitor.page, "greeted")


def test_quick_replies_send_their_payload_and_show_their_title(fake_shop, fake_rasa, new_page, screenshots):
    visitor = Visitor(new_page()).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hi")
    replies = visitor.page.get_by_role("group", name="Suggested replies")
    expect(replies.get_by_role("button")).to_have_count(3)
    screenshots.take(visitor.page, "quick-replies")

    replies.get_by_role("button", name="Shipping info").click()
    expect(visitor.input).to_be_focused()
    visitor.expect_text("visitor", "Shipping info")
    visitor.expect_text("bot", "Standard shipping takes 3 to 5 working days")
    expect(replies).to_be_hidden()  # buttons belong to the latest bot message only
    assert "/ask_shipping" in [m["text"] for m in fake_rasa.session(session_id)["messages"] if m["sender"] == "visitor"]


def test_handoff_waiting_agent_typing_and_end_chat_with_transcript(fake_shop, fake_rasa, new_page, screenshots):
    page = new_page(accept_downloads=True)
    visitor = Visitor(page).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")

    page.get_by_role("button", name="Talk to an agent", exact=True).last.click()
    visitor.expect_text("system", "Connecting you to an agent")
    waiting = page.locator(".hw-waiting")
    expect(waiting).to_be_visible()
    expect(page.locator(".hw-subtitle")).to_have_text("Waiting for an agent…")
    assert visitor.messages("control").count() == 0, "the handoff token payload is not rendered"
    screenshots.take(page, "waiting-for-agent")

    fake_rasa.push(
        session_id, {"text": "Alex joined the chat.", "sender": "system", "event": "agent_joined", "agent": {"name": "Alex"}}
    )
    expect(waiting).to_be_hidden()
    fake_rasa.push(session_id, {"text": "Hi, I'm Alex. How can I help?", "sender": "agent", "agent": {"name": "Alex"}})
    agent_bubble = visitor.expect_text("agent", "Hi, I'm Alex")
    expect(visitor.messages("agent").first.locator(".hw-author")).to_contain_text("Alex")
    expect(page.locator(".hw-subtitle")).to_have_text("You're chatting with Alex")
    bot_bubble = visitor.bubble("bot", "Hi! I'm Nori")
    system_pill = page.locator(".hw-msg--system .hw-system").first
    colours = {e.evaluate("e => getComputedStyle(e).backgroundColor") for e in (agent_bubble, bot_bubble, system_pill)}
    assert len(colours) == 3, f"bot, agent and system messages look alike: {colours}"

    fake_rasa.post("/test/agent_typing", {"session_id": session_id, "typing": True, "agent": "Alex"})
    typing = page.locator(".hw-typing")
    expect(typing).to_contain_text("Alex is typing…")
    visitor.input.type("I need help with my order")
    wait_for(lambda: True in fake_rasa.session(session_id)["typing"], 5, "visitor_typing true")
    screenshots.take(page, "with-agent-typing")
    visitor.input.press("Enter")
    wait_for(lambda: fake_rasa.session(session_id)["typing"][-1] is False, 5, "visitor_typing false")
    fake_rasa.post("/test/agent_typing", {"session_id": session_id, "typing": False})
    expect(typing).to_be_hidden()

    page.get_by_role("button", name="End chat").click()
    visitor.expect_text("system", "The chat has ended.")
    visitor.expect_text("system", "You're back with Nori")
    expect(page.get_by_role("button", name="Talk to an agent", exact=True)).to_be_visible()
    screenshots.take(page, "chat-ended")

    with page.expect_download() as download_info:
        page.locator(".hw-transcript-link").click()
    download = download_info.value
    assert download.suggested_filename.startswith("chat-transcript-") and download.suggested_filename.endswith(".txt")
    transcript = open(download.path(), encoding="utf-8").read()
    for line in (
        "You: hello",
        "Nori: Hi! I'm Nori",
        "Alex (agent): Hi, I'm Alex",
        "You: I need help with my order",
        "* The chat has ended.",
    ):
        assert line in transcript, transcript


def test_markup_from_visitor_bot_and_agent_renders_as_text(fake_shop, fake_rasa, new_page, screenshots):
    page = new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    visitor = Visitor(page).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()

    visitor.send(XSS)
    visitor.expect_text("visitor", XSS)
    visitor.expect_text("bot", f"You said: {XSS}")  # the fake bot echoes it
    fake_rasa.push(session_id, {"text": XSS, "sender": "agent", "agent": {"name": "<b>Eve</b>"}})
    visitor.expect_text("agent", XSS)
    expect(visitor.messages("agent").locator(".hw-author")).to_contain_text("<b>Eve</b>")

    assert page.locator(".hw-log img").count() == 0
    assert page.locator(".hw-log b").count() == 0
    assert page.evaluate("() => window.__xss") is None and not dialogs
    screenshots.take(page, "markup-as-text")


def test_reload_keeps_the_session_and_restores_history_once(fake_shop, fake_rasa, new_page, screenshots):
    page = new_page()
    visitor = Visitor(page).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")
    visitor.send("where is my parcel?")
    visitor.expect_text("bot", "You said: where is my parcel?")
    fake_rasa.push(session_id, {"text": "Alex joined the chat.", "sender": "system", "event": "agent_joined"})
    fake_rasa.push(session_id, {"text": "It left our warehouse today.", "sender": "agent", "agent": {"name": "Alex"}})
    visitor.expect_text("agent", "It left our warehouse today.")
    before = visitor.messages().count()

    page.reload()
    expect(visitor.panel).to_be_visible()  # the panel remembers it was open
    visitor.expect_text("agent", "It left our warehouse today.")
    assert visitor.wait_until_connected() == session_id
    expect(visitor.messages()).to_have_count(before)
    expect(visitor.bubble("visitor", "hello")).to_have_count(1)
    expect(page.locator(".hw-subtitle")).to_have_text("You're chatting with Alex")
    assert fake_rasa.session(session_id)["requests"] >= 2
    screenshots.take(page, "after-reload")


def test_connection_loss_is_announced_and_missed_messages_are_filled_in(fake_shop, fake_rasa, new_page, screenshots):
    page = new_page()
    visitor = Visitor(page).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")

    fake_rasa.stop()
    banner = page.get_by_role("status").filter(has_text="Connection lost")
    expect(banner).to_be_visible()
    expect(page.locator(".hw-subtitle")).to_have_text("Reconnecting…")
    screenshots.take(page, "offline")

    # While the visitor is offline, the agent writes (the server records it).
    state = json.loads(fake_rasa.state.read_text())
    state[session_id]["messages"].append(
        {
            "sender": "agent",
            **on_the_wire(
                {
                    "sender": "agent",
                    "text": "Sent while you were offline",
                    "agent": {"name": "Alex"},
                    "message_sid": "IMmissed",
                    "timestamp": "2030-01-01T00:00:00Z",
                }
            ),
        }
    )
    fake_rasa.state.write_text(json.dumps(state))
    fake_rasa.start()

    expect(page.get_by_role("status").filter(has_text="You're back online")).to_be_visible(timeout=TIMEOUT)
    visitor.expect_text("agent", "Sent while you were offline")
    expect(visitor.bubble("bot", "Hi! I'm Nori")).to_have_count(1)
    expect(visitor.bubble("visitor", "hello")).to_have_count(1)
    screenshots.take(page, "back-online")

    visitor.send("still there?")
    visitor.expect_text("visitor", "still there?")
    wait_for(
        lambda: "still there?" in [m["text"] for m in fake_rasa.session(session_id)["messages"]], 5, "message after reconnect"
    )


def test_unread_badge_while_minimised_and_escape_minimises(fake_shop, fake_rasa, new_page, screenshots):
    page = new_page()
    visitor = Visitor(page).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")

    visitor.input.press("Escape")
    expect(visitor.panel).to_be_hidden()
    expect(visitor.launcher).to_be_focused()
    badge = page.locator(".hw-badge")
    expect(badge).to_be_hidden()

    fake_rasa.push(session_id, {"text": "Are you still there?", "sender": "agent", "agent": {"name": "Alex"}})
    fake_rasa.push(session_id, {"text": "I'm here when you need me.", "sender": "agent", "agent": {"name": "Alex"}})
    expect(badge).to_have_text("2")
    expect(visitor.launcher).to_have_attribute("aria-label", "Open chat, 2 unread messages")
    screenshots.take(page, "unread-badge")

    visitor.launcher.press("Enter")
    expect(visitor.panel).to_be_visible()
    expect(badge).to_be_hidden()
    visitor.expect_text("agent", "I'm here when you need me.")


def test_keyboard_and_aria(fake_shop, new_page):
    page = new_page()
    visitor = Visitor(page).visit(fake_shop)
    launcher = page.get_by_role("button", name="Open chat")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Northwind Help")).to_be_visible()
    expect(visitor.launcher).to_have_attribute("aria-expanded", "true")
    expect(visitor.input).to_be_focused()

    log = page.get_by_role("log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log).to_have_attribute("aria-label", "Conversation")
    for name in ("Send message", "Download transcript", "Minimise chat", "Talk to an agent"):
        expect(page.get_by_role("button", name=name, exact=True).first).to_be_visible()

    visitor.wait_until_connected()
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    visitor.expect_text("bot", "Hi! I'm Nori")
    page.keyboard.press("Escape")
    expect(visitor.panel).to_be_hidden()
    expect(visitor.launcher).to_be_focused()


PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
FULL_SCREEN = {"x": 0, "y": 0, "width": 375, "height": 740}


def layout(page) -> dict:
    """The layout viewport (innerWidth/Height) against the screen (clientWidth/Height: the initial
    containing block) and the page's width. A mobile browser widens the layout viewport past the
    screen when the page overflows horizontally, and every fixed box (the widget's) with it."""
    return page.evaluate("""() => ({
        innerWidth: innerWidth, innerHeight: innerHeight,
        clientWidth: document.documentElement.clientWidth, clientHeight: document.documentElement.clientHeight,
        scrollWidth: document.documentElement.scrollWidth,
        wider: [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
            .slice(0, 5).map(e => e.outerHTML.slice(0, 120)),
    })""")


def settled_box(locator) -> dict:
    """The box once the element's own animations (the panel's opening pop) have finished: during
    them it is scaled and shifted by fractions of a pixel."""
    locator.evaluate("el => Promise.all(el.getAnimations().map(a => a.finished))")
    return locator.bounding_box()


def test_phone_viewport_gets_a_full_screen_panel(fake_shop, new_page, screenshots):
    page = new_page(**PHONE)
    visitor = Visitor(page).visit(fake_shop)
    screenshots.take(page, "phone-shop")
    metrics = layout(page)
    assert (metrics["innerWidth"], metrics["clientWidth"], metrics["scrollWidth"]) == (375, 375, 375), metrics
    assert (metrics["innerHeight"], metrics["clientHeight"]) == (740, 740), metrics
    launcher = visitor.launcher.bounding_box()
    assert launcher["x"] + launcher["width"] <= 375 and launcher["y"] + launcher["height"] <= 740, launcher
    visitor.launcher.tap()
    expect(visitor.panel).to_be_visible()
    assert settled_box(visitor.panel) == FULL_SCREEN, layout(page)
    header = page.locator(".hw-header").bounding_box()
    assert header["y"] == 0 and header["width"] == 375, header
    expect(page.get_by_role("button", name="Minimise chat")).to_be_in_viewport(ratio=1)
    expect(visitor.launcher).to_be_hidden()
    visitor.wait_until_connected()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")
    screenshots.take(page, "phone-chat")
    page.get_by_role("button", name="Minimise chat").tap()
    expect(visitor.panel).to_be_hidden()
    expect(visitor.launcher).to_be_visible()


def test_shop_page_never_overflows_a_phone(fake_shop, new_page):
    # Whatever the fonts' widths: an overflowing page would widen a phone's layout viewport.
    for width in (320, 360, 390, 414, 480):
        page = new_page(**{**PHONE, "viewport": {"width": width, "height": 740}})
        Visitor(page).visit(fake_shop)
        metrics = layout(page)
        assert metrics["innerWidth"] == metrics["clientWidth"] == metrics["scrollWidth"] == width, (width, metrics)
        page.context.close()


def test_phone_panel_fits_the_screen_even_when_the_host_page_overflows(fake_shop, new_page, screenshots):
    # The widget is embedded in other people's pages: one too-wide element there must not push
    # the panel or the launcher off a phone's screen.
    page = new_page(**PHONE)
    page.add_init_script("""document.addEventListener("DOMContentLoaded", () => {
        const wide = document.createElement("div");
        wide.id = "too-wide";
        wide.style.cssText = "width: 600px; height: 40px; background: #c00;";
        document.body.prepend(wide);
    })""")
    visitor = Visitor(page).visit(fake_shop)
    expect(page.locator("#too-wide")).to_be_attached()
    launcher = visitor.launcher.bounding_box()
    assert 0 <= launcher["x"] and launcher["x"] + launcher["width"] <= 375, launcher
    assert 0 <= launcher["y"] and launcher["y"] + launcher["height"] <= 740, launcher
    visitor.launcher.tap()
    assert settled_box(visitor.panel) == FULL_SCREEN, layout(page)
    expect(page.get_by_role("button", name="Minimise chat")).to_be_in_viewport(ratio=1)
    expect(visitor.input).to_be_in_viewport(ratio=1)
    screenshots.take(page, "phone-chat-on-overflowing-page")
