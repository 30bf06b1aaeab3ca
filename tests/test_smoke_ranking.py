"""On the bundled samples (the smoke profile) the reference solutions rank as they do on the full data.

Issue 13: the README quick start measures the references on the smoke profile before grading anything,
and the rubric's thresholds are relative to those measurements. If a strong reference loses to the
baseline there ("Approaches the best reference" then compares with the baseline itself), a newcomer
concludes the grader is broken. This trains every reference of every exercise once, through the real
CLI on a fresh GRADER_HOME, at each exercise's own seed (13 jobs, about 5 minutes on 2 busy cores), and
checks the orderings that docs/validation.md measured, with their spread over several seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_queue import stop_workers

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("grader")
GRADER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "grader"]
EXERCISES = ("fashion_mnist", "mnist", "asl")
# An ordering must hold by this many accuracy points at the exercise's seed. The smallest gap that
# docs/validation.md measured for an asserted ordering, over 3 or 4 seeds, is larger than this.
MARGIN = 0.03
DENSE = ("baseline", "fc512", "fc512x3")  # MNIST's dense rungs; "baseline" is fc64
CONV = ("cnn1", "cnn2", "cnn_dropout", "cnn_bn")


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """Public accuracy of each reference, per exercise, measured on the smoke profile."""
    base = tmp_path_factory.mktemp("ranking")
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update(GRADER_HOME=str(home), GRADER_COURSE_DIR=str(REPO), GRADER_CONFIG=str(base / "no-config.toml"),
               COLUMNS="200")

    def cli(*args: str, timeout: float = 300) -> str:
        proc = subprocess.run([*GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=base)
        assert proc.returncode == 0, f"grader {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    try:
        cli("references", "compute", "--all", "--profile", "smoke", timeout=3600)
        out: dict[str, dict[str, float]] = {}
        for exercise in EXERCISES:
            rows = json.loads(cli("references", "list", "--exercise", exercise, "--profile", "smoke", "--json"))
            assert all(r["state"] == "done" for r in rows), rows
            out[exercise] = {r["name"]: r["public_accuracy"] for r in rows}
    finally:
        stop_workers(home)
    return out


def below(accuracies: dict[str, float], low: str, high: str) -> None:
    a, b = accuracies[low], accuracies[high]
    assert a + MARGIN <= b, f"{low} ({a:.1%}) should rank below {high} ({b:.1%}) by {MARGIN:.0%}: {accuracies}"


def test_fashion_baseline_ranks_below_both_stronger_references(measured: dict[str, dict[str, float]]) -> None:
    acc = measured["fashion_mnist"]
    assert set(acc) >= {"baseline", "vgg_bn", "wide_cnn_cosine"}
    for name in acc.keys() - {"baseline"}:
        below(acc, "baseline", name)


def test_mnist_convolutions_beat_the_dense_baseline_and_batch_norm_trains(
        measured: dict[str, dict[str, float]]) -> None:
    acc = measured["mnist"]
    assert set(acc) == {*DENSE, *CONV}
    for conv in CONV:
        below(acc, "baseline", conv)
    # Batch norm has settled (it scored near chance with Keras' default momentum): near the other CNNs.
    assert acc["cnn_bn"] >= min(acc[c] for c in ("cnn1", "cnn2", "cnn_dropout")) - MARGIN, acc
    # The best convolutional rung beats the best dense one (a gap of 1-2 points on the full data; 2-4
    # on the sample). fc512 and fc512x3 against cnn1 alone are a tie on the sample and under a
    # point apart on the full data, so that pair is not asserted (docs/validation.md).
    assert max(acc[d] for d in DENSE) + 0.01 <= max(acc[c] for c in CONV), acc


# One run's spread on the smoke profile (docs/validation.md, 13 twelve-epoch runs of each): augmentation is
# ahead on average (+2.5 points) but the difference of a single pair of runs spreads by 5.1 points, so one
# seed cannot order them more finely than this.
ASL_SEED_NOISE = 0.06


def test_asl_cnns_beat_the_dense_baseline_and_augmentation_is_not_below_the_cnn(
        measured: dict[str, dict[str, float]]) -> None:
    acc = measured["asl"]
    assert set(acc) == {"baseline", "cnn", "cnn_augment"}
    below(acc, "baseline", "cnn")
    below(acc, "baseline", "cnn_augment")
    assert acc["cnn_augment"] >= acc["cnn"] - ASL_SEED_NOISE, acc


@pytest.mark.parametrize("exercise", EXERCISES)
def test_best_reference_is_really_better_than_the_baseline(measured: dict[str, dict[str, float]],
                                                           exercise: str) -> None:
    """"Approaches the best reference" compares with a reference that is not the baseline, and the
    baseline itself is outside that criterion's partial band (1% + 4% in every rubric)."""
    acc = measured[exercise]
    best = max(acc, key=lambda name: acc[name])
    assert best != "baseline", acc
    assert acc[best] - acc["baseline"] > 0.05, acc
