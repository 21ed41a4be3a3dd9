"""Interactions mode: the plugin makes the conversation, adds the visitor, then routes it as a Flex Interaction.

Against a real Flex sandbox process through the real `twilio` SDK. Ending a chat closes the
interaction channel and never touches the TaskRouter task (Twilio's advice); a start that
fails part-way removes what it made; an ambiguous failure never makes anything twice.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, Dict, List, Optional

import pytest
from twilio.rest import Client

from flex_sandbox.credentials import DEVELOPMENT
from northwind.servers import Sandbox
from rasa_flex_handoff.flex import FlexChat, FlexError, FlexRouting, InteractionsChats, NewChat, flex_chats
from rasa_flex_handoff.flex.interactions import interaction_of, interaction_task_attributes, routed_of, task_timeout
from rasa_flex_handoff.settings import Settings, settings_from_env

IDENTITY = "visitor_" + "ab" * 16
WEBHOOK = "https://bot.example.com/webhooks/flex/webhook?token=t"
CONTEXT: Dict[str, Any] = {
    "friendlyName": "Ann",
    "visitor": {"email": "ann@example.com"},
    "language": "de",
    "question": "Where is my order?",
    "intent": "human_handoff",
    "transcript": [{"from": "visitor", "text": f"line {n}"} for n in range(8)],
    "slots": {"order": "A-17"},
    "source": "rasa",
}

# -- pure ---------------------------------------------------------------------------


def test_the_interactions_mode_has_its_own_class() -> None:
    settings = settings_from_env({**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com", "FLEX_MODE": "interactions"})
    chats = flex_chats(Client("AC" + "0" * 32, "token"), settings)
    assert type(chats) is InteractionsChats and chats.mode == "interactions"


def test_the_task_carries_who_why_and_the_latest_lines_plus_what_flex_reads() -> None:
    new = NewChat(
        route="WW1",
        identity=IDENTITY,
        customer_name="Ann",
        chat_name="Web chat with Ann",
        pre_engagement_data={**CONTEXT, "transcript_omitted": 2, "handoff_ref": "handoff-1"},
        unique_name="handoff-1",
    )
    attributes = interaction_task_attributes(new, "CH1")
    assert (
        attributes
        == {
            "handoff_ref": "handoff-1",
            "name": "Ann",
            "customerName": "Ann",
            "channelType": "web",
            "conversationSid": "CH1",
            "visitor": {"email": "ann@example.com"},
            "customers": {"email": "ann@example.com"},  # who, as Flex Insights reads it
            "language": "de",  # Flex routes on it, e.g. to agents who speak it
            "question": "Where is my order?",
            "intent": "human_handoff",
            "slots": {"order": "A-17"},
            "transcript": CONTEXT["transcript"][-5:],
            "transcript_omitted": 5,  # 3 left out here, 2 already before
        }
    )


def test_accept_timeout_is_the_tasks_ttl_in_whole_seconds() -> None:
    assert task_timeout(300) == 300
    assert task_timeout(0.2) == 1
    assert task_timeout(90.5) == 91
    assert task_timeout(0) is None  # no limit: TaskRouter's own default


def test_an_interaction_is_read_from_twilios_answer_and_from_the_slot() -> None:
    routed = routed_of("KD" + "1" * 32, {"sid": "UO" + "2" * 32}, {"properties": {"sid": "WT" + "3" * 32}})
    assert routed.interaction == "KD" + "1" * 32 + "/UO" + "2" * 32 and routed.task_sid == "WT" + "3" * 32
    assert routed_of("KD1", {"sid": "UO2"}, None).task_sid is None
    with pytest.raises(FlexError):
        routed_of("KD1", {}, None)
    chat = FlexChat(mode="interactions", channel_sid="CH1", identity=IDENTITY, interaction=routed.interaction)
    assert interaction_of(chat) == ("KD" + "1" * 32, "UO" + "2" * 32)
    assert interaction_of(dataclasses.replace(chat, interaction=None)) is None
    with pytest.raises(FlexError):
        interaction_of(dataclasses.replace(chat, interaction="KD1/../../Tasks"))


# -- against the sandbox ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_faults(clean_sandbox: Sandbox) -> None:
    """Faults one test injects end with it (the session's sandbox is tests/unit/conftest.py's)."""


def settings_of(sandbox: Sandbox, **changes: Any) -> Settings:
    fast = {"flex_mode": "interactions", "twilio_timeout": 2.0, "twilio_retries": 1}
    return dataclasses.replace(sandbox.settings, **{**fast, **changes})


def fault(sandbox: Sandbox, **spec: Any) -> None:
    r = sandbox.agent("POST", "/sandbox/faults", spec)
    assert r.ok, r.text


# Any request to a TaskRouter task: the plugin never creates, updates or cancels an interaction's task itself.
NO_TASK_API = {"path_regex": r"^/taskrouter/v1/Workspaces/WS\w+/Tasks", "method": "POST", "status": 500, "times": None}


async def start(chats: InteractionsChats, ref: Optional[str] = None) -> FlexChat:
    return await chats.start_chat(
        identity=IDENTITY,
        customer_name="Ann",
        pre_engagement_data=CONTEXT,
        webhook_url=WEBHOOK,
        unique_name=ref or f"handoff-{uuid.uuid4().hex}",
        opening_message="Where is my order?",
    )


def tasks_of(sandbox: Sandbox, conversation_sid: str) -> List[Any]:
    workspace = sandbox.client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"])
    return [t for t in workspace.tasks.list() if json.loads(t.attributes).get("conversationSid") == conversation_sid]


def conversations_named(sandbox: Sandbox, ref: str) -> List[Any]:
    return [c for c in sandbox.client.conversations.v1.conversations.list() if c.unique_name == ref]


def channel_status(sandbox: Sandbox, chat: FlexChat) -> Optional[str]:
    found = interaction_of(chat)
    assert found is not None
    return sandbox.client.flex_api.v1.interaction(found[0]).channels(found[1]).fetch().status


async def test_start_makes_the_conversation_then_routes_it_as_an_interaction(sandbox: Sandbox) -> None:
    fault(sandbox, **NO_TASK_API)
    client = sandbox.async_client()
    ref = f"handoff-{uuid.uuid4().hex}"
    chat = await start(InteractionsChats(client, settings_of(sandbox, accept_timeout=90.5)), ref)
    assert chat.mode == "interactions" and chat.identity == IDENTITY and chat.channel_sid.startswith("CH")
    assert interaction_of(chat) is not None and chat.task_sid and chat.task_sid.startswith("WT")

    conversation = sandbox.client.conversations.v1.conversations(chat.channel_sid).fetch()
    assert conversation.unique_name == ref and conversation.state == "active"
    assert json.loads(conversation.attributes)["pre_engagement_data"] == {**CONTEXT, "handoff_ref": ref}
    handle = sandbox.client.conversations.v1.conversations(chat.channel_sid)
    assert [p.identity for p in handle.participants.list()] == [IDENTITY]
    assert [w.configuration["url"] for w in handle.webhooks.list()] == [WEBHOOK]
    assert [(m.author, m.body) for m in handle.messages.list()] == [(IDENTITY, "Where is my order?")]
    assert channel_status(sandbox, chat) != "closed"

    [task] = tasks_of(sandbox, chat.channel_sid)
    attributes = json.loads(task.attributes)
    assert task.sid == chat.task_sid and task.assignment_status == "pending"
    assert task.workflow_sid == sandbox.info["workflow_sid"] and task.task_channel_unique_name == "chat"
    assert task.timeout == 91
    assert attributes["handoff_ref"] == ref and attributes["channelType"] == "web"
    assert attributes["customerName"] == attributes["name"] == "Ann" and attributes["intent"] == "human_handoff"
    assert (await FlexRouting(client, settings_of(sandbox)).waiting(chat)).task_sid == chat.task_sid
    await client.http_client.close()


async def test_close_ends_the_interaction_channel_and_never_the_task(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    chats = InteractionsChats(client, settings_of(sandbox))
    chat = await start(chats)
    fault(sandbox, **NO_TASK_API)
    # Nor the conversation itself: closing the interaction channel closes it.
    fault(sandbox, path_regex=r"^/conversations/v1/Conversations/CH\w+$", method="POST", status=500, times=None)
    assert not await chats.chat_is_closed(chat)
    await chats.close_chat(chat)
    assert channel_status(sandbox, chat) == "closed"
    assert await chats.chat_is_closed(chat)
    [task] = tasks_of(sandbox, chat.channel_sid)
    # It was still pending: Flex cancels it with the channel.
    assert (task.assignment_status, task.reason) == ("canceled", "Interaction channel closed")
    await chats.close_chat(chat)  # already closed counts as done
    await client.http_client.close()


async def test_a_start_that_fails_at_routing_removes_the_conversation(sandbox: Sandbox) -> None:
    fault(sandbox, path_regex=r"^/flex-api/v1/Interactions$", method="POST", status=400)
    client = sandbox.async_client()
    ref = f"handoff-{uuid.uuid4().hex}"
    with pytest.raises(FlexError) as failed:
        await start(InteractionsChats(client, settings_of(sandbox)), ref)
    assert failed.value.reason.startswith("create Interaction")
    assert conversations_named(sandbox, ref) == []
    await client.http_client.close()


async def test_discard_closes_the_interaction_and_deletes_the_conversation(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    chats = InteractionsChats(client, settings_of(sandbox))
    ref = f"handoff-{uuid.uuid4().hex}"
    chat = await start(chats, ref)
    fault(sandbox, **NO_TASK_API)
    await chats.discard_chat(chat)
    assert channel_status(sandbox, chat) == "closed"
    assert conversations_named(sandbox, ref) == []
    assert [(t.assignment_status, t.reason) for t in tasks_of(sandbox, chat.channel_sid)] == [
        ("canceled", "Interaction channel closed")  # not "Chat closed": the interaction was closed, then the rest deleted
    ]
    await client.http_client.close()


@pytest.mark.parametrize(
    "path",
    [
        r"^/conversations/v1/Conversations$",
        r"^/conversations/v1/Conversations/CH\w+/Participants$",
        r"^/flex-api/v1/Interactions$",
    ],
    ids=["conversation", "participant", "interaction"],
)
async def test_a_step_that_went_through_but_failed_is_not_made_twice(sandbox: Sandbox, path: str) -> None:
    fault(sandbox, path_regex=path, method="POST", status=500, when="after")
    client = sandbox.async_client()
    ref = f"handoff-{uuid.uuid4().hex}"
    chat = await start(InteractionsChats(client, settings_of(sandbox)), ref)
    [conversation] = conversations_named(sandbox, ref)
    assert conversation.sid == chat.channel_sid
    handle = sandbox.client.conversations.v1.conversations(chat.channel_sid)
    assert [p.identity for p in handle.participants.list()] == [IDENTITY]
    [task] = tasks_of(sandbox, chat.channel_sid)
    assert task.sid == chat.task_sid and interaction_of(chat) is not None
    await client.http_client.close()


@pytest.mark.parametrize(
    "path",
    [r"^/conversations/v1/Conversations$", r"^/flex-api/v1/Interactions$"],
    ids=["conversation", "interaction"],
)
async def test_a_step_that_failed_before_landing_is_retried_once(sandbox: Sandbox, path: str) -> None:
    fault(sandbox, path_regex=path, method="POST", status=500, when="before")
    client = sandbox.async_client()
    ref = f"handoff-{uuid.uuid4().hex}"
    chat = await start(InteractionsChats(client, settings_of(sandbox)), ref)
    assert [c.sid for c in conversations_named(sandbox, ref)] == [chat.channel_sid]
    assert [t.sid for t in tasks_of(sandbox, chat.channel_sid)] == [chat.task_sid]
    await client.http_client.close()


async def test_a_conversation_create_that_cannot_be_checked_leaves_nothing(sandbox: Sandbox) -> None:
    """Created, the answer lost, and the look-up failing too: the start fails and the conversation is removed."""
    fault(sandbox, path_regex=r"^/conversations/v1/Conversations$", method="POST", status=500, when="after")
    # Both tries of the look-up (TWILIO_RETRIES=1) fail; the clean-up's look-up then finds it.
    fault(sandbox, path_regex=r"^/conversations/v1/Conversations/handoff-", method="GET", status=500, times=2)
    client = sandbox.async_client()
    ref = f"handoff-{uuid.uuid4().hex}"
    with pytest.raises(FlexError) as failed:
        await start(InteractionsChats(client, settings_of(sandbox)), ref)
    assert failed.value.reason.startswith("create conversation")
    assert conversations_named(sandbox, ref) == []
    await client.http_client.close()


async def test_messages_and_participants_are_the_conversations(sandbox: Sandbox) -> None:
    client = sandbox.async_client()
    chats = InteractionsChats(client, settings_of(sandbox))
    chat = await start(chats)
    posted = await chats.post_visitor_message(chat, "Are you there?", relay_id="r-1")
    recent = await chats.recent_messages(chat, 10)
    assert [(m.sid, m.author, m.relay_id) for m in recent][:1] == [(posted.sid, IDENTITY, "r-1")]
    assert [p.identity for p in await chats.participants(chat)] == [IDENTITY]
    await client.http_client.close()
