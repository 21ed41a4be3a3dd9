"""Fixtures for tests against a real Flex sandbox process; other suites can reuse `sandbox` and `webhooks`."""

from __future__ import annotations

from typing import Iterator

import pytest

from flex_sandbox.credentials import DEVELOPMENT
from northwind.servers import Sandbox, start_sandbox
from tests.sandbox.webhook_receiver import WebhookReceiver


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
