"""The account the sandbox serves: the credentials it accepts and signs webhooks with.

By default these are fixed development values. They are not secrets: they open only a sandbox
on this machine, and real Twilio rejects them. `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`,
`TWILIO_API_KEY` and `TWILIO_API_SECRET` replace them, so a bot and its sandbox can share one
environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

DEFAULT_PORT = 4000


@dataclass(frozen=True)
class Credentials:
    """An account SID and auth token, plus the API key pair that signs access tokens."""

    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str

    def as_env(self) -> Dict[str, str]:
        """The environment variables a plugin process needs to talk to this account."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_KEY": self.api_key,
            "TWILIO_API_SECRET": self.api_secret,
        }


DEVELOPMENT = Credentials(
    account_sid="AC" + "5a" * 16,
    auth_token="5b" * 16,
    api_key="SK" + "5c" * 16,
    api_secret="5d" * 16,  # 32 characters, like a real API key secret
)


def credentials_from_env(env: Optional[Mapping[str, str]] = None) -> Credentials:
    """The development credentials, each replaced by its variable when that is set."""
    source = os.environ if env is None else env

    def pick(name: str, default: str) -> str:
        return (source.get(name) or "").strip() or default

    return Credentials(
        account_sid=pick("TWILIO_ACCOUNT_SID", DEVELOPMENT.account_sid),
        auth_token=pick("TWILIO_AUTH_TOKEN", DEVELOPMENT.auth_token),
        api_key=pick("TWILIO_API_KEY", DEVELOPMENT.api_key),
        api_secret=pick("TWILIO_API_SECRET", DEVELOPMENT.api_secret),
    )
