"""A visitor's file into the Flex chat and a link to a file out of it, in both generations.

Against a real Flex sandbox process through the real `twilio` SDK (and the account's own
credentials for the Media Content Service, which the SDK has no client for): the upload keeps
the file's name and type, the media message is posted at most once per relay id, however the
request fails, and the temporary link needs no credentials.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
import requests

from northwind.servers import Sandbox
from rasa_flex_handoff.flex import FlexChat, FlexChats, FlexError, flex_chats

IDENTITY = "visitor_" + "cd" * 16
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40


@pytest.fixture(autouse=True)
def _no_leftover_faults(clean_sandbox: Sandbox) -> None:
    """Faults one test injects end with it (the session's sandbox is tests/unit/conftest.py's)."""


def fault(sandbox: Sandbox, **spec: Any) -> None:
    r = sandbox.agent("POST", "/sandbox/faults", spec)
    assert r.ok, r.text


# The path of a visitor's media message in each generation.
MESSAGES = {
    "conversations": r"^/conversations/v1/Conversations/CH\w+/Messages$",
    "legacy": r"^/chat/v2/Services/IS\w+/Channels/CH\w+/Messages$",
}


async def started(sandbox: Sandbox, mode: str) -> FlexChats:
    settings = dataclasses.replace(sandbox.settings, flex_mode=mode, twilio_timeout=2.0, twilio_retries=1)
    return flex_chats(sandbox.async_client(), settings)


async def new_chat(chats: FlexChats) -> FlexChat:
    return await chats.start_chat(
        identity=IDENTITY,
        customer_name="Ann",
        pre_engagement_data={"friendlyName": "Ann"},
        webhook_url=None,
        unique_name=f"handoff-{uuid.uuid4().hex}",
        opening_message="I have the invoice",
    )


def media_messages(chats: FlexChats, chat: FlexChat, sandbox: Sandbox) -> Any:
    """The chat's messages with media, through the plain (sync) SDK."""
    if chat.mode == "legacy":
        listed = sandbox.client.chat.v2.services(chat.service_sid).channels(chat.channel_sid).messages.list()
    else:
        listed = sandbox.client.conversations.v1.conversations(chat.channel_sid).messages.list()
    return [m for m in listed if m.media]


@pytest.mark.parametrize("mode", ["conversations", "legacy"])
async def test_a_visitors_file_is_uploaded_then_posted_as_a_media_message_of_its_own(sandbox: Sandbox, mode: str) -> None:
    chats = await started(sandbox, mode)
    chat = await new_chat(chats)
    media = await chats.upload_media(chat.service_sid, PDF, "invoice 17.pdf", "application/pdf")
    assert media.sid.startswith("ME") and (media.filename, media.content_type, media.size) == (
        "invoice 17.pdf",
        "application/pdf",
        len(PDF),
    )
    posted = await chats.post_visitor_media(chat, media, "relay-1")
    assert posted.author == chat.identity and posted.body == "" and posted.relay_id == "relay-1"
    assert posted.media == (media,)
    [found] = media_messages(chats, chat, sandbox)
    assert found.sid == posted.sid
    # Listing the chat (catch-up, polling) reads the file the same way.
    [listed] = [m for m in await chats.recent_messages(chat, 10) if m.media]
    assert listed.media == (media,)
    # The temporary link needs no credentials and gives the same bytes.
    link = await chats.media_link(chat.service_sid or "", media.sid)
    download = requests.get(link, timeout=10)
    assert download.status_code == 200 and download.content == PDF
    await chats.client.http_client.close()


@pytest.mark.parametrize("mode", ["conversations", "legacy"])
async def test_a_media_message_that_went_through_but_failed_is_not_posted_twice(sandbox: Sandbox, mode: str) -> None:
    chats = await started(sandbox, mode)
    chat = await new_chat(chats)
    media = await chats.upload_media(chat.service_sid, PDF, "a.pdf", "application/pdf")
    fault(sandbox, path_regex=MESSAGES[mode], method="POST", status=500, when="after")
    posted = await chats.post_visitor_media(chat, media, "relay-2")
    assert [m.sid for m in media_messages(chats, chat, sandbox)] == [posted.sid]
    # The visitor's upload is retried with the same relay id (its answer was lost): found, not posted again.
    again = await chats.post_visitor_media(chat, media, "relay-2")
    assert again.sid == posted.sid and len(media_messages(chats, chat, sandbox)) == 1
    await chats.client.http_client.close()


async def test_an_upload_that_failed_is_retried(sandbox: Sandbox) -> None:
    """Even when it may have gone through (a 500): an upload made twice leaves only an unused media."""
    chats = await started(sandbox, "conversations")
    chat = await new_chat(chats)
    fault(sandbox, path_regex=r"^/mcs\.us1/v1/Services/IS\w+/Media$", method="POST", status=500, when="after")
    media = await chats.upload_media(chat.service_sid, PDF, "a.pdf", "application/pdf")
    assert media.sid.startswith("ME")
    await chats.client.http_client.close()


async def test_what_twilio_does_not_have_is_a_flex_error_with_its_status(sandbox: Sandbox) -> None:
    chats = await started(sandbox, "conversations")
    chat = await new_chat(chats)
    with pytest.raises(FlexError) as gone:
        await chats.media_link(chat.service_sid or "", "ME" + "0" * 32)
    assert gone.value.status == 404
    with pytest.raises(FlexError) as unknown_service:
        await chats.upload_media("IS" + "0" * 32, PDF, "a.pdf", "application/pdf")
    assert unknown_service.value.status == 404
    with pytest.raises(FlexError):
        await chats.upload_media(None, PDF, "a.pdf", "application/pdf")
    await chats.client.http_client.close()
