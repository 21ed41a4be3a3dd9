"""The Twilio REST surface: Flex v1/v2, Chat v2 and Conversations v1 routes, served at /<sub>/<version>/..."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Callable, Coroutine, Dict, List, Optional

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from flex_sandbox import chat, conversations
from flex_sandbox.account import Account, Actor
from flex_sandbox.store import Doc
from flex_sandbox.wire import Form, Paging, TwilioError, invalid, now_iso, reply

log = logging.getLogger(__name__)

PRE_ENGAGEMENT_LIMIT = 65536
Handler = Callable[..., Coroutine[Any, Any, Optional[HTTPResponse]]]


def form_of(request: Request) -> Form:
    """The form-encoded body; anything else is a Twilio-style 400."""
    body = request.body or b""
    if body:
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise invalid(f"Request body must be application/x-www-form-urlencoded, not {content_type or 'unspecified'}")
    return Form.parse(body)


def webhooks_enabled(request: Request) -> bool:
    """Twilio's `X-Twilio-Webhook-Enabled` header: REST actions fire webhooks only when it is `true`."""
    return (request.headers.get("x-twilio-webhook-enabled") or "").strip().lower() == "true"


def args_of(request: Request) -> Dict[str, List[str]]:
    """Query parameters as lists (Sanic's parser, keeping blanks)."""
    return {k: list(v) for k, v in request.get_args(keep_blank_values=True).items()}


def newest_first(request: Request) -> bool:
    """Message lists take `Order=asc|desc`; anything else is a 400 before the list is read."""
    order = Form(args_of(request)).get("Order") or "asc"
    if order not in ("asc", "desc"):
        raise invalid("Order must be asc or desc")
    return order == "desc"


def iso_date(query: Form, key: str) -> Optional[str]:
    """A date filter (`2026-01-31` or ISO 8601 date-time) as the sandbox prints dates, or None when absent."""
    value = query.get(key)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid {key} {value!r}: use ISO 8601") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    if key == "EndDate" and len(value) == 10:  # a bare end date includes that whole day
        return parsed.strftime("%Y-%m-%dT23:59:59Z")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def created(doc: Doc) -> HTTPResponse:
    return reply(doc, status=201)


def pre_engagement(form: Form) -> Any:
    """PreEngagementData parsed from its JSON string (absent: empty object)."""
    text = form.json_text("PreEngagementData", limit=PRE_ENGAGEMENT_LIMIT)
    return json.loads(text) if text else {}


def register(app: Sanic, account: Account) -> None:
    """Add every Twilio route to the app."""
    store = account.store

    def route(uri: str, *methods: str) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            name = (
                "twilio_" + "_".join(methods).lower() + uri.replace("/", "_").replace("<", "").replace(">", "").replace("-", "_")
            )
            app.add_route(handler, uri, methods=list(methods), name=name)
            return handler

        return decorate

    def listing(
        request: Request,
        kind: str,
        key: str,
        sub: str,
        path: str,
        render: Callable[[Doc], Doc],
        parent: Optional[str] = None,
        where: Optional[Dict[str, Any]] = None,
        descending: bool = False,
    ) -> HTTPResponse:
        paging = Paging(args_of(request))
        docs, more = store.list(
            kind, parent=parent, offset=paging.offset, limit=paging.page_size, descending=descending, where=where
        )
        return reply(paging.envelope(key, sub, path, [render(d) for d in docs], more))

    def by_sid_or_identity(kind: str, parent_sid: str, sid_or_identity: str) -> Optional[Doc]:
        """A member or participant: the SDKs address them by SID (MB...) or by identity, so try both."""
        found = store.get(kind, sid_or_identity, parent=parent_sid)
        if found is None and not sid_or_identity.startswith("MB"):
            by_identity, _ = store.list(kind, parent=parent_sid, where={"identity": sid_or_identity}, limit=1)
            found = by_identity[0] if by_identity else None
        return found

    # -- Flex v1 ----------------------------------------------------------------
    @route("/flex-api/v1/FlexFlows", "GET")
    async def flex_flows(request: Request) -> HTTPResponse:
        name = Form(args_of(request)).get("FriendlyName")
        return listing(
            request,
            "flex_flow",
            "flex_flows",
            "flex-api",
            "/v1/FlexFlows",
            chat.render_flow,
            where={"friendly_name": name} if name else None,
        )

    @route("/flex-api/v1/FlexFlows/<sid>", "GET")
    async def flex_flow(request: Request, sid: str) -> HTTPResponse:
        return reply(chat.render_flow(chat.flow(account, sid)))

    @route("/flex-api/v1/WebChannels", "POST")
    async def web_channel_create(request: Request) -> HTTPResponse:
        form = form_of(request)
        web = chat.create_web_channel(
            account,
            form.required("FlexFlowSid"),
            form.required("Identity"),
            form.required("CustomerFriendlyName"),
            form.required("ChatFriendlyName"),
            form.get("ChatUniqueName") or None,
            pre_engagement(form),
        )
        return created(chat.render_web_channel(web))

    @route("/flex-api/v1/WebChannels", "GET")
    async def web_channels(request: Request) -> HTTPResponse:
        return listing(request, "web_channel", "flex_chat_channels", "flex-api", "/v1/WebChannels", chat.render_web_channel)

    def web_channel(sid: str) -> Doc:
        found = store.get("web_channel", sid)
        if found is None:
            raise TwilioError(404, 20404, f"The requested resource /WebChannels/{sid} was not found")
        return found

    @route("/flex-api/v1/WebChannels/<sid>", "GET")
    async def web_channel_fetch(request: Request, sid: str) -> HTTPResponse:
        return reply(chat.render_web_channel(web_channel(sid)))

    @route("/flex-api/v1/WebChannels/<sid>", "POST")
    async def web_channel_update(request: Request, sid: str) -> HTTPResponse:
        form = form_of(request)
        web = web_channel(sid)
        status = form.get("ChatStatus")
        if status is not None and status != "inactive":
            raise invalid("ChatStatus must be inactive")
        post = form.json_text("PostEngagementData", limit=PRE_ENGAGEMENT_LIMIT)
        if status == "inactive":
            flow = chat.flow(account, web["flex_flow_sid"])
            channel = chat.channel(account, flow["chat_service_sid"], sid)
            chat.close(account, channel, Actor.rest(True), json.loads(post) if post else None)
        web["date_updated"] = now_iso()
        store.replace("web_channel", web)
        return reply(chat.render_web_channel(web))

    @route("/flex-api/v1/WebChannels/<sid>", "DELETE")
    async def web_channel_delete(request: Request, sid: str) -> HTTPResponse:
        web_channel(sid)
        store.delete("web_channel", sid)
        return response.empty()

    # -- Flex v2 ----------------------------------------------------------------
    @route("/flex-api/v2/WebChats", "POST")
    async def web_chat_create(request: Request) -> HTTPResponse:
        form = form_of(request)
        address_sid = form.get("AddressSid")
        if not address_sid:
            raise TwilioError(400, 45745, "Missing required parameter AddressSid in the post body")
        try:
            data = pre_engagement(form)
        except TwilioError as e:
            raise TwilioError(400, 45745, e.message) from None
        result = conversations.create_web_chat(
            account,
            address_sid,
            form.get("CustomerFriendlyName"),
            form.get("ChatFriendlyName"),
            data,
        )
        return created(result)

    # -- Chat v2 ----------------------------------------------------------------
    base = "/chat/v2/Services/<service_sid>"

    @route(base, "GET")
    async def chat_service(request: Request, service_sid: str) -> HTTPResponse:
        return reply(chat.render_service(account, chat.service(account, service_sid)))

    @route(base + "/Channels", "GET")
    async def channels(request: Request, service_sid: str) -> HTTPResponse:
        chat.service(account, service_sid)
        kinds = Form(args_of(request)).list("Type")  # repeated: channels of any of these types
        if any(k not in ("public", "private") for k in kinds):
            raise invalid("Type must be public or private")
        return listing(
            request,
            "chat_channel",
            "channels",
            "chat",
            f"/v2/Services/{service_sid}/Channels",
            lambda c: chat.render_channel(account, c),
            parent=service_sid,
            where={"type": kinds} if kinds else None,
        )

    @route(base + "/Channels", "POST")
    async def channel_create(request: Request, service_sid: str) -> HTTPResponse:
        form = form_of(request)
        chat.service(account, service_sid)
        kind = form.get("Type") or "public"
        if kind not in ("public", "private"):
            raise invalid("Type must be public or private")
        doc = chat.create_channel(
            account,
            service_sid,
            form.get("FriendlyName"),
            form.get("UniqueName") or None,
            form.json_text("Attributes") or "{}",
            kind,
            form.get("CreatedBy") or "system",
        )
        return created(chat.render_channel(account, doc))

    @route(base + "/Channels/<sid>", "GET")
    async def channel_fetch(request: Request, service_sid: str, sid: str) -> HTTPResponse:
        return reply(chat.render_channel(account, chat.channel(account, service_sid, sid)))

    @route(base + "/Channels/<sid>", "POST")
    async def channel_update(request: Request, service_sid: str, sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = chat.channel(account, service_sid, sid)
        changes: Dict[str, Any] = {}
        for param, field in (
            ("FriendlyName", "friendly_name"),
            ("UniqueName", "unique_name"),
            ("CreatedBy", "created_by"),
            ("DateCreated", "date_created"),
            ("DateUpdated", "date_updated"),
        ):
            if param in form:
                changes[field] = form.get(param)
        if "Attributes" in form:
            changes["attributes"] = form.json_text("Attributes")
        doc = chat.update_channel(account, doc, changes, Actor.rest(webhooks_enabled(request)))
        return reply(chat.render_channel(account, doc))

    @route(base + "/Channels/<sid>", "DELETE")
    async def channel_delete(request: Request, service_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, sid)
        store.delete("chat_channel", doc["sid"])
        log.info("chat channel %s deleted", doc["sid"])
        return response.empty()

    # members
    @route(base + "/Channels/<channel_sid>/Members", "GET")
    async def members(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        identities = args_of(request).get("Identity")  # repeated: members with any of these identities
        where = {"identity": identities} if identities else None
        return listing(
            request,
            "chat_member",
            "members",
            "chat",
            f"{chat.channel_path(doc)}/Members",
            chat.render_member,
            parent=doc["sid"],
            where=where,
        )

    @route(base + "/Channels/<channel_sid>/Members", "POST")
    async def member_create(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = chat.channel(account, service_sid, channel_sid)
        member = chat.add_member(
            account,
            doc,
            form.required("Identity"),
            form.json_text("Attributes") or "{}",
            Actor.rest(webhooks_enabled(request)),
            form.get("RoleSid"),
        )
        return created(chat.render_member(member))

    @route(base + "/Channels/<channel_sid>/Members/<sid>", "GET")
    async def member_fetch(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        return reply(chat.render_member(_member(doc["sid"], sid)))

    def _member(channel_sid: str, sid_or_identity: str) -> Doc:
        found = by_sid_or_identity("chat_member", channel_sid, sid_or_identity)
        return found or chat.child(account, "chat_member", channel_sid, sid_or_identity, "Members")

    @route(base + "/Channels/<channel_sid>/Members/<sid>", "DELETE")
    async def member_delete(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        chat.remove_member(account, doc, _member(doc["sid"], sid), Actor.rest(webhooks_enabled(request)))
        return response.empty()

    # messages
    @route(base + "/Channels/<channel_sid>/Messages", "GET")
    async def messages(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        return listing(
            request,
            "chat_message",
            "messages",
            "chat",
            f"{chat.channel_path(doc)}/Messages",
            chat.render_message,
            parent=doc["sid"],
            descending=newest_first(request),
        )

    @route(base + "/Channels/<channel_sid>/Messages", "POST")
    async def message_create(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = chat.channel(account, service_sid, channel_sid)
        message = chat.post_message(
            account,
            doc,
            form.get("From") or "system",
            form.get("Body"),
            form.json_text("Attributes") or "{}",
            Actor.rest(webhooks_enabled(request)),
            form.get("MediaSid"),
        )
        return created(chat.render_message(message))

    @route(base + "/Channels/<channel_sid>/Messages/<sid>", "GET")
    async def message_fetch(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        return reply(chat.render_message(chat.child(account, "chat_message", doc["sid"], sid, "Messages")))

    # webhooks
    @route(base + "/Channels/<channel_sid>/Webhooks", "GET")
    async def webhooks(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        return listing(
            request,
            "chat_webhook",
            "webhooks",
            "chat",
            f"{chat.channel_path(doc)}/Webhooks",
            chat.render_webhook,
            parent=doc["sid"],
        )

    @route(base + "/Channels/<channel_sid>/Webhooks", "POST")
    async def webhook_create(request: Request, service_sid: str, channel_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = chat.channel(account, service_sid, channel_sid)
        webhook = chat.create_webhook(account, doc, form.required("Type"), chat.WEBHOOKS.parse_config(form))
        return created(chat.render_webhook(webhook))

    @route(base + "/Channels/<channel_sid>/Webhooks/<sid>", "GET")
    async def webhook_fetch(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        return reply(chat.render_webhook(chat.child(account, "chat_webhook", doc["sid"], sid, "Webhooks")))

    @route(base + "/Channels/<channel_sid>/Webhooks/<sid>", "POST")
    async def webhook_update(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = chat.channel(account, service_sid, channel_sid)
        webhook = chat.child(account, "chat_webhook", doc["sid"], sid, "Webhooks")
        webhook.update(configuration=chat.WEBHOOKS.parse_config(form, webhook), date_updated=now_iso())
        store.replace("chat_webhook", webhook)
        return reply(chat.render_webhook(webhook))

    @route(base + "/Channels/<channel_sid>/Webhooks/<sid>", "DELETE")
    async def webhook_delete(request: Request, service_sid: str, channel_sid: str, sid: str) -> HTTPResponse:
        doc = chat.channel(account, service_sid, channel_sid)
        chat.child(account, "chat_webhook", doc["sid"], sid, "Webhooks")
        store.delete("chat_webhook", sid)
        log.info("webhook %s removed from chat channel %s", sid, doc["sid"])
        return response.empty()

    # -- Conversations v1 -------------------------------------------------------
    cbase = "/conversations/v1/Conversations"

    @route(cbase, "GET")
    async def conversation_list(request: Request) -> HTTPResponse:
        query = Form(args_of(request))
        state = query.get("State")
        if state and state not in conversations.STATES:
            raise invalid(f"Invalid State {state!r}")
        where = {"state": state} if state else None
        start, end = iso_date(query, "StartDate"), iso_date(query, "EndDate")
        if start is None and end is None:
            return listing(
                request,
                "conversation",
                "conversations",
                "conversations",
                "/v1/Conversations",
                conversations.render_conversation,
                where=where,
            )
        # A date range filters on date_created and lists the newest conversation first (as the spec documents).
        paging = Paging(args_of(request))
        docs, _ = store.list("conversation", descending=True, where=where)
        docs = [d for d in docs if (start or "") <= d["date_created"] <= (end or "9999")]
        page = docs[paging.offset : paging.offset + paging.page_size]
        more = len(docs) > paging.offset + paging.page_size
        rendered = [conversations.render_conversation(d) for d in page]
        return reply(paging.envelope("conversations", "conversations", "/v1/Conversations", rendered, more))

    def timers(form: Form) -> Dict[str, Any]:
        return {k: form.get(f"Timers.{p}") for k, p in (("inactive", "Inactive"), ("closed", "Closed")) if f"Timers.{p}" in form}

    @route(cbase, "POST")
    async def conversation_create(request: Request) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.create_conversation(
            account,
            form.get("FriendlyName"),
            form.get("UniqueName") or None,
            form.json_text("Attributes") or "{}",
            form.get("State") or "active",
            form.get("MessagingServiceSid"),
            timers(form),
        )
        return created(conversations.render_conversation(doc))

    @route(cbase + "/<sid>", "GET")
    async def conversation_fetch(request: Request, sid: str) -> HTTPResponse:
        return reply(conversations.render_conversation(conversations.conversation(account, sid)))

    @route(cbase + "/<sid>", "POST")
    async def conversation_update(request: Request, sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.conversation(account, sid)
        changes: Dict[str, Any] = {}
        for param, field in (
            ("FriendlyName", "friendly_name"),
            ("UniqueName", "unique_name"),
            ("State", "state"),
            ("MessagingServiceSid", "messaging_service_sid"),
            ("DateCreated", "date_created"),
        ):
            if param in form:
                changes[field] = form.get(param)
        if "Attributes" in form:
            changes["attributes"] = form.json_text("Attributes")
        if timers(form):
            changes["timers"] = {**(doc.get("timers") or {}), **timers(form)}
        doc = conversations.update_conversation(account, doc, changes, Actor.rest(webhooks_enabled(request)))
        return reply(conversations.render_conversation(doc))

    @route(cbase + "/<sid>", "DELETE")
    async def conversation_delete(request: Request, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, sid)
        store.delete("conversation", doc["sid"])
        account.end_task_for(doc["sid"], "customer")
        log.info("conversation %s deleted", doc["sid"])
        return response.empty()

    # participants
    @route(cbase + "/<conversation_sid>/Participants", "GET")
    async def participants(request: Request, conversation_sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return listing(
            request,
            "participant",
            "participants",
            "conversations",
            f"/v1/Conversations/{doc['sid']}/Participants",
            conversations.render_participant,
            parent=doc["sid"],
        )

    @route(cbase + "/<conversation_sid>/Participants", "POST")
    async def participant_create(request: Request, conversation_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.conversation(account, conversation_sid)
        if "MessagingBinding.Address" in form:
            raise invalid("SMS/WhatsApp participants are not supported by the sandbox; use Identity")
        participant = conversations.add_participant(
            account,
            doc,
            form.required("Identity"),
            form.json_text("Attributes") or "{}",
            Actor.rest(webhooks_enabled(request)),
            form.get("RoleSid"),
        )
        return created(conversations.render_participant(participant))

    def _participant(conversation_sid: str, sid_or_identity: str) -> Doc:
        found = by_sid_or_identity("participant", conversation_sid, sid_or_identity)
        return found or conversations.child(account, "participant", conversation_sid, sid_or_identity, "Participants")

    @route(cbase + "/<conversation_sid>/Participants/<sid>", "GET")
    async def participant_fetch(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return reply(conversations.render_participant(_participant(doc["sid"], sid)))

    @route(cbase + "/<conversation_sid>/Participants/<sid>", "DELETE")
    async def participant_delete(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        conversations.remove_participant(account, doc, _participant(doc["sid"], sid), Actor.rest(webhooks_enabled(request)))
        return response.empty()

    # messages
    @route(cbase + "/<conversation_sid>/Messages", "GET")
    async def conversation_messages(request: Request, conversation_sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return listing(
            request,
            "conversation_message",
            "messages",
            "conversations",
            f"/v1/Conversations/{doc['sid']}/Messages",
            conversations.render_message,
            parent=doc["sid"],
            descending=newest_first(request),
        )

    @route(cbase + "/<conversation_sid>/Messages", "POST")
    async def conversation_message_create(request: Request, conversation_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.conversation(account, conversation_sid)
        message = conversations.post_message(
            account,
            doc,
            form.get("Author") or "system",
            form.get("Body"),
            form.json_text("Attributes") or "{}",
            Actor.rest(webhooks_enabled(request)),
            form.get("MediaSid"),
        )
        return created(conversations.render_message(message))

    @route(cbase + "/<conversation_sid>/Messages/<sid>", "GET")
    async def conversation_message_fetch(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return reply(
            conversations.render_message(conversations.child(account, "conversation_message", doc["sid"], sid, "Messages"))
        )

    # webhooks
    @route(cbase + "/<conversation_sid>/Webhooks", "GET")
    async def conversation_webhooks(request: Request, conversation_sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return listing(
            request,
            "conversation_webhook",
            "webhooks",
            "conversations",
            f"/v1/Conversations/{doc['sid']}/Webhooks",
            conversations.render_webhook,
            parent=doc["sid"],
        )

    @route(cbase + "/<conversation_sid>/Webhooks", "POST")
    async def conversation_webhook_create(request: Request, conversation_sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.conversation(account, conversation_sid)
        webhook = conversations.create_webhook(account, doc, form.required("Target"), conversations.WEBHOOKS.parse_config(form))
        return created(conversations.render_webhook(webhook))

    @route(cbase + "/<conversation_sid>/Webhooks/<sid>", "GET")
    async def conversation_webhook_fetch(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        return reply(
            conversations.render_webhook(conversations.child(account, "conversation_webhook", doc["sid"], sid, "Webhooks"))
        )

    @route(cbase + "/<conversation_sid>/Webhooks/<sid>", "POST")
    async def conversation_webhook_update(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        form = form_of(request)
        doc = conversations.conversation(account, conversation_sid)
        webhook = conversations.child(account, "conversation_webhook", doc["sid"], sid, "Webhooks")
        webhook.update(configuration=conversations.WEBHOOKS.parse_config(form, webhook), date_updated=now_iso())
        store.replace("conversation_webhook", webhook)
        return reply(conversations.render_webhook(webhook))

    @route(cbase + "/<conversation_sid>/Webhooks/<sid>", "DELETE")
    async def conversation_webhook_delete(request: Request, conversation_sid: str, sid: str) -> HTTPResponse:
        doc = conversations.conversation(account, conversation_sid)
        conversations.child(account, "conversation_webhook", doc["sid"], sid, "Webhooks")
        store.delete("conversation_webhook", sid)
        log.info("webhook %s removed from conversation %s", sid, doc["sid"])
        return response.empty()

    # address configurations
    @route("/conversations/v1/Configuration/Addresses", "GET")
    async def addresses(request: Request) -> HTTPResponse:
        kind = Form(args_of(request)).get("Type")
        return listing(
            request,
            "address",
            "address_configurations",
            "conversations",
            "/v1/Configuration/Addresses",
            conversations.render_address,
            # older state files stored the chat address as "webchat"
            where={"type": [kind, conversations.LEGACY_CHAT_TYPE] if kind == "chat" else kind} if kind else None,
        )

    @route("/conversations/v1/Configuration/Addresses/<sid>", "GET")
    async def address_fetch(request: Request, sid: str) -> HTTPResponse:
        found = conversations.address(account, sid)
        if found is None:
            raise TwilioError(404, 20404, f"The requested resource /Configuration/Addresses/{sid} was not found")
        return reply(conversations.render_address(found))
