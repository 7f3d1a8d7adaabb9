"""The ``table`` scorer: TabDDPM machine-learning efficiency of generated rows (a classifier
trained on them against one trained on real rows, both tested on held-out real rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ...checks import check_int
from ...configio import ConfigError
from ...data.metadata import dataset_metadata
from ...data.splits import load_phase_data
from ..tabular import CLASSIFIERS, ml_efficiency
from .common import ScoringJob, generate

HEADLINE = (
    ("synthetic_accuracy", True),
    ("real_accuracy", True),
    ("ratio", True),
    ("f1_ratio", True),
)


@dataclass
class TableSettings:
    """phase: the tabular phase; classifier: ml_efficiency's classifier kind; sample_batch:
    rows per sampler call. As many rows are generated as the real training split has."""

    phase: str
    classifier: str = "random_forest"
    sample_batch: int = 512

    def __post_init__(self):
        check_int("sample_batch", self.sample_batch, 1)
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"classifier must be one of {list(CLASSIFIERS)}, got {self.classifier!r}"
            )


def score_table(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    meta = dataset_metadata(data.train)
    if not meta.get("target_column"):
        raise ConfigError("eval.phase", f"the data of phase {phase.name!r} has no target column")
    real_train, real_test = data.train.to_pandas(), data.validation.to_pandas()
    synthetic = pd.concat(
        generate(job, phase.name, len(real_train), settings.sample_batch), ignore_index=True
    )
    synthetic.to_csv(job.eval_dir / "synthetic.csv", index=False)
    report = ml_efficiency(
        synthetic,
        real_train,
        real_test,
        meta["target_column"],
        meta.get("categorical_columns") or [],
        seed=job.seed,
        classifier=settings.classifier,
    )
    report["missing_classes"] = len(report["missing_classes"])
    return report
