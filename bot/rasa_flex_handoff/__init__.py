"""Hand a Rasa 3.6 website chat to a human agent in Twilio Flex, and back.

The public names, for a bot's configuration files:

- `rasa_flex_handoff.SocketIOInput` and `rasa_flex_handoff.RestInput` in `credentials.yml`;
- `rasa_flex_handoff.HandoffPolicy` in `config.yml`;
- `rasa_flex_handoff.ReplicaSafeRedisLockStore` in `endpoints.yml`;
- the handoff actions, imported from `rasa_flex_handoff.actions` into the bot's action package.

They are imported on first use, so the action server (rasa-sdk, no Rasa) can import
`rasa_flex_handoff.actions` without the Rasa server's dependencies.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("rasa-flex-handoff")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from rasa_flex_handoff.lock_store import ReplicaSafeRedisLockStore
    from rasa_flex_handoff.policy import HandoffPolicy
    from rasa_flex_handoff.rest import RestInput
    from rasa_flex_handoff.socketio import SocketIOInput
    from rasa_flex_handoff.summary import Summary

_PUBLIC = {
    "SocketIOInput": "rasa_flex_handoff.socketio",
    "RestInput": "rasa_flex_handoff.rest",
    "HandoffPolicy": "rasa_flex_handoff.policy",
    "ReplicaSafeRedisLockStore": "rasa_flex_handoff.lock_store",
    "Summary": "rasa_flex_handoff.summary",  # what a bot's own summariser (HANDOFF_SUMMARISER) gets and may return
}

__all__ = ["HandoffPolicy", "ReplicaSafeRedisLockStore", "RestInput", "SocketIOInput", "Summary", "__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'rasa_flex_handoff' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
