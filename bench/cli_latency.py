"""Benchmark: whole-process wall time of the read commands in embedded mode, against 10,000 submissions.

Each command is a fresh `grader` process (`time.perf_counter` around `subprocess.run`), as a participant
types it: interpreter start-up, imports, settings, the database read and the rich output. The commands
alternate round-robin for --rounds rounds (the start rotates each round), after one untimed warm-up run
of each that also checks its exit code. `python -c pass` is timed alongside as the floor no command can
go under, and so is a process that imports only the libraries a read command needs (LIBRARY_FLOOR), which
shows how much of a command's time is grader's own. Beside wall time it prints each process's CPU time (user
+ sys, from getrusage), which a loaded machine inflates much less than wall time; for a served command that
is the `grader` process only, not the server's child that does the work.

Each read command is timed twice in the same rounds: as a participant runs it (answered by the command
server, grader/cli/command_server.py, which the warm-up's first command starts in HOME/run, this bench's own
XDG_RUNTIME_DIR) and in its own process (GRADER_COMMAND_SERVER=0). --cold N then times N first calls:
the server stopped, `grader status` run in its own process while it starts the server, and how long after
that call began the server listens.

The state folder is filled by bench/fill_db.py (default 10,000 submissions from 200 participants over 3
exercises). The environment is embedded mode: no GRADER_* variable of the caller's, no server, no saved
credentials; GRADER_HOME, GRADER_COURSE_DIR (this repository), GRADER_CONFIG (a file that does not exist),
and the participant as the local user (LOGNAME/USER, which `getpass.getuser()` reads) with
GRADER_INSTRUCTORS=prof so that they are a participant, not the instructor (--instructor: they are).
Bytecode is cached as in an installed package: PYTHONDONTWRITEBYTECODE is dropped and the .pyc files go
to HOME/pycache (PYTHONPYCACHEPREFIX), written by the warm-up run; without that, every run compiles
grader's own modules again (about 90 ms).

    .venv/bin/python bench/cli_latency.py                      # fill a temporary home, 15 rounds
    .venv/bin/python bench/cli_latency.py --home /tmp/cli10k   # keep the home; later: --reuse
    .venv/bin/python bench/cli_latency.py --home /tmp/cli10k --reuse --importtime
    .venv/bin/python bench/cli_latency.py --home /tmp/cli10k --reuse --rounds 0 --importtime leaderboard

--importtime [COMMAND] also runs that command (default: status) under `python -X importtime` a few
times and prints the 10 imports with the largest cumulative time (median over the runs), so that a
start-up regression shows where it comes from.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from grader.cli.command_client import stop_servers  # noqa: E402 - after the path setup above

TARGET_S = 0.3

# What a read command imports before grader's own code runs: Typer (0.29 builds a pydantic TypeAdapter per
# parameter, so its adapters module imports pydantic), rich's console and table, and a first pydantic model
# (which loads pydantic's plugin machinery and importlib.metadata). A command cannot be faster than this.
LIBRARY_FLOOR = ("import typer, typer._adapters, rich.console, rich.table, sqlite3\n"
                 "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int = 0\nM()")


def grader_argv() -> list[str]:
    script = Path(sys.executable).with_name("grader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "grader"]


def embedded_env(home: Path, participant: str, instructor: bool) -> dict[str, str]:
    """Embedded mode as a participant's shell has it, with bytecode cached as an installed package has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"PYTHONPYCACHEPREFIX": str(home / "pycache"),
                "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO), "GRADER_CONFIG": str(home / "none.toml"),
                "GRADER_CREDENTIALS": str(home / "none-credentials.json"), "XDG_CONFIG_HOME": str(home / "none-xdg"),
                "LOGNAME": participant, "USER": participant, "COLUMNS": "160",
                "XDG_RUNTIME_DIR": str(runtime_dir(home))})
    if not instructor:
        env["GRADER_INSTRUCTORS"] = "prof"
    return env


def runtime_dir(home: Path) -> Path:
    """This bench's own folder for the command server's socket (XDG_RUNTIME_DIR), so it starts and stops its own."""
    path = home / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def wait_for_server(home: Path, timeout_s: float = 30) -> None:
    """The warm-up's first read command started the command server; time nothing until it listens."""
    deadline = time.monotonic() + timeout_s
    while not listening(home):
        if time.monotonic() > deadline:
            sys.exit("the command server did not start within 30 s")
        time.sleep(0.01)


def listening(home: Path) -> list[Path]:
    return list(runtime_dir(home).glob("grader-*/cmd-*.sock"))


def cold(grader: list[str], env: dict[str, str], home: Path, runs: int) -> None:
    """`grader status` with no server yet: it runs in its own process and starts one for the next command."""
    first, ready = [], []
    for _ in range(runs):
        stop_servers(str(runtime_dir(home)))
        deadline = time.monotonic() + 30
        while listening(home) and time.monotonic() < deadline:
            time.sleep(0.05)
        t = time.perf_counter()
        subprocess.run([*grader, "status"], env=env, cwd=home, capture_output=True, check=True)
        first.append(time.perf_counter() - t)
        wait_for_server(home)
        ready.append(time.perf_counter() - t)
        time.sleep(0.5)  # let the server's preloading finish before the next stop
    print(f"\nfirst call, no server yet ({runs} runs): `grader status` {statistics.median(first) * 1000:.0f} ms "
          f"median (min {min(first) * 1000:.0f}); server listening {statistics.median(ready) * 1000:.0f} ms "
          "after the call began")


def latest_done(db: Path, participant: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT max(s.id) FROM submissions s JOIN participants p ON p.id = s.participant_id "
                          "WHERE p.name = ? AND s.state = 'done'", (participant,)).fetchone()
    finally:
        con.close()
    if row is None or row[0] is None:
        sys.exit(f"{participant} has no done submission in {db}: pick another --participant")
    return int(row[0])


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def importtime(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> list[tuple[str, float, float]]:
    """(module, median cumulative ms, median self ms), largest cumulative first."""
    cumulative: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, cwd=cwd, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(f"{argv} exited {proc.returncode}: {proc.stderr[-2000:]}")
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            cumulative.setdefault(name, []).append(int(cum_us) / 1000)
            own.setdefault(name, []).append(int(self_us) / 1000)
    rows = [(name, statistics.median(c), statistics.median(own[name])) for name, c in cumulative.items()]
    return sorted(rows, key=lambda r: -r[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="timed runs of each command, alternated round-robin")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--participant", default="student00001", help="the local user running the commands")
    ap.add_argument("--instructor", action="store_true", help="run as the instructor (default: a participant)")
    ap.add_argument("--exercise", default="fashion_mnist")
    ap.add_argument("--home", type=Path, default=None, help="state folder (default: a temporary one, removed)")
    ap.add_argument("--reuse", action="store_true", help="use the database already in --home (no fill)")
    ap.add_argument("--importtime", nargs="?", const="status", default=None, metavar="COMMAND",
                    help="also show the 10 slowest imports (cumulative) of COMMAND (default: status)")
    ap.add_argument("--importtime-runs", type=int, default=5)
    ap.add_argument("--cold", type=int, default=5, help="first calls timed with no server running")
    args = ap.parse_args()

    from fill_db import close_home, open_home

    home = open_home(args.home, reuse=args.reuse, submissions=args.submissions, participants=args.participants,
                     prefix="grader-cli-bench-")
    db = home / "grader.db"
    try:
        env = embedded_env(home, args.participant, args.instructor)
        sid = latest_done(db, args.participant)
        grader = grader_argv()
        reads = {
            "grader --help": [*grader, "--help"],
            "grader status": [*grader, "status"],
            f"grader show {sid}": [*grader, "show", str(sid)],
            f"grader leaderboard -e {args.exercise}": [*grader, "leaderboard", "-e", args.exercise],
            "grader exercises list": [*grader, "exercises", "list"],
        }
        in_process = {**env, "GRADER_COMMAND_SERVER": "0"}
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass (floor)": ([sys.executable, "-c", "pass"], env),
            "libraries only (floor)": ([sys.executable, "-c", LIBRARY_FLOOR], env),
            **{name: (argv, env) for name, argv in reads.items()},
            **{f"{name} (in-process)": (argv, in_process) for name, argv in reads.items()},
        }
        load_before = os.getloadavg()
        print(f"{os.cpu_count()} cores, load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
              f"as {args.participant} ({'instructor' if args.instructor else 'participant'}), embedded mode")
        for name, (argv, run_env) in commands.items():  # warm-up (page cache, .pyc), a check that each one works
            proc = subprocess.run(argv, env=run_env, cwd=home, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        wait_for_server(home)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                argv, run_env = commands[name]
                subprocess.run(argv, env=run_env, cwd=home, capture_output=True, check=True)
                times[name].append(time.perf_counter() - t)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)  # this one child's CPU: less load-sensitive
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if args.rounds:
            load_after = os.getloadavg()
            print(f"\n{args.rounds} rounds; load average afterwards {load_after[0]:.2f} {load_after[1]:.2f} "
                  f"{load_after[2]:.2f}")
            width = max(len(n) for n in names)
            print(f"{'command':<{width}}  {'median':>8}  {'p90':>8}  {'min':>8}  {'cpu med':>8}  "
                  f"< {TARGET_S:g} s (median)")
            for name in names:
                t = times[name]
                med = statistics.median(t)
                verdict = "" if name.endswith("(floor)") else ("yes" if med < TARGET_S else "NO")
                print(f"{name:<{width}}  {med * 1000:6.0f}ms  {p90(t) * 1000:6.0f}ms  {min(t) * 1000:6.0f}ms  "
                      f"{statistics.median(cpu[name]) * 1000:6.0f}ms  {verdict}")
        if args.cold:
            cold(grader, env, home, args.cold)
        if args.importtime:
            argv = {"status": ["status"], "show": ["show", str(sid)], "help": ["--help"],
                    "leaderboard": ["leaderboard", "-e", args.exercise], "exercises": ["exercises", "list"]}.get(
                        args.importtime, args.importtime.split())
            script = grader[-1] if len(grader) == 1 else None
            run_argv = [script, *argv] if script else ["-m", "grader", *argv]
            rows = importtime(run_argv, env, home, args.importtime_runs)
            print(f"\n`python -X importtime grader {' '.join(argv)}`: 10 largest cumulative imports, median of "
                  f"{args.importtime_runs} runs (ms)")
            print(f"{'cumulative':>10}  {'self':>7}  module")
            for name, cum, own in rows[:10]:
                print(f"{cum:10.1f}  {own:7.1f}  {name}")
    finally:
        stop_servers(str(runtime_dir(home)))
        close_home(home, keep=args.home is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
