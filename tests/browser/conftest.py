"""Browser fixtures: headless Debian Chromium through Python Playwright, servers, screenshots."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Iterator, List

import pytest

from northwind.processes import ROOT, ServerProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / ".output" / "browser"
LOGS = SCREENSHOTS / "logs"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API allows one running instance per thread, and other
    # suites (tests/sandbox) start their own.
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make install` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Screenshots:
    """Screenshots of a test's pages, named after the test: at chosen steps and at the end."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^\w.-]+", "_", test_name)
        self.pages: List = []
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{self.prefix}--*.png"):
            old.unlink()

    def watch(self, page) -> None:
        self.pages.append(page)

    def take(self, page, step: str) -> Path:
        self.count += 1
        path = SCREENSHOTS / f"{self.prefix}--{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return path

    def final(self, outcome: str) -> None:
        for index, page in enumerate(self.pages):
            if not page.is_closed():
                try:
                    page.screenshot(path=str(SCREENSHOTS / f"{self.prefix}--{outcome}-{index}.png"))
                except Exception:  # noqa: BLE001 - a crashed page must not hide the test's own failure
                    pass


@pytest.fixture
def screenshots(request) -> Screenshots:
    return Screenshots(request.node.name)


@pytest.fixture
def new_page(request, browser, screenshots):
    """Opens a page in a fresh browser context (its own localStorage); afterwards screenshots
    every page (named `...--passed-N.png` or `...--failed-N.png`) and closes the contexts."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context_options})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        screenshots.watch(page)
        return page

    yield open_page
    report = getattr(request.node, "report_call", None)
    screenshots.final("failed" if report is None or report.failed else "passed")
    for context in contexts:
        context.close()


class FakeRasa:
    """tests/browser/fake_rasa.py in a subprocess, restartable on the same port with its state."""

    def __init__(self, port: int, state: Path) -> None:
        self.port = port
        self.state = state
        self.url = f"http://127.0.0.1:{port}"
        self.process = self._process()

    def _process(self) -> ServerProcess:
        return ServerProcess(
            "fake-rasa",
            [sys.executable, "-m", "tests.browser.fake_rasa", "--port", str(self.port), "--state", str(self.state)],
            f"{self.url}/health",
            LOGS,
            env={"PYTHONPATH": str(ROOT)},
            startup_timeout=60,
        )

    def start(self) -> FakeRasa:
        self.process = self._process().start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())

    def session(self, session_id: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/test/sessions/{session_id}", timeout=5) as r:
            return json.loads(r.read())

    def push(self, session_id: str, payload: dict) -> None:
        self.post("/test/push", {"session_id": session_id, "payload": payload})


@pytest.fixture(scope="session")
def fake_rasa(tmp_path_factory) -> Iterator[FakeRasa]:
    server = FakeRasa(free_port(), tmp_path_factory.mktemp("fake-rasa") / "state.json").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_shop(fake_rasa) -> Iterator[str]:
    """The demo shop page (python -m northwind.widget) pointed at the fake Rasa server."""
    port = free_port()
    shop = ServerProcess(
        "shop-fake",
        [
            sys.executable,
            "-m",
            "northwind.widget",
            "--port",
            str(port),
            "--rasa-url",
            fake_rasa.url,
            "--history-url",
            "{serverUrl}/history/{session_id}",
        ],
        f"http://127.0.0.1:{port}/health",
        LOGS,
        env={"PYTHONPATH": str(ROOT)},
        startup_timeout=60,
    ).start()
    yield f"http://127.0.0.1:{port}/"
    shop.stop()
