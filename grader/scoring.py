"""Scoring (trusted side, pure NumPy): predictions + held-out labels → Metrics.

Predictions come from an untrusted run directory: they are loaded with pickling off, size- and
shape-checked, and every number here is recomputed from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from grader.errors import ResultError
from grader.specs.exercise import ExerciseSpec


class ClassScore(BaseModel):
    label: int
    name: str
    accuracy: float
    support: int


class ConfusedPair(BaseModel):
    true_label: int
    true_name: str
    predicted_label: int
    predicted_name: str
    count: int
    rate: float = Field(description="Share of the true class predicted as the other class.")


class Metrics(BaseModel):
    """Everything measured about one run; stored as JSON, compared by the rubric."""

    accuracy: float = Field(description="Over the whole held-out split (instructors only).")
    public_accuracy: float
    private_accuracy: float
    train_accuracy: float | None = Field(description="On a fixed training subset, in inference mode.")
    generalization_gap: float | None = Field(description="train_accuracy - public_accuracy.")
    per_class: list[ClassScore]
    confusion: list[list[int]] = Field(description="Rows: true label, columns: predicted label (used labels only).")
    labels: list[int] = Field(description="Label of each confusion row/column.")
    most_confused: list[ConfusedPair]
    n_heldout: int

    def board_accuracy(self, board: str) -> float:
        return {"public": self.public_accuracy, "private": self.private_accuracy, "overall": self.accuracy}[board]

    def weakest(self, n: int = 3) -> list[ClassScore]:
        return sorted(self.per_class, key=lambda c: (c.accuracy, c.label))[:n]


def load_predictions(path: Path, expected: int, valid_labels: list[int]) -> np.ndarray:
    """Read an untrusted .npy of integer labels; refuse anything odd instead of guessing."""
    if not path.exists():
        raise ResultError(f"{path.name} is missing")
    limit = 1024 + expected * 8
    if path.stat().st_size > limit:
        raise ResultError(f"{path.name} is larger than {expected} predictions can be")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ResultError(f"{path.name} is not a valid .npy array ({exc})") from None
    if arr.shape != (expected,) or not np.issubdtype(arr.dtype, np.integer):
        raise ResultError(f"{path.name} has shape {arr.shape} and dtype {arr.dtype}; expected ({expected},) integers")
    arr = arr.astype(np.int64)
    if not np.isin(arr, valid_labels).all():
        raise ResultError(f"{path.name} contains labels outside the exercise's label set")
    return arr


def _accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float((pred == true).mean()) if len(true) else 0.0


def score(pred: np.ndarray, labels: np.ndarray, public: np.ndarray, spec: ExerciseSpec,
          train_pred: np.ndarray | None = None, train_labels: np.ndarray | None = None,
          top_pairs: int = 5) -> Metrics:
    """Compute all metrics; pure function of its arguments."""
    used = spec.labels.used
    index = {lab: i for i, lab in enumerate(used)}
    conf = np.zeros((len(used), len(used)), dtype=np.int64)
    np.add.at(conf, (np.vectorize(index.get)(labels), np.vectorize(index.get)(pred)), 1)
    per_class = []
    for lab, row in zip(used, conf, strict=True):
        support = int(row.sum())
        per_class.append(ClassScore(label=lab, name=spec.class_name(lab), support=support,
                                    accuracy=float(row[index[lab]] / support) if support else 0.0))
    pairs = []
    off = conf.copy()
    np.fill_diagonal(off, 0)
    for flat in np.argsort(-off, axis=None, kind="stable")[:top_pairs]:
        i, j = divmod(int(flat), len(used))
        if off[i, j] == 0:
            break
        pairs.append(ConfusedPair(true_label=used[i], true_name=spec.class_name(used[i]), predicted_label=used[j],
                                  predicted_name=spec.class_name(used[j]), count=int(off[i, j]),
                                  rate=float(off[i, j] / max(conf[i].sum(), 1))))
    public_acc = _accuracy(pred[public], labels[public])
    train_acc = None
    if train_pred is not None and train_labels is not None and len(train_labels):
        train_acc = _accuracy(train_pred, train_labels)
    return Metrics(
        accuracy=_accuracy(pred, labels), public_accuracy=public_acc,
        private_accuracy=_accuracy(pred[~public], labels[~public]), train_accuracy=train_acc,
        generalization_gap=None if train_acc is None else train_acc - public_acc,
        per_class=per_class, confusion=conf.tolist(), labels=used, most_confused=pairs, n_heldout=len(labels),
    )
