"""The assistant's training data and dialogue behaviour, through Rasa's own CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, rasa

pytestmark = pytest.mark.timeout(900)

MIN_F1 = 0.85
MIN_F1_TALK_TO_AGENT = 0.95


def test_training_data_is_valid() -> None:
    result = rasa("data", "validate", "--fail-on-warnings")
    assert result.returncode == 0, result.stdout[-4000:]


def test_dialogue_stories_predict_every_action(trained_model: Path, output_dir: Path) -> None:
    out = output_dir / "core"
    result = rasa(
        "test",
        "core",
        "-m",
        str(trained_model),
        "--stories",
        str(ROOT / "tests" / "stories"),
        "--out",
        str(out),
        "--fail-on-prediction-errors",
        "--no-plot",
    )
    failed = out / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else result.stdout[-4000:]
    assert result.returncode == 0, detail


def test_nlu_held_out_f1(trained_model: Path, output_dir: Path) -> None:
    out = output_dir / "nlu"
    result = rasa(
        "test",
        "nlu",
        "-m",
        str(trained_model),
        "--nlu",
        str(ROOT / "tests" / "nlu" / "test_nlu.yml"),
        "--out",
        str(out),
        "--no-plot",
    )
    assert result.returncode == 0, result.stdout[-4000:]
    report = json.loads((out / "intent_report.json").read_text())
    scores = {
        name: v["f1-score"]
        for name, v in report.items()
        if isinstance(v, dict) and "support" in v and name not in ("macro avg", "weighted avg", "micro avg", "accuracy")
    }
    print("\nintent F1 on the held-out set:")
    for name, f1 in sorted(scores.items()):
        print(f"  {name:22s} {f1:.3f}")
    assert scores.get("talk_to_agent", 0) >= MIN_F1_TALK_TO_AGENT, scores
    weak = {name: f1 for name, f1 in scores.items() if f1 < MIN_F1}
    assert not weak, f"intents below {MIN_F1}: {weak}"


def test_held_out_set_is_not_in_training_data() -> None:
    """Guards the NLU evaluation itself: a test sentence copied into training would inflate F1."""

    def sentences(path: Path) -> set:
        return {
            line.strip()[2:].strip().lower()
            for line in path.read_text().splitlines()
            if line.strip().startswith("- ")
            and not line.strip().startswith("- intent:")
            and not line.strip().startswith("- regex:")
        }

    overlap = sentences(ROOT / "tests" / "nlu" / "test_nlu.yml") & sentences(ROOT / "data" / "nlu.yml")
    assert not overlap, overlap
