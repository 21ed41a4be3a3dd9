"""A bot's own summariser, as the handoff tests' action servers load it (`HANDOFF_SUMMARISER`, tests/handoff/conftest.py)."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_flex_handoff.summary import Summary

SIGNED = "(summarised by the Northwind test bot)"


def signed(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> str:
    """The default summary's text, signed: the agent's first message shows the hook ran in the action server."""
    return f"{summary.text}\n{SIGNED}"
