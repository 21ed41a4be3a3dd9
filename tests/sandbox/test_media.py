"""The sandbox's Media Content Service, agent files and the after-chat writeback, as a Twilio client meets them.

MCS is not in Twilio's OpenAPI descriptions nor in the helper libraries: uploads go over plain HTTP the way the
official MCS client does it (raw body + `Content-Type`, `?Filename=…&Category=media`) or as a browser form
(`multipart/form-data`). Messages, webhooks and writebacks go through the real `twilio` SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from flex_sandbox import media
from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import free_port, wait_for
from northwind.servers import AgentDesk, Sandbox, start_sandbox
from tests.sandbox.test_rest_conversations import new_web_chat
from tests.sandbox.test_rest_legacy import new_web_channel
from tests.sandbox.test_webhook_values import PNG, posted
from tests.sandbox.webhook_receiver import WebhookReceiver

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n%%EOF\n"  # binary, with CRLFs and dashes
MEDIA_KEYS = {
    "sid",
    "account_sid",
    "service_sid",
    "date_created",
    "date_upload_updated",
    "date_updated",
    "channel_sid",
    "message_sid",
    "size",
    "content_type",
    "filename",
    "author",
    "category",
    "is_multipart_upstream",
    "url",
    "links",
}


def mcs(sandbox: Sandbox, service_sid: Optional[str] = None) -> str:
    return f"{sandbox.base_url}/mcs.us1/v1/Services/{service_sid or sandbox.info['conversations_service_sid']}/Media"


def auth(sandbox: Sandbox) -> Any:
    return (sandbox.settings.api_key, sandbox.settings.api_secret)


def raw_upload(
    sandbox: Sandbox, data: Any, content_type: str, service_sid: Optional[str] = None, **query: str
) -> requests.Response:
    """What `@twilio/mcs-client` sends: the bytes as the body, the type as Content-Type, Filename/Category in the query."""
    return requests.post(
        mcs(sandbox, service_sid), data=data, params=query, headers={"Content-Type": content_type}, auth=auth(sandbox), timeout=60
    )


def form_upload(sandbox: Sandbox, files: List[Any], service_sid: Optional[str] = None) -> requests.Response:
    """What a browser's FormData upload sends: multipart/form-data with a file part."""
    return requests.post(mcs(sandbox, service_sid), files=files, auth=auth(sandbox), timeout=60)


def twilio_error(response: requests.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["more_info"].endswith(str(code)), body


def query_of(url: str) -> Dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="module")
def desk(sandbox: Sandbox) -> AgentDesk:
    return AgentDesk(sandbox)


# -- MCS: uploads ---------------------------------------------------------------------------
def test_a_raw_upload_is_a_media_resource_with_the_clients_filename(sandbox: Sandbox) -> None:
    started = time.time()
    created = raw_upload(sandbox, PNG, "image/png", Filename="screen shot é.png", Category="media")
    assert created.status_code == 201, created.text
    found = created.json()
    assert set(found) == MEDIA_KEYS
    service_sid = sandbox.info["conversations_service_sid"]
    path = f"/v1/Services/{service_sid}/Media/{found['sid']}"
    assert found["sid"].startswith("ME") and len(found["sid"]) == 34 and found["account_sid"] == DEVELOPMENT.account_sid
    assert (found["service_sid"], found["size"], found["content_type"]) == (service_sid, len(PNG), "image/png")
    assert (found["filename"], found["category"], found["author"]) == ("screen shot é.png", "media", "system")
    assert found["channel_sid"] is None and found["message_sid"] is None and found["is_multipart_upstream"] is False
    assert found["url"] == path and found["links"]["content"] == path + "/Content"  # MCS prints these relative
    direct = found["links"]["content_direct_temporary"]
    assert direct.startswith(f"{sandbox.base_url}/media.us1/{found['sid']}?")
    expires = int(query_of(direct)["Expires"])
    assert started + media.DEFAULT_URL_TTL - 5 <= expires <= time.time() + media.DEFAULT_URL_TTL + 1  # 300 s by default
    # The Media resource again: the same, with a freshly signed direct URL.
    fetched = requests.get(f"{mcs(sandbox)}/{found['sid']}", auth=auth(sandbox), timeout=10).json()
    assert {k: v for k, v in fetched.items() if k != "links"} == {k: v for k, v in found.items() if k != "links"}


def test_a_form_upload_takes_the_file_parts_name_and_type(sandbox: Sandbox) -> None:
    created = form_upload(sandbox, [("Media", ('uploads/2026/Invoice "May".pdf', PDF, "application/pdf"))])
    assert created.status_code == 201, created.text
    found = created.json()
    assert (found["filename"], found["content_type"], found["size"]) == ('Invoice "May".pdf', "application/pdf", len(PDF))
    content = requests.get(f"{mcs(sandbox)}/{found['sid']}/Content", auth=auth(sandbox), timeout=10)
    assert content.content == PDF  # byte for byte, CRLFs and dashes included
    assert content.headers["Content-Type"] == "application/pdf"
    assert content.headers["Content-Disposition"] == (
        "attachment; filename=\"Invoice _May_.pdf\"; filename*=UTF-8''Invoice%20%22May%22.pdf"
    )
    assert content.headers["X-Content-Type-Options"] == "nosniff"


def test_uploads_twilio_refuses(sandbox: Sandbox) -> None:
    twilio_error(raw_upload(sandbox, b"", "image/png"), 400, 20001)  # empty
    twilio_error(raw_upload(sandbox, PNG, "image/png", Category="avatar"), 400, 20001)
    twilio_error(form_upload(sandbox, [("note", (None, "just text"))]), 400, 20001)  # no file part
    two = [("a", ("a.png", PNG, "image/png")), ("b", ("b.png", PNG, "image/png"))]
    twilio_error(form_upload(sandbox, two), 400, 20001)  # one file per media
    twilio_error(raw_upload(sandbox, PNG, "image/png", service_sid="IS" + "0" * 32), 404, 20404)
    anonymous = requests.post(mcs(sandbox), data=PNG, headers={"Content-Type": "image/png"}, timeout=10)
    twilio_error(anonymous, 401, 20003)
    twilio_error(requests.get(f"{mcs(sandbox)}/ME{'0' * 32}", auth=auth(sandbox), timeout=10), 404, 20404)


def test_the_size_limit_is_16_mib_and_error_50512(sandbox: Sandbox) -> None:
    limit = 16 * 1024 * 1024
    exactly = raw_upload(sandbox, b"\0" * limit, "application/octet-stream")
    assert exactly.status_code == 201 and exactly.json()["size"] == limit, exactly.text[:200]
    twilio_error(raw_upload(sandbox, b"\0" * (limit + 1), "application/octet-stream"), 413, 50512)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        for _ in range(17):
            yield b"\0" * (1024 * 1024)

    twilio_error(raw_upload(sandbox, chunks(), "application/octet-stream"), 413, 50512)
    twilio_error(form_upload(sandbox, [("Media", ("big.bin", b"\0" * (limit + 1), "application/octet-stream"))]), 413, 50512)
    assert raw_upload(sandbox, PNG, "image/png").status_code == 201  # the connection pool still works after refusals


# -- MCS: the pre-signed direct URL -----------------------------------------------------------
def test_the_direct_url_needs_no_credentials_only_its_signature(sandbox: Sandbox) -> None:
    found = raw_upload(sandbox, PNG, "image/png", Filename="cat.png").json()
    direct = found["links"]["content_direct_temporary"]
    got = requests.get(direct, timeout=10)  # no auth, as a browser following a redirect
    assert got.status_code == 200 and got.content == PNG and got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"

    query = query_of(direct)
    base = f"{sandbox.base_url}/media.us1/{found['sid']}"
    other = raw_upload(sandbox, PNG, "image/png").json()
    forged = [
        {**query, "Signature": query["Signature"][:-2] + ("AA" if not query["Signature"].endswith("AA") else "BB")},
        {**query, "Expires": str(int(query["Expires"]) + 3600)},  # a longer life is not what was signed
        {"Expires": query["Expires"]},
        {},
    ]
    for params in forged:
        refused = requests.get(base, params=params, timeout=10)
        assert refused.status_code == 403 and b"AccessDenied" in refused.content, params
    assert requests.get(f"{sandbox.base_url}/media.us1/{other['sid']}", params=query, timeout=10).status_code == 403

    # Signed right but expired (the sandbox signs with a key derived from the auth token): refused too.
    account = SimpleNamespace(sid=DEVELOPMENT.account_sid, credentials=DEVELOPMENT)
    expired = media.direct_url(account, sandbox.base_url, found["sid"], ttl=60, now=time.time() - 120)  # type: ignore[arg-type]
    assert requests.get(expired, timeout=10).status_code == 403
    still_valid = media.direct_url(account, sandbox.base_url, found["sid"], ttl=60)  # type: ignore[arg-type]
    assert requests.get(still_valid, timeout=10).content == PNG


def test_non_image_files_download_and_never_render_as_pages(sandbox: Sandbox) -> None:
    page = raw_upload(sandbox, b"<script>alert(1)</script>", "text/html", Filename="x.html").json()
    svg = raw_upload(sandbox, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml").json()
    for found in (page, svg):
        got = requests.get(found["links"]["content_direct_temporary"], timeout=10)
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert got.headers["Content-Security-Policy"].startswith("sandbox")


# -- MCS: settings and persistence ------------------------------------------------------------
@pytest.fixture(scope="module")
def small_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox with a 1000-byte media limit, 30 s direct URLs and a public URL of its own, on a state file."""
    logs = tmp_path_factory.mktemp("small-sandbox")
    port = free_port()
    env = {
        "FLEX_SANDBOX_MEDIA_MAX_BYTES": "1000",
        "FLEX_SANDBOX_MEDIA_URL_TTL": "30",
        "FLEX_SANDBOX_PUBLIC_URL": f"http://localhost:{port}/",
    }
    server = start_sandbox(logs, name="small-sandbox", db=logs / "state.db", port=port, extra_env=env, available=())
    try:
        yield server
    finally:
        server.process.stop()


def test_the_limit_ttl_and_public_url_are_settings_and_media_survive_a_restart(small_sandbox: Sandbox) -> None:
    twilio_error(raw_upload(small_sandbox, b"x" * 1001, "text/plain"), 413, 50512)
    created = raw_upload(small_sandbox, b"x" * 1000, "text/plain", Filename="notes.txt")
    assert created.status_code == 201, created.text
    found = created.json()
    direct = found["links"]["content_direct_temporary"]
    port = urlsplit(small_sandbox.base_url).port
    assert direct.startswith(f"http://localhost:{port}/media.us1/{found['sid']}?")  # FLEX_SANDBOX_PUBLIC_URL
    assert int(query_of(direct)["Expires"]) <= time.time() + 31

    small_sandbox.process.stop()
    small_sandbox.process.start()  # same state file, same credentials
    fetched = requests.get(f"{mcs(small_sandbox)}/{found['sid']}", auth=auth(small_sandbox), timeout=10)
    assert fetched.status_code == 200 and fetched.json()["filename"] == "notes.txt"
    assert requests.get(direct, timeout=10).content == b"x" * 1000  # URLs signed before the restart still work


@pytest.mark.parametrize(
    "name, value", [("FLEX_SANDBOX_MEDIA_MAX_BYTES", "16MB"), ("FLEX_SANDBOX_MEDIA_URL_TTL", "0")], ids=["max", "ttl"]
)
def test_a_malformed_media_setting_stops_the_start_naming_it(name: str, value: str, tmp_path: Path) -> None:
    env = {**os.environ, **DEVELOPMENT.as_env(), name: value}
    done = subprocess.run(
        [sys.executable, "-m", "flex_sandbox", "--in-memory", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and name in done.stderr and "Traceback" not in done.stderr, done.stderr


# -- messages with media -----------------------------------------------------------------------
def test_a_message_with_a_named_file_as_twilio_renders_it(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    conversation.webhooks.create(target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"])
    found = form_upload(sandbox, [("Media", ("invoice.pdf", PDF, "application/pdf"))]).json()
    message = conversation.messages.create(
        author=chat.identity, media_sid=found["sid"], attributes='{"relay_id": "r1"}', x_twilio_webhook_enabled="true"
    )
    expected = {"sid": found["sid"], "size": len(PDF), "content_type": "application/pdf", "filename": "invoice.pdf"}
    assert message.body is None and message.media == [{**expected, "category": "media"}]
    [got] = webhooks.wait(hook, 1)
    form = posted(got)
    assert "Body" not in form and got.signature_valid
    assert json.loads(form["Media"][0]) == [
        {"Sid": found["sid"], "Size": len(PDF), "ContentType": "application/pdf", "Filename": "invoice.pdf", "Category": "media"}
    ]
    fetched = requests.get(f"{mcs(sandbox)}/{found['sid']}", auth=auth(sandbox), timeout=10).json()
    assert (fetched["message_sid"], fetched["channel_sid"]) == (message.sid, chat.conversation_sid)


def test_a_chat_media_message_names_the_file(sandbox: Sandbox, webhooks: WebhookReceiver, hook: str) -> None:
    sid = new_web_channel(sandbox, "visitor-files")
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    channel.webhooks.create(type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMediaMessageSent"])
    found = raw_upload(sandbox, PNG, "image/png", service_sid=sandbox.chat_service_sid, Filename="photo.png").json()
    message = channel.messages.create(from_="visitor-files", media_sid=found["sid"], x_twilio_webhook_enabled="true")
    assert message.type == "media" and message.body == ""
    assert message.media == {"sid": found["sid"], "size": len(PNG), "content_type": "image/png", "filename": "photo.png"}
    [got] = webhooks.wait(hook, 1)
    form = posted(got)
    assert form["EventType"] == ["onMediaMessageSent"] and form["MediaFilename"] == ["photo.png"]
    assert form["MediaSid"] == [found["sid"]] and form["MediaSize"] == [str(len(PNG))] and got.signature_valid


# -- the agent's side ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["conversations", "legacy"])
def test_an_agent_sends_a_file_as_flex_does(
    mode: str, sandbox: Sandbox, desk: AgentDesk, webhooks: WebhookReceiver, hook: str
) -> None:
    agent = f"filer-{mode}"
    if mode == "conversations":
        chat_sid = new_web_chat(sandbox).conversation_sid
        sandbox.client.conversations.v1.conversations(chat_sid).webhooks.create(
            target="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMessageAdded"]
        )
    else:
        chat_sid = new_web_channel(sandbox, f"visitor-{agent}")
        sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(chat_sid).webhooks.create(
            type="webhook", configuration_url=webhooks.url(hook), configuration_filters=["onMediaMessageSent"]
        )
    task = desk.task(chat_sid)
    with pytest.raises(requests.HTTPError) as not_yet:
        desk.send_file(chat_sid, "a.pdf", "application/pdf", PDF, agent=agent)
    assert not_yet.value.response.status_code == 409  # accept first, like any message
    desk.accept(task["sid"], agent)

    sent = desk.send_file(chat_sid, "Returns form.pdf", "application/pdf", PDF, agent=agent)
    assert sent["role"] == "agent" and sent["author"] == agent and sent["body"] == "" and not sent["summary"]
    [item] = sent["media"]
    assert (item["filename"], item["content_type"], item["size"]) == ("Returns form.pdf", "application/pdf", len(PDF))
    assert desk.media_bytes(item) == PDF

    [got] = webhooks.wait(hook, 1)
    form = posted(got)
    assert got.signature_valid and form["Source"] == ["SDK"] and form["ClientIdentity"] == [agent]
    if mode == "conversations":
        assert json.loads(form["Media"][0])[0]["Filename"] == "Returns form.pdf" and "Body" not in form
    else:
        assert form["EventType"] == ["onMediaMessageSent"] and form["MediaFilename"] == ["Returns form.pdf"]
    assert [m["sid"] for m in desk.media_messages(chat_sid)] == [sent["sid"]]

    too_big = requests.post(
        f"{desk.url}/agent/api/tasks/{task['sid']}/media",
        data={"agent": agent},
        files={"file": ("huge.bin", b"\0" * (16 * 1024 * 1024 + 1), "application/octet-stream")},
        timeout=60,
    )
    assert too_big.status_code == 413 and "too large" in too_big.json()["error"]
    no_file = requests.post(f"{desk.url}/agent/api/tasks/{task['sid']}/media", data={"agent": agent, "x": "y"}, timeout=10)
    assert no_file.status_code == 400
    other = requests.post(
        f"{desk.url}/agent/api/tasks/{task['sid']}/media",
        data={"agent": "someone-else"},
        files={"file": ("a.png", PNG, "image/png")},
        timeout=10,
    )
    assert other.status_code == 403


def test_the_bots_summary_is_flagged_for_the_desktop(sandbox: Sandbox, desk: AgentDesk) -> None:
    chat = new_web_chat(sandbox)
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    summary = conversation.messages.create(
        author="Rasa", body="Asked about: returns", attributes=json.dumps({"handoff_summary": True})
    )
    # The visitor cannot make a summary card by sending the same attributes.
    conversation.messages.create(author=chat.identity, body="me too", attributes=json.dumps({"handoff_summary": True}))
    conversation.messages.create(author="Rasa", body="not a summary", attributes="{}")
    assert [m["sid"] for m in desk.summary_messages(chat.conversation_sid)] == [summary.sid]


# -- after the chat: writing back ---------------------------------------------------------------
def test_after_the_chat_conversations_refuse_attributes_and_a_wrapping_task_takes_them(sandbox: Sandbox, desk: AgentDesk) -> None:
    pre = {"summary": {"text": "Wants a refund"}, "customers": {"name": "Ann", "email": "ann@example.com"}}
    chat = new_web_chat(sandbox, pre, customer="Ann")
    conversation = sandbox.client.conversations.v1.conversations(chat.conversation_sid)
    task = desk.task(chat.conversation_sid)
    assert task["attributes"]["pre_engagement_data"] == pre  # Send to Flex copies the pre-engagement data
    desk.accept(task["sid"], "writer")
    merged = {**json.loads(conversation.fetch().attributes), "note": "during"}
    conversation.update(attributes=json.dumps(merged))  # an open conversation takes attributes
    assert desk.chat_attributes(chat.conversation_sid)["note"] == "during"

    ended = desk.end(task["sid"], "writer", wrap_up=True)
    assert ended["assignment_status"] == "wrapping" and ended["status"] == "ended" and ended["ended_by"] == "writer"
    assert conversation.fetch().state == "closed"
    with pytest.raises(TwilioRestException) as closed:
        conversation.update(attributes=json.dumps({**merged, "handoff_survey": {"rating": 5}}))
    assert (closed.value.status, closed.value.code) == (400, 50377)  # Twilio: a closed conversation is final

    tasks = sandbox.client.taskrouter.v1.workspaces(sandbox.info["workspace_sid"]).tasks
    attributes = {**json.loads(tasks(task["sid"]).fetch().attributes), "handoff_survey": {"rating": 5, "comment": "quick"}}
    updated = tasks(task["sid"]).update(attributes=json.dumps(attributes))
    assert updated.assignment_status == "wrapping" and json.loads(updated.attributes)["handoff_survey"]["rating"] == 5
    assert desk.task_attributes(task["sid"])["handoff_survey"] == {"rating": 5, "comment": "quick"}

    done = desk.complete(task["sid"], "writer")
    assert done["assignment_status"] == "completed" and done["reason"] == "Wrap-up done"
    with pytest.raises(TwilioRestException) as completed:
        tasks(task["sid"]).update(attributes=json.dumps({**attributes, "late": True}))
    assert (completed.value.status, completed.value.code) == (400, 20001)
    assert "late" not in desk.task_attributes(task["sid"])


def test_without_wrap_up_ending_completes_the_task_at_once(sandbox: Sandbox, desk: AgentDesk) -> None:
    chat = new_web_chat(sandbox)
    task = desk.task(chat.conversation_sid)
    desk.accept(task["sid"], "quick-ender")
    ended = desk.end(task["sid"], "quick-ender")
    assert ended["assignment_status"] == "completed" and ended["reason"] == "Chat ended by the agent"
    refused = sandbox.agent("POST", f"/agent/api/tasks/{task['sid']}/end", {"agent": "quick-ender", "wrap_up": "maybe"})
    assert refused.status_code == 400


def test_a_chat_channel_takes_attributes_after_the_chat(sandbox: Sandbox, desk: AgentDesk) -> None:
    sid = new_web_channel(sandbox, "visitor-survey")
    task = desk.task(sid)
    desk.accept(task["sid"], "legacy-writer")
    desk.end(task["sid"], "legacy-writer", wrap_up=True)
    channel = sandbox.client.chat.v2.services(sandbox.chat_service_sid).channels(sid)
    attributes = json.loads(channel.fetch().attributes)
    assert attributes["status"] == "INACTIVE"
    channel.update(attributes=json.dumps({**attributes, "handoff_survey": {"rating": 2, "comment": None}}))
    shown = desk.chat_attributes(sid)
    assert shown["handoff_survey"] == {"rating": 2, "comment": None} and shown["status"] == "INACTIVE"
    wait_for(lambda: desk.task(sid)["assignment_status"] == "wrapping", 5, "the legacy task wraps up")
