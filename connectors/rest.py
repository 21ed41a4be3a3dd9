"""REST channel with Flex handoff: Rasa's `rest` request/response, plus a history endpoint.

`POST /webhooks/handoff_rest/webhook` takes `{"sender", "message", "metadata"}` and answers
with the messages for this turn, as Rasa's `rest` does. Agent messages arrive later, so
clients poll `GET /webhooks/handoff_rest/messages?sender=<id>&since=<n>`, which reads the
tracker: `{"messages": [...], "next": <n>}` with visitor, bot, agent and system turns (pass
`next` as `since` on the next call).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.handoff import Handoff, conversation_payloads

logger = logging.getLogger(__name__)


class RestOutput(CollectingOutputChannel):
    """Collects the turn's messages; handoff payloads (token, notices) are kept as they are."""

    @classmethod
    def name(cls) -> Text:
        return "handoff_rest"

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        details = json_message.get("handoff")
        if isinstance(details, dict):
            self.messages.append(
                {"recipient_id": recipient_id, "text": "", "sender": "system", "event": details.get("event"), "handoff": details}
            )
            return
        await super().send_custom_json(recipient_id, json_message, **kwargs)


class RestInput(InputChannel):
    """A REST input channel that relays handed-off conversations to Flex."""

    @classmethod
    def name(cls) -> Text:
        return "handoff_rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def __init__(self, handoff: Optional[Handoff] = None) -> None:
        self.handoff = handoff or Handoff()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Message, history and Flex webhook routes."""
        webhook = Blueprint("handoff_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json or {}
            sender_id = body.get("sender")
            if not sender_id:
                return response.json({"error": "sender is required"}, status=400)
            collector = RestOutput()
            message = UserMessage(
                body.get("message"), collector, str(sender_id), input_channel=self.name(), metadata=body.get("metadata")
            )
            notices = await self.handoff.relay_visitor_message(request.app.ctx.agent, message)
            if notices is None:
                await on_new_message(message)
                return response.json(collector.messages)
            return response.json([{"recipient_id": sender_id, **notice} for notice in notices])

        @webhook.route("/messages", methods=["GET"])
        async def messages(request: Request) -> HTTPResponse:
            sender_id = request.args.get("sender")
            if not sender_id:
                return response.json({"error": "sender is required"}, status=400)
            try:
                since = max(0, int(request.args.get("since", "0")))
            except ValueError:
                return response.json({"error": "since must be an integer"}, status=400)
            tracker = await request.app.ctx.agent.tracker_store.retrieve_full_tracker(sender_id)
            events: List[Dict[Text, Any]] = [event.as_dict() for event in tracker.events] if tracker else []
            found = [{"index": i, **payload} for i, payload in conversation_payloads(events, start=since)]
            return response.json({"messages": found, "next": len(events)})

        async def deliver(sender_id: Text, payloads: List[Dict[Text, Any]]) -> None:
            # REST visitors read agent turns from /messages; the tracker already has them.
            return None

        self.handoff.add_webhook_route(webhook, deliver)
        self.handoff.add_shutdown(webhook)
        return webhook
