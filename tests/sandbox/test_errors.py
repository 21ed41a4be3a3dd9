"""Bad input gets Twilio's errors, never a 500: auth, unknown SIDs and routes, invalid params, non-form and oversized bodies."""

from __future__ import annotations

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from flex_sandbox.credentials import DEVELOPMENT
from northwind.servers import Sandbox
from rasa_flex_handoff.twilio_http import SandboxHttpClient


def raw(sandbox: Sandbox, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", (DEVELOPMENT.account_sid, DEVELOPMENT.auth_token))
    return requests.request(method, sandbox.base_url + path, timeout=10, **kwargs)


def assert_twilio_error(response: requests.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}" and body["message"]


def test_wrong_or_missing_credentials_are_401_20003(sandbox: Sandbox) -> None:
    wrong = Client(DEVELOPMENT.account_sid, "wrong-token", http_client=SandboxHttpClient(sandbox.base_url))
    with pytest.raises(TwilioRestException) as e:
        wrong.flex_api.v1.flex_flow(sandbox.flex_flow_sid).fetch()
    assert e.value.status == 401 and e.value.code == 20003
    response = raw(sandbox, "GET", "/flex-api/v1/FlexFlows", auth=None)
    assert_twilio_error(response, 401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert_twilio_error(
        raw(sandbox, "GET", "/chat/v2/Services/IS1/Channels", headers={"Authorization": "Basic !!!"}, auth=None), 401, 20003
    )


def test_account_token_and_api_key_both_authenticate(sandbox: Sandbox) -> None:
    by_token = Client(DEVELOPMENT.account_sid, DEVELOPMENT.auth_token, http_client=SandboxHttpClient(sandbox.base_url))
    assert by_token.flex_api.v1.flex_flow.list()
    assert sandbox.client.username.startswith("SK")  # the fixture's client uses the API key
    assert sandbox.client.flex_api.v1.flex_flow.list()


def test_unknown_sids_and_routes_are_404_20404(sandbox: Sandbox) -> None:
    client = sandbox.client
    for call in (
        lambda: client.flex_api.v1.flex_flow("FO" + "1" * 32).fetch(),
        lambda: client.chat.v2.services(sandbox.chat_service_sid).channels("CH" + "1" * 32).fetch(),
        lambda: client.chat.v2.services("IS" + "1" * 32).channels("CH" + "1" * 32).fetch(),
        lambda: client.conversations.v1.conversations("CH" + "1" * 32).messages.create(body="x"),
        lambda: client.conversations.v1.address_configurations("IG" + "1" * 32).fetch(),
    ):
        with pytest.raises(TwilioRestException) as e:
            call()
        assert e.value.status == 404 and e.value.code == 20404
    assert_twilio_error(raw(sandbox, "GET", "/conversations/v1/Nothing/Here"), 404, 20404)


def test_method_not_allowed(sandbox: Sandbox) -> None:
    assert_twilio_error(raw(sandbox, "PUT", "/flex-api/v1/FlexFlows"), 405, 20004)


def test_invalid_params_are_400(sandbox: Sandbox) -> None:
    assert_twilio_error(raw(sandbox, "POST", "/flex-api/v1/WebChannels", data={"FlexFlowSid": sandbox.flex_flow_sid}), 400, 20001)
    assert_twilio_error(raw(sandbox, "GET", "/conversations/v1/Conversations?PageSize=0"), 400, 20001)
    assert_twilio_error(raw(sandbox, "GET", "/conversations/v1/Conversations?PageSize=abc"), 400, 20001)
    assert_twilio_error(raw(sandbox, "GET", "/conversations/v1/Conversations?PageToken=bogus"), 400, 20001)
    assert_twilio_error(raw(sandbox, "POST", "/conversations/v1/Conversations", data={"State": "sleepy"}), 400, 20001)
    chat = sandbox.client.flex_api.v2.web_channels.create(address_sid=sandbox.address_sid)
    assert_twilio_error(
        raw(sandbox, "POST", f"/conversations/v1/Conversations/{chat.conversation_sid}/Messages", data={"Body": "x" * 1601}),
        400,
        20001,
    )


def test_non_form_bodies_are_rejected(sandbox: Sandbox) -> None:
    response = raw(sandbox, "POST", "/conversations/v1/Conversations", json={"FriendlyName": "json"})
    assert_twilio_error(response, 400, 20001)
    assert "x-www-form-urlencoded" in response.json()["message"]
    assert_twilio_error(
        raw(
            sandbox,
            "POST",
            "/conversations/v1/Conversations",
            data=b"\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
        20001,
    )


def test_oversized_bodies_are_413(sandbox: Sandbox) -> None:
    response = raw(sandbox, "POST", "/conversations/v1/Conversations", data={"FriendlyName": "x" * (2 * 1024 * 1024)})
    assert_twilio_error(response, 413, 20001)
    assert sandbox.client.flex_api.v1.flex_flow.list()  # still serving


def test_health_and_unknown_agent_task(sandbox: Sandbox) -> None:
    health = requests.get(sandbox.base_url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    missing = sandbox.agent("POST", "/agent/api/tasks/WT000/accept", {"agent": "a"})
    assert missing.status_code == 404 and "error" in missing.json()
    assert sandbox.agent("POST", "/agent/api/tasks/WT000/accept", None).status_code in (400, 404)
