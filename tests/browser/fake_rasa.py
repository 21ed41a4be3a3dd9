"""A stand-in for Rasa's socket.io channel plus the handoff connector, for widget browser tests.

It speaks the same protocol as the real stack (session_request/session_confirm, user_uttered,
bot_uttered with bot/agent/system payloads, visitor_typing/agent_typing, a history endpoint) and
lets a test play the agent side through /test/* endpoints. State is kept in a JSON file so a
restarted server still knows the conversations (like Rasa's tracker store).

Issue #15's extras, as design-15.md words the contract: a `connecting` notice offering files
(`metadata.handoff.attachments`, after POST /test/attachments), the upload route with its answers
(201 and every error), agent files (`metadata.handoff.attachment`, served through a 302 like the
plugin's media route), and the survey and transcript after a chat (POST /test/after_chat).

    python -m tests.browser.fake_rasa --port 5099 --state /tmp/fake-rasa.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import json
import re
import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import socketio
from sanic import Sanic, response
from sanic.request import Request

from rasa_flex_handoff import sanic_compat

GREETING = {
    "text": "Hi! I'm Nori, the Northwind assistant. How can I help?",
    "quick_replies": [
        {"content_type": "text", "title": "Shipping info", "payload": "/ask_shipping"},
        {"content_type": "text", "title": "Returns", "payload": "/ask_returns"},
        {"content_type": "text", "title": "Talk to an agent", "payload": "/talk_to_agent"},
    ],
}
# The routing notices (design #14), worded like the plugin's domain responses; `metadata.handoff`
# carries the event, the offer its buttons as Rasa's `quick_replies`.
OFFER_BUTTONS = [
    {"content_type": "text", "title": "Leave a message", "payload": "/handoff_leave_message"},
    {"content_type": "text", "title": "Stay with the bot", "payload": "/handoff_stay"},
]
ROUTING = {
    "closed": "Our team is away right now: we answer chats Monday to Friday, 9:00 to 17:00.",
    "no_agents": "All our agents are busy or away at the moment.",
    "offer": "You can leave a message for our team, or keep chatting with me.",
    "leave_message": "What would you like to tell our team? Add your email if you'd like a reply.",
    "message_left": "Thanks! Your message is with our team; they will get back to you.",
    "stay": "No problem, I'm still here. What else can I help with?",
}
ANSWERS = {
    "/ask_shipping": "Standard shipping takes 3 to 5 working days and is free over €60.",
    "/ask_returns": "You can return anything within 60 days for a full refund.",
}

# Files (design #15): where the widget uploads, and the plugin's default limits.
UPLOAD_PATH = "/webhooks/handoff_socketio/media"
DEFAULT_TYPES = ["image/jpeg", "image/png", "image/gif", "application/pdf", "text/plain"]
RELAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}
CORS = {"Access-Control-Allow-Origin": "*"}
FLEX_FAILED = "The file could not be passed on to the agent. Please try again."
PREFLIGHT = {**CORS, "Access-Control-Allow-Methods": "GET, POST", "Access-Control-Allow-Headers": "Authorization"}

# The survey and transcript after a chat (design #15 section 4), worded like the plugin's responses.
SKIP = {"content_type": "text", "title": "Skip", "payload": "/handoff_skip"}
CANCEL = {"content_type": "text", "title": "Cancel", "payload": "/handoff_skip"}
AFTER_CHAT = {
    "survey": "How would you rate your chat with our team?",
    "survey_comment": "Thanks! Anything you'd like to add? Type it here, or skip.",
    "survey_thanks": "Thank you for your feedback.",
    "transcript_offer": "Would you like a transcript of this chat by email?",
    "transcript_email": "Which email address should I send it to?",
    "transcript_sent": "Done: the transcript is on its way to {email}.",
    "transcript_failed": "Sorry, I couldn't send the transcript right now.",
}
RATING_BUTTONS = [
    {"content_type": "text", "title": str(n), "payload": f'/handoff_rating{{"rating": {n}}}'} for n in range(1, 6)
] + [SKIP]
TRANSCRIPT_BUTTONS = [
    {"content_type": "text", "title": "Email me the transcript", "payload": "/handoff_transcript"},
    {"content_type": "text", "title": "No thanks", "payload": "/handoff_skip"},
]
EMAIL = re.compile(r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$")


def png(width: int, height: int, rgb: Tuple[int, int, int]) -> bytes:
    """A real PNG of one colour with a lighter band (so a preview is visibly an image), for tests."""
    light = tuple(min(255, c + 90) for c in rgb)
    rows = b"".join(b"\x00" + bytes((light if height // 3 <= y < height // 2 else rgb) * width) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def upload_error(status: int, code: str, sentence: str):
    return response.json({"error": sentence, "code": code}, status=status, headers=CORS)


def sniffed_ok(content_type: str, body: bytes) -> bool:
    """The bytes are what the declared type says (the plugin's check: magic numbers, UTF-8 text)."""
    if content_type == "text/plain":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if content_type == "image/webp":
        return body[:4] == b"RIFF" and body[8:12] == b"WEBP"
    return any(body.startswith(magic) for magic in MAGIC.get(content_type, (b"",)))


class Conversations:
    """Per-session messages (visitor and bot side), handoff state and visitor typing signals."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.data: Dict[str, Dict[str, Any]] = {}
        self.blobs: Dict[str, Dict[str, str]] = {}  # media sid -> {content_type, body (base64)}
        if path and path.is_file():
            self.data = json.loads(path.read_text())
        if self.blobs_path and self.blobs_path.is_file():
            self.blobs = json.loads(self.blobs_path.read_text())

    @property
    def blobs_path(self) -> Optional[Path]:
        return self.path.with_suffix(".blobs.json") if self.path else None

    def session(self, session_id: str) -> Dict[str, Any]:
        return self.data.setdefault(
            session_id,
            {"messages": [], "state": "bot", "typing": [], "requests": 0, "sent": [], "uploads": [], "failures": []},
        )

    def record(self, session_id: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        entry = {"timestamp": time.time(), **payload}
        self.session(session_id)["messages"].append(entry)
        self.save()
        return entry

    def save(self) -> None:
        if self.path:
            self.path.write_text(json.dumps(self.data))
        if self.blobs_path and self.blobs:
            self.blobs_path.write_text(json.dumps(self.blobs))


def on_the_wire(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A test's {sender, text, agent, event, message_sid, timestamp, attachment} as the connector sends it.

    An agent's file (`attachment` {url, filename, content_type, size, kind}) goes under
    `metadata.handoff.attachment`; an image also gets Rasa's image shape for stock widgets.
    """
    sender = payload.get("sender", "bot")
    if sender not in ("agent", "system"):
        return {k: v for k, v in payload.items() if k != "sender"}
    handoff = {k: v for k, v in payload.items() if k not in ("text", "sender", "quick_replies") and v is not None}
    handoff["sender"] = sender
    text = str(payload.get("text", ""))
    if sender == "agent":
        handoff["body"] = text
        text = f"{(payload.get('agent') or {}).get('name', 'Agent')}: {text}"
    buttons = {"quick_replies": payload["quick_replies"]} if payload.get("quick_replies") else {}
    attachment = payload.get("attachment") or {}
    image = {"attachment": {"type": "image", "payload": {"src": attachment["url"]}}} if attachment.get("kind") == "image" else {}
    return {"text": text, **buttons, **image, "metadata": {"handoff": handoff}}


def create_app(state_path: Optional[Path]) -> Sanic:
    sanic_compat.apply()
    app = Sanic("fake_rasa")
    sio = socketio.AsyncServer(async_mode="sanic", cors_allowed_origins="*")
    sio.attach(app, "/socket.io")
    store = Conversations(state_path)
    connects: List[Any] = []
    holds: Dict[str, asyncio.Event] = {}  # session id -> set when held uploads may go on

    async def say(session_id: str, payload: Dict[str, Any]) -> None:
        """Record a bot-side payload in the history and send it to the session's sockets, shaped as the connector does.

        Tests write agent and system turns as {sender, text, agent, event, ...}; on the wire they
        become Rasa text payloads with `metadata.handoff` (bot/rasa_flex_handoff/payloads.py).
        """
        live = on_the_wire(payload)
        store.record(session_id, {"sender": payload.get("sender", "bot"), **live})
        await sio.emit("bot_uttered", {k: v for k, v in live.items() if k != "timestamp"}, room=session_id)

    async def system(session_id: str, event: str, text: str, **fields: Any) -> None:
        await say(session_id, {"text": text, "sender": "system", "event": event, **fields})

    async def offer(session_id: str) -> None:
        await system(session_id, "offer", ROUTING["offer"], quick_replies=OFFER_BUTTONS)

    async def after_chat(session_id: str, conversation: Dict[str, Any], text: str) -> None:
        """The visitor's answer to the survey or the transcript offer, as the plugin's after-chat action takes it."""
        step = conversation["state"]
        plan = conversation.setdefault("after_chat", {})
        survey = conversation.setdefault("survey", {"rating": None, "comment": None})
        skipped = text == "/handoff_skip"
        if step == "survey":
            rating = re.fullmatch(r'/handoff_rating\{"rating": ?([1-5])\}', text)
            if rating:
                survey["rating"] = int(rating.group(1))
                conversation["state"] = "survey_comment"
                await system(session_id, "survey_comment", AFTER_CHAT["survey_comment"], quick_replies=[SKIP])
                return
            await after_survey(session_id, conversation, thank=not skipped)
        elif step == "survey_comment":
            if not skipped:
                survey["comment"] = text
            await after_survey(session_id, conversation, thank=True)
        elif step == "transcript":
            if text == "/handoff_transcript":
                conversation["state"] = "transcript_email"
                await system(session_id, "transcript_email", AFTER_CHAT["transcript_email"], quick_replies=[CANCEL])
            else:
                conversation["state"] = "bot"
        elif step == "transcript_email":
            conversation["state"] = "bot"
            if skipped:
                return
            conversation["transcript_to"] = text
            if EMAIL.match(text) and plan.get("transcript_result", "sent") == "sent":
                await system(session_id, "transcript_sent", AFTER_CHAT["transcript_sent"].format(email=mask_email(text)))
            else:
                await system(session_id, "transcript_failed", AFTER_CHAT["transcript_failed"])

    async def after_survey(session_id: str, conversation: Dict[str, Any], thank: bool) -> None:
        if thank:
            await system(session_id, "survey_thanks", AFTER_CHAT["survey_thanks"])
        if conversation["after_chat"].get("transcript"):
            conversation["state"] = "transcript"
            await system(session_id, "transcript_offer", AFTER_CHAT["transcript_offer"], quick_replies=TRANSCRIPT_BUTTONS)
        else:
            conversation["state"] = "bot"

    @sio.on("session_request")
    async def session_request(sid: str, data: Optional[Dict[str, Any]]) -> None:
        session_id = (data or {}).get("session_id") or uuid.uuid4().hex
        sio.enter_room(sid, session_id)
        store.session(session_id)["requests"] += 1
        store.save()
        await sio.emit("session_confirm", session_id, room=sid)

    @sio.on("user_uttered")
    async def user_uttered(sid: str, data: Dict[str, Any]) -> None:
        session_id = data.get("session_id")
        text = str(data.get("message", ""))
        if not session_id:
            return
        store.record(session_id, {"sender": "visitor", "text": text})
        conversation = store.session(session_id)
        # What came with the message (Rasa's metadata): not history, which never shows it.
        conversation.setdefault("sent", []).append({"text": text, "metadata": data.get("metadata")})
        if conversation["state"] in ("survey", "survey_comment", "transcript", "transcript_email"):
            await after_chat(session_id, conversation, text)
        elif text == "/end_chat" and conversation["state"] != "bot":
            conversation["state"] = "bot"
            await system(session_id, "chat_closed", "The chat has ended.")
            await system(session_id, "bot_resumed", "You're back with Nori. How else can I help?")
        elif conversation["state"] == "leave_message":
            conversation["state"] = "bot"
            await system(session_id, "message_left", ROUTING["message_left"])
        elif conversation["state"] != "bot":
            return  # relayed to the agent
        elif text == "/talk_to_agent" and conversation.get("route") in ("closed", "no_agents"):
            # Out of hours / nobody available (POST /test/route): say so, then offer the alternatives.
            await system(session_id, "unavailable", ROUTING[conversation["route"]], reason=conversation["route"])
            await offer(session_id)
        elif text == "/talk_to_agent" or text.startswith("/talk_to_agent{"):
            conversation["state"] = "waiting"
            limits = conversation.get("attachments")
            offered = {"max_bytes": limits["max_bytes"], "types": limits["types"], "upload_path": UPLOAD_PATH} if limits else None
            await system(session_id, "connecting", "Connecting you to an agent...", attachments=offered)
            if conversation.get("route") == "queue":
                await system(
                    session_id, "queue", "You are number 3 in line. The wait is about 4 min.", position=3, eta_seconds=240
                )
        elif text == "/handoff_leave_message":
            conversation["state"] = "leave_message"
            await system(session_id, "leave_message", ROUTING["leave_message"])
        elif text == "/handoff_stay":
            await system(session_id, "stay", ROUTING["stay"])
        elif text.lower() in ("hi", "hello", "/greet"):
            await say(session_id, GREETING)
        elif text in ANSWERS:
            await say(session_id, {"text": ANSWERS[text]})
        else:
            await say(session_id, {"text": f"You said: {text}"})
        store.save()

    @sio.on("visitor_typing")
    async def visitor_typing(sid: str, data: Dict[str, Any]) -> None:
        store.session(data.get("session_id", ""))["typing"].append(bool(data.get("typing")))
        store.save()

    @app.get("/health")
    async def health(_: Request):
        return response.json({"status": "ok"})

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        connects.append(auth)  # the handshake's `auth` (a page's bearer token)

    @app.route("/history/<session_id>", methods=["GET", "OPTIONS"])
    async def history(request: Request, session_id: str):
        if request.method == "OPTIONS":
            return response.empty(headers=PREFLIGHT)
        if request.headers.get("Authorization"):
            store.session(session_id).setdefault("history_auth", []).append(request.headers["Authorization"])
            store.save()
        if session_id not in store.data:
            return response.json({"messages": []}, status=404, headers={"Access-Control-Allow-Origin": "*"})
        return response.json(
            {"session_id": session_id, "messages": store.data[session_id]["messages"]},
            headers={"Access-Control-Allow-Origin": "*"},
        )

    # The agent side, driven by tests.
    @app.post("/test/push")
    async def push(request: Request):
        """{session_id, payload[, follow_up]}: an agent/system/bot payload delivered live and recorded.

        `not_accepted` is followed by the offer and `bot_resumed` unless follow_up is false.
        """
        body = request.json
        payload = body["payload"]
        conversation = store.session(body["session_id"])
        if payload.get("sender") == "agent":
            conversation["state"] = "agent"
            payload = {
                "message_sid": "IM" + uuid.uuid4().hex,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **payload,
            }
        elif payload.get("event") == "agent_joined":
            conversation["state"] = "agent"
        elif payload.get("event") in ("connecting", "queue", "transferring", "agent_left"):
            conversation["state"] = "waiting"
        elif payload.get("event") in ("not_accepted", "unavailable", "chat_closed", "visitor_left", "bot_resumed"):
            conversation["state"] = "bot"
        await say(body["session_id"], payload)
        if payload.get("event") == "not_accepted" and body.get("follow_up", True):  # as the plugin: the offer, the bot back
            await offer(body["session_id"])
            await system(body["session_id"], "bot_resumed", "You're back with Nori. How else can I help?")
        return response.json({"ok": True})

    @app.post("/test/route")
    async def route(request: Request):
        """{session_id, route}: how the next /talk_to_agent goes: "closed", "no_agents", "queue" (else connecting)."""
        body = request.json
        store.session(body["session_id"])["route"] = body.get("route")
        store.save()
        return response.json({"ok": True})

    @app.post("/test/agent_typing")
    async def agent_typing(request: Request):
        body = request.json
        await sio.emit(
            "agent_typing",
            {"typing": body.get("typing", True), "agent": {"name": body.get("agent", "Alex")}},
            room=body["session_id"],
        )
        return response.json({"ok": True})

    @app.route(f"{UPLOAD_PATH}/<session_id>", methods=["POST", "OPTIONS"])
    async def upload(request: Request, session_id: str):
        """The plugin's upload route as design-15.md specifies it (one multipart `file`, `relay_id`)."""
        if request.method == "OPTIONS":  # a page with a bearer token asks first
            return response.empty(headers=PREFLIGHT)
        if session_id in holds:  # POST /test/hold_uploads: the test looks at the upload while it is on its way
            await holds[session_id].wait()
        if session_id not in store.data:
            return upload_error(404, "unknown_conversation", "This conversation could not be found.")
        conversation = store.session(session_id)
        attempt: Dict[str, Any] = {"authorization": request.headers.get("Authorization"), "relay_id": None}
        conversation.setdefault("uploads", []).append(attempt)
        store.save()
        limits = conversation.get("attachments") or {}
        if conversation["state"] not in ("waiting", "agent") or not limits:
            attempt["code"] = "not_handed_off"
            return upload_error(409, "not_handed_off", "There is no agent chat to send the file to.")
        max_bytes = limits.get("server_max_bytes") or limits["max_bytes"]
        if int(request.headers.get("Content-Length") or 0) > max_bytes + 64 * 1024:
            attempt["code"] = "too_large"
            return upload_error(413, "too_large", f"The file is larger than {max_bytes // (1024 * 1024)} MB.")
        files = request.files.getlist("file") if request.files else []
        relay_id = (request.form.get("relay_id") if request.form else None) or ""
        attempt["relay_id"] = relay_id
        failure = None
        if not files:
            failure = (400, "no_file", "No file was sent.")
        elif len(files) > 1:
            failure = (400, "several_files", "Send one file per message.")
        elif not RELAY_ID.match(relay_id):
            failure = (400, "bad_relay_id", "The upload needs a relay id.")
        if failure:
            attempt["code"] = failure[1]
            return upload_error(*failure)
        file = files[0]
        content_type = (file.type or "").split(";")[0].strip().lower()
        filename = file.name.strip() or "attachment"  # the plugin's display name
        attempt.update(filename=filename, content_type=content_type, size=len(file.body))
        if len(file.body) > max_bytes:
            failure = (413, "too_large", f"The file is larger than {max_bytes} bytes.")
        elif content_type not in limits["types"] or not sniffed_ok(content_type, file.body):
            failure = (415, "type_not_allowed", "This file's content is not an allowed type (JPEG, PNG, GIF, PDF or text).")
        elif not file.body:
            failure = (400, "empty", "The file is empty.")
        failing = conversation["failures"].pop(0) if conversation.get("failures") else None  # POST /test/upload_failures
        if failing == 502:  # Twilio failing before the file reached the chat
            failure = (502, "flex_failed", FLEX_FAILED)
        if failure:
            attempt["code"] = failure[1]
            store.save()
            return upload_error(*failure)
        landed = conversation.setdefault("landed", {})
        if relay_id not in landed:  # else a retry of a file that already went: the same turn, posted once
            media_sid = "ME" + uuid.uuid4().hex
            store.blobs[media_sid] = {"content_type": content_type, "body": base64.b64encode(file.body).decode()}
            attachment = {
                "url": f"{request.scheme}://{request.host}{UPLOAD_PATH}/file/{media_sid}",
                "filename": filename,
                "content_type": content_type,
                "size": len(file.body),
                "kind": "image" if content_type.startswith("image/") else "file",
            }
            turn = {"sender": "visitor", "text": filename, "metadata": {"handoff": {"attachment": attachment}}}
            store.record(session_id, turn)
            landed[relay_id] = len(conversation["messages"]) - 1
        if failing == "502_after_landing":  # the file reached the chat, the answer did not (a timeout)
            attempt["code"] = "flex_failed"
            store.save()
            return upload_error(502, "flex_failed", FLEX_FAILED)
        attempt["code"] = "created"
        store.save()
        return response.json({"message": conversation["messages"][landed[relay_id]]}, status=201, headers=CORS)

    @app.get(f"{UPLOAD_PATH}/file/<token>")
    async def media_file(_: Request, token: str):
        """Like the plugin: a file's link redirects to a short-lived URL (here, the fake's own blob route)."""
        if token not in store.blobs:
            return response.json({"error": "not found"}, status=404)
        return response.redirect(f"/test/blobs/{token}", headers={"Cache-Control": "no-store"})

    @app.get("/test/blobs/<token>")
    async def blob(_: Request, token: str):
        found = store.blobs.get(token)
        if found is None:
            return response.json({"error": "not found"}, status=404)
        return response.raw(base64.b64decode(found["body"]), content_type=found["content_type"])

    @app.post("/test/media")
    async def add_media(request: Request):
        """{filename, content_type, base64}: a file an agent sends; answers its link ({url, size})."""
        body = request.json
        token = "ME" + uuid.uuid4().hex
        store.blobs[token] = {"content_type": body["content_type"], "body": body["base64"]}
        store.save()
        return response.json({"url": f"{request.scheme}://{request.host}{UPLOAD_PATH}/file/{token}"})

    @app.post("/test/attachments")
    async def attachments(request: Request):
        """{session_id, max_bytes, types[, server_max_bytes]}: the next agent chat offers files (null: none)."""
        body = request.json
        limits = body.get("limits")
        if limits is not None:
            limits = {"max_bytes": 16 * 1024 * 1024, "types": DEFAULT_TYPES, **limits}
        store.session(body["session_id"])["attachments"] = limits
        store.save()
        return response.json({"ok": True})

    @app.post("/test/upload_failures")
    async def upload_failures(request: Request):
        """{session_id, statuses}: how the next uploads fail: 502 (Twilio failed, nothing posted) or
        "502_after_landing" (the file was posted, then the answer failed: a retry must not post it again)."""
        body = request.json
        store.session(body["session_id"])["failures"] = list(body.get("statuses") or [])
        store.save()
        return response.json({"ok": True})

    @app.post("/test/hold_uploads")
    async def hold_uploads(request: Request):
        """{session_id, hold}: uploads wait (hold true) until released (hold false)."""
        body = request.json
        if body.get("hold"):
            holds[body["session_id"]] = asyncio.Event()
        elif body["session_id"] in holds:
            holds.pop(body["session_id"]).set()
        return response.json({"ok": True})

    @app.get("/test/page")
    async def page(request: Request):
        """?widget=<widget.js URL>&config=<JSON>: a page that starts the widget from JavaScript with that config.

        Served here (a real server on the loopback address) because Chromium keeps a page that
        Playwright makes up from reaching 127.0.0.1 (private network access).
        """
        config = json.dumps(json.loads(request.args.get("config", "{}"))).replace("</", "<\\/")
        widget = html.escape(request.args.get("widget", ""), quote=True)
        return response.html(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Northwind Outfitters</title></head>'
            f"<body><p>Northwind Outfitters</p><script>window.HandoffWidgetConfig = {config};</script>"
            f'<script src="{widget}" defer></script></body></html>'
        )

    @app.get("/test/connects")
    async def connect_auth(_: Request):
        """The `auth` of every socket.io handshake so far."""
        return response.json({"auth": connects})

    @app.post("/test/state")
    async def set_state(request: Request):
        """{session_id, state}: the server's view changes without a word to the widget (a lost notice)."""
        body = request.json
        store.session(body["session_id"])["state"] = body["state"]
        store.save()
        return response.json({"ok": True})

    @app.post("/test/after_chat")
    async def start_after_chat(request: Request):
        """{session_id, agent, survey, transcript, transcript_result}: the agent ends the chat.

        The survey and/or the transcript offer follow; the visitor's answers go through `after_chat`.
        """
        body = request.json
        session_id = body["session_id"]
        conversation = store.session(session_id)
        conversation["after_chat"] = {k: body.get(k) for k in ("survey", "transcript", "transcript_result") if k in body}
        agent = body.get("agent", "Alice")
        conversation["state"] = "bot"
        await system(session_id, "chat_closed", f"{agent} has ended the chat.")
        if body.get("survey"):
            conversation["state"] = "survey"
            await system(session_id, "survey", AFTER_CHAT["survey"], quick_replies=RATING_BUTTONS)
        elif body.get("transcript"):
            conversation["state"] = "transcript"
            await system(session_id, "transcript_offer", AFTER_CHAT["transcript_offer"], quick_replies=TRANSCRIPT_BUTTONS)
        store.save()
        return response.json({"ok": True})

    @app.get("/test/sessions/<session_id>")
    async def session_state(_: Request, session_id: str):
        return response.json(store.data.get(session_id) or {})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    create_app(args.state).run(host="127.0.0.1", port=args.port, access_log=False, motd=False)


if __name__ == "__main__":
    main()
