"""Twilio calls are time-limited and retried with backoff only when that cannot duplicate anything."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, List

import pytest
from twilio.base.exceptions import TwilioRestException

from flex_sandbox.credentials import DEVELOPMENT
from rasa_flex_handoff.flex import FlexError, call, channel_attributes_inactive
from rasa_flex_handoff.settings import settings_from_env

SETTINGS = dataclasses.replace(
    settings_from_env({**DEVELOPMENT.as_env(), "PUBLIC_URL": "https://bot.example.com"}), twilio_timeout=0.2, twilio_retries=2
)


class Twilio:
    """Answers a scripted sequence: an exception to raise, 'hang', or a value."""

    def __init__(self, *script: Any) -> None:
        self.script: List[Any] = list(script)
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        step = self.script.pop(0)
        if step == "hang":
            await asyncio.sleep(10)
        if isinstance(step, Exception):
            raise step
        return step


def error(status: int) -> TwilioRestException:
    return TwilioRestException(status, "https://chat.twilio.com/v2/x", "boom", code=20000 + status)


async def test_retries_429_and_5xx_then_succeeds() -> None:
    twilio = Twilio(error(429), error(503), "ok")
    assert await call("op", twilio, SETTINGS) == "ok"
    assert twilio.calls == 3


async def test_gives_up_after_the_configured_retries() -> None:
    twilio = Twilio(error(500), error(500), error(500), "never")
    with pytest.raises(FlexError) as e:
        await call("op", twilio, SETTINGS)
    assert e.value.status == 500 and twilio.calls == 3


async def test_client_errors_are_not_retried() -> None:
    twilio = Twilio(error(400), "never")
    with pytest.raises(FlexError):
        await call("op", twilio, SETTINGS)
    assert twilio.calls == 1


async def test_timeouts_are_bounded_and_retried() -> None:
    twilio = Twilio("hang", "ok")
    started = time.monotonic()
    assert await call("op", twilio, SETTINGS) == "ok"
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("failure", ["hang", error(500)], ids=["timeout", "500"])
async def test_creating_calls_are_not_retried_after_ambiguous_failures(failure: Any) -> None:
    twilio = Twilio(failure, "second chat")
    with pytest.raises(FlexError) as e:
        await call("create", twilio, SETTINGS, creates=True)
    assert twilio.calls == 1
    assert "create" in e.value.reason


async def test_creating_calls_are_retried_when_twilio_rejected_them() -> None:
    twilio = Twilio(error(429), "chat")
    assert await call("create", twilio, SETTINGS, creates=True) == "chat"


@pytest.mark.parametrize("failure", ["hang", error(500)], ids=["timeout", "500"])
async def test_an_ambiguous_failure_that_went_through_is_not_repeated(failure: Any) -> None:
    twilio = Twilio(failure, "second message")
    looked = Twilio("the first message")
    assert await call("post", twilio, SETTINGS, creates=True, landed=looked) == "the first message"
    assert twilio.calls == 1 and looked.calls == 1


async def test_an_ambiguous_failure_that_did_not_go_through_is_retried() -> None:
    twilio = Twilio(error(502), "hang", "posted")
    looked = Twilio(None, None)
    assert await call("post", twilio, SETTINGS, creates=True, landed=looked) == "posted"
    assert twilio.calls == 3 and looked.calls == 2


async def test_no_retry_when_it_cannot_be_told_whether_it_went_through() -> None:
    twilio = Twilio(error(500), "second message")
    looked = Twilio(FlexError("list: Twilio answered 500", 500))
    with pytest.raises(FlexError) as e:
        await call("post", twilio, SETTINGS, creates=True, landed=looked)
    assert e.value.reason.startswith("post") and twilio.calls == 1


def test_legacy_inactive_attributes() -> None:
    assert channel_attributes_inactive('{"status": "INACTIVE", "from": "x"}')
    assert not channel_attributes_inactive('{"status": "ACTIVE"}')
    assert not channel_attributes_inactive("not json")
