"""The widget's routing states (design #14): out of hours, no agents, the offer, leaving a message,
the queue, nobody accepting, transfers. tests/browser/fake_rasa.py sends each state as the connector
does over socket.io: Rasa's `{text}` / `{text, quick_replies}` with `metadata.handoff`.

Each state's screenshot goes to tests/.output/browser/ like every step; with
WIDGET_DOCS_SCREENSHOTS=1 the chat panel is also saved to bot/northwind/widget/docs/routing/ for
the README tour (opt-in: the checked-in images should change only when someone means them to).
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect

from northwind.processes import ROOT, wait_for
from tests.browser.visitor import Visitor

DOCS = ROOT / "bot" / "northwind" / "widget" / "docs" / "routing"
DEFAULT_SUBTITLE = "Nori answers right away"  # the shop page's data-subtitle


def shoot(screenshots, page: Page, state: str) -> None:
    screenshots.take(page, state)
    if os.environ.get("WIDGET_DOCS_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        page.locator(".hw-panel").screenshot(path=str(DOCS / f"{state}.png"), animations="disabled")


def sent(fake_rasa, session_id: str) -> list:
    return [m["text"] for m in fake_rasa.session(session_id)["messages"] if m["sender"] == "visitor"]


def expect_sent(fake_rasa, session_id: str, payload: str) -> None:
    wait_for(lambda: payload in sent(fake_rasa, session_id), 5, f"the visitor's {payload}")


def start(fake_shop, fake_rasa, new_page, route: str | None = None) -> tuple[Visitor, str]:
    """A visitor on the shop with the chat open; `route` says how their request for an agent goes."""
    visitor = Visitor(new_page()).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    fake_rasa.post("/test/route", {"session_id": session_id, "route": route})
    return visitor, session_id


def ask_for_agent(visitor: Visitor) -> None:
    visitor.page.get_by_role("button", name="Talk to an agent", exact=True).click()


def offer_button(page: Page, title: str):
    return page.get_by_role("group", name="Suggested replies").get_by_role("button", name=title, exact=True)


def subtitle(page: Page):
    return page.locator(".hw-subtitle")


def system_notice(page: Page, event: str):
    return page.locator(f".hw-log .hw-msg[data-event='{event}']")


def test_out_of_hours_offer_then_leave_a_message(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="closed")
    page = visitor.page
    ask_for_agent(visitor)

    card = system_notice(page, "unavailable")
    expect(card.locator(".hw-card__title")).to_have_text("We're closed right now")
    expect(card).to_contain_text("we answer chats Monday to Friday")
    expect(subtitle(page)).to_have_text("We're closed right now")
    expect(page.locator(".hw-waiting")).to_be_hidden()  # nothing to wait for
    offer = system_notice(page, "offer")
    expect(offer.locator(".hw-bubble")).to_have_text("You can leave a message for our team, or keep chatting with me.")
    expect(offer.locator(".hw-author")).to_have_text("Nori")
    expect(page.get_by_role("group", name="Suggested replies").get_by_role("button")).to_have_text(
        ["Leave a message", "Stay with the bot"]
    )
    shoot(screenshots, page, "out-of-hours-offer")

    offer_button(page, "Leave a message").click()
    expect_sent(fake_rasa, session_id, "/handoff_leave_message")
    visitor.expect_text("visitor", "Leave a message")  # the title, not the payload
    expect(system_notice(page, "leave_message")).to_contain_text("What would you like to tell our team?")
    prompt = page.locator(".hw-prompt")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("Leave a message for our team")
    expect(visitor.input).to_have_attribute("placeholder", "Type your message for our team…")
    expect(visitor.input).to_be_focused()
    expect(subtitle(page)).to_have_text("Leaving a message for our team")
    expect(offer_button(page, "Leave a message")).to_be_hidden()  # answered
    shoot(screenshots, page, "leave-a-message")

    visitor.send("My parcel NW-12345 arrived damaged. jordan.lee@example.com")
    expect_sent(fake_rasa, session_id, "My parcel NW-12345 arrived damaged. jordan.lee@example.com")
    confirmation = system_notice(page, "message_left")
    expect(confirmation.locator(".hw-card__title")).to_have_text("Message sent")
    expect(confirmation).to_contain_text("Your message is with our team")
    expect(prompt).to_be_hidden()
    expect(visitor.input).to_have_attribute("placeholder", "Type your message…")
    expect(subtitle(page)).to_have_text("Message sent: we'll get back to you")
    shoot(screenshots, page, "message-left")

    visitor.send("hello")  # the bot again
    visitor.expect_text("bot", "Hi! I'm Nori")
    expect(subtitle(page)).to_have_text(DEFAULT_SUBTITLE)


def test_no_agents_offer_then_stay_with_the_bot(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="no_agents")
    page = visitor.page
    ask_for_agent(visitor)

    card = system_notice(page, "unavailable")
    expect(card.locator(".hw-card__title")).to_have_text("No agents available")
    expect(card).to_contain_text("All our agents are busy or away")
    expect(subtitle(page)).to_have_text("No agents available right now")
    expect(offer_button(page, "Stay with the bot")).to_be_visible()
    shoot(screenshots, page, "no-agents-offer")

    offer_button(page, "Stay with the bot").click()
    expect_sent(fake_rasa, session_id, "/handoff_stay")
    visitor.expect_text("visitor", "Stay with the bot")
    expect(system_notice(page, "stay")).to_contain_text("I'm still here")
    expect(subtitle(page)).to_have_text(DEFAULT_SUBTITLE)
    expect(page.locator(".hw-prompt")).to_be_hidden()
    expect(page.get_by_role("group", name="Suggested replies")).to_be_hidden()
    visitor.send("hello")
    visitor.expect_text("bot", "Hi! I'm Nori")


def test_queue_position_and_wait_update_in_place_and_cancel_ends_the_chat(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="queue")
    page = visitor.page
    ask_for_agent(visitor)

    waiting = page.locator(".hw-waiting")
    expect(waiting.locator(".hw-waiting__title")).to_have_text("You are number 3 in line · about 4 min")
    expect(subtitle(page)).to_have_text("Waiting for an agent…")
    queue_notices = system_notice(page, "queue")
    expect(queue_notices).to_have_count(1)
    expect(page.locator(".hw-action")).to_be_hidden()  # Cancel lives in the waiting panel

    visitor.send("is it long?")  # relayed while waiting
    fake_rasa.push(
        session_id,
        {
            "text": "You are number 2 in line. The wait is about 2 min.",
            "sender": "system",
            "event": "queue",
            "position": 2,
            "eta_seconds": 100,
        },
    )
    expect(waiting.locator(".hw-waiting__title")).to_have_text("You are number 2 in line · about 2 min")
    expect(queue_notices).to_have_count(1)  # updated in place, no pile of bubbles
    expect(queue_notices).to_contain_text("You are number 2 in line.")
    fake_rasa.push(
        session_id,
        {"text": "You are number 1 in line.", "sender": "system", "event": "queue", "position": 1, "eta_seconds": None},
    )
    expect(waiting.locator(".hw-waiting__title")).to_have_text("You are number 1 in line")
    expect(queue_notices).to_have_count(1)
    fake_rasa.push(
        session_id,
        {
            "text": "You are number 1 in line. The wait is about 1 min.",
            "sender": "system",
            "event": "queue",
            "position": 1,
            "eta_seconds": 45,
        },
    )
    expect(waiting.locator(".hw-waiting__title")).to_have_text("You are number 1 in line · about 1 min")
    shoot(screenshots, page, "waiting-in-queue")

    waiting.get_by_role("button", name="Cancel", exact=True).click()
    expect_sent(fake_rasa, session_id, "/end_chat")
    visitor.expect_text("system", "The chat has ended.")
    expect(waiting).to_be_hidden()
    expect(page.get_by_role("button", name="Talk to an agent", exact=True)).to_be_visible()


@pytest.mark.parametrize(
    "decision",
    [
        {"text": "Sam joined the chat.", "event": "agent_joined", "agent": {"name": "Sam"}},
        {"text": "The agent has ended the chat.", "event": "chat_closed"},
        {"text": "You're back with Nori.", "event": "bot_resumed"},
        {"text": "Sorry, nobody could take the chat just now.", "event": "not_accepted"},
    ],
    ids=lambda decision: decision["event"],
)
def test_waiting_panel_goes_once_the_wait_is_decided(fake_shop, fake_rasa, new_page, decision):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="queue")
    ask_for_agent(visitor)
    waiting = visitor.page.locator(".hw-waiting")
    expect(waiting).to_contain_text("You are number 3 in line")
    # On its own (not_accepted without the offer and bot_resumed that follow it): the decision itself ends the wait.
    fake_rasa.post("/test/push", {"session_id": session_id, "payload": {"sender": "system", **decision}, "follow_up": False})
    visitor.expect_text("system", decision["text"])
    expect(waiting).to_be_hidden()


def test_nobody_accepted_then_the_offer_still_works_with_the_bot_back(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="queue")
    page = visitor.page
    ask_for_agent(visitor)
    expect(page.locator(".hw-waiting")).to_be_visible()

    # As the plugin does it: not_accepted, the offer, bot_resumed (the fake sends the last two).
    fake_rasa.push(
        session_id, {"text": "Sorry, nobody could take the chat just now.", "sender": "system", "event": "not_accepted"}
    )
    card = system_notice(page, "not_accepted")
    expect(card.locator(".hw-card__title")).to_have_text("Nobody could take the chat")
    expect(card).to_contain_text("Sorry, nobody could take the chat just now.")
    visitor.expect_text("system", "You're back with Nori")
    expect(page.locator(".hw-waiting")).to_be_hidden()
    expect(subtitle(page)).to_have_text("No agent could take the chat")
    expect(offer_button(page, "Leave a message")).to_be_visible()  # the notice after it does not take it away
    shoot(screenshots, page, "not-accepted")

    offer_button(page, "Leave a message").click()
    expect_sent(fake_rasa, session_id, "/handoff_leave_message")
    expect(page.locator(".hw-prompt")).to_be_visible()


def test_transfer_waits_again_then_names_the_new_agent(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = start(fake_shop, fake_rasa, new_page)
    page = visitor.page
    ask_for_agent(visitor)
    visitor.expect_text("system", "Connecting you to an agent")
    fake_rasa.push(
        session_id, {"text": "Alice joined the chat.", "sender": "system", "event": "agent_joined", "agent": {"name": "Alice"}}
    )
    fake_rasa.push(
        session_id, {"text": "Hi, I'm Alice. Let me find someone from returns.", "sender": "agent", "agent": {"name": "Alice"}}
    )
    visitor.expect_text("agent", "Let me find someone from returns")
    expect(subtitle(page)).to_have_text("You're chatting with Alice")
    avatar = page.locator(".hw-header__avatar")
    expect(avatar).to_have_text("A")

    fake_rasa.push(
        session_id,
        {
            "text": "Alice is transferring you to a colleague.",
            "sender": "system",
            "event": "transferring",
            "agent": {"name": "Alice"},
        },
    )
    waiting = page.locator(".hw-waiting")
    expect(waiting.locator(".hw-waiting__title")).to_have_text("Alice is transferring you…")
    expect(subtitle(page)).to_have_text("Being transferred…")
    expect(avatar.locator(".hw-header__initials")).to_have_count(0)  # nobody in the chat right now
    visitor.expect_text("system", "Alice is transferring you to a colleague.")
    shoot(screenshots, page, "transferring")

    fake_rasa.push(
        session_id, {"text": "Bob joined the chat.", "sender": "system", "event": "agent_joined", "agent": {"name": "Bob Stone"}}
    )
    expect(subtitle(page)).to_have_text("You're chatting with Bob Stone")
    expect(avatar).to_have_text("BS")
    expect(waiting).to_be_hidden()
    fake_rasa.push(
        session_id,
        {"text": "Hi, Bob from returns here. What's the order number?", "sender": "agent", "agent": {"name": "Bob Stone"}},
    )
    visitor.expect_text("agent", "Bob from returns")
    expect(page.locator(".hw-action")).to_have_text("End chat")
    shoot(screenshots, page, "new-agent-joined")


def test_reload_while_queued_restores_the_latest_place_in_line(fake_shop, fake_rasa, new_page):
    visitor, session_id = start(fake_shop, fake_rasa, new_page, route="queue")
    page = visitor.page
    ask_for_agent(visitor)
    fake_rasa.push(
        session_id,
        {
            "text": "You are number 2 in line. The wait is about 3 min.",
            "sender": "system",
            "event": "queue",
            "position": 2,
            "eta_seconds": 170,
        },
    )
    expect(page.locator(".hw-waiting__title")).to_have_text("You are number 2 in line · about 3 min")

    page.reload()
    expect(page.locator(".hw-waiting__title")).to_have_text("You are number 2 in line · about 3 min")
    assert visitor.wait_until_connected() == session_id
    expect(system_notice(page, "queue")).to_have_count(1)
    expect(system_notice(page, "queue")).to_contain_text("You are number 2 in line.")
