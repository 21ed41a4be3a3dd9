"""A user's own channel built on ours under another name: capabilities travel with the class, not the name."""

from __future__ import annotations

from typing import Any, Dict, Optional

from connectors.shop import shop_customer
from rasa_flex_handoff.rest import RestInput


class SupportChatInput(RestInput):
    """Our REST channel, renamed as a user might subclass it (served at /webhooks/support_chat/...).

    Like the demo shop's socket.io channel (connectors/shop.py), it vouches for the signed-in
    customer a page sends as `metadata.customer` (tests/handoff/test_summary.py).
    """

    @classmethod
    def name(cls) -> str:
        return "support_chat"

    def visitor(self, metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return shop_customer(metadata)
