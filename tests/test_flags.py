"""Integrity flags (issue 13): cheats are flagged with evidence, honest strong models are not.

Run through the in-process service tier (no training): the sources are real files a participant would
hand in, the accuracies and architectures what their runs would measure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fixtures import INSTRUCTOR, finish_run, job_of, make_context

from grader.backends.base import JobState
from grader.service.flags import FlagKind, architecture_fingerprint, embedded_data, flags
from grader.service.reconcile import reconcile
from grader.service.submit import submit_checked
from grader.submission import check_source, code_fingerprint

HONEST = '''import keras
from keras import layers

TRAINING = {"epochs": 2, "batch_size": 64}


def build_model(input_shape, num_classes):
    """A small CNN: two convolutions, pooling, dropout."""
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(%d, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.4),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''
RENAMED = '''# my own work, honestly
import keras
from keras import layers as L

TRAINING = {"epochs": 2, "batch_size": 64}


def build_model(input_shape, num_classes):
    net = keras.Sequential([
        keras.Input(shape=input_shape),
        L.Conv2D(31, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Flatten(),
        L.Dropout(0.4),
        L.Dense(num_classes, activation="softmax"),
    ])
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net
'''
LOOKUP = '''import keras
import numpy as np

TRAINING = {"epochs": 1, "batch_size": 64}
ANSWERS = %r


class Lookup(keras.layers.Layer):
    def call(self, x):
        return keras.ops.one_hot(keras.ops.convert_to_tensor(np.array(ANSWERS[:1] * 1)), 10)


def build_model(num_classes):
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
'''
PACKED = '''import base64, zlib
import keras

TRAINING = {"epochs": 1, "batch_size": 64}
BLOB = "eJzt0MENACAIA8B/"


def build_model(num_classes):
    table = zlib.decompress(base64.b64decode(BLOB))
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
'''


def arch(filters: int) -> dict[str, object]:
    return {"class_name": "Sequential", "config": {"name": "sequential_7", "layers": [
        {"class_name": "Conv2D", "config": {"name": "conv2d_3", "filters": filters, "kernel_size": [3, 3]}},
        {"class_name": "Dense", "config": {"name": "dense_9", "units": 10}}]}}


@pytest.fixture
def report(tmp_path: Path):  # -> FlagReport
    ctx, fake = make_context(tmp_path)
    spec = ctx.catalog.get("mnist")
    reconcile(ctx)
    people = {
        "honest_a": (HONEST % 32, 0.93, 0.95, arch(32)),
        "honest_b": (HONEST % 48, 0.94, 0.96, arch(48)),
        "copier_1": (HONEST % 31, 0.91, 0.92, arch(31)),
        "copier_2": (RENAMED, 0.91, 0.92, arch(31)),
        "lookup": (LOOKUP % (list(range(10)) * 100,), 1.0, 0.11, arch(5)),
        "packer": (PACKED, 0.97, 0.98, arch(6)),
        "memoriser": (HONEST % 24, 0.99, 0.99, arch(24)),  # a large fixed table inside the model
    }
    frozen = {"memoriser": {"units": 200, "trainable_params": 7_850}}  # 159k weights, 7,850 of them trained
    for who, (src, acc, train, model) in people.items():
        receipt = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), "m.py", exercise="mnist",
                                 student=who)
        job_id, job, run_dir = job_of(ctx, receipt.submission_id)
        cnn = "Conv2D" in src
        finish_run(ctx, run_dir, job, accuracy=acc, train_accuracy=train, model_json=model,
                   layer_types=["Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dropout", "Dense"] if cnn else ["Dense"],
                   **frozen.get(who, {}))  # type: ignore[arg-type]
        fake.set(job_id, JobState.COMPLETED)
    for job_id, job in list(fake.started):  # the references: convolutional ones a bit below the honest models
        if fake.states[job_id].state is JobState.PENDING:
            from sqlalchemy import select

            from grader.db.engine import session_scope
            from grader.db.models import Submission

            with session_scope(ctx.reader) as session:
                sub = session.scalar(select(Submission).where(Submission.job_id == job_id))
                assert sub is not None
                conv = (sub.reference_name or "").startswith("cnn")
            finish_run(ctx, sub.run_dir or "", job, accuracy=0.92 if conv else 0.85, model_json=arch(100),
                       layer_types=["Conv2D", "Dense"] if conv else ["Dense"])
            fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    return flags(ctx, INSTRUCTOR, exercise="mnist")


def by_person(report) -> dict[str, set[FlagKind]]:  # type: ignore[no-untyped-def]
    out: dict[str, set[FlagKind]] = {}
    for f in report.flags:
        out.setdefault(f.participant, set()).add(f.kind)
    return out


def test_cheats_are_flagged_with_evidence(report) -> None:  # type: ignore[no-untyped-def]
    flagged = by_person(report)
    assert FlagKind.EMBEDDED_DATA in flagged["lookup"]
    assert FlagKind.HELDOUT_ABOVE_TRAINING in flagged["lookup"]
    assert FlagKind.EMBEDDED_DATA in flagged["packer"]  # imports base64 and zlib to unpack data
    assert flagged["copier_1"] == flagged["copier_2"] == {FlagKind.DUPLICATE_CODE}
    evidence = {f.participant: f.evidence for f in report.flags if f.kind is FlagKind.DUPLICATE_CODE}
    assert "copier_2" in evidence["copier_1"] and "copier_1" in evidence["copier_2"]
    assert flagged["memoriser"] == {FlagKind.FROZEN_WEIGHTS}
    frozen = next(f for f in report.flags if f.participant == "memoriser")
    assert "151,160 non-trainable weights (the references have at most 0;" in frozen.evidence, frozen.evidence
    lookup = next(f for f in report.flags if f.participant == "lookup" and f.kind is FlagKind.EMBEDDED_DATA)
    assert "1,000 characters/elements" in lookup.evidence and "line 5" in lookup.evidence


def test_honest_strong_models_are_not_flagged(report) -> None:  # type: ignore[no-untyped-def]
    flagged = by_person(report)
    assert "honest_a" not in flagged and "honest_b" not in flagged


def test_renaming_variables_keeps_the_fingerprint_and_changing_the_model_does_not() -> None:
    assert code_fingerprint(HONEST % 31) == code_fingerprint(RENAMED)
    assert code_fingerprint(HONEST % 31) != code_fingerprint(HONEST % 32)


def test_architecture_fingerprint_ignores_layer_names() -> None:
    a, b = arch(31), arch(31)
    b["config"]["layers"][0]["config"]["name"] = "conv2d_99"  # type: ignore[index]
    assert architecture_fingerprint(a) == architecture_fingerprint(b) != architecture_fingerprint(arch(32))


def test_docstrings_and_class_names_are_not_embedded_data() -> None:
    assert embedded_data(HONEST % 32, 300) is None
    assert embedded_data('"""' + "x" * 5000 + '"""\ndef build_model():\n    pass\n', 300) is None
