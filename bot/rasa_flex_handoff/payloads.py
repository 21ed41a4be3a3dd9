"""What the visitor's front end is sent: Rasa's own `bot_uttered` shapes, with the handoff under `metadata`.

Widgets written for Rasa's stock `socketio` and `rest` channels render `{text}`,
`{text, quick_replies}` (REST: `buttons`) and `{attachment}`, tolerate a `metadata` key and
leave anything else to custom code. So every agent and system turn is a plain text message
(the agent's name in the text: "Alice: ...") and what a handoff-aware front end needs
(who spoke, the notice's event, message sid, timestamp, the access token it asked for) goes
under `metadata.handoff`. One module shapes live turns and history alike, so they cannot drift.

A file (an agent's, or the visitor's own in history) is its name as text ("Alice: invoice.pdf")
with `metadata.handoff.attachment` {url, filename, content_type, size, kind}; an image also
comes in Rasa's own image shape (socket.io `attachment`, REST `image`) so stock widgets preview
it. The URL is made here, when the turn is shown (`Link`), never stored: it leads to our
media-file route, which hands out a fresh temporary link from Twilio.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from rasa_flex_handoff import attachments

# Recorded handoff metadata that stays on the server (routing bookkeeping; the file is shown by `attachment_of`).
_SERVER_ONLY = ("role", "channel_sid", "participant_sid", "attachment")

# The link shown for a recorded file (`attachments.recorded`) in one conversation; None when none can be made.
Link = Callable[[Mapping[str, Any]], Optional[str]]


def attachment_of(recorded: Any, link: Optional[Link]) -> Optional[Dict[str, Any]]:
    """A recorded file as the visitor is shown it: `url` (when a link can be made), `filename`, `content_type`, `size`, `kind`."""
    if not isinstance(recorded, Mapping):
        return None
    content_type = recorded.get("content_type")
    shown: Dict[str, Any] = {
        "filename": attachments.display_name(recorded.get("filename"), content_type),
        "content_type": content_type,
        "size": recorded.get("size"),
        "kind": attachments.kind_of(content_type),
    }
    url = link(recorded) if link is not None else None
    return {"url": url, **shown} if url else shown


def preview(shown: Optional[Mapping[str, Any]], buttons_as: str) -> Dict[str, Any]:
    """An image with a link in Rasa's own shape, for stock widgets: socket.io's `attachment` (`quick_replies`), REST's `image`."""
    if not shown or shown.get("kind") != "image" or not shown.get("url"):
        return {}
    if buttons_as == "quick_replies":
        return {"attachment": {"type": "image", "payload": {"src": shown["url"]}}}
    return {"image": shown["url"]}


def handoff_of(metadata: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The handoff metadata recorded on a bot turn (empty for ordinary bot turns)."""
    found = (metadata or {}).get("handoff")
    return dict(found) if isinstance(found, Mapping) else {}


def buttons_payload(buttons: Any, buttons_as: str) -> Dict[str, Any]:
    """Buttons as the channel's stock output sends them: socket.io `quick_replies`, REST `buttons` (none: nothing)."""
    if not isinstance(buttons, list) or not buttons:
        return {}
    if buttons_as != "quick_replies":
        return {"buttons": buttons}
    return {
        "quick_replies": [
            {"content_type": "text", "title": b.get("title"), "payload": b.get("payload", b.get("title"))}
            for b in buttons
            if isinstance(b, Mapping)
        ]
    }


def as_socketio(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A payload in REST's shape (`buttons`, `image`) in socket.io's (`quick_replies`, `attachment`), as Rasa sends them."""
    if "buttons" not in payload and "image" not in payload:
        return payload
    rest = {key: value for key, value in payload.items() if key not in ("buttons", "image")}
    if "image" in payload:
        rest["attachment"] = {"type": "image", "payload": {"src": payload["image"]}}
    return {**rest, **buttons_payload(payload.get("buttons"), "quick_replies")}


def handoff_turn(
    text: str,
    handoff: Mapping[str, Any],
    chat: Optional[Mapping[str, Any]] = None,
    buttons: Any = None,
    buttons_as: str = "buttons",
    link: Optional[Link] = None,
) -> Dict[str, Any]:
    """An agent or system turn as Rasa's output would send a text (with buttons: the offer), the handoff in `metadata`.

    `handoff` is the turn's recorded metadata (`role` agent|system, `event`, `agent`, ...);
    `chat` the Flex chat details with the access token, only for a client that asked for them;
    `link` makes the URL of a file the turn carries.
    """
    sender = "agent" if handoff.get("role") == "agent" else "system"
    public: Dict[str, Any] = {"sender": sender}
    for key, value in handoff.items():
        if key not in _SERVER_ONLY and value is not None:
            public[key] = value
    if isinstance(public.get("agent"), str):
        public["agent"] = {"name": public["agent"]}
    if chat:
        public["chat"] = dict(chat)
    shown = attachment_of(handoff.get("attachment"), link)
    if shown is not None:
        public["attachment"] = shown
    return {"text": text, **preview(shown, buttons_as), **buttons_payload(buttons, buttons_as), "metadata": {"handoff": public}}


def is_handoff_message(message: Mapping[str, Any]) -> bool:
    """Whether a bot message (Rasa's `BotUttered.message()` form) is an agent or system turn."""
    return bool(handoff_of(message))


def from_bot_message(message: Mapping[str, Any], buttons_as: str) -> Dict[str, Any]:
    """A handoff bot message (`BotUttered.message()` form: metadata merged in) as the visitor gets it live.

    The action attaches the Flex chat details (access token included) as custom JSON only for
    clients that asked for them; they travel under `metadata.handoff.chat`.
    """
    custom = message.get("custom")
    chat = custom.get("handoff") if isinstance(custom, Mapping) else None
    return handoff_turn(
        message.get("text") or "",
        handoff_of(message),
        chat if isinstance(chat, Mapping) else None,
        message.get("buttons"),
        buttons_as,
    )


def from_bot_event(
    event: Mapping[str, Any], buttons_as: str = "buttons", link: Optional[Link] = None
) -> Optional[Dict[str, Any]]:
    """A recorded handoff turn (`BotUttered.as_dict()`) as the visitor gets it; None for ordinary bot turns.

    Never includes the access token: a recorded turn may be read again later (history).
    """
    meta = handoff_of(event.get("metadata"))
    buttons = (event.get("data") or {}).get("buttons")
    return handoff_turn(event.get("text") or "", meta, None, buttons, buttons_as, link) if meta else None


def visitor_turn(event: Mapping[str, Any], buttons_as: str, link: Optional[Link] = None) -> Dict[str, Any]:
    """A recorded visitor turn (`UserUttered.as_dict()`) as their other tabs show it; a file as an agent's is shown."""
    entry: Dict[str, Any] = {"sender": "visitor", "text": event.get("text")}
    shown = attachment_of(handoff_of(event.get("metadata")).get("attachment"), link)
    if shown is not None:
        entry.update(preview(shown, buttons_as))
        entry["metadata"] = {"handoff": {"sender": "visitor", "attachment": shown}}
    return entry


def _bot_turn(event: Mapping[str, Any], buttons_as: str) -> Optional[Dict[str, Any]]:
    """An ordinary recorded bot turn in the channel's shape (no custom JSON: it may hold anything)."""
    data = event.get("data") or {}
    payload: Dict[str, Any] = {"text": event.get("text")} if event.get("text") else {}
    for key in ("image", "attachment", "elements"):
        if data.get(key):
            payload[key] = data[key]
    payload.update(buttons_payload(data.get("buttons") or data.get("quick_replies") or [], buttons_as))
    return payload or None


def history(
    events: Iterable[Mapping[str, Any]], buttons_as: str, start: int = 0, link: Optional[Link] = None
) -> List[Dict[str, Any]]:
    """Visitor, bot, agent and system turns from event `start` on, for a front end that reloads.

    Each entry is the payload the visitor got live plus `sender`, `timestamp` and the tracker
    event `index`; access tokens and other custom JSON are never included. `link` makes files' URLs.
    """
    found: List[Dict[str, Any]] = []
    for index, event in enumerate(events):
        if index < start:
            continue
        kind = event.get("event")
        entry: Optional[Dict[str, Any]] = None
        if kind == "user":
            if (event.get("text") or "").strip() and not handoff_of(event.get("metadata")).get("replayed"):
                entry = visitor_turn(event, buttons_as, link)
        elif kind == "bot":
            turn = from_bot_event(event, buttons_as, link)
            if turn is not None:
                entry = {"sender": turn["metadata"]["handoff"]["sender"], **turn}
            else:
                bot = _bot_turn(event, buttons_as)
                entry = {"sender": "bot", **bot} if bot else None
        if entry is not None:
            found.append({**entry, "timestamp": event.get("timestamp"), "index": index})
    return found


# Notices after which the visitor waits for an agent (a new chat; an agent passing it on).
WAIT_EVENTS = ("connecting", "transferring")


def starts_waiting(payload: Mapping[str, Any]) -> bool:
    """Whether a payload the visitor is shown starts a wait for an agent."""
    handoff = (payload.get("metadata") or {}).get("handoff") if isinstance(payload.get("metadata"), Mapping) else None
    return isinstance(handoff, Mapping) and handoff.get("event") in WAIT_EVENTS
