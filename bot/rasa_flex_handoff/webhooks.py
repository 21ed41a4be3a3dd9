"""Flex's webhooks into the connector: the route, the form as Twilio sent it, its signature against PUBLIC_URL.

Only a webhook signed with the account's auth token over the public URL it was sent to, carrying
a conversation token made with the handoff secret, reaches the state machine; what it means is
decided in chat_state.py, and relay.py records it.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Dict, Optional
from urllib.parse import parse_qs

from rasa.core.agent import Agent
from sanic import Blueprint, response
from sanic.request import Request, RequestParameters
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from rasa_flex_handoff import handoff, store_outage
from rasa_flex_handoff.flex_events import FlexEvent
from rasa_flex_handoff.settings import Settings

logger = logging.getLogger(__name__)

# How long a webhook waits for an unreachable lock or tracker store before answering 503 (Flex
# then retries it). Under the 5 s Flex gives a webhook, so a short restart loses no event.
STORE_WAIT_SECONDS = 3.0

# What the route does with a verified event of one conversation (record it, deliver what the visitor is shown).
OnFlexEvent = Callable[[Agent, str, FlexEvent], Awaitable[None]]


def webhook_params(body: bytes) -> Optional[RequestParameters]:
    """The form parameters exactly as Twilio sent them, blank values kept (None: not a form body).

    Twilio signs every parameter it posts, empty ones included (a Programmable Chat media
    message's `Body=`, any attribute a client set to ""). Sanic's `request.form` drops blank
    values, so a signature checked over it fails for exactly those webhooks.
    """
    try:
        text = body.decode("utf-8")
        return RequestParameters(parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)))
    except (UnicodeDecodeError, ValueError):
        return None


def signed_url(public_url: str, request: Request) -> str:
    """The URL Twilio signed: PUBLIC_URL plus the path and raw query we were called with.

    Behind a proxy or tunnel the request's own URL is not the one Twilio posted to.
    """
    query = request.query_string
    return f"{public_url}{request.path}" + (f"?{query}" if query else "")


def form_of(params: RequestParameters) -> Dict[str, Optional[str]]:
    """The first value of each parameter, as Twilio sends each once."""
    return {str(key): params.get(key) for key in params}


def add_flex_route(blueprint: Blueprint, settings: Settings, on_event: OnFlexEvent) -> None:
    """Mount `POST <channel>/flex`: Flex's signed webhooks for this channel's visitors."""
    validator = RequestValidator(settings.auth_token)

    @blueprint.route(f"/{handoff.WEBHOOK_ROUTE}", methods=["POST"], name=f"{blueprint.name}_flex")
    async def flex_webhook(request: Request) -> HTTPResponse:
        signature = request.headers.get("X-Twilio-Signature", "")
        params = webhook_params(request.body)
        if params is None:
            return response.text("expected a form-encoded body", status=400)
        if not signature or not validator.validate(signed_url(settings.public_url, request), params, signature):
            logger.warning("Flex webhook with a missing or invalid signature rejected")
            return response.text("invalid signature", status=403)
        sender_id = handoff.sender_from_webhook_token(request.args.get("c", ""), settings.signing_secret)
        if sender_id is None:
            return response.text("unknown conversation", status=404)
        agent: Agent = request.app.ctx.agent
        event = FlexEvent.from_form(form_of(params))
        try:
            # A lock or tracker store restarting: wait a little, then let Flex send the event again.
            await store_outage.retried(lambda: on_event(agent, sender_id, event), STORE_WAIT_SECONDS)
        except store_outage.UNREACHABLE as e:
            logger.warning("Flex webhook %s answered 503, stores unreachable (%s)", event.type, store_outage.describe(e))
            return response.text("lock or tracker store unavailable", status=503, headers={"Retry-After": "1"})
        return response.text("", status=204)
