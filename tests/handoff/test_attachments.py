"""Files both ways during an agent chat, in both Flex modes: the visitor uploads over HTTP, the agent attaches in Flex.

Real processes (the session's stack: Flex sandbox, action server, Rasa server) and real HTTP:
the visitor's file reaches the agent as a Flex media message; the agent's file reaches a socket.io
visitor, a REST visitor's history and `rasa shell` with a link that downloads the same bytes;
anything outside the limits is refused with a clear error and nothing reaches the agent.
"""

from __future__ import annotations

import http.client
import re
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest
import requests

from northwind.processes import wait_for
from northwind.servers import AGENT, AgentDesk, Stack
from tests.handoff.conftest import Visitor, handed_off, stream
from tests.handoff.test_history import history

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
GIF = b"GIF89a" + bytes(range(200))
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"
TEXT = "Order A-17: two mugs, größe M ✓\n".encode()
MAX_BYTES = 16 * 1024 * 1024  # HANDOFF_ATTACHMENT_MAX_BYTES's default
TYPES = ["image/jpeg", "image/png", "image/gif", "application/pdf", "text/plain"]

# The path of a visitor's media message in each generation, for the sandbox's faults.
MESSAGES = {
    "conversations": r"^/conversations/v1/Conversations/CH\w+/Messages$",
    "legacy": r"^/chat/v2/Services/IS\w+/Channels/CH\w+/Messages$",
}
UPLOADS = r"^/mcs\.us1/v1/Services/IS\w+/Media$"


def upload(
    stack: Stack,
    sender: str,
    files: Optional[List[Tuple[str, str, bytes]]] = None,
    relay_id: Optional[str] = "",
    channel: str = "handoff_socketio",
) -> requests.Response:
    """POST files (name, type, bytes) as multipart to the channel's upload route, as the widget does."""
    fields = {} if relay_id is None else {"relay_id": relay_id or uuid.uuid4().hex}
    return requests.post(
        f"{stack.url}/webhooks/{channel}/media/{sender}",
        data=fields,
        files=[("file", (name, data, kind)) for name, kind, data in files or []],
        timeout=30,
    )


def refused(answer: requests.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"], body


def download(url: str) -> bytes:
    """Open a file link as a browser does: our route answers 302 to Twilio's temporary link, never cached."""
    first = requests.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Cache-Control"] == "no-store", first.text
    assert urlsplit(first.headers["Location"]).netloc != urlsplit(url).netloc  # the bytes come from Flex, not through Rasa
    found = requests.get(url, timeout=10)
    assert found.status_code == 200
    return found.content


def agent_files(desk: AgentDesk, task_sid: str) -> List[Dict[str, Any]]:
    """The files in the chat as the agent sees them (each with a fresh link)."""
    return [item for message in desk.media_messages(task_sid) for item in message["media"]]


def file_turns(stack: Stack, sender: str) -> List[Dict[str, Any]]:
    """The visitor's file turns in the tracker."""
    return [
        e
        for e in stack.tracker(sender)["events"]
        if e["event"] == "user" and ((e.get("metadata") or {}).get("handoff") or {}).get("attachment")
    ]


@pytest.fixture
def chatting(stack: Stack, visitors: Any) -> Iterator[Tuple[Visitor, Dict[str, Any]]]:
    """A socket.io visitor whose chat an agent accepted; the chat ends afterwards."""
    visitor = visitors()
    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined")
    yield visitor, task
    stack.sandbox.end(task["sid"])


def test_files_go_both_ways_between_a_socketio_visitor_and_the_agent(
    stack: Stack, chatting: Tuple[Visitor, Dict[str, Any]]
) -> None:
    visitor, task = chatting
    connecting = next(m for m in visitor.messages if m.get("event") == "connecting")
    path = "/webhooks/handoff_socketio/media"
    assert connecting["attachments"] == {"max_bytes": MAX_BYTES, "types": TYPES, "upload_path": path}

    # The visitor's photo reaches the agent as a media message of its own, as the visitor.
    sent = upload(stack, visitor.session_id, [("photo.png", "image/png", PNG)], relay_id="photo-1")
    assert sent.status_code == 201, sent.text
    turn = sent.json()["message"]
    shown = turn["metadata"]["handoff"]["attachment"]
    assert turn["sender"] == "visitor" and turn["text"] == "photo.png" and isinstance(turn["index"], int)
    assert {k: v for k, v in shown.items() if k != "url"} == {
        "filename": "photo.png",
        "content_type": "image/png",
        "size": len(PNG),
        "kind": "image",
    }
    assert shown["url"].startswith(f"{stack.url}{path}/file/")
    assert turn["attachment"] == {"type": "image", "payload": {"src": shown["url"]}}  # Rasa's image shape
    [seen] = agent_files(stack.sandbox, task["sid"])
    assert (seen["filename"], seen["content_type"], seen["size"]) == ("photo.png", "image/png", len(PNG))
    assert stack.sandbox.media_bytes(seen) == PNG
    [message] = stack.sandbox.media_messages(task["sid"])
    assert message["author"] == task["visitor_identity"] and not message["body"]
    assert download(shown["url"]) == PNG  # the visitor's other tabs open it too

    # The widget retries (its answer was lost): the same turn, nothing sent again.
    again = upload(stack, visitor.session_id, [("photo.png", "image/png", PNG)], relay_id="photo-1")
    assert again.status_code == 201 and again.json()["message"]["index"] == turn["index"]
    assert len(agent_files(stack.sandbox, task["sid"])) == 1 and len(file_turns(stack, visitor.session_id)) == 1

    # The agent's files: a PDF is its name and a link, an image comes in Rasa's image shape too.
    mark = len(visitor.messages)
    stack.sandbox.send_file(task["sid"], "invoice.pdf", "application/pdf", PDF)
    pdf = visitor.wait_for(lambda m: m.get("sender") == "agent" and m.get("attachment"), "the agent's PDF", start=mark)
    assert pdf["wire"]["text"] == f"{AGENT}: invoice.pdf" and set(pdf["wire"]) == {"text", "metadata"}
    assert pdf["agent"] == {"name": AGENT} and pdf["message_sid"].startswith("IM")
    assert {k: v for k, v in pdf["attachment"].items() if k != "url"} == {
        "filename": "invoice.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "kind": "file",
    }
    assert download(pdf["attachment"]["url"]) == PDF
    mark = len(visitor.messages)
    stack.sandbox.send_file(task["sid"], "map.gif", "image/gif", GIF)
    gif = visitor.wait_for(lambda m: m.get("sender") == "agent" and m.get("attachment"), "the agent's image", start=mark)
    assert gif["wire"]["attachment"] == {"type": "image", "payload": {"src": gif["attachment"]["url"]}}
    assert download(gif["attachment"]["url"]) == GIF

    # A reload: history has the same turns with fresh links.
    status, body = history(stack, visitor.session_id)
    assert status == 200
    files = [(m["sender"], m["attachment"]["filename"]) for m in body["messages"] if isinstance(m.get("attachment"), dict)]
    assert files == [("visitor", "photo.png"), ("agent", "invoice.pdf"), ("agent", "map.gif")]
    again_pdf = next(m for m in body["messages"] if m.get("message_sid") == pdf["message_sid"])
    assert {k: v for k, v in again_pdf["wire"].items() if k not in ("sender", "timestamp", "index")} == {
        **pdf["wire"],
        "metadata": {"handoff": {**pdf["wire"]["metadata"]["handoff"], "attachment": again_pdf["attachment"]}},
    }
    assert download(again_pdf["attachment"]["url"]) == PDF

    # Text goes on as before.
    visitor.say("got them, thanks")
    wait_for(lambda: any(m["body"] == "got them, thanks" for m in stack.sandbox.transcript(task["sid"])), 15, "relayed")


def rest_handoff(stack: Stack, sender: str) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Ask for an agent over REST; the replies and the accepted Flex task."""
    replies = stack.rest(sender, "/talk_to_agent")
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    return replies, task


def test_a_rest_visitor_sends_a_file_and_reads_the_agents_as_a_url(stack: Stack) -> None:
    sender = f"rest-{uuid.uuid4().hex}"
    # An earlier chat, ended: the conversation has two dialogue sessions.
    _, earlier = rest_handoff(stack, sender)
    stack.sandbox.end(earlier["sid"])
    wait_for(lambda: not stack.tracker(sender)["slots"]["handoff_status"], 15, "the bot back")
    replies, task = rest_handoff(stack, sender)
    connecting = next(m for m in replies if m.get("event") == "connecting")
    assert connecting["attachments"]["upload_path"] == "/webhooks/handoff_rest/media"
    try:
        sent = upload(stack, sender, [("notes.txt", "text/plain; charset=utf-8", TEXT)], channel="handoff_rest")
        assert sent.status_code == 201, sent.text
        turn = sent.json()["message"]
        assert turn["text"] == "notes.txt" and "image" not in turn and turn["metadata"]["handoff"]["attachment"]["kind"] == "file"
        # The answer is the turn as /messages lists it, index included (counted over every session).
        listed = next(m for m in stack.rest_messages(sender)["messages"] if m.get("attachment"))
        assert listed["index"] == turn["index"] and listed["wire"]["text"] == "notes.txt"
        [seen] = agent_files(stack.sandbox, task["sid"])
        assert seen["content_type"] == "text/plain" and stack.sandbox.media_bytes(seen) == TEXT

        since = stack.rest_messages(sender)["next"]
        stack.sandbox.send_file(task["sid"], "label.png", "image/png", PNG)

        def agents_file() -> Optional[Dict[str, Any]]:
            found = stack.rest_messages(sender, since)["messages"]
            return next((m for m in found if m["sender"] == "agent" and m.get("attachment")), None)

        message = wait_for(agents_file, 15, "the agent's file in /messages")
        assert message["wire"]["text"] == f"{AGENT}: label.png" and message["image"] == message["attachment"]["url"]
        assert download(message["image"]) == PNG
    finally:
        stack.sandbox.end(task["sid"])


def test_an_upload_outside_the_limits_is_refused_and_nothing_reaches_the_agent(stack: Stack, visitors: Any) -> None:
    refused(upload(stack, uuid.uuid4().hex, [("a.png", "image/png", PNG)]), 404, "unknown_conversation")
    visitor = visitors()
    visitor.say("/greet")
    visitor.wait_for_text("Northwind assistant")
    refused(upload(stack, visitor.session_id, [("a.png", "image/png", PNG)]), 409, "not_handed_off")

    task = handed_off(stack, visitor)
    stack.sandbox.accept(task["sid"])
    try:
        session = visitor.session_id
        # Too large by its Content-Length: answered before the body is sent.
        host = urlsplit(stack.url)
        connection = http.client.HTTPConnection(host.hostname or "", host.port, timeout=10)
        connection.putrequest("POST", f"/webhooks/handoff_socketio/media/{session}")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(MAX_BYTES + 1024 * 1024))
        connection.endheaders()
        early = connection.getresponse()
        assert early.status == 413 and b'"code":"too_large"' in early.read()
        connection.close()
        # Too large as it streams in (no Content-Length), and too large as a file.
        chunks = (b"x" * 1024 * 1024 for _ in range(18))
        streamed = requests.post(
            f"{stack.url}/webhooks/handoff_socketio/media/{session}",
            data=chunks,
            headers={"Content-Type": "multipart/form-data; boundary=x"},
            timeout=60,
        )
        refused(streamed, 413, "too_large")
        big = PNG + b"\x00" * (MAX_BYTES - len(PNG) + 1)
        refused(upload(stack, session, [("big.png", "image/png", big)]), 413, "too_large")
        # Not an allowed type, or not what it says it is.
        refused(upload(stack, session, [("a.webp", "image/webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ")]), 415, "type_not_allowed")
        refused(upload(stack, session, [("a.png", "image/png", b"\xff\xd8\xff\xe0" + PNG)]), 415, "type_not_allowed")
        refused(upload(stack, session, [("a.txt", "text/plain", b"\xff\xfe\x00\x01")]), 415, "type_not_allowed")
        refused(upload(stack, session, [("a.pdf", "application/pdf", PNG)]), 415, "type_not_allowed")
        # Not one usable file.
        refused(upload(stack, session, [("a.png", "image/png", b"")]), 400, "empty")
        refused(upload(stack, session, []), 400, "no_file")
        refused(upload(stack, session, [("a.png", "image/png", PNG), ("b.png", "image/png", PNG)]), 400, "several_files")
        refused(upload(stack, session, [("a.png", "image/png", PNG)], relay_id=None), 400, "bad_relay_id")
        refused(upload(stack, session, [("a.png", "image/png", PNG)], relay_id="not/ok"), 400, "bad_relay_id")
        # Someone else's conversation id, or one of another channel.
        refused(upload(stack, uuid.uuid4().hex, [("a.png", "image/png", PNG)]), 404, "unknown_conversation")
        refused(upload(stack, session, [("a.png", "image/png", PNG)], channel="handoff_rest"), 404, "unknown_conversation")
        # A link we did not make.
        forged = f"{stack.url}/webhooks/handoff_socketio/media/file/gAAAAABforged"
        assert requests.get(forged, allow_redirects=False, timeout=10).status_code == 404
        assert agent_files(stack.sandbox, task["sid"]) == [] and file_turns(stack, session) == []
    finally:
        stack.sandbox.end(task["sid"])


def test_an_upload_flex_failed_is_sent_once_when_the_visitor_tries_again(
    stack: Stack, chatting: Tuple[Visitor, Dict[str, Any]], faults: AgentDesk
) -> None:
    visitor, task = chatting
    # Twilio keeps failing the upload (every retry): nothing is sent, the visitor may try again.
    faults.fault(path_regex=UPLOADS, method="POST", status=500, times=None)
    refused(upload(stack, visitor.session_id, [("a.pdf", "application/pdf", PDF)], relay_id="retry-1"), 502, "flex_failed")
    faults.clear_faults()
    assert agent_files(stack.sandbox, task["sid"]) == [] and file_turns(stack, visitor.session_id) == []
    # The media message went through but its answer was lost: found, not posted twice.
    faults.fault(path_regex=MESSAGES[stack.mode], method="POST", status=500, when="after")
    sent = upload(stack, visitor.session_id, [("a.pdf", "application/pdf", PDF)], relay_id="retry-1")
    assert sent.status_code == 201, sent.text
    assert len(agent_files(stack.sandbox, task["sid"])) == 1 and len(file_turns(stack, visitor.session_id)) == 1


def test_a_file_over_the_relay_rate_is_refused(stack: Stack, chatting: Tuple[Visitor, Dict[str, Any]]) -> None:
    visitor, task = chatting
    mark = len(visitor.messages)
    for n in range(12):  # more than the relay passes on in 5 s (chat_state.FLOOD_LIMIT)
        visitor.say(f"quick line {n}")
    visitor.wait_for(lambda m: m.get("event") == "too_fast", "too fast notice", start=mark)
    refused(upload(stack, visitor.session_id, [("a.png", "image/png", PNG)]), 429, "too_fast")
    assert agent_files(stack.sandbox, task["sid"]) == [] and file_turns(stack, visitor.session_id) == []


def test_rasa_shell_shows_an_agents_file_as_a_link(stack: Stack) -> None:
    sender = f"shell-{uuid.uuid4().hex}"
    replies = stream(stack, sender, "/talk_to_agent")
    assert not any("attachments" in str(m) for m in replies)  # a terminal cannot upload: no limits offered
    channel_sid = stack.tracker(sender)["slots"]["handoff_channel_sid"]
    task = wait_for(lambda: stack.sandbox.task_for(channel_sid), 10, "Flex task")
    stack.sandbox.accept(task["sid"])
    try:
        stack.sandbox.send_file(task["sid"], "invoice.pdf", "application/pdf", PDF)
        [reply] = stream(stack, sender, "did you send it?")
        text = reply["text"]
        assert text.startswith(f"{AGENT}: ") and "invoice.pdf" in text, text
        link = re.search(r"https?://\S+", text)
        assert link is not None, text
        assert requests.get(link.group(0), timeout=10).content == PDF  # Twilio's temporary link, no credentials
    finally:
        stack.sandbox.end(task["sid"])
