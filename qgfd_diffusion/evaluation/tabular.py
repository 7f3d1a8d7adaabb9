"""Machine-learning efficiency of synthetic tables (TabDDPM, Kotelnikov et al. 2023, sec. 4).

Dimension legend: N rows, F feature columns (one-hot categoricals expand them), K classes.

One classifier recipe is trained twice: once on synthetic rows and once on the real training
rows; both are scored on the same real held-out rows. A generator whose rows are as useful as
real ones gives ratio = synthetic_accuracy / real_accuracy near 1. Classification targets only.

Features: numeric columns pass through; `categorical` columns (not the target) are one-hot
encoded with categories unknown to a fitted encoder mapped to all zeros. A synthetic table with
a single class trains a constant predictor of that class; classes missing from the synthetic
rows are listed under "missing_classes" (they can never be predicted, which the scores show).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target

ClassifierKind = Literal["random_forest", "gradient_boosting", "logistic_regression"]
FOREST_TREES = 200
LOGISTIC_MAX_ITER = 2000
SHOWN_LABELS = 5


CLASSIFIERS: dict[str, Callable[[int], Any]] = {
    "random_forest": lambda seed: RandomForestClassifier(
        n_estimators=FOREST_TREES, random_state=seed, n_jobs=1
    ),
    "gradient_boosting": lambda seed: GradientBoostingClassifier(random_state=seed),
    "logistic_regression": lambda seed: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=LOGISTIC_MAX_ITER)
    ),
}
"""Seeded, single-threaded scikit-learn classifiers by name (a fresh one per call)."""


def _check_table(table: Any, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """`table` must be a non-empty DataFrame holding `columns` with no missing values there."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    if len(table) == 0:
        raise ValueError(f"{name} has no rows")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(table.columns)}")
    if table[list(columns)].isna().any().any():
        bad = [c for c in columns if table[c].isna().any()]
        raise ValueError(f"{name} has missing values in column(s) {bad}")
    return table


def _feature_columns(
    real_train: pd.DataFrame, target: str, categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: every real column but the target."""
    if target not in real_train.columns:
        raise ValueError(
            f"unknown target column {target!r}; real_train has {list(real_train.columns)}"
        )
    unknown = [c for c in categorical if c not in real_train.columns]
    if unknown:
        raise ValueError(
            f"unknown categorical column(s) {unknown}; real_train has {list(real_train.columns)}"
        )
    categorical_features = [c for c in categorical if c != target]
    numeric = [c for c in real_train.columns if c != target and c not in categorical_features]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(real_train[column]):
            raise ValueError(
                f"column {column!r} is not numeric ({real_train[column].dtype}); "
                "list it in `categorical`"
            )
    return numeric, categorical_features


def _model(kind: ClassifierKind, seed: int, categorical: list[str], classes: np.ndarray) -> Any:
    """Encoder + classifier pipeline; a constant predictor when only one class is present."""
    encoder = (
        ColumnTransformer(  # one-hot categoricals; the numeric columns pass through
            [("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)],
            remainder="passthrough",
        )
        if categorical
        else "passthrough"
    )
    head = (
        DummyClassifier(strategy="most_frequent") if len(classes) < 2 else CLASSIFIERS[kind](seed)
    )
    return Pipeline([("encode", encoder), ("classify", head)])


def _fit_and_score(
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    numeric: list[str],
    categorical: list[str],
    kind: ClassifierKind,
    seed: int,
) -> dict[str, float]:
    """Train on `train`, score accuracy and macro F1 (over the test classes) on `test`."""
    columns = numeric + categorical
    labels_train = train[target].to_numpy()
    model = _model(kind, seed, categorical, np.unique(labels_train))
    model.fit(train[columns], labels_train)
    predicted = model.predict(test[columns])
    truth = test[target].to_numpy()
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(
            f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0)
        ),
    }


def _check_labels(synthetic: pd.Series, real: pd.Series, target: str) -> list[Any]:
    """Classification target check; returns the real classes the synthetic rows lack."""
    if type_of_target(real.to_numpy()) == "continuous":
        raise ValueError(f"target {target!r} is continuous; ml_efficiency scores classification")
    real_classes = set(real.tolist())
    unseen = sorted(set(synthetic.tolist()) - real_classes, key=str)
    if unseen:
        raise ValueError(
            f"synthetic target {target!r} has label(s) absent from the real data: "
            f"{unseen[:SHOWN_LABELS]} (real: {sorted(real_classes, key=str)})"
        )
    return sorted(real_classes - set(synthetic.tolist()), key=str)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def ml_efficiency(
    synthetic: pd.DataFrame,
    real_train: pd.DataFrame,
    real_test: pd.DataFrame,
    target: str,
    categorical: Sequence[str] = (),
    seed: int = 0,
    classifier: ClassifierKind = "random_forest",
) -> dict[str, Any]:
    """Train on synthetic rows vs on real training rows, test both on real held-out rows.

    Args:
        synthetic, real_train, real_test: tables [N, F + 1] with the same feature columns and
            the target (extra synthetic columns are ignored).
        target: name of the class column.
        categorical: categorical feature columns (one-hot encoded); the target may be listed.
        seed: seed of the classifier.
        classifier: "random_forest" (default), "gradient_boosting" or "logistic_regression".

    Returns {"synthetic_accuracy", "real_accuracy", "ratio", "synthetic_macro_f1",
    "real_macro_f1", "f1_ratio", "missing_classes", "synthetic_rows", "real_train_rows",
    "real_test_rows", "classifier"}.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {classifier!r}; allowed: {', '.join(CLASSIFIERS)}")
    real_train = _check_table(real_train, "real_train", [])
    numeric, categorical_features = _feature_columns(real_train, target, categorical)
    columns = [*numeric, *categorical_features, target]
    tables = {
        name: _check_table(table, name, columns)
        for name, table in (
            ("synthetic", synthetic),
            ("real_train", real_train),
            ("real_test", real_test),
        )
    }
    missing = _check_labels(tables["synthetic"][target], real_train[target], target)
    scores = {
        name: _fit_and_score(
            tables[name],
            tables["real_test"],
            target,
            numeric,
            categorical_features,
            classifier,
            seed,
        )
        for name in ("synthetic", "real_train")
    }
    synthetic_scores, real_scores = scores["synthetic"], scores["real_train"]
    return {
        "synthetic_accuracy": synthetic_scores["accuracy"],
        "real_accuracy": real_scores["accuracy"],
        "ratio": _ratio(synthetic_scores["accuracy"], real_scores["accuracy"]),
        "synthetic_macro_f1": synthetic_scores["macro_f1"],
        "real_macro_f1": real_scores["macro_f1"],
        "f1_ratio": _ratio(synthetic_scores["macro_f1"], real_scores["macro_f1"]),
        "missing_classes": missing,
        "synthetic_rows": len(synthetic),
        "real_train_rows": len(real_train),
        "real_test_rows": len(real_test),
        "classifier": classifier,
    }
