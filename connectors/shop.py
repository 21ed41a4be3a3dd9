"""The demo shop's channel: the plugin's socket.io channel, told who the logged-in customer is.

The worked example of extending the plugin. The shop page puts the signed-in customer into the
widget's message metadata (`{"customer": {"name": ..., "email": ...}}`); this channel hands
that to the plugin, which signs it into the message, so the agent in Flex sees who they talk to
without asking. A page with no signed-in customer sends nothing, and the agent sees the default.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rasa_flex_handoff import SocketIOInput


class ShopSocketIOInput(SocketIOInput):
    """`rasa_flex_handoff.SocketIOInput` plus the shop's logged-in customer."""

    def visitor(self, metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        customer = metadata.get("customer")
        if not isinstance(customer, dict):
            return None
        return {"name": customer.get("name"), "email": customer.get("email")}
