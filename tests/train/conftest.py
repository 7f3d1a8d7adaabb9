import time
from pathlib import Path

import pytest
from cli_runs import train

REFERENCE_SECONDS = "wall_seconds.txt"  # next to the reference run: how long it took


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The smoke config trained once, uninterrupted: what every resumed run must equal."""
    out = tmp_path_factory.mktemp("reference") / "run"
    started = time.perf_counter()
    result = train(out)
    assert result.returncode == 0, result.stderr[-3000:]
    (out.parent / REFERENCE_SECONDS).write_text(f"{time.perf_counter() - started:.3f}")
    return out


@pytest.fixture(scope="session")
def reference_seconds(reference_run) -> float:
    """Wall time of the reference run (process start to exit), for random kill moments."""
    return float((reference_run.parent / REFERENCE_SECONDS).read_text())
