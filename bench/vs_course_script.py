"""`grader run --profile full` against the course's own style of script, side by side (issue 12).

The course trains with NumPy arrays straight into `model.fit` and reports `model.evaluate` on the
test split. This benchmark runs, alternately, `grader run FILE --profile full` (process start to the
printed result: CLI, sandbox supervisor, bwrap/Landlock, the job, scoring) and a script that builds
the very same model from the same file, seeds Keras the same way, fits the same epochs and batch size
on the same data and evaluates it (paying its own TensorFlow import). It prints medians per model,
the ratio, the job's own fit time next to the script's, and both accuracies (grader's recomputed from
its predictions on the whole test split).

    GRADER_DATA_DIR=/path/to/datasets .venv/bin/python bench/vs_course_script.py --pairs 3
    ... --models fc64 --epochs 3          # a quick look: fewer epochs make fixed overheads count more

Needs the full datasets (mnist.npz, fashion_mnist.npz) in GRADER_DATA_DIR. Run it on a quiet machine:
the two cores are shared, so alternate pairs and read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {  # name: (exercise, dataset, reference file)
    "fc64": ("mnist", "mnist", "reference_solutions/mnist/baseline.py"),
    "cnn1": ("mnist", "mnist", "reference_solutions/mnist/cnn1.py"),
    "fashion_baseline": ("fashion_mnist", "fashion_mnist", "reference_solutions/fashion_mnist/baseline.py"),
}

COURSE_SCRIPT = r'''
import importlib.util, math, sys, time
t0 = time.monotonic()
import numpy as np
import keras
path, data, epochs, batch, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
spec = importlib.util.spec_from_file_location("model", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
keras.utils.set_random_seed(seed)
with np.load(data) as f:
    x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
model = module.build_model()
shape = tuple(model.inputs[0].shape)[1:]
x_train, x_test = x_train.reshape((-1, *shape)), x_test.reshape((-1, *shape))
t = time.monotonic()
model.fit(x_train, y_train, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
fit = time.monotonic() - t
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(f"RESULT fit={fit:.2f} accuracy={acc:.4f}")
'''


def with_epochs(path: Path, epochs: int | None, folder: Path) -> tuple[Path, int, int]:
    """The model file, optionally with its TRAINING epochs replaced; (file, epochs, batch)."""
    text = path.read_text()
    found = re.search(r"TRAINING = \{\"epochs\": (\d+), \"batch_size\": (\d+)\}", text)
    assert found, f"{path} has no literal TRAINING"
    file_epochs, batch = int(found.group(1)), int(found.group(2))
    if epochs is None:
        return path, file_epochs, batch
    copy = folder / path.name
    copy.write_text(text.replace(found.group(0), f'TRAINING = {{"epochs": {epochs}, "batch_size": {batch}}}'))
    return copy, epochs, batch


def grader_run(file: Path, exercise: str, seed: int, env: dict[str, str], data: Path) -> dict[str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader", "run", str(file), "-e", exercise, "--profile", "full",
                           "--seed", str(seed)], env=env, capture_output=True, text=True, timeout=7200)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"grader run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run_dir = Path(re.search(r"run directory: (\S+)", proc.stdout.replace("\n", " ")).group(1))  # type: ignore[union-attr]
    result = json.loads((run_dir / "output" / "result.json").read_text())
    import numpy as np

    pred = np.load(run_dir / "output" / "predictions.npy")
    with np.load(data) as f:
        accuracy = float((pred == f["y_test"]).mean())
    return {"wall": wall, "fit": result["timings"]["fit"], "accuracy": accuracy,
            "job": json.loads((run_dir / "supervisor.json").read_text())["wall_seconds"]}


def course_run(file: Path, data: Path, epochs: int, batch: int, seed: int, env: dict[str, str]) -> dict[str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", COURSE_SCRIPT, str(file), str(data), str(epochs), str(batch), str(seed)],
                          env=env, capture_output=True, text=True, timeout=7200)
    wall = time.monotonic() - start
    found = re.search(r"RESULT fit=([\d.]+) accuracy=([\d.]+)", proc.stdout)
    if not found:
        raise SystemExit(f"the course script failed:\n{proc.stderr[-2000:]}")
    return {"wall": wall, "fit": float(found.group(1)), "accuracy": float(found.group(2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fc64,cnn1,fashion_baseline")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="Override each file's TRAINING epochs.")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("GRADER_DATA_DIR", ""))
    if not (data_dir / "mnist.npz").exists():
        raise SystemExit("set GRADER_DATA_DIR to a folder with mnist.npz and fashion_mnist.npz")
    with tempfile.TemporaryDirectory(prefix="grader-vs-course-") as tmp:
        folder = Path(tmp)
        # Bytecode is cached as in an installed package (without it grader's own modules compile on every run).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(GRADER_HOME=str(folder / "home"), GRADER_COURSE_DIR=str(REPO), GRADER_CONFIG=str(folder / "none.toml"),
                   COLUMNS="200", TF_CPP_MIN_LOG_LEVEL="2")
        rows = []
        for name in args.models.split(","):
            exercise, dataset, ref = MODELS[name]
            file, epochs, batch = with_epochs(REPO / ref, args.epochs, folder)
            data = data_dir / f"{dataset}.npz"
            grader_run(file, exercise, args.seed, env, data)  # warm-up: prepares the inputs and the answer key once
            g, c = [], []
            for i in range(args.pairs):
                order = (("g", "c") if i % 2 == 0 else ("c", "g"))
                for which in order:
                    if which == "g":
                        g.append(grader_run(file, exercise, args.seed, env, data))
                    else:
                        c.append(course_run(file, data, epochs, batch, args.seed, env))
                print(f"{name} pair {i + 1}: grader {g[-1]['wall']:.1f} s, script {c[-1]['wall']:.1f} s", flush=True)

            def med(runs: list[dict[str, float]], key: str) -> float:
                return statistics.median(r[key] for r in runs)

            rows.append((name, epochs, batch, med(g, "wall"), med(c, "wall"), med(g, "fit"), med(c, "fit"),
                         med(g, "accuracy"), med(c, "accuracy")))
    print()
    print("| model | epochs × batch | `grader run --profile full` wall | course script wall | ratio | job's fit | "
          "script's fit | grader accuracy | script accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, epochs, batch, gw, cw, gf, cf, ga, ca in rows:
        print(f"| {name} | {epochs} × {batch} | {gw:.1f} s | {cw:.1f} s | **{gw / cw:.2f}×** | {gf:.1f} s | {cf:.1f} s | "
              f"{ga:.2%} | {ca:.2%} |")


if __name__ == "__main__":
    main()
