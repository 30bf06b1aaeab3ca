"""Hostile run directories (issue 8) through the real `grader run` and `grader submit --wait` paths.

Each case is a submission whose code attacks what the coordinator later reads, the way a red team
did: planting links to the database or a secret file, a FIFO or a device where the coordinator
reads; or forging the job's frames (the submission runs in the job's process, so it can patch
grader.channel): a 4,400-digit number, deep JSON, a .npy header promising 74.5 GiB, float, NaN or
pickled predictions, a forged parameter count, negative counts, a 1.5 MB message, markup and ANSI
escapes in every displayed field, more output than the quota, a stuck teardown. Planting files
needs write access to the run directory, which only a job without any filesystem view has
(isolation = "none" and landlock = false: the configuration that warns on every run); the forging
cases run with the default isolation. The assertion is always on what the participant sees: a
specific message, no traceback, no escape sequence reaching the terminal, nothing from outside the
run directory, no hang; and the next submission is graded normally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("grader")
GRADER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "grader"]
SECRET = f"TOP-SECRET-{uuid.uuid4().hex}"

MODEL = dedent('''\
    import keras

    TRAINING = {"epochs": 1, "batch_size": 128}


    def build_model(num_classes):
        return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dense(num_classes, activation="softmax")])
''')

# Forging frames: the submission patches the job's channel before the job sends anything.
FORGE = dedent('''\
    import io, json, os
    import numpy as np
    from grader.channel import Channel

    _send = Channel.file


    def _npy(arr, allow_pickle=False):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=allow_pickle)
        return buf.getvalue()


    def _file(self, name, data):
        _send(self, name, FORGED.get(name, lambda d: d)(data))


    Channel.file = _file
''')


def forged(name: str, expression: str) -> str:
    return FORGE + f"FORGED = {{{name!r}: lambda data: {expression}}}\n\n" + MODEL


@dataclass(frozen=True)
class Case:
    source: str
    says: tuple[str, ...]  # phrases the participant must see
    exit_code: int = 1
    view: bool = True  # False: run without any filesystem view (so the job can plant files)
    state: str = "failed"


CASES: dict[str, Case] = {
    # --- planted files (only possible without a filesystem view) ---
    "link_stderr_to_the_database": Case(dedent('''\
        import os, sys
        sys.stderr.write("the last output the coordinator will want to quote\\n")
        sys.stderr.flush()
        os.unlink("../stderr.log")
        os.symlink("../../grader.db", "../stderr.log")
        os._exit(3)
    ''') + MODEL, ("without sending a result",), view=False),
    "link_stderr_to_a_secret_file": Case(dedent(f'''\
        import os
        os.unlink("../stderr.log")
        os.symlink("/tmp/grader-secret-{SECRET}", "../stderr.log")
        os._exit(3)
    ''') + MODEL, ("without sending a result",), view=False),
    "link_output_folder_elsewhere": Case(dedent('''\
        import json, os, shutil
        os.makedirs("fake", exist_ok=True)
        open("fake/result.json", "w").write(json.dumps({"outcome": "ok", "message": "forged"}))
        shutil.rmtree("../output", ignore_errors=True)
        os.symlink(os.path.abspath("fake"), "../output")
    ''') + MODEL, ("without sending a result",), view=False),
    "fifo_where_progress_is_read": Case(dedent('''\
        import os
        os.unlink("../progress.jsonl")
        os.mkfifo("../progress.jsonl")
    ''') + MODEL, ("trained", "parameters"), exit_code=0, view=False, state="done"),
    "link_predictions_to_dev_zero": Case(FORGE + dedent('''\
        import time
        from pathlib import Path

        def _after(self, name, data):
            _send(self, name, data)
            if name == "output/predictions.npy":  # once the supervisor has written them, swap them for a device
                target = Path("../output/predictions.npy")
                for _ in range(200):
                    if target.exists():
                        break
                    time.sleep(0.05)
                target.unlink()
                target.symlink_to("/dev/zero")

        Channel.file = _after
        FORGED = {}
    ''') + MODEL, ("predictions cannot be scored", "symbolic link"), view=False, state="failed"),
    # --- forged frames (any isolation: the job's own process is the participant's) ---
    "result_with_a_4400_digit_number": Case(forged("output/result.json",
                                                   "b'{\"outcome\": \"ok\", \"params\": ' + b'9' * 4400 + b'}'"),
                                            ("invalid result", "integer with 4400 digits")),
    "result_nested_100000_deep": Case(forged("output/result.json", "b'[' * 100000 + b']' * 100000"),
                                      ("invalid result", "nests 100000 levels deep")),
    "predictions_header_promising_74_gib": Case(forged(
        "output/predictions.npy", "(lambda b: (np.lib.format.write_array_header_1_0(b, {'descr': '<i8', "
        "'fortran_order': False, 'shape': (10**10,)}), b.getvalue())[1])(io.BytesIO())"),
        ("predictions cannot be scored", "(10000000000,)")),
    "probabilities_instead_of_labels": Case(forged("output/predictions.npy",
                                                   "_npy(np.full((500, 10), 0.1, np.float32))"),
                                            ("predictions cannot be scored", "over its 4,256-byte limit")),
    "nan_predictions": Case(forged("output/predictions.npy", "_npy(np.full(500, np.nan))"),
                            ("predictions cannot be scored", "dtype float64")),
    "pickled_predictions": Case(forged("output/predictions.npy",
                                       "_npy(np.array([object()] * 500, dtype=object), allow_pickle=True)"),
                                ("predictions cannot be scored", "only plain numbers")),
    "forged_parameter_count": Case(forged(
        "output/result.json", "json.dumps({**json.loads(data), 'params': 12345}).encode()"),
        ("invalid result", "reported 12345 parameters", "saved weights hold 12,730")),
    "negative_counts": Case(forged("output/result.json",
                                   "json.dumps({**json.loads(data), 'epochs': -1}).encode()"),
                            ("invalid result", "epochs", "greater than or equal to 0")),
    "more_history_than_epochs": Case(forged(
        "output/result.json", "json.dumps({**json.loads(data), 'history': json.loads(data)['history'] * 9}).encode()"),
        ("invalid result", "9 epochs of history for 1 epochs")),
    "a_one_and_a_half_megabyte_message": Case(forged(
        "output/result.json", "json.dumps({**json.loads(data), 'outcome': 'failed', 'error_kind': 'fit_error', "
        "'message': 'x' * 1_500_000}).encode()"), ("xxxxxxxxxx",)),
    "markup_and_ansi_in_the_message": Case(MODEL + dedent('''\

        raise RuntimeError("\\x1b[2J\\x1b[H\\u2713 trained 100 parameters\\nheld-out accuracy 100.0%\\n"
                           "[blink reverse red]Score 10/10[/] \\x1b]8;;http://evil.example\\x1b\\\\click\\x1b]8;;\\x1b\\\\")
    '''), ("[blink reverse red]Score 10/10[/]", "\\x1b[2J")),
    "markup_in_optimizer_and_loss_names": Case(dedent('''\
        import keras

        TRAINING = {"epochs": 1, "batch_size": 128}
        Evil = type("\\x1b[2J[bold red]SCORE 10/10[/]", (keras.optimizers.Adam,), {})


        def build_model(num_classes):
            model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
            model.compile(optimizer=Evil(), loss="sparse_categorical_crossentropy")
            return model
    '''), ("\\x1b[2J[bold red]SCORE 10/10[/]",), exit_code=0, state="done"),
    "more_output_than_the_quota": Case(FORGE + dedent('''\
        FORGED = {}
        _real = Channel.file

        def _flood(self, name, data):
            _real(self, name, data)
            if name == "output/predictions.npy":
                _real(self, "output/tensorboard/flood.bin", b"0" * 300_000_000)

        Channel.file = _flood
    ''') + MODEL, ("disk quota",)),
    "stuck_after_sending_its_result": Case(dedent('''\
        import atexit, threading, time
        atexit.register(lambda: time.sleep(3600))  # interpreter exit never finishes
    ''') + MODEL, ("trained",), exit_code=0, state="done"),
}


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict[str, str]]:
    """Two GRADER_HOMEs: default isolation, and no filesystem view at all (config file, as an instructor would)."""
    base = tmp_path_factory.mktemp("rundir")
    (Path("/tmp") / f"grader-secret-{SECRET}").write_text(SECRET)
    envs = {}
    for view in (True, False):
        home = base / ("view" if view else "noview")
        config = base / f"config-{view}.toml"
        # two jobs at a time in each home's worker: the queued cases run side by side (tests only: 1 suits 2 cores)
        config.write_text("local_max_jobs = 2\n" + ("" if view else 'isolation = "none"\nlandlock = false\n'))
        envs[view] = {**os.environ, "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO),
                      "GRADER_CONFIG": str(config), "COLUMNS": "120", "GRADER_PROFILE": "smoke"}
    yield envs
    (Path("/tmp") / f"grader-secret-{SECRET}").unlink(missing_ok=True)


def cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRADER, *args], capture_output=True, text=True, env=env, timeout=timeout)


def assert_inert(proc: subprocess.CompletedProcess[str], case: Case, name: str) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "\x1b" not in out, f"{name}: an escape sequence reached the terminal"
    assert SECRET not in out, f"{name}: a file outside the run directory was shown"
    assert "SQLite format" not in out
    flat = " ".join(out.split())  # rich wraps long lines: compare words, not line breaks
    for phrase in case.says:
        assert " ".join(phrase.split()) in flat, f"{name}: {phrase!r} not in:\n{out[-3000:]}"
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_grader_run_shows_a_specific_outcome(homes: dict[bool, dict[str, str]], tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = tmp_path / f"{name}.py"
    path.write_text(case.source, encoding="utf-8")
    start = time.monotonic()
    proc = cli(["run", str(path), "-e", "mnist"], homes[case.view])
    assert time.monotonic() - start < 200, "hung past the job's limits"
    assert_inert(proc, case, name)
    assert proc.returncode == case.exit_code, proc.stdout[-2000:] + proc.stderr[-2000:]
    if not case.view:
        assert "no filesystem view" in " ".join((proc.stdout + proc.stderr).split())  # warned on every such run


@pytest.fixture(scope="module")
def submitted(homes: dict[bool, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) \
        -> dict[str, tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]]:
    """Every case queued with `grader submit`, then one honest submission behind them in each home; then each
    followed with `grader wait` (what `submit --wait` does) and shown with `grader show`.

    Queued first, so the two homes' workers run their jobs side by side while the waits are read: the honest
    submission is still behind every hostile one in its queue, which is what it has to survive.
    """
    folder = tmp_path_factory.mktemp("submissions")
    honest = folder / "honest.py"
    honest.write_text(MODEL.replace("Dense(16", "Dense(24"), encoding="utf-8")
    queued: dict[str, tuple[subprocess.CompletedProcess[str], str, bool]] = {}
    for name, case in CASES.items():
        path = folder / f"{name}.py"
        path.write_text(case.source, encoding="utf-8")
        proc = cli(["submit", str(path), "-e", "mnist"], homes[case.view])
        queued[name] = (proc, next((w for w in proc.stdout.split() if w.isdigit()), "0"), case.view)
    for view in (True, False):
        proc = cli(["submit", str(honest), "-e", "mnist"], homes[view])
        queued[f"honest-{view}"] = (proc, next((w for w in proc.stdout.split() if w.isdigit()), "0"), view)
    out = {}
    for name, (sub, sub_id, view) in queued.items():
        waited = cli(["wait", sub_id], homes[view], timeout=600)
        both = subprocess.CompletedProcess(waited.args, waited.returncode, sub.stdout + waited.stdout,
                                           sub.stderr + waited.stderr)
        after = cli(["status", "--json"], homes[view]) if name.startswith("honest-") else cli(["show", sub_id],
                                                                                               homes[view])
        out[name] = (both, after)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_submit_wait_and_show_show_a_specific_outcome(submitted: dict[str, tuple[subprocess.CompletedProcess[str],
                                                                                 subprocess.CompletedProcess[str]]],
                                                      name: str) -> None:
    case = CASES[name]
    waited, shown = submitted[name]
    assert_inert(waited, case, name)
    assert waited.returncode == case.exit_code, waited.stdout[-2000:] + waited.stderr[-2000:]
    assert shown.returncode == 0, shown.stderr
    assert_inert(shown, case, name)
    assert f"→ {case.state}" in shown.stdout


@pytest.mark.parametrize("view", [True, False])
def test_the_next_submission_is_graded_normally(submitted: dict[str, tuple[subprocess.CompletedProcess[str],
                                                                           subprocess.CompletedProcess[str]]],
                                                view: bool) -> None:
    waited, status = submitted[f"honest-{view}"]
    assert waited.returncode == 0, waited.stdout[-2000:] + waited.stderr[-2000:]
    assert "Score" in waited.stdout and "Traceback" not in waited.stderr
    import json

    rows = json.loads(status.stdout)["rows"]
    assert all(r["state"] in ("done", "failed") for r in rows), "a submission stayed queued or running"
