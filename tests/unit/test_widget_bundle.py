"""The checked-in widget bundle is what its sources build to, and the widget's JS logic tests pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from northwind.processes import ROOT

WIDGET = ROOT / "bot" / "northwind" / "widget"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def widget_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the widget's sources with its pinned npm dependencies installed."""
    assert shutil.which("npm"), "Node.js/npm are needed to build the widget"
    work = tmp_path_factory.mktemp("widget")
    for name in ("src", "test", "package.json", "package-lock.json", "build.mjs"):
        source = WIDGET / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    (work / "static").mkdir()
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, check=True, capture_output=True, timeout=300)
    return work


def test_checked_in_bundle_matches_the_sources(widget_checkout: Path) -> None:
    subprocess.run(["npm", "run", "build"], cwd=widget_checkout, check=True, capture_output=True, timeout=120)
    built = (widget_checkout / "static" / "widget.js").read_bytes()
    assert built == (WIDGET / "static" / "widget.js").read_bytes(), (
        "bot/northwind/widget/static/widget.js is stale: run `make widget` and commit it"
    )


def test_widget_logic_tests_pass(widget_checkout: Path) -> None:
    result = subprocess.run(["npm", "test"], cwd=widget_checkout, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
