"""Files over our channels: the visitor's upload into the agent chat, and the link to a file in it.

`POST /webhooks/<channel>/media/<conversation id>` takes one file (`multipart/form-data`, field
`file`) and the client's `relay_id` (field `relay_id`, so a retried upload never posts twice),
authorised like the channel's history (the conversation id is the key, plus a JWT with
`jwt_key`). Refusals are `{"error", "code"}` and send nothing (attachments.py lists them); a file
too large by its Content-Length is refused before its bytes are read. 201 answers
`{"message": <the visitor's turn as history shows it>}`.

`GET /webhooks/<channel>/media/file/<token>` answers 302 to a fresh temporary link from Twilio
for the file the token names (`attachments.media_token`); a token we did not make is a 404 and
nothing is fetched. The link is what `payloads.py` shows for a file, in every turn and in history.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple, Union

from rasa.core.agent import Agent
from sanic import Blueprint, response
from sanic.headers import parse_content_header
from sanic.request import File, Request, RequestParameters, parse_multipart_form
from sanic.response import HTTPResponse

from rasa_flex_handoff import attachments, store_outage
from rasa_flex_handoff.attachments import Refusal, Upload
from rasa_flex_handoff.flex import FlexError
from rasa_flex_handoff.history_access import usable_sender_id

if TYPE_CHECKING:
    from rasa_flex_handoff.relay import Deliver, Handoff

logger = logging.getLogger(__name__)

# Whether a request may act for this conversation (the channel's history rule: `history_access.may_read_history`).
Authorised = Callable[[Request, str], bool]

# What a multipart body holds besides the file: boundaries, part headers, the relay_id field.
MULTIPART_SLACK = 64 * 1024

NO_STORE = {"Cache-Control": "no-store"}


def refused(refusal: Refusal) -> HTTPResponse:
    return response.json(refusal.body(), status=refusal.status, headers=NO_STORE)


def declared_length(request: Request) -> Optional[int]:
    """The request's Content-Length, None when it has none (chunked) or a malformed one."""
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


async def read_body(request: Request, limit: int) -> Optional[bytes]:
    """The streamed request body, None as soon as it grows past `limit` bytes (the rest is never kept)."""
    stream = request.stream
    if stream is None:  # not a streamed route: Sanic has read it already
        return request.body if len(request.body) <= limit else None
    chunks: List[bytes] = []
    size = 0
    while True:
        chunk = await stream.read()
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def form_of(content_type: str, body: bytes) -> Optional[Tuple[RequestParameters, RequestParameters]]:
    """A multipart body's fields and files; None when it is not one (Sanic's parser, without its error log)."""
    kind, parameters = parse_content_header(content_type)
    boundary = parameters.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return None
    try:
        return parse_multipart_form(body, str(boundary).encode("utf-8"))  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - any malformed part: not a form we can read
        return None


def upload_of(
    fields: RequestParameters, files: RequestParameters, max_bytes: int, types: Tuple[str, ...]
) -> Union[Upload, Refusal]:
    """The one file and relay id of a parsed upload, checked (attachments.py), or why it is refused."""
    found = [f for name in files for f in files.getlist(name) or []]
    if len(found) > 1:
        return attachments.SEVERAL_FILES
    file: Optional[File] = files.get("file")
    if file is None:
        return attachments.NO_FILE
    relay_id = fields.get("relay_id")
    bad_relay_id = attachments.check_relay_id(relay_id.strip() if isinstance(relay_id, str) else None)
    if bad_relay_id is not None:
        return bad_relay_id
    content_type = attachments.normal_type(file.type)
    problem = attachments.check_file(file.body, content_type, max_bytes, types)
    if problem is not None:
        return problem
    return Upload(str(relay_id).strip(), file.body, attachments.clean_filename(file.name, content_type), content_type)


def add_media_routes(
    blueprint: Blueprint,
    handoff: Handoff,
    channel: str,
    output_channel: str,
    buttons_as: str,
    deliver: Deliver,
    authorised: Authorised,
) -> None:
    """Mount `POST <channel>/media/<sender_id>` (upload) and `GET <channel>/media/file/<token>` (a file's link)."""
    settings = handoff.settings

    @blueprint.route("/media/<sender_id>", methods=["POST"], stream=True, name=f"{blueprint.name}_media_upload")
    async def upload(request: Request, sender_id: str) -> HTTPResponse:
        if not authorised(request, sender_id):
            return refused(attachments.NOT_AUTHORISED)
        if usable_sender_id(sender_id) is None:
            return refused(attachments.UNKNOWN_CONVERSATION)
        limit = settings.attachment_max_bytes + MULTIPART_SLACK
        length = declared_length(request)
        if length is not None and length > limit:
            return refused(attachments.too_large(settings.attachment_max_bytes))
        agent: Agent = request.app.ctx.agent
        try:
            refusal = await handoff.file_refusal(agent, sender_id, channel)  # before reading the file
            if refusal is not None:
                return refused(refusal)
            body = await read_body(request, limit)
            if body is None:
                return refused(attachments.too_large(settings.attachment_max_bytes))
            form = form_of(request.headers.get("content-type", ""), body)
            if form is None:
                return refused(attachments.NO_FILE)
            checked = upload_of(*form, settings.attachment_max_bytes, settings.attachment_types)
            if isinstance(checked, Refusal):
                logger.info("visitor file refused: %s", checked.code)
                return refused(checked)
            relayed = await handoff.relay_visitor_file(agent, sender_id, channel, output_channel, buttons_as, checked)
        except store_outage.UNREACHABLE as e:
            logger.warning("visitor file answered 503, stores unreachable (%s)", store_outage.describe(e))
            return refused(attachments.STORE_UNAVAILABLE)
        if relayed.notices:
            await deliver(sender_id, relayed.notices)
        if relayed.refusal is not None:
            return refused(relayed.refusal)
        return response.json({"message": relayed.message}, status=201, headers=NO_STORE)

    @blueprint.route("/media/file/<token>", methods=["GET"], name=f"{blueprint.name}_media_file")
    async def media_file(request: Request, token: str) -> HTTPResponse:
        try:
            link = await handoff.file_link(token)
        except FlexError as e:
            if e.status == 404:
                return response.json({"error": "no such file"}, status=404, headers=NO_STORE)
            logger.info("link to a file not had: %s", e.reason)
            return response.json({"error": "the file cannot be had from Flex now"}, status=502, headers=NO_STORE)
        if link is None:
            return response.json({"error": "no such file"}, status=404, headers=NO_STORE)
        return response.redirect(link, status=302, headers=NO_STORE)
