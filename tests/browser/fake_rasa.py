"""A stand-in for Rasa's socket.io channel plus the handoff connector, for widget browser tests.

It speaks the same protocol as the real stack (session_request/session_confirm, user_uttered,
bot_uttered with bot/agent/system payloads, visitor_typing/agent_typing, a history endpoint) and
lets a test play the agent side through /test/* endpoints. State is kept in a JSON file so a
restarted server still knows the conversations (like Rasa's tracker store).

    python -m tests.browser.fake_rasa --port 5099 --state /tmp/fake-rasa.json
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

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


class Conversations:
    """Per-session messages (visitor and bot side), handoff state and visitor typing signals."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.data: Dict[str, Dict[str, Any]] = {}
        if path and path.is_file():
            self.data = json.loads(path.read_text())

    def session(self, session_id: str) -> Dict[str, Any]:
        return self.data.setdefault(session_id, {"messages": [], "state": "bot", "typing": [], "requests": 0})

    def record(self, session_id: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        entry = {"timestamp": time.time(), **payload}
        self.session(session_id)["messages"].append(entry)
        self.save()
        return entry

    def save(self) -> None:
        if self.path:
            self.path.write_text(json.dumps(self.data))


def on_the_wire(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A test's {sender, text, agent, event, message_sid, timestamp} as the connector sends it."""
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
    return {"text": text, **buttons, "metadata": {"handoff": handoff}}


def create_app(state_path: Optional[Path]) -> Sanic:
    sanic_compat.apply()
    app = Sanic("fake_rasa")
    sio = socketio.AsyncServer(async_mode="sanic", cors_allowed_origins="*")
    sio.attach(app, "/socket.io")
    store = Conversations(state_path)

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
        if text == "/end_chat" and conversation["state"] != "bot":
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
        elif text == "/talk_to_agent":
            conversation["state"] = "waiting"
            await system(session_id, "connecting", "Connecting you to an agent...")
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

    @app.get("/history/<session_id>")
    async def history(_: Request, session_id: str):
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
