"""Who may read a conversation's history when the channel has a `jwt_key` (Rasa's HTTP API token convention)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, Optional

import jwt
import pytest

from rasa_flex_handoff.history_access import may_read_history

KEY = "history-secret"


def request(claims: Optional[Dict[str, Any]] = None, key: str = KEY, scheme: str = "Bearer") -> Any:
    headers = {} if claims is None else {"Authorization": f"{scheme} {jwt.encode(claims, key, algorithm='HS256')}"}
    return SimpleNamespace(headers=headers)


def test_without_a_key_the_conversation_id_is_the_key() -> None:
    assert may_read_history(request(), "visitor-1", None, None)


@pytest.mark.parametrize(
    "req, allowed",
    [
        (request({"user": {"username": "visitor-1", "role": "user"}}), True),
        (request({"user": {"role": "admin"}}), True),
        (request({"user": {"username": "visitor-2"}}), False),  # someone else's token
        (request({"user": {"username": "visitor-1"}}, key="wrong-key"), False),  # forged
        (request({"sub": "visitor-1"}), False),  # valid, but says nothing about the conversation
        (request({"user": {"username": "visitor-1"}}, scheme="Basic"), False),
        (request(), False),  # no token
    ],
)
def test_with_a_key_a_token_for_this_conversation_is_needed(req: Any, allowed: bool) -> None:
    assert may_read_history(req, "visitor-1", KEY, "HS256") is allowed
