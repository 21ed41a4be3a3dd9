"""Fixtures for tests against a real Flex sandbox process; other suites can reuse `sandbox` and `webhooks`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest
import requests
from twilio.rest import Client

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff.settings import Settings, settings_from_env
from rasa_flex_handoff.twilio_http import twilio_client
from tests.sandbox.webhook_receiver import WebhookReceiver
from tests.servers import ServerProcess, free_port

CREDENTIALS = {
    "TWILIO_ACCOUNT_SID": DEVELOPMENT.account_sid,
    "TWILIO_AUTH_TOKEN": DEVELOPMENT.auth_token,
    "TWILIO_API_KEY": DEVELOPMENT.api_key,
    "TWILIO_API_SECRET": DEVELOPMENT.api_secret,
}


@dataclass
class Sandbox:
    """A running sandbox: where it is, settings/clients aimed at it, and the SIDs it provisioned."""

    base_url: str
    settings: Settings
    client: Client
    process: ServerProcess
    info: Dict[str, Any]

    @property
    def flex_flow_sid(self) -> str:
        return self.info["flex_flow_sid"]

    @property
    def chat_service_sid(self) -> str:
        return self.info["chat_service_sid"]

    @property
    def address_sid(self) -> str:
        return self.info["conversations_address_sid"]

    def async_client(self) -> Client:
        """A client whose `*_async` methods work (create it inside the event loop that uses it)."""
        return twilio_client(self.settings, asynchronous=True)

    def agent(self, method: str, path: str, json: Optional[Dict[str, Any]] = None) -> requests.Response:
        """Call the sandbox's agent JSON API or control endpoints (no Twilio auth)."""
        return requests.request(method, self.base_url + path, json=json, timeout=10)

    def clear_faults(self) -> None:
        self.agent("DELETE", "/sandbox/faults").raise_for_status()


def start_sandbox(log_dir: Path, name: str = "flex-sandbox", db: Optional[Path] = None,
                  port: Optional[int] = None, extra_env: Optional[Dict[str, str]] = None,
                  credentials: Optional[Dict[str, str]] = None) -> Sandbox:
    """Start `python -m flex_sandbox` as a real process and wait for /health.

    `credentials` (the four `TWILIO_*` variables of `CREDENTIALS`) run it as another account;
    the returned `settings`/`client` use the same ones.
    """
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    storage = ["--db", str(db)] if db else ["--in-memory"]
    credentials = credentials or CREDENTIALS
    env = {**credentials, "TWILIO_API_BASE": "", "FLEX_SANDBOX_RETRY_DELAY": "0.05", **(extra_env or {})}
    process = ServerProcess(name, [sys.executable, "-m", "flex_sandbox", "--port", str(port), *storage],
                            f"{base_url}/health", log_dir, env=env, startup_timeout=30).start()
    settings = settings_from_env({**credentials, "TWILIO_API_BASE": base_url, "PUBLIC_URL": "http://127.0.0.1:5005"})
    info = requests.get(f"{base_url}/health", timeout=5).json()
    return Sandbox(base_url, settings, twilio_client(settings), process, info)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One in-memory sandbox for the whole session (webhook retry delay shortened to 50 ms)."""
    server = start_sandbox(tmp_path_factory.mktemp("sandbox-logs"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def webhooks() -> Iterator[WebhookReceiver]:
    """A signature-checking webhook receiver on a free port."""
    receiver = WebhookReceiver(DEVELOPMENT.auth_token).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def hook(request: pytest.FixtureRequest, webhooks: WebhookReceiver) -> str:
    """A receiver path name unique to this test."""
    return request.node.name.replace("[", "_").replace("]", "_")


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").clear_faults()
