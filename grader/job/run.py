"""Run one grading job: confine, seed, import the submission, build, compile, fit, predict, report.

The job writes nothing into its run directory itself: everything goes to the supervisor over
grader.channel (progress events, predictions, weights, result.json last). It always sends a
result: every failure becomes JobResult.failed(kind, advice). Each phase is a function that returns
what it learned; `execute` strings them together.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import grader
from grader import __version__, landlock
from grader.channel import ENV_NAMESPACES, Channel
from grader.job.contract import (
    JobFailure,
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
from grader.outcomes import ErrorKind, Outcome
from grader.results import EpochRecord, JobResult, JobSpec, utcnow
from grader.rundir import INPUT_X_HELDOUT, INPUT_X_TRAIN, INPUT_Y_TRAIN, RunDir

PACKAGE_DIR = Path(grader.__file__).resolve().parent


@dataclass
class Inputs:
    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray


@dataclass
class Training:
    epochs: int
    batch_size: int
    augment: Any


@dataclass
class Built:
    model: Any
    layout: str
    units: int
    encoding: str
    params: int
    trainable_params: int
    layer_types: list[str]
    summary: str


@dataclass
class Compiled:
    optimizer: str
    learning_rate: float | None
    loss: str
    compiled_by: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class Fitted:
    history: list[EpochRecord]
    seconds: float
    steps: int | None
    expected_steps: int


def confine(run: RunDir, job: JobSpec, channel: Channel) -> None:
    """Landlock the job to its view before anything else runs (see grader.landlock)."""
    if not job.isolation.landlock:
        return
    roots = sorted({Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                      Path(sys.executable).resolve().parent.parent)} - {Path("/")})
    view = landlock.job_view(run_dir=run.path, scratch=run.scratch, inputs_dir=Path(job.inputs_dir),
                             package_dir=PACKAGE_DIR, python_roots=roots,
                             private_tmp=os.environ.get(ENV_NAMESPACES) == "bwrap")
    try:
        abi = landlock.confine(view)
    except OSError as exc:
        channel.event("warning", message=f"no Landlock view: {exc}")
        return
    channel.event("confined", abi=abi)


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow in one call
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_jit(False)


def load_inputs(job: JobSpec) -> Inputs:
    inputs = Path(job.inputs_dir)
    return Inputs(x_train=np.load(inputs / INPUT_X_TRAIN, allow_pickle=False),
                  y_train=np.load(inputs / INPUT_Y_TRAIN, allow_pickle=False).astype(np.int64),
                  x_heldout=np.load(inputs / INPUT_X_HELDOUT, allow_pickle=False))


def import_submission(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("submission", path)
    if spec is None or spec.loader is None:
        raise JobFailure(ErrorKind.IMPORT_ERROR, "cannot load the submission file")
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise JobFailure(ErrorKind.SYNTAX_ERROR, f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except SystemExit as exc:  # sys.exit() is not an Exception; without this no result would be sent
        raise JobFailure(ErrorKind.IMPORT_ERROR, f"your file called sys.exit({exc.code!r}) while being imported; "
                         "a submission must only define build_model()" + your_line(exc), traceback_tail(exc)) from None
    except RecursionError as exc:
        raise JobFailure(ErrorKind.IMPORT_ERROR, "importing your file recursed too deeply (an expression nested "
                         "thousands of levels, or a function calling itself without end)", traceback_tail(exc)) from None
    except Exception as exc:
        kind, msg = explain_exception(exc, "importing your file")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    if not callable(getattr(module, "build_model", None)):
        raise JobFailure(ErrorKind.MISSING_BUILD_MODEL, "your file defines no function build_model()")
    return module


def read_training(module: Any, job: JobSpec) -> Training:
    """The coordinator's epochs and batch size (read from TRAINING before the job started) win."""
    chosen = check_training(getattr(module, "TRAINING", None), job.exercise)
    epochs = job.epochs or chosen.get("epochs", job.exercise.training.epochs)
    if job.profile.max_epochs is not None:
        epochs = min(epochs, job.profile.max_epochs)
    batch_size = job.batch_size or chosen.get("batch_size", job.exercise.training.batch_size)
    if job.profile.max_batch_size is not None:
        batch_size = min(batch_size, job.profile.max_batch_size)
    augment = getattr(module, "augment", None)
    return Training(epochs=epochs, batch_size=batch_size, augment=augment if callable(augment) else None)


def _layer_types(model: Any, depth: int = 0) -> list[str]:
    out: list[str] = []
    for layer in model.layers:
        out.append(type(layer).__name__)
        if hasattr(layer, "layers") and depth < 20:
            out.extend(_layer_types(layer, depth + 1))
    return out


def _summary(model: Any) -> str:
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda line, line_break=True: lines.append(line))
    except Exception:  # a summary is nice to have, never worth failing a job
        return ""
    return "\n".join(lines)[:50_000]


def count_weights(model: Any) -> tuple[int, int]:
    """(all, trainable) from the weight tensors themselves, as the coordinator recounts them."""
    total = sum(math.prod(w.shape) for w in model.weights)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return int(total), int(trainable)


def build(module: Any, job: JobSpec) -> Built:
    import keras

    fn = module.build_model
    available = {"input_shape": tuple(job.exercise.input_shape), "num_classes": job.exercise.labels.num_outputs}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    kwargs = {k: v for k, v in available.items() if k in params}
    try:
        model = fn(**kwargs)
    except SystemExit as exc:
        raise JobFailure(ErrorKind.BUILD_ERROR, f"build_model() called sys.exit({exc.code!r}) instead of returning a "
                         "keras.Model" + your_line(exc), traceback_tail(exc)) from None
    except RecursionError as exc:
        raise JobFailure(ErrorKind.BUILD_ERROR, "build_model() recursed too deeply (a function calling itself "
                         "without end?)" + your_line(exc), traceback_tail(exc)) from None
    except Exception as exc:
        kind, msg = explain_exception(exc, "building the model")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    if not isinstance(model, keras.Model):
        raise JobFailure(ErrorKind.NOT_A_MODEL, f"build_model() returned {type(model).__name__}, not a keras.Model")
    layout = input_layout(model)
    units, encoding = output_encoding(model, job.exercise)
    params_all, trainable = count_weights(model)
    return Built(model=model, layout=layout, units=units, encoding=encoding, params=params_all,
                 trainable_params=trainable, layer_types=_layer_types(model), summary=_summary(model))


def compile_model(model: Any, job: JobSpec) -> Compiled:
    """Keep the participant's optimizer and loss; ensure accuracy; force XLA off (slow on CPU)."""
    import keras

    compiled = bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None
    warnings: list[str] = []
    if compiled:
        optimizer, loss = model.optimizer, model.loss
        if loss is None:
            raise JobFailure(ErrorKind.BUILD_ERROR, "the model is compiled without a loss")
        steps = _steps(optimizer)
        if steps:
            raise JobFailure(ErrorKind.BUILD_ERROR, f"build_model() trained the model (its optimizer had already "
                             f"taken {steps:,} steps): build_model must only build and compile it; grader trains it "
                             "with the exercise's settings")
    else:
        c = job.exercise.compile
        cls = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
               "adamw": keras.optimizers.AdamW, "nadam": keras.optimizers.Nadam}[c.optimizer]
        optimizer = cls(learning_rate=c.learning_rate, **({"momentum": c.momentum} if c.optimizer == "sgd" else {}))
        linear = getattr(getattr(model.layers[-1], "activation", None), "__name__", "") == "linear"
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=linear)
        warnings.append(f"your model was not compiled, so grader compiled it with the exercise's defaults "
                        f"({c.optimizer}, learning rate {c.learning_rate:g}, sparse categorical cross-entropy"
                        f"{' from logits' if linear else ''}); call model.compile(...) in build_model to choose")
    check_logits(model, loss)
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
    except Exception as exc:
        kind, msg = explain_exception(exc, "building the model")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    lr = getattr(optimizer, "learning_rate", None)
    try:
        lr_value = float(f"{float(np.asarray(lr)):.6g}") if lr is not None and not callable(lr) else None
    except (TypeError, ValueError):
        lr_value = None
    return Compiled(optimizer=type(optimizer).__name__, learning_rate=lr_value,
                    loss=loss_name(loss) + (" (from_logits)" if from_logits(loss) else ""),
                    compiled_by="submission" if compiled else "exercise defaults", warnings=warnings)


def _steps(optimizer: Any) -> int:
    try:
        return int(np.asarray(optimizer.iterations))
    except (AttributeError, TypeError, ValueError):
        return 0


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


def _configure_gpus() -> dict[str, str]:
    """Several jobs may share one GPU: grow memory on demand, or cap it (GRADER_GPU_MEMORY_MB)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cap = os.environ.get("GRADER_GPU_MEMORY_MB", "")
    for gpu in gpus:
        try:
            if cap.isdigit():
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(
                    memory_limit=int(cap))])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass
    if not gpus:
        return {}
    return {"gpu_memory": f"capped at {cap} MB" if cap.isdigit() else "growth on demand"}


def layout_images(x: np.ndarray, layout: str, scale: float) -> np.ndarray:
    """uint8 images → float32 in [0, 1], in the shape the model's input asks for, once, up front."""
    images = x.astype(np.float32) / np.float32(scale)
    if layout == "flat":
        return images.reshape(len(images), -1)
    if layout == "image":
        return images[..., None]
    return images


class _EpochCallback:
    """Progress events per epoch and NaN detection per batch (a diverging loss = learning rate)."""

    def __new__(cls, channel: Channel, total: int) -> Any:
        import keras

        class Callback(keras.callbacks.Callback):
            # A callback with a batch hook makes Keras turn every step's logs into Python floats before the next
            # step starts (a device sync per batch), unless it says it is safe to run on Keras' callback thread:
            # this one only reads the loss and sets two flags, and Keras waits for it before on_epoch_end.
            async_safe = True

            def __init__(self) -> None:
                super().__init__()
                self.history: list[EpochRecord] = []
                self.nan_epoch: int | None = None
                self._t = time.monotonic()

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._t = time.monotonic()
                channel.event("epoch_start", epoch=epoch + 1, epochs=total)

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    self.nan_epoch = len(self.history) + 1
                    self.model.stop_training = True

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                rec = EpochRecord(epoch=epoch + 1, seconds=round(time.monotonic() - self._t, 3),
                                  loss=_finite(logs.get("loss")), accuracy=_unit(logs.get("accuracy")))
                self.history.append(rec)
                channel.event("epoch_end", epochs=total, **rec.model_dump())

        return Callback()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _unit(value: Any) -> float | None:
    v = _finite(value)
    return v if v is not None and 0.0 <= v <= 1.0 else None


def fit(built: Built, training: Training, inputs: Inputs, job: JobSpec, channel: Channel,
        scratch: Path) -> tuple[Fitted, np.ndarray]:
    """Train with the exercise's settings; returns what happened and the laid-out training images."""
    import keras

    labels = job.exercise.labels
    y_fit = inputs.y_train
    if built.encoding == "compact":
        remap = np.full(labels.num_outputs, -1, dtype=np.int64)
        remap[labels.used] = np.arange(len(labels.used))
        y_fit = remap[y_fit]
    loss = built.model.loss
    if "categorical_crossentropy" in loss_name(loss) and "sparse" not in loss_name(loss):
        y_fit = keras.utils.to_categorical(y_fit, built.units)  # one-hot loss: accept it, encode labels to match
    images = layout_images(inputs.x_train, built.layout, job.exercise.pixel_scale)
    callback = _EpochCallback(channel, training.epochs)
    callbacks = [callback, *_tensorboard(scratch)]
    steps_per_epoch = math.ceil(len(images) / training.batch_size)
    channel.event("phase", phase="training", epochs=training.epochs)
    t = time.monotonic()
    try:
        if training.augment is None:
            # NumPy arrays straight into fit, as the course's scripts do: Keras shuffles them each epoch
            built.model.fit(images, y_fit, batch_size=training.batch_size, epochs=training.epochs, shuffle=True,
                            verbose=0, callbacks=callbacks)
        else:
            built.model.fit(_augmented(inputs, y_fit, built.layout, training, job), epochs=training.epochs,
                            verbose=0, callbacks=callbacks)
    except JobFailure as exc:
        exc.history = callback.history
        raise
    except Exception as exc:
        augmenting = training.augment is not None and "map" in str(exc).lower()
        kind, msg = explain_exception(exc, "augmenting" if augmenting else "training")
        raise JobFailure(kind, msg, traceback_tail(exc), history=callback.history) from None
    seconds = round(time.monotonic() - t, 3)
    if callback.nan_epoch is not None:
        raise JobFailure(
            ErrorKind.NAN_LOSS, f"the loss became NaN/inf during epoch {callback.nan_epoch}: training diverged. "
            "Lower the learning rate (e.g. by 10x), and check the last layer's activation and the loss",
            history=callback.history)
    steps = _steps(built.model.optimizer)
    return Fitted(history=callback.history, seconds=seconds, steps=steps or None,
                  expected_steps=steps_per_epoch * len(callback.history)), images


def _augmented(inputs: Inputs, y_fit: np.ndarray, layout: str, training: Training, job: JobSpec) -> Any:
    """tf.data with the participant's per-image augment(image, label) (28x28x1 images in [0, 1])."""
    import tensorflow as tf

    images = layout_images(inputs.x_train, "image", job.exercise.pixel_scale)
    ds = tf.data.Dataset.from_tensor_slices((images, y_fit)).shuffle(len(images), seed=job.seed,
                                                                     reshuffle_each_iteration=True)
    try:
        ds = ds.map(training.augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    except Exception as exc:
        kind, msg = explain_exception(exc, "augmenting")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    if layout == "flat":
        ds = ds.map(lambda img, lab: (tf.reshape(img, (784,)), lab))
    elif layout == "image2d":
        ds = ds.map(lambda img, lab: (tf.reshape(img, (28, 28)), lab))
    return ds.batch(training.batch_size).prefetch(tf.data.AUTOTUNE)


def _tensorboard(scratch: Path) -> list[Any]:
    """Scalars only (loss, accuracy per epoch): cheap, and what `grader tensorboard` compares.

    Only where TensorBoard is installed (the `tensorboard` extra): tf.summary needs it.
    """
    if importlib.util.find_spec("tensorboard") is None:
        return []
    import keras

    return [keras.callbacks.TensorBoard(log_dir=str(scratch / "tensorboard"), histogram_freq=0, write_graph=False,
                                        write_images=False, update_freq="epoch", profile_batch=0)]


def predict(model: Any, images: np.ndarray, encoding: str, job: JobSpec) -> np.ndarray:
    probs = np.asarray(model.predict(images, batch_size=512, verbose=0), dtype=np.float64)
    labels = job.exercise.labels
    if encoding == "compact":
        picked: np.ndarray = np.asarray(labels.used, dtype=np.int16)[probs.argmax(axis=1)]
        return picked
    probs = probs[:, : labels.num_outputs].copy()
    if labels.unused:
        probs[:, labels.unused] = -np.inf  # labels that never occur are never predicted
    chosen: np.ndarray = probs.argmax(axis=1).astype(np.int16)
    return chosen


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def weights_npz(model: Any) -> bytes:
    """Every weight tensor, uncompressed: the coordinator recounts the parameters from these headers."""
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"w{i:05d}": np.asarray(w.numpy()) for i, w in enumerate(model.weights)}
    np.savez(buf, **arrays)
    return buf.getvalue()


def send_tensorboard(channel: Channel, scratch: Path) -> None:
    root = scratch / "tensorboard"
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and len(path.relative_to(root).parts) <= 4:
            try:
                channel.file(f"{RunDir.TENSORBOARD}/{path.relative_to(root).as_posix()}", path.read_bytes())
            except ValueError:
                continue  # a name the channel does not accept: TensorBoard logs are optional


def execute(run: RunDir, job: JobSpec, channel: Channel, known: dict[str, Any]) -> JobResult:
    """The happy path: raises JobFailure for anything a participant can fix; `known` keeps what is learned."""
    timings: dict[str, float] = known["timings"]
    t = time.monotonic()
    import keras  # noqa: F401  (timed: TensorFlow's import is most of a smoke job's start-up)

    timings["import_tensorflow"] = round(time.monotonic() - t, 3)
    seed_everything(job.seed)
    known["settings"] = {"op_determinism": "on", "xla": "off", "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"),
                         **_configure_gpus()}
    known["versions"], known["gpu"] = _versions(), _gpu_info()
    channel.event("phase", phase="loading data")
    inputs = load_inputs(job)

    channel.event("phase", phase="importing submission")
    t = time.monotonic()
    module = import_submission(run.submission)
    training = read_training(module, job)
    known.update(augment=training.augment is not None, epochs=training.epochs, batch_size=training.batch_size)
    timings["import_submission"] = round(time.monotonic() - t, 3)

    channel.event("phase", phase="building model")
    t = time.monotonic()
    built = build(module, job)
    known.update(params=built.params, trainable_params=built.trainable_params, input_layout=built.layout,
                 output_units=built.units, label_encoding=built.encoding, layer_types=built.layer_types,
                 model_summary=built.summary)
    if built.params > job.exercise.limits.max_params:
        raise JobFailure(ErrorKind.TOO_MANY_PARAMS, f"the model has {built.params:,} parameters; this exercise "
                         f"allows {job.exercise.limits.max_params:,}")
    compiled = compile_model(built.model, job)
    known.update(optimizer=compiled.optimizer, learning_rate=compiled.learning_rate, loss=compiled.loss,
                 compiled_by=compiled.compiled_by)
    known["warnings"].extend(compiled.warnings)
    timings["build"] = round(time.monotonic() - t, 3)

    try:
        fitted, images = fit(built, training, inputs, job, channel, run.scratch)
    except JobFailure as exc:
        known["history"] = exc.history
        raise
    known.update(history=fitted.history, optimizer_steps=fitted.steps, expected_steps=fitted.expected_steps)
    timings["fit"] = fitted.seconds

    channel.event("phase", phase="predicting")
    t = time.monotonic()
    try:
        heldout = predict(built.model, layout_images(inputs.x_heldout, built.layout, job.exercise.pixel_scale),
                          built.encoding, job)
        k = min(job.profile.train_eval_size, len(images))
        train_eval = predict(built.model, images[:k], built.encoding, job)
    except Exception as exc:
        kind, msg = explain_exception(exc, "predicting")
        raise JobFailure(kind, msg, traceback_tail(exc)) from None
    timings["predict"] = round(time.monotonic() - t, 3)
    channel.file(RunDir.PREDICTIONS, npy_bytes(heldout))
    channel.file(RunDir.TRAIN_PREDICTIONS, npy_bytes(train_eval))
    channel.file(RunDir.WEIGHTS, weights_npz(built.model))
    try:
        channel.file(RunDir.MODEL, built.model.to_json().encode())
    except Exception as exc:  # the architecture is for integrity checks; a model that cannot say it still counts
        known["warnings"].append(f"the model's architecture could not be saved: {type(exc).__name__}")
    send_tensorboard(channel, run.scratch)
    return JobResult(outcome=Outcome.OK, n_predictions=len(heldout), **known)


def run(run: RunDir) -> JobResult:
    started = utcnow()
    t0 = time.monotonic()
    channel = Channel.open(run.path)
    try:
        job = JobSpec.model_validate_json(run.job_json.read_text())
    except Exception as exc:
        result = JobResult.failed(ErrorKind.INFRASTRUCTURE, f"cannot read job.json: {str(exc)[:500]}")
        _finish(channel, result)
        return result
    confine(run, job, channel)
    channel.event("phase", phase="start")
    known: dict[str, Any] = {
        "seed": job.seed, "profile": job.profile_name, "submission_sha256": job.submission_sha256,
        "spec_hash": job.spec_hash, "host": platform.node(), "backend": job.backend,
        "scheduler_job_id": os.environ.get("SLURM_JOB_ID"), "started_at": started, "timings": {}, "warnings": [],
    }
    try:
        result = execute(run, job, channel, known)
    except JobFailure as exc:
        result = JobResult.failed(exc.kind, exc.message, detail=exc.detail, **known)
    except MemoryError:
        result = JobResult.failed(ErrorKind.OUT_OF_MEMORY, "the job ran out of memory: use a smaller model or batch",
                                  **known)
    except RecursionError as exc:
        result = JobResult.failed(ErrorKind.BUILD_ERROR, "your code recursed too deeply", detail=traceback_tail(exc),
                                  **known)
    except Exception as exc:  # anything else is still a stored outcome with a message
        kind, msg = explain_exception(exc, "training")
        result = JobResult.failed(kind, msg, detail=traceback_tail(exc), **known)
    result.finished_at = utcnow()
    result.timings["total"] = round(time.monotonic() - t0, 3)
    _finish(channel, result)
    return result


def _finish(channel: Channel, result: JobResult) -> None:
    channel.file(RunDir.RESULT, result.model_dump_json(indent=2).encode())
    channel.event("end", outcome=result.outcome.value)
    channel.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.job RUN_DIR", file=sys.stderr)
        return 2
    result = run(RunDir(Path(argv[0])))
    return 0 if result.outcome is Outcome.OK else 1
