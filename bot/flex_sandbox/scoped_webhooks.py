"""Webhooks scoped to one Chat channel or one conversation: parsed, stored and fired the same way by both APIs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Optional

from flex_sandbox.account import Account, Actor
from flex_sandbox.store import Doc
from flex_sandbox.webhooks import matches
from flex_sandbox.wire import Form, invalid, new_sid, now_iso

MAX_WEBHOOKS = 5
WEBHOOK_TYPES = ("webhook", "trigger", "studio")


@dataclass(frozen=True)
class ConfigInteger:
    """The one Configuration.* integer each API has of its own (Chat's RetryCount, Conversations' ReplayAfter)."""

    param: str
    field: str
    maximum: int
    default: Optional[int] = None


@dataclass(frozen=True)
class WebhookScope:
    """What differs between Chat channel webhooks and Conversations webhooks; the rules themselves are shared."""

    table: str  # store kind of the webhook docs
    parent: str  # the parent as Twilio's limit error names it
    type_field: str  # "type" (Chat) or "target" (Conversations): the doc field, named like the form parameter
    events: FrozenSet[str]
    limit_code: int
    extra: ConfigInteger

    def parse_config(self, form: Form, existing: Optional[Doc] = None) -> Dict[str, Any]:
        """Configuration.* params of a scoped webhook, validated like Twilio (an update keeps what it does not send)."""
        config = dict((existing or {}).get("configuration") or {})
        if "Configuration.Url" in form:
            config["url"] = form.get("Configuration.Url")
        if "Configuration.Method" in form:
            method = (form.get("Configuration.Method") or "").upper()
            if method not in ("GET", "POST"):
                raise invalid("Configuration.Method must be GET or POST")
            config["method"] = method
        if "Configuration.Filters" in form:
            config["filters"] = form.list("Configuration.Filters")
        if "Configuration.Triggers" in form:
            config["triggers"] = form.list("Configuration.Triggers")
        if "Configuration.FlowSid" in form:
            config["flow_sid"] = form.get("Configuration.FlowSid")
        extra = form.integer(self.extra.param, 0, self.extra.maximum)
        if extra is not None:
            config[self.extra.field] = extra
        config.setdefault("method", "POST")
        config.setdefault("filters", [])
        if self.extra.default is not None:
            config.setdefault(self.extra.field, self.extra.default)
        url = config.get("url")
        if url and not (url.startswith("http://") or url.startswith("https://")):
            raise invalid("Configuration.Url must be an http(s) URL")
        return config

    def create(
        self, account: Account, parent_sid: str, parent_fields: Dict[str, str], webhook_type: str, config: Dict[str, Any]
    ) -> Doc:
        """A new webhook under `parent_sid` (at most five per parent); `parent_fields` name the parent in the doc."""
        if webhook_type not in WEBHOOK_TYPES:
            raise invalid(f"{self.type_field.capitalize()} must be one of {', '.join(WEBHOOK_TYPES)}")
        if webhook_type == "webhook" and not config.get("url"):
            raise invalid(f"Missing required parameter Configuration.Url for webhook {self.type_field}")
        unknown = [f for f in config.get("filters", []) if f not in self.events]
        if unknown:
            raise invalid(f"Invalid Configuration.Filters: {', '.join(unknown)}")
        if account.store.count(self.table, parent_sid) >= MAX_WEBHOOKS:
            raise invalid(f"A {self.parent} can have at most {MAX_WEBHOOKS} webhooks", code=self.limit_code)
        now = now_iso()
        webhook = {
            "sid": new_sid("WH"),
            "account_sid": account.sid,
            **parent_fields,
            self.type_field: webhook_type,
            "configuration": config,
            "date_created": now,
            "date_updated": now,
        }
        return account.store.insert(self.table, webhook, parent=parent_sid)

    def fire(
        self,
        account: Account,
        parent_sid: str,
        parent_params: Dict[str, Any],
        event_type: str,
        fields: Dict[str, Any],
        actor: Actor,
        retries: Callable[[Doc], int],
    ) -> None:
        """Queue `event_type` for every matching webhook of the parent, if the actor's request fires webhooks."""
        if not actor.webhooks:
            return
        webhooks, _ = account.store.list(self.table, parent=parent_sid)
        for webhook in webhooks:
            if not matches(webhook, event_type):
                continue
            values: Dict[str, Any] = {
                "EventType": event_type,
                "AccountSid": account.sid,
                **parent_params,
                "Source": actor.source,
                "ClientIdentity": actor.identity,  # SDK (agent) actions only
                "WebhookType": "webhook",
                "WebhookSid": webhook["sid"],
                **fields,
            }
            account.webhooks.enqueue(parent_sid, webhook, form_params(values), retries(webhook))


def form_params(values: Dict[str, Any]) -> Dict[str, str]:
    """Webhook parameters the way Twilio posts them: a null value is left out; an empty string is sent (`Name=`).

    The signature is computed over exactly these parameters, so blank ones are signed too.
    """
    return {key: str(value) for key, value in values.items() if value is not None}
