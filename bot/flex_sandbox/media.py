"""Media for media messages: a small Media Content Service (MCS) and what a message's `MediaSid` turns into.

Twilio uploads media to MCS (`POST https://mcs.us1.twilio.com/v1/Services/{ChatServiceSid}/Media`) and a message
then names it with `MediaSid`. MCS is not in Twilio's OpenAPI descriptions nor in the helper libraries; what the
sandbox does follows Twilio's "Media Resource" docs and the official MCS client (`@twilio/mcs-client` 1.0.1,
`dist/services/network.js`, `dist/media.js`):

- an upload is the raw file as the body with its MIME type as `Content-Type`, plus the query parameters `Filename`
  and `Category` (`media`) the client adds; browsers may post `multipart/form-data` instead (one file part; its
  filename and part Content-Type count), as Flex's web chat and other integrations do;
- the Media resource has relative `url` / `links.content` and an absolute `links.content_direct_temporary`, a
  pre-signed URL on another host (`https://media.us1.twilio.com/ME…?Expires=…&Signature=…`) that needs no
  credentials and stops working after a few minutes;
- a file over the size limit is Twilio's error 50512 ("Message media size is too large").

A message may also name a media SID the sandbox never saw (uploaded to a real account, or made up by a test):
any `ME` + 32 hex is accepted and described as `application/octet-stream` of size 0 with no filename.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Dict, List, Optional
from urllib.parse import quote, urlencode

from flex_sandbox.account import Account
from flex_sandbox.store import Doc, public
from flex_sandbox.wire import TwilioError, invalid, new_sid, now_iso

MEDIA_SID = re.compile(r"^ME[0-9a-fA-F]{32}$")
MCS_HOST = "mcs.us1"
DIRECT_HOST = "media.us1"  # where content_direct_temporary points (https://media.us1.twilio.com on Twilio)
UNKNOWN_TYPE = "application/octet-stream"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_URL_TTL = 300
CATEGORIES = ("media", "body", "history")  # the MCS client's MediaCategory
# Shown in place by a browser; anything else is a download, so an uploaded HTML or SVG file never runs as a page
# of the sandbox's own origin (where the agent desktop lives).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TOO_LARGE_CODE = 50512


@dataclass(frozen=True)
class MediaSettings:
    """How the sandbox's MCS behaves: the size limit, how long direct URLs live, and the address they use."""

    max_bytes: int = DEFAULT_MAX_BYTES
    url_ttl: int = DEFAULT_URL_TTL
    public_url: Optional[str] = None  # None: the scheme and host each request came in on

    @classmethod
    def from_env(cls) -> MediaSettings:
        """`FLEX_SANDBOX_MEDIA_MAX_BYTES`, `FLEX_SANDBOX_MEDIA_URL_TTL`, `FLEX_SANDBOX_PUBLIC_URL`; bad values stop the start."""
        return cls(
            max_bytes=_positive_int("FLEX_SANDBOX_MEDIA_MAX_BYTES", DEFAULT_MAX_BYTES),
            url_ttl=_positive_int("FLEX_SANDBOX_MEDIA_URL_TTL", DEFAULT_URL_TTL),
            public_url=(os.environ.get("FLEX_SANDBOX_PUBLIC_URL") or "").rstrip("/") or None,
        )


def _positive_int(name: str, default: int) -> int:
    value = (os.environ.get(name) or "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, not {number}")
    return number


def too_large(limit: int) -> TwilioError:
    """Twilio's answer for a file over the limit (error 50512; the status is the HTTP one for a too-large body)."""
    return TwilioError(413, TOO_LARGE_CODE, f"Message media size is too large: the limit is {limit} bytes")


def checked_sid(media_sid: Optional[str]) -> Optional[str]:
    """A message's MediaSid, validated like Twilio (50510 for anything that is not `ME` + 32 hex)."""
    if media_sid is None or media_sid == "":
        return None
    if not MEDIA_SID.match(media_sid):
        raise invalid(f"Invalid message media SID {media_sid!r}", code=50510)
    return media_sid


# -- uploads ------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    """One uploaded file as the request carried it."""

    content: bytes
    content_type: str
    filename: Optional[str]


def media_type(value: Optional[str]) -> str:
    """A Content-Type without parameters, lower-cased (missing: application/octet-stream)."""
    found = (value or "").split(";")[0].strip().lower()
    return found or UNKNOWN_TYPE


def parse_upload(body: bytes, content_type: Optional[str], filename: Optional[str]) -> Upload:
    """The file of an upload: the raw body, or the one file part of a `multipart/form-data` body.

    `filename` is the `Filename` query parameter the MCS client sends with a raw body; a file part's own
    filename wins over it.
    """
    if media_type(content_type) != "multipart/form-data":
        return Upload(body, media_type(content_type), filename or None)
    files = [part for part in _parts(body, content_type or "") if part.get_filename() is not None]
    if not files:
        raise invalid("The multipart body has no file part")
    if len(files) > 1:
        raise invalid("Upload one file at a time")
    part = files[0]
    payload = part.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    return Upload(content, media_type(part.get("content-type")), _form_filename(part.get_filename()) or filename or None)


def _parts(body: bytes, content_type: str) -> List[EmailMessage]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise invalid("Malformed multipart/form-data body")
    return [p for p in message.iter_parts() if isinstance(p, EmailMessage)]


def form_field(body: bytes, content_type: str, name: str) -> Optional[str]:
    """The text of a plain (non-file) field of a `multipart/form-data` body, if it has one."""
    for part in _parts(body, content_type):
        if part.get_filename() is None and part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return None


def _form_filename(name: Optional[str]) -> Optional[str]:
    """A form part's filename as the user named the file: browsers escape `"`, CR and LF as %22, %0D, %0A."""
    if name is None:
        return None
    for escaped, plain in (("%22", '"'), ("%0D", "\r"), ("%0A", "\n")):
        name = name.replace(escaped, plain).replace(escaped.lower(), plain)
    return re.split(r"[\\/]", name)[-1]  # only the name, never a client's path ("C:\fakepath\x.png")


def upload(
    account: Account,
    service_sid: str,
    content: bytes,
    content_type: Optional[str],
    filename: Optional[str] = None,
    category: Optional[str] = None,
    author: str = "system",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Doc:
    """Store an uploaded file as a Media resource of the service (its bytes in the store's blob table)."""
    if not content:
        raise invalid("Media content is empty")
    if len(content) > max_bytes:
        raise too_large(max_bytes)
    category = category or "media"
    if category not in CATEGORIES:
        raise invalid(f"Category must be one of {', '.join(CATEGORIES)}")
    now = now_iso()
    media: Doc = {
        "sid": new_sid("ME"),
        "account_sid": account.sid,
        "service_sid": service_sid,
        "date_created": now,
        "date_upload_updated": now,
        "date_updated": now,
        "channel_sid": None,
        "message_sid": None,
        "size": len(content),
        "content_type": media_type(content_type),
        "filename": filename or None,
        "author": author,
        "category": category,
        "is_multipart_upstream": False,
    }
    with account.store.transaction():
        account.store.insert("media", media, parent=service_sid)
        account.store.put_blob(media["sid"], content)
    return media


def fetch(account: Account, service_sid: str, sid: str) -> Doc:
    """A Media resource of the service, or a Twilio 404."""
    found = account.store.get("media", sid, parent=service_sid)
    if found is None:
        raise TwilioError(404, 20404, f"The requested resource /Services/{service_sid}/Media/{sid} was not found")
    return found


def content(account: Account, media: Doc) -> bytes:
    """The bytes of an uploaded file (state files from before the blob table kept them base64 in the document)."""
    stored = account.store.blob(media["sid"])
    if stored is not None:
        return stored
    return base64.b64decode(media.get("_content") or "")


# -- how it is shown ----------------------------------------------------------------------
def media_path(service_sid: str, sid: str) -> str:
    return f"/v1/Services/{service_sid}/Media/{sid}"


def render(media: Doc, direct_url: str) -> Doc:
    """A Media resource as MCS returns it: `url` and `links.content` relative (as MCS prints them), the pre-signed
    `content_direct_temporary` absolute."""
    path = media_path(media["service_sid"], media["sid"])
    return {
        **public(media),
        "date_upload_updated": media.get("date_upload_updated") or media["date_created"],
        "is_multipart_upstream": bool(media.get("is_multipart_upstream")),
        "url": path,
        "links": {"content": f"{path}/Content", "content_direct_temporary": direct_url},
    }


def _url_key(account: Account) -> bytes:
    """The key direct URLs are signed with: derived from the auth token, so it survives restarts and differs per account."""
    return hashlib.sha256(b"flex-sandbox media urls\0" + account.credentials.auth_token.encode()).digest()


def _signature(account: Account, sid: str, expires: int) -> str:
    digest = hmac.new(_url_key(account), f"{account.sid}\n{sid}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def direct_url(account: Account, base_url: str, sid: str, ttl: int, now: Optional[float] = None) -> str:
    """A pre-signed URL for the media's bytes, valid `ttl` seconds: `<base>/media.us1/ME…?Expires=…&Signature=…`."""
    expires = int(now if now is not None else time.time()) + ttl
    query = urlencode({"Expires": expires, "Signature": _signature(account, sid, expires)})
    return f"{base_url.rstrip('/')}/{DIRECT_HOST}/{sid}?{query}"


def signed(account: Account, sid: str, expires: Optional[str], signature: Optional[str], now: Optional[float] = None) -> bool:
    """Whether a direct URL's query is one this sandbox signed for `sid` and has not expired."""
    if not expires or not signature or not expires.isdigit():
        return False
    if int(expires) < int(now if now is not None else time.time()):
        return False
    return hmac.compare_digest(_signature(account, sid, int(expires)), signature)


def disposition(content_type: str, filename: Optional[str]) -> str:
    """Content-Disposition for the bytes: safe images inline, the rest a download, with the file's name."""
    kind = "inline" if content_type in INLINE_TYPES else "attachment"
    if not filename:
        return kind
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def content_headers(media: Doc) -> Dict[str, str]:
    """Headers for serving the bytes: disposition, no sniffing, and a sandbox CSP so nothing served can script."""
    return {
        "Content-Disposition": disposition(media["content_type"], media.get("filename")),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        "Cache-Control": "private, max-age=60",
    }


# -- messages -----------------------------------------------------------------------------
def attach(account: Account, media_sid: str, channel_sid: str, message_sid: str) -> Dict[str, Any]:
    """Describe `media_sid` for a new message (sid, size, content_type, filename) and record the message on it."""
    stored = account.store.get("media", media_sid)
    if stored is None:
        return {"sid": media_sid, "size": 0, "content_type": UNKNOWN_TYPE, "filename": None}
    stored.update(channel_sid=channel_sid, message_sid=message_sid, date_updated=now_iso())
    account.store.replace("media", stored)
    return {"sid": media_sid, "size": stored["size"], "content_type": stored["content_type"], "filename": stored["filename"]}


def with_urls(account: Account, items: List[Dict[str, Any]], base_url: str, ttl: int) -> List[Dict[str, Any]]:
    """A message's media for the agent desktop: each stored file with a fresh direct URL (others: `url` None)."""
    return [
        {**item, "url": direct_url(account, base_url, item["sid"], ttl) if account.store.get("media", item["sid"]) else None}
        for item in items
    ]
