"""Notices in the bot's words: a `chat_state.Notice` worded through Rasa's NLG into the bot turn the visitor is shown.

The connector words notices as Rasa words a bot's own responses (`utter_*` actions): the
domain's variations, conditions on slots, `channel:` variations and an NLG server all apply, and
`{agent}` is filled in. A response the bot lacks is reported at startup; should one still be
missing, the visitor is told nothing and the log names the response, rather than a turn failing.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from rasa.core.agent import Agent
from rasa.shared.core.events import BotUttered
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import handoff
from rasa_flex_handoff.chat_state import Notice

logger = logging.getLogger(__name__)


async def word(agent: Agent, notice: Notice, tracker: DialogueStateTracker, output_channel: str) -> Optional[BotUttered]:
    """The notice as a bot turn for `output_channel`, worded for this tracker's state; None when it cannot be worded."""
    responses = agent.domain.responses if agent.domain else {}
    try:
        generated = await agent.nlg.generate(
            notice.response, tracker, output_channel, domain_responses=responses, **notice.variables
        )
    except Exception:  # an NLG server failing must not fail the webhook or the relay
        logger.exception("could not word the handoff notice %s", notice.response)
        return None
    text = generated.get("text") if isinstance(generated, dict) else None
    if not isinstance(text, str) or not text.strip():
        logger.error(
            "the bot has no text for the response %s (channel %s): add it to the domain; the visitor was not told",
            notice.response,
            output_channel,
        )
        return None
    metadata: Dict[str, Any] = {"utter_action": notice.response, **notice.metadata}
    if notice.spoken_by is not None:
        metadata["handoff"] = {**metadata.get("handoff", {}), "body": text}
        text = handoff.agent_text(notice.spoken_by, text)
    buttons = generated.get("buttons") if isinstance(generated, dict) else None
    return BotUttered(text, data={"buttons": buttons} if buttons else None, metadata=metadata)
