"""The sandbox's Flex account: its store, webhook dispatcher, live feed and first-start provisioning."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

from flex_sandbox import taskrouter
from flex_sandbox.credentials import Credentials
from flex_sandbox.live import LiveFeed
from flex_sandbox.store import AccountStore, Doc, Store
from flex_sandbox.webhooks import WebhookDispatcher
from flex_sandbox.wire import new_sid, now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who performs an action: REST API (`API`) or an agent in the desktop (`SDK`), and whether webhooks fire."""

    source: str
    identity: Optional[str]
    webhooks: bool

    @classmethod
    def rest(cls, webhooks_enabled: bool) -> Actor:
        """A REST call; scoped webhooks fire only with `X-Twilio-Webhook-Enabled: true`."""
        return cls("API", None, webhooks_enabled)

    @classmethod
    def agent(cls, name: str) -> Actor:
        """An agent acting in the desktop; always fires webhooks, like the Flex UI's SDK."""
        return cls("SDK", name, True)


class Account:
    """Everything the routes need for the account whose credentials the sandbox runs with.

    Its `store` sees only this account's rows: resources another account created in the same state file
    do not exist here (Twilio's 404), and a new account gets its own provisioning.
    """

    def __init__(self, credentials: Credentials, store: Store) -> None:
        self.credentials = credentials
        self.sid = credentials.account_sid
        self.store: AccountStore = store.scoped(self.sid)
        self.webhooks = WebhookDispatcher(self.store, credentials.auth_token)
        self.live = LiveFeed()
        self.timers = taskrouter.TaskTimers(self)
        self.provision()

    @property
    def chat_service_sid(self) -> str:
        """The legacy Flex chat service (IS) the web flow uses."""
        return self.store.meta("chat_service_sid") or ""

    @property
    def conversations_service_sid(self) -> str:
        """The default Conversations service (IS)."""
        return self.store.meta("conversations_service_sid") or ""

    @property
    def messaging_service_sid(self) -> str:
        """The messaging service (MG) conversations report."""
        return self.store.meta("messaging_service_sid") or ""

    @property
    def channel_role_sid(self) -> str:
        """The default Chat channel member role (RL)."""
        return self.store.meta("channel_role_sid") or ""

    @property
    def participant_role_sid(self) -> str:
        """The default Conversations participant role (RL)."""
        return self.store.meta("participant_role_sid") or ""

    @property
    def workspace_sid(self) -> str:
        """The TaskRouter workspace (WS) "Flex Task Assignment"."""
        return self.store.meta("tr_workspace_sid") or ""

    @property
    def workflow_sid(self) -> str:
        """The workflow (WW) "Assign to Anyone"."""
        return self.store.meta("tr_workflow_sid") or ""

    @property
    def task_queue_sid(self) -> str:
        """The task queue (WQ) "Everyone"."""
        return self.store.meta("tr_task_queue_sid") or ""

    def provision(self) -> None:
        """Create what a new Flex account has; each part once per account and database.

        TaskRouter came later than the messaging resources, so it is provisioned (and older tasks upgraded)
        on its own: a state file from before it gets a workspace on its next start.
        """
        self._provision_messaging()
        taskrouter.provision(self)
        taskrouter.upgrade_tasks(self)

    def _provision_messaging(self) -> None:
        """Web flow, chat services and web chat address."""
        if self.store.meta("provisioned"):
            return
        now = now_iso()
        with self.store.transaction():
            chat_service = new_sid("IS")
            conversations_service = new_sid("IS")
            for key, value in {
                "chat_service_sid": chat_service,
                "conversations_service_sid": conversations_service,
                "messaging_service_sid": new_sid("MG"),
                "channel_role_sid": new_sid("RL"),
                "participant_role_sid": new_sid("RL"),
            }.items():
                self.store.set_meta(key, value)
            for sid, name in ((chat_service, "Flex Chat Service"), (conversations_service, "Flex Conversations Service")):
                self.store.insert(
                    "service",
                    {"sid": sid, "account_sid": self.sid, "friendly_name": name, "date_created": now, "date_updated": now},
                )
            studio_flow = new_sid("FW")
            self.store.insert(
                "flex_flow",
                {
                    "sid": new_sid("FO"),
                    "account_sid": self.sid,
                    "friendly_name": "Flex Web Channel Flow",
                    "chat_service_sid": chat_service,
                    "channel_type": "web",
                    "contact_identity": None,
                    "enabled": True,
                    "integration_type": "studio",
                    "integration": {"flow_sid": studio_flow, "retry_count": 0},
                    "long_lived": False,
                    "janitor_enabled": True,
                    "date_created": now,
                    "date_updated": now,
                },
            )
            self.store.insert(
                "address",
                {
                    "sid": new_sid("IG"),
                    "account_sid": self.sid,
                    "type": "chat",  # Flex's Conversations "Chat" address (the spec's enum has no "webchat")
                    "address": "webchat-default",
                    "friendly_name": "Default Web Chat Address",
                    "address_country": None,
                    "auto_creation": {
                        "enabled": True,
                        "type": "studio",
                        "conversation_service_sid": conversations_service,
                        "webhook_url": None,
                        "webhook_method": None,
                        "webhook_filters": None,
                        "studio_flow_sid": studio_flow,
                        "studio_retry_count": 0,
                    },
                    "date_created": now,
                    "date_updated": now,
                },
            )
            self.store.set_meta("provisioned", now)
        log.info("provisioned a fresh Flex account %s", self.sid)

    def summary(self) -> Dict[str, Any]:
        """What /health reports: the provisioned SIDs a client needs."""
        flows, _ = self.store.list("flex_flow", limit=1)
        addresses, _ = self.store.list("address", limit=1)
        return {
            "status": "ok",
            "account_sid": self.sid,
            "flex_flow_sid": flows[0]["sid"] if flows else None,
            "chat_service_sid": self.chat_service_sid,
            "conversations_service_sid": self.conversations_service_sid,
            "conversations_address_sid": addresses[0]["sid"] if addresses else None,
            "workspace_sid": self.workspace_sid,
            "workflow_sid": self.workflow_sid,
            "task_queue_sid": self.task_queue_sid,
        }

    # -- tasks, shared by every kind of chat ---------------------------------------
    def task_for_channel(self, channel_sid: str) -> Optional[Doc]:
        """The chat's live TaskRouter task (else its newest one), if any."""
        return taskrouter.current_task(self, channel_sid)

    def end_task_for(self, channel_sid: str, ended_by: str) -> None:
        """A chat channel or conversation closed (agent, customer or API): its live tasks end."""
        taskrouter.chat_closed(self, channel_sid, ended_by)

    def publish(self, kind: str, task: Doc, **extra: Any) -> None:
        """Tell desktops something happened to a task."""
        self.live.publish({"type": kind, "task_sid": task["sid"], "channel_sid": task.get("_channel_sid"), **extra})


def loads(text: Optional[str]) -> Any:
    """Parse a JSON attribute string, tolerating empty or broken values."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text
