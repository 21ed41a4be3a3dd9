"""Each side of a deployment imports with only its own dependencies.

The action server is a stock rasa-sdk image plus `rasa-flex-handoff[actions]`: no Rasa, no
python-socketio, no Redis client. The sandbox (`[sandbox]`) needs neither Rasa nor rasa-sdk.
Each import runs in a fresh interpreter where those packages cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKER = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {absent!r}:
            raise ImportError("not installed on this side: " + name)
sys.meta_path.insert(0, Absent())
{code}
"""


def import_without(absent: set, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(absent=absent, code=code)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("side", "absent", "code"),
    [
        (
            "action server",
            {"rasa", "socketio", "engineio", "redis", "tensorflow"},
            "from rasa_flex_handoff.actions import ActionEndHandoff, ActionHandoffToAgent, ActionRelayToAgent",
        ),
        ("sandbox", {"rasa", "rasa_sdk", "socketio", "tensorflow"}, "import flex_sandbox.app, flex_sandbox.__main__"),
        ("CLI", {"rasa", "rasa_sdk", "socketio", "tensorflow"}, "import rasa_flex_handoff.cli; import rasa_flex_handoff"),
    ],
)
def test_a_side_imports_with_only_its_own_dependencies(side: str, absent: set, code: str) -> None:
    result = import_without(absent, code)
    assert result.returncode == 0, f"{side}: {result.stderr[-2000:]}"


def test_the_blocker_really_blocks() -> None:
    result = import_without({"rasa"}, "import rasa_flex_handoff.policy")
    assert result.returncode != 0 and "not installed on this side: rasa" in result.stderr
