"""The plugin's configuration, from the environment only.

The Rasa server and the action server read the same variables, so both sides of a handoff
agree on the account, the public URL and the secrets. Nothing here has a default that points
at the local Flex sandbox: the plugin talks to a sandbox only when `TWILIO_API_BASE` says so,
so a deployment with real credentials can never end up on one by accident.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from rasa_flex_handoff.attachments import DEFAULT_MAX_BYTES, DEFAULT_TYPES, parse_types, types_problem
from rasa_flex_handoff.hours import BusinessHours, HoursError, business_hours, parse_holidays, parse_openings, parse_zone
from rasa_flex_handoff.transcript_mail import SmtpSettings, sender_problem, smtp_settings, smtp_url_problem

CONVERSATIONS = "conversations"
LEGACY = "legacy"
INTERACTIONS = "interactions"
FLEX_MODES = (CONVERSATIONS, LEGACY, INTERACTIONS)


class SettingsError(ValueError):
    """A required setting is missing or malformed; the message names every one, on one line."""


@dataclass(frozen=True)
class Settings:
    """Everything the plugin reads from the environment (see the README's settings table)."""

    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str
    public_url: str
    api_base: Optional[str] = None  # None: real Twilio; else the Flex sandbox (or a proxy) at that URL
    flex_mode: str = CONVERSATIONS
    chat_service_sid: Optional[str] = None
    flex_flow_sid: Optional[str] = None
    conversations_address_sid: Optional[str] = None
    redis_url: Optional[str] = None
    token_ttl: int = 3600
    twilio_timeout: float = 10.0
    twilio_retries: int = 2
    shell_wait: float = 6.0
    handoff_secret: Optional[str] = None
    # TaskRouter (every mode): None = found by Flex's default names (flex/taskrouter.py).
    flex_workspace_sid: Optional[str] = None
    flex_workflow_sid: Optional[str] = None
    flex_task_queue_sid: Optional[str] = None
    # When agents take chats (HANDOFF_HOURS, HANDOFF_TIMEZONE, HANDOFF_HOLIDAYS); none set: always.
    business_hours: BusinessHours = BusinessHours()
    accept_timeout: float = 300.0  # seconds a visitor waits for an agent to accept (0: no limit)
    queue_update: float = 10.0  # seconds between the waiting visitor's position/ETA updates
    # Files in the agent chat (attachments.py): the largest a visitor may upload, and the MIME types allowed.
    attachment_max_bytes: int = DEFAULT_MAX_BYTES
    attachment_types: Tuple[str, ...] = DEFAULT_TYPES
    summariser: Optional[str] = None  # HANDOFF_SUMMARISER: the bot's own "package.module:function" (summariser.py)
    survey: bool = False  # HANDOFF_SURVEY: ask for a 1-5 rating and a comment after the agent chat
    smtp: Optional[SmtpSettings] = None  # HANDOFF_SMTP_URL + HANDOFF_EMAIL_FROM: the transcript by email; None: not offered

    @property
    def uses_sandbox(self) -> bool:
        """Whether Twilio's API is served from `TWILIO_API_BASE` (the sandbox) rather than twilio.com."""
        return self.api_base is not None

    @property
    def signing_secret(self) -> str:
        """Key for visitor identities and webhook tokens: HANDOFF_SECRET, else the auth token."""
        return self.handoff_secret or self.auth_token


def _sid(prefix: str) -> Callable[[str], Optional[str]]:
    pattern = re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$")
    return lambda value: None if pattern.match(value) else f"expected {prefix} followed by 32 hex digits"


def _url(value: str) -> Optional[str]:
    parts = urlsplit(value)
    return None if parts.scheme in ("http", "https") and parts.netloc else "expected an http(s) URL"


def _number(kind: Callable[[str], object], positive: bool = False) -> Callable[[str], Optional[str]]:
    def check(value: str) -> Optional[str]:
        try:
            number = kind(value)
        except ValueError:
            return f"expected a {kind.__name__}"
        if not isinstance(number, (int, float)) or not math.isfinite(number):
            return f"expected a finite {kind.__name__}"
        if positive:
            return None if number > 0 else "expected a positive number"
        return None if number >= 0 else "expected a non-negative number"

    return check


def _parsed(parse: Callable[[str], object]) -> Callable[[str], Optional[str]]:
    """A check by one of hours.py's parsers: its HoursError says what is wrong."""

    def check(value: str) -> Optional[str]:
        try:
            parse(value)
        except HoursError as e:
            return str(e)
        return None

    return check


_SWITCHES = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


def _switch(value: str) -> Optional[str]:
    return None if value.lower() in _SWITCHES else "expected on or off"


_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def _function(value: str) -> Optional[str]:
    """A `package.module:function` path (imported by the action server only: summariser.py)."""
    return None if _FUNCTION.match(value) else "expected package.module:function"


def _mode(value: str) -> Optional[str]:
    return None if value.lower() in FLEX_MODES else f"expected one of {', '.join(FLEX_MODES)}"


# Variable: (required, check). Required ones fail the start when unset.
VARIABLES: Dict[str, Tuple[bool, Callable[[str], Optional[str]]]] = {
    "TWILIO_ACCOUNT_SID": (True, _sid("AC")),
    "TWILIO_AUTH_TOKEN": (True, lambda v: None),
    "TWILIO_API_KEY": (True, _sid("SK")),
    "TWILIO_API_SECRET": (True, lambda v: None),
    "PUBLIC_URL": (True, _url),
    "TWILIO_API_BASE": (False, _url),
    "FLEX_MODE": (False, _mode),
    "TWILIO_CHAT_SERVICE_SID": (False, _sid("IS")),
    "FLEX_FLOW_SID": (False, _sid("FO")),
    "FLEX_CONVERSATIONS_ADDRESS_SID": (False, _sid("IG")),
    "REDIS_URL": (False, lambda v: None),
    "HANDOFF_TOKEN_TTL": (False, _number(int)),
    "TWILIO_TIMEOUT": (False, _number(float)),
    "TWILIO_RETRIES": (False, _number(int)),
    "HANDOFF_SHELL_WAIT": (False, _number(float)),
    "HANDOFF_SECRET": (False, lambda v: None),
    "FLEX_WORKSPACE_SID": (False, _sid("WS")),
    "FLEX_WORKFLOW_SID": (False, _sid("WW")),
    "FLEX_TASK_QUEUE_SID": (False, _sid("WQ")),
    "HANDOFF_HOURS": (False, _parsed(parse_openings)),
    "HANDOFF_TIMEZONE": (False, _parsed(parse_zone)),
    "HANDOFF_HOLIDAYS": (False, _parsed(parse_holidays)),
    "HANDOFF_ACCEPT_TIMEOUT": (False, _number(float)),
    "HANDOFF_QUEUE_UPDATE": (False, _number(float, positive=True)),
    "HANDOFF_ATTACHMENT_MAX_BYTES": (False, _number(int, positive=True)),
    "HANDOFF_ATTACHMENT_TYPES": (False, types_problem),
    "HANDOFF_SUMMARISER": (False, _function),
    "HANDOFF_SURVEY": (False, _switch),
    "HANDOFF_SMTP_URL": (False, smtp_url_problem),
    "HANDOFF_EMAIL_FROM": (False, sender_problem),
}


def overrides_from_credentials(credentials: Optional[Mapping[str, object]]) -> Dict[str, str]:
    """A channel's `credentials.yml` keys that name a setting (its variable in lower case)."""
    found: Dict[str, str] = {}
    for key, value in (credentials or {}).items():
        name = str(key).upper()
        if name in VARIABLES and value is not None:
            found[name] = str(value)
    return found


def settings_from_env(env: Optional[Mapping[str, str]] = None, overrides: Optional[Mapping[str, str]] = None) -> Settings:
    """Read and check every setting; raise `SettingsError` naming all that are missing or malformed."""
    source = {**(os.environ if env is None else env), **(overrides or {})}
    values: Dict[str, Optional[str]] = {}
    missing: List[str] = []
    malformed: List[str] = []
    for name, (needed, check) in VARIABLES.items():
        value = (source.get(name) or "").strip() or None
        values[name] = value
        if value is None:
            if needed:
                missing.append(name)
            continue
        problem = check(value)
        if problem:
            malformed.append(f"{name} ({problem})")
    if values["HANDOFF_SMTP_URL"] and not values["HANDOFF_EMAIL_FROM"]:
        missing.append("HANDOFF_EMAIL_FROM (the transcript's From, needed with HANDOFF_SMTP_URL)")
    if missing or malformed:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if malformed:
            parts.append("malformed " + ", ".join(malformed))
        raise SettingsError("Flex handoff settings: " + "; ".join(parts) + " (set them in the environment; see the README)")

    def get(name: str) -> Optional[str]:
        return values[name]

    def required(name: str) -> str:
        value = values[name]
        assert value is not None
        return value

    api_base = get("TWILIO_API_BASE")
    return Settings(
        account_sid=required("TWILIO_ACCOUNT_SID"),
        auth_token=required("TWILIO_AUTH_TOKEN"),
        api_key=required("TWILIO_API_KEY"),
        api_secret=required("TWILIO_API_SECRET"),
        public_url=required("PUBLIC_URL").rstrip("/"),
        api_base=api_base.rstrip("/") if api_base else None,
        flex_mode=(get("FLEX_MODE") or CONVERSATIONS).lower(),
        chat_service_sid=get("TWILIO_CHAT_SERVICE_SID"),
        flex_flow_sid=get("FLEX_FLOW_SID"),
        conversations_address_sid=get("FLEX_CONVERSATIONS_ADDRESS_SID"),
        redis_url=get("REDIS_URL"),
        token_ttl=int(get("HANDOFF_TOKEN_TTL") or 3600),
        twilio_timeout=float(get("TWILIO_TIMEOUT") or 10),
        twilio_retries=int(get("TWILIO_RETRIES") or 2),
        shell_wait=float(get("HANDOFF_SHELL_WAIT") or 6),
        handoff_secret=get("HANDOFF_SECRET"),
        flex_workspace_sid=get("FLEX_WORKSPACE_SID"),
        flex_workflow_sid=get("FLEX_WORKFLOW_SID"),
        flex_task_queue_sid=get("FLEX_TASK_QUEUE_SID"),
        business_hours=business_hours(get("HANDOFF_HOURS"), get("HANDOFF_TIMEZONE"), get("HANDOFF_HOLIDAYS")),
        accept_timeout=float(get("HANDOFF_ACCEPT_TIMEOUT") or 300),
        queue_update=float(get("HANDOFF_QUEUE_UPDATE") or 10),
        attachment_max_bytes=int(get("HANDOFF_ATTACHMENT_MAX_BYTES") or DEFAULT_MAX_BYTES),
        attachment_types=parse_types(get("HANDOFF_ATTACHMENT_TYPES") or ",".join(DEFAULT_TYPES)),
        summariser=get("HANDOFF_SUMMARISER"),
        survey=_SWITCHES[(get("HANDOFF_SURVEY") or "off").lower()],
        smtp=smtp_settings(url, required("HANDOFF_EMAIL_FROM")) if (url := get("HANDOFF_SMTP_URL")) else None,
    )
