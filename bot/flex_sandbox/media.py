"""Media for media messages: a small Media Content Service (MCS) and what a message's `MediaSid` turns into.

Twilio uploads media to MCS (`POST https://mcs.us1.twilio.com/v1/Services/{ChatServiceSid}/Media`, the raw file as
the body, its MIME type as Content-Type) and a message then names it with `MediaSid`. The sandbox serves that
upload, the Media resource and its content at `/mcs.us1/v1/...`. A message may also name a media SID the sandbox
never saw (uploaded to a real account, or made up by a test): any `ME` + 32 hex is accepted and described as
`application/octet-stream` of size 0 with no filename.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Dict, Optional

from flex_sandbox.account import Account
from flex_sandbox.store import Doc, public
from flex_sandbox.wire import TwilioError, invalid, new_sid, now_iso, twilio_url

MEDIA_SID = re.compile(r"^ME[0-9a-fA-F]{32}$")
MCS_HOST = "mcs.us1"
UNKNOWN_TYPE = "application/octet-stream"


def checked_sid(media_sid: Optional[str]) -> Optional[str]:
    """A message's MediaSid, validated like Twilio (50510 for anything that is not `ME` + 32 hex)."""
    if media_sid is None or media_sid == "":
        return None
    if not MEDIA_SID.match(media_sid):
        raise invalid(f"Invalid message media SID {media_sid!r}", code=50510)
    return media_sid


def media_url(service_sid: str, sid: str) -> str:
    return twilio_url(MCS_HOST, f"/v1/Services/{service_sid}/Media/{sid}")


def render(media: Doc) -> Doc:
    """A Media resource as MCS returns it (without the stored bytes)."""
    url = media_url(media["service_sid"], media["sid"])
    # Twilio's content_direct_temporary is a pre-signed URL on another host; the sandbox points both links at
    # the authenticated Content URL it serves.
    return {**public(media), "url": url, "links": {"content": f"{url}/Content", "content_direct_temporary": f"{url}/Content"}}


def upload(account: Account, service_sid: str, content: bytes, content_type: Optional[str]) -> Doc:
    """Store an uploaded file as a Media resource of the service."""
    if not content:
        raise invalid("Media content is empty")
    now = now_iso()
    media = {
        "sid": new_sid("ME"),
        "account_sid": account.sid,
        "service_sid": service_sid,
        "date_created": now,
        "date_updated": now,
        "channel_sid": None,
        "message_sid": None,
        "size": len(content),
        "content_type": (content_type or UNKNOWN_TYPE).split(";")[0].strip() or UNKNOWN_TYPE,
        "filename": None,
        "author": None,
        "category": "media",
        "_content": base64.b64encode(content).decode("ascii"),
    }
    return account.store.insert("media", media, parent=service_sid)


def fetch(account: Account, service_sid: str, sid: str) -> Doc:
    """A Media resource of the service, or a Twilio 404."""
    found = account.store.get("media", sid, parent=service_sid)
    if found is None:
        raise TwilioError(404, 20404, f"The requested resource /Services/{service_sid}/Media/{sid} was not found")
    return found


def content(media: Doc) -> bytes:
    """The bytes of an uploaded file."""
    return base64.b64decode(media.get("_content") or "")


def attach(account: Account, media_sid: str, channel_sid: str, message_sid: str) -> Dict[str, Any]:
    """Describe `media_sid` for a new message (sid, size, content_type, filename) and record the message on it."""
    stored = account.store.get("media", media_sid)
    if stored is None:
        return {"sid": media_sid, "size": 0, "content_type": UNKNOWN_TYPE, "filename": None}
    stored.update(channel_sid=channel_sid, message_sid=message_sid, date_updated=now_iso())
    account.store.replace("media", stored)
    return {"sid": media_sid, "size": stored["size"], "content_type": stored["content_type"], "filename": stored["filename"]}
