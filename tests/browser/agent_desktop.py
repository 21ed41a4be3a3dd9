"""The agent's side of a browser test: the Flex sandbox's agent desktop (/agent), seen through Playwright."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

TIMEOUT = 15_000


class AgentDesktop:
    """Drives the sandbox desktop like an agent: go available, pick a task, accept, chat, end."""

    def __init__(self, page: Page, sandbox_url: str, name: str) -> None:
        self.page = page
        self.name = name
        page.goto(f"{sandbox_url}/agent")
        expect(page.locator("#live")).to_have_class("live on", timeout=TIMEOUT)
        page.fill("#agent-name", name)
        page.click("#agent-save")
        expect(page.locator("#agent-status")).to_contain_text(name)

    def task(self, customer_text: str | None = None) -> Locator:
        tasks = self.page.locator("#task-list li.task")
        return tasks.filter(has_text=customer_text) if customer_text else tasks

    def open_task(self, task: Locator) -> None:
        expect(task).to_be_visible(timeout=TIMEOUT)
        task.click()
        expect(self.page.locator("#task-view")).to_be_visible()

    @property
    def transcript(self) -> Locator:
        """The bot conversation handed over with the task (pre-engagement data)."""
        return self.page.locator("#pre-engagement .transcript")

    def accept(self) -> None:
        self.page.click("#accept")
        expect(self.page.locator("#composer")).to_be_visible(timeout=TIMEOUT)

    def messages(self, role: str | None = None) -> Locator:
        return self.page.locator(f"#messages li.message{'.role-' + role if role else ''}")

    def expect_message(self, text: str, role: str | None = None) -> Locator:
        message = self.messages(role).filter(has_text=text)
        expect(message).to_be_visible(timeout=TIMEOUT)
        return message

    def send(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.press("#message-input", "Enter")
        self.expect_message(text, role="agent")

    def end_chat(self) -> None:
        self.page.click("#end")
