"""A custom socket.io `namespace` (a key of Rasa's socketio channel) carries the whole handoff.

Rasa 3.6's own socket.io output emits in the default namespace whatever the channel says; a
widget on another namespace would then hear nothing from the bot, the agent or the typing feed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from northwind.processes import wait_for
from northwind.servers import AGENT, AgentDesk, Stack
from tests.handoff.conftest import Visitor, handed_off

NAMESPACE = "/support"


@pytest.fixture(scope="module")
def namespaced(sandbox: AgentDesk, handoff_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        "conversations",
        sandbox,
        handoff_model,
        tmp_path_factory.mktemp("stack-namespace"),
        socketio_options={"namespace": NAMESPACE},
    ).start()
    yield stack
    stack.stop()


def test_bot_agent_and_typing_reach_a_visitor_on_the_channels_namespace(namespaced: Stack) -> None:
    visitor = Visitor(namespaced.url, namespace=NAMESPACE)
    try:
        visitor.say("/greet")
        visitor.wait_for_text("Northwind assistant")
        task = handed_off(namespaced, visitor)
        namespaced.sandbox.accept(task["sid"])
        namespaced.sandbox.send(task["sid"], "Hello from the support namespace")
        visitor.wait_for_text("Hello from the support namespace")

        def typing_seen() -> object:
            namespaced.sandbox.typing(task["sid"])
            return visitor.agent_typing

        seen = wait_for(typing_seen, 15, "agent typing on the namespace", interval=0.5)
        assert seen[0]["agent"] == {"name": AGENT}
        assert visitor.off_contract == []
    finally:
        visitor.close()
