"""Scoring is a pure function of predictions and labels; predictions from a run dir are distrusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grader.scoring import Metrics, score
from grader.specs.catalog import ExerciseCatalog

REPO = Path(__file__).resolve().parents[1]
CATALOG = ExerciseCatalog(REPO)
MNIST = CATALOG.get("mnist")
ASL = CATALOG.get("asl")
FASHION = CATALOG.get("fashion_mnist")


def test_hand_computed_metrics() -> None:
    #            0  1  2  3  4  5  6  7  8  9
    labels = np.array([0, 0, 0, 0, 1, 1, 7, 7, 7, 9])
    pred = np.array([0, 0, 0, 6, 1, 7, 1, 1, 7, 9])
    public = np.array([True, True, False, False, True, True, False, False, True, True])
    train_pred, train_labels = np.array([0, 1, 7, 7]), np.array([0, 1, 7, 9])
    m = score(pred, labels, public, MNIST, train_pred, train_labels)
    assert m.accuracy == pytest.approx(6 / 10)
    assert m.public_accuracy == pytest.approx(5 / 6)  # indices 0 1 4 5 8 9: wrong only at 5
    assert m.private_accuracy == pytest.approx(1 / 4)  # indices 2 3 6 7: right only at 2
    assert m.train_accuracy == pytest.approx(3 / 4)
    assert m.generalization_gap == pytest.approx(3 / 4 - 5 / 6)
    assert m.n_heldout == 10
    by_label = {c.label: c for c in m.per_class}
    assert (by_label[0].accuracy, by_label[0].support) == (pytest.approx(0.75), 4)
    assert (by_label[1].accuracy, by_label[1].support) == (pytest.approx(0.5), 2)
    assert (by_label[7].accuracy, by_label[7].support) == (pytest.approx(1 / 3), 3)
    assert (by_label[9].accuracy, by_label[9].support) == (1.0, 1)
    assert (by_label[3].accuracy, by_label[3].support) == (0.0, 0)  # absent class: no support, no crash
    assert m.labels == list(range(10))
    conf = np.array(m.confusion)
    assert conf.shape == (10, 10)
    assert conf.sum() == 10
    assert conf[7, 1] == 2 and conf[0, 6] == 1 and conf[1, 7] == 1 and conf[0, 0] == 3
    np.testing.assert_array_equal(conf.sum(axis=1), np.bincount(labels, minlength=10))
    # most confused: by count, then in label order; each names both classes
    pairs = [(p.true_name, p.predicted_name, p.count) for p in m.most_confused]
    assert pairs == [("7", "1", 2), ("0", "6", 1), ("1", "7", 1)]
    assert m.most_confused[0].rate == pytest.approx(2 / 3)
    assert [c.label for c in m.weakest(3)] == [2, 3, 4]  # empty classes sort first at 0.0, then by label


def test_most_confused_pairs_use_class_names() -> None:
    labels = np.array([0] * 5 + [6] * 5 + [9] * 4)  # T-shirt/top, Shirt, Ankle boot
    pred = np.array([6, 6, 6, 0, 0, 0, 0, 6, 6, 6, 7, 9, 9, 9])
    m = score(pred, labels, np.ones(len(labels), bool), FASHION)
    names = [(p.true_name, p.predicted_name, p.count, round(p.rate, 2)) for p in m.most_confused]
    assert names[0] == (FASHION.class_name(0), FASHION.class_name(6), 3, 0.6)
    assert names[1] == (FASHION.class_name(6), FASHION.class_name(0), 2, 0.4)
    assert names[2] == (FASHION.class_name(9), FASHION.class_name(7), 1, 0.25)
    assert FASHION.class_name(6) == "Shirt"


def test_top_pairs_limit_and_perfect_predictions() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    noisy = score(rng.integers(0, 10, 400), labels, np.ones(400, bool), MNIST, top_pairs=4)
    assert len(noisy.most_confused) == 4
    counts = [p.count for p in noisy.most_confused]
    assert counts == sorted(counts, reverse=True)
    perfect = score(labels, labels, np.ones(400, bool), MNIST)
    assert perfect.accuracy == 1.0 and perfect.most_confused == []
    assert np.array_equal(np.diag(perfect.confusion), np.bincount(labels, minlength=10))


def test_asl_scores_in_raw_label_space_with_letter_names() -> None:
    used = ASL.labels.used
    labels = np.repeat(np.array(used), 2)
    pred = labels.copy()
    pred[labels == 10] = 11  # every K taken for L
    m = score(pred, labels, np.arange(len(labels)) % 2 == 0, ASL)
    assert m.labels == used and 9 not in m.labels
    assert len(m.per_class) == 24 and np.array(m.confusion).shape == (24, 24)
    assert [c.name for c in m.per_class][:10] == list("ABCDEFGHIK")
    (pair,) = m.most_confused
    assert (pair.true_name, pair.predicted_name, pair.count, pair.rate) == ("K", "L", 2, 1.0)
    assert m.accuracy == pytest.approx(46 / 48)
    assert m.public_accuracy == m.private_accuracy == pytest.approx(23 / 24)


def test_gap_needs_train_predictions() -> None:
    labels = np.arange(10)
    m = score(labels, labels, np.ones(10, bool), MNIST)
    assert m.train_accuracy is None and m.generalization_gap is None
    m = score(labels, labels, np.ones(10, bool), MNIST, np.zeros(4, int), np.array([0, 0, 1, 1]))
    assert m.train_accuracy == 0.5 and m.generalization_gap == pytest.approx(-0.5)


def test_board_accuracy_and_round_trip() -> None:
    labels = np.array([0, 1, 2, 3])
    m = score(np.array([0, 1, 0, 0]), labels, np.array([True, True, False, False]), MNIST)
    assert (m.board_accuracy("public"), m.board_accuracy("private"), m.board_accuracy("overall")) == (1.0, 0.0, 0.5)
    assert Metrics.model_validate_json(m.model_dump_json()) == m


def test_score_is_pure() -> None:
    rng = np.random.default_rng(1)
    labels, pred, public = rng.integers(0, 10, 300), rng.integers(0, 10, 300), rng.random(300) < 0.5
    copies = labels.copy(), pred.copy(), public.copy()
    assert score(pred, labels, public, MNIST) == score(pred, labels, public, MNIST)
    for a, b in zip((labels, pred, public), copies, strict=True):
        np.testing.assert_array_equal(a, b)
