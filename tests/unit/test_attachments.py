"""What a visitor may upload, how a file is named, and the tokens behind the links to files (attachments.py)."""

from __future__ import annotations

import time

import pytest

from rasa_flex_handoff import attachments, handoff
from rasa_flex_handoff.attachments import (
    BAD_RELAY_ID,
    DEFAULT_TYPES,
    EMPTY,
    MediaRef,
    check_file,
    check_relay_id,
    clean_filename,
    content_matches,
    display_name,
    file_url,
    kind_of,
    limits,
    media_of_token,
    media_token,
    normal_type,
    parse_types,
    sniff,
    types_problem,
    upload_path,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8
TEXT = "Order 17: größe M, ✓\n".encode()
SECRET = "handoff-secret"
REF = MediaRef("visitor-1", "IS" + "1" * 32, "ME" + "2" * 32)


def test_the_formats_are_told_by_their_first_bytes() -> None:
    assert [sniff(data) for data in (PNG, JPEG, GIF, PDF, WEBP, TEXT, b"")] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/pdf",
        "image/webp",
        None,
        None,
    ]
    assert sniff(b"RIFF\x10\x00\x00\x00WAVEfmt ") is None  # RIFF, but not WebP


@pytest.mark.parametrize(
    ("declared", "data", "matches"),
    [
        ("image/png", PNG, True),
        ("image/png", JPEG, False),  # a JPEG renamed to .png
        ("image/jpeg", TEXT, False),
        ("application/pdf", PDF, True),
        ("application/pdf", PNG, False),
        ("text/plain", TEXT, True),
        ("text/plain", b"caf\xe9 au lait", False),  # not UTF-8 (Latin-1)
        ("text/plain", b"a\x00b", False),  # binary
        ("text/plain", PNG, False),  # a known format declared as text
        ("text/csv", TEXT, True),  # a type the operator allowed and nothing says otherwise
        ("text/csv", PDF, False),
    ],
)
def test_the_bytes_must_be_what_the_declared_type_says(declared: str, data: bytes, matches: bool) -> None:
    assert content_matches(declared, data) is matches


def test_a_file_is_refused_when_empty_too_large_of_another_type_or_not_what_it_says() -> None:
    assert check_file(PNG, "image/png", 1000, DEFAULT_TYPES) is None
    assert check_file(TEXT, "text/plain", len(TEXT), DEFAULT_TYPES) is None  # exactly the limit is fine
    assert check_file(b"", "image/png", 1000, DEFAULT_TYPES) == EMPTY
    too_large = check_file(PNG, "image/png", len(PNG) - 1, DEFAULT_TYPES)
    assert too_large is not None and (too_large.status, too_large.code) == (413, "too_large")
    not_allowed = check_file(WEBP, "image/webp", 1000, DEFAULT_TYPES)  # WebP is not in the default list
    assert not_allowed is not None and (not_allowed.status, not_allowed.code) == (415, "type_not_allowed")
    mismatch = check_file(JPEG, "image/png", 1000, DEFAULT_TYPES)
    assert mismatch is not None and (mismatch.status, mismatch.code) == (415, "type_not_allowed")
    assert mismatch.body() == {"error": mismatch.error, "code": "type_not_allowed"} and "image/png" in mismatch.error


def test_a_declared_type_is_compared_without_parameters_or_case() -> None:
    assert normal_type("Text/Plain; charset=UTF-8") == "text/plain"
    assert normal_type(None) == ""


@pytest.mark.parametrize("relay_id", ["a", "r-1_B", "x" * 64])
def test_a_relay_id_is_one_to_64_url_safe_characters(relay_id: str) -> None:
    assert check_relay_id(relay_id) is None


@pytest.mark.parametrize("relay_id", [None, "", "x" * 65, "a b", "a/b", "ü"])
def test_any_other_relay_id_is_refused(relay_id: str) -> None:
    assert check_relay_id(relay_id) == BAD_RELAY_ID


@pytest.mark.parametrize(
    ("name", "content_type", "cleaned"),
    [
        ("invoice.pdf", "application/pdf", "invoice.pdf"),
        ("C:\\Users\\ann\\Desktop\\photo 1.png", "image/png", "photo 1.png"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("  report\n\tfinal .txt ", "text/plain", "report final .txt"),
        ("evil\u202egnp.exe", "image/png", "evil gnp.exe"),  # a right-to-left override would disguise the name
        ("...hidden", "text/plain", "hidden"),
        ("", "image/jpeg", "attachment.jpg"),
        (None, "application/zip", "attachment"),
        ("\x00\x01", "image/gif", "attachment.gif"),
        ("a" * 200 + ".pdf", "application/pdf", "a" * 116 + ".pdf"),
        ("b" * 200, "text/plain", "b" * 120),
    ],
)
def test_a_files_name_is_cleaned_for_the_agent(name: str, content_type: str, cleaned: str) -> None:
    assert clean_filename(name, content_type) == cleaned


def test_what_a_file_is_called_and_whether_it_is_previewed() -> None:
    assert display_name("x.pdf", "application/pdf") == "x.pdf"
    assert display_name(None, "image/png; x=y") == "attachment.png"
    assert [kind_of(t) for t in ("image/png", "IMAGE/JPEG", "image/svg+xml", "application/pdf", None)] == [
        "image",
        "image",
        "file",  # an SVG may run script: never shown inline
        "file",
        "file",
    ]


def test_the_allowed_types_setting_is_a_list_of_mime_types() -> None:
    assert parse_types("Image/PNG, text/plain,,image/png ") == ("image/png", "text/plain")
    assert types_problem("image/png,text/plain") is None
    assert types_problem(" , ") == "expected a comma-separated list of MIME types"
    assert types_problem("png, image/*x, text/plain") == "not MIME types: png, image/*x"


def test_the_widget_learns_the_limits_only_from_a_channel_that_takes_uploads() -> None:
    assert upload_path("/webhooks/handoff_socketio/flex") == "/webhooks/handoff_socketio/media"
    assert upload_path(None) is None and upload_path("/elsewhere/flex") is None
    assert limits(10, ("image/png",), "/webhooks/support_chat/flex") == {
        "max_bytes": 10,
        "types": ["image/png"],
        "upload_path": "/webhooks/support_chat/media",
    }
    assert limits(10, ("image/png",), None) is None


def test_a_media_token_names_one_file_of_one_conversation_and_only_ours_are_read() -> None:
    token = media_token(SECRET, REF)
    assert REF.media_sid not in token and REF.sender_id not in token  # opaque
    assert media_of_token(SECRET, token) == REF
    assert media_of_token("another secret", token) is None
    assert media_of_token(SECRET, token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert media_of_token(SECRET, "not-a-token") is None
    # A webhook token (the same secret) is no media token, nor the other way round.
    assert media_of_token(SECRET, handoff.webhook_token("visitor-1", SECRET)) is None
    assert handoff.sender_from_webhook_token(token, SECRET) is None


def test_a_media_token_expires() -> None:
    token = media_token(SECRET, REF)
    now = int(time.time())
    assert media_of_token(SECRET, token, ttl=60, now=now + 30) == REF
    assert media_of_token(SECRET, token, ttl=60, now=now + 120) is None


def test_a_files_link_is_our_route_with_a_token_only_when_flex_keeps_it() -> None:
    recorded = attachments.recorded("x.png", "image/png", 3, REF.media_sid, REF.service_sid)
    url = file_url("https://bot.example.com/", "/webhooks/handoff_socketio/media", SECRET, "visitor-1", recorded)
    assert url is not None and url.startswith("https://bot.example.com/webhooks/handoff_socketio/media/file/")
    assert media_of_token(SECRET, url.rsplit("/", 1)[1]) == REF
    no_service = attachments.recorded("x.png", "image/png", 3, REF.media_sid, None)
    assert file_url("https://bot.example.com", "/m", SECRET, "visitor-1", no_service) is None
