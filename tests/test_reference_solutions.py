"""Every reference solution and starter builds, fits its exercise's limits and matches the course.

The MNIST ladder is checked against the exact parameter counts in COURSE.md. Nothing is trained:
building the models is enough to catch a wrong architecture, output size or TRAINING block.
TensorFlow is imported lazily, so collecting this module with `-m "not tf"` stays cheap.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ("mnist", "fashion_mnist", "asl")

# COURSE.md, exercise 1: name -> (parameters, optimizer, batch size).
MNIST_LADDER = {
    "baseline": (55_050, "adam", 128),  # fc64
    "fc512": (669_706, "adam", 128),
    "fc512x3": (932_362, "adam", 128),
    "cnn1": (542_230, "sgd", 32),
    "cnn2": (1_199_882, "sgd", 32),
    "cnn_dropout": (1_199_882, "sgd", 32),
    "cnn_bn": (1_200_778, "sgd", 32),
}
REQUIRED_REFERENCES = {
    "mnist": set(MNIST_LADDER),
    "fashion_mnist": {"baseline"},
    "asl": {"baseline", "cnn", "cnn_augment"},
}


@functools.cache
def spec(exercise: str) -> dict:
    with (ROOT / "exercises" / exercise / "exercise.toml").open("rb") as fh:
        return tomllib.load(fh)


def references(exercise: str) -> list[Path]:
    folder = ROOT / "reference_solutions" / exercise
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def starter(exercise: str) -> Path:
    return ROOT / "exercises" / exercise / "starter.py"


SUBMISSIONS = [(ex, p) for ex in EXERCISES for p in [*references(ex), starter(ex)]]
SUBMISSION_IDS = [p.relative_to(ROOT).with_suffix("").as_posix() for _, p in SUBMISSIONS]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@functools.cache
def load(path: Path):
    spec_ = importlib.util.spec_from_file_location(f"_submission_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def build(exercise: str, path: Path):
    """Call build_model the way the grader does: pass only the parameters it declares."""
    module = load(path)
    ex = spec(exercise)
    offered = {"input_shape": tuple(ex["input_shape"]), "num_classes": ex["labels"]["num_outputs"]}
    params = inspect.signature(module.build_model).parameters
    return module.build_model(**{k: v for k, v in offered.items() if k in params})


def test_every_exercise_has_its_required_references_and_a_starter():
    for exercise, required in REQUIRED_REFERENCES.items():
        assert required <= {p.stem for p in references(exercise)}, exercise
        assert starter(exercise).is_file()
    assert len(references("fashion_mnist")) >= 3, "baseline plus at least two stronger suggested solutions"


@pytest.mark.parametrize(("exercise", "path"), SUBMISSIONS, ids=SUBMISSION_IDS)
def test_builds_within_the_exercise_limits(keras, exercise, path):
    ex = spec(exercise)
    model = build(exercise, path)
    assert isinstance(model, keras.Model)
    assert model.input_shape in [(None, 784), (None, *ex["input_shape"])]
    assert model.output_shape == (None, ex["labels"]["num_outputs"])
    assert model.layers[-1].activation is keras.activations.softmax
    assert model.count_params() <= ex["limits"]["max_params"]
    assert model.compiled, "references and starters choose their own optimizer"
    assert model.loss == "sparse_categorical_crossentropy"
    assert np.all(np.isfinite(model.predict(np.zeros((2, *model.input_shape[1:]), "float32"), verbose=0)))


@pytest.mark.parametrize(("exercise", "path"), SUBMISSIONS, ids=SUBMISSION_IDS)
def test_training_block_is_valid(exercise, path):
    limits = spec(exercise)["limits"]
    training = load(path).TRAINING
    assert set(training) == {"epochs", "batch_size"}
    assert all(type(v) is int for v in training.values())
    assert 1 <= training["epochs"] <= limits["max_epochs"]
    assert limits["min_batch_size"] <= training["batch_size"] <= limits["max_batch_size"]


@pytest.mark.parametrize(("exercise", "path"), SUBMISSIONS, ids=SUBMISSION_IDS)
def test_has_a_docstring(exercise, path):
    doc = load(path).__doc__
    assert doc and len(doc.split()) >= 20


@pytest.mark.parametrize("name", MNIST_LADDER)
def test_mnist_ladder_matches_course(keras, name):
    params, optimizer, batch_size = MNIST_LADDER[name]
    path = ROOT / "reference_solutions" / "mnist" / f"{name}.py"
    model = build("mnist", path)
    assert model.count_params() == params
    assert load(path).TRAINING["batch_size"] == batch_size
    assert 10 <= load(path).TRAINING["epochs"] <= 40
    if optimizer == "adam":
        assert isinstance(model.optimizer, keras.optimizers.Adam)
        assert model.input_shape == (None, 784)
    else:
        assert_sgd_momentum(keras, model)
        assert model.input_shape == (None, 28, 28, 1)


def assert_sgd_momentum(keras, model):
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.optimizer.momentum == pytest.approx(0.9)
    assert not model.optimizer.nesterov


def layer_kinds(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def test_mnist_regularised_variants_differ_from_cnn2_only_as_the_course_says(keras):
    folder = ROOT / "reference_solutions" / "mnist"
    dropout = build("mnist", folder / "cnn_dropout.py")
    assert [layer.rate for layer in layer_kinds(dropout, "Dropout")] == [0.25, 0.5]
    assert not layer_kinds(dropout, "BatchNormalization")
    bn = build("mnist", folder / "cnn_bn.py")
    assert len(layer_kinds(bn, "BatchNormalization")) == 3
    assert not layer_kinds(bn, "Dropout")


def test_fashion_baseline_is_mnist_cnn_dropout_with_the_dataset_swapped(keras):
    fashion = build("fashion_mnist", ROOT / "reference_solutions" / "fashion_mnist" / "baseline.py")
    mnist = build("mnist", ROOT / "reference_solutions" / "mnist" / "cnn_dropout.py")
    assert [type(layer).__name__ for layer in fashion.layers] == [type(layer).__name__ for layer in mnist.layers]
    assert fashion.count_params() == mnist.count_params() == 1_199_882
    assert_sgd_momentum(keras, fashion)
    assert load(ROOT / "reference_solutions" / "fashion_mnist" / "baseline.py").TRAINING["batch_size"] == 32


def test_asl_baseline_is_a_dense_network_and_the_cnns_are_convolutional(keras):
    folder = ROOT / "reference_solutions" / "asl"
    assert build("asl", folder / "baseline.py").input_shape == (None, 784)
    assert not layer_kinds(build("asl", folder / "baseline.py"), "Conv2D")
    for name in ("cnn", "cnn_augment"):
        assert layer_kinds(build("asl", folder / f"{name}.py"), "Conv2D")
    # Augmentation is the only difference between cnn and cnn_augment.
    assert build("asl", folder / "cnn.py").count_params() == build("asl", folder / "cnn_augment.py").count_params()
    assert not hasattr(load(folder / "cnn.py"), "augment")


def defines_augment(path: Path) -> bool:
    """Whether the module has a top-level augment() (checked without importing TensorFlow)."""
    return any(isinstance(n, ast.FunctionDef) and n.name == "augment" for n in ast.parse(path.read_text()).body)


AUGMENTING = [(ex, p, i) for (ex, p), i in zip(SUBMISSIONS, SUBMISSION_IDS, strict=True) if defines_augment(p)]


@pytest.mark.parametrize(("exercise", "path"), [(ex, p) for ex, p, _ in AUGMENTING], ids=[i for *_, i in AUGMENTING])
def test_augment_keeps_shape_and_label_and_never_flips(keras, exercise, path):
    import tensorflow as tf

    module = load(path)
    assert not any(isinstance(v, keras.layers.RandomFlip) for v in vars(module).values()), "no flips"
    # Left third bright, the rest dark: a horizontal mirror would be bright on the right.
    image = np.zeros((28, 28, 1), "float32")
    image[:, :9] = 1.0
    for _ in range(20):
        out, label = module.augment(tf.constant(image), tf.constant(3))
        out = np.asarray(out)
        assert out.shape == (28, 28, 1)
        assert out.dtype == np.float32
        assert int(label) == 3
        assert out[:, :14].mean() > 0.3, "image looks mirrored"
        assert out[:, 14:].mean() < 0.1, "image looks mirrored"
    # And it runs where the grader runs it: mapped over a tf.data pipeline of single images.
    ds = tf.data.Dataset.from_tensor_slices((np.stack([image] * 4), np.arange(4))).map(module.augment).batch(4)
    images, labels = next(iter(ds))
    assert tuple(images.shape) == (4, 28, 28, 1)
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    assert not np.allclose(images.numpy(), image), "augment should change the training images"


def test_asl_cnn_augment_defines_augment():
    assert "reference_solutions/asl/cnn_augment" in [i for *_, i in AUGMENTING]
