"""REST channel with Flex handoff: Rasa's `rest` request/response, plus a history endpoint.

`POST /webhooks/handoff_rest/webhook` takes `{"sender", "message", "metadata"}` and answers
with the messages for this turn, as Rasa's `rest` does (`{recipient_id, text}`, `buttons`,
`image`, `custom`); agent and system turns are text messages with the handoff under `metadata`.
Agent messages arrive later, so clients poll
`GET /webhooks/handoff_rest/messages?sender=<id>&since=<n>`: `{"messages": [...], "next": <n>}`
with visitor, bot, agent and system turns of conversations started on this channel (pass
`next` as `since` on the next call). With `jwt_key` set, both need a bearer token for the sender.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa_flex_handoff import payloads, store_outage
from rasa_flex_handoff.history_access import MAX_SENDER_ID, may_read_history, usable_sender_id
from rasa_flex_handoff.relay import Handoff, visitor_message
from rasa_flex_handoff.startup import channel_settings

logger = logging.getLogger(__name__)

UNUSABLE_SENDER = f"sender must be a conversation id: text of 1 to {MAX_SENDER_ID} characters, valid UTF-8, without NUL"


class RestOutput(CollectingOutputChannel):
    """Collects the turn's messages as Rasa's `rest` does; handoff turns carry `metadata.handoff`."""

    @classmethod
    def name(cls) -> str:
        return "handoff_rest"

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        if not payloads.is_handoff_message(message):
            await super().send_response(recipient_id, message)
            return
        self.messages.append({"recipient_id": recipient_id, **payloads.from_bot_message(message, "buttons")})


class RestInput(InputChannel):
    """A REST input channel that relays handed-off conversations to Flex."""

    @classmethod
    def name(cls) -> str:
        return "handoff_rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(
            handoff=Handoff(channel_settings(credentials)),
            jwt_key=credentials.get("jwt_key"),
            jwt_method=credentials.get("jwt_method", "HS256"),
        )

    def __init__(self, handoff: Optional[Handoff] = None, jwt_key: Optional[str] = None, jwt_method: str = "HS256") -> None:
        self.handoff = handoff or Handoff()
        self.jwt_key = jwt_key
        self.jwt_algorithm = jwt_method

    def visitor(self, metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Who the visitor is, for the agent: `name`, `email`, `customer_id` (all optional); as `SocketIOInput.visitor`.

        Override this to vouch for what your backend knows about the sender from the message's
        metadata; the plugin signs it into the message. The default says nothing (a
        `metadata.pre_engagement` form the visitor filled reaches the agent marked unverified).
        """
        return None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Message, history and Flex webhook routes."""
        webhook = Blueprint(f"{self.name()}_webhook", __name__)

        def refused(request: Request, sender_id: str) -> Optional[HTTPResponse]:
            if may_read_history(request, sender_id, self.jwt_key, self.jwt_algorithm):
                return None
            return response.json({"error": "a bearer token for this sender is required"}, status=401)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            sender_id = body.get("sender")
            if not sender_id or not isinstance(sender_id, (str, int)):
                return response.json({"error": "sender is required"}, status=400)
            sender_id = str(sender_id)
            if usable_sender_id(sender_id) is None:
                return response.json({"error": UNUSABLE_SENDER}, status=400)
            denied = refused(request, sender_id)
            if denied is not None:
                return denied
            text = body.get("message")
            if not isinstance(text, str):  # Rasa's NLU fails on anything else, a missing message included
                return response.json({"error": "message is required and must be a string"}, status=400)
            collector = RestOutput()
            metadata = body.get("metadata")
            message = visitor_message(
                self,
                text,
                collector,
                sender_id,
                metadata,
                self.handoff.settings.signing_secret,
                self.visitor(metadata if isinstance(metadata, dict) else {}),
            )
            agent = request.app.ctx.agent
            try:
                relay = await self.handoff.relay_visitor_message(agent, message)
            except store_outage.UNREACHABLE:  # the lock store is restarting: the visitor sends it again
                told = await store_outage.relay_failed(agent, self.handoff.trackers.read, sender_id, RestOutput.name())
                return response.json([{"recipient_id": sender_id, **notice} for notice in told], status=503 if not told else 200)
            notices = [{"recipient_id": sender_id, **notice} for notice in relay.notices]
            if relay.to_bot:
                try:
                    await on_new_message(message)
                except store_outage.UNREACHABLE as e:  # the bot's turn needs the same stores: try again
                    logger.warning("REST turn answered 503, stores unreachable (%s)", store_outage.describe(e))
                    return response.json(
                        {"error": "the conversation store is unavailable; send the message again"},
                        status=503,
                        headers={"Retry-After": "1"},
                    )
            self.handoff.starts_waiting(sender_id, collector.messages)
            return response.json(notices + collector.messages)

        @webhook.route("/messages", methods=["GET"])
        async def messages(request: Request) -> HTTPResponse:
            sender_id = request.args.get("sender")
            if not sender_id:
                return response.json({"error": "sender is required"}, status=400)
            denied = refused(request, sender_id)
            if denied is not None:
                return denied
            try:
                since = max(0, int(request.args.get("since", "0")))
            except ValueError:
                return response.json({"error": "since must be an integer"}, status=400)
            agent = request.app.ctx.agent
            usable = usable_sender_id(sender_id) is not None  # else no tracker store could hold it
            found = await self.handoff.history(agent, sender_id, self.name(), "buttons", since) if usable else None
            if found is None:
                return response.json({"error": "no conversation of this channel has that sender"}, status=404)
            if found.waiting:
                waiting_room.enter(sender_id)  # e.g. after the replica that had them stopped: told here from now on
            return response.json({"messages": found.messages, "next": found.next}, headers={"Cache-Control": "no-store"})

        async def deliver(sender_id: str, payloads: List[Dict[str, Any]]) -> None:
            # REST visitors read agent turns from /messages; the tracker already has them.
            return None

        server: Dict[str, Any] = {}  # the app this blueprint serves, for the waiting room's looks between requests

        @webhook.listener("after_server_start")
        async def remember_app(app: Any, _loop: Any) -> None:
            server["app"] = app

        waiting_room = self.handoff.open_waiting_room(lambda: server["app"].ctx.agent, deliver, RestOutput.name())
        self.handoff.add_webhook_route(webhook, deliver, RestOutput.name())
        self.handoff.add_media_routes(
            webhook,
            self.url_prefix(),
            self.name(),
            RestOutput.name(),
            "buttons",
            deliver,
            lambda request, sender_id: may_read_history(request, sender_id, self.jwt_key, self.jwt_algorithm),
        )
        self.handoff.add_lifecycle(webhook)
        return webhook
