"""Settings come from the environment only, are checked at once, and never default to the sandbox."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from twilio.http.http_client import TwilioHttpClient

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff.settings import SettingsError, overrides_from_credentials, settings_from_env
from rasa_flex_handoff.twilio_http import twilio_client

REAL = {
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "a-real-looking-token",
    "TWILIO_API_KEY": "SK" + "fedcba9876543210" * 2,
    "TWILIO_API_SECRET": "a-real-looking-secret",
    "PUBLIC_URL": "https://bot.example.com/",
}


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The URLs the `twilio` SDK requests; each request then fails, as nothing here may reach a network."""
    urls: List[str] = []

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        urls.append(url)
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(TwilioHttpClient, "request", request)
    return urls


def test_nothing_is_read_but_the_environment_given() -> None:
    with pytest.raises(SettingsError) as failed:
        settings_from_env({})
    message = str(failed.value)
    assert "\n" not in message
    assert "missing TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_API_KEY, TWILIO_API_SECRET, PUBLIC_URL" in message


def test_every_malformed_value_is_named_with_what_was_expected() -> None:
    env = {**REAL, "TWILIO_ACCOUNT_SID": "AC123", "PUBLIC_URL": "bot.example.com", "FLEX_MODE": "studio", "TWILIO_RETRIES": "-1"}
    with pytest.raises(SettingsError) as failed:
        settings_from_env(env)
    message = str(failed.value)
    assert "TWILIO_ACCOUNT_SID (expected AC followed by 32 hex digits)" in message
    assert "PUBLIC_URL (expected an http(s) URL)" in message
    assert "FLEX_MODE (expected one of conversations, legacy)" in message
    assert "TWILIO_RETRIES (expected a non-negative number)" in message
    assert "missing" not in message


def test_real_credentials_without_an_api_base_talk_to_twilio(asked: List[str]) -> None:
    settings = settings_from_env(REAL)
    assert settings.api_base is None and not settings.uses_sandbox
    assert settings.public_url == "https://bot.example.com"
    with pytest.raises(ConnectionError):
        twilio_client(settings).conversations.v1.conversations("CH" + "0" * 32).fetch()
    assert asked == ["https://conversations.twilio.com/v1/Conversations/CH" + "0" * 32]


def test_the_sandbox_only_when_twilio_api_base_names_it(asked: List[str]) -> None:
    settings = settings_from_env(
        {**DEVELOPMENT.as_env(), "PUBLIC_URL": "http://127.0.0.1:5005", "TWILIO_API_BASE": "http://127.0.0.1:4000/"}
    )
    assert settings.uses_sandbox and settings.api_base == "http://127.0.0.1:4000"
    with pytest.raises(ConnectionError):
        twilio_client(settings).conversations.v1.conversations("CH" + "0" * 32).fetch()
    assert asked == ["http://127.0.0.1:4000/conversations/v1/Conversations/CH" + "0" * 32]


def test_a_channel_overrides_settings_by_their_variable_in_lower_case() -> None:
    credentials: Dict[str, Any] = {"public_url": "https://widget.example.com", "session_persistence": True, "twilio_retries": 5}
    overrides = overrides_from_credentials(credentials)
    assert overrides == {"PUBLIC_URL": "https://widget.example.com", "TWILIO_RETRIES": "5"}
    settings = settings_from_env({**REAL}, overrides)
    assert settings.public_url == "https://widget.example.com" and settings.twilio_retries == 5
