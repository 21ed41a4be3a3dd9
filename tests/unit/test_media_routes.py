"""The file routes our channels mount: who may upload, what an upload must hold, and that a forged link fetches nothing.

The routes are the channels' own (their blueprints, their `jwt_key`), called in-process with a
stand-in request: authorisation and the multipart checks come before any tracker or Twilio call.
The whole path, with real servers, is in tests/handoff/test_attachments.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Awaitable, Callable, Dict, Optional

import jwt
import pytest
from sanic import Blueprint

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff import attachments
from rasa_flex_handoff.attachments import MediaRef, media_token
from rasa_flex_handoff.media_routes import form_of, upload_of
from rasa_flex_handoff.relay import Handoff
from rasa_flex_handoff.rest import RestInput
from rasa_flex_handoff.settings import settings_from_env
from rasa_flex_handoff.socketio import SocketIOInput

KEY = "channel-jwt-key"
SETTINGS = settings_from_env(
    {**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com", "TWILIO_API_BASE": "http://127.0.0.1:9"}
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
BOUNDARY = "----boundary42"


def multipart(*parts: Dict[str, Any]) -> bytes:
    """A multipart/form-data body: each part {name, value} or {name, filename, type, data}."""
    out = b""
    for part in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        if "filename" in part:
            out += f'Content-Disposition: form-data; name="{part["name"]}"; filename="{part["filename"]}"\r\n'.encode()
            out += f"Content-Type: {part['type']}\r\n\r\n".encode() + part["data"] + b"\r\n"
        else:
            out += f'Content-Disposition: form-data; name="{part["name"]}"\r\n\r\n{part["value"]}\r\n'.encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def parsed(*parts: Dict[str, Any]) -> Any:
    form = form_of(f"multipart/form-data; boundary={BOUNDARY}", multipart(*parts))
    assert form is not None
    return upload_of(*form, 1000, attachments.DEFAULT_TYPES)


FILE = {"name": "file", "filename": "../photo.png", "type": "image/png", "data": PNG}
RELAY = {"name": "relay_id", "value": "r-1"}


def test_an_upload_is_one_file_and_a_relay_id_checked() -> None:
    upload = parsed(FILE, RELAY)
    assert upload == attachments.Upload("r-1", PNG, "photo.png", "image/png")
    assert parsed(RELAY) == attachments.NO_FILE
    assert parsed(FILE, {**FILE, "filename": "b.png"}, RELAY) == attachments.SEVERAL_FILES
    assert parsed(FILE, {**FILE, "name": "other"}, RELAY) == attachments.SEVERAL_FILES
    assert parsed(FILE) == attachments.BAD_RELAY_ID
    assert parsed(FILE, {"name": "relay_id", "value": "no spaces"}) == attachments.BAD_RELAY_ID
    assert parsed({**FILE, "data": b""}, RELAY) == attachments.EMPTY
    assert parsed({**FILE, "data": PNG * 100}, RELAY).code == "too_large"
    assert parsed({**FILE, "type": "image/jpeg"}, RELAY).code == "type_not_allowed"


def test_what_is_not_a_multipart_form_is_no_file() -> None:
    assert form_of("application/json", b"{}") is None
    assert form_of("multipart/form-data", multipart(FILE)) is None  # no boundary
    broken = f"--{BOUNDARY}\r\nno header here\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()
    assert form_of(f"multipart/form-data; boundary={BOUNDARY}", broken) is None  # and no error in the log
    empty = form_of(f"multipart/form-data; boundary={BOUNDARY}", b"")
    assert empty is not None and upload_of(*empty, 1000, attachments.DEFAULT_TYPES) == attachments.NO_FILE


class NoTrackers:
    """A tracker store that has no conversation (and must not be asked for more)."""

    async def retrieve(self, sender_id: str) -> None:
        return None


def route(channel: Any, suffix: str) -> Callable[..., Awaitable[Any]]:
    """A route handler the channel's blueprint mounts, by the end of its name."""
    blueprint: Blueprint = channel.blueprint(lambda message: None)
    return next(r.handler for r in blueprint._future_routes if r.name.endswith(suffix))  # type: ignore[no-any-return]


def request(token: Optional[str] = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    agent = SimpleNamespace(tracker_store=NoTrackers())
    return SimpleNamespace(headers=headers, app=SimpleNamespace(ctx=SimpleNamespace(agent=agent)), stream=None)


def token_for(conversation: str) -> str:
    return jwt.encode({"user": {"username": conversation}}, KEY, algorithm="HS256")


@pytest.mark.parametrize(
    "make",
    [
        lambda: SocketIOInput(jwt_key=KEY, handoff=Handoff(SETTINGS)),
        lambda: RestInput(handoff=Handoff(SETTINGS), jwt_key=KEY),
    ],
    ids=["socketio", "rest"],
)
async def test_with_a_jwt_key_an_upload_needs_a_token_for_its_conversation(make: Callable[[], Any]) -> None:
    upload = route(make(), "_media_upload")
    for token in (None, token_for("someone-else"), jwt.encode({"user": {"username": "visitor-1"}}, "forged", algorithm="HS256")):
        answer = await upload(request(token), "visitor-1")
        assert answer.status == 401 and b'"code":"not_authorised"' in answer.body
    # The right token gets past the check: the conversation is then looked up (none here).
    answer = await upload(request(token_for("visitor-1")), "visitor-1")
    assert answer.status == 404 and b'"code":"unknown_conversation"' in answer.body


async def test_without_a_jwt_key_the_conversation_id_is_the_key() -> None:
    answer = await route(RestInput(handoff=Handoff(SETTINGS)), "_media_upload")(request(), "visitor-1")
    assert answer.status == 404 and answer.headers["Cache-Control"] == "no-store"


async def test_a_forged_or_foreign_media_link_is_a_404_and_nothing_is_fetched() -> None:
    file = route(SocketIOInput(handoff=Handoff(SETTINGS)), "_media_file")  # TWILIO_API_BASE is a closed port: no fetch
    for token in ("garbage", media_token("another-secret", MediaRef("visitor-1", "IS1", "ME1"))):
        answer = await file(request(), token)
        assert answer.status == 404 and answer.headers["Cache-Control"] == "no-store"
