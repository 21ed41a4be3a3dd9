"""Order lookup and the order-status form: plain functions plus thin rasa-sdk actions."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

ORDERS_FILE = Path(__file__).with_name("orders.csv")
_ORDER_NUMBER = re.compile(r"^\s*NW[\s-]?(\d{5})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Order:
    number: str
    status: str
    carrier: str
    eta: str
    items: str


def normalize_order_number(text: Optional[str]) -> Optional[str]:
    """Accept what visitors type (`nw 12345`, `NW12345`) and return the canonical `NW-12345`."""
    if not text:
        return None
    match = _ORDER_NUMBER.match(text)
    return f"NW-{match.group(1)}" if match else None


def load_orders(path: Path = ORDERS_FILE) -> Dict[str, Order]:
    with path.open(newline="", encoding="utf-8") as f:
        return {
            row["order_number"]: Order(row["order_number"], row["status"], row["carrier"], row["eta"], row["items"])
            for row in csv.DictReader(f)
        }


def describe_order(number: str, orders: Dict[str, Order]) -> str:
    """The sentence the visitor reads about one order number."""
    order = orders.get(number)
    if order is None:
        return (
            f"I couldn't find an order with the number {number}. Please check the number on your "
            "confirmation email, or ask me to connect you with an agent."
        )
    if order.status == "shipped":
        return f"Order {number} ({order.items}) has shipped with {order.carrier} and should arrive by {order.eta}."
    if order.status == "processing":
        return f"Order {number} ({order.items}) is being prepared and should ship soon; expected delivery {order.eta}."
    if order.status == "delivered":
        return f"Order {number} ({order.items}) was delivered by {order.carrier} on {order.eta}."
    if order.status == "cancelled":
        return f"Order {number} ({order.items}) was cancelled. If that's unexpected, an agent can look into it."
    return f"Order {number} has status: {order.status}."


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_status_form"

    def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        number = normalize_order_number(value if isinstance(value, str) else None)
        if number is None:
            dispatcher.utter_message(text="That doesn't look like an order number. It has the form NW-12345.")
            return {"order_number": None}
        return {"order_number": number}


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[Dict[str, Any]]:
        number = normalize_order_number(tracker.get_slot("order_number"))
        if number is None:
            dispatcher.utter_message(text="I didn't get an order number. It has the form NW-12345.")
        else:
            dispatcher.utter_message(text=describe_order(number, load_orders()))
        # Forget the number so the next question about an order asks again.
        return [SlotSet("order_number", None)]
