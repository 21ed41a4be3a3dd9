"""A bot that loads the plugin's channel without what the handoff needs does not start.

The starter bot of `rasa init` (its model trained without the handoff) with the plugin's
socket.io channel added by hand, as a user who skipped `rasa-flex-handoff init` would: the Rasa
server must stop once its model is loaded, naming what the domain lacks, in one line. Then the
same bot's action server importing the handoff actions without the settings must stop too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import free_port
from tests.adoption.conftest import Venv, run


def starter_copy(fresh_project: Path, tmp_path: Path) -> Path:
    bot = tmp_path / "bot"
    shutil.copytree(fresh_project, bot)
    return bot


def test_the_rasa_server_names_what_the_bots_domain_lacks(venv: Venv, fresh_project: Path, tmp_path: Path) -> None:
    bot = starter_copy(fresh_project, tmp_path)
    with (bot / "credentials.yml").open("a") as credentials:
        credentials.write("\nrasa_flex_handoff.SocketIOInput:\n  session_persistence: true\n")
    port = free_port()
    env = venv.env(
        **DEVELOPMENT.as_env(), TWILIO_API_BASE=f"http://127.0.0.1:{free_port()}", PUBLIC_URL=f"http://127.0.0.1:{port}"
    )
    result = run([venv.python, "-m", "rasa", "run", "--port", port, "--interface", "127.0.0.1"], cwd=bot, env=env, timeout=300)
    assert result.returncode != 0, result.stdout[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("HandoffSetupError:")]
    assert lines, result.stdout[-3000:]
    assert "intents talk_to_agent, end_chat" in lines[0]
    assert "slots handoff_status" in lines[0] and "actions action_handoff_to_agent" in lines[0]
    assert "rasa-flex-handoff init" in lines[0]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]


def test_the_action_server_names_the_missing_settings(venv: Venv, fresh_project: Path, tmp_path: Path) -> None:
    bot = starter_copy(fresh_project, tmp_path)
    with (bot / "actions" / "__init__.py").open("a") as package:
        package.write("from rasa_flex_handoff.actions import ActionEndHandoff, ActionHandoffToAgent, ActionRelayToAgent\n")
    env = venv.env(TWILIO_ACCOUNT_SID=DEVELOPMENT.account_sid)
    result = run([venv.python, "-m", "rasa_sdk", "--actions", "actions", "--port", free_port()], cwd=bot, env=env, timeout=120)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "missing TWILIO_AUTH_TOKEN, TWILIO_API_KEY, TWILIO_API_SECRET, PUBLIC_URL" in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
