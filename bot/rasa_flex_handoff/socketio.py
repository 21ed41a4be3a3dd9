"""Socket.io channel with Flex handoff: Rasa's socket.io protocol, plus agent and system turns.

Same events and payload shapes as Rasa's `socketio` channel (`session_request`/`session_confirm`,
`user_uttered`, `bot_uttered` with `{text}`, `{text, quick_replies}`, `{attachment}`), so Rasa
widgets keep working. While a conversation is handed off, visitor messages go to the Flex
agent; the agent's messages arrive as `{"text": "Alice: ...", "metadata": {"handoff": {...}}}`
and notices as `{"text": ..., "metadata": {"handoff": {"sender": "system", "event": ...}}}`
(bot/rasa_flex_handoff/payloads.py). With `REDIS_URL` set, emits reach visitors on any replica.
`GET /webhooks/handoff_socketio/history/<session_id>` returns the conversation for the widget.
With the Flex sandbox, the agent's typing reaches the visitor as `agent_typing` (bot/rasa_flex_handoff/agent_typing.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Optional

import rasa.core.channels.channel
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint
from rasa.core.channels.socketio import SocketIOOutput as RasaSocketIOOutput
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from rasa_flex_handoff import payloads, sanic_compat, store_outage
from rasa_flex_handoff.agent_typing import AgentTypingFeed, join_channel_room
from rasa_flex_handoff.history_access import may_read_history, usable_sender_id
from rasa_flex_handoff.payloads import as_socketio
from rasa_flex_handoff.relay import Handoff, visitor_message
from rasa_flex_handoff.socket_manager import LocalFirstRedisManager
from rasa_flex_handoff.startup import channel_settings

# Rasa's server is Sanic 21.12: its websockets need this on Python 3.11 (see bot/rasa_flex_handoff/sanic_compat.py).
sanic_compat.apply()

logger = logging.getLogger(__name__)


class SocketIOOutput(RasaSocketIOOutput):
    """Rasa's socket.io output, plus handoff payloads (token, agent and system turns).

    It emits in the channel's socket.io `namespace`: Rasa 3.6's own output always emits in the
    default one, so a widget on a custom namespace never hears the bot.
    """

    def __init__(
        self, sio: AsyncServer, bot_message_evt: str, namespace: Optional[str] = None, handoff: Optional[Handoff] = None
    ) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace
        self.handoff = handoff  # told what the visitor is shown, to keep a waiting visitor informed

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=socket_id, namespace=self.namespace)

    @classmethod
    def name(cls) -> str:
        return "handoff_socketio"

    async def send_payloads(self, recipient_id: str, payloads: List[Dict[str, Any]]) -> None:
        """Emit ready-made payloads to the visitor's room, in order."""
        for payload in payloads:
            await self._send_message(recipient_id, as_socketio(payload))

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Handoff turns as one text payload with `metadata.handoff`; every other turn exactly as Rasa sends it."""
        if not payloads.is_handoff_message(message):
            await super().send_response(recipient_id, message)
            return
        shown = payloads.from_bot_message(message, "quick_replies")
        await self._send_message(recipient_id, shown)
        if self.handoff is not None:
            self.handoff.starts_waiting(recipient_id, [shown])
        handoff = payloads.handoff_of(message)
        if handoff.get("event") == "connecting" and handoff.get("channel_sid"):
            # This replica handled the visitor's request, so it holds their sockets.
            join_channel_room(self.sio, recipient_id, handoff["channel_sid"], self.namespace)


def is_typing(data: Dict[str, Any]) -> bool:
    """A `visitor_typing` start signal (older clients send no flag); a stop must not show "typing"."""
    return data.get("typing", True) is True


class _AppBlueprint(SocketBlueprint):
    """Rasa's socket blueprint that also remembers the app it is registered on."""

    def register(self, app: Sanic, options: Dict[str, Any]) -> None:
        self.ctx.app = app
        super().register(app, options)


class SocketIOInput(InputChannel):
    """A socket.io input channel that relays handed-off conversations to Flex."""

    @classmethod
    def name(cls) -> str:
        return "handoff_socketio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(
            credentials.get("user_message_evt", "user_uttered"),
            credentials.get("bot_message_evt", "bot_uttered"),
            credentials.get("namespace"),
            credentials.get("session_persistence", False),
            credentials.get("socketio_path", "/socket.io"),
            credentials.get("jwt_key"),
            credentials.get("jwt_method", "HS256"),
            credentials.get("metadata_key", "metadata"),
            credentials.get("cors_allowed_origins", []),
            handoff=Handoff(channel_settings(credentials)),
        )

    def __init__(
        self,
        user_message_evt: str = "user_uttered",
        bot_message_evt: str = "bot_uttered",
        namespace: Optional[str] = None,
        session_persistence: bool = False,
        socketio_path: Optional[str] = "/socket.io",
        jwt_key: Optional[str] = None,
        jwt_method: Optional[str] = "HS256",
        metadata_key: Optional[str] = "metadata",
        cors_allowed_origins: Any = None,
        handoff: Optional[Handoff] = None,
    ) -> None:
        self.bot_message_evt = bot_message_evt
        self.session_persistence = session_persistence
        self.user_message_evt = user_message_evt
        self.namespace = namespace
        self.socketio_path = socketio_path
        self.sio: Optional[AsyncServer] = None
        self.metadata_key = metadata_key
        self.jwt_key = jwt_key
        self.jwt_algorithm = jwt_method
        # [] as in Rasa: no CORS check by python-socketio (same-origin and widgets on other sites).
        self.cors_allowed_origins = cors_allowed_origins if cors_allowed_origins is not None else []
        self.handoff = handoff or Handoff()

    def visitor(self, metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Who the visitor is, for the agent: `name`, `email`, `customer_id` (all optional).

        Override this to pass what your page knows about a logged-in visitor from the message's
        metadata. The plugin signs what this returns into the message, so a visitor of another
        channel cannot claim to be someone else; it is shown to the agent as sent, so return only
        what your page vouches for. The default says nothing.
        """
        return None

    def get_output_channel(self) -> Optional[OutputChannel]:
        """Output for messages Rasa sends outside a visitor turn (e.g. the /execute API)."""
        if self.sio is None:
            return None
        return SocketIOOutput(self.sio, self.bot_message_evt, self.namespace, self.handoff)

    def _server(self) -> AsyncServer:
        manager = None
        if self.handoff.settings.redis_url:
            # Emits go through Redis, so the replica holding the visitor's socket delivers them
            # (this replica's own sockets directly: they must not depend on Redis being up).
            manager = LocalFirstRedisManager(self.handoff.settings.redis_url)
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=self.cors_allowed_origins, client_manager=manager)
        sanic_compat.answer_closed_websockets(sio.eio)
        return sio

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Socket.io endpoint, health check and Flex webhook route."""
        sio = self._server()
        socketio_webhook = _AppBlueprint(sio, self.socketio_path, f"{self.name()}_webhook", __name__)
        self.sio = sio
        output = SocketIOOutput(sio, self.bot_message_evt, self.namespace, self.handoff)

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        async def deliver(sender_id: str, payloads: List[Dict[str, Any]]) -> None:
            await output.send_payloads(sender_id, payloads)

        async def catch_up(agent: Any, session_id: str) -> bool:
            """Fetch what Flex could not deliver meanwhile and emit it to the session's room.

            Best effort: when the conversation's lock cannot be had (the lock store restarting, or a
            killed replica's ticket outliving this one's), the reconnect and the history go on without
            it, and the next reconnect or history load catches up.
            """
            try:
                payloads = await self.handoff.catch_up(agent, session_id, output.name())
            except store_outage.UNREACHABLE as e:
                logger.warning("catch-up of %s skipped: %s", session_id, store_outage.describe(e))
                return False
            if payloads:
                await deliver(session_id, payloads)
            return bool(payloads)

        @socketio_webhook.route("/history/<session_id>", methods=["GET"], name=f"{self.name()}_history")
        async def history(request: Request, session_id: str) -> HTTPResponse:
            """The session's turns for the widget (reload, reconnect): the session id is the key, plus a JWT with `jwt_key`."""
            agent = request.app.ctx.agent
            headers = {"Cache-Control": "no-store"}
            if not may_read_history(request, session_id, self.jwt_key, self.jwt_algorithm):
                return response.json({"error": "a bearer token for this conversation is required"}, status=401, headers=headers)
            usable = usable_sender_id(session_id) is not None  # else no tracker store could hold it
            found = await self.handoff.history(agent, session_id, self.name(), "quick_replies") if usable else None
            if found is None:
                return response.json({"session_id": session_id, "messages": []}, status=404, headers=headers)
            if await catch_up(agent, session_id):
                found = await self.handoff.history(agent, session_id, self.name(), "quick_replies") or found
            return response.json({"session_id": session_id, "messages": found.messages}, headers=headers)

        waiting_room = self.handoff.open_waiting_room(lambda: socketio_webhook.ctx.app.ctx.agent, deliver, output.name())
        self.handoff.add_webhook_route(socketio_webhook, deliver, output.name())
        self.handoff.add_media_routes(
            socketio_webhook,
            self.url_prefix(),
            self.name(),
            output.name(),
            "quick_replies",
            deliver,
            lambda request, session_id: may_read_history(request, session_id, self.jwt_key, self.jwt_algorithm),
        )
        self.handoff.add_lifecycle(socketio_webhook)
        if self.handoff.settings.uses_sandbox:
            typing_feed = AgentTypingFeed(sio, self.handoff.settings.api_base or "", self.namespace)

            @socketio_webhook.listener("after_server_start")
            async def start_typing_feed(_app: Any, _loop: Any) -> None:
                typing_feed.start()

            @socketio_webhook.listener("before_server_stop")
            async def stop_typing_feed(_app: Any, _loop: Any) -> None:
                await typing_feed.stop()

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: Any = None, auth: Any = None, *_: Any) -> bool:
            # Defaults and *_: a client can also emit an ordinary event named "connect", with any arguments.
            if not self.jwt_key:
                return True
            token = auth.get("token") if isinstance(auth, dict) else None
            payload = None
            if token:
                payload = rasa.core.channels.channel.decode_bearer_token(token, self.jwt_key, self.jwt_algorithm)
            return bool(payload)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any = None, *_: Any) -> None:
            # Any payload a client sends (none, not an object, extra arguments) must not fail the handler.
            data = dict(data) if isinstance(data, dict) else {}
            if not data.get("session_id"):
                data["session_id"] = uuid.uuid4().hex
            elif usable_sender_id(data["session_id"]) is None:
                logger.warning("socket.io session_request with an unusable session_id ignored")
                return
            if self.session_persistence:
                # python-socketio 5.8: enter_room is synchronous (5.10+ would need await).
                sio.enter_room(sid, data["session_id"], namespace=self.namespace)
            await sio.emit("session_confirm", data["session_id"], room=sid, namespace=self.namespace)
            if self.session_persistence:
                agent = socketio_webhook.ctx.app.ctx.agent
                chat = await self.handoff.chat_of(agent, data["session_id"])
                if chat is not None:
                    join_channel_room(sio, data["session_id"], chat.channel_sid, self.namespace)
                    await catch_up(agent, data["session_id"])
                    waiting_room.enter(data["session_id"])  # the first look leaves it unless the visitor waits

        def sender_of(sid: str, data: Dict[str, Any]) -> Optional[str]:
            if not self.session_persistence:
                return sid
            session_id = usable_sender_id(data.get("session_id"))
            if session_id is None:
                logger.warning("socket.io message without a usable session_id ignored (send session_request first)")
            return session_id

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any = None, *_: Any) -> None:
            if not isinstance(data, dict):
                return
            sender_id = sender_of(sid, data)
            if sender_id is None:
                return
            if not isinstance(data.get("message"), str):  # Rasa's NLU fails on anything else, missing included
                logger.warning("socket.io message whose `message` is not text ignored")
                return
            metadata = data.get(self.metadata_key or "metadata") or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            try:
                json.dumps(metadata)
            except (TypeError, ValueError):  # binary attachments: no tracker store could save the turn
                metadata = {}
            message = visitor_message(
                self,
                data.get("message", ""),
                output,
                sender_id,
                metadata,
                self.handoff.settings.signing_secret,
                self.visitor(metadata if isinstance(metadata, dict) else {}),
            )
            agent = socketio_webhook.ctx.app.ctx.agent
            try:
                relay = await self.handoff.relay_visitor_message(agent, message)
            except store_outage.UNREACHABLE:  # the lock store is restarting: the visitor sends it again
                await output.send_payloads(
                    sender_id, await store_outage.relay_failed(agent, self.handoff.trackers.read, sender_id, output.name())
                )
                return
            if relay.notices:
                await output.send_payloads(sender_id, relay.notices)
            if relay.to_bot:
                try:
                    await on_new_message(message)
                except store_outage.UNREACHABLE as e:  # Rasa's turn needs the same stores: one line, no traceback
                    logger.warning("socket.io turn not answered, stores unreachable (%s)", store_outage.describe(e))

        @sio.on("visitor_typing", namespace=self.namespace)
        async def visitor_typing(sid: str, data: Any = None, *_: Any) -> None:
            data = data if isinstance(data, dict) else {}
            sender_id = sender_of(sid, data)
            if sender_id is not None and is_typing(data):
                await self.handoff.forward_typing(socketio_webhook.ctx.app.ctx.agent, sender_id)

        return socketio_webhook
