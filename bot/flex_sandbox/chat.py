"""Flex Legacy Messaging: Flex v1 flows and web channels on top of Programmable Chat v2."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Dict, List, Optional

from flex_sandbox import media, taskrouter
from flex_sandbox.account import Account, Actor, loads
from flex_sandbox.scoped_webhooks import ConfigInteger, WebhookScope
from flex_sandbox.store import Doc, public
from flex_sandbox.wire import TwilioError, invalid, new_sid, not_found, now_iso, twilio_url

log = logging.getLogger(__name__)

BODY_LIMIT = 32768
CHANNEL_EVENTS = frozenset(
    {
        "onMessageSent",
        "onMessageUpdated",
        "onMessageRemoved",
        "onMemberAdded",
        "onMemberUpdated",
        "onMemberRemoved",
        "onChannelUpdated",
        "onChannelDestroyed",
        "onMediaMessageSent",
        "onUserJoinedChannel",
        "onUserLeftChannel",
    }
)
WEBHOOKS = WebhookScope(
    table="chat_webhook",
    parent="channel",
    type_field="type",
    events=CHANNEL_EVENTS,
    limit_code=50316,
    extra=ConfigInteger("Configuration.RetryCount", "retry_count", maximum=3, default=0),
)


# -- rendering ------------------------------------------------------------------
def derived_sid(prefix: str, *parts: str) -> str:
    """A stable SID for something Twilio has and the sandbox does not model (the same every time it is shown)."""
    return prefix + hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def render_service(account: Account, svc: Doc) -> Doc:
    """A Chat service as `GET /v2/Services/{IS}` returns it.

    The sandbox has no service-level settings or roles API: the settings are a new service's defaults (no pre/post
    webhooks, push notifications off), the channel role is the one members get, and the service and channel-creator
    roles are stable derived SIDs of the right shape.
    """
    url = twilio_url("chat", f"/v2/Services/{svc['sid']}")
    off = {"enabled": False}
    return {
        **public(svc),
        "account_sid": account.sid,
        "default_service_role_sid": derived_sid("RL", svc["sid"], "service_user"),
        "default_channel_role_sid": account.channel_role_sid or derived_sid("RL", svc["sid"], "channel_user"),
        "default_channel_creator_role_sid": derived_sid("RL", svc["sid"], "channel_admin"),
        "read_status_enabled": True,
        "reachability_enabled": False,
        "typing_indicator_timeout": 5,
        "consumption_report_interval": 10,
        "limits": {"channel_members": 100, "user_channels": 250},
        "pre_webhook_url": None,
        "post_webhook_url": None,
        "webhook_method": "POST",
        "webhook_filters": [],
        "pre_webhook_retry_count": 0,
        "post_webhook_retry_count": 0,
        "notifications": {
            "log_enabled": False,
            "new_message": off,
            "added_to_channel": off,
            "removed_from_channel": off,
            "invited_to_channel": off,
        },
        "media": {"size_limit_mb": 150, "compatibility_message": "Media messages are not supported by your client"},
        "url": url,
        "links": {
            "channels": f"{url}/Channels",
            "users": f"{url}/Users",
            "roles": f"{url}/Roles",
            "bindings": f"{url}/Bindings",
        },
    }


def render_flow(flow: Doc) -> Doc:
    """A Flex Flow as `GET /v1/FlexFlows/{FO}` returns it."""
    return {**flow, "url": twilio_url("flex-api", f"/v1/FlexFlows/{flow['sid']}")}


def render_web_channel(web: Doc) -> Doc:
    """A web channel as `/v1/WebChannels` returns it."""
    return {**web, "url": twilio_url("flex-api", f"/v1/WebChannels/{web['sid']}")}


def channel_path(channel: Doc) -> str:
    return f"/v2/Services/{channel['service_sid']}/Channels/{channel['sid']}"


def render_channel(account: Account, channel: Doc) -> Doc:
    """A Chat channel with counts, url and links."""
    url = twilio_url("chat", channel_path(channel))
    return {
        **public(channel),
        "members_count": account.store.count("chat_member", channel["sid"]),
        "messages_count": channel["_next_index"],
        "url": url,
        "links": {
            "webhooks": f"{url}/Webhooks",
            "messages": f"{url}/Messages",
            "invites": f"{url}/Invites",
            "members": f"{url}/Members",
            "last_message": None,
        },
    }


def render_member(member: Doc) -> Doc:
    """A Chat member."""
    return {
        **member,
        "url": twilio_url(
            "chat", f"/v2/Services/{member['service_sid']}/Channels/{member['channel_sid']}/Members/{member['sid']}"
        ),
    }


def render_message(message: Doc) -> Doc:
    """A Chat message."""
    return {
        **message,
        "url": twilio_url(
            "chat", f"/v2/Services/{message['service_sid']}/Channels/{message['channel_sid']}/Messages/{message['sid']}"
        ),
    }


def render_webhook(webhook: Doc) -> Doc:
    """A channel-scoped Chat webhook."""
    return {
        **webhook,
        "url": twilio_url(
            "chat", f"/v2/Services/{webhook['service_sid']}/Channels/{webhook['channel_sid']}/Webhooks/{webhook['sid']}"
        ),
    }


# -- lookups --------------------------------------------------------------------
def flow(account: Account, sid: str) -> Doc:
    """A Flex Flow or a Twilio 404."""
    found = account.store.get("flex_flow", sid)
    if found is None:
        raise not_found("The requested resource /FlexFlows/", sid)
    return found


def service(account: Account, service_sid: str) -> Doc:
    """A chat service of this account or a Twilio 404."""
    found = account.store.get("service", service_sid)
    if found is None:
        raise not_found("The requested resource /Services/", service_sid)
    return found


def channel(account: Account, service_sid: str, sid_or_name: str) -> Doc:
    """A Chat channel by SID or unique name, or a Twilio 404."""
    service(account, service_sid)
    found = account.store.get("chat_channel", sid_or_name, parent=service_sid)
    if found is None and not sid_or_name.startswith("CH"):
        by_name, _ = account.store.list("chat_channel", parent=service_sid, where={"unique_name": sid_or_name}, limit=1)
        found = by_name[0] if by_name else None
    if found is None:
        raise not_found(f"The requested resource /Services/{service_sid}/Channels/", sid_or_name)
    return found


def child(account: Account, kind: str, channel_sid: str, sid: str, label: str) -> Doc:
    """A member, message or webhook of a channel, or a Twilio 404."""
    found = account.store.get(kind, sid, parent=channel_sid)
    if found is None:
        raise not_found(f"The requested resource /Channels/{channel_sid}/{label}/", sid)
    return found


# -- events ---------------------------------------------------------------------
def fire(account: Account, channel: Doc, event_type: str, fields: Dict[str, Any], actor: Actor) -> None:
    """Queue `event_type` for every matching channel webhook, if the actor's request fires webhooks."""
    parent_params = {"InstanceSid": channel["service_sid"], "ChannelSid": channel["sid"]}
    WEBHOOKS.fire(account, channel["sid"], parent_params, event_type, fields, actor, _retries)


def _retries(webhook: Doc) -> int:
    """Chat webhooks retry as often as their Configuration.RetryCount says."""
    return int(webhook["configuration"].get("retry_count") or 0)


# -- operations -----------------------------------------------------------------
def create_channel(
    account: Account,
    service_sid: str,
    friendly_name: Optional[str],
    unique_name: Optional[str],
    attributes: str,
    channel_type: str = "private",
    created_by: str = "system",
) -> Doc:
    """A new Chat channel (unique names are unique per service)."""
    if unique_name:
        taken, _ = account.store.list("chat_channel", parent=service_sid, where={"unique_name": unique_name}, limit=1)
        if taken:
            raise TwilioError(409, 50307, f"Channel with provided unique name already exists: {unique_name}")
    now = now_iso()
    doc = {
        "sid": new_sid("CH"),
        "account_sid": account.sid,
        "service_sid": service_sid,
        "friendly_name": friendly_name,
        "unique_name": unique_name,
        "attributes": attributes,
        "type": channel_type,
        "created_by": created_by,
        "date_created": now,
        "date_updated": now,
        "_next_index": 0,
    }
    return account.store.insert("chat_channel", doc, parent=service_sid)


def add_member(
    account: Account, channel: Doc, identity: str, attributes: str, actor: Actor, role_sid: Optional[str] = None
) -> Doc:
    """Join `identity` to the channel and fire onMemberAdded."""
    existing, _ = account.store.list("chat_member", parent=channel["sid"], where={"identity": identity}, limit=1)
    if existing:
        raise TwilioError(409, 50404, f"Member already exists: {identity}")
    now = now_iso()
    member = {
        "sid": new_sid("MB"),
        "account_sid": account.sid,
        "channel_sid": channel["sid"],
        "service_sid": channel["service_sid"],
        "identity": identity,
        "role_sid": role_sid or account.channel_role_sid,
        "attributes": attributes,
        "last_consumed_message_index": None,
        "last_consumption_timestamp": None,
        "date_created": now,
        "date_updated": now,
    }
    with account.store.transaction():
        account.store.insert("chat_member", member, parent=channel["sid"])
        fire(
            account,
            channel,
            "onMemberAdded",
            {
                "MemberSid": member["sid"],
                "Identity": identity,
                "RoleSid": member["role_sid"],
                "Attributes": attributes,
                "DateCreated": now,
            },
            actor,
        )
    log.info("member %s joined chat channel %s (%s)", member["sid"], channel["sid"], actor.source)
    account.live.publish({"type": "member", "channel_sid": channel["sid"], "identity": identity, "action": "added"})
    return member


def remove_member(account: Account, channel: Doc, member: Doc, actor: Actor) -> None:
    """Remove a member and fire onMemberRemoved."""
    with account.store.transaction():
        account.store.delete("chat_member", member["sid"])
        fire(
            account,
            channel,
            "onMemberRemoved",
            {
                "MemberSid": member["sid"],
                "Identity": member["identity"],
                "RoleSid": member["role_sid"],
                "Attributes": member["attributes"],
                "DateCreated": member["date_created"],
                "DateRemoved": now_iso(),
            },
            actor,
        )
    log.info("member %s left chat channel %s (%s)", member["sid"], channel["sid"], actor.source)
    account.live.publish({"type": "member", "channel_sid": channel["sid"], "identity": member["identity"], "action": "removed"})


def post_message(
    account: Account,
    channel: Doc,
    author: str,
    body: Optional[str],
    attributes: str,
    actor: Actor,
    media_sid: Optional[str] = None,
) -> Doc:
    """Append a message with the next per-channel index; fire onMessageSent, or onMediaMessageSent for media.

    Chat stores a missing body as "" (the Body parameter: "an empty string or null sets the value as an empty
    string"), so a media message's webhook carries `Body=`; `type` is "media" and `media` one object
    {sid, size, content_type, filename}. Null values (a media file without a filename) are left out of the webhook.
    """
    media_sid = media.checked_sid(media_sid)
    if not body and media_sid is None:
        raise invalid("Message body not provided", code=50503)
    if body and len(body) > BODY_LIMIT:
        raise invalid(f"Body is longer than {BODY_LIMIT} characters")
    with account.store.transaction():
        fresh = account.store.get("chat_channel", channel["sid"]) or channel
        index = fresh["_next_index"]
        now = now_iso()
        sid = new_sid("IM")
        attached = media.attach(account, media_sid, fresh["sid"], sid) if media_sid else None
        message = {
            "sid": sid,
            "account_sid": account.sid,
            "service_sid": fresh["service_sid"],
            "channel_sid": fresh["sid"],
            "to": fresh["sid"],
            "from": author,
            "body": body or "",
            "attributes": attributes,
            "index": index,
            "type": "media" if attached else "text",
            "media": attached,
            "was_edited": False,
            "last_updated_by": None,
            "date_created": now,
            "date_updated": now,
        }
        account.store.insert("chat_message", message, parent=fresh["sid"])
        fresh.update(_next_index=index + 1)
        account.store.replace("chat_channel", fresh)
        fields: Dict[str, Any] = {
            "MessageSid": sid,
            "Index": index,
            "Body": message["body"],
            "Attributes": attributes,
            "From": author,
            "To": fresh["sid"],
            "DateCreated": now,
        }
        if attached:
            fields.update(
                MediaSid=attached["sid"],
                MediaContentType=attached["content_type"],
                MediaFilename=attached["filename"],
                MediaSize=attached["size"],
            )
        fire(account, fresh, "onMediaMessageSent" if attached else "onMessageSent", fields, actor)
    log.info("message %s index %d in chat channel %s from %s", sid, index, fresh["sid"], actor.source)
    account.live.publish({"type": "message", "channel_sid": fresh["sid"], "index": index})
    return message


def update_channel(account: Account, channel: Doc, changes: Dict[str, Any], actor: Actor) -> Doc:
    """Change a channel, fire onChannelUpdated, and end its task when status becomes INACTIVE."""
    with account.store.transaction():
        fresh = account.store.get("chat_channel", channel["sid"]) or channel
        was_active = _status(fresh) != "INACTIVE"
        channel = {**fresh, **changes, "date_updated": changes.get("date_updated") or now_iso()}
        account.store.replace("chat_channel", channel)
        fire(
            account,
            channel,
            "onChannelUpdated",
            {
                "FriendlyName": channel["friendly_name"],
                "UniqueName": channel["unique_name"],
                "Attributes": channel["attributes"],
                "CreatedBy": channel["created_by"],
                "ChannelType": channel["type"],
                "DateCreated": channel["date_created"],
                "DateUpdated": channel["date_updated"],
            },
            actor,
        )
    log.info("chat channel %s updated (%s)", channel["sid"], actor.source)
    if was_active and _status(channel) == "INACTIVE":
        account.end_task_for(channel["sid"], actor.identity or "customer")
    account.live.publish({"type": "channel", "channel_sid": channel["sid"]})
    return channel


def _status(channel: Doc) -> Optional[str]:
    attributes = loads(channel.get("attributes"))
    return str(attributes.get("status", "")).upper() if isinstance(attributes, dict) else None


def close(account: Account, channel: Doc, actor: Actor, post_engagement: Optional[Any] = None) -> Doc:
    """End a legacy chat the Flex way: channel attributes status INACTIVE."""
    attributes = loads(channel.get("attributes"))
    if not isinstance(attributes, dict):
        attributes = {}
    attributes["status"] = "INACTIVE"
    if post_engagement is not None:
        attributes["post_engagement_data"] = post_engagement
    return update_channel(account, channel, {"attributes": json.dumps(attributes)}, actor)


def create_web_channel(
    account: Account,
    flow_sid: str,
    identity: str,
    customer_friendly_name: str,
    chat_friendly_name: str,
    chat_unique_name: Optional[str],
    pre_engagement: Any,
) -> Doc:
    """What Flex does for `POST /v1/WebChannels`: a chat channel with the visitor as member, and a task."""
    flex_flow = flow(account, flow_sid)
    if not flex_flow.get("enabled"):
        raise invalid(f"Flex Flow {flow_sid} is disabled")
    attributes = json.dumps(
        {
            "status": "ACTIVE",
            "from": customer_friendly_name,
            "channel_type": flex_flow.get("channel_type", "web"),
            "pre_engagement_data": pre_engagement,
        }
    )
    with account.store.transaction():
        chat_channel = create_channel(account, flex_flow["chat_service_sid"], chat_friendly_name, chat_unique_name, attributes)
        add_member(account, chat_channel, identity, json.dumps({"friendlyName": customer_friendly_name}), Actor.rest(False))
        web = {
            "sid": chat_channel["sid"],
            "account_sid": account.sid,
            "flex_flow_sid": flow_sid,
            "date_created": chat_channel["date_created"],
            "date_updated": chat_channel["date_updated"],
        }
        account.store.insert("web_channel", web)
        task = taskrouter.route_chat(
            account,
            {
                "channelSid": chat_channel["sid"],
                "channelType": flex_flow.get("channel_type", "web"),
                "name": customer_friendly_name,
                "pre_engagement_data": pre_engagement,
            },
            {
                "channel_sid": chat_channel["sid"],
                "service_sid": chat_channel["service_sid"],
                "mode": "legacy",
                "visitor_identity": identity,
                "customer_friendly_name": customer_friendly_name,
                "chat_friendly_name": chat_friendly_name,
                "pre_engagement_data": pre_engagement,
            },
        )
    log.info("web channel %s created on flow %s, task %s", chat_channel["sid"], flow_sid, task["sid"])
    return web


def create_webhook(account: Account, channel: Doc, webhook_type: str, config: Dict[str, Any]) -> Doc:
    """A channel-scoped webhook (at most five per channel)."""
    parent_fields = {"service_sid": channel["service_sid"], "channel_sid": channel["sid"]}
    webhook = WEBHOOKS.create(account, channel["sid"], parent_fields, webhook_type, config)
    log.info("webhook %s added to chat channel %s for %s", webhook["sid"], channel["sid"], ",".join(config.get("filters", [])))
    return webhook


def messages(account: Account, channel_sid: str) -> List[Doc]:
    """Every message of a channel in index order."""
    docs, _ = account.store.list("chat_message", parent=channel_sid)
    return docs
