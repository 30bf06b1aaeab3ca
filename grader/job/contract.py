"""Submission-contract checks that need a built model, and participant-friendly error messages."""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

from grader.outcomes import ErrorKind
from grader.specs.exercise import ExerciseSpec
from grader.specs.keras2 import KERAS2_RENAMES, rename_hint


class JobFailure(Exception):
    """A specific, participant-facing reason the submission cannot be graded (becomes result.json)."""

    def __init__(self, kind: ErrorKind, message: str, detail: str | None = None, history: list[Any] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.detail = kind, message, detail
        self.history = history or []


def explain_exception(exc: BaseException, phase: str) -> tuple[ErrorKind, str]:
    """Turn an exception from participant code into (kind, advice) instead of a stack trace.

    The advice ends with the participant's own line where the traceback passes through their file.
    """
    kind, message = _explain(exc, phase)
    return kind, message + your_line(exc)


def your_line(exc: BaseException) -> str:
    """' (your line 12: `x = y / 0`)' for the deepest frame in the submission module, else ''."""
    path = getattr(sys.modules.get("submission"), "__file__", None)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if path and f.filename == path]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (your line {frame.lineno}: `{frame.line.strip()[:200]}`)" if frame.line else f" (your line {frame.lineno})"


def _explain(exc: BaseException, phase: str) -> tuple[ErrorKind, str]:
    text = f"{type(exc).__name__}: {exc}"
    old = _keras2_name(str(exc))
    if old is not None:
        return ErrorKind.KERAS2_API, (f"`{old}=` is a Keras 2 name; in Keras 3 use {rename_hint(old)} "
                                      f"({text[:300]})")
    if isinstance(exc, MemoryError) or "ResourceExhausted" in type(exc).__name__ or "OOM" in str(exc)[:200]:
        return ErrorKind.OUT_OF_MEMORY, f"ran out of memory while {phase}: make the model or batch size smaller"
    if isinstance(exc, ModuleNotFoundError):
        return ErrorKind.IMPORT_ERROR, (f"your file imports {exc.name!r}, which is not installed in the grading "
                                        "environment; use keras/tensorflow/numpy only")
    if "input_shape" in str(exc) or ("Input" in str(exc) and "shape" in str(exc)):
        return _kind_for(phase), f"error while {phase}: {text[:600]} (check the model's input shape)"
    return _kind_for(phase), f"error while {phase}: {text[:800]}"


def _keras2_name(message: str) -> str | None:
    match = re.search(r"(?:Unrecognized keyword arguments?(?: passed to \w+)?|unexpected keyword argument)"
                      r"[^'\"]*['\"](\w+)['\"]", message)
    if match and match.group(1) in KERAS2_RENAMES:
        return match.group(1)
    if "not recognized" in message:  # Keras 3 optimizers: "Argument(s) not recognized: {'lr': 0.1}"
        return next((k for k in re.findall(r"['\"](\w+)['\"]\s*:", message) if k in KERAS2_RENAMES), None)
    return None


def _kind_for(phase: str) -> ErrorKind:
    return {
        "importing your file": ErrorKind.IMPORT_ERROR,
        "building the model": ErrorKind.BUILD_ERROR,
        "training": ErrorKind.FIT_ERROR,
        "predicting": ErrorKind.PREDICT_ERROR,
        "augmenting": ErrorKind.BAD_AUGMENT,
    }.get(phase, ErrorKind.BUILD_ERROR)


def traceback_tail(exc: BaseException, limit: int = 8000) -> str:
    return "".join(traceback.format_exception(exc))[-limit:]


def input_layout(model: Any) -> str:
    """'flat' (784), 'image' (28x28x1) or 'image2d' (28x28); anything else breaks the contract."""
    try:
        shape = tuple(model.inputs[0].shape)[1:]
    except (AttributeError, IndexError, TypeError, ValueError):
        raise JobFailure(ErrorKind.WRONG_INPUT_SHAPE,
                            "the model has no defined input: start it with keras.Input(shape=(28, 28, 1)) "
                            "(or shape=(784,) for a dense network)") from None
    if len(model.inputs) != 1:
        raise JobFailure(ErrorKind.WRONG_INPUT_SHAPE, f"the model has {len(model.inputs)} inputs; it needs one")
    layouts = {(784,): "flat", (28, 28, 1): "image", (28, 28): "image2d"}
    if shape not in layouts:
        raise JobFailure(ErrorKind.WRONG_INPUT_SHAPE,
                            f"the model's input shape is {shape}; images here are (28, 28, 1), or (784,) flattened")
    return layouts[shape]


def output_encoding(model: Any, spec: ExerciseSpec) -> tuple[int, str]:
    shape = tuple(model.outputs[0].shape)
    accepted = spec.labels.accepted_output_units()
    units = shape[-1]
    if len(model.outputs) != 1 or len(shape) != 2 or units not in accepted:
        want = spec.labels.num_outputs
        extra = (" (24 or 26 units are accepted too)" if len(accepted) > 1 else "")
        raise JobFailure(ErrorKind.WRONG_OUTPUT_SIZE,
                            f"the model's output shape is {shape[1:]}; this exercise has {spec.num_classes} classes "
                            f"over labels 0..{want - 1}: end with Dense({want}, activation='softmax'){extra}")
    return int(units), accepted[units]


def final_activation(model: Any) -> str | None:
    layer = model.layers[-1] if model.layers else None
    act = getattr(layer, "activation", None)
    if act is None:
        return type(layer).__name__.lower() if layer is not None else None
    return getattr(act, "__name__", str(act))


def loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or type(loss).__name__


def from_logits(loss: Any) -> bool:
    return bool(getattr(loss, "from_logits", False) or getattr(loss, "_fn_kwargs", {}).get("from_logits", False))


def check_logits(model: Any, loss: Any) -> None:
    """Linear outputs with a probability loss train badly and silently: say so at once."""
    act = final_activation(model)
    if act in ("linear", "dense") and not from_logits(loss):
        raise JobFailure(ErrorKind.LOGITS_WITHOUT_FROM_LOGITS,
                            "the last layer outputs logits (no softmax) but the loss expects probabilities: "
                            "add activation='softmax' to the last Dense layer, or use "
                            "keras.losses.SparseCategoricalCrossentropy(from_logits=True)")


def check_training(training: Any, spec: ExerciseSpec) -> dict[str, int]:
    if training is None:
        return {}
    if not isinstance(training, dict) or set(training) - {"epochs", "batch_size"}:
        raise JobFailure(ErrorKind.BAD_TRAINING_CONFIG,
                            "TRAINING must be a dict with keys 'epochs' and/or 'batch_size'")
    lim = spec.limits
    epochs, batch = training.get("epochs", spec.training.epochs), training.get("batch_size", spec.training.batch_size)
    for key, val in (("epochs", epochs), ("batch_size", batch)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise JobFailure(ErrorKind.BAD_TRAINING_CONFIG, f"TRAINING[{key!r}] must be a positive integer")
    if epochs > lim.max_epochs:
        raise JobFailure(ErrorKind.BAD_TRAINING_CONFIG,
                            f"TRAINING['epochs'] = {epochs} exceeds this exercise's limit of {lim.max_epochs}")
    if not lim.min_batch_size <= batch <= lim.max_batch_size:
        raise JobFailure(ErrorKind.BAD_TRAINING_CONFIG,
                            f"TRAINING['batch_size'] = {batch} is outside {lim.min_batch_size}..{lim.max_batch_size}")
    return {"epochs": epochs, "batch_size": batch}
