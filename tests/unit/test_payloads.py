"""What front ends receive, pinned to what Rasa's own `socketio` and `rest` outputs send.

Widgets written for Rasa render the shapes its stock outputs emit and tolerate `metadata`;
anything else they drop silently. So the shapes allowed here are computed by running Rasa's
stock output classes, not written down by hand.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, FrozenSet, List, Mapping, Set

import pytest
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.channels.socketio import SocketIOOutput as StockSocketIOOutput
from rasa.shared.core.events import BotUttered, UserUttered

from rasa_flex_handoff import attachments, handoff, payloads
from rasa_flex_handoff.rest import RestOutput
from rasa_flex_handoff.socketio import SocketIOOutput
from rasa_flex_handoff.webhooks import webhook_params

BUTTONS = [{"title": "Talk to an agent", "payload": "/talk_to_agent"}]


class RecordingSio:
    """Stands in for python-socketio's server: records what would be emitted."""

    def __init__(self) -> None:
        self.emitted: List[Dict[str, Any]] = []
        self.manager = SimpleNamespace(rooms={})  # no sockets connected

    async def emit(self, event: str, data: Any = None, room: Any = None, **kwargs: Any) -> None:
        self.emitted.append(data)

    def enter_room(self, *args: Any, **kwargs: Any) -> None:
        pass


def bot_messages() -> List[Dict[str, Any]]:
    """Ordinary bot turns as Rasa hands them to an output channel (`BotUttered.message()`)."""
    return [
        BotUttered("Hello!\n\nHow can I help?").message(),
        BotUttered("Pick one", data={"buttons": BUTTONS}).message(),
        BotUttered(None, data={"image": "https://example.com/a.png"}).message(),
        BotUttered(None, data={"attachment": {"type": "file", "payload": {"src": "https://example.com/a.pdf"}}}).message(),
    ]


def handoff_messages() -> List[Dict[str, Any]]:
    """Agent and system turns as the connector records them and the actions utter them."""
    details = {"event": "connecting", "channel_sid": "CH1", "identity": "visitor_1", "token": "jwt", "ttl": 600}
    return [
        BotUttered(
            handoff.agent_text("Alice", "Hi, I'm Alice"),
            metadata=handoff.handoff_metadata("agent", agent="Alice", body="Hi, I'm Alice", message_sid="IM1", timestamp="t"),
        ).message(),
        BotUttered(
            "Alice joined the chat.",
            metadata=handoff.handoff_metadata(
                "system", event="agent_joined", agent="Alice", channel_sid="CH1", participant_sid="MB1"
            ),
        ).message(),
        BotUttered(
            "Connecting you...",
            data={"custom": {"handoff": details}},
            metadata=handoff.handoff_metadata("system", event="connecting", channel_sid="CH1"),
        ).message(),
        BotUttered("The agent has ended the chat.", metadata=handoff.handoff_metadata("system", event="chat_closed")).message(),
    ]


async def stock_socketio_shapes() -> Set[FrozenSet[str]]:
    sio = RecordingSio()
    output = StockSocketIOOutput(sio, "bot_uttered")  # type: ignore[arg-type]
    for message in bot_messages():
        await output.send_response("room", dict(message))
    return {frozenset(p) for p in sio.emitted}


async def test_stock_shapes_are_what_rasa_sends() -> None:
    # The reference itself: if Rasa's output changes, this says so first.
    assert await stock_socketio_shapes() == {frozenset({"text"}), frozenset({"text", "quick_replies"}), frozenset({"attachment"})}


async def test_ordinary_bot_turns_go_out_exactly_as_rasa_sends_them() -> None:
    ours, stock = RecordingSio(), RecordingSio()
    for message in bot_messages():
        await SocketIOOutput(ours, "bot_uttered").send_response("room", dict(message))  # type: ignore[arg-type]
        await StockSocketIOOutput(stock, "bot_uttered").send_response("room", dict(message))  # type: ignore[arg-type]
    assert ours.emitted == stock.emitted


async def test_handoff_turns_are_stock_text_payloads_with_metadata() -> None:
    allowed = await stock_socketio_shapes()
    sio = RecordingSio()
    for message in handoff_messages():
        await SocketIOOutput(sio, "bot_uttered").send_response("room", dict(message))  # type: ignore[arg-type]
    assert len(sio.emitted) == len(handoff_messages())
    for payload in sio.emitted:
        assert frozenset(payload) - {"metadata"} in allowed, payload
        assert payload["text"].strip(), payload  # a widget shows nothing for an empty text
        assert set(payload["metadata"]) == {"handoff"}
    agent, joined, connecting, closed = (p["metadata"]["handoff"] for p in sio.emitted)
    assert sio.emitted[0]["text"] == "Alice: Hi, I'm Alice"
    assert agent == {
        "sender": "agent",
        "agent": {"name": "Alice"},
        "body": "Hi, I'm Alice",
        "message_sid": "IM1",
        "timestamp": "t",
    }
    assert joined == {"sender": "system", "event": "agent_joined", "agent": {"name": "Alice"}}  # no routing internals
    assert connecting["event"] == "connecting" and connecting["chat"]["token"] == "jwt"
    assert closed == {"sender": "system", "event": "chat_closed"}


async def test_rest_handoff_turns_are_stock_rest_messages_with_metadata() -> None:
    stock, ours = CollectingOutputChannel(), RestOutput()
    for message in bot_messages():
        await stock.send_response("v", dict(message))
        await ours.send_response("v", dict(message))
    assert ours.messages == stock.messages
    allowed = {frozenset(m) for m in stock.messages}
    for message in handoff_messages():
        await ours.send_response("v", dict(message))
    for payload in ours.messages[len(stock.messages) :]:
        assert frozenset(payload) - {"metadata"} in allowed and payload["text"].strip(), payload


def test_history_never_returns_the_access_token_or_custom_json() -> None:
    events = [
        BotUttered(m.get("text"), data={"custom": m.get("custom")}, metadata={"handoff": m["handoff"]}).as_dict()
        for m in handoff_messages()
    ]
    events.append(BotUttered("here", data={"custom": {"secret": "x"}}).as_dict())
    entries = payloads.history(events, "quick_replies")
    assert "jwt" not in repr(entries) and "secret" not in repr(entries)
    assert [e["sender"] for e in entries] == ["agent", "system", "system", "system", "bot"]
    assert all(e["text"].strip() for e in entries)


def test_history_shows_a_replayed_visitor_turn_once() -> None:
    events = [
        {"event": "user", "text": "opening hours?", "metadata": {}},
        {
            "event": "bot",
            "text": "The agent has ended the chat.",
            "metadata": {"handoff": {"role": "system", "event": "chat_closed"}},
        },
        {"event": "user", "text": "opening hours?", "metadata": {"handoff": {"replayed": True}}},
        {"event": "bot", "text": "We are open 9-5."},
    ]
    assert [(e["sender"], e["text"]) for e in payloads.history(events, "buttons")] == [
        ("visitor", "opening hours?"),
        ("system", "The agent has ended the chat."),
        ("bot", "We are open 9-5."),
    ]


def test_connectors_declare_capabilities_clients_cannot_forge() -> None:
    secret, sender = "handoff-secret", "visitor-1"
    forged = {"handoff_connector": {"webhook_path": "/webhooks/evil/flex", "access_token": True}, "page": "shop"}
    stamped = handoff.declare_capabilities(forged, "/webhooks/handoff_rest/flex", sender, secret)
    assert stamped["page"] == "shop"
    assert handoff.capabilities_of(stamped, sender, secret) == handoff.ChannelCapabilities("/webhooks/handoff_rest/flex", False)
    asked = handoff.declare_capabilities({"handoff_access_token": True}, "/webhooks/x/flex", sender, secret)
    assert handoff.capabilities_of(asked, sender, secret) == handoff.ChannelCapabilities("/webhooks/x/flex", True)
    # Rasa's own channels pass client metadata through untouched: unsigned, re-signed or replayed claims count for nothing.
    none = handoff.ChannelCapabilities()
    assert handoff.capabilities_of(None, sender, secret) == none
    assert handoff.capabilities_of(forged, sender, secret) == none
    assert handoff.capabilities_of({"handoff_connector": "yes"}, sender, secret) == none
    tampered = {"handoff_connector": {**asked["handoff_connector"], "webhook_path": "/webhooks/evil/flex"}}
    assert handoff.capabilities_of(tampered, sender, secret) == none
    assert handoff.capabilities_of(asked, "visitor-2", secret) == none  # another visitor's stamp
    assert handoff.capabilities_of(asked, sender, "other-secret") == none


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            b"EventType=onMessageAdded&ParticipantSid=&Body=",
            {"EventType": ["onMessageAdded"], "ParticipantSid": [""], "Body": [""]},
        ),
        (b"Media=%5B%5D&Body=hi+there", {"Media": ["[]"], "Body": ["hi there"]}),
        (b"", {}),
    ],
)
def test_webhook_params_keep_blank_values(body: bytes, expected: Dict[str, List[str]]) -> None:
    params = webhook_params(body)
    assert params is not None and dict(params) == expected


@pytest.mark.parametrize("body", [b"\xff\xfe", b"no-equals-sign"])
def test_webhook_params_reject_what_is_not_a_form(body: bytes) -> None:
    assert webhook_params(body) is None


# --- files ------------------------------------------------------------------------------------

PHOTO = attachments.recorded("photo.png", "image/png", 3, "ME1", "IS1")
INVOICE = attachments.recorded("invoice.pdf", "application/pdf", 1234, "ME2", "IS1")


def link(recorded: Mapping[str, Any]) -> str:
    """Stands in for the media-file route's link (attachments.file_url)."""
    return f"https://bot.example.com/webhooks/handoff_socketio/media/file/token-{recorded['media_sid']}"


def agent_file(recorded: Dict[str, Any], sid: str = "IM9") -> Dict[str, Any]:
    name = recorded["filename"]
    meta = handoff.handoff_metadata("agent", agent="alice", body=name, message_sid=sid, timestamp="t", attachment=recorded)
    return BotUttered(handoff.agent_text("alice", name), metadata=meta).as_dict()


def test_an_agents_image_is_its_name_as_text_with_the_file_and_rasas_image_shape() -> None:
    url = link(PHOTO)
    shown = {"url": url, "filename": "photo.png", "content_type": "image/png", "size": 3, "kind": "image"}
    handoff_meta = {"sender": "agent", "agent": {"name": "alice"}, "body": "photo.png", "message_sid": "IM9", "timestamp": "t"}
    rest = payloads.from_bot_event(agent_file(PHOTO), "buttons", link)
    assert rest == {"text": "alice: photo.png", "image": url, "metadata": {"handoff": {**handoff_meta, "attachment": shown}}}
    socketio = payloads.as_socketio(rest)  # what the socket.io output emits live
    assert socketio == {
        "text": "alice: photo.png",
        "attachment": {"type": "image", "payload": {"src": url}},
        "metadata": {"handoff": {**handoff_meta, "attachment": shown}},
    }
    assert "media_sid" not in repr(rest) and "IS1" not in repr(rest)  # where Flex keeps it stays on the server
    # History is the same function: the entry is the live payload plus sender, timestamp and index.
    [entry] = payloads.history([agent_file(PHOTO)], "quick_replies", link=link)
    assert {k: v for k, v in entry.items() if k not in ("sender", "timestamp", "index")} == socketio
    assert entry["sender"] == "agent"
    [rest_entry] = payloads.history([agent_file(PHOTO)], "buttons", link=link)
    assert rest_entry["image"] == url and "attachment" not in rest_entry


def test_any_other_file_is_its_name_as_text_with_the_file_and_no_preview() -> None:
    turn = payloads.from_bot_event(agent_file(INVOICE), "buttons", link)
    assert turn is not None and set(turn) == {"text", "metadata"} and turn["text"] == "alice: invoice.pdf"
    assert turn["metadata"]["handoff"]["attachment"] == {
        "url": link(INVOICE),
        "filename": "invoice.pdf",
        "content_type": "application/pdf",
        "size": 1234,
        "kind": "file",
    }
    assert payloads.as_socketio(turn) == turn


def test_without_a_route_for_files_a_file_is_shown_by_name_only() -> None:
    turn = payloads.from_bot_event(agent_file(PHOTO))
    assert turn is not None and set(turn) == {"text", "metadata"}
    assert turn["metadata"]["handoff"]["attachment"] == {
        "filename": "photo.png",
        "content_type": "image/png",
        "size": 3,
        "kind": "image",
    }


def test_the_visitors_own_file_is_their_turn_in_history_with_the_file() -> None:
    user = UserUttered(
        "photo.png",
        input_channel="handoff_socketio",
        metadata={"handoff": {"relayed_to": "CH1", "relay_id": "r1", "attachment": PHOTO}},
    ).as_dict()
    [entry] = payloads.history([user], "quick_replies", link=link)
    assert {k: v for k, v in entry.items() if k not in ("timestamp", "index")} == {
        "sender": "visitor",
        "text": "photo.png",
        "attachment": {"type": "image", "payload": {"src": link(PHOTO)}},
        "metadata": {
            "handoff": {
                "sender": "visitor",
                "attachment": {
                    "url": link(PHOTO),
                    "filename": "photo.png",
                    "content_type": "image/png",
                    "size": 3,
                    "kind": "image",
                },
            }
        },
    }
    [plain] = payloads.history([{"event": "user", "text": "plain words", "metadata": {}}], "buttons", link=link)
    assert set(plain) == {"sender", "text", "timestamp", "index"}  # visitor text turns are unchanged


async def test_the_socketio_output_emits_a_file_turn_as_one_payload() -> None:
    sio = RecordingSio()
    await SocketIOOutput(sio, "bot_uttered").send_payloads("room", [payloads.from_bot_event(agent_file(PHOTO), link=link)])  # type: ignore[arg-type, list-item]
    [emitted] = sio.emitted
    # Rasa's text shape and its image shape in one payload: a plain widget shows one of them, ours the file card.
    assert set(emitted) == {"text", "attachment", "metadata"} and emitted["attachment"]["type"] == "image"
    assert {frozenset({"text"}), frozenset({"attachment"})} <= await stock_socketio_shapes()
