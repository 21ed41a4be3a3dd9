"""The widget's extras (issue #15, design-15.md): files both ways, the known customer and the
pre-engagement form, the survey and the transcript after the chat. tests/browser/fake_rasa.py
speaks the contract: a `connecting` notice offering files, the upload route with its answers,
agent files, the after-chat notices (`metadata.handoff.event`).

Each state's screenshot goes to tests/.output/browser/ like every step; with
WIDGET_DOCS_SCREENSHOTS=1 the chat panel is also saved to bot/northwind/widget/docs/extras/ for
the README tour. Nothing compares pixels: the checks are on the DOM, the requests and the server.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

import pytest
from playwright.sync_api import Page, expect

from northwind.processes import ROOT, wait_for
from tests.browser.fake_rasa import png
from tests.browser.visitor import Visitor

DOCS = ROOT / "bot" / "northwind" / "widget" / "docs" / "extras"
PHOTO = png(360, 240, (30, 77, 58))
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" + b"%" * 1200
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JORDAN = {"name": "Jordan Lee", "email": "jordan.lee@example.com"}  # the shop page's signed-in customer


def shoot(screenshots, page: Page, state: str) -> None:
    page.mouse.move(0, 0)  # no hover look on whatever the last click left the pointer over
    screenshots.take(page, state)
    if os.environ.get("WIDGET_DOCS_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        page.locator(".hw-panel").screenshot(path=str(DOCS / f"{state}.png"), animations="disabled")


def payload(name: str, mime: str, body: bytes) -> Dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": body}


def config_page(new_page, fake_shop: str, fake_rasa, **config: Any) -> Visitor:
    """A page that starts the shop's widget from JavaScript with `config` (customer, preEngagement...)."""
    settings = {
        "serverUrl": fake_rasa.url,
        "historyUrl": "{serverUrl}/history/{session_id}",
        "title": "Northwind Help",
        "subtitle": "Nori answers right away",
        "botName": "Nori",
        "welcome": "Hi, I'm Nori, Northwind's assistant. Ask me about your order, or talk to a person at any time.",
        "colors": {"primary": "#1e4d3a", "agentAccent": "#c2620a"},
        **config,
    }
    query = urllib.parse.urlencode({"widget": f"{fake_shop}static/widget.js", "config": json.dumps(settings)})
    return Visitor(new_page()).visit(f"{fake_rasa.url}/test/page?{query}")


def sent(fake_rasa, session_id: str) -> List[Dict[str, Any]]:
    """What the visitor's messages carried: [{text, metadata}]."""
    return fake_rasa.session(session_id).get("sent", [])


def sent_texts(fake_rasa, session_id: str) -> List[str]:
    return [m["text"] for m in sent(fake_rasa, session_id)]


def expect_sent(fake_rasa, session_id: str, text: str) -> Dict[str, Any]:
    return wait_for(
        lambda: next((m for m in sent(fake_rasa, session_id) if m["text"] == text), None), 5, f"the visitor's {text!r}"
    )


def uploads(fake_rasa, session_id: str) -> List[Dict[str, Any]]:
    return fake_rasa.session(session_id).get("uploads", [])


def visitor_files(fake_rasa, session_id: str) -> List[Dict[str, Any]]:
    """The visitor's file turns the server recorded (history)."""
    return [
        m["metadata"]["handoff"]["attachment"]
        for m in fake_rasa.session(session_id)["messages"]
        if m["sender"] == "visitor" and m.get("metadata")
    ]


def notice(page: Page, event: str):
    return page.locator(f".hw-log .hw-msg[data-event='{event}']")


def attach_button(page: Page):
    return page.get_by_role("button", name="Attach a file")


def attach(page: Page, *files: Dict[str, Any]) -> None:
    """Chooses files through the attach button's file picker, as a visitor does."""
    with page.expect_file_chooser() as chooser:
        attach_button(page).click()
    chooser.value.set_files(list(files))


def drop(page: Page, *files: Dict[str, Any]) -> None:
    """Drags files from the desktop onto the chat panel."""
    page.locator(".hw-panel").evaluate(
        """(panel, files) => {
            const data = new DataTransfer();
            for (const f of files) data.items.add(new File([f.text], f.name, { type: f.type }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                panel.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [{"name": f["name"], "type": f["mimeType"], "text": f["buffer"].decode("latin-1")} for f in files],
    )


def composer_error(page: Page):
    return page.locator(".hw-composer-error")


def file_message(page: Page, filename: str, sender: str = "visitor"):
    return page.locator(f".hw-log .hw-msg[data-sender='{sender}']").filter(has_text=filename)


def ask_for_agent(page: Page) -> None:
    page.locator(".hw-actions").get_by_role("button", name="Talk to an agent", exact=True).click()


def agent_chat(
    fake_shop, fake_rasa, new_page, limits: Optional[Dict[str, Any]] = None, offer_files: bool = True
) -> tuple[Visitor, str]:
    """A visitor on the shop chatting with Alice; the chat offers files (`limits` over the defaults) unless told not to."""
    visitor = Visitor(new_page()).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    fake_rasa.post("/test/attachments", {"session_id": session_id, "limits": (limits or {}) if offer_files else None})
    ask_for_agent(visitor.page)
    visitor.expect_text("system", "Connecting you to an agent")
    fake_rasa.push(
        session_id, {"text": "Alice joined the chat.", "sender": "system", "event": "agent_joined", "agent": {"name": "Alice"}}
    )
    fake_rasa.push(session_id, {"text": "Hi, I'm Alice. How can I help?", "sender": "agent", "agent": {"name": "Alice"}})
    visitor.expect_text("agent", "How can I help?")
    return visitor, session_id


def agent_file(fake_rasa, filename: str, content_type: str, body: bytes) -> Dict[str, Any]:
    """A file Alice sends: stored by the fake, with the link the plugin would make."""
    url = fake_rasa.post("/test/media", {"content_type": content_type, "base64": base64.b64encode(body).decode()})["url"]
    kind = "image" if content_type.startswith("image/") else "file"
    return {"url": url, "filename": filename, "content_type": content_type, "size": len(body), "kind": kind}


# Files: the attach button, the visitor's files, the checks, the server's errors, the agent's files.


def test_attach_button_only_in_an_agent_chat_that_offers_files(fake_shop, fake_rasa, new_page):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page, offer_files=False)
    page = visitor.page
    expect(page.locator(".hw-composer")).to_be_visible()
    expect(attach_button(page)).to_be_hidden()  # a server that does not offer files: no button

    page.get_by_role("button", name="End chat").click()
    visitor.expect_text("system", "The chat has ended.")
    fake_rasa.post("/test/attachments", {"session_id": session_id, "limits": {}})
    expect(attach_button(page)).to_be_hidden()  # with the bot: none
    ask_for_agent(page)
    expect(notice(page, "connecting")).to_have_count(2)
    expect(attach_button(page)).to_be_visible()  # the agent chat is open while waiting: files can go
    description = page.locator("#hw-attach-hint")
    expect(description).to_have_text("One file per message, up to 16 MB: JPEG, PNG, GIF, PDF or text files")
    expect(attach_button(page)).to_have_attribute("aria-describedby", "hw-attach-hint")
    expect(page.locator(".hw-file-input")).to_have_attribute(
        "accept", "image/jpeg,image/png,image/gif,application/pdf,text/plain"
    )
    fake_rasa.push(session_id, {"text": "Alice joined the chat.", "sender": "system", "event": "agent_joined"})
    expect(attach_button(page)).to_be_visible()

    page.get_by_role("button", name="End chat").click()
    expect(notice(page, "chat_closed")).to_have_count(2)
    expect(attach_button(page)).to_be_hidden()


def test_visitor_sends_an_image_and_a_pdf_and_sees_them_again_after_reload(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    fake_rasa.post("/test/hold_uploads", {"session_id": session_id, "hold": True})
    attach(page, payload("parcel.png", "image/png", PHOTO))

    photo = file_message(page, "parcel.png")
    preview = photo.locator("img.hw-attachment__image")
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"))  # from the local file, at once
    expect(preview).to_have_attribute("alt", "parcel.png")
    expect(photo.locator(".hw-upload")).to_have_text("Uploading…")
    expect(photo).to_have_class(re.compile(r"hw-msg--pending"))
    assert page.evaluate("() => document.activeElement !== null")
    fake_rasa.post("/test/hold_uploads", {"session_id": session_id, "hold": False})
    expect(photo.locator(".hw-upload")).to_be_hidden()
    expect(photo).not_to_have_class(re.compile(r"hw-msg--pending"))
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 360

    attach(page, payload("receipt.pdf", "application/pdf", PDF))
    receipt = file_message(page, "receipt.pdf")
    expect(receipt.locator(".hw-file__name")).to_have_text("receipt.pdf")
    expect(receipt.locator(".hw-file__details")).to_have_text("PDF · 1 KB")
    expect(receipt.locator(".hw-upload")).to_be_hidden()
    shoot(screenshots, page, "attachment-sent")

    attempts = uploads(fake_rasa, session_id)
    assert [(a["filename"], a["content_type"], a["size"], a["code"]) for a in attempts] == [
        ("parcel.png", "image/png", len(PHOTO), "created"),
        ("receipt.pdf", "application/pdf", len(PDF), "created"),
    ]
    assert all(UUID.match(a["relay_id"]) for a in attempts) and attempts[0]["relay_id"] != attempts[1]["relay_id"]
    assert all(a["authorization"] is None for a in attempts)  # no token configured: none sent
    assert [f["filename"] for f in visitor_files(fake_rasa, session_id)] == ["parcel.png", "receipt.pdf"]
    assert "parcel.png" not in sent_texts(fake_rasa, session_id), "a file is not also sent as a chat line"

    page.reload()
    visitor.wait_until_connected()
    photo_again = file_message(page, "parcel.png").locator("img.hw-attachment__image")
    expect(photo_again).to_have_attribute(
        "src", re.compile(rf"^{re.escape(fake_rasa.url)}/webhooks/handoff_socketio/media/file/")
    )
    expect(file_message(page, "receipt.pdf").locator(".hw-file__name")).to_have_text("receipt.pdf")
    expect(file_message(page, "parcel.png")).to_have_count(1)
    expect(file_message(page, "receipt.pdf")).to_have_count(1)
    wait_for(lambda: photo_again.evaluate("img => img.complete && img.naturalWidth") == 360, 5, "the image from its link")


def test_the_file_keeps_the_servers_name_so_history_does_not_show_it_twice(fake_shop, fake_rasa, new_page):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    attach(page, payload("  label scan.png ", "image/png", PHOTO))  # the server trims the name
    expect(file_message(page, "label scan.png").locator(".hw-upload")).to_be_hidden()
    shown = "() => HandoffWidget.instance.conversation.messages.filter(m => m.attachment).map(m => m.text)"
    wait_for(lambda: page.evaluate(shown) == ["label scan.png"], 5, "the server's name for the file")
    page.evaluate("() => HandoffWidget.instance.syncHistory()")  # as after a reconnect
    visitor.send("did it arrive?")
    visitor.expect_text("visitor", "did it arrive?")
    page.evaluate("() => HandoffWidget.instance.syncHistory()")
    assert page.evaluate(shown) == ["label scan.png"]
    expect(file_message(page, "label scan.png")).to_have_count(1)


def test_files_outside_the_limits_are_refused_before_anything_is_sent(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page, limits={"max_bytes": 2048})
    page = visitor.page
    error = composer_error(page)

    attach(page, payload("notes.txt", "text/plain", b"n" * 5000))
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_have_text("“notes.txt” is too large (5 KB): files can be up to 2 KB.")

    attach(page, payload("archive.zip", "application/zip", b"PK\x03\x04"))
    expect(error).to_have_text(
        "“archive.zip” can't be sent: ZIP files aren't allowed. You can send JPEG, PNG, GIF, PDF or text files."
    )
    shoot(screenshots, page, "attachment-error")

    drop(page, payload("one.png", "image/png", PHOTO[:100]), payload("two.png", "image/png", PHOTO[:100]))
    expect(error).to_have_text("You chose 2 files: send one file per message.")

    assert uploads(fake_rasa, session_id) == [], "nothing left the browser"
    expect(page.locator(".hw-log .hw-msg[data-sender='visitor'] .hw-bubble--file")).to_have_count(0)
    error.get_by_role("button", name="Dismiss").click()
    expect(error).to_be_hidden()
    expect(visitor.input).to_be_focused()

    drop(page, payload("small.txt", "text/plain", b"Order NW-12345, damaged on arrival.\n"))  # one good file: sent
    expect(file_message(page, "small.txt").locator(".hw-file__details")).to_have_text("text · 36 bytes")
    wait_for(lambda: [f["filename"] for f in visitor_files(fake_rasa, session_id)] == ["small.txt"], 5, "the dropped file")
    expect(error).to_be_hidden()


@pytest.mark.parametrize(
    "case",
    [
        # The chat ended on the server without the widget hearing of it.
        {"state": "bot", "file": ("photo.png", "image/png", PHOTO), "status": 409, "error": "There is no agent chat"},
        # The server's limit is lower than the one it announced (a proxy, a changed setting).
        {"server_max_bytes": 100, "file": ("photo.png", "image/png", PHOTO), "status": 413, "error": "larger than 100 bytes"},
        # A file whose bytes are not what its name says.
        {"file": ("fake.png", "image/png", b"not a png at all"), "status": 415, "error": "not an allowed type"},
    ],
    ids=["409-not-handed-off", "413-too-large", "415-type-not-allowed"],
)
def test_server_refusals_are_shown_on_the_file_without_retry(fake_shop, fake_rasa, new_page, case):
    limits = {"server_max_bytes": case["server_max_bytes"]} if "server_max_bytes" in case else {}
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page, limits=limits)
    page = visitor.page
    if "state" in case:
        fake_rasa.post("/test/state", {"session_id": session_id, "state": case["state"]})
    name, mime, body = case["file"]
    attach(page, payload(name, mime, body))

    message = file_message(page, name)
    failure = message.locator(".hw-upload__error")
    expect(failure).to_contain_text("Not sent: ")
    expect(failure).to_contain_text(case["error"])
    expect(failure).to_have_attribute("role", "alert")
    expect(message.get_by_role("button", name="Retry")).to_have_count(0)  # trying again would not help
    assert [a["code"] for a in uploads(fake_rasa, session_id)] == [
        {409: "not_handed_off", 413: "too_large", 415: "type_not_allowed"}[case["status"]]
    ]
    message.get_by_role("button", name="Remove").click()
    expect(message).to_have_count(0)
    assert visitor_files(fake_rasa, session_id) == []


def test_flex_failure_502_retried_with_the_same_relay_id_posts_once(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    fake_rasa.post("/test/upload_failures", {"session_id": session_id, "statuses": [502]})
    attach(page, payload("parcel.png", "image/png", PHOTO))

    message = file_message(page, "parcel.png")
    expect(message.locator(".hw-upload__error")).to_have_text(
        "Not sent: The file could not be passed on to the agent. Please try again."
    )
    screenshots.take(page, "upload-502")
    message.get_by_role("button", name="Retry").click()
    expect(message.locator(".hw-upload")).to_be_hidden()

    attempts = uploads(fake_rasa, session_id)
    assert [a["code"] for a in attempts] == ["flex_failed", "created"]
    assert attempts[0]["relay_id"] == attempts[1]["relay_id"]
    assert len(visitor_files(fake_rasa, session_id)) == 1

    # The file reached the chat but the answer was lost: the retry (same relay id) does not post it twice.
    fake_rasa.post("/test/upload_failures", {"session_id": session_id, "statuses": ["502_after_landing"]})
    attach(page, payload("receipt.pdf", "application/pdf", PDF))
    receipt = file_message(page, "receipt.pdf")
    receipt.get_by_role("button", name="Retry").click()
    expect(receipt.locator(".hw-upload")).to_be_hidden()
    assert [f["filename"] for f in visitor_files(fake_rasa, session_id)] == ["parcel.png", "receipt.pdf"]
    page.reload()
    visitor.wait_until_connected()
    expect(file_message(page, "receipt.pdf")).to_have_count(1)


def test_network_failure_is_retryable(fake_shop, fake_rasa, new_page):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    upload_url = f"{fake_rasa.url}/webhooks/handoff_socketio/media/{session_id}"
    page.route(upload_url, lambda route: route.abort("connectionreset"))
    attach(page, payload("receipt.pdf", "application/pdf", PDF))

    message = file_message(page, "receipt.pdf")
    expect(message.locator(".hw-upload__error")).to_have_text("Not sent: The connection dropped before the file arrived.")
    assert uploads(fake_rasa, session_id) == []
    page.unroute(upload_url)
    message.get_by_role("button", name="Retry").click()
    expect(message.locator(".hw-upload")).to_be_hidden()
    assert [f["filename"] for f in visitor_files(fake_rasa, session_id)] == ["receipt.pdf"]


def test_agent_files_show_as_an_image_that_opens_and_a_card_that_downloads(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    label = agent_file(fake_rasa, "return-label.png", "image/png", PHOTO)
    invoice = agent_file(fake_rasa, "invoice-NW-12345.pdf", "application/pdf", PDF)
    fake_rasa.push(session_id, {"text": "return-label.png", "sender": "agent", "agent": {"name": "Alice"}, "attachment": label})
    fake_rasa.push(
        session_id, {"text": "invoice-NW-12345.pdf", "sender": "agent", "agent": {"name": "Alice"}, "attachment": invoice}
    )

    image_message = file_message(page, "return-label.png", sender="agent")
    image = image_message.locator("img.hw-attachment__image")
    expect(image).to_have_attribute("src", label["url"])
    expect(image).to_have_attribute("alt", "return-label.png")
    expect(image_message.locator(".hw-bubble")).not_to_contain_text("Alice:")  # the name is beside the bubble
    wait_for(lambda: image.evaluate("img => img.complete && img.naturalWidth") == 360, 5, "the agent's image")
    scroller = page.locator(".hw-scroll")  # the image grew the log after it came: still at the bottom
    wait_for(lambda: scroller.evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight") < 2, 5, "the log at the bottom")
    card = page.get_by_role("link", name="Download invoice-NW-12345.pdf (PDF, 1 KB)")
    expect(card).to_have_attribute("href", invoice["url"])
    expect(card).to_have_attribute("download", "invoice-NW-12345.pdf")
    shoot(screenshots, page, "attachment-agent")

    with page.expect_popup() as popup_info:
        image.click()
    popup = popup_info.value
    popup.wait_for_load_state()
    assert "/test/blobs/" in popup.url  # the link redirected to the file
    popup.close()
    downloaded = page.request.get(card.get_attribute("href"))
    assert downloaded.ok and downloaded.body() == PDF

    # A stock Rasa image payload (no handoff metadata) shows as an image too.
    fake_rasa.push(session_id, {"attachment": {"type": "image", "payload": {"src": label["url"]}}})
    expect(page.locator(".hw-msg[data-sender='bot'] img.hw-image")).to_have_attribute("src", label["url"])

    page.reload()
    visitor.wait_until_connected()
    expect(file_message(page, "return-label.png", sender="agent").locator("img")).to_have_count(1)
    expect(page.get_by_role("link", name="Download invoice-NW-12345.pdf (PDF, 1 KB)")).to_have_count(1)


def test_bearer_token_goes_with_the_handshake_history_and_uploads(fake_shop, fake_rasa, new_page):
    visitor = config_page(new_page, fake_shop, fake_rasa, authToken="visitor-jwt", open=True)
    page = visitor.page
    session_id = visitor.wait_until_connected()
    fake_rasa.post("/test/attachments", {"session_id": session_id, "limits": {}})
    ask_for_agent(page)
    visitor.expect_text("system", "Connecting you to an agent")
    attach(page, payload("parcel.png", "image/png", PHOTO))
    expect(file_message(page, "parcel.png").locator(".hw-upload")).to_be_hidden()

    assert [a["authorization"] for a in uploads(fake_rasa, session_id)] == ["Bearer visitor-jwt"]
    with urllib.request.urlopen(f"{fake_rasa.url}/test/connects", timeout=5) as answer:
        assert {"token": "visitor-jwt"} in json.loads(answer.read())["auth"]
    page.reload()
    visitor.wait_until_connected()
    wait_for(lambda: "Bearer visitor-jwt" in fake_rasa.session(session_id).get("history_auth", []), 5, "history with the token")


# Who the visitor is: the page's customer, or the pre-engagement form.


def test_known_customer_goes_with_every_message_and_is_never_asked(fake_shop, fake_rasa, new_page):
    customer = {"name": "Jordan Lee", "email": "jordan.lee@example.com", "customer_id": "NW-1042"}
    visitor = config_page(
        new_page, fake_shop, fake_rasa, customer=customer, metadata={"language": "en"}, preEngagement=True, open=True
    )
    page = visitor.page
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    ask_for_agent(page)
    visitor.expect_text("system", "Connecting you to an agent")
    expect(page.locator("form[data-form='pre-engagement']")).to_have_count(0)  # the page knows them: no form
    expect(page.get_by_role("button", name="Your details")).to_be_hidden()

    for text in ("hello", "/talk_to_agent"):
        assert expect_sent(fake_rasa, session_id, text)["metadata"] == {"language": "en", "customer": customer}


def test_shop_page_sends_its_signed_in_customer(fake_shop, fake_rasa, new_page):
    visitor = Visitor(new_page()).visit(fake_shop).open_chat()
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    metadata = expect_sent(fake_rasa, session_id, "hello")["metadata"]
    assert metadata == {"language": "en", "customer": {**JORDAN, "customer_id": "NW-1042"}}


def test_pre_engagement_form_before_the_first_request_for_a_person(fake_shop, fake_rasa, new_page, screenshots):
    visitor = config_page(new_page, fake_shop, fake_rasa, preEngagement=True, open=True)
    page = visitor.page
    session_id = visitor.wait_until_connected()
    visitor.send("hello")
    assert expect_sent(fake_rasa, session_id, "hello")["metadata"] is None
    expect(page.get_by_role("button", name="Your details")).to_be_visible()  # offered from the header too

    ask_for_agent(page)
    form = page.get_by_role("form", name="Before we connect you")
    expect(form).to_be_visible()
    name = form.get_by_role("textbox", name="Your name")
    email = form.get_by_role("textbox", name="Your email")
    expect(name).to_be_focused()
    expect(visitor.input).to_be_hidden()
    assert "/talk_to_agent" not in sent_texts(fake_rasa, session_id), "nothing is asked of the bot before the form"

    form.get_by_role("button", name="Start chat").click()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".hw-field__error").first).to_have_text("Enter your name or email, or choose Skip.")
    name.fill("Sam Rivera")
    email.fill("sam@")
    form.get_by_role("button", name="Start chat").click()
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("Enter an email address like name@example.com.")
    expect(name).not_to_have_attribute("aria-invalid", "true")
    email.fill("sam.rivera@example.com")
    shoot(screenshots, page, "pre-engagement")
    form.get_by_role("button", name="Start chat").click()

    expect(form).to_have_count(0)
    visitor.expect_text("system", "Connecting you to an agent")
    details = {"name": "Sam Rivera", "email": "sam.rivera@example.com"}
    assert expect_sent(fake_rasa, session_id, "/talk_to_agent")["metadata"] == {"pre_engagement": details}
    visitor.send("my parcel is late")
    assert expect_sent(fake_rasa, session_id, "my parcel is late")["metadata"] == {"pre_engagement": details}
    stored = page.evaluate("() => sessionStorage.getItem('handoff-widget:pre_engagement')")
    assert json.loads(stored) == details

    page.locator(".hw-waiting").get_by_role("button", name="Cancel", exact=True).click()
    visitor.expect_text("system", "The chat has ended.")
    page.reload()
    visitor.wait_until_connected()
    ask_for_agent(page)  # answered in this tab: not asked again
    expect(notice(page, "connecting")).to_have_count(2)
    expect(page.locator("form[data-form='pre-engagement']")).to_have_count(0)


def test_pre_engagement_skip_from_the_bots_button_and_later_from_the_header(fake_shop, fake_rasa, new_page):
    visitor = config_page(new_page, fake_shop, fake_rasa, preEngagement=["name"], open=True)
    page = visitor.page
    session_id = visitor.wait_until_connected()
    visitor.send("hi")
    page.get_by_role("group", name="Suggested replies").get_by_role("button", name="Talk to an agent").click()

    form = page.get_by_role("form", name="Before we connect you")
    expect(form.get_by_role("textbox")).to_have_count(1)  # only the fields asked for
    form.get_by_role("button", name="Skip").click()
    expect(form).to_have_count(0)
    assert expect_sent(fake_rasa, session_id, "/talk_to_agent")["metadata"] is None
    assert json.loads(page.evaluate("() => sessionStorage.getItem('handoff-widget:pre_engagement')")) == {"skipped": True}
    expect(page.get_by_role("button", name="Your details")).to_be_hidden()  # not while waiting for a person
    page.locator(".hw-waiting").get_by_role("button", name="Cancel", exact=True).click()
    visitor.expect_text("system", "The chat has ended.")

    page.get_by_role("button", name="Your details").click()
    edit = page.get_by_role("form", name="Your details")
    edit.get_by_role("textbox", name="Your name").fill("Sam")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_have_count(0)
    expect(visitor.input).to_be_focused()
    visitor.send("thanks")
    assert expect_sent(fake_rasa, session_id, "thanks")["metadata"] == {"pre_engagement": {"name": "Sam"}}

    page.get_by_role("button", name="Your details").click()
    expect(edit.get_by_role("textbox", name="Your name")).to_have_value("Sam")
    edit.get_by_role("textbox", name="Your name").fill("Someone else")
    edit.get_by_role("button", name="Cancel").click()
    visitor.send("bye")
    assert expect_sent(fake_rasa, session_id, "bye")["metadata"] == {"pre_engagement": {"name": "Sam"}}


# After the chat: the survey and the transcript.


def test_survey_rated_with_the_keyboard_then_a_comment_and_thanks(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    fake_rasa.post("/test/after_chat", {"session_id": session_id, "survey": True})

    rating = page.get_by_role("group", name="Rate your chat from 1 to 5 stars")
    stars = rating.locator(".hw-star")
    expect(stars).to_have_count(5)
    expect(notice(page, "survey").locator(".hw-bubble")).to_have_text("How would you rate your chat with our team?")
    expect(rating.get_by_role("button", name="Skip")).to_be_visible()
    visitor.input.focus()
    for _ in range(3):  # back from the composer: "Talk to an agent", Skip, then one tab stop for the whole scale
        page.keyboard.press("Shift+Tab")
    expect(stars.first).to_be_focused()
    assert [s.get_attribute("tabindex") for s in stars.all()] == ["0", "-1", "-1", "-1", "-1"]
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    four = rating.get_by_role("button", name="4 out of 5 stars: Good")
    expect(four).to_be_focused()
    expect(rating.locator(".hw-star--lit")).to_have_count(4)
    expect(rating.locator(".hw-rating__hint")).to_have_text("Good")
    shoot(screenshots, page, "survey")
    page.keyboard.press("Enter")

    assert expect_sent(fake_rasa, session_id, '/handoff_rating{"rating": 4}')
    visitor.expect_text("visitor", "4 out of 5 stars")
    expect(rating).to_be_hidden()  # answered
    comment = page.get_by_role("textbox", name="Your comment")
    expect(comment).to_be_visible()
    box = page.get_by_role("form", name="Your comment")
    box.get_by_role("button", name="Send").click()
    expect(comment).to_have_accessible_description("Write a comment, or choose Skip.")
    comment.fill("Alice sorted it out in two minutes.")
    shoot(screenshots, page, "survey-comment")
    comment.press("Enter")

    visitor.expect_text("visitor", "Alice sorted it out in two minutes.")
    thanks = notice(page, "survey_thanks")
    expect(thanks.locator(".hw-card__title")).to_have_text("Thanks for your feedback")
    expect(box).to_be_hidden()
    wait_for(
        lambda: fake_rasa.session(session_id).get("survey") == {"rating": 4, "comment": "Alice sorted it out in two minutes."},
        5,
        "the survey's answers",
    )
    page.reload()  # the answer reads the same from history
    expect(visitor.bubble("visitor", "4 out of 5 stars")).to_have_count(1)


def test_survey_skipped_then_transcript_by_email(fake_shop, fake_rasa, new_page, screenshots):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    fake_rasa.post("/test/after_chat", {"session_id": session_id, "survey": True, "transcript": True})
    page.get_by_role("group", name="Rate your chat from 1 to 5 stars").get_by_role("button", name="Skip").click()
    assert expect_sent(fake_rasa, session_id, "/handoff_skip")

    offer = notice(page, "transcript_offer")
    expect(offer.locator(".hw-bubble")).to_have_text("Would you like a transcript of this chat by email?")
    expect(offer.get_by_role("button")).to_have_text(["Email me the transcript", "No thanks"])
    shoot(screenshots, page, "transcript-offer")
    offer.get_by_role("button", name="Email me the transcript").click()
    assert expect_sent(fake_rasa, session_id, "/handoff_transcript")

    address = page.get_by_role("textbox", name="Your email address")
    expect(address).to_have_value(JORDAN["email"])  # the page's customer, ready to confirm
    address.fill("jordan.lee@")
    page.get_by_role("button", name="Send transcript").click()
    expect(address).to_have_accessible_description("Enter an email address like name@example.com.")
    expect(address).to_be_focused()
    assert "jordan.lee@" not in sent_texts(fake_rasa, session_id)
    address.fill("jordan@example.com")
    page.get_by_role("button", name="Send transcript").click()

    assert expect_sent(fake_rasa, session_id, "jordan@example.com")
    card = notice(page, "transcript_sent")
    expect(card.locator(".hw-card__title")).to_have_text("Transcript sent")
    expect(card).to_contain_text("on its way to j***@example.com")
    expect(address).to_be_hidden()
    shoot(screenshots, page, "transcript-sent")


def test_transcript_that_could_not_be_sent_says_so(fake_shop, fake_rasa, new_page):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    fake_rasa.post("/test/after_chat", {"session_id": session_id, "transcript": True, "transcript_result": "failed"})
    notice(page, "transcript_offer").get_by_role("button", name="Email me the transcript").click()
    page.get_by_role("button", name="Send transcript").click()  # the prefilled address
    assert expect_sent(fake_rasa, session_id, JORDAN["email"])
    card = notice(page, "transcript_failed")
    expect(card.locator(".hw-card__title")).to_have_text("Transcript not sent")
    expect(card).to_contain_text("Sorry, I couldn't send the transcript right now.")


def test_after_chat_notices_without_a_full_scale_stay_plain_buttons(fake_shop, fake_rasa, new_page):
    visitor, session_id = agent_chat(fake_shop, fake_rasa, new_page)
    page = visitor.page
    buttons = [{"title": t, "payload": f'/handoff_rating{{"rating": {n}}}'} for n, t in ((1, "Bad"), (5, "Great"))]
    fake_rasa.push(session_id, {"text": "Was this helpful?", "sender": "system", "event": "survey", "quick_replies": buttons})
    replies = page.get_by_role("group", name="Suggested replies")
    expect(replies.get_by_role("button")).to_have_text(["Bad", "Great"])
    expect(page.locator(".hw-star")).to_have_count(0)
    replies.get_by_role("button", name="Great").click()
    assert expect_sent(fake_rasa, session_id, '/handoff_rating{"rating": 5}')
