"""Notices are worded by Rasa's NLG from the bot's domain: variations per channel, `{agent}`, a missing response."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List

import pytest
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import handoff, notices
from rasa_flex_handoff.chat_state import Notice

RESPONSES: Dict[str, List[Dict[str, Any]]] = {
    "utter_handoff_agent_joined": [
        {"text": "{agent} ist dem Chat beigetreten."},
        {"text": "{agent} joined (shop widget).", "channel": "handoff_socketio"},
    ],
    "utter_handoff_attachment": [{"text": "(a file)"}],
    "utter_handoff_agent_ended": [{"image": "https://example.com/bye.png"}],
}


@dataclass
class FakeAgent:
    """The two things `notices.word` uses of Rasa's Agent."""

    domain: Domain
    nlg: TemplatedNaturalLanguageGenerator


@pytest.fixture
def agent() -> Any:
    domain = Domain.from_dict({"responses": RESPONSES})
    return FakeAgent(domain, TemplatedNaturalLanguageGenerator(domain.responses))


def joined() -> Notice:
    return Notice(handoff.UTTER_AGENT_JOINED, handoff.handoff_metadata("system", event="agent_joined"), {"agent": "Alice"})


async def test_a_notice_is_worded_for_its_channel_with_the_agents_name(agent: Any) -> None:
    tracker = DialogueStateTracker("sender-1", [])
    worded = await notices.word(agent, joined(), tracker, "handoff_rest")
    assert worded is not None and worded.text == "Alice ist dem Chat beigetreten."
    assert worded.metadata == {
        "utter_action": "utter_handoff_agent_joined",
        "handoff": {"role": "system", "event": "agent_joined"},
    }
    on_socket = await notices.word(agent, joined(), tracker, "handoff_socketio")
    assert on_socket is not None and on_socket.text == "Alice joined (shop widget)."


async def test_a_stand_in_reads_as_the_agents_message(agent: Any) -> None:
    notice = Notice(
        handoff.UTTER_ATTACHMENT, handoff.handoff_metadata("agent", agent="alice", message_sid="IM1"), spoken_by="alice"
    )
    worded = await notices.word(agent, notice, DialogueStateTracker("sender-1", []), "handoff_socketio")
    assert worded is not None and worded.text == "alice: (a file)"
    assert worded.metadata["handoff"] == {"role": "agent", "agent": "alice", "message_sid": "IM1", "body": "(a file)"}


@pytest.mark.parametrize("response", ["utter_handoff_agent_left", "utter_handoff_agent_ended"], ids=["missing", "no text"])
async def test_a_response_without_text_is_logged_by_name_and_not_sent(
    agent: Any, response: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="rasa_flex_handoff.notices"):
        worded = await notices.word(agent, Notice(response, {}), DialogueStateTracker("sender-1", []), "handoff_socketio")
    assert worded is None
    assert response in caplog.text
