"""Helpers for nbgrader autograder cells: fast structure checks, grading through the sandboxed job, gradebook import."""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grader.errors import GraderError, SubmissionError
from grader.outcomes import ErrorKind, Outcome
from grader.settings import Settings
from grader.specs.catalog import ExerciseCatalog
from grader.specs.keras2 import KERAS2_RENAMES, rename_hint
from grader.submission import cells_to_module, check_source

if TYPE_CHECKING:
    from grader.service.graded_run import GradeReport
    from grader.specs.exercise import ExerciseSpec

DEFAULT_PROFILE = "notebook"

# Partial credit relative to the baseline, as (minimum relative accuracy, share of the cell's points).
# Relative accuracy is 0 at chance level and 1 at the baseline's accuracy under the same profile and
# seed, so the tiers mean the same on every exercise (10 or 24 classes) and every profile.
DEFAULT_TIERS: tuple[tuple[float, float], ...] = ((0.95, 1.0), (0.8, 0.75), (0.6, 0.5), (0.3, 0.25))

# What to tell a participant whose model lacks a layer kind the exercise asks for (COURSE.md's lessons).
LAYER_ADVICE = {
    "Conv2D": "add a convolution on the 28x28x1 image, e.g. layers.Conv2D(32, (3, 3), activation='relu'): "
              "convolutions look at neighbouring pixels together and help a lot on images",
    "MaxPooling2D": "add layers.MaxPooling2D((2, 2)) after a convolution: it halves the feature maps and "
                    "shrinks the Dense layer after Flatten",
    "Flatten": "add layers.Flatten() between the convolutions and the Dense layers",
    "Dropout": "add layers.Dropout(0.25) after pooling and/or layers.Dropout(0.5) after the large Dense "
               "layer: dropout helps a large CNN generalize",
    "BatchNormalization": "add layers.BatchNormalization() after a convolution or a Dense layer",
    "Dense": "add layers.Dense(...) layers before the output",
}

# Reports of this kernel, keyed by (submission hash, exercise, profile, seed, grader home): the visible
# check and the hidden partial-credit line in one test cell must not train the same model twice.
_REPORTS: dict[tuple[str, str, str, int | None, str], GradeReport] = {}


# --- the participant's code -------------------------------------------------------------------

def _imports_grader(cell: str) -> bool:
    """Autograder cells import grader; they are the instructor's code, not the participant's."""
    try:
        tree = ast.parse(cell)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "grader" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "grader":
            return True
    return False


def _kernel_cells() -> list[str]:
    """The cells this kernel has run, in execution order (IPython's `In`), so a redefinition wins."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    history = shell.user_ns.get("In") if shell is not None else None
    if not isinstance(history, list):
        raise SubmissionError("grader.notebook reads the cells you ran from IPython's history, and there is none "
                              "here", hint="run it in a Jupyter notebook, or pass source=")
    return [cell for cell in history if isinstance(cell, str)]


def participant_source(cells: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """Turn executed cells into the module grader grades, exactly as `grader submit x.ipynb` would.

    Nothing is imported from the notebook file: the file on disk may be stale or unsaved, while `In`
    holds what the kernel really ran. Cells that import grader (the autograder's) are left out, and
    the AST filter keeps only imports, definitions and literal settings, so no training happens here.

    Returns:
        The module source and warnings about cells that could not be parsed.
    """
    kept = [cell for cell in (_kernel_cells() if cells is None else cells) if not _imports_grader(cell)]
    return cells_to_module(kept)


# --- structure checks, in the participant's kernel --------------------------------------------

@contextlib.contextmanager
def _quiet() -> Iterator[list[str]]:
    """Keep stderr empty while Keras runs here: nbgrader gives 0 points to a cell with any stderr.

    TensorFlow's C++ logs go to file descriptor 2 and are dropped; Python warnings (for example
    Keras's advice against `input_shape=` on a layer) are collected and returned for stdout.
    """
    notes: list[str] = []
    sys.stderr.flush()
    saved_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_stream, captured = sys.stderr, io.StringIO()
    try:
        os.dup2(devnull, 2)
        sys.stderr = captured
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            try:
                yield notes
            finally:
                notes.extend(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in records))
    finally:
        sys.stderr = saved_stream
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(devnull)
        notes.extend(line for line in captured.getvalue().splitlines() if line.strip())


def _is_keras_model(obj: object) -> bool:
    """isinstance(obj, keras.Model) without importing Keras: grader.notebook never imports it itself.

    The participant's cells have loaded Keras already; importing it here would put TensorFlow
    behind every importer of this module (import-linter forbids that path from the CLI).
    """
    return any(cls.__name__ == "Model" and cls.__module__.split(".")[0] in {"keras", "tf_keras"}
               for cls in type(obj).__mro__)


def _layer_kinds(model: Any) -> list[set[str]]:
    """Class names (with base classes, so subclasses count) of every layer, nested models included."""
    kinds: list[set[str]] = []
    for layer in getattr(model, "layers", []):
        kinds.append({cls.__name__ for cls in type(layer).__mro__})
        if getattr(layer, "layers", None):
            kinds.extend(_layer_kinds(layer))
    return kinds


def _spec(exercise: str, settings: Settings) -> ExerciseSpec:
    try:
        return ExerciseCatalog(settings.resolved_course_dir).get(exercise)
    except GraderError as exc:
        raise AssertionError(f"grader cannot load exercise {exercise!r}: {exc}") from None


def check_structure(build_model: Callable[..., Any], *, exercise: str, require: Sequence[str] = (),
                    max_params: int | None = None, settings: Settings | None = None) -> None:
    """Build the model here, without training, and check what the exercise asks for.

    Fast feedback before the slow check: input shape, number of outputs, parameter budget (default:
    the exercise's limit) and the layer kinds named in `require` (Keras class names; subclasses count).
    Every problem found is reported at once. Nothing is written to stderr, so log lines cannot zero
    the cell.

    Raises:
        AssertionError: with one line of advice per problem.
    """
    settings = settings or Settings()
    spec = _spec(exercise, settings)
    offered = {"input_shape": tuple(spec.input_shape), "num_classes": spec.labels.num_outputs}
    try:
        params = inspect.signature(build_model).parameters
    except (TypeError, ValueError):
        raise AssertionError("build_model is not a function: define `def build_model(input_shape, num_classes):`") from None
    unknown = [n for n, p in params.items() if n not in offered and p.default is inspect.Parameter.empty
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if unknown:
        raise AssertionError(f"build_model has parameters {unknown} that grader cannot fill: "
                             "it may take only `input_shape` and/or `num_classes`")
    with _quiet() as notes:
        try:
            model = build_model(**{k: v for k, v in offered.items() if k in params})
        except NotImplementedError:
            raise AssertionError("build_model is not written yet: replace `raise NotImplementedError()` "
                                 "with your model") from None
        except Exception as exc:
            hint = next((f" (`{old}=` is a Keras 2 name; Keras 3 calls it {rename_hint(old)})" for old in KERAS2_RENAMES
                         if f"'{old}'" in str(exc)), "")
            raise AssertionError(f"build_model() raised {type(exc).__name__}: {str(exc)[:600]}{hint}") from None
        if not _is_keras_model(model):
            raise AssertionError(f"build_model() returned {type(model).__name__}; it must return the keras.Model "
                                 "(add `return model` at the end)")
        problems = _problems(model, spec, require, spec.limits.max_params if max_params is None else max_params)
        count = int(model.count_params()) if not problems else 0
        layer_names = [type(layer).__name__ for layer in model.layers]
    for note in notes:
        print(f"note: {note}")
    if problems:
        raise AssertionError("\n".join(f"- {p}" for p in problems))
    print(f"Structure OK: {count:,} parameters; layers: {', '.join(layer_names)}")


def _correlation(a: Any, b: Any) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype="float64").ravel(), np.asarray(b, dtype="float64").ravel()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def check_augment(augment: Callable[..., Any], *, exercise: str, tries: int = 8,
                  settings: Settings | None = None) -> None:
    """Run `augment(image, label)` the way the job does (a tf.data map over 28x28x1 images in [0, 1]).

    Checks the contract before the slow check trains with it: it returns `(image, label)`, keeps the
    shape and the label, changes the image at least once in `tries` calls, and never mirrors it (a
    mirrored hand sign can be another letter).

    Raises:
        AssertionError: one line of advice per problem.
    """
    import numpy as np

    spec = _spec(exercise, settings or Settings())
    if not callable(augment):
        raise AssertionError("augment is not a function: define `def augment(image, label):` returning (image, label)")
    h, w, c = spec.input_shape
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.clip(((xx + 2 * yy) / (w + 2 * h)) + (np.abs(xx - w // 3) < 3) * 0.5, 0, 1)  # an asymmetric picture
    images = np.repeat(image.astype("float32").reshape(1, h, w, c), tries, axis=0)
    labels = np.arange(tries, dtype="int64") % spec.labels.num_outputs
    # The participant's cells imported Keras, so TensorFlow is loaded; grader.notebook never imports it itself.
    tf = sys.modules.get("tensorflow") or importlib.import_module("tensorflow")
    with _quiet() as notes:
        try:
            out = list(tf.data.Dataset.from_tensor_slices((images, labels)).map(augment).as_numpy_iterator())
        except Exception as exc:
            raise AssertionError(f"augment(image, label) failed inside tf.data, as grader's job calls it: "
                                 f"{type(exc).__name__}: {str(exc)[:600]} (use TensorFlow or Keras operations, "
                                 "not NumPy, on the image)") from None
    problems: list[str] = []
    shapes = {np.shape(item[0]) if isinstance(item, tuple) and len(item) == 2 else None for item in out}
    if None in shapes:
        problems.append("augment must return two things, `return image, label`")
    elif shapes != {(h, w, c)}:
        problems.append(f"augment returned images of shape {sorted(map(str, shapes))}; keep {(h, w, c)}")
    else:
        if any(int(np.asarray(lab)) != int(want) for (_, lab), want in zip(out, labels, strict=True)):
            problems.append("augment changed a label: return the label it was given")
        pictures = [np.asarray(img, dtype="float32") for img, _ in out]
        if all(np.allclose(p, images[0], atol=1e-3) for p in pictures):
            problems.append(f"augment returned the image unchanged in all {tries} calls: apply random rotations, "
                            "zoom or shifts (layers.RandomRotation/RandomZoom/RandomTranslation with training=True)")
        original = images[0]
        for flipped, how in ((original[:, ::-1], "mirrored the image"), (original[::-1], "turned the image upside down")):
            # small rotations and shifts keep an image closer to itself than to its mirror image
            if sum(_correlation(p, flipped) > _correlation(p, original) for p in pictures) > tries // 2:
                problems.append(f"augment {how}: a mirrored hand sign can be another letter; leave "
                                "flips out")
        if any(p.max() > 1.5 or p.min() < -0.5 for p in pictures):
            problems.append("augment changed the pixel range: images come in [0, 1] and should stay there")
    for note in notes:
        print(f"note: {note}")
    if problems:
        raise AssertionError("\n".join(f"- {p}" for p in problems))
    print(f"augment OK: {tries} images, shape {(h, w, c)}, labels kept")


def _problems(model: Any, spec: ExerciseSpec, require: Sequence[str], max_params: int) -> list[str]:
    problems: list[str] = []
    h, w, c = spec.input_shape
    accepted_inputs: dict[tuple[int, ...], str] = {(h, w, c): "image", (h * w * c,): "flat"}
    if c == 1:
        accepted_inputs[(h, w)] = "image2d"
    try:
        shapes = [tuple(t.shape)[1:] for t in model.inputs]
    except (AttributeError, TypeError, ValueError):
        shapes = []
    if not shapes:
        problems.append(f"the model has no defined input: start it with keras.Input(shape=input_shape) for a CNN "
                        f"(or shape=({h * w * c},) for a dense network)")
        return problems  # without an input there is no output shape or parameter count to check
    if len(shapes) != 1 or shapes[0] not in accepted_inputs:
        problems.append(f"the model's input shape is {shapes[0] if len(shapes) == 1 else shapes}; the images are "
                        f"{(h, w, c)}: use keras.Input(shape=input_shape), or shape=({h * w * c},) for a dense network")
    units = {int(o.shape[-1]) if o.shape[-1] is not None else -1 for o in model.outputs}
    accepted_units = spec.labels.accepted_output_units()
    if len(model.outputs) != 1 or not units <= set(accepted_units):
        problems.append(f"the last layer has {', '.join(map(str, sorted(units)))} outputs; this exercise has "
                        f"{spec.labels.num_outputs} labels: end with layers.Dense(num_classes, activation='softmax')")
    count = int(model.count_params())
    if count > max_params:
        problems.append(f"the model has {count:,} parameters; the budget is {max_params:,}: use fewer or narrower "
                        "Dense layers, or a MaxPooling2D before Flatten")
    kinds = _layer_kinds(model)
    have = ", ".join(type(layer).__name__ for layer in model.layers) or "none"
    for kind in require:
        if not any(kind in k for k in kinds):
            advice = LAYER_ADVICE.get(kind, f"add a {kind} layer")
            problems.append(f"the exercise asks for a {kind} layer and your model has {have}: {advice}")
    return problems


# --- grading through the sandboxed job --------------------------------------------------------

@dataclass(frozen=True)
class _Graded:
    report: GradeReport
    spec: ExerciseSpec
    board: str
    notes: list[str]

    @property
    def accuracy(self) -> float:
        """On the rubric's board, the one the baseline's accuracy was measured on."""
        assert self.report.metrics is not None  # an OK outcome always has metrics (ingest recomputes them)
        return self.report.metrics.board_accuracy(self.board)


def _grade(source: str, sha256: str, *, exercise: str, profile: str, seed: int | None,
           settings: Settings) -> GradeReport:
    key = (sha256, exercise, profile, seed, str(settings.home))
    if key not in _REPORTS:
        from grader.service.context import Context  # database and backends: only when grading
        from grader.service.graded_run import grade_source

        _REPORTS[key] = grade_source(source, exercise=exercise, profile=profile, ctx=Context(settings=settings),
                                     seed=seed, references=("baseline",))
    return _REPORTS[key]


def _graded(*, exercise: str, profile: str, seed: int | None, source: str | None,
            settings: Settings | None) -> _Graded:
    """Extract, check statically, grade in the sandbox; raise AssertionError with advice on failure."""
    settings = settings or Settings()
    try:
        catalog = ExerciseCatalog(settings.resolved_course_dir)
        spec = catalog.get(exercise)
        board = catalog.rubric(exercise).board
        spec.profile(profile)
        notes: list[str] = []
        if source is None:
            source, notes = participant_source()
        info = check_source(source, "your notebook", spec, kind="ipynb")
        report = _grade(source, info.sha256, exercise=exercise, profile=profile, seed=seed, settings=settings)
    except GraderError as exc:
        raise AssertionError(str(exc)) from None
    result = report.result
    if result.outcome is not Outcome.OK:
        lines = [f"grader could not train and score your model: {result.message or result.outcome.value}"]
        if result.error_kind is ErrorKind.TIMEOUT:
            limit = spec.profile(profile).max_wall_seconds or spec.limits.max_wall_seconds
            lines.append(f"the notebook check allows {limit} s: a smaller model or a larger batch size trains faster")
        if result.error_kind in (ErrorKind.IMPORT_ERROR, ErrorKind.BUILD_ERROR):
            lines.append("grader keeps only your imports, functions, classes and literal settings (numbers, "
                         "strings, lists, dicts): build_model must not use variables computed in other cells")
        raise AssertionError("\n".join(lines + notes))
    return _Graded(report, spec, board, notes)


def check(*, exercise: str, profile: str = DEFAULT_PROFILE, min_accuracy: float | None = None,
          min_score: float | None = None, seed: int | None = None, source: str | None = None,
          settings: Settings | None = None) -> GradeReport:
    """Train and score the participant's model through grader's own job, then print the feedback.

    The model is taken from the cells this kernel ran, trained in a sandboxed subprocess under the
    exercise's seed (TensorFlow's output never reaches this cell) and scored on the trusted side,
    exactly as `grader submit` would. The report is cached per kernel, so `score()` after `check()`
    in the same cell does not train again.

    Args:
        min_accuracy: fail below this held-out accuracy (0..1, on the rubric's board).
        min_score: fail below this many rubric points.
        source: module source to grade instead of the kernel's history (for tests and scripts).

    Raises:
        AssertionError: the model could not be graded, or missed a threshold; the message says what to change.
    """
    graded = _graded(exercise=exercise, profile=profile, seed=seed, source=source, settings=settings)
    report = graded.report
    baseline = "" if report.baseline_accuracy is None else f" (baseline {report.baseline_accuracy:.1%})"
    print(f"grader: {exercise}, profile {profile}: {graded.board} held-out accuracy {graded.accuracy:.1%}{baseline}, "
          f"{report.result.params or 0:,} parameters, {report.result.epochs} epochs; "
          f"rubric {report.score:g}/{report.max_score:g}")
    for line in [*report.feedback, *graded.notes]:
        print(f"  {line}")
    if min_accuracy is not None and graded.accuracy < min_accuracy:
        raise AssertionError(f"held-out accuracy {graded.accuracy:.1%} is below the required {min_accuracy:.1%}: "
                             + _advice(report))
    if min_score is not None and report.score < min_score:
        raise AssertionError(f"the rubric gives {report.score:g} of {report.max_score:g} points; at least "
                             f"{min_score:g} are required:\n" + "\n".join(f"- {f}" for f in report.feedback))
    return report


def _advice(report: GradeReport) -> str:
    """One concrete next step, chosen from what was measured (the course's concepts)."""
    metrics = report.metrics
    if metrics is not None and metrics.generalization_gap is not None and metrics.generalization_gap > 0.15:
        return (f"training accuracy {metrics.train_accuracy:.1%} is far above held-out {metrics.public_accuracy:.1%}: "
                "the model overfits; add Dropout or use fewer parameters")
    if metrics is not None and metrics.train_accuracy is not None and metrics.train_accuracy < 0.5:
        return ("the model does not even fit its training images: check the learning rate (too high or too low) "
                "and the last layer's softmax, and try convolutions")
    return "try convolutions (Conv2D + MaxPooling2D), a tuned learning rate, or more filters"


def relative_accuracy(accuracy: float, baseline: float, num_classes: int) -> float:
    """0 at chance level, 1 at the baseline: a scale on which tiers mean the same for every exercise."""
    chance = 1.0 / num_classes
    if baseline <= chance:
        return math.inf if accuracy > chance else 0.0
    return (accuracy - chance) / (baseline - chance)


def score(*, exercise: str, points: float, profile: str = DEFAULT_PROFILE,
          tiers: Sequence[tuple[float, float]] = DEFAULT_TIERS, seed: int | None = None,
          source: str | None = None, settings: Settings | None = None) -> float:
    """Partial credit for an nbgrader test cell: make it the cell's last expression.

    nbgrader reads a number shown as a cell's result as the points earned, so this returns `points`
    times the share of the highest tier the model reaches on `relative_accuracy` against the baseline
    (measured by grader under the same profile and seed, on the rubric's board). `points` must equal
    the cell's points in nbgrader, since a larger number is an error there. Without a measured
    baseline the rubric's fraction is used.

    Raises:
        AssertionError: the model could not be graded (the cell then earns 0, with the reason).
    """
    graded = _graded(exercise=exercise, profile=profile, seed=seed, source=source, settings=settings)
    report, spec = graded.report, graded.spec
    if report.baseline_accuracy is None:
        share = report.score / report.max_score if report.max_score else 0.0
        basis = f"rubric {report.score:g}/{report.max_score:g} (no baseline measured for profile {profile})"
    else:
        rel = relative_accuracy(graded.accuracy, report.baseline_accuracy, spec.num_classes)
        share = next((s for minimum, s in sorted(tiers, reverse=True) if rel >= minimum), 0.0)
        basis = (f"{graded.board} held-out accuracy {graded.accuracy:.1%} vs the baseline's "
                 f"{report.baseline_accuracy:.1%} (chance {1 / spec.num_classes:.1%})")
    earned = round(points * share, 3)
    print(f"{earned:g} of {points:g} points: {basis}")
    if share < 1.0:
        print(f"  next step: {_advice(report)}")
    return earned
