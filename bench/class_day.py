"""A class of participants submitting at once: makespan, overhead outside `fit`, queue wait (issue 12).

Grades N distinct smoke submissions (dense networks of different widths, as a workshop room hands
in) through `grader submit`, each as its own process with its own participant name, the way a class
does, then waits until every one is on the leaderboard. Run once per configuration:

    .venv/bin/python bench/class_day.py --jobs 1                # local backend, one job at a time
    .venv/bin/python bench/class_day.py --jobs 2                # two at a time
    eval "$(cluster/start-local-cluster.sh)" && .venv/bin/python bench/class_day.py --backend slurm

Figures per job (from the database and the run directories, all on the coordinator's clock):

* queue wait: submitted → the supervisor started (the end of the job minus its measured wall time);
* job overhead outside `fit`: the supervisor's wall time minus the job's own fit time (interpreter,
  TensorFlow import, data, build, predict, teardown);
* to the leaderboard: the supervisor finished → the result was graded and stored.

The references of the profile are measured first (`grader references compute`), as an instructor
does before a class, so the figures are the participants' own. Prints medians, p90 and maxima, and
the makespan (first submission → last result on the board). Needs no full datasets (smoke profile).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRADER = str(Path(sys.executable).with_name("grader"))

MODEL = '''import keras
from keras import layers

TRAINING = {{"epochs": 2, "batch_size": 64}}


def build_model(input_shape, num_classes):
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Flatten(),
        layers.Dense({units}, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''


def stamp(value: str | None) -> float | None:
    """SQLite keeps naive UTC text."""
    if value is None:
        return None
    dt = datetime.fromisoformat(value)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return f"median {statistics.median(values):6.1f} s   p90 {p90:6.1f} s   max {values[-1]:6.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=1, help="GRADER_LOCAL_MAX_JOBS (local backend)")
    ap.add_argument("--backend", choices=("local", "slurm"), default="local")
    ap.add_argument("--exercise", default="mnist")
    ap.add_argument("--home", type=Path, default=None, help="state folder (default: a temporary one)")
    args = ap.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="grader-class-day-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_") or k.startswith("GRADER_SLURM")}
    env.update({"GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO), "GRADER_PROFILE": "smoke",
                "GRADER_CONFIG": str(home / "none.toml"), "GRADER_LOCAL_MAX_JOBS": str(args.jobs),
                "GRADER_BACKEND": args.backend, "COLUMNS": "120"})
    subs = home / "submissions-in"
    subs.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    subprocess.run([GRADER, "references", "compute", "-e", args.exercise], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"references measured in {time.monotonic() - t:.0f} s ({args.backend}, {args.jobs} job(s) at a time)")

    first = time.time()
    procs = []
    for i in range(args.participants):
        path = subs / f"p{i:03d}.py"
        path.write_text(MODEL.format(units=16 + 2 * i), encoding="utf-8")
        procs.append(subprocess.Popen([GRADER, "submit", str(path), "-e", args.exercise, "--student", f"p{i:03d}"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            print(f"a submit failed ({p.returncode}): {err[-500:]}", file=sys.stderr)
            return 1
    submitted = time.time() - first
    db = sqlite3.connect(f"file:{home / 'grader.db'}?mode=ro", uri=True)
    query = ("SELECT s.id, s.state, s.created_at, s.run_dir, r.wall_seconds, r.fit_seconds, r.graded_at FROM "
             "submissions s LEFT JOIN results r ON r.submission_id = s.id WHERE s.reference_name IS NULL")
    while True:
        if args.backend == "slurm":  # nothing else reconciles Slurm jobs in embedded mode
            subprocess.run([GRADER, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = db.execute(query).fetchall()
        if len(rows) == args.participants and all(r[1] not in ("queued", "running") for r in rows):
            break
        time.sleep(2)
    waits, overheads, to_board, fits, failed = [], [], [], [], 0
    last = first
    for _sid, state, created, run_dir, wall, fit, graded in rows:
        if state != "done" or wall is None or run_dir is None:
            failed += 1
            continue
        end = (Path(run_dir) / "supervisor.json").stat().st_mtime
        start = end - wall
        waits.append(start - (stamp(created) or start))
        overheads.append(wall - (fit or 0.0))
        fits.append(fit or 0.0)
        graded_at = stamp(graded) or end
        to_board.append(graded_at - end)
        last = max(last, graded_at)
    print(f"{args.participants} participants, {args.backend} backend, {args.jobs} job(s) at a time: "
          f"all submitted in {submitted:.1f} s, {failed} not done")
    print(f"makespan (first submission → last result on the board): {last - first:.0f} s")
    print(f"queue wait per participant:          {quantiles(waits)}")
    print(f"the job's own fit:                   {quantiles(fits)}")
    print(f"job overhead outside fit:            {quantiles(overheads)}")
    print(f"supervisor done → on the leaderboard: {quantiles(to_board)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
