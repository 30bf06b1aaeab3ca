"""Benchmark: leaderboard latency of a real `grader serve` read by a class while results keep arriving.

Starts `grader serve` on 127.0.0.1 (a free port, its own HOME filled by bench/fill_db.py: 10,000
submissions from 200 participants), creates the accounts with the CLI as an instructor does
(`grader accounts add prof --instructor`, `grader accounts import ROSTER`), then for --duration seconds:

* --readers participants (default 50), each an `httpx.AsyncClient` with their own bearer token, GET
  /api/v1/leaderboard/EXERCISE?profile=PROFILE in a loop; one request in --html-every is the HTML page
  /leaderboard/EXERCISE instead (with the session cookie a browser sends). --think seconds between two
  requests of one reader (default 0: a closed loop, the server is saturated; live.js polls every 5 s),
  each reader starting at a random point of its first think time;
* a writer process inserts graded submissions (done, with their result row) for that exercise and
  profile, --write-rate per second, each commit a transaction of its own, through SQLAlchemy and
  grader's models (bench/fill_db.RowMaker). Each insert changes the results table's row count and
  latest graded_at, which is the version the server's BoardCache keys on (grader/api/boards.py), so
  the board is recomputed after every write.

It prints p50/p95/p99/max latency and requests/s for the API and the HTML page separately, the non-200
answers and client errors, the writes done, the CPU time of the server, of this load generator and of
the writer, and the load average before and after.

    .venv/bin/python bench/server_leaderboard.py                        # 30 s, 50 readers, 4 writes/s
    .venv/bin/python bench/server_leaderboard.py --home /tmp/srv10k     # keep the home; later: --reuse
    .venv/bin/python bench/server_leaderboard.py --home /tmp/srv10k --reuse --think 1
    .venv/bin/python bench/server_leaderboard.py --home /tmp/srv10k --reuse --sample-server /tmp/prof.txt
    .venv/bin/python bench/server_leaderboard.py --home /tmp/srv10k --reuse --what-if-index

--what-if-index adds an index on results(graded_at) to the bench's database (not part of grader's
schema; without the flag it is dropped again), to measure the board cache's version query
(`SELECT count(*), max(graded_at) FROM results`, a full scan of the results table) out of the way.

--sample-server FILE runs the server under a small sampling profiler (this file's SAMPLER: a thread
that reads every thread's stack each --sample-ms through sys._current_frames, so the request threads
of the thread pool are seen too; a thread counts while it runs or is inside a request, waiting included,
so a lock or a connection pool shows up) and writes the frames that hold requests up, by own time and
inclusive, to FILE.
The server runs with unisolated jobs allowed (GRADER_ALLOW_UNISOLATED_JOBS): it never runs a job here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import random
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SAMPLER = r'''
import collections, os, signal, sys, threading, time
out, every = sys.argv[1], float(sys.argv[2]) / 1000
sys.argv = ["grader", *sys.argv[3:]]
own = collections.Counter()
incl = collections.Counter()
stacks = collections.Counter()
busy = [0, 0]
IDLE = {("threading.py", "wait"), ("selectors.py", "select"), ("queue.py", "get"), ("thread.py", "_worker"),
        ("threading.py", "_wait_for_tstate_lock"), ("base_events.py", "_run_once"), ("__init__.py", "wait")}

def where(f, line=True):
    path = f.f_code.co_filename
    path = os.path.relpath(path, os.getcwd()) if "grader/" in path else path.split("site-packages/")[-1]
    return f"{path}:{f.f_lineno if line else f.f_code.co_firstlineno} {f.f_code.co_name}"

def in_request(f):
    while f is not None:
        if any(part in f.f_code.co_filename for part in ("fastapi/", "starlette/", "grader/api/routes.py",
                                                         "grader/api/pages.py", "grader/api/auth.py")):
            return True
        f = f.f_back
    return False


def dump():
    total = busy[0] or 1
    with open(out + ".tmp", "w") as fh:
        fh.write(f"samples of threads running or inside a request: {busy[0]} of {busy[1]} thread samples "
                 f"(every {every * 1000:g} ms)\n")
        for title, counter in (("own time (leaf frame)", own), ("inclusive, per function (file:def line)", incl),
                               ("grader frames of the busy stacks (innermost first)", stacks)):
            fh.write(f"\n== {title}: share of busy samples\n")
            for name, n in counter.most_common(40):
                fh.write(f"{100 * n / total:6.1f}%  {name}\n")
    os.replace(out + ".tmp", out)


def sample():
    me = threading.get_ident()
    last = time.monotonic()
    while True:
        time.sleep(every)
        names = {t.ident: t.name for t in threading.enumerate()}
        for tid, frame in sys._current_frames().items():
            if tid == me:
                continue
            leaf = (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)
            busy[1] += 1
            if names.get(tid) == "grader-loop" and leaf[1] == "run_worker":
                continue  # the background loop sleeping between passes (a C-level sleep shows its caller)
            if leaf == ("selectors.py", "select") or (leaf in IDLE and not in_request(frame)):
                continue  # a thread waiting for work; one waiting inside a request (a lock, a pool) is counted
            busy[0] += 1
            own[where(frame)] += 1
            seen, chain, f = set(), [], frame
            while f is not None:
                w = where(f, line=False)  # inclusive: per function (its def line), each counted once a stack
                if w not in seen:
                    incl[w] += 1
                    seen.add(w)
                if "grader/" in f.f_code.co_filename and len(chain) < 4:
                    chain.append(where(f))
                f = f.f_back
            stacks[" <- ".join(chain)] += 1
        if time.monotonic() - last > 1:  # written as it goes: uvicorn ends the process by re-raising SIGTERM
            dump()
            last = time.monotonic()


def reset(*_):  # SIGUSR1: the measurement starts now (forget the start-up and the warm-up)
    own.clear(), incl.clear(), stacks.clear()
    busy[0] = busy[1] = 0


signal.signal(signal.SIGUSR1, reset)
threading.Thread(target=sample, daemon=True, name="bench-sampler").start()
from grader.cli.app import main

main()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grader_argv() -> list[str]:
    script = Path(sys.executable).with_name("grader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "grader"]


def server_env(home: Path) -> dict[str, str]:
    """The server account's shell: no GRADER_* of the caller's, no saved credentials; .pyc cached as installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"PYTHONPYCACHEPREFIX": str(home / "pycache"), "GRADER_HOME": str(home),
                "GRADER_COURSE_DIR": str(REPO), "GRADER_CONFIG": str(home / "server.toml"),
                "GRADER_CREDENTIALS": str(home / "none-credentials.json"), "XDG_CONFIG_HOME": str(home / "xdg"),
                "GRADER_ALLOW_UNISOLATED_JOBS": "true", "COLUMNS": "160"})
    return env


def cli(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run([*grader_argv(), *args], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"grader {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def accounts(home: Path, env: dict[str, str], n: int) -> dict[str, str]:
    """prof (instructor) and student00000... (participants) as an instructor creates them; their tokens."""
    from fill_db import participant_name

    tokens_csv = home / "tokens.csv"
    if tokens_csv.exists():
        return {row["id"]: row["token"] for row in csv.DictReader(tokens_csv.open())}
    cli(["accounts", "add", "prof", "--instructor"], env)
    roster = home / "roster.csv"
    roster.write_text("id,display name,e-mail\n" + "".join(f"{participant_name(i)},Student {i},s{i}@example.org\n"
                                                           for i in range(n)), encoding="utf-8")
    cli(["accounts", "import", str(roster), "--output", str(tokens_csv)], env)
    return {row["id"]: row["token"] for row in csv.DictReader(tokens_csv.open())}


def what_if(db: Path, index: bool) -> None:
    """Not grader's schema: an index that lets BoardCache.version() (grader/api/boards.py) skip the table scan."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        con.execute("CREATE INDEX IF NOT EXISTS bench_what_if_results_graded_at ON results (graded_at)" if index
                    else "DROP INDEX IF EXISTS bench_what_if_results_graded_at")
        con.commit()
    finally:
        con.close()


def start_server(env: dict[str, str], port: int, log: Path, sample: Path | None, sample_ms: float) \
        -> subprocess.Popen[bytes]:
    import httpx

    args = ["serve", "--port", str(port), "--loop-seconds", "2"]
    argv = ([sys.executable, "-c", SAMPLER, str(sample), str(sample_ms), *args] if sample
            else [*grader_argv(), *args])
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return proc
        if proc.poll() is not None:
            sys.exit(f"grader serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.3)
    stop_server(proc)
    sys.exit("grader serve did not come up within 120 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the writer (a process of its own) ---------------------------------------------------------------------------

def writer(home: Path, exercise: str, profile: str, rate: float, duration: float, participants: int) -> int:
    """Insert one graded submission + result per 1/rate s, each in its own transaction; print the count."""
    from datetime import UTC, datetime, timedelta

    from fill_db import RowMaker
    from sqlalchemy import func, insert, select

    from grader.db.engine import make_engine, session_scope
    from grader.db.models import Result, Submission
    from grader.settings import Settings
    from grader.specs.catalog import ExerciseCatalog

    settings = Settings(home=home, course_dir=REPO)
    maker = RowMaker(ExerciseCatalog(REPO), profile, random.Random(11), exercises=(exercise,))
    engine = make_engine(settings.resolved_db_url)
    done, commit_ms = 0, []
    start = time.monotonic()
    while time.monotonic() - start < duration:
        due = start + done / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        t = time.perf_counter()
        with session_scope(engine) as s:  # BEGIN IMMEDIATE: the id is ours until the commit
            sid = (s.scalar(select(func.max(Submission.id))) or 0) + 1
            now = datetime.now(UTC)
            sub, res = maker.graded(sid, random.randrange(participants) + 1, exercise=exercise, ok=True,
                                    created=now - timedelta(seconds=120), graded_at=now)
            s.execute(insert(Submission), [sub])
            s.execute(insert(Result), [res])
        commit_ms.append((time.perf_counter() - t) * 1000)
        done += 1
    engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"writes": done, "seconds": time.monotonic() - start, "cpu": usage.ru_utime + usage.ru_stime,
                      "commit_ms_p50": statistics.median(commit_ms) if commit_ms else None,
                      "commit_ms_max": max(commit_ms) if commit_ms else None}))
    return 0


# --- the readers ------------------------------------------------------------------------------------------------

# one TLS context for every client: httpx builds one per client otherwise (about 55 ms of CPU each, loading the
# CA bundle), which would make this load generator compete with the server for the cores while it starts
TLS = ssl.create_default_context()


async def read_loop(base: str, token: str, api_path: str, html_path: str, html_every: int, think: float,
                    deadline: float, out: list[tuple[str, float, int | str]], offset: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    common = {"base_url": base, "limits": limits, "timeout": 60, "verify": TLS}  # plain HTTP: TLS is never used
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, **common) as api, \
            httpx.AsyncClient(cookies={"grader_session": token}, **common) as page:
        i = offset  # readers start at different points of the API/HTML cycle
        if think:  # and of the think time: browsers opened one after another, not 50 requests at once
            await asyncio.sleep(random.Random(offset).uniform(0, think))
        while time.monotonic() < deadline:
            html = html_every > 0 and i % html_every == html_every - 1
            i += 1
            t = time.perf_counter()
            try:
                r = await (page.get(html_path) if html else api.get(api_path))  # the body is read, not parsed
                status: int | str = r.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            out.append(("html" if html else "api", time.perf_counter() - t, status))
            if think:
                await asyncio.sleep(think)


async def readers(base: str, tokens: list[str], args: argparse.Namespace) -> list[tuple[str, float, int | str]]:
    out: list[tuple[str, float, int | str]] = []
    deadline = time.monotonic() + args.duration
    api_path = f"/api/v1/leaderboard/{args.exercise}?profile={args.profile}"
    html_path = f"/leaderboard/{args.exercise}"
    await asyncio.gather(*(read_loop(base, tok, api_path, html_path, args.html_every, args.think, deadline, out, i)
                           for i, tok in enumerate(tokens)))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def report(kind: str, rows: list[tuple[str, float, int | str]], seconds: float) -> None:
    ok = [lat * 1000 for k, lat, st in rows if k == kind and st == 200]
    bad = [st for k, _, st in rows if k == kind and st != 200]
    n = sum(1 for k, _, _ in rows if k == kind)
    if not ok:
        print(f"{kind:>4}: {n} requests, none answered 200 ({sorted(set(map(str, bad)))[:5]})")
        return
    print(f"{kind:>4}: {n:6d} requests, {n / seconds:6.1f}/s; latency ms p50 {pct(ok, 0.5):6.1f}  p95 "
          f"{pct(ok, 0.95):6.1f}  p99 {pct(ok, 0.99):6.1f}  max {max(ok):6.1f}; non-200 {len(bad)}"
          + (f" {dict(sorted((str(s), bad.count(s)) for s in set(bad)))}" if bad else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of reading")
    ap.add_argument("--readers", type=int, default=50)
    ap.add_argument("--html-every", type=int, default=5, help="one request in N is the HTML page (0: never)")
    ap.add_argument("--think", type=float, default=0.0, help="seconds between two requests of a reader")
    ap.add_argument("--write-rate", type=float, default=4.0, help="graded submissions inserted per second")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--exercise", default="fashion_mnist")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--home", type=Path, default=None, help="state folder (default: a temporary one, removed)")
    ap.add_argument("--reuse", action="store_true", help="use the database (and tokens) already in --home")
    ap.add_argument("--sample-server", type=Path, default=None, metavar="FILE",
                    help="profile the server by sampling its threads' stacks; write the busiest frames to FILE")
    ap.add_argument("--sample-ms", type=float, default=5.0)
    ap.add_argument("--what-if-index", action="store_true",
                    help="add an index on results(graded_at) to this bench's database first (without: drop it), "
                         "to see what the board cache's version query costs")
    ap.add_argument("--writer", nargs=2, metavar=("HOME", "SECONDS"), help=argparse.SUPPRESS)  # the writer process
    args = ap.parse_args()
    if args.writer:
        return writer(Path(args.writer[0]), args.exercise, args.profile, args.write_rate, float(args.writer[1]),
                      args.participants)

    from fill_db import close_home, open_home

    home = open_home(args.home, reuse=args.reuse, submissions=args.submissions, participants=args.participants,
                     profile=args.profile, prefix="grader-serve-bench-")
    db = home / "grader.db"
    server = None
    try:
        what_if(db, args.what_if_index)
        env = server_env(home)
        tokens = accounts(home, env, min(args.readers, args.participants))
        readers_tokens = [tokens[n] for n in sorted(tokens) if n != "prof"][:args.readers]
        if len(readers_tokens) < args.readers:
            sys.exit(f"only {len(readers_tokens)} participant tokens in {home / 'tokens.csv'}: fill a new --home")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = home / "serve.log"
        server = start_server(env, port, log, args.sample_server, args.sample_ms)
        import httpx

        for path in (f"/api/v1/leaderboard/{args.exercise}?profile={args.profile}", f"/leaderboard/{args.exercise}"):
            r = httpx.get(base + path, headers={"Authorization": f"Bearer {readers_tokens[0]}"}, timeout=60)
            if r.status_code != 200:
                sys.exit(f"warm-up GET {path}: {r.status_code} {r.text[:500]}")
        rows_on_board = len(httpx.get(f"{base}/api/v1/leaderboard/{args.exercise}?profile={args.profile}",
                                      headers={"Authorization": f"Bearer {readers_tokens[0]}"}, timeout=60)
                             .json()["rows"])
        load_before = os.getloadavg()
        print(f"{os.cpu_count()} cores, load average before {load_before[0]:.2f} {load_before[1]:.2f} "
              f"{load_before[2]:.2f}; server {base} (pid {server.pid}); board {args.exercise}/{args.profile}: "
              f"{rows_on_board} rows")
        print(f"{args.readers} readers for {args.duration:g} s, think {args.think:g} s, 1 in {args.html_every} "
              f"requests the HTML page; writer {args.write_rate:g} graded submissions/s")
        writer_proc = None
        if args.write_rate > 0:
            writer_proc = subprocess.Popen(
                [sys.executable, __file__, "--writer", str(home), str(args.duration), "--write-rate",
                 str(args.write_rate), "--exercise", args.exercise, "--profile", args.profile, "--participants",
                 str(args.participants)], stdout=subprocess.PIPE, text=True,
                env=env)
        if args.sample_server:
            os.kill(server.pid, signal.SIGUSR1)  # the profile covers the measured run only
        server_cpu0, self0 = proc_cpu(server.pid), resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        rows = asyncio.run(readers(base, readers_tokens, args))
        seconds = time.monotonic() - t0
        server_cpu = proc_cpu(server.pid) - server_cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        wrote = {}
        if writer_proc is not None:
            out, _ = writer_proc.communicate(timeout=120)
            wrote = json.loads(out.strip().splitlines()[-1]) if writer_proc.returncode == 0 and out.strip() else {}
        load_after = os.getloadavg()
        print(f"\nran {seconds:.1f} s; load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
        report("api", rows, seconds)
        report("html", rows, seconds)
        every = [lat * 1000 for _, lat, st in rows if st == 200]
        if every:
            print(f" all: {len(rows):6d} requests, {len(rows) / seconds:6.1f}/s; p95 {pct(every, 0.95):.1f} ms "
                  f"(target < 100 ms: {'met' if pct(every, 0.95) < 100 else 'NOT met'})")
        if wrote:
            print(f"writes: {wrote['writes']} graded submissions in {wrote['seconds']:.1f} s (commit p50 "
                  f"{wrote['commit_ms_p50']:.1f} ms, max {wrote['commit_ms_max']:.1f} ms); writer CPU "
                  f"{wrote['cpu']:.1f} s")
        elif writer_proc is not None:
            print(f"writer: exited {writer_proc.returncode}, no report")
        print(f"CPU during the run: server {server_cpu:.1f} s ({100 * server_cpu / seconds:.0f}% of one core; "
              f"{1000 * server_cpu / max(1, len(rows)):.1f} ms a request), load generator "
              f"{self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime:.1f} s")
        final = len(httpx.get(f"{base}/api/v1/leaderboard/{args.exercise}?profile={args.profile}",
                              headers={"Authorization": f"Bearer {readers_tokens[0]}"}, timeout=60).json()["rows"])
        print(f"board rows after the run: {final} (before: {rows_on_board})")
    finally:
        if server is not None:
            stop_server(server)
            if args.sample_server:
                print(f"server samples written to {args.sample_server}")
        close_home(home, keep=args.home is not None, note=f" (server log: {home / 'serve.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
