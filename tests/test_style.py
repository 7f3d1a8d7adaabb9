"""The code base passes ruff (lint and format), configured in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["qgfd_diffusion", "tests", "benchmarks"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    # ruff comes with the test extra: pip install -e ".[test]"
    ruff = [sys.executable, "-m", "ruff"]
    result = subprocess.run([*ruff, *command, *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
