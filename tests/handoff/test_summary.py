"""What the agent knows on opening a handed-off chat, end to end: the bot's summary first, and who the visitor is.

Real processes (the session's Flex sandbox, action server and Rasa server per Flex mode; the
action server loads the bot's own summariser, tests/handoff/summariser.py). The agent reads the
summary as the chat's first message and in the context; the visitor never gets it, whichever
way agent messages reach them (webhooks, catch-up, rasa shell's polling). A customer the page
vouches for reaches Flex verified; what a visitor typed into the pre-engagement form, unverified.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any, Callable, Dict, List

from northwind.processes import wait_for
from northwind.servers import AGENT, Stack
from tests.handoff.conftest import Visitor, handed_off, stream
from tests.handoff.summariser import SIGNED

SUMMARY_HEAD = "Summary from the bot"
CUSTOMER = {"name": "Jordan Lee", "email": "jordan.lee@example.com", "customer_id": "C-1001"}
FORM = {"name": "Ada Lovelace", "email": "ada@example.com"}


def task_of(stack: Stack, sender: str) -> Dict[str, Any]:
    channel_sid = wait_for(lambda: stack.tracker(sender)["slots"].get("handoff_channel_sid"), 10, "handoff slots")
    return wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")


def chat_attributes(stack: Stack, sender: str) -> Dict[str, Any]:
    """The Flex chat's attributes as Twilio's SDK reads them: the conversation's, or the legacy Chat channel's."""
    slots = stack.tracker(sender)["slots"]
    client = stack.sandbox.server.client
    if stack.mode == "legacy":
        chat = client.chat.v2.services(slots["handoff_service_sid"]).channels(slots["handoff_channel_sid"]).fetch()
    else:
        chat = client.conversations.v1.conversations(slots["handoff_channel_sid"]).fetch()
    return json.loads(chat.attributes)


def answered(visitor: Visitor, text: str, fragment: str) -> None:
    start = len(visitor.messages)
    visitor.say(text)
    visitor.wait_for_text(fragment, start=start)


def history(stack: Stack, session_id: str) -> List[Dict[str, Any]]:
    """The widget's history call (it catches up with Flex first)."""
    with urllib.request.urlopen(f"{stack.url}/webhooks/handoff_socketio/history/{session_id}", timeout=10) as r:
        return json.loads(r.read())["messages"]


def no_summary(texts: List[str]) -> bool:
    return not [t for t in texts if SUMMARY_HEAD in (t or "") or SIGNED in (t or "")]


def test_the_agent_reads_the_bots_summary_first_and_the_visitor_never_sees_it(
    stack: Stack, visitors: Callable[..., Visitor]
) -> None:
    visitor = visitors()
    answered(visitor, "/greet", "Northwind assistant")
    answered(visitor, "/ask_shipping", "shipping")
    answered(visitor, "/ask_shipping", "shipping")
    answered(visitor, "/ask_returns", "return")
    start = len(visitor.messages)
    visitor.say("I want to talk to a human")  # typed: asked directly
    visitor.wait_for(lambda m: m.get("event") == "connecting", "connecting notice", start=start)
    task = task_of(stack, visitor.session_id or "")

    # The first message in the agent's chat: the summary, by the bot, ahead of the visitor's own words.
    summary, opening = stack.sandbox.transcript(task["sid"])[:2]
    assert (summary["author"], summary["role"], summary["attributes"]) == ("Rasa", "system", {"handoff_summary": True})
    body = summary["body"]
    assert body.startswith(SUMMARY_HEAD + "\nAsked about: greet, ask shipping, ask returns\nHandoff: asked for a person\n")
    assert body.endswith(SIGNED)  # the bot's own summariser ran in the action server
    assert (opening["role"], opening["body"]) == ("customer", "I want to talk to a human")
    # The context has it too, in parts: what Flex (and a task router) can read.
    context = task["pre_engagement_data"]
    context = json.loads(context) if isinstance(context, str) else context
    found = context["summary"]
    assert (found["text"], found["intents"], found["trigger"]) == (body, ["greet", "ask_shipping", "ask_returns"], "direct")
    assert isinstance(found["bot_seconds"], int) and found["bot_seconds"] >= 0 and isinstance(found["slots"], dict)
    assert chat_attributes(stack, visitor.session_id or "")["pre_engagement_data"]["summary"] == found

    # Catch-up (the history call, before any webhook moved the chat's last index on) lists it: not shown.
    shown = history(stack, visitor.session_id or "")
    assert no_summary([m.get("text") for m in shown]) and not [m for m in shown if m.get("sender") == "agent"]

    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "Hello, Alice here")
    visitor.wait_for(lambda m: m.get("sender") == "agent" and m.get("text") == "Hello, Alice here", "the agent's message")
    assert no_summary(visitor.texts()) and no_summary([m["wire"].get("text") for m in visitor.messages])
    assert no_summary([e.get("text") for e in stack.tracker(visitor.session_id or "")["events"]])
    stack.sandbox.end(task["sid"])


def test_rasa_shells_polling_never_shows_the_summary(stack: Stack) -> None:
    sender = f"shell-summary-{uuid.uuid4().hex}"
    stream(stack, sender, "/greet")
    stream(stack, sender, "/talk_to_agent")  # a button's payload
    task = task_of(stack, sender)
    first = stack.sandbox.transcript(task["sid"])[0]
    assert first["attributes"] == {"handoff_summary": True}
    assert "Asked about: greet\nHandoff: asked for a person with a button\n" in first["body"]
    stack.sandbox.accept(task["sid"])
    stack.sandbox.send(task["sid"], "Hello terminal")

    # The relay lists the chat from its start: the agent's message, not the summary before it.
    replies = stream(stack, sender, "hi")
    assert [m.get("text") for m in replies] == [f"{AGENT}: Hello terminal"]
    stack.sandbox.end(task["sid"])


def test_a_customer_the_page_vouches_for_reaches_flex_verified(stack: Stack) -> None:
    """Over a channel that vouches for `metadata.customer` as the demo shop's does (tests/handoff/renamed_channel.py)."""
    sender = f"known-customer-{uuid.uuid4().hex}"
    metadata = {"customer": CUSTOMER, "pre_engagement": {"name": "Not Jordan"}}  # the page's word wins
    said = stack.rest(sender, "/talk_to_agent", channel="support_chat", metadata=metadata)
    assert "connecting" in [m.get("event") for m in said]
    task = task_of(stack, sender)
    expected = {**CUSTOMER, "verified": True}
    context = chat_attributes(stack, sender)["pre_engagement_data"]
    assert context["visitor"] == expected and context["friendlyName"] == "Jordan Lee"
    assert task["pre_engagement_data"]["visitor"] == expected and task["customer_friendly_name"] == "Jordan Lee"
    stack.rest(sender, "/end_chat", channel="support_chat")

    # The page's claim over our channel that vouches for nobody is not believed (its stamp replaces the client's)...
    other = f"claimed-customer-{uuid.uuid4().hex}"
    stack.rest(other, "/talk_to_agent", metadata={"customer": CUSTOMER})
    claimed = chat_attributes(stack, other)["pre_engagement_data"]
    assert claimed["visitor"] == {} and claimed["friendlyName"] == "Website visitor"
    task_of(stack, other)
    stack.rest(other, "/end_chat")
    # ...nor a forged stamp over Rasa's own REST channel, which passes client metadata through untouched.
    forged = {
        "webhook_path": "/webhooks/handoff_rest/flex",
        "access_token": False,
        "visitor": CUSTOMER,
        "declared": FORM,
        "signature": "0" * 64,
    }
    shell = f"forged-customer-{uuid.uuid4().hex}"
    stream(stack, shell, "/talk_to_agent", metadata={"handoff_connector": forged})
    assert chat_attributes(stack, shell)["pre_engagement_data"]["visitor"] == {}
    task_of(stack, shell)
    stream(stack, shell, "/end_chat")


def test_a_visitor_who_fills_the_pre_engagement_form_is_named_but_marked_unverified(
    stack: Stack, visitors: Callable[..., Visitor]
) -> None:
    visitor = visitors()
    # The widget sends the form with every message; the plain socket.io channel vouches for no `customer`.
    metadata = {"pre_engagement": FORM, "customer": CUSTOMER}
    answered_once = len(visitor.messages)
    visitor.say("/greet", metadata)
    visitor.wait_for_text("Northwind assistant", start=answered_once)
    task = handed_off(stack, visitor, metadata={"pre_engagement": FORM})
    expected = {**FORM, "verified": False}
    context = chat_attributes(stack, visitor.session_id or "")["pre_engagement_data"]
    assert context["visitor"] == expected and context["friendlyName"] == "Ada Lovelace"
    assert task["pre_engagement_data"]["visitor"] == expected and task["customer_friendly_name"] == "Ada Lovelace"
    end = len(visitor.messages)
    visitor.say("/end_chat")
    visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot back", start=end)
