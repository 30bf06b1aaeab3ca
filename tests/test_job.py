"""The grading job for real: TensorFlow training on the bundled smoke samples, in subprocesses.

Each TensorFlow process costs 5-15 s on two cores, so there are only three: `grader run` twice
(end to end through the sandbox, and bit-identical), and one process that runs the job function
on a batch of run dirs, one per contract case. That batch runs without the supervisor (so without
Landlock, which a process can only tighten, never loosen between runs): the job then writes its
files directly, and the test writes the supervisor's "completed" report the real supervisor would.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest

from grader.backends.base import write_job_json
from grader.datasets import heldout_labels
from grader.errors import SubmissionError
from grader.outcomes import ErrorKind, Outcome
from grader.results import JobResult, SupervisorReport, Verdict, validate_result
from grader.rundir import RunDir
from grader.sandbox import build_env
from grader.service.ingest import Ingested, ingest
from grader.service.runs import prepare_run
from grader.settings import Settings
from grader.specs.catalog import ExerciseCatalog
from grader.submission import SubmissionInfo, check_source


def load_result(path: Path) -> JobResult:
    return validate_result(json.loads(path.read_text()))

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[1]
CATALOG = ExerciseCatalog(REPO)
NICE = ["nice", "-n", "10"]

DENSE = dedent('''\
    """A small dense MNIST model, left uncompiled: the exercise's default compile settings apply."""
    import keras

    TRAINING = {"epochs": 2, "batch_size": 64}


    def build_model(num_classes):
        return keras.Sequential([
            keras.Input(shape=(784,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ], name="dense32")
''')


# --- end to end: `grader run`, twice --------------------------------------------------------

@pytest.fixture(scope="module")
def two_cli_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[subprocess.CompletedProcess[str]], list[Path]]:
    # a hostile GRADER_HOME: every path of the pipeline (run dir, inputs, bwrap mounts) goes through it
    base = tmp_path_factory.mktemp("cli")
    home = base / "grader home; it's \"ünïcødé\""
    sub = base / "my model.py"
    sub.write_text(DENSE, encoding="utf-8")
    env = {**os.environ, "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO), "COLUMNS": "200",
           "GRADER_CONFIG": str(base / "no-config.toml")}
    procs = [subprocess.run([*NICE, sys.executable, "-m", "grader", "run", str(sub), "--exercise", "mnist",
                             "--profile", "smoke"], capture_output=True, text=True, env=env, timeout=600)
             for _ in range(2)]
    runs = sorted((home / "runs").iterdir())
    return procs, runs


def test_cli_run_end_to_end(two_cli_runs: tuple[list[subprocess.CompletedProcess[str]], list[Path]]) -> None:
    procs, runs = two_cli_runs
    for proc in procs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "✓ trained 25,450 parameters, 2 epochs × batch 64" in proc.stdout
        assert "held-out accuracy (public half):" in proc.stdout
        assert "Traceback" not in proc.stdout + proc.stderr
    assert len(runs) == 2
    assert runs[0].name in procs[0].stdout and runs[1].name in procs[1].stdout


def test_result_json_records_everything(two_cli_runs: tuple[list[subprocess.CompletedProcess[str]], list[Path]]) -> None:
    _, runs = two_cli_runs
    run = RunDir(runs[0])
    raw = json.loads(run.result_json.read_text())
    result = load_result(run.result_json)
    spec = CATALOG.get("mnist")
    assert result.outcome is Outcome.OK and result.error_kind is None and result.message is None
    # history: one record per epoch, with finite numbers
    assert [h.epoch for h in result.history] == [1, 2]
    assert all(h.loss is not None and h.accuracy is not None and h.seconds >= 0 for h in result.history)
    assert result.history[1].loss < result.history[0].loss
    # timings per phase
    assert {"import_tensorflow", "import_submission", "build", "fit", "predict", "total"} <= set(result.timings)
    # the model
    assert result.params == result.trainable_params == 784 * 32 + 32 + 32 * 10 + 10
    assert result.layer_types == ["Dense", "Dense"]
    assert "dense32" in (result.model_summary or "")
    assert (result.input_layout, result.output_units, result.label_encoding) == ("flat", 10, "raw")
    assert (result.epochs, result.batch_size) == (2, 64)
    assert result.optimizer == "Adam" and result.learning_rate == pytest.approx(spec.compile.learning_rate)
    assert result.loss == "sparse_categorical_crossentropy"  # softmax output: not from_logits
    assert result.augment is False
    # provenance
    assert result.seed == spec.seed == 42 and result.profile == "smoke"
    assert {"python", "numpy", "tensorflow", "keras", "grader"} <= set(result.versions)
    assert result.versions["keras"].startswith("3.")
    assert result.submission_sha256 == hashlib.sha256(DENSE.encode()).hexdigest()
    assert result.submission_sha256 == hashlib.sha256(run.submission.read_bytes()).hexdigest()
    assert result.spec_hash == spec.spec_hash()
    assert result.started_at is not None and result.finished_at is not None and result.started_at < result.finished_at
    assert result.n_predictions == 500
    assert raw["backend"] == "local"
    assert result.compiled_by == "exercise defaults" and "was not compiled" in result.warnings[0]
    assert result.optimizer_steps == result.expected_steps == 2 * 16  # 1000 images / 64 per batch, 2 epochs
    # the supervisor's own record: facts it measured, and how the job ended
    sup = SupervisorReport.model_validate_json(run.supervisor_json.read_text())
    assert sup.verdict is Verdict.COMPLETED and sup.exit_code == 0 and not sup.stdout_truncated
    assert sup.filesystem_view and sup.epochs_seen == 2
    assert sup.files[RunDir.WEIGHTS] > 0 and sup.peak_memory_mb and sup.wall_seconds > 0
    assert list(sup.phases) == ["start", "loading data", "importing submission", "building model", "training",
                                "predicting"]


def test_progress_has_one_line_per_epoch(two_cli_runs: tuple[list[subprocess.CompletedProcess[str]], list[Path]]) -> None:
    _, runs = two_cli_runs
    events = [json.loads(line) for line in RunDir(runs[0]).progress.read_text().splitlines()]
    assert events[0] == {**events[0], "event": "start", "source": "supervisor"}
    assert events[-1] == {**events[-1], "event": "end", "outcome": "ok"}
    assert all(isinstance(e["t"], float) for e in events)  # the supervisor's clock on every line
    ends = [e for e in events if e["event"] == "epoch_end"]
    assert [e["epoch"] for e in ends] == [1, 2]
    assert all(e["epochs"] == 2 and isinstance(e["loss"], float) for e in ends)
    assert [e["phase"] for e in events if e["event"] == "phase"] == [
        "start", "loading data", "importing submission", "building model", "training", "predicting"]
    assert [e["abi"] > 0 for e in events if e["event"] == "confined"] in ([True], [])


def test_predictions_are_plain_npy(two_cli_runs: tuple[list[subprocess.CompletedProcess[str]], list[Path]]) -> None:
    _, runs = two_cli_runs
    run = RunDir(runs[0])
    pred = np.load(run.predictions, allow_pickle=False)
    train = np.load(run.train_predictions, allow_pickle=False)
    assert pred.shape == (500,) and pred.dtype == np.int16
    assert train.shape == (1000,) and train.dtype == np.int16  # the smoke profile's train_eval_size
    assert set(np.unique(pred)) <= set(range(10))
    assert len(np.unique(pred)) >= 5  # it learned something, not one class
    assert run.weights.stat().st_size > 0
    assert run.stdout_log.exists() and run.stderr_log.exists()
    assert not run.scratch.exists(), "the job's scratch folder is removed when it ends"


def test_two_runs_are_bit_identical(two_cli_runs: tuple[list[subprocess.CompletedProcess[str]], list[Path]]) -> None:
    procs, runs = two_cli_runs
    a, b = RunDir(runs[0]), RunDir(runs[1])
    assert a.predictions.read_bytes() == b.predictions.read_bytes()
    assert a.train_predictions.read_bytes() == b.train_predictions.read_bytes()
    ra, rb = load_result(a.result_json), load_result(b.result_json)
    assert [h.loss for h in ra.history] == [h.loss for h in rb.history]
    assert [h.accuracy for h in ra.history] == [h.accuracy for h in rb.history]
    # and the printed metrics agree
    metric_lines = [[ln for ln in p.stdout.splitlines() if "held-out accuracy" in ln] for p in procs]
    assert metric_lines[0] == metric_lines[1] and metric_lines[0]


# --- contract cases: one TensorFlow process for all of them ------------------------------------

MNIST_HEAD = "import keras\nfrom keras import layers\nTRAINING = {'epochs': 1, 'batch_size': 128}\n\n"
ASL_HEAD = "import keras\nfrom keras import layers\nTRAINING = {'epochs': 2, 'batch_size': 32}\n\n"

CASES: dict[str, tuple[str, str]] = {
    # name: (exercise, source)
    "keras2_dynamic_lr": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            kwargs = {"lr": 0.1}  # the static check cannot see this one
            model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(10, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(**kwargs), loss="sparse_categorical_crossentropy")
            return model
    ''')),
    "wrong_output_size": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            return keras.Sequential([keras.Input(shape=(784,)), layers.Dense(5, activation="softmax")])
    ''')),
    "logits_without_from_logits": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(10)])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            return model
    ''')),
    "missing_input_shape": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            return keras.Sequential([layers.Flatten(), layers.Dense(10, activation="softmax")])
    ''')),
    "nan_loss": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(64, activation="relu"),
                                      layers.Dense(10, activation="softmax")])
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e12), loss="sparse_categorical_crossentropy")
            return model
    ''')),
    "too_many_params": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            return keras.Sequential([keras.Input(shape=(784,)), layers.Dense(3000, activation="relu"),
                                     layers.Dense(10, activation="softmax")])
    ''')),
    "trains_in_build_model": ("mnist", MNIST_HEAD + dedent('''\
        import numpy as np

        def build_model():
            model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(10, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(np.zeros((64, 784)), np.zeros(64), epochs=3, verbose=0)  # extra epochs, unseen by grader
            return model
    ''')),
    "not_a_model": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            return layers.Dense(10, activation="softmax")
    ''')),
    "raises_in_build_model": ("mnist", MNIST_HEAD + dedent('''\
        def build_model():
            width = 64
            return keras.Sequential([keras.Input(shape=(784,)), layers.Dense(width / 0)])
    ''')),
    "sys_exit_in_build_model": ("mnist", MNIST_HEAD + dedent('''\
        import sys

        def build_model():
            sys.exit(3)
    ''')),
    "training_out_of_range_at_runtime": ("mnist", dedent('''\
        import keras
        TRAINING = dict(epochs=100)  # not a literal: only the job can check it

        def build_model():
            return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10, activation="softmax")])
    ''')),
    "broken_augment": ("mnist", MNIST_HEAD + dedent('''\
        def augment(image, label):
            return image.numpy(), label  # graph mode: tensors have no .numpy() inside tf.data

        def build_model():
            return keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Flatten(),
                                     layers.Dense(10, activation="softmax")])
    ''')),
    "categorical_crossentropy_image2d": ("mnist", MNIST_HEAD + dedent('''\
        def build_model(num_classes):
            model = keras.Sequential([keras.Input(shape=(28, 28)), layers.Flatten(),
                                      layers.Dense(num_classes, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.003), loss="categorical_crossentropy",
                          metrics=["accuracy"])
            return model
    ''')),
    "asl_compact_24_with_augment": ("asl", ASL_HEAD + dedent('''\
        from pathlib import Path
        import tensorflow as tf

        def augment(image, label):
            Path(__file__).with_name("augment_was_traced").touch()  # runs when tf.data traces the hook
            return tf.clip_by_value(image + 0.01, 0.0, 1.0), label

        def build_model(input_shape):
            return keras.Sequential([keras.Input(shape=input_shape), layers.Conv2D(8, 3, activation="relu"),
                                     layers.MaxPooling2D(), layers.Flatten(),
                                     layers.Dense(24, activation="softmax")])
    ''')),
    "asl_26_units": ("asl", ASL_HEAD + dedent('''\
        def build_model(input_shape):
            return keras.Sequential([keras.Input(shape=input_shape), layers.Conv2D(8, 3, activation="relu"),
                                     layers.MaxPooling2D(), layers.Flatten(),
                                     layers.Dense(26, activation="softmax")])
    ''')),
}


@pytest.fixture(scope="module")
def contract_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[JobResult, Ingested, RunDir]]:
    """Prepare one run dir per case, run the real job function on each in one process, ingest."""
    base = tmp_path_factory.mktemp("contract")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADER_HOME", str(base / "home"))
    mp.setenv("GRADER_CONFIG", str(base / "no-config.toml"))
    mp.setenv("GRADER_LANDLOCK", "false")  # one process runs many jobs: see the module docstring
    try:
        settings = Settings()
        runs: dict[str, RunDir] = {}
        jobs = {}
        for name, (exercise, source) in CASES.items():
            spec = CATALOG.get(exercise)
            try:  # what `grader submit` learns statically (TRAINING's epochs among it), as a queued job has it
                info = check_source(source, f"{name}.py", spec)
            except SubmissionError:  # a case the static check refuses: the job's own checks are under test
                info = SubmissionInfo(sha256=hashlib.sha256(source.encode()).hexdigest(), size=len(source), kind="py",
                                      build_params=[])
            run, job = prepare_run(source, info, spec, "smoke", None, settings, run_id=name)
            write_job_json(run, job)
            runs[name], jobs[name] = run, job
        code = ("import sys\nfrom pathlib import Path\nfrom grader.job.run import run\nfrom grader.rundir import RunDir\n"
                "for p in sys.argv[1:]:\n    print(p, run(RunDir(Path(p))).outcome, flush=True)\n")
        first = next(iter(runs.values()))
        env = {**build_env(first, 42), "PYTHONPATH": str(REPO)}
        proc = subprocess.run([*NICE, sys.executable, "-c", code, *(str(r.path) for r in runs.values())],
                              capture_output=True, text=True, env=env, cwd=base, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
        out = {}
        for name, run in runs.items():
            spec = CATALOG.get(CASES[name][0])
            weights = run.weights.stat().st_size if run.weights.exists() else 0
            report = SupervisorReport(verdict=Verdict.COMPLETED, exit_code=0, wall_seconds=10.0, files={
                RunDir.RESULT: run.result_json.stat().st_size, RunDir.WEIGHTS: weights})
            (run.path / RunDir.SUPERVISOR).write_text(report.model_dump_json())
            key = heldout_labels(spec, "smoke", settings)
            out[name] = (load_result(run.result_json), ingest(run, jobs[name], key), run)
        return out
    finally:
        mp.undo()


@pytest.mark.parametrize(("case", "kind", "outcome", "phrases"), [
    ("keras2_dynamic_lr", ErrorKind.KERAS2_API, Outcome.FAILED, ["`lr=` is a Keras 2 name", "`learning_rate=`"]),
    ("wrong_output_size", ErrorKind.WRONG_OUTPUT_SIZE, Outcome.FAILED,
     ["output shape is (5,)", "10 classes", "Dense(10, activation='softmax')"]),
    ("logits_without_from_logits", ErrorKind.LOGITS_WITHOUT_FROM_LOGITS, Outcome.FAILED,
     ["activation='softmax'", "from_logits=True"]),
    ("missing_input_shape", ErrorKind.WRONG_INPUT_SHAPE, Outcome.FAILED,
     ["no defined input", "keras.Input(shape=(28, 28, 1))"]),
    ("nan_loss", ErrorKind.NAN_LOSS, Outcome.FAILED, ["NaN", "epoch 1", "Lower the learning rate"]),
    ("too_many_params", ErrorKind.TOO_MANY_PARAMS, Outcome.INVALID, ["2,385,010 parameters", "allows 2,000,000"]),
    ("trains_in_build_model", ErrorKind.BUILD_ERROR, Outcome.FAILED,
     ["build_model() trained the model", "grader trains it with the exercise's settings"]),
    ("not_a_model", ErrorKind.NOT_A_MODEL, Outcome.FAILED, ["build_model() returned Dense, not a keras.Model"]),
    ("raises_in_build_model", ErrorKind.BUILD_ERROR, Outcome.FAILED,
     ["error while building the model", "ZeroDivisionError", "(your line 7: `return keras.Sequential("]),
    ("sys_exit_in_build_model", ErrorKind.BUILD_ERROR, Outcome.FAILED,
     ["build_model() called sys.exit(3) instead of returning a keras.Model", "(your line 8: `sys.exit(3)`)"]),
    ("training_out_of_range_at_runtime", ErrorKind.BAD_TRAINING_CONFIG, Outcome.INVALID,
     ["TRAINING['epochs'] = 100 exceeds this exercise's limit of 40"]),
    ("broken_augment", ErrorKind.BAD_AUGMENT, Outcome.FAILED, ["error while augmenting", "numpy"]),
])
def test_contract_errors_are_specific(contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]], case: str,
                                      kind: ErrorKind, outcome: Outcome, phrases: list[str]) -> None:
    result, got, run = contract_runs[case]
    assert (result.outcome, result.error_kind) == (outcome, kind), result.message
    for phrase in phrases:
        assert phrase in (result.message or ""), f"{phrase!r} not in {result.message!r}"
    assert "Traceback" not in (result.message or "")
    assert got.metrics is None and got.result.outcome is outcome
    assert not run.predictions.exists()
    assert result.seed == 42 and result.submission_sha256  # provenance even on failure
    events = [json.loads(line)["event"] for line in run.progress.read_text().splitlines()]
    assert events[0] == "phase" and events[-1] == "end"


def test_failure_details_keep_the_traceback_for_instructors(
        contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]]) -> None:
    result, _, run = contract_runs["raises_in_build_model"]
    assert "Traceback" in (result.detail or "") and str(run.submission) in (result.detail or "")
    assert result.params is None


def test_nan_loss_keeps_partial_history(contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]]) -> None:
    result, _, _ = contract_runs["nan_loss"]
    assert result.params == 784 * 64 + 64 + 64 * 10 + 10
    assert result.optimizer == "SGD"


def test_categorical_crossentropy_and_2d_input_are_accepted(
        contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]]) -> None:
    result, got, _ = contract_runs["categorical_crossentropy_image2d"]
    assert result.outcome is Outcome.OK, result.message
    assert result.input_layout == "image2d"
    assert "categorical_crossentropy" in (result.loss or "")
    assert got.metrics is not None and got.metrics.accuracy > 0.3  # it trained on the real labels


@pytest.mark.parametrize(("case", "units", "encoding"), [("asl_compact_24_with_augment", 24, "compact"),
                                                        ("asl_26_units", 26, "raw")])
def test_asl_models_are_graded_in_raw_label_space(contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]],
                                                  case: str, units: int, encoding: str) -> None:
    result, got, run = contract_runs[case]
    assert result.outcome is Outcome.OK, result.message
    assert (result.output_units, result.label_encoding) == (units, encoding)
    pred = np.load(run.predictions, allow_pickle=False)
    assert pred.shape == (1200,)
    assert 9 not in pred, "J (9) is never predicted"
    assert set(np.unique(pred)) <= set(range(25))
    assert pred.max() > 9  # letters after J keep their raw labels (compact outputs are mapped back)
    assert got.metrics is not None
    assert got.metrics.labels == CATALOG.get("asl").labels.used
    assert got.metrics.accuracy > 1 / 24  # better than chance after 2 epochs on the real sample
    assert {c.name for c in got.metrics.per_class} == set("ABCDEFGHIKLMNOPQRSTUVWXY")


def test_augment_hook_is_used(contract_runs: dict[str, tuple[JobResult, Ingested, RunDir]]) -> None:
    result, _, run = contract_runs["asl_compact_24_with_augment"]
    assert result.augment is True
    assert (run.path / "augment_was_traced").exists()
    assert load_result(run.result_json).history and len(result.history) == 2
