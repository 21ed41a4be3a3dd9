"""Both servers refuse to start without the settings the handoff needs, saying so in one line.

A deployment that forgot a variable must fail at start, naming it, rather than run a bot whose
handoff does nothing (or, worse, talks to a sandbox). The processes here exit on their own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict

from northwind.processes import ROOT, VENV_BIN, free_port
from northwind.servers import base_env


def without(env: Dict[str, str], *names: str) -> Dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


def run(args: list, env: Dict[str, str], cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess:
    full = {**without(dict(os.environ), *base_env("http://x").keys(), "PUBLIC_URL", "FLEX_MODE"), **env}
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.run(args, cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def run_rasa(model: Path, tmp_path: Path, credentials: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """`rasa run` with these channels until it exits (it is expected to stop at start)."""
    path = tmp_path / "credentials.yml"
    path.write_text(credentials)
    args = ["run", "-m", str(model), "--credentials", str(path), "--port", str(free_port()), "--interface", "127.0.0.1"]
    return run([str(VENV_BIN / "rasa"), *args], env)


def test_the_action_server_stops_naming_each_missing_or_malformed_setting() -> None:
    env = {**without(base_env("http://127.0.0.1:1"), "TWILIO_AUTH_TOKEN"), "TWILIO_API_KEY": "not-a-key"}
    result = run([str(VENV_BIN / "rasa"), "run", "actions", "--port", str(free_port()), "--actions", "actions"], env)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "missing TWILIO_AUTH_TOKEN, PUBLIC_URL" in result.stdout, result.stdout[-3000:]
    assert "malformed TWILIO_API_KEY (expected SK followed by 32 hex digits)" in result.stdout
    assert "Traceback" not in result.stdout, result.stdout[-3000:]


def test_the_action_server_stops_when_the_bots_summariser_cannot_be_imported() -> None:
    summariser = {"HANDOFF_SUMMARISER": "actions.nowhere:summarise"}
    env = {**base_env("http://127.0.0.1:1"), "PUBLIC_URL": "http://127.0.0.1:5005", **summariser}
    result = run([str(VENV_BIN / "rasa"), "run", "actions", "--port", str(free_port()), "--actions", "actions"], env)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "HANDOFF_SUMMARISER: cannot import actions.nowhere (ModuleNotFoundError" in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]


def test_the_rasa_server_stops_naming_a_missing_setting(trained_model: Path, tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:1")  # no PUBLIC_URL
    result = run_rasa(trained_model, tmp_path, "rasa_flex_handoff.SocketIOInput:\n  session_persistence: true\n", env)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "HandoffSetupError: Flex handoff settings: missing PUBLIC_URL" in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]


def test_a_channel_may_set_a_setting_in_credentials_yml(trained_model: Path, tmp_path: Path) -> None:
    """`public_url: ${VAR}` in the channel's credentials stands in for PUBLIC_URL (Rasa interpolates it)."""
    credentials = "rasa_flex_handoff.RestInput:\n  public_url: ${WIDGET_PUBLIC_URL}\n  twilio_timeout: soon\n"
    env = {**base_env("http://127.0.0.1:1"), "WIDGET_PUBLIC_URL": "https://widget.example.com"}
    result = run_rasa(trained_model, tmp_path, credentials, env)
    # PUBLIC_URL came from credentials.yml, so the only problem left is the channel's own bad value.
    assert "HandoffSetupError: Flex handoff settings: malformed TWILIO_TIMEOUT (expected a float)" in result.stdout, (
        result.stdout[-3000:]
    )
    assert "missing" not in result.stdout.split("HandoffSetupError")[1].splitlines()[0]
