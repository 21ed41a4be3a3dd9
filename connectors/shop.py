"""The demo shop's channel: the plugin's socket.io channel, told who the logged-in customer is.

The worked example of extending the plugin. The shop page puts the signed-in customer into the
widget's message metadata (`{"customer": {"name": ..., "email": ..., "customer_id": ...}}`); this
channel hands that to the plugin, which signs it into the message, so the agent in Flex sees who
they talk to without asking (marked verified; Flex Insights gets it as the task's `customers`).
A page with no signed-in customer sends nothing: the agent sees what the visitor typed into the
widget's pre-engagement form, marked unverified, or the default.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rasa_flex_handoff import SocketIOInput


def shop_customer(metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The signed-in customer the shop page put in the message metadata (None: nobody is signed in)."""
    customer = metadata.get("customer")
    if not isinstance(customer, dict):
        return None
    customer_id = customer.get("customer_id")  # the shop's own id, a number or a string
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        customer_id = str(customer_id)
    return {"name": customer.get("name"), "email": customer.get("email"), "customer_id": customer_id}


class ShopSocketIOInput(SocketIOInput):
    """`rasa_flex_handoff.SocketIOInput` plus the shop's logged-in customer."""

    def visitor(self, metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return shop_customer(metadata)
