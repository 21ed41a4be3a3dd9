"""The bot's own summariser: `HANDOFF_SUMMARISER=package.module:function`, loaded once, never able to stop a handoff.

The function is called in the action server as the handoff starts, after the default summary
is made: `function(events: List[dict], slots: dict, summary: Summary) -> Summary | str` (it may
be `async`). A `Summary` replaces the default (kept within the same bounds), a `str` replaces
its text only. It runs inside the handoff action, so it should answer quickly.

An import that fails stops the action server at start, naming the variable
(`startup.check_action_server_start`); a summariser that raises or returns something else when
called is logged (its type only, no conversation text) and the default summary is used.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from rasa_flex_handoff.summary import Summary, bounded, summarise

logger = logging.getLogger(__name__)

VARIABLE = "HANDOFF_SUMMARISER"

Summariser = Callable[[List[Dict[str, Any]], Dict[str, Any], Summary], Any]


class SummariserError(ValueError):
    """HANDOFF_SUMMARISER names nothing that can be called; the message says what, on one line."""


@functools.lru_cache(maxsize=8)
def load(spec: str) -> Summariser:
    """The function `spec` ("package.module:function") names, imported once per process."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise SummariserError(f"{VARIABLE} ({spec!r}): expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - whatever the bot's module raises while loading, say so in one line
        raise SummariserError(f"{VARIABLE}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise SummariserError(f"{VARIABLE}: {module_name} has no {function_name}")
    if not callable(function):
        raise SummariserError(f"{VARIABLE}: {module_name}.{function_name} is not callable")
    return function  # type: ignore[no-any-return]


def _as_dict(event: Any) -> Dict[str, Any]:
    return event if isinstance(event, dict) else event.as_dict()


async def summary_for(spec: Optional[str], events: Iterable[Any], slots: Mapping[str, Any]) -> Summary:
    """The summary of a conversation about to be handed off: the default, or what the bot's summariser makes of it."""
    events = [_as_dict(event) for event in events]
    default = summarise(events, slots)
    if not spec:
        return default
    try:
        function = load(spec)
    except SummariserError as e:  # the action server checked at start; the module broke since (or was never checked)
        logger.error("%s; the default summary is used", e)
        return default
    try:
        made = function(events, dict(slots), default)
        if inspect.isawaitable(made):
            made = await made
        if isinstance(made, str):
            return bounded(dataclasses.replace(default, text=made))
        if isinstance(made, Summary):
            return bounded(made)  # its fields as the bot set them, within bounds (or it raises: the default)
    except Exception as e:  # noqa: BLE001 - a bot's summariser must never stop a handoff
        logger.warning("%s %s failed (%s); the default summary is used", VARIABLE, spec, type(e).__name__)
        return default
    logger.warning("%s %s returned %s, not a Summary or str; the default summary is used", VARIABLE, spec, type(made).__name__)
    return default
