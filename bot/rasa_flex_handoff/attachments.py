"""Files in a handed-off chat: what a visitor may upload, and the links to files in Flex, as pure functions.

Flex takes one file per message within its limits, so an upload is checked here before anything
reaches Twilio: not empty, at most `HANDOFF_ATTACHMENT_MAX_BYTES`, a type in
`HANDOFF_ATTACHMENT_TYPES`, and bytes that are what the type says (a file renamed to `.png`
is refused; a browser trusts the declared type when it shows the file to the agent). Names are
cleaned for the agent's desktop and our logs never see them.

A file's URL is never stored: Twilio's links expire. What is shown to the visitor is a link to
our own media-file route carrying an encrypted token for the file (`media_token`); that route
asks Twilio for a fresh temporary link each time it is opened.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from cryptography.fernet import Fernet, InvalidToken

# Flex's own limit for chat media, and the types its web chat shows.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_TYPES = ("image/jpeg", "image/png", "image/gif", "application/pdf", "text/plain")

# How a client names one upload, so a retried upload never posts twice.
RELAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Types a browser previews inline: the visitor is shown these as images, everything else as a file.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# The first bytes of the formats we recognise (WebP: "RIFF", 4 bytes of size, "WEBP").
_SIGNATURES: Tuple[Tuple[str, bytes, int], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/gif", b"GIF87a", 0),
    ("image/gif", b"GIF89a", 0),
    ("application/pdf", b"%PDF-", 0),
    ("image/webp", b"WEBP", 8),
)
SNIFFED_TYPES = frozenset(kind for kind, _, _ in _SIGNATURES)

_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

MAX_FILENAME = 120
# A name for a file that came without one (or with nothing left after cleaning), by its type.
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "text/plain": "txt",
}

# How long a link we show stays usable: the visitor's page gets fresh ones with each history load.
LINK_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Refusal:
    """Why an upload is refused: the HTTP status, a stable `code` for front ends, and a sentence for people."""

    status: int
    code: str
    error: str

    def body(self) -> Dict[str, str]:
        """The JSON error body every refusal is answered with."""
        return {"error": self.error, "code": self.code}


NOT_AUTHORISED = Refusal(401, "not_authorised", "a bearer token for this conversation is required")
UNKNOWN_CONVERSATION = Refusal(404, "unknown_conversation", "no conversation of this channel has that id")
NOT_HANDED_OFF = Refusal(409, "not_handed_off", "files can be sent only while chatting with an agent")
NO_FILE = Refusal(400, "no_file", "send one file in the multipart field 'file'")
SEVERAL_FILES = Refusal(400, "several_files", "send one file per upload")
BAD_RELAY_ID = Refusal(400, "bad_relay_id", "relay_id must be 1 to 64 letters, digits, '-' or '_'")
EMPTY = Refusal(400, "empty", "the file is empty")
TOO_FAST = Refusal(429, "too_fast", "too many messages in a short time; wait a moment")
FLEX_FAILED = Refusal(502, "flex_failed", "the file could not be passed on to the agent; send it again")
STORE_UNAVAILABLE = Refusal(503, "store_unavailable", "the conversation store is unavailable; send the file again")


def too_large(max_bytes: int) -> Refusal:
    return Refusal(413, "too_large", f"the file is larger than {max_bytes} bytes")


def type_not_allowed(types: Sequence[str]) -> Refusal:
    return Refusal(415, "type_not_allowed", f"the file must be one of {', '.join(types)}, and its content must match its type")


def parse_types(value: str) -> Tuple[str, ...]:
    """A comma-separated list of MIME types (HANDOFF_ATTACHMENT_TYPES), lower case, in order, each once."""
    found: Dict[str, None] = {}
    for item in value.split(","):
        kind = item.strip().lower()
        if kind:
            found[kind] = None
    return tuple(found)


def types_problem(value: str) -> Optional[str]:
    """What is wrong with a HANDOFF_ATTACHMENT_TYPES value (None: nothing)."""
    types = parse_types(value)
    if not types:
        return "expected a comma-separated list of MIME types"
    wrong = [kind for kind in types if not _MIME_TYPE.match(kind)]
    return f"not MIME types: {', '.join(wrong)}" if wrong else None


def normal_type(declared: Optional[str]) -> str:
    """A declared Content-Type as compared with the list: no parameters (`; charset=...`), lower case."""
    return (declared or "").split(";", 1)[0].strip().lower()


def sniff(data: bytes) -> Optional[str]:
    """The type the bytes say they are, for the formats with a signature we know (None: not one of them)."""
    for kind, signature, offset in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (kind != "image/webp" or data[:4] == b"RIFF"):
            return kind
    return None


def content_matches(content_type: str, data: bytes) -> bool:
    """Whether the bytes are what the declared type says: its signature, UTF-8 for plain text, no other known format."""
    found = sniff(data)
    if content_type in SNIFFED_TYPES:
        return found == content_type
    if found is not None:
        return False  # e.g. a PNG declared as something else
    if content_type == "text/plain":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return "\x00" not in text
    return True  # a type the operator allowed and we cannot check


def check_relay_id(relay_id: Optional[str]) -> Optional[Refusal]:
    """BAD_RELAY_ID unless the client's relay id is 1-64 of [A-Za-z0-9_-]."""
    return None if relay_id and RELAY_ID.match(relay_id) else BAD_RELAY_ID


def check_file(data: bytes, content_type: str, max_bytes: int, types: Sequence[str]) -> Optional[Refusal]:
    """Why this file (with its normalised declared type) may not go to the agent; None when it may."""
    if not data:
        return EMPTY
    if len(data) > max_bytes:
        return too_large(max_bytes)
    if content_type not in types or not content_matches(content_type, data):
        return type_not_allowed(types)
    return None


def clean_filename(name: Optional[str], content_type: str) -> str:
    """The file's name as the agent sees it: its last path part, printable, trimmed, at most MAX_FILENAME characters.

    Control and format characters (newlines, right-to-left overrides) and leading dots go;
    what is left keeps its extension when it has to be shortened. Nothing left: "attachment.<ext>".
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    printable = "".join(" " if unicodedata.category(c)[0] in ("C", "Z") else c for c in base)
    cleaned = " ".join(printable.split()).lstrip(". ")
    if len(cleaned) > MAX_FILENAME:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 10 and stem:
            cleaned = stem[: MAX_FILENAME - len(extension) - 1].rstrip() + "." + extension
        else:
            cleaned = cleaned[:MAX_FILENAME].rstrip()
    return cleaned or display_name(None, content_type)


def display_name(filename: Optional[str], content_type: Optional[str]) -> str:
    """What a file is called for the visitor: its name, else "attachment" with the extension of its type."""
    if filename and filename.strip():
        return filename.strip()
    extension = _EXTENSIONS.get(normal_type(content_type))
    return f"attachment.{extension}" if extension else "attachment"


def kind_of(content_type: Optional[str]) -> str:
    """ "image" for what a browser previews inline, else "file"."""
    return "image" if normal_type(content_type) in IMAGE_TYPES else "file"


def recorded(filename: str, content_type: str, size: Optional[int], media_sid: str, service_sid: Optional[str]) -> Dict[str, Any]:
    """A file as a turn's `metadata.handoff.attachment` records it: what it is and where Flex keeps it, never a URL."""
    found: Dict[str, Any] = {"filename": filename, "content_type": content_type, "size": size, "media_sid": media_sid}
    if service_sid:
        found["service_sid"] = service_sid
    return found


def upload_path(webhook_path: Optional[str]) -> Optional[str]:
    """Where a channel takes uploads ("/webhooks/<prefix>/media"), from where it takes Flex's webhooks; None: it takes none."""
    if not webhook_path or not webhook_path.startswith("/webhooks/"):
        return None
    return webhook_path.rsplit("/", 1)[0] + "/media"


def limits(max_bytes: int, types: Sequence[str], webhook_path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The `connecting` notice's `attachments`: what the widget may upload and where; None for a channel without uploads."""
    path = upload_path(webhook_path)
    if path is None:
        return None
    return {"max_bytes": max_bytes, "types": list(types), "upload_path": path}


@dataclass(frozen=True)
class Upload:
    """A visitor's file as checked (`check_file`): the client's relay id, the bytes, the cleaned name, the normalised type."""

    relay_id: str
    data: bytes
    filename: str
    content_type: str


# -- links to files in Flex ------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRef:
    """A file in Flex as one conversation may see it: the MCS service and media sids."""

    sender_id: str
    service_sid: str
    media_sid: str


def _fernet(secret: str) -> Fernet:
    """Its own key, derived from the handoff secret: a webhook token is never a media token and back."""
    key = hashlib.sha256(f"handoff-media:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def media_token(secret: str, ref: MediaRef) -> str:
    """An opaque, tamper-proof token for one file of one conversation (URL-safe)."""
    plain = json.dumps({"s": ref.sender_id, "v": ref.service_sid, "m": ref.media_sid}, separators=(",", ":"))
    return _fernet(secret).encrypt(plain.encode()).decode()


def media_of_token(secret: str, token: str, ttl: int = LINK_TTL_SECONDS, now: Optional[int] = None) -> Optional[MediaRef]:
    """The file a token names; None when it was not made with `secret`, is older than `ttl` seconds, or is malformed."""
    try:
        if now is None:
            plain = _fernet(secret).decrypt(token.encode(), ttl=ttl)
        else:
            plain = _fernet(secret).decrypt_at_time(token.encode(), ttl=ttl, current_time=now)
        found = json.loads(plain)
    except (InvalidToken, ValueError, UnicodeError):
        return None
    if not isinstance(found, dict):
        return None
    sender, service, media = found.get("s"), found.get("v"), found.get("m")
    if not all(isinstance(value, str) and value for value in (sender, service, media)):
        return None
    return MediaRef(str(sender), str(service), str(media))


def file_url(public_url: str, media_path: str, secret: str, sender_id: str, attachment: Mapping[str, Any]) -> Optional[str]:
    """The link the visitor is shown for a recorded file (`recorded()`); None when it does not say where Flex keeps it."""
    service, media = attachment.get("service_sid"), attachment.get("media_sid")
    if not isinstance(service, str) or not isinstance(media, str) or not service or not media:
        return None
    token = media_token(secret, MediaRef(sender_id, service, media))
    return f"{public_url.rstrip('/')}{media_path}/file/{token}"
