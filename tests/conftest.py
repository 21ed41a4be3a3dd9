"""Fixtures shared by every suite: output folders and the trained model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from northwind.processes import ROOT, VENV_BIN

OUTPUT = ROOT / "tests" / ".output"
MODELS = ROOT / "models"

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rasa(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the rasa CLI from the project root and return its combined output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(VENV_BIN / "rasa"), *args],
        cwd=ROOT,
        env=env,
        timeout=timeout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The project's model, trained only when the training data changed (Rasa's fingerprint)."""
    result = rasa("train", "--fixed-model-name", "northwind", "--out", str(MODELS))
    assert result.returncode == 0, result.stdout[-4000:]
    model = MODELS / "northwind.tar.gz"
    assert model.is_file(), result.stdout[-2000:]
    return model
