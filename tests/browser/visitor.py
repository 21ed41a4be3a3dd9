"""The website visitor's side of a browser test: the chat widget on a page, seen through Playwright."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

TIMEOUT = 10_000


class Visitor:
    """Drives the widget like a visitor: open it, type, click; locators pierce its shadow root."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def visit(self, url: str) -> Visitor:
        self.page.goto(url)
        expect(self.launcher).to_be_visible(timeout=TIMEOUT)
        return self

    @property
    def launcher(self) -> Locator:
        return self.page.locator(".hw-launcher")

    @property
    def panel(self) -> Locator:
        return self.page.locator(".hw-panel")

    @property
    def input(self) -> Locator:
        return self.page.get_by_role("textbox", name="Type your message")

    @property
    def log(self) -> Locator:
        return self.page.get_by_role("log")

    def messages(self, sender: str | None = None) -> Locator:
        selector = f".hw-msg[data-sender='{sender}']" if sender else ".hw-msg"
        return self.log.locator(selector)

    def bubble(self, sender: str, text: str) -> Locator:
        if sender == "system":
            return self.messages("system").filter(has_text=text)
        return self.messages(sender).locator(".hw-bubble", has_text=text)

    def open_chat(self) -> Visitor:
        if self.launcher.get_attribute("aria-expanded") != "true":
            self.launcher.click()
        expect(self.panel).to_be_visible()
        return self

    def wait_until_connected(self) -> str:
        """Waits for a confirmed session; returns its id."""
        self.page.wait_for_function(
            "() => window.HandoffWidget.instance && window.HandoffWidget.instance.connection"
            " && window.HandoffWidget.instance.connection.ready",
            timeout=TIMEOUT,
        )
        return self.session_id()

    def session_id(self) -> str:
        return self.page.evaluate("() => localStorage.getItem('handoff-widget:session_id')")

    def send(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")

    def expect_text(self, sender: str, text: str) -> Locator:
        bubble = self.bubble(sender, text)
        expect(bubble).to_be_visible(timeout=TIMEOUT)
        return bubble
