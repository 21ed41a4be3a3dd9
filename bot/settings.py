"""Configuration from the environment (and `.env`), with defaults that run against the Flex sandbox."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Development credentials of the local Flex sandbox. They are not secrets: they only
# open the sandbox on this machine, and real Twilio rejects them.
SANDBOX_ACCOUNT_SID = "AC" + "5a" * 16
SANDBOX_AUTH_TOKEN = "5b" * 16
SANDBOX_API_KEY = "SK" + "5c" * 16
SANDBOX_API_SECRET = "5d" * 16  # 32 characters, like a real API key secret
SANDBOX_PORT = 4000


def load_dotenv(path: Path = PROJECT_ROOT / ".env") -> None:
    """Fill os.environ from a `.env` file without overriding what the shell already set."""
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Settings:
    """Everything the plugin and the sandbox read from the environment."""

    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str
    api_base: Optional[str]  # None: real Twilio
    chat_service_sid: Optional[str]
    flex_mode: str  # "conversations" | "legacy"
    flex_flow_sid: Optional[str]
    conversations_address_sid: Optional[str]
    public_url: str
    redis_url: Optional[str]
    token_ttl: int
    sandbox_port: int
    sandbox_db: str
    twilio_timeout: float
    twilio_retries: int = 2
    shell_wait: float = 6.0
    handoff_secret: Optional[str] = None

    @property
    def uses_sandbox(self) -> bool:
        return self.api_base is not None

    @property
    def signing_secret(self) -> str:
        """Key for visitor identities and webhook tokens: HANDOFF_SECRET, else the auth token."""
        return self.handoff_secret or self.auth_token


def _get(env: Mapping[str, str], key: str) -> Optional[str]:
    value = env.get(key, "").strip()
    return value or None


def settings_from_env(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Read settings; with no Twilio credentials at all, everything points at the local sandbox."""
    if env is None:
        load_dotenv()
        env = os.environ
    real_credentials = _get(env, "TWILIO_ACCOUNT_SID") is not None
    sandbox_port = int(_get(env, "FLEX_SANDBOX_PORT") or SANDBOX_PORT)
    api_base = _get(env, "TWILIO_API_BASE")
    if api_base is None and not real_credentials:
        api_base = f"http://127.0.0.1:{sandbox_port}"
    mode = (_get(env, "FLEX_MODE") or "conversations").lower()
    if mode not in ("conversations", "legacy"):
        raise ValueError(f"FLEX_MODE must be 'conversations' or 'legacy', not {mode!r}")
    return Settings(
        account_sid=_get(env, "TWILIO_ACCOUNT_SID") or SANDBOX_ACCOUNT_SID,
        auth_token=_get(env, "TWILIO_AUTH_TOKEN") or SANDBOX_AUTH_TOKEN,
        api_key=_get(env, "TWILIO_API_KEY") or (None if real_credentials else SANDBOX_API_KEY) or "",
        api_secret=_get(env, "TWILIO_API_SECRET") or (None if real_credentials else SANDBOX_API_SECRET) or "",
        api_base=api_base.rstrip("/") if api_base else None,
        chat_service_sid=_get(env, "TWILIO_CHAT_SERVICE_SID"),
        flex_mode=mode,
        flex_flow_sid=_get(env, "FLEX_FLOW_SID"),
        conversations_address_sid=_get(env, "FLEX_CONVERSATIONS_ADDRESS_SID"),
        public_url=(_get(env, "PUBLIC_URL") or "http://127.0.0.1:5005").rstrip("/"),
        redis_url=_get(env, "REDIS_URL"),
        token_ttl=int(_get(env, "HANDOFF_TOKEN_TTL") or 3600),
        sandbox_port=sandbox_port,
        sandbox_db=_get(env, "FLEX_SANDBOX_DB") or str(PROJECT_ROOT / "var" / "flex-sandbox.db"),
        twilio_timeout=float(_get(env, "TWILIO_TIMEOUT") or 10),
        twilio_retries=int(_get(env, "TWILIO_RETRIES") or 2),
        shell_wait=float(_get(env, "HANDOFF_SHELL_WAIT") or 6),
        handoff_secret=_get(env, "HANDOFF_SECRET"),
    )
