"""Bots' own summarisers, as `HANDOFF_SUMMARISER=tests.unit.summarisers:<name>` names them (tests/unit/test_summary.py)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

from rasa_flex_handoff.summary import Summary

LOADS = [0]  # how often this module was imported (a summariser is loaded once per process)
LOADS[0] += 1
SEEN: List[Dict[str, Any]] = []  # what the summarisers were called with

NOT_CALLABLE = "a summariser must be a function"


def replaced(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> Summary:
    """A whole new summary: the bot's own intents and words."""
    SEEN.append({"events": events, "slots": slots, "summary": summary})
    return dataclasses.replace(summary, intents=("billing",), text="Billing question from a known customer")


def text_only(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> str:
    return f"{summary.text}\nVIP customer"


async def awaited(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> str:
    return "Written by an async summariser"


def raising(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> str:
    raise RuntimeError(f"the model choked on {events[-1]['text']}")  # the visitor's words must not reach the log


def wrong_type(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> Any:
    return {"text": "a dict is not a summary"}


def oversized(events: List[Dict[str, Any]], slots: Dict[str, Any], summary: Summary) -> Summary:
    return Summary(
        intents=tuple(f"i{n}" for n in range(99)), slots={"blob": "x" * 5000}, trigger="magic", bot_seconds=-5, text="y" * 9000
    )
