"""Scoring (trusted side, pure NumPy): predictions + held-out labels → Metrics.

Predictions come from an untrusted run directory: they are loaded with pickling off, size- and
shape-checked, and every number here is recomputed from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from grader.errors import ResultError
from grader.specs.exercise import ExerciseSpec

if TYPE_CHECKING:  # NumPy is imported by the functions that compute, not by readers of stored metrics
    import numpy as np


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


class Breakdown(BaseModel):
    """Per-class accuracy and the confusion matrix of one part of the held-out set."""

    per_class: list[ClassScore]
    confusion: list[list[int]] = Field(description="Rows: true label, columns: predicted label (used labels only).")
    labels: list[int] = Field(description="Label of each confusion row/column.")
    most_confused: list[ConfusedPair]
    n: int = Field(description="Images in this part.")

    def weakest(self, n: int = 3) -> list[ClassScore]:
        return sorted((c for c in self.per_class if c.support), key=lambda c: (c.accuracy, c.label))[:n]


class Metrics(BaseModel):
    """Everything measured about one run; stored as JSON, compared by the rubric.

    The top-level breakdown covers the whole held-out set and is for instructors; a participant
    sees `public` only, so no figure on their screen reveals the private half before it is shown.
    """

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
    public: Breakdown | None = Field(default=None, description="The same breakdown over the public half only.")

    def board_accuracy(self, board: str) -> float:
        return {"public": self.public_accuracy, "private": self.private_accuracy, "overall": self.accuracy}[board]

    def weakest(self, n: int = 3) -> list[ClassScore]:
        return sorted(self.per_class, key=lambda c: (c.accuracy, c.label))[:n]

    def for_participant(self) -> Metrics:
        """What its owner may see while the private board is hidden: public-half figures only."""
        pub = self.public or Breakdown(per_class=[], confusion=[], labels=self.labels, most_confused=[], n=0)
        return self.model_copy(update={"accuracy": self.public_accuracy, "private_accuracy": 0.0,
                                       "per_class": pub.per_class, "confusion": pub.confusion,
                                       "most_confused": pub.most_confused, "n_heldout": pub.n})


def check_labels(arr: np.ndarray, valid_labels: list[int], name: str) -> np.ndarray:
    """Predictions as int64, refusing any label outside the exercise's label set."""
    import numpy as np

    out = arr.astype(np.int64)
    if not np.isin(out, valid_labels).all():
        raise ResultError(f"{name} contains labels outside the exercise's label set")
    return out


def _accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float((pred == true).mean()) if len(true) else 0.0


def breakdown(pred: np.ndarray, labels: np.ndarray, spec: ExerciseSpec, top_pairs: int = 5) -> Breakdown:
    import numpy as np

    used = spec.labels.used
    position = np.full(max(used) + 1, -1, dtype=np.int64)
    position[used] = np.arange(len(used))
    conf = np.zeros((len(used), len(used)), dtype=np.int64)
    np.add.at(conf, (position[labels], position[pred]), 1)
    per_class = []
    for lab, row in zip(used, conf, strict=True):
        support = int(row.sum())
        per_class.append(ClassScore(label=lab, name=spec.class_name(lab), support=support,
                                    accuracy=float(row[position[lab]] / support) if support else 0.0))
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
    return Breakdown(per_class=per_class, confusion=conf.tolist(), labels=used, most_confused=pairs, n=len(labels))


def score(pred: np.ndarray, labels: np.ndarray, public: np.ndarray, spec: ExerciseSpec,
          train_pred: np.ndarray | None = None, train_labels: np.ndarray | None = None,
          top_pairs: int = 5) -> Metrics:
    """Compute all metrics; pure function of its arguments."""
    whole = breakdown(pred, labels, spec, top_pairs)
    public_acc = _accuracy(pred[public], labels[public])
    train_acc = None
    if train_pred is not None and train_labels is not None and len(train_labels):
        train_acc = _accuracy(train_pred, train_labels)
    return Metrics(
        accuracy=_accuracy(pred, labels), public_accuracy=public_acc,
        private_accuracy=_accuracy(pred[~public], labels[~public]), train_accuracy=train_acc,
        generalization_gap=None if train_acc is None else train_acc - public_acc,
        per_class=whole.per_class, confusion=whole.confusion, labels=whole.labels, most_confused=whole.most_confused,
        n_heldout=len(labels), public=breakdown(pred[public], labels[public], spec, top_pairs),
    )
