"""The CLI as people use it (issue 15): layouts that fit 80 columns and pipes, --json that validates against
the documented schema, Ctrl-C during --wait and `grader wait`, cancelled as a state, honest exit codes,
inert untrusted names, configuration mistakes without tracebacks, course validation, export per exercise.

Most of this needs no training: a graded database comes from the in-process service tier
(tests/service_fixtures.py) and the CLI runs as a real process on it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from service_fixtures import INSTRUCTOR, finish_run, job_of, make_context, source
from test_queue import course_copy, dense, grader_env, queue_dir, stop_workers, worker_lock_held

from grader.backends.base import JobState
from grader.service.reconcile import reconcile
from grader.service.submit import submit_checked
from grader.submission import check_source

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("grader")
GRADER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "grader"]
SCHEMAS = REPO / "docs" / "json"
HOSTILE_NAME = "\x1b[2J[blink reverse red]SCORE 10 of 10[/]=HYPERLINK(\"http://evil\")\x1b]8;;http://x\x07"


def run(args: list[str], env: dict[str, str], timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A database with three participants (one with a hostile name), graded without training."""
    tmp = tmp_path_factory.mktemp("cli")
    ctx, fake = make_context(tmp)
    spec = ctx.catalog.get("mnist")
    ids = {}
    for i, who in enumerate(("alice", "bob", HOSTILE_NAME)):
        src = source(16 + i, f"p{i}")
        name = "model.py" if i < 2 else f"{HOSTILE_NAME}.py"
        receipt = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), name, exercise="mnist",
                                 student=who)
        ids[("ALICE", "BOB", "HOSTILE")[i]] = str(receipt.submission_id)
        job_id, job, run_dir = job_of(ctx, receipt.submission_id)
        finish_run(ctx, run_dir, job, accuracy=0.70 + 0.07 * i, units=16 + i)
        fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    for job_id, _ in fake.started:
        if fake.states[job_id].state is JobState.PENDING:  # references: finish them too, so nothing stays active
            sid = _id(ctx, job_id)
            _, job, run_dir = job_of(ctx, sid)
            finish_run(ctx, run_dir, job, accuracy=0.72)
            fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update({"GRADER_HOME": str(tmp / "home"), "GRADER_COURSE_DIR": str(REPO), "GRADER_CONFIG": str(tmp / "c.toml"),
                "NO_COLOR": "1", "COLUMNS": "80", "LOGNAME": "prof", "USER": "prof"})
    env.update({f"TEST_{k}_ID": v for k, v in ids.items()})  # which submission is whose (harmless in the env)
    return env


def _id(ctx: object, job_id: str) -> int:
    from sqlalchemy import select

    from grader.db.engine import session_scope
    from grader.db.models import Submission

    with session_scope(ctx.reader) as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(Submission.id).where(Submission.job_id == job_id)) or 0)


READS = {
    "status": (["status", "--all"], "status"),
    "show": (["show", "{ALICE}"], "show"),
    "history": (["history"], "history"),
    "leaderboard": (["leaderboard", "-e", "mnist"], "leaderboard"),
    "exercises": (["exercises", "list"], "exercises"),
    "exercise": (["exercises", "show", "asl"], "exercise"),
}


def _ids(args: list[str], env: dict[str, str]) -> list[str]:
    return [a.format(ALICE=env["TEST_ALICE_ID"], BOB=env["TEST_BOB_ID"], HOSTILE=env["TEST_HOSTILE_ID"]) for a in args]


@pytest.mark.parametrize("name", list(READS))
def test_read_commands_fit_80_columns_piped(graded: dict[str, str], name: str) -> None:
    args = _ids(READS[name][0], graded)
    proc = run(args, graded)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert "…" not in proc.stdout, "a cell was cut"
    assert "\x1b" not in proc.stdout + proc.stderr  # piped and NO_COLOR: no escape at all
    for word in ("queu…", "runn…", "pub…", "par…", "sco…"):
        assert word not in proc.stdout


@pytest.mark.parametrize("name", [*READS, "doctor", "leaderboards"])
def test_json_validates_against_the_documented_schema(graded: dict[str, str], name: str) -> None:
    args, schema = READS.get(name, (["doctor"], "doctor") if name == "doctor" else
                             (["leaderboard", "--all"], "leaderboards"))
    proc = run([*_ids(args, graded), "--json"], graded)
    assert proc.returncode in (0, 1) if name == "doctor" else proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    jsonschema.validate(data, json.loads((SCHEMAS / f"{schema}.schema.json").read_text()))


def test_hostile_names_are_inert_everywhere(graded: dict[str, str], tmp_path: Path) -> None:
    for args in (["status", "--all"], ["history"], ["leaderboard", "-e", "mnist"], ["show", "{HOSTILE}"],
                 ["export", "grades", "-e", "mnist"]):
        proc = run(_ids(args, graded), {**graded, "COLUMNS": "200"})
        assert proc.returncode == 0, (args, proc.stderr)
        out = proc.stdout + proc.stderr
        assert "\x1b" not in out and "\x07" not in out, args
        if args[0] != "export":
            assert "[blink reverse red]" in out, (args, out[-2000:])  # shown as text, not interpreted
    export = run(["export", "grades", "-e", "mnist"], graded).stdout
    cells = [row[0] for row in csv.reader(io.StringIO(export))]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)


def test_show_of_someone_elses_is_not_found(graded: dict[str, str]) -> None:
    env = {**graded, "GRADER_INSTRUCTORS": "prof", "LOGNAME": "alice", "USER": "alice"}
    bob = graded["TEST_BOB_ID"]
    proc = run(["show", bob], env)
    assert proc.returncode == 7 and f"no submission with id {bob}" in proc.stderr


def test_commands_that_find_nothing_exit_non_zero(graded: dict[str, str], tmp_path: Path) -> None:
    assert run(["history", "-e", "nosuch"], graded).returncode == 7
    empty = {**graded, "GRADER_DATA_DIR": str(tmp_path / "none")}
    proc = run(["data", "verify"], empty)
    assert proc.returncode == 3 and "no dataset to verify" in proc.stderr


def test_help_is_h_too_and_flags_take_no_value() -> None:
    proc = run(["submit", "-h"], os.environ.copy())
    assert proc.returncode == 0 and "--wait" in proc.stdout
    assert "<bool>" not in proc.stdout and "BOOLEAN" not in proc.stdout
    assert "--install-completion" in run(["--help"], os.environ.copy()).stdout


@pytest.mark.parametrize(("env", "file", "words"), [
    ({"GRADER_INSTRUCTORS": "teacher,ta"}, None, None),  # a comma-separated list is fine
    ({"GRADER_LOCAL_MAX_JOBS": "many"}, None, ["local_max_jobs", "GRADER_LOCAL_MAX_JOBS", "integer"]),
    ({"GRADER_INSTRUCTORS": "[not json"}, None, ["instructors", "JSON list or comma-separated"]),
    ({}, 'profile = "smoke"\nbackend = \n', ["config.toml", "not valid TOML", "line 2"]),
    ({}, 'isolation = "maybe"\n', ["isolation", "config.toml", "'auto', 'bwrap', 'unshare' or 'none'"]),
])
def test_configuration_mistakes_are_one_clear_line(tmp_path: Path, env: dict[str, str], file: str | None,
                                                   words: list[str] | None) -> None:
    config = tmp_path / "config.toml"
    if file is not None:
        config.write_text(file)
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}, "GRADER_CONFIG": str(config),
            "GRADER_HOME": str(tmp_path / "home"), **env}
    proc = run(["exercises", "list"], full)
    assert "Traceback" not in proc.stderr
    if words is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, proc.stderr
    for word in words:
        assert word in " ".join(proc.stderr.split()), proc.stderr


def test_an_ascii_terminal_gets_readable_output(graded: dict[str, str]) -> None:
    proc = run(["show", graded["TEST_ALICE_ID"]], {**graded, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.isascii()
    assert "Score" in proc.stdout


def test_validate_finds_every_problem_in_a_broken_course(tmp_path: Path) -> None:
    course = course_copy(tmp_path, keep={"mnist": ["baseline", "cnn1"]})
    (course / "reference_solutions" / "mnist" / "cnn1.py").write_text("def build_model(:\n    pass\n")
    (course / "exercises" / "asl" / "starter.py").unlink()
    text = (course / "exercises" / "mnist" / "exercise.toml").read_text()
    (course / "exercises" / "mnist" / "exercise.toml").write_text(text.replace("max_epochs = 40", "max_epochs = 0"))
    env = {**os.environ, "GRADER_HOME": str(tmp_path / "home"), "GRADER_CONFIG": str(tmp_path / "c.toml")}
    proc = run(["--course-dir", str(course), "exercises", "validate"], env)
    assert proc.returncode == 2
    problems = [line for line in proc.stdout.splitlines() if line.startswith("✗")]
    assert f"{len(problems)} problem(s)" in proc.stderr, (proc.stdout, proc.stderr)
    joined = "\n".join(problems)
    assert "cnn1.py" in joined and "syntax error" in joined
    assert "asl/starter.py: missing" in joined
    assert "limits.max_epochs" in joined
    assert "fashion_mnist" in joined and "reference 'baseline' has no file" in joined  # rubric checked too


def test_cancelled_is_a_state_and_ctrl_c_leaves_the_job_running(tmp_path: Path) -> None:
    course = course_copy(tmp_path)
    home = tmp_path / "home"
    env = grader_env(home, course, user="ada", COLUMNS="100")
    try:
        with worker_lock_held(home):  # jobs stay queued: no training needed for this part
            # PYTHONFAULTHANDLER: should Ctrl-C ever fail to end the wait, SIGABRT below prints where it hung
            proc = subprocess.Popen([*GRADER, "submit", str(dense(tmp_path / "m.py", 8)), "-e", "mnist", "--wait"],
                                    env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120  # Ctrl-C once it waits on a queued row (slow on a loaded machine)
            while not json.loads(run(["status", "--json"], env).stdout)["rows"] and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                out, err = proc.communicate(timeout=30)
                pytest.fail(f"grader submit --wait did not end within 60 s of Ctrl-C; its threads:\n{err[-6000:]}")
            assert proc.returncode == 130, (out, err)
            sid = int(out.split("submission ")[1].split()[0])
            assert "keeps running" in err and f"grader wait {sid}" in err and f"grader cancel {sid}" in err
            second = int(run(["submit", str(dense(tmp_path / "n.py", 9)), "-e", "mnist"], env).stdout
                         .split("submission ")[1].split()[0])
            assert "cancellation requested" in run(["cancel", str(second)], env).stdout
            run(["sync"], env)
            status = json.loads(run(["status", "--json"], env).stdout)
            states = {r["id"]: r["state"] for r in status["rows"]}
            assert states[second] == "cancelled" and states[sid] == "queued"
            assert "already cancelled" in run(["cancel", str(second)], env).stdout
        waited = run(["wait", str(sid)], env, timeout=900)  # the lock is released: a worker starts and trains it
        assert waited.returncode == 0, waited.stdout[-2000:] + waited.stderr[-2000:]
        assert "→ done" in waited.stdout and "Score" in waited.stdout
    finally:
        stop_workers(home)


# Runs one grader command in-process and prints which heavy modules it had loaded when it ended, or, for a
# command that trains, when it was about to start the sandbox supervisor (it stops there: no training).
PROBE = """
import json, subprocess, sys
WATCH = ("sqlalchemy", "tensorflow", "keras", "numpy", "grader.results", "grader.specs.exercise")
stopped = False
class StopAtSandbox(subprocess.Popen):
    def __init__(self, args, *a, **k):
        global stopped
        if "grader.sandbox" in " ".join(map(str, args)):
            stopped = True
            raise SystemExit(0)
        super().__init__(args, *a, **k)
subprocess.Popen = StopAtSandbox
from grader.cli.app import main
sys.argv = ["grader", *sys.argv[1:]]
try:
    main()
finally:
    print("PROBE", json.dumps({"stopped": stopped, "loaded": sorted(m for m in WATCH if m in sys.modules)}))
"""


def loaded_by(args: list[str], env: dict[str, str], cwd: Path) -> tuple[set[str], bool, str]:
    """The watched modules `grader ARGS` loaded, whether it stopped at the sandbox's start, and its output."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert probe, proc.stdout + proc.stderr
    got = json.loads(probe[-1].removeprefix("PROBE "))
    return set(got["loaded"]), got["stopped"], proc.stdout


def test_grader_run_starts_the_job_before_loading_the_database_layer(tmp_path: Path) -> None:
    """`grader run` stores nothing: SQLAlchemy (0.3-0.45 s to import) must not delay the job's start."""
    env = grader_env(tmp_path / "home", REPO, user="ada")
    loaded, stopped, out = loaded_by(["run", str(dense(tmp_path / "m.py", 8)), "-e", "mnist"], env, tmp_path)
    assert stopped, out  # it got as far as starting the job
    assert not loaded & {"sqlalchemy", "tensorflow", "keras"}, loaded


def test_status_builds_no_result_or_spec_models(graded: dict[str, str], tmp_path: Path) -> None:
    """`grader status` only counts and lists: the job-result and exercise-spec models (about 30 ms of pydantic
    schema building) and the database and training libraries stay unloaded."""
    loaded, _, out = loaded_by(["status", "--all"], graded, tmp_path)
    assert re.search(r"\d/10", out), out  # the rows were shown
    assert loaded == set(), loaded


def test_export_of_one_exercise_carries_only_its_notebooks(graded: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("nbgrader.api", reason="nbgrader is not installed (the notebook extra)")
    from nbgrader.api import Gradebook

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs alembic
    path = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{path}", course_id="") as gb:
        gb.add_assignment("fashion_mnist")
        gb.add_notebook("fashion_mnist", "fashion_mnist")
        gb.add_grade_cell("test_training", "fashion_mnist", "fashion_mnist", max_score=6, cell_type="code")
        gb.add_student("alice")
        gb.add_submission("fashion_mnist", "alice")
        gb.find_grade("test_training", "fashion_mnist", "fashion_mnist", "alice").auto_score = 5
        gb.db.commit()
    assert run(["nbgrader", "import", str(path)], graded).returncode == 0
    for exercise, expected in (("mnist", ""), ("asl", None), ("fashion_mnist", "5.0")):
        rows = {r["participant_id"]: r for r in csv.DictReader(io.StringIO(
            run(["export", "grades", "-e", exercise], graded).stdout))}
        if expected is None:
            assert "alice" not in rows
        elif expected == "":
            assert rows["alice"]["notebook_score"] == ""
        else:
            assert rows["alice"]["notebook_score"] == expected and rows["alice"]["assignment"] == "fashion_mnist"


def test_the_wheel_carries_no_reference_solutions_and_installs(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "No module named build" in built.stderr:
        pytest.skip("the `build` package is not installed (dev extra)")
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("keras_grader-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "reference_solutions" in n]
    assert "grader/_course/exercises/mnist/exercise.toml" in names and "grader/_course/rubrics/asl.toml" in names
    assert "grader/py.typed" in names and "grader/db/alembic/versions/0001_initial.py" in names
    assert any(n.startswith("grader/web/templates/") for n in names)
    assert "grader/data/samples/mnist.npz" in names
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Name: keras-grader" in text and "Requires-Python: <3.14,>=3.11" in text
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update({"GRADER_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)})
    listed = subprocess.run([str(venv / "bin" / "grader"), "exercises", "list"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "fashion_mnist" in listed.stdout, listed.stderr
    shown = subprocess.run([str(venv / "bin" / "grader"), "exercises", "show", "mnist"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert "references: \n" in shown.stdout + "\n" or "references: " in shown.stdout


def test_participant_cannot_use_instructor_options_in_embedded_multiuser_mode(tmp_path: Path) -> None:
    course = course_copy(tmp_path)
    home = tmp_path / "home"
    env = grader_env(home, course, user="bob", GRADER_INSTRUCTORS="alice")
    with worker_lock_held(home):
        proc = run(["submit", str(dense(tmp_path / "m.py", 8)), "-e", "mnist", "--seeds", "3"], env)
    assert proc.returncode == 9 and "for instructors only" in proc.stderr
    assert not (queue_dir(home) / "queue").exists() or not list((queue_dir(home) / "queue").iterdir())
