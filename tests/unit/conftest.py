"""A Flex sandbox process for the unit tests that check a Flex client against Twilio's wire format."""

from __future__ import annotations

from typing import Iterator

import pytest

from northwind.servers import Sandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One in-memory sandbox for the unit tests that need one (started only when a test asks)."""
    server = start_sandbox(tmp_path_factory.mktemp("sandbox-unit"), "flex-sandbox-unit")
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, with the faults a test injected cleared afterwards."""
    yield sandbox
    sandbox.clear_faults()
