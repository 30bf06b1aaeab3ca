"""What the held-out perturbation guard costs an honest model (issue 13, docs/integrity.md).

`perturb_heldout = true` adds light noise to every held-out image (grader.datasets.perturb), and
`perturb_shift = true` also shifts it by one pixel in a secret direction. A lookup table of public test
images then finds nothing; this bench measures what each does to honest models. Each reference is
trained once on the full training set (the course script's way: NumPy arrays into fit, the file's own
TRAINING, the exercise's seed) and evaluated on the original test split and on both perturbed copies;
the model and its weights are the same, so the differences are the perturbations' alone.

    GRADER_DATA_DIR=/path/to/datasets .venv/bin/python bench/perturbation_effect.py
    ... --refs mnist/baseline,mnist/cnn1 --epochs 3     # a quick look

Prints a Markdown table for docs/validation.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = {"mnist": "mnist.npz", "fashion_mnist": "fashion_mnist.npz", "asl": "sign_mnist.npz"}
DEFAULT = "mnist/baseline,mnist/cnn1,fashion_mnist/baseline,asl/baseline,asl/cnn"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refs", default=DEFAULT, help="exercise/reference pairs")
    ap.add_argument("--epochs", type=int, default=None, help="override the file's TRAINING epochs")
    args = ap.parse_args()
    data_dir = Path(os.environ.get("GRADER_DATA_DIR", ""))
    if not (data_dir / "mnist.npz").exists():
        sys.exit("set GRADER_DATA_DIR to the folder with mnist.npz, fashion_mnist.npz and sign_mnist.npz")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from grader.datasets import perturb

    secret = secrets.token_bytes(32)
    print("| exercise | reference | epochs | test accuracy | noise | difference | noise + shift | difference "
          "| train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair in args.refs.split(","):
        exercise, name = pair.split("/")
        path = REPO / "reference_solutions" / exercise / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"ref_{exercise}_{name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        training = getattr(module, "TRAINING", {})
        epochs = args.epochs or training.get("epochs", 10)
        batch = training.get("batch_size", 32)
        with np.load(data_dir / DATASETS[exercise]) as f:
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        x_noise, x_shift = perturb(x_test, secret), perturb(x_test, secret, shift=True)
        keras.utils.set_random_seed(42)
        model = module.build_model()
        shape = tuple(model.inputs[0].shape)[1:]

        def prep(x: np.ndarray, shape: tuple[int, ...] = shape) -> np.ndarray:
            return (x.astype("float32") / 255.0).reshape((-1, *shape))

        t = time.monotonic()
        augment = getattr(module, "augment", None)
        if augment is None:
            model.fit(prep(x_train), y_train, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
        else:
            import tensorflow as tf

            ds = tf.data.Dataset.from_tensor_slices((prep(x_train).reshape(-1, 28, 28, 1), y_train))
            ds = ds.shuffle(len(x_train), seed=42).map(augment).map(lambda i, y, s=shape: (tf.reshape(i, s), y))
            model.fit(ds.batch(batch), epochs=epochs, verbose=0)
        seconds = time.monotonic() - t

        plain, noise, shifted = (float(np.mean(np.argmax(model.predict(prep(x), verbose=0), axis=1) == y_test))
                                 for x in (x_test, x_noise, x_shift))
        print(f"| {exercise} | {name} | {epochs} | {plain:.2%} | {noise:.2%} | {100 * (noise - plain):+.2f} pt "
              f"| {shifted:.2%} | {100 * (shifted - plain):+.2f} pt | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
