"""Hostile submission: hunts for the held-out labels and, if it finds them, recites them.

It looks where labels could leak: GRADER_* variables, the data directory, ~/.keras/datasets,
the samples bundled inside the grader package, other processes' environments and command
lines under /proc, and a bounded walk of the whole visible filesystem. For every (x_test,
y_test) pair it can open it recovers the label of each held-out image by matching pixels, and
then builds a frozen nearest-neighbour model that predicts exactly those labels (accuracy 1.0).
If nothing leaks, the same model predicts class 0 everywhere (chance). What it found is printed
on stdout (a "GRADER-FOUND {json}" line), which the supervisor keeps in stdout.log for the test.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

PROBE: dict = {}  # the test adds paths it knows hold labels (the real data dir, the repo's samples)
SKIP = {"/proc", "/sys", "/dev", "/usr", sys.prefix, sys.base_prefix}
LABEL_FILES = (".npz", ".csv", ".gz", "-ubyte")


def _places() -> set[str]:
    places = set(PROBE.get("paths", []))
    for var in ("GRADER_DATA_DIR", "GRADER_HOME", "KERAS_HOME", "HOME"):
        if os.environ.get(var):
            places.add(os.environ[var])
    places |= {os.path.expanduser("~/.keras/datasets"), "/root/.keras/datasets", "/root/.local/share/grader"}
    try:
        import grader

        places.add(str(Path(grader.__file__).parent / "data" / "samples"))
    except ImportError:
        pass
    for proc in Path("/proc").glob("[0-9]*"):  # paths in other processes' environments and argv
        for name in ("environ", "cmdline"):
            try:
                blob = (proc / name).read_bytes()
            except OSError:
                continue
            for part in blob.split(b"\0"):
                value = part.decode(errors="ignore").partition("=")[2] or part.decode(errors="ignore")
                if value.startswith("/") and "GRADER" in part.decode(errors="ignore"):
                    places.add(value)
    return places


def _files(limit: int = 20000) -> list[Path]:
    found, seen = [], 0
    for place in [*sorted(_places()), "/"]:
        for root, dirs, files in os.walk(place):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
            seen += len(files)
            found += [Path(root, f) for f in files if f.endswith(LABEL_FILES)]
            if seen > limit:
                break
    return sorted(set(found))


def hunt(run_dir: Path) -> dict:
    """Recover held-out labels for this job's held-out images from anything readable."""
    job = json.loads((run_dir / "job.json").read_text())  # the run dir: the job's working folder's parent
    x_heldout = np.load(Path(job["inputs_dir"]) / "x_heldout.npy", allow_pickle=False)
    answers: dict[bytes, int] = {}
    opened = []
    for path in _files():
        if path.suffix != ".npz":
            continue
        try:
            with np.load(path, allow_pickle=False) as f:
                if {"x_test", "y_test"} <= set(f.files):
                    answers.update(zip((x.tobytes() for x in f["x_test"]), f["y_test"].tolist(), strict=True))
                    opened.append(str(path))
        except Exception:  # a hunter shrugs and moves on
            continue
    labels = [answers.get(x.tobytes()) for x in x_heldout]
    recovered = sum(label is not None for label in labels)
    return {"opened": opened, "recovered": recovered, "labels": [label or 0 for label in labels],
            "x_heldout": x_heldout}


def build_model(num_classes):
    import keras

    loot = hunt(Path.cwd().parent)
    print("GRADER-FOUND " + json.dumps({"opened": loot["opened"], "recovered": loot["recovered"]}), flush=True)
    x = loot["x_heldout"].reshape(len(loot["x_heldout"]), -1).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.UnitNormalization(),
        keras.layers.Dense(len(x), use_bias=False, activation="softmax"),  # which held-out image is this?
        keras.layers.Dense(num_classes, use_bias=False, activation="softmax"),  # ...and its label
    ])
    model.layers[1].set_weights([x.T * 1000.0])
    model.layers[2].set_weights([np.eye(num_classes, dtype="float32")[loot["labels"]] * 50.0])
    # learning rate 0: training leaves the lookup table as it is
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    return model


TRAINING = {"epochs": 1, "batch_size": 256}
