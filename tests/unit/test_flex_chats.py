"""One Flex client class per generation, chosen once: by FLEX_MODE for a new chat, by the recorded mode for an existing one."""

from __future__ import annotations

import dataclasses

import pytest

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff import handoff
from rasa_flex_handoff.flex import ConversationsChats, FlexChat, FlexError, LegacyChats, flex_chats
from rasa_flex_handoff.settings import settings_from_env

SETTINGS = settings_from_env({**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com", "FLEX_MODE": "conversations"})
CLIENT = object()  # never called: choosing a class makes no request


def test_a_new_chat_is_made_in_the_configured_generation() -> None:
    assert type(flex_chats(CLIENT, SETTINGS)) is ConversationsChats
    assert type(flex_chats(CLIENT, dataclasses.replace(SETTINGS, flex_mode="legacy"))) is LegacyChats


def test_a_chat_is_finished_in_the_generation_it_was_started_in() -> None:
    started = FlexChat("legacy", "CH1", "visitor-identity", "IS1")
    chat = handoff.chat_from_slots(handoff.start_slots(started))
    assert chat == started
    chats = flex_chats(CLIENT, SETTINGS, chat.mode)  # FLEX_MODE says conversations
    assert type(chats) is LegacyChats and chats.mode == "legacy"


def test_a_mode_no_class_serves_is_a_flex_error() -> None:
    with pytest.raises(FlexError):
        flex_chats(CLIENT, SETTINGS, "flex-3000")
