"""The scripts in benchmarks/ import their harness package as ``harness``, their folder being on
``sys.path`` when run as ``python benchmarks/NAME.py``; the tests of them see it the same way."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))
