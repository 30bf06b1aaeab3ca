"""Run one grading job: seed, import the submission, build, compile, fit, predict, write the run dir.

Always ends with a result.json: every failure becomes JobResult.failed(kind, advice).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.job.contract import (
    ContractError,
    check_logits,
    check_training,
    explain_exception,
    from_logits,
    input_layout,
    loss_name,
    output_encoding,
    traceback_tail,
    your_line,
)
from grader.results import EpochRecord, ErrorKind, JobResult, JobSpec, Outcome, utcnow
from grader.rundir import INPUT_X_HELDOUT, INPUT_X_TRAIN, INPUT_Y_TRAIN, RunDir, atomic_write_bytes, atomic_write_text


class JobFailure(Exception):
    def __init__(self, kind: ErrorKind, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.detail = kind, message, detail


class Progress:
    """One flushed JSON line per event, so a CLI can draw a live progress bar by tailing the file."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> None:
        self._fh.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        self._fh.flush()


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow in one call
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_jit(False)


def _import_submission(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("submission", path)
    if spec is None or spec.loader is None:
        raise JobFailure(ErrorKind.IMPORT_ERROR, "cannot load the submission file")
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise JobFailure(ErrorKind.SYNTAX_ERROR, f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except SystemExit as exc:  # sys.exit() is not an Exception; without this no result.json would be written
        raise JobFailure(ErrorKind.IMPORT_ERROR, f"your file called sys.exit({exc.code!r}) while being imported; "
                         "a submission must only define build_model()" + your_line(exc), traceback_tail(exc)) from None
    except Exception as exc:
        kind, msg = explain_exception(exc, "importing your file")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    if not callable(getattr(module, "build_model", None)):
        raise JobFailure(ErrorKind.MISSING_BUILD_MODEL, "your file defines no function build_model()")
    return module


def _build(module: Any, job: JobSpec) -> Any:
    import keras

    fn = module.build_model
    available = {"input_shape": tuple(job.exercise.input_shape), "num_classes": job.exercise.labels.num_outputs}
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in available.items() if k in params}
    try:
        model = fn(**kwargs)
    except SystemExit as exc:
        raise JobFailure(ErrorKind.BUILD_ERROR, f"build_model() called sys.exit({exc.code!r}) instead of returning a "
                         "keras.Model" + your_line(exc), traceback_tail(exc)) from None
    except Exception as exc:
        kind, msg = explain_exception(exc, "building the model")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    if not isinstance(model, keras.Model):
        raise JobFailure(ErrorKind.NOT_A_MODEL, f"build_model() returned {type(model).__name__}, not a keras.Model")
    return model


def _compile(model: Any, job: JobSpec) -> tuple[str, float | None, str]:
    """Keep the participant's optimizer and loss; ensure accuracy; force XLA off (slow on CPU)."""
    import keras

    compiled = bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None
    if compiled:
        optimizer, loss = model.optimizer, model.loss
        if loss is None:
            raise ContractError(ErrorKind.BUILD_ERROR, "the model is compiled without a loss")
    else:
        c = job.exercise.compile
        cls = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
               "adamw": keras.optimizers.AdamW, "nadam": keras.optimizers.Nadam}[c.optimizer]
        optimizer = cls(learning_rate=c.learning_rate, **({"momentum": c.momentum} if c.optimizer == "sgd" else {}))
        linear = getattr(getattr(model.layers[-1], "activation", None), "__name__", "") == "linear"
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=linear)
    check_logits(model, loss)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
    lr = getattr(optimizer, "learning_rate", None)
    try:
        lr_value = float(np.asarray(lr)) if lr is not None and not callable(lr) else None
    except (TypeError, ValueError):
        lr_value = None
    return type(optimizer).__name__, lr_value, loss_name(loss) + (" (from_logits)" if from_logits(loss) else "")


def _layer_types(model: Any) -> list[str]:
    out: list[str] = []
    for layer in model.layers:
        out.append(type(layer).__name__)
        if hasattr(layer, "layers"):
            out.extend(_layer_types(layer))
    return out


def _summary(model: Any) -> str:
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda line, line_break=True: lines.append(line))
    except Exception:  # a summary is nice to have, never worth failing a job
        return ""
    return "\n".join(lines)[:50_000]


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "grader": __version__}


def _gpu_info() -> dict[str, str]:
    import tensorflow as tf

    info = {k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_JOB_ID") if k in os.environ}
    info["tf_gpus"] = str(len(tf.config.list_physical_devices("GPU")))
    return info


def _images(x: np.ndarray, scale: float) -> np.ndarray:
    return (x.astype(np.float32) / scale)[..., None]


class _EpochCallback:
    """Progress lines per epoch and NaN detection per batch (a diverging loss = learning rate)."""

    def __new__(cls, progress: Progress, total: int, deadline: float) -> Any:
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.history: list[EpochRecord] = []
                self.nan_epoch: int | None = None
                self._t = time.monotonic()

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._t = time.monotonic()
                progress.emit("epoch_start", epoch=epoch + 1, epochs=total)

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    self.nan_epoch = len(self.history) + 1
                    self.model.stop_training = True

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                rec = EpochRecord(epoch=epoch + 1, seconds=round(time.monotonic() - self._t, 3),
                                  loss=_finite(logs.get("loss")), accuracy=_finite(logs.get("accuracy")))
                self.history.append(rec)
                progress.emit("epoch_end", epochs=total, **rec.model_dump())

        return Callback()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _predict(model: Any, x: np.ndarray, layout: str, encoding: str, job: JobSpec) -> np.ndarray:
    if layout == "flat":
        x = x.reshape(len(x), -1)
    elif layout == "image2d":
        x = x[..., 0]
    probs = np.asarray(model.predict(x, batch_size=512, verbose=0), dtype=np.float64)
    labels = job.exercise.labels
    if encoding == "compact":
        return np.asarray(labels.used, dtype=np.int16)[probs.argmax(axis=1)]
    probs = probs[:, : labels.num_outputs].copy()
    if labels.unused:
        probs[:, labels.unused] = -np.inf  # labels that never occur are never predicted
    return probs.argmax(axis=1).astype(np.int16)


def _dataset(x: np.ndarray, y: np.ndarray, layout: str, batch: int, seed: int, augment: Any) -> Any:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if layout == "flat":
        ds = ds.map(lambda img, lab: (tf.reshape(img, (784,)), lab))
    elif layout == "image2d":
        ds = ds.map(lambda img, lab: (tf.reshape(img, (28, 28)), lab))
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def _npy(path: Path, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def execute(run: RunDir, job: JobSpec, progress: Progress, fields: dict[str, Any]) -> JobResult:
    """The happy path; raises JobFailure/ContractError for anything a participant can fix."""
    timings: dict[str, float] = fields.setdefault("timings", {})
    t = time.monotonic()
    import keras
    import tensorflow as tf

    timings["import_tensorflow"] = round(time.monotonic() - t, 3)
    _seed_everything(job.seed)
    fields["versions"], fields["gpu"] = _versions(), _gpu_info()
    progress.emit("phase", phase="loading data")
    inputs = Path(job.inputs_dir)
    x_train = np.load(inputs / INPUT_X_TRAIN, allow_pickle=False)
    y_train = np.load(inputs / INPUT_Y_TRAIN, allow_pickle=False).astype(np.int64)
    x_heldout = np.load(inputs / INPUT_X_HELDOUT, allow_pickle=False)

    progress.emit("phase", phase="importing submission")
    t = time.monotonic()
    module = _import_submission(run.submission)
    training = check_training(getattr(module, "TRAINING", None), job.exercise)
    augment = getattr(module, "augment", None)
    fields["augment"] = callable(augment)
    timings["import_submission"] = round(time.monotonic() - t, 3)

    progress.emit("phase", phase="building model")
    t = time.monotonic()
    model = _build(module, job)
    layout = input_layout(model)
    units, encoding = output_encoding(model, job.exercise)
    params = int(model.count_params())
    fields.update(params=params, input_layout=layout, output_units=units, label_encoding=encoding,
                  layer_types=_layer_types(model), model_summary=_summary(model),
                  trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)))
    if params > job.exercise.limits.max_params:
        raise ContractError(ErrorKind.TOO_MANY_PARAMS,
                            f"the model has {params:,} parameters; this exercise allows {job.exercise.limits.max_params:,}")
    try:
        opt, lr, loss = _compile(model, job)
    except ContractError:
        raise
    except Exception as exc:
        kind, msg = explain_exception(exc, "building the model")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    fields.update(optimizer=opt, learning_rate=lr, loss=loss)
    timings["build"] = round(time.monotonic() - t, 3)

    epochs = training.get("epochs", job.exercise.training.epochs)
    batch = training.get("batch_size", job.exercise.training.batch_size)
    if job.profile.max_epochs is not None:
        epochs = min(epochs, job.profile.max_epochs)
    fields.update(epochs=epochs, batch_size=batch)

    y_fit = y_train
    if encoding == "compact":
        remap = np.full(job.exercise.labels.num_outputs, -1, dtype=np.int64)
        remap[job.exercise.labels.used] = np.arange(len(job.exercise.labels.used))
        y_fit = remap[y_train]
    if "categorical_crossentropy" in loss and "sparse" not in loss:
        y_fit = keras.utils.to_categorical(y_fit, units)  # one-hot loss: accept it, encode labels to match
    images = _images(x_train, job.exercise.pixel_scale)
    try:
        ds = _dataset(images, y_fit, layout, batch, job.seed, augment)
    except Exception as exc:
        kind, msg = explain_exception(exc, "augmenting" if augment else "training")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None

    progress.emit("phase", phase="training", epochs=epochs)
    deadline = time.monotonic() + job.wall_seconds
    callback = _EpochCallback(progress, epochs, deadline)
    t = time.monotonic()
    try:
        model.fit(ds, epochs=epochs, verbose=0, callbacks=[callback])
    except Exception as exc:
        kind, msg = explain_exception(exc, "augmenting" if augment and "map" in str(exc).lower() else "training")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    finally:
        fields["history"] = callback.history
        timings["fit"] = round(time.monotonic() - t, 3)
    if callback.nan_epoch is not None:
        raise JobFailure(ErrorKind.NAN_LOSS,
                         f"the loss became NaN/inf during epoch {callback.nan_epoch}: training diverged. "
                         "Lower the learning rate (e.g. by 10x), and check the last layer's activation and the loss")

    progress.emit("phase", phase="predicting")
    t = time.monotonic()
    try:
        heldout = _predict(model, _images(x_heldout, job.exercise.pixel_scale), layout, encoding, job)
        k = min(job.profile.train_eval_size, len(x_train))
        train_eval = _predict(model, images[:k], layout, encoding, job)
    except Exception as exc:
        kind, msg = explain_exception(exc, "predicting")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    _npy(run.predictions, heldout)
    _npy(run.train_predictions, train_eval)
    timings["predict"] = round(time.monotonic() - t, 3)
    try:
        model.save_weights(run.weights)
    except Exception as exc:  # weights are for instructors' curiosity, never a reason to fail
        progress.emit("warning", message=f"could not save weights: {exc}")
    del tf
    return JobResult(outcome=Outcome.OK, n_predictions=len(heldout), **fields)


def run(run: RunDir) -> JobResult:
    started = utcnow()
    t0 = time.monotonic()
    progress = Progress(run.progress)
    progress.emit("start")
    try:
        job = JobSpec.model_validate_json(run.job_json.read_text())
    except Exception as exc:
        result = JobResult.failed(ErrorKind.INFRASTRUCTURE, f"cannot read job.json: {exc}")
        atomic_write_text(run.result_json, result.model_dump_json(indent=2))
        return result
    fields: dict[str, Any] = {
        "seed": job.seed, "profile": job.profile_name, "submission_sha256": job.submission_sha256,
        "spec_hash": job.spec_hash, "host": platform.node(), "backend": job.backend,
        "scheduler_job_id": os.environ.get("SLURM_JOB_ID"), "started_at": started,
    }
    try:
        result = execute(run, job, progress, fields)
    except (JobFailure, ContractError) as exc:
        result = JobResult.failed(exc.kind, exc.message, detail=getattr(exc, "detail", None), **_known(fields))
    except MemoryError:
        result = JobResult.failed(ErrorKind.OUT_OF_MEMORY, "the job ran out of memory: use a smaller model or batch",
                                  **_known(fields))
    except Exception as exc:  # anything else is still a stored outcome with a message
        kind, msg = explain_exception(exc, "training")
        result = JobResult.failed(kind, msg, detail=traceback_tail(exc), **_known(fields))
    result.finished_at = utcnow()
    result.timings["total"] = round(time.monotonic() - t0, 3)
    atomic_write_text(run.result_json, result.model_dump_json(indent=2))
    progress.emit("end", outcome=result.outcome.value)
    return result


def _known(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in JobResult.model_fields}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.job RUN_DIR", file=sys.stderr)
        return 2
    result = run(RunDir(Path(argv[0])))
    return 0 if result.outcome is Outcome.OK else 1
