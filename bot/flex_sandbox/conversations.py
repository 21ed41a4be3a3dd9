"""Flex Conversations: Flex v2 WebChats on top of the Conversations v1 API."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Dict, List, Optional

from flex_sandbox import media
from flex_sandbox.account import Account, Actor
from flex_sandbox.scoped_webhooks import ConfigInteger, WebhookScope
from flex_sandbox.store import Doc, public
from flex_sandbox.webhooks import CONVERSATIONS_RETRIES
from flex_sandbox.wire import TwilioError, invalid, new_sid, not_found, now_iso, twilio_url

log = logging.getLogger(__name__)

BODY_LIMIT = 1600
STATES = ("active", "inactive", "closed")
CONVERSATION_EVENTS = frozenset(
    {
        "onMessageAdded",
        "onMessageUpdated",
        "onMessageRemoved",
        "onConversationAdded",
        "onConversationUpdated",
        "onConversationStateUpdated",
        "onConversationRemoved",
        "onParticipantAdded",
        "onParticipantUpdated",
        "onParticipantRemoved",
        "onDeliveryUpdated",
        "onUserAdded",
        "onUserUpdated",
    }
)
WEBHOOKS = WebhookScope(
    table="conversation_webhook",
    parent="conversation",
    type_field="target",
    events=CONVERSATION_EVENTS,
    limit_code=50524,
    extra=ConfigInteger("Configuration.ReplayAfter", "replay_after", maximum=10**9),
)


def closed_error(sid: str) -> TwilioError:
    """Twilio's answer for any change to a closed conversation."""
    return TwilioError(400, 50377, f"Can't update conversation {sid} as it's in final closed state")


# -- rendering ------------------------------------------------------------------
def render_conversation(conversation: Doc) -> Doc:
    """A conversation with url and links."""
    url = twilio_url("conversations", f"/v1/Conversations/{conversation['sid']}")
    return {
        **public(conversation),
        "bindings": conversation.get("bindings") or {},  # a chat-only conversation has no channel bindings: {}
        "url": url,
        # `export` (the Conversations export resource) is a link Twilio always shows; the sandbox does not serve it.
        "links": {
            "participants": f"{url}/Participants",
            "messages": f"{url}/Messages",
            "webhooks": f"{url}/Webhooks",
            "export": f"{url}/Export",
        },
    }


def render_participant(participant: Doc) -> Doc:
    """A conversation participant."""
    return {
        **participant,
        "url": twilio_url(
            "conversations", f"/v1/Conversations/{participant['conversation_sid']}/Participants/{participant['sid']}"
        ),
    }


def render_message(message: Doc) -> Doc:
    """A conversation message with its links."""
    url = twilio_url("conversations", f"/v1/Conversations/{message['conversation_sid']}/Messages/{message['sid']}")
    return {
        **message,
        "url": url,
        "links": {"delivery_receipts": f"{url}/Receipts", "channel_metadata": f"{url}/ChannelMetadata"},
    }


def render_webhook(webhook: Doc) -> Doc:
    """A conversation-scoped webhook."""
    return {
        **webhook,
        "url": twilio_url("conversations", f"/v1/Conversations/{webhook['conversation_sid']}/Webhooks/{webhook['sid']}"),
    }


LEGACY_CHAT_TYPE = "webchat"  # what sandboxes before the spec check provisioned; Twilio's type is "chat"
STUDIO_ONLY_UNUSED = ("webhook_url", "webhook_method", "webhook_filters")


def render_address(address: Doc) -> Doc:
    """An address configuration; a Studio auto-creation shows no webhook settings (as in Twilio's examples)."""
    auto = address.get("auto_creation")
    if isinstance(auto, dict) and auto.get("type") == "studio":
        auto = {k: v for k, v in auto.items() if not (k in STUDIO_ONLY_UNUSED and v is None)}
    return {
        **address,
        "type": "chat" if address.get("type") == LEGACY_CHAT_TYPE else address.get("type"),
        "auto_creation": auto,
        "url": twilio_url("conversations", f"/v1/Configuration/Addresses/{address['sid']}"),
    }


# -- lookups --------------------------------------------------------------------
def conversation(account: Account, sid_or_name: str) -> Doc:
    """A conversation by SID or unique name, or a Twilio 404."""
    found = account.store.get("conversation", sid_or_name)
    if found is None and not sid_or_name.startswith("CH"):
        by_name, _ = account.store.list("conversation", where={"unique_name": sid_or_name}, limit=1)
        found = by_name[0] if by_name else None
    if found is None:
        raise not_found("The requested resource /Conversations/", sid_or_name)
    return found


def child(account: Account, kind: str, conversation_sid: str, sid: str, label: str) -> Doc:
    """A participant, message or webhook of a conversation, or a Twilio 404."""
    found = account.store.get(kind, sid, parent=conversation_sid)
    if found is None:
        raise not_found(f"The requested resource /Conversations/{conversation_sid}/{label}/", sid)
    return found


def address(account: Account, sid: str) -> Optional[Doc]:
    """An address configuration, if it exists."""
    return account.store.get("address", sid)


# -- events ---------------------------------------------------------------------
def fire(account: Account, conv: Doc, event_type: str, fields: Dict[str, Any], actor: Actor) -> None:
    """Queue `event_type` for every matching conversation-scoped webhook, if the actor fires webhooks."""
    parent_params = {
        "ChatServiceSid": conv["chat_service_sid"],
        "ConversationSid": conv["sid"],
        "MessagingServiceSid": conv.get("messaging_service_sid"),
    }
    WEBHOOKS.fire(account, conv["sid"], parent_params, event_type, fields, actor, _retries)


def _retries(webhook: Doc) -> int:
    """Conversations retries every webhook the same fixed number of times (no per-webhook setting)."""
    return CONVERSATIONS_RETRIES


# -- operations -----------------------------------------------------------------
def _still_open(account: Account, conv: Doc) -> Doc:
    """The conversation as stored now (call inside the write's transaction), so a close that raced in refuses the write."""
    fresh = account.store.get("conversation", conv["sid"]) or conv
    if fresh["state"] == "closed":
        raise closed_error(fresh["sid"])
    return fresh


def create_conversation(
    account: Account,
    friendly_name: Optional[str],
    unique_name: Optional[str],
    attributes: str,
    state: str = "active",
    messaging_service_sid: Optional[str] = None,
    timers: Optional[Dict[str, Any]] = None,
) -> Doc:
    """A new conversation in the default service (cannot start closed)."""
    if state not in STATES:
        raise invalid(f"Invalid State {state!r}")
    if state == "closed":
        raise invalid("Initial state can't be 'closed'", code=50384)
    if unique_name:
        taken, _ = account.store.list("conversation", where={"unique_name": unique_name}, limit=1)
        if taken:
            raise TwilioError(409, 50353, f"Conversation with provided unique name already exists: {unique_name}")
    now = now_iso()
    doc = {
        "sid": new_sid("CH"),
        "account_sid": account.sid,
        "chat_service_sid": account.conversations_service_sid,
        "messaging_service_sid": messaging_service_sid or account.messaging_service_sid,
        "friendly_name": friendly_name,
        "unique_name": unique_name,
        "attributes": attributes,
        "state": state,
        "timers": timers or {},
        "bindings": None,
        "date_created": now,
        "date_updated": now,
        "_next_index": 0,
    }
    return account.store.insert("conversation", doc)


def add_participant(
    account: Account, conv: Doc, identity: str, attributes: str, actor: Actor, role_sid: Optional[str] = None
) -> Doc:
    """Add a chat participant and fire onParticipantAdded."""
    if conv["state"] == "closed":
        raise closed_error(conv["sid"])
    existing, _ = account.store.list("participant", parent=conv["sid"], where={"identity": identity}, limit=1)
    if existing:
        raise TwilioError(409, 50433, f"Participant already exists: {identity}")
    now = now_iso()
    participant = {
        "sid": new_sid("MB"),
        "account_sid": account.sid,
        "conversation_sid": conv["sid"],
        "identity": identity,
        "attributes": attributes,
        "messaging_binding": None,
        "role_sid": role_sid or account.participant_role_sid,
        "last_read_message_index": None,
        "last_read_timestamp": None,
        "date_created": now,
        "date_updated": now,
    }
    with account.store.transaction():
        account.store.insert("participant", participant, parent=conv["sid"])
        fire(
            account,
            conv,
            "onParticipantAdded",
            {
                "ParticipantSid": participant["sid"],
                "Identity": identity,
                "Attributes": attributes,
                "RoleSid": participant["role_sid"],
                "DateCreated": now,
                "DateUpdated": now,
            },
            actor,
        )
    log.info("participant %s joined conversation %s (%s)", participant["sid"], conv["sid"], actor.source)
    account.live.publish({"type": "member", "channel_sid": conv["sid"], "identity": identity, "action": "added"})
    return participant


def remove_participant(account: Account, conv: Doc, participant: Doc, actor: Actor) -> None:
    """Remove a participant and fire onParticipantRemoved."""
    with account.store.transaction():
        account.store.delete("participant", participant["sid"])
        fire(
            account,
            conv,
            "onParticipantRemoved",
            {
                "ParticipantSid": participant["sid"],
                "Identity": participant["identity"],
                "Attributes": participant["attributes"],
                "RoleSid": participant["role_sid"],
                "DateCreated": participant["date_created"],
                "DateUpdated": now_iso(),
            },
            actor,
        )
    log.info("participant %s left conversation %s (%s)", participant["sid"], conv["sid"], actor.source)
    account.live.publish({"type": "member", "channel_sid": conv["sid"], "identity": participant["identity"], "action": "removed"})


def post_message(
    account: Account, conv: Doc, author: str, body: Optional[str], attributes: str, actor: Actor, media_sid: Optional[str] = None
) -> Doc:
    """Append a message with the next index and fire onMessageAdded; closed conversations refuse.

    A media-only message has a null body (`body: null`, no `Body` in the webhook) and `media` as a list of
    {sid, size, content_type, filename, category}; an author who is not a participant has a null `participant_sid`
    (no `ParticipantSid` in the webhook). Twilio leaves null values out of a webhook.
    """
    media_sid = media.checked_sid(media_sid)
    body = body or None
    if body is None and media_sid is None:
        raise invalid("Message body not provided", code=50503)
    if body and len(body) > BODY_LIMIT:
        raise invalid(f"Body is longer than {BODY_LIMIT} characters")
    with account.store.transaction():
        fresh = _still_open(account, conv)
        index = fresh["_next_index"]
        now = now_iso()
        sid = new_sid("IM")
        authors, _ = account.store.list("participant", parent=fresh["sid"], where={"identity": author}, limit=1)
        attached = [{**media.attach(account, media_sid, fresh["sid"], sid), "category": "media"}] if media_sid else None
        message = {
            "sid": sid,
            "account_sid": account.sid,
            "conversation_sid": fresh["sid"],
            "index": index,
            "author": author,
            "body": body,
            "media": attached,
            "attributes": attributes,
            "participant_sid": authors[0]["sid"] if authors else None,
            "content_sid": None,
            "delivery": None,
            "date_created": now,
            "date_updated": now,
        }
        account.store.insert("conversation_message", message, parent=fresh["sid"])
        fresh.update(_next_index=index + 1)
        account.store.replace("conversation", fresh)
        fire(
            account,
            fresh,
            "onMessageAdded",
            {
                "MessageSid": sid,
                "Index": index,
                "Author": author,
                "Body": body,
                "Attributes": attributes,
                "ParticipantSid": message["participant_sid"],
                "DateCreated": now,
                "Media": webhook_media(attached),
            },
            actor,
        )
    log.info("message %s index %d in conversation %s from %s", sid, index, fresh["sid"], actor.source)
    account.live.publish({"type": "message", "channel_sid": fresh["sid"], "index": index})
    return message


def webhook_media(attached: Optional[List[Doc]]) -> Optional[str]:
    """The webhook's `Media`: the message's media as a JSON string with Twilio's capitalised keys (None: no media)."""
    if not attached:
        return None
    return json.dumps(
        [
            {
                "Sid": m["sid"],
                "Size": m["size"],
                "ContentType": m["content_type"],
                "Filename": m["filename"],
                "Category": m["category"],
            }
            for m in attached
        ]
    )


def update_conversation(account: Account, conv: Doc, changes: Dict[str, Any], actor: Actor, reason: str = "API") -> Doc:
    """Change a conversation; fire onConversationUpdated and, for a state change, onConversationStateUpdated."""
    state = changes.get("state")
    if state is not None and state not in STATES:
        raise invalid(f"Invalid State {state!r}")
    with account.store.transaction():
        fresh = _still_open(account, conv)
        before = fresh["state"]
        updated = {**fresh, **changes, "date_updated": now_iso()}
        if state == "closed":
            updated["timers"] = {**(updated.get("timers") or {}), "date_closed": updated["date_updated"]}
        account.store.replace("conversation", updated)
        fire(
            account,
            updated,
            "onConversationUpdated",
            {
                "FriendlyName": updated["friendly_name"],
                "UniqueName": updated["unique_name"],
                "Attributes": updated["attributes"],
                "State": updated["state"],
                "DateCreated": updated["date_created"],
                "DateUpdated": updated["date_updated"],
            },
            actor,
        )
        if updated["state"] != before:
            fire(
                account,
                updated,
                "onConversationStateUpdated",
                {
                    "StateFrom": before,
                    "StateTo": updated["state"],
                    "Reason": reason,
                    "StateUpdated": updated["date_updated"],
                    "DateUpdated": updated["date_updated"],
                },
                actor,
            )
    log.info("conversation %s updated, state %s -> %s (%s)", updated["sid"], before, updated["state"], actor.source)
    if updated["state"] == "closed":
        account.end_task_for(updated["sid"], actor.identity or "customer")
    account.live.publish({"type": "channel", "channel_sid": updated["sid"]})
    return updated


def create_web_chat(
    account: Account,
    address_sid: str,
    customer_friendly_name: Optional[str],
    chat_friendly_name: Optional[str],
    pre_engagement: Any,
) -> Dict[str, str]:
    """What Flex does for `POST /v2/WebChats`: a conversation, a generated visitor identity, and a task."""
    addr = address(account, address_sid)
    if addr is None:
        raise TwilioError(404, 45744, f"Address configuration {address_sid} was not found")
    identity = str(uuid.uuid4())
    customer = customer_friendly_name or "Customer"
    attributes = json.dumps(
        {
            "pre_engagement_data": pre_engagement,
            "from": customer,
            "customer_friendly_name": customer,
            "chat_friendly_name": chat_friendly_name,
            "channel_type": "web",
            "address_sid": address_sid,
        }
    )
    from flex_sandbox import interactions  # here, not at the top: interactions builds on this module

    with account.store.transaction():
        conv = create_conversation(account, chat_friendly_name or f"Chat with {customer}", None, attributes)
        add_participant(account, conv, identity, json.dumps({"friendlyName": customer}), Actor.rest(False))
        task = interactions.route_web_chat(account, conv, identity, customer, chat_friendly_name, pre_engagement)
    log.info("web chat %s created on address %s, task %s", conv["sid"], address_sid, task["sid"])
    return {"conversation_sid": conv["sid"], "identity": identity}


def create_webhook(account: Account, conv: Doc, target: str, config: Dict[str, Any]) -> Doc:
    """A conversation-scoped webhook (at most five per conversation)."""
    webhook = WEBHOOKS.create(account, conv["sid"], {"conversation_sid": conv["sid"]}, target, config)
    log.info("webhook %s added to conversation %s for %s", webhook["sid"], conv["sid"], ",".join(config.get("filters", [])))
    return webhook


def messages(account: Account, conversation_sid: str) -> List[Doc]:
    """Every message of a conversation in index order."""
    docs, _ = account.store.list("conversation_message", parent=conversation_sid)
    return docs
