"""Static submission checks, the notebook → module filter and the content-hash store.

Nothing here imports or runs a submission: the checks parse it, so they are cheap and safe.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from grader.errors import SubmissionError
from grader.specs.catalog import ExerciseCatalog
from grader.submission import (
    MAX_NOTEBOOK_BYTES,
    MAX_SOURCE_BYTES,
    cells_to_module,
    check_source,
    read_submission,
    store_source,
)

REPO = Path(__file__).resolve().parents[1]
MNIST = ExerciseCatalog(REPO).get("mnist")

GOOD = dedent('''\
    import keras

    TRAINING = {"epochs": 3, "batch_size": 64}


    def build_model(input_shape, num_classes):
        return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(num_classes, activation="softmax")])
''')


def refused(source: str, spec: object = MNIST) -> str:
    with pytest.raises(SubmissionError) as info:
        check_source(source, "student.py", spec)  # type: ignore[arg-type]
    return str(info.value)


# --- what passes ---------------------------------------------------------------------------

def test_good_submission_is_described() -> None:
    info = check_source(GOOD, "student.py", MNIST)
    assert info.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    assert info.size == len(GOOD.encode())
    assert info.kind == "py"
    assert info.build_params == ["input_shape", "num_classes"]
    assert info.training == {"epochs": 3, "batch_size": 64}
    assert info.has_augment is False


@pytest.mark.parametrize("signature", ["()", "(num_classes)", "(input_shape)", "(num_classes, input_shape)",
                                       "(input_shape, extra=3)", "(*, num_classes=10)"])
def test_accepted_build_model_signatures(signature: str) -> None:
    check_source(f"def build_model{signature}:\n    pass\n", "s.py", MNIST)


def test_augment_hook_is_detected() -> None:
    src = GOOD + "\n\ndef augment(image, label):\n    return image, label\n"
    assert check_source(src, "s.py", MNIST).has_augment is True
    msg = refused(GOOD + "\n\ndef augment(image):\n    return image\n")
    assert "augment must take exactly two arguments (image, label)" in msg
    assert "student.py:11:" in msg


@pytest.mark.parametrize("path", sorted((REPO / "reference_solutions").glob("*/*.py")) +
                         sorted((REPO / "exercises").glob("*/starter.py")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_course_files_pass_the_static_checks(path: Path) -> None:
    exercise = "asl" if path.parent.name == "asl" else path.parent.name
    _, info = read_submission(path, ExerciseCatalog(REPO).get(exercise))
    assert info.kind == "py"


# --- what is refused, with the line --------------------------------------------------------------

def test_syntax_error_names_the_line() -> None:
    msg = refused("import keras\n\ndef build_model():\n    return keras.Sequential([\n\nx = = 1\n")
    assert msg == "student.py:4: syntax error: '[' was never closed\n  hint: fix the line shown and submit again"


def test_syntax_error_line_number_exact() -> None:
    msg = refused("def build_model():\n    return 1\n\nTRAINING = {'epochs': 3,, }\n")
    assert msg.startswith("student.py:4: syntax error")


def test_missing_build_model() -> None:
    msg = refused("import keras\n\ndef build():\n    return None\n\nbuild_model = build\n")
    assert "no top-level function `build_model` found" in msg
    assert "def build_model(input_shape, num_classes)" in msg  # the hint says what to write


def test_nested_build_model_does_not_count() -> None:
    assert "no top-level function" in refused("class M:\n    def build_model(self):\n        pass\n")


@pytest.mark.parametrize("signature", ["(shape)", "(input_shape, num_classes, dropout)", "(*, width)"])
def test_unknown_parameters(signature: str) -> None:
    msg = refused(f"\n\ndef build_model{signature}:\n    pass\n")
    assert msg.startswith("student.py:3: build_model has parameters")
    assert "grader cannot fill" in msg
    assert "only `input_shape` and/or `num_classes`" in msg


@pytest.mark.parametrize(("training", "message"), [
    ("{'epochs': EPOCHS}", "TRAINING must be a literal dict"),
    ("dict(epochs=3)", "TRAINING must be a literal dict"),
    ("[('epochs', 3)]", "TRAINING must be a dict"),
    ("{'epochs': 3, 'lr': 0.1}", "TRAINING has unknown keys ['lr']"),
    ("{'epochs': 0}", "TRAINING['epochs'] must be a positive integer, got 0"),
    ("{'epochs': 2.5}", "TRAINING['epochs'] must be a positive integer, got 2.5"),
    ("{'batch_size': True}", "TRAINING['batch_size'] must be a positive integer, got True"),
    ("{'epochs': 41}", "TRAINING['epochs'] = 41 exceeds this exercise's limit of 40"),
    ("{'batch_size': 4}", "TRAINING['batch_size'] = 4 is outside the allowed range 8..1024"),
    ("{'batch_size': 4096}", "TRAINING['batch_size'] = 4096 is outside the allowed range 8..1024"),
])
def test_training_dict(training: str, message: str) -> None:
    msg = refused(f"EPOCHS = 3\nTRAINING = {training}\n\ndef build_model():\n    pass\n")
    assert msg.startswith("student.py:2: ")
    assert message in msg


def test_training_limits_need_the_spec() -> None:
    src = "TRAINING = {'epochs': 41}\n\ndef build_model():\n    pass\n"
    assert check_source(src, "s.py", None).training == {"epochs": 41}  # no exercise known yet: shape only


@pytest.mark.parametrize(("call", "new"), [
    ("keras.optimizers.SGD(lr=0.01)", "learning_rate="),
    ("keras.layers.Dense(10, init='he_normal')", "kernel_initializer="),
    ("keras.layers.Dense(10, W_regularizer=None)", "kernel_regularizer="),
    ("model.fit(x, y, nb_epoch=3)", "epochs="),
])
def test_keras2_argument_names(call: str, new: str) -> None:
    src = f"import keras\n\ndef build_model():\n    x = 1\n    return {call}\n"
    msg = refused(src)
    assert msg.startswith("student.py:5: ")
    assert "is a Keras 2 argument name; Keras 3 calls it" in msg
    assert new in msg


def test_size_limit(tmp_path: Path) -> None:
    padding = "#" * (MAX_SOURCE_BYTES + 1)
    assert f"the limit is {MAX_SOURCE_BYTES}" in refused(GOOD + padding)
    path = tmp_path / "big.py"
    path.write_text(GOOD + padding, encoding="utf-8")
    with pytest.raises(SubmissionError, match=f"big.py: file is {len(GOOD) + len(padding)} bytes; the limit is"):
        read_submission(path, MNIST)


def test_utf8_limit(tmp_path: Path) -> None:
    path = tmp_path / "latin1.py"
    path.write_bytes(GOOD.encode() + "# Grüße\n".encode("latin-1"))
    with pytest.raises(SubmissionError) as info:
        read_submission(path, MNIST)
    assert f"latin1.py: not UTF-8 text (byte {len(GOOD.encode()) + 4})" in str(info.value)
    assert "save the file as UTF-8" in str(info.value)
    # real UTF-8 with non-ASCII names and strings is fine
    path.write_text(GOOD + "# Grüße, 数字\nNAME = 'ünïcødé'\n", encoding="utf-8")
    assert read_submission(path, MNIST)[1].kind == "py"


def test_wrong_file_kinds(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="no such file"):
        read_submission(tmp_path / "absent.py")
    (tmp_path / "model.txt").write_text(GOOD)
    with pytest.raises(SubmissionError, match=r"expected a \.py file or a \.ipynb notebook"):
        read_submission(tmp_path / "model.txt")


# --- notebooks -----------------------------------------------------------------------------------

def notebook(tmp_path: Path, cells: list[str | list[str]], name: str = "work.ipynb") -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Exercise 1\nTrain `model.fit(...)`"}] +
          [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c} for c in cells]}
    path = tmp_path / name
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


NOTEBOOK_CELLS: list[str | list[str]] = [
    "%matplotlib inline\n!pip install tensorflow\nimport numpy as np\nimport keras\nimport matplotlib.pyplot as plt",
    "%%time\nmodel = build_model()\nmodel.fit(x_train, y_train, epochs=100)",
    ["(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()\n",
     "x_train = x_train / 255.0\n", "EPOCHS = 3\n", "CLASSES: int = 10\n"],
    'TRAINING = {"epochs": 2, "batch_size": 64}\nNAMES = ["a", "b"]\nscale = np.float32(255)',
    "def build_model(num_classes=10):\n    return keras.Sequential([keras.Input(shape=(784,)),\n"
    "                             keras.layers.Dense(num_classes, activation='softmax')])",
    "class Helper:\n    pass\n\nmodel = build_model()\nmodel.summary()\nhistory = model.fit(x_train, y_train)\n"
    "plt.plot(history.history['loss'])\nplt.show()\nfor i in range(3):\n    print(i)",
    "def augment(image, label):\n    return image, label",
    "this is not python (",
    "from keras import layers as L  # used by build_model",
]


def test_notebook_filter_keeps_definitions_and_literals(tmp_path: Path) -> None:
    source, info = read_submission(notebook(tmp_path, NOTEBOOK_CELLS), MNIST)
    tree = ast.parse(source)  # the result is valid Python
    top = [type(n).__name__ for n in tree.body]
    assert "Expr" not in top and "For" not in top  # no calls, no loops at top level
    kept = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert kept == {"build_model", "augment", "Helper"}
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])}
    assert assigned == {"EPOCHS", "CLASSES", "TRAINING", "NAMES"}  # literals only: not model, x_train, scale
    for gone in ("%matplotlib", "!pip", "%%time", "fit(", "load_data", "plt.plot", "plt.show", "summary()"):
        assert gone not in source, gone
    assert "import numpy as np" in source and "from keras import layers as L" in source
    assert info.kind == "ipynb"
    assert info.training == {"epochs": 2, "batch_size": 64}
    assert info.has_augment
    assert info.build_params == ["num_classes"]
    assert info.warnings == ["code cell 8 skipped: syntax error ('(' was never closed, line 1)"]
    assert info.sha256 == hashlib.sha256(source.encode()).hexdigest()


def test_filtered_notebook_imports_without_training(tmp_path: Path) -> None:
    """The extracted module really is inert: importing it runs nothing (keras absent here on purpose)."""
    source, _ = cells_to_module(["import keras_that_does_not_exist\nprint('side effect')",
                                 "open('touched', 'w').write('x')",
                                 "def build_model():\n    return 42", "X = [1, 2]"])
    module = tmp_path / "m.py"
    module.write_text(source, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", "import m; print(m.build_model(), m.X)"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "42 [1, 2]\n"  # a missing import is skipped; nothing else ran
    assert not (tmp_path / "touched").exists()


def test_notebook_cell_magic_drops_the_whole_cell() -> None:
    source, warnings = cells_to_module(["%%bash\necho hi\ndef build_model():\n    pass"])
    assert "build_model" not in source and not warnings


def test_notebook_refusals(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="no top-level function `build_model`"):
        read_submission(notebook(tmp_path, ["import keras\nmodel = keras.Sequential()"]), MNIST)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(SubmissionError, match=r"broken\.ipynb: not a readable Jupyter notebook"):
        read_submission(broken, MNIST)
    (tmp_path / "nocells.ipynb").write_text('{"nbformat": 4}', encoding="utf-8")
    with pytest.raises(SubmissionError, match="not a Jupyter notebook: it has no list of cells"):
        read_submission(tmp_path / "nocells.ipynb", MNIST)
    (tmp_path / "ints.ipynb").write_text('{"cells": [1, 2]}', encoding="utf-8")
    with pytest.raises(SubmissionError, match="cell 1 is not a notebook cell"):
        read_submission(tmp_path / "ints.ipynb", MNIST)
    (tmp_path / "deep.ipynb").write_text('{"cells": ' + "[" * 5000 + "]" * 5000 + "}", encoding="utf-8")
    with pytest.raises(SubmissionError, match="nests 5001 levels deep"):
        read_submission(tmp_path / "deep.ipynb", MNIST)
    big = tmp_path / "big.ipynb"
    with big.open("wb") as fh:
        fh.truncate(MAX_NOTEBOOK_BYTES + 1)
    with pytest.raises(SubmissionError, match=f"the limit is {MAX_NOTEBOOK_BYTES} \\(clear outputs\\?\\)"):
        read_submission(big, MNIST)


def test_notebook_keras2_names_are_caught_in_kept_code(tmp_path: Path) -> None:
    cells = ["import keras", "def build_model():\n    opt = keras.optimizers.Adam(lr=0.1)\n    return opt"]
    with pytest.raises(SubmissionError, match="Keras 2 argument name"):
        read_submission(notebook(tmp_path, cells), MNIST)


# --- content-hash store --------------------------------------------------------------------------

def test_store_is_content_addressed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    digest = hashlib.sha256(GOOD.encode()).hexdigest()
    first = store_source(GOOD, store)
    assert first == store / digest[:2] / f"{digest}.py"
    assert first.read_text(encoding="utf-8") == GOOD
    mtime = first.stat().st_mtime_ns
    assert store_source(GOOD, store) == first  # identical submissions share one file
    assert first.stat().st_mtime_ns == mtime  # not rewritten
    other = store_source(GOOD + "# v2\n", store)
    assert other != first and other.exists()
    assert sorted(p.name for p in store.rglob("*.py")) == sorted([first.name, other.name])
    assert not [p for p in store.rglob("*") if p.name.startswith(".")]  # no temp files left behind


def test_store_keeps_non_ascii_source_exact(tmp_path: Path) -> None:
    src = GOOD + "# Übung: ünïcødé, 数字\n"
    path = store_source(src, tmp_path)
    assert path.read_bytes() == src.encode("utf-8")
    assert path.stem == hashlib.sha256(src.encode("utf-8")).hexdigest()


def test_notebook_keeps_layer_objects_built_from_constants_and_nothing_that_computes() -> None:
    """augment() may use random layers built once at module level (the ASL notebook does)."""
    from grader.submission import cells_to_module

    source, _ = cells_to_module([
        "import keras\nfrom keras import layers",
        "_ROTATE = layers.RandomRotation(10 / 360, fill_mode='nearest', seed=1)\n"
        "_ZOOM = keras.layers.RandomZoom(-0.1, seed=2)\n"
        "wide = layers.Dense(len(open('/etc/passwd').read()))\n"
        "by_name = layers.Dense(units)\n"
        "model = keras.Sequential([layers.Dense(3)])\n"
        "other = np.layers.Dense(3)\n"
        "history = model.fit(x, y)",
    ])
    assigned = {t.id for n in ast.parse(source).body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    assert assigned == {"_ROTATE", "_ZOOM"}
