"""The Media Content Service routes (`https://mcs.us1.twilio.com/v1/...` at `/mcs.us1/v1/...`) and the pre-signed
direct URLs its Media resources hand out (`https://media.us1.twilio.com/ME…` at `/media.us1/ME…`, no credentials).

Uploads are the one place the sandbox takes bodies larger than its 1 MiB request limit, so the upload route streams
its body and counts it against the media limit itself (`read_limited`, also used by the agent API's file upload).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine, List, Optional

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from flex_sandbox import chat, media
from flex_sandbox.account import Account
from flex_sandbox.media import MediaSettings
from flex_sandbox.store import Doc
from flex_sandbox.wire import Form, reply

log = logging.getLogger(__name__)

Handler = Callable[..., Coroutine[Any, Any, Optional[HTTPResponse]]]
DRAIN_LIMIT = 256 * 1024 * 1024  # past this a refused upload is not read to the end: the connection just closes
ACCESS_DENIED = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>'


async def _drain(request: Request) -> None:
    """Read and drop the rest of a refused body, so the client gets to read the answer instead of a reset."""
    dropped = 0
    while request.stream is not None and dropped < DRAIN_LIMIT:
        chunk = await request.stream.read()
        if chunk is None:
            return
        dropped += len(chunk)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body of a streaming route, refused with Twilio's 413 / 50512 once it is larger than `limit` bytes
    (at once when Content-Length says so)."""
    declared = (request.headers.get("content-length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        await _drain(request)
        raise media.too_large(limit)
    chunks: List[bytes] = []
    size = 0
    while request.stream is not None:
        chunk = await request.stream.read()
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            await _drain(request)
            raise media.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def base_url(request: Request, settings: MediaSettings) -> str:
    """Where the sandbox is reached: `FLEX_SANDBOX_PUBLIC_URL`, else the scheme and host of this request."""
    return settings.public_url or f"{request.scheme}://{request.host}"


def register(app: Sanic, account: Account, settings: MediaSettings) -> None:
    """Add the MCS routes and the direct-URL route."""

    def route(uri: str, method: str, stream: bool = False) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            app.add_route(handler, uri, methods=[method], name="mcs_" + handler.__name__, stream=stream)
            return handler

        return decorate

    base = "/mcs.us1/v1/Services/<service_sid>/Media"

    def rendered(request: Request, found: Doc) -> Doc:
        return media.render(found, media.direct_url(account, base_url(request, settings), found["sid"], settings.url_ttl))

    @route(base, "POST", stream=True)
    async def media_upload(request: Request, service_sid: str) -> HTTPResponse:
        chat.service(account, service_sid)
        query = Form({k: list(v) for k, v in request.get_args(keep_blank_values=True).items()})
        # Multipart framing adds a little to the file itself; the file is checked against the limit once parsed.
        body = await read_limited(request, settings.max_bytes + 64 * 1024)
        upload = media.parse_upload(body, request.headers.get("content-type"), query.get("Filename"))
        stored = media.upload(
            account,
            service_sid,
            upload.content,
            upload.content_type,
            upload.filename,
            query.get("Category"),
            max_bytes=settings.max_bytes,
        )
        log.info("media %s uploaded to service %s (%d bytes)", stored["sid"], service_sid, stored["size"])
        return reply(rendered(request, stored), status=201)

    @route(base + "/<sid>", "GET")
    async def media_fetch(request: Request, service_sid: str, sid: str) -> HTTPResponse:
        chat.service(account, service_sid)
        return reply(rendered(request, media.fetch(account, service_sid, sid)))

    @route(base + "/<sid>/Content", "GET")
    async def media_content(request: Request, service_sid: str, sid: str) -> HTTPResponse:
        chat.service(account, service_sid)
        found = media.fetch(account, service_sid, sid)
        return response.raw(
            media.content(account, found), content_type=found["content_type"], headers=media.content_headers(found)
        )

    @route(f"/{media.DIRECT_HOST}/<sid>", "GET")
    async def media_direct(request: Request, sid: str) -> HTTPResponse:
        """The pre-signed URL: no credentials, only a valid, unexpired signature (else 403, as the CDN answers)."""
        found = account.store.get("media", sid)
        if found is None or not media.signed(account, sid, request.args.get("Expires"), request.args.get("Signature")):
            return response.text(ACCESS_DENIED, status=403, content_type="application/xml")
        return response.raw(
            media.content(account, found), content_type=found["content_type"], headers=media.content_headers(found)
        )
