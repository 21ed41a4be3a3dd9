"""Settings come from the environment only, are checked at once, and never default to the sandbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
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
    assert "FLEX_MODE (expected one of conversations, legacy, interactions)" in message
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


def test_interactions_is_a_flex_mode_and_taskrouter_sids_are_checked() -> None:
    sids = {"FLEX_WORKSPACE_SID": "WS" + "a" * 32, "FLEX_WORKFLOW_SID": "WW" + "b" * 32, "FLEX_TASK_QUEUE_SID": "WQ" + "c" * 32}
    settings = settings_from_env({**REAL, "FLEX_MODE": "Interactions", **sids})
    assert settings.flex_mode == "interactions"
    assert (settings.flex_workspace_sid, settings.flex_workflow_sid, settings.flex_task_queue_sid) == tuple(sids.values())
    unset = settings_from_env(REAL)
    assert unset.flex_workspace_sid is unset.flex_workflow_sid is unset.flex_task_queue_sid is None
    swapped = {
        "FLEX_WORKSPACE_SID": sids["FLEX_WORKFLOW_SID"],
        "FLEX_WORKFLOW_SID": "WW123",
        "FLEX_TASK_QUEUE_SID": "WS" + "c" * 32,
    }
    with pytest.raises(SettingsError) as failed:
        settings_from_env({**REAL, **swapped})
    message = str(failed.value)
    for name, prefix in (("FLEX_WORKSPACE_SID", "WS"), ("FLEX_WORKFLOW_SID", "WW"), ("FLEX_TASK_QUEUE_SID", "WQ")):
        assert f"{name} (expected {prefix} followed by 32 hex digits)" in message


def test_waiting_defaults_and_bounds() -> None:
    settings = settings_from_env(REAL)
    assert settings.accept_timeout == 300 and settings.queue_update == 10
    assert settings.business_hours.always_open
    set_ = settings_from_env({**REAL, "HANDOFF_ACCEPT_TIMEOUT": "0", "HANDOFF_QUEUE_UPDATE": "2.5"})
    assert set_.accept_timeout == 0 and set_.queue_update == 2.5  # 0: wait as long as Flex keeps the task
    bad = {"HANDOFF_ACCEPT_TIMEOUT": "-1", "HANDOFF_QUEUE_UPDATE": "0"}
    with pytest.raises(SettingsError) as failed:
        settings_from_env({**REAL, **bad})
    message = str(failed.value)
    assert "HANDOFF_ACCEPT_TIMEOUT (expected a non-negative number)" in message
    assert "HANDOFF_QUEUE_UPDATE (expected a positive number)" in message
    for value in ("inf", "nan", "soon"):
        with pytest.raises(SettingsError, match="HANDOFF_QUEUE_UPDATE"):
            settings_from_env({**REAL, "HANDOFF_QUEUE_UPDATE": value})


def test_business_hours_are_read_with_their_zone_and_holidays() -> None:
    env = {
        **REAL,
        "HANDOFF_HOURS": "mon-fri 09:00-17:00",
        "HANDOFF_TIMEZONE": "Europe/Berlin",
        "HANDOFF_HOLIDAYS": "2026-12-24, 2026-12-25,",
    }
    hours = settings_from_env(env).business_hours
    assert hours.is_open(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))  # Tuesday 09:30 in Berlin
    assert not hours.is_open(datetime(2026, 12, 1, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert not hours.is_open(datetime(2026, 12, 24, 10, 0, tzinfo=UTC))  # a Thursday, but a holiday
    assert hours.holidays == {date(2026, 12, 24), date(2026, 12, 25)}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HANDOFF_TIMEZONE", "Mars/Olympus_Mons"),
        ("HANDOFF_TIMEZONE", "../etc/passwd"),
        ("HANDOFF_HOLIDAYS", "2026-12-24, 24.12.2026"),
        ("HANDOFF_HOLIDAYS", "2026-02-30"),
        ("HANDOFF_HOURS", "weekdays 9-5"),
    ],
)
def test_malformed_business_hours_fail_the_start_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as failed:
        settings_from_env({**REAL, name: value})
    assert f"malformed {name} (" in str(failed.value)
