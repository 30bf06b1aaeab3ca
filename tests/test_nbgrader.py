"""The nbgrader course, graded for real: nbgrader's CLI, grader's job behind the test cells, the gradebook import.

Everything runs in a course copied into tmp_path, with GRADER_HOME, HOME and the Jupyter/IPython/Keras
folders there too. The copied grader course keeps only each exercise's baseline among the reference
solutions: a fresh grader home measures every reference before the first grade, and the notebook
tiers compare with the baseline only, so the other references would add a minute of training and
test nothing here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.datasets import heldout_labels
from grader.errors import GraderError, NotFoundError
from grader.notebook import check, check_structure, participant_source, relative_accuracy
from grader.service.ingest import ingest
from grader.service.notebooks import import_gradebook
from grader.service.runs import prepare_run, run_foreground
from grader.settings import Settings
from grader.specs.catalog import ExerciseCatalog
from grader.submission import read_submission

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ("mnist", "fashion_mnist", "asl")
CORRECT_MNIST = """\
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(100, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
WRONG_OUTPUT_MNIST = CORRECT_MNIST.replace("layers.Dense(num_classes,", "layers.Dense(5,")
# A dense net (no Conv2D: the structure cell fails) with a small learning rate: it trains, but below the
# baseline (48% vs 62% on the public board, measured), so the training cell earns partial credit (2 of 4).
# `input_shape=` on a layer makes Keras warn on stderr, which must not zero the structure cell either.
WEAK_MNIST = """\
    model = keras.Sequential([
        layers.Flatten(input_shape=input_shape),
        layers.Dense(16, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.025),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grader course (exercises, rubrics, baselines) with the nbgrader course inside it."""
    root = tmp_path_factory.mktemp("course")
    for name in EXERCISES:
        shutil.copytree(ROOT / "exercises" / name, root / "exercises" / name)
        shutil.copy2(ROOT / "rubrics" / f"{name}.toml", _mkdir(root / "rubrics"))
        shutil.copy2(ROOT / "reference_solutions" / name / "baseline.py",
                     _mkdir(root / "reference_solutions" / name))
    shutil.copytree(ROOT / "exercises" / "nbgrader", root / "exercises" / "nbgrader",
                    ignore=shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db",
                                                  ".nbgrader.log"))
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def env(course: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for nbgrader and its kernels: every folder anything may write to is under tmp."""
    tmp = tmp_path_factory.mktemp("env")
    bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH when it creates a gradebook
    return {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(_mkdir(tmp / "home")),
        "GRADER_HOME": str(_mkdir(tmp / "grader-home")),
        "GRADER_COURSE_DIR": str(course),
        "GRADER_CONFIG": str(tmp / "no-config.toml"),
        "JUPYTER_CONFIG_DIR": str(_mkdir(tmp / "jupyter-config")),
        "JUPYTER_DATA_DIR": str(_mkdir(tmp / "jupyter-data")),
        "JUPYTER_RUNTIME_DIR": str(_mkdir(tmp / "jupyter-runtime")),
        "IPYTHONDIR": str(_mkdir(tmp / "ipython")),
        "KERAS_HOME": str(_mkdir(tmp / "keras")),
    }


def nbgrader(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


PLACEHOLDER = re.compile(r"^( *)# YOUR CODE HERE\n\1raise NotImplementedError\(\)\n?", re.MULTILINE)


def participant_notebook(release: Path, target: Path, *bodies: str) -> None:
    """What a participant hands in: the released notebook with its solution regions written, in order."""
    nb = json.loads(release.read_text())
    todo = list(bodies)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        while todo and PLACEHOLDER.search(source):
            source = PLACEHOLDER.sub(lambda _m: todo.pop(0), source, count=1)
        cell["source"] = source
    assert not todo and not any(PLACEHOLDER.search("".join(c["source"])) for c in nb["cells"]), \
        f"{release}: expected {len(bodies)} solution region(s) to fill"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1))


def solutions(source_notebook: Path) -> list[str]:
    """The instructor's solution regions of a source notebook, in order, as a participant would write them."""
    nb = json.loads(source_notebook.read_text())
    found = re.findall(r"^( *)### BEGIN SOLUTION\n(.*?)^\1### END SOLUTION\n?", "".join(
        "".join(c["source"]) + "\n" for c in nb["cells"] if c["cell_type"] == "code"), re.MULTILINE | re.DOTALL)
    return [body for _indent, body in found]


def outputs(path: Path) -> dict[str, list[dict]]:
    """Outputs of each graded cell of an autograded notebook, by grade id."""
    nb = json.loads(path.read_text())
    return {cell["metadata"]["nbgrader"]["grade_id"]: cell["outputs"] for cell in nb["cells"]
            if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("grade")}


def text(cell_outputs: list[dict]) -> str:
    parts = []
    for out in cell_outputs:
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
        elif out["output_type"] == "execute_result":
            parts.append("".join(out["data"].get("text/plain", "")))
    return "\n".join(parts)


def stderr_outputs(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return ["".join(out["text"]) for cell in nb["cells"] if cell["cell_type"] == "code"
            for out in cell.get("outputs", []) if out["output_type"] == "stream" and out["name"] == "stderr"]


@pytest.mark.nbgrader
@pytest.mark.tf
def test_autograde_with_real_nbgrader(course: Path, env: dict[str, str]) -> None:
    api = pytest.importorskip("nbgrader.api", reason="nbgrader is not installed (pip install 'grader[notebook]')")
    Gradebook = api.Gradebook
    nbcourse = course / "exercises" / "nbgrader"
    for assignment in EXERCISES:
        nbgrader(["generate_assignment", assignment], nbcourse, env)
        released = (nbcourse / "release" / assignment / f"{assignment}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in released and "BEGIN HIDDEN TESTS" not in released
        assert "raise NotImplementedError()" in released

    mnist_release = nbcourse / "release" / "mnist" / "mnist.ipynb"
    for student, body in (("alice", CORRECT_MNIST), ("bob", WRONG_OUTPUT_MNIST), ("carol", WEAK_MNIST)):
        participant_notebook(mnist_release, nbcourse / "submitted" / student / "mnist" / "mnist.ipynb", body)
    participant_notebook(nbcourse / "release" / "fashion_mnist" / "fashion_mnist.ipynb",
                         nbcourse / "submitted" / "alice" / "fashion_mnist" / "fashion_mnist.ipynb",
                         *solutions(nbcourse / "source" / "fashion_mnist" / "fashion_mnist.ipynb"))
    augment, model = solutions(nbcourse / "source" / "asl" / "asl.ipynb")
    flipped = augment.replace("    image = _SHIFT(image, training=True)\n",
                              "    image = _SHIFT(image, training=True)\n    image = image[:, ::-1, :]\n")
    assert flipped != augment
    for student, body in (("alice", augment), ("dan", flipped)):
        participant_notebook(nbcourse / "release" / "asl" / "asl.ipynb",
                             nbcourse / "submitted" / student / "asl" / "asl.ipynb", body, model)

    for assignment in EXERCISES:
        nbgrader(["autograde", assignment], nbcourse, env)

    autograded = nbcourse / "autograded"
    for nb_path in sorted(autograded.glob("*/*/*.ipynb")):
        assert stderr_outputs(nb_path) == [], f"{nb_path.relative_to(nbcourse)} has output on stderr"

    rows = {(r.student, r.assignment): r for r in import_gradebook(nbcourse / "gradebook.db",
                                                                  settings=Settings(home=Path(env["GRADER_HOME"])))}
    assert set(rows) == {("alice", "mnist"), ("bob", "mnist"), ("carol", "mnist"), ("alice", "fashion_mnist"),
                         ("alice", "asl"), ("dan", "asl")}
    for student, assignment in (("alice", "mnist"), ("alice", "fashion_mnist"), ("alice", "asl")):
        cells = outputs(autograded / student / assignment / f"{assignment}.ipynb")
        assert rows[(student, assignment)].score == rows[(student, assignment)].max_score == 6.0, \
            "\n".join(text(out) for out in cells.values())

    # dan mirrors every training image: the structure cell refuses the augment and says why; the training cell
    # grades what that model reaches on unmirrored held-out hands (in two epochs on the sample, well below alice's)
    dan = outputs(autograded / "dan" / "asl" / "asl.ipynb")
    with Gradebook(f"sqlite:///{nbcourse / 'gradebook.db'}", course_id="") as gb:
        dan_cells = {g: gb.find_grade(g, "asl", "asl", "dan").score for g in ("test_asl_structure",
                                                                             "test_asl_training")}
    assert dan_cells["test_asl_structure"] == 0.0, "\n".join(text(out) for out in dan.values())
    assert rows[("dan", "asl")].score == dan_cells["test_asl_training"] < 6.0
    assert "augment mirrored the image" in text(dan["test_asl_structure"])

    bob = outputs(autograded / "bob" / "mnist" / "mnist.ipynb")
    assert rows[("bob", "mnist")].score == 0.0
    assert "the last layer has 5 outputs" in text(bob["test_mnist_structure"])
    assert "Dense(num_classes, activation='softmax')" in text(bob["test_mnist_structure"])
    assert "this exercise has 10 classes" in text(bob["test_mnist_training"])

    carol = outputs(autograded / "carol" / "mnist" / "mnist.ipynb")
    assert 0.0 < rows[("carol", "mnist")].score < 6.0
    with Gradebook(f"sqlite:///{nbcourse / 'gradebook.db'}", course_id="") as gb:
        cells = {g: gb.find_grade(g, "mnist", "mnist", "carol").score for g in ("test_mnist_structure",
                                                                              "test_mnist_training")}
    assert cells["test_mnist_structure"] == 0.0 and 0.0 < cells["test_mnist_training"] < 4.0, cells
    assert "asks for a Conv2D layer" in text(carol["test_mnist_structure"])
    assert "note: UserWarning: Do not pass an `input_shape`" in text(carol["test_mnist_structure"])
    training = text(carol["test_mnist_training"])
    assert "vs the baseline's" in training and "next step:" in training


PARTICIPANT_CELLS = [
    "%matplotlib inline\n!pip install --quiet seaborn",
    "import numpy as np\nimport matplotlib.pyplot as plt\nimport keras\nfrom keras import layers",
    "(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()\nx_train = x_train / 255.0",
    'TRAINING = {"epochs": 2, "batch_size": 64}\n\n\n'
    "def build_model(input_shape=(28, 28, 1), num_classes=10):\n"
    "    model = keras.Sequential([\n"
    "        keras.Input(shape=input_shape),\n"
    '        layers.Conv2D(8, (3, 3), activation="relu"),\n'
    "        layers.MaxPooling2D((2, 2)),\n"
    "        layers.Flatten(),\n"
    '        layers.Dense(num_classes, activation="softmax"),\n'
    "    ])\n"
    '    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])\n'
    "    return model",
    "model = build_model()\nhistory = model.fit(x_train, y_train, epochs=5, validation_split=0.1)",
    'plt.plot(history.history["accuracy"])\nplt.plot(history.history["val_accuracy"])\nplt.show()',
    "%%time\nmodel.evaluate(x_test, y_test)",
]
EQUIVALENT_PY = "\n".join([
    "import keras", "from keras import layers", "", "", PARTICIPANT_CELLS[3], "",
])


@pytest.mark.nbgrader
@pytest.mark.tf
def test_participant_notebook_grades_like_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Top-level training, plots and shell lines are dropped at extraction; the model grades as the .py does."""
    monkeypatch.setenv("GRADER_CONFIG", str(tmp_path / "no-config.toml"))
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
         "source": src.splitlines(keepends=True)} for i, src in enumerate(PARTICIPANT_CELLS)]}
    nb_path, py_path = tmp_path / "participant.ipynb", tmp_path / "participant.py"
    nb_path.write_text(json.dumps(nb))
    py_path.write_text(EQUIVALENT_PY)
    settings = Settings(home=tmp_path / "grader-home", course_dir=ROOT)
    spec = ExerciseCatalog(settings.resolved_course_dir).get("mnist")

    source, info = read_submission(nb_path, spec)
    assert info.kind == "ipynb" and info.training == {"epochs": 2, "batch_size": 64}
    for node in ast.parse(source).body:  # nothing left that runs when the job imports the module
        assert isinstance(node, ast.Import | ast.ImportFrom | ast.Try | ast.FunctionDef | ast.Assign), ast.unparse(node)
    assert "fit(" not in source and "load_data" not in source and "plt.plot" not in source
    assert source == participant_source(PARTICIPANT_CELLS)[0]  # the kernel-history path extracts the same

    results = {}
    for label, path in (("ipynb", nb_path), ("py", py_path)):
        src, sub = read_submission(path, spec)
        run, job = prepare_run(src, sub, spec, "notebook", None, settings)
        run_foreground(run, job)
        got = ingest(run, job, heldout_labels(spec, "notebook", settings))
        assert got.metrics is not None, f"{label}: {got.result.message}"
        results[label] = (np.load(run.predictions, allow_pickle=False), got.metrics)
    assert np.array_equal(results["ipynb"][0], results["py"][0])
    assert results["ipynb"][1] == results["py"][1]


@pytest.mark.tf
def test_check_structure_gives_actionable_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # keras.json goes here if Keras loads first here
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    from keras import layers

    settings = Settings(home=tmp_path, course_dir=ROOT)

    def good(input_shape, num_classes):
        return keras.Sequential([keras.Input(shape=input_shape), layers.Conv2D(4, 3), layers.MaxPooling2D(),
                                 layers.Flatten(), layers.Dense(num_classes, activation="softmax")])

    def huge(input_shape, num_classes):
        return keras.Sequential([keras.Input(shape=(784,)), layers.Dense(4096), layers.Dense(num_classes)])

    def no_input(num_classes):
        return keras.Sequential([layers.Dense(num_classes)])

    def keras2(input_shape, num_classes):
        keras.optimizers.SGD(lr=0.1)

    check_structure(good, exercise="mnist", require=["Conv2D", "MaxPooling2D"], settings=settings)
    with pytest.raises(AssertionError, match=r"3,256,330 parameters; the budget is 2,000,000") as err:
        check_structure(huge, exercise="mnist", require=["Conv2D"], settings=settings)
    assert "asks for a Conv2D layer and your model has Dense, Dense" in str(err.value)
    with pytest.raises(AssertionError, match=r"no defined input: start it with keras.Input\(shape=input_shape\)"):
        check_structure(no_input, exercise="mnist", settings=settings)
    with pytest.raises(AssertionError, match="`lr=` is a Keras 2 name; Keras 3 calls it `learning_rate=`"):
        check_structure(keras2, exercise="mnist", settings=settings)
    with pytest.raises(AssertionError, match="cannot fill"):
        check_structure(lambda batch_size: None, exercise="mnist", settings=settings)


def test_check_refuses_before_training(tmp_path: Path) -> None:
    """Static problems in the extracted code fail at once, with the fix, and start no job."""
    settings = Settings(home=tmp_path / "home", course_dir=ROOT)
    cells = ["import keras", "TRAINING = {'epochs': 400}\ndef build_model():\n    return keras.Sequential()"]
    with pytest.raises(AssertionError, match="exceeds this exercise's limit of 40"):
        check(exercise="mnist", source=participant_source(cells)[0], settings=settings)
    with pytest.raises(AssertionError, match="no top-level function `build_model`"):
        check(exercise="mnist", source=participant_source(["x = 1"])[0], settings=settings)
    with pytest.raises(AssertionError, match=r"Unknown exercise 'mnsit'\. Did you mean: mnist"):
        check(exercise="mnsit", source="", settings=settings)
    assert not (tmp_path / "home" / "runs").exists()


def test_participant_source_leaves_out_autograder_cells() -> None:
    source, _ = participant_source(["from grader.notebook import check\nLIMIT = 3", "import keras\nEPOCHS = 2"])
    assert "LIMIT" not in source and "EPOCHS = 2" in source


def test_relative_accuracy_scale() -> None:
    assert relative_accuracy(0.1, 0.6, 10) == 0.0
    assert relative_accuracy(0.6, 0.6, 10) == pytest.approx(1.0)
    assert relative_accuracy(0.35, 0.6, 10) == pytest.approx(0.5)


def test_import_gradebook_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no nbgrader gradebook"):
        import_gradebook(tmp_path / "gradebook.db", settings=Settings(home=tmp_path / "home"))


def test_import_gradebook_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install 'grader[notebook]')")
    path = tmp_path / "gradebook.db"
    path.write_text("not a database")
    with pytest.raises(GraderError, match="not a readable SQLite database"):
        import_gradebook(path, settings=Settings(home=tmp_path / "home"))
    assert path.read_text() == "not a database"
