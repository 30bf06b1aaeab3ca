"""The supervisor: start the sandboxed job, enforce its limits, write its run directory, report facts.

It writes supervisor.json (what it measured and how the job ended) after the job is gone, into a
folder the job sees read-only; the coordinator combines that verdict with the job's claims.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from grader.channel import ENV_FD, ENV_NAMESPACES
from grader.results import JobSpec, SupervisorReport, Verdict
from grader.rundir import RunDir, open_fresh, write_at
from grader.sandbox.cgroups import CgroupJail
from grader.sandbox.command import build_command, build_env
from grader.sandbox.isolation import Policy, detect_isolation
from grader.sandbox.receiver import Receiver, remove_tree
from grader.untrusted import read_bytes

OUTPUT_CAP_BYTES = 1_000_000
GRACE_SECONDS = 5.0
TEARDOWN_SECONDS = 10.0  # after the job sent its result, how long it may take to exit before it is killed
SCRATCH_MAX_ENTRIES = 20_000
POLL_SECONDS = 0.1


def _set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _limits(policy: Policy) -> None:
    """Runs in the child between fork and exec."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the supervisor
    mb = 1024 * 1024
    for res, value in ((resource.RLIMIT_CPU, policy.cpu_seconds),
                       (resource.RLIMIT_AS, policy.memory_mb * 4 * mb),
                       (resource.RLIMIT_FSIZE, policy.file_size_mb * mb),
                       (resource.RLIMIT_NOFILE, policy.open_files),
                       (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def _in_child(jail: CgroupJail, policy: Policy) -> None:
    """Between fork and exec: join the job's cgroups first, so everything it starts is inside, then limit it."""
    jail.add(os.getpid())
    _limits(policy)


def _pump(stream: IO[bytes], fd: int, cap: int, flags: dict[str, bool], key: str) -> None:
    written = 0
    try:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            if written < cap:
                part = chunk[: cap - written]
                os.write(fd, part)
                written += len(part)
            if written >= cap and not flags[key]:
                flags[key] = True
                os.write(fd, b"\n[output truncated by grader]\n")
    except OSError:
        pass
    finally:
        os.close(fd)


def _descendants(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    kids.append(int(entry.name))
    return kids


def _kill_strays() -> int:
    """Kill and reap every process re-parented to us (we are a subreaper)."""
    count = 0
    for _ in range(50):
        kids = _descendants(os.getpid())
        if not kids:
            break
        for kid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid, signal.SIGKILL)
                count += 1
        time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
    return count


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def scratch_usage(path: Path, max_entries: int = SCRATCH_MAX_ENTRIES) -> int:
    """Bytes on disk below `path` (links not followed); past `max_entries` entries, reported as huge."""
    total, seen, stack = 0, 0, [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    seen += 1
                    if seen > max_entries:
                        return 1 << 62
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        total += info.st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
        except OSError:
            continue
    return total


def load_job(run: RunDir) -> JobSpec:
    return JobSpec.model_validate_json(read_bytes(run.path, RunDir.JOB, 4_000_000))


def supervise(run: RunDir) -> SupervisorReport:
    """Start the job, enforce limits, and always leave supervisor.json behind."""
    job = load_job(run)
    policy = Policy.for_job(job)
    iso = detect_isolation(job.isolation.namespaces, job.isolation.landlock)
    ns = iso.namespaces
    for name in ("output", "scratch", RunDir.SUPERVISOR):
        remove_tree(run.path, name)
    os.mkdir(run.scratch, 0o700)
    subreaper = _set_subreaper()
    cmd = build_command(run, Path(job.inputs_dir), ns, scratch_mb=policy.scratch_mb)
    jail = CgroupJail(run.path.name, max_pids=policy.max_pids, memory_mb=policy.memory_mb)
    cancelled = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: cancelled.set())
    read_end, write_end = os.pipe()
    env = {**build_env(run, job.seed), ENV_FD: str(write_end), ENV_NAMESPACES: ns}
    start = time.monotonic()
    receiver = Receiver(read_end, run, quota_bytes=policy.output_mb * 1024 * 1024,
                        weights_cap=job.exercise.limits.max_params * 8 + 8_000_000, started=start)
    receiver.start()
    proc = subprocess.Popen(cmd, cwd=run.scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, pass_fds=(write_end,),
                            preexec_fn=lambda: _in_child(jail, policy))
    os.close(write_end)
    flags = {"stdout": False, "stderr": False}
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, open_fresh(run.path, RunDir.STDOUT), OUTPUT_CAP_BYTES,
                                                  flags, "stdout"), daemon=True),
             threading.Thread(target=_pump, args=(proc.stderr, open_fresh(run.path, RunDir.STDERR), OUTPUT_CAP_BYTES,
                                                  flags, "stderr"), daemon=True)]
    for p in pumps:
        p.start()
    why: Verdict | None = None
    completed_at: float | None = None
    next_scratch_check = 0.0
    while proc.poll() is None:
        now = time.monotonic()
        elapsed = now - start
        if receiver.completed:
            completed_at = completed_at or now
            if now - completed_at > TEARDOWN_SECONDS:  # finished, then stuck (ptrace, a hung thread): end it
                _kill_group(proc, 0)
                break
        elif cancelled.is_set():
            why = Verdict.CANCELLED
        elif receiver.over_quota:
            why = Verdict.DISK_QUOTA
        elif "training" not in receiver.phases and elapsed > policy.build_seconds:
            why = Verdict.BUILD_TIMEOUT  # an endless loop at import or in build_model: say so, early
        elif elapsed > policy.wall_seconds:
            why = Verdict.TIMEOUT
        elif ns != "bwrap" and now >= next_scratch_check:
            next_scratch_check = now + 1.0
            if scratch_usage(run.scratch) > policy.scratch_mb * 1024 * 1024:
                why = Verdict.DISK_QUOTA
        if why is not None:
            _kill_group(proc, 0 if why is Verdict.DISK_QUOTA else GRACE_SECONDS)
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=POLL_SECONDS)  # returns as soon as the job ends, where a sleep would not
    proc.wait()
    wall = time.monotonic() - start
    strays = _kill_strays() if subreaper else 0
    for p in pumps:
        p.join(timeout=5)
    receiver.join(timeout=5)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    oom = jail.oom_killed()
    peak = jail.peak_memory_mb() or usage.ru_maxrss / 1024
    jail.remove()
    signal.signal(signal.SIGTERM, old)
    code = proc.returncode
    sig = -code if code is not None and code < 0 else None
    if receiver.completed and why is not Verdict.DISK_QUOTA:
        verdict = Verdict.COMPLETED
    elif why is not None:
        verdict = why
    elif cancelled.is_set():
        verdict = Verdict.CANCELLED
    elif receiver.over_quota:
        verdict = Verdict.DISK_QUOTA
    elif oom or sig == signal.SIGKILL:
        verdict = Verdict.OUT_OF_MEMORY
    elif sig == signal.SIGXCPU:
        verdict = Verdict.CPU_LIMIT
    else:
        verdict = Verdict.EXITED
    report = SupervisorReport(
        verdict=verdict, exit_code=code if code is not None and code >= 0 else None, signal=sig,
        wall_seconds=round(wall, 3), cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        peak_memory_mb=round(peak, 1), phases=receiver.phases, last_phase=receiver.last_phase,
        epochs_seen=receiver.epochs_seen, files=receiver.files, refused=receiver.refused,
        stdout_truncated=flags["stdout"], stderr_truncated=flags["stderr"], namespaces=ns,
        landlock_abi=receiver.landlock_abi, filesystem_view=ns == "bwrap" or receiver.landlock_abi > 0,
        cgroup=bool(jail.dirs), killed_strays=strays, host=platform.node(),
        limits={"wall_seconds": policy.wall_seconds, "build_seconds": policy.build_seconds,
                "memory_mb": policy.memory_mb, "scratch_mb": policy.scratch_mb, "output_mb": policy.output_mb},
    )
    remove_tree(run.path, "scratch")
    write_at(run.path, RunDir.SUPERVISOR, report.model_dump_json(indent=2).encode())
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.sandbox RUN_DIR", file=sys.stderr)
        return 2
    try:
        report = supervise(RunDir(Path(argv[0])))
    except Exception as exc:  # the coordinator records "no supervisor report" as an infrastructure failure
        print(f"grader supervisor: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(report.verdict.value)
    return 0
