"""A user's own channel built on ours under another name: capabilities travel with the class, not the name."""

from __future__ import annotations

from rasa_flex_handoff.rest import RestInput


class SupportChatInput(RestInput):
    """Our REST channel, renamed as a user might subclass it (served at /webhooks/support_chat/...)."""

    @classmethod
    def name(cls) -> str:
        return "support_chat"
