"""Sandbox: build the job's command line and run it under a supervisor that always reports.

Layers (DESIGN.md threat model), each reported by `grader doctor`:
  1. separate process in its own session; the supervisor is a child subreaper and kills every
     descendant at the end, so detached children cannot outlive the job;
  2. rlimits (CPU time, address space, file size, open files), a wall-clock timeout enforced
     with SIGKILL after a short grace, a scrubbed environment, HOME inside the run dir, and
     stdout/stderr capped;
  3. where available, bwrap namespaces: no network, a private PID space, and a filesystem view
     with only the Python environment, the grader package (minus its bundled data), the inputs
     (read-only) and the run dir; `unshare` gives no network and a PID space only;
  4. cgroup v1 pids/memory limits where /sys/fs/cgroup is writable (fork bombs, memory).
The supervisor runs as `python -m grader.sandbox RUN_DIR` on whatever machine runs the job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from grader.errors import ResultError
from grader.results import ErrorKind, JobResult, JobSpec, load_result
from grader.rundir import RunDir, atomic_write_json, atomic_write_text
from grader.settings import PACKAGE_DIR

JOB_MODULE = "grader.job"
OUTPUT_CAP_BYTES = 1_000_000
GRACE_SECONDS = 5.0
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_GPUS",
            "SLURM_CPUS_PER_TASK", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE")


class Policy(BaseModel):
    """Resource limits for one job, derived from the job spec."""

    wall_seconds: int = Field(description="SIGTERM at this many seconds, SIGKILL after the grace.")
    memory_mb: int = Field(description="cgroup memory limit; address-space rlimit is 4x this (TF reserves much).")
    cpu_seconds: int = Field(description="RLIMIT_CPU: a spinning job cannot burn cores forever.")
    file_size_mb: int = Field(default=512, description="RLIMIT_FSIZE for any file the job writes.")
    open_files: int = Field(default=1024, description="RLIMIT_NOFILE.")
    max_pids: int = Field(default=512, description="cgroup pids.max (threads count too).")

    @classmethod
    def for_job(cls, job: JobSpec) -> Policy:
        cores = os.cpu_count() or 1
        return cls(wall_seconds=job.wall_seconds, memory_mb=job.memory_mb,
                   cpu_seconds=job.wall_seconds * cores + 60)


class Isolation(BaseModel):
    """Which layers are available here, and why not where not (for `grader doctor`)."""

    namespaces: str = Field(description="'bwrap', 'unshare' or 'none'")
    namespaces_detail: str
    cgroup: bool
    cgroup_detail: str
    subreaper: bool


def _try(cmd: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()[:200]


def detect_isolation(preference: str = "auto") -> Isolation:
    ns, detail = "none", "namespace isolation disabled by configuration"
    if preference in ("auto", "bwrap"):
        bwrap = shutil.which("bwrap")
        if bwrap:
            ok, err = _try([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                            "--proc", "/proc", "true"])
            ns, detail = ("bwrap", "bwrap: no network, private PID space, minimal filesystem view") if ok else (
                "none", f"bwrap is installed but cannot create namespaces here: {err}")
        else:
            detail = "bwrap not installed (Debian: apt-get install bubblewrap)"
    if ns == "none" and preference in ("auto", "unshare"):
        unshare = shutil.which("unshare")
        if unshare:
            ok, err = _try([unshare, "--user", "--map-root-user", "--net", "--pid", "--fork", "true"])
            if ok:
                ns, detail = "unshare", detail + "; unshare: no network, private PID space (no filesystem view)"
            else:
                detail += f"; unshare cannot create namespaces: {err}"
    cg_ok, cg_detail = _cgroup_probe()
    return Isolation(namespaces=ns, namespaces_detail=detail, cgroup=cg_ok, cgroup_detail=cg_detail,
                     subreaper=sys.platform == "linux")


# --- cgroups (v1 pids + memory) ---------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_probe() -> tuple[bool, str]:
    for ctrl in ("pids", "memory"):
        base = CGROUP_ROOT / ctrl
        if not (base / "cgroup.procs").exists():
            return False, f"cgroup v1 {ctrl} controller not mounted at {base}"
        if not os.access(base, os.W_OK):
            return False, f"{base} is not writable by this user (needs root or delegation)"
    return True, "cgroup v1 pids + memory limits per job"


class CgroupJail:
    """Per-job cgroups; best effort, removed at the end."""

    def __init__(self, name: str, policy: Policy) -> None:
        self.dirs: list[Path] = []
        ok, _ = _cgroup_probe()
        if not ok:
            return
        with contextlib.suppress(OSError):
            pids = CGROUP_ROOT / "pids" / "grader" / name
            pids.mkdir(parents=True, exist_ok=True)
            (pids / "pids.max").write_text(str(policy.max_pids))
            self.dirs.append(pids)
            mem = CGROUP_ROOT / "memory" / "grader" / name
            mem.mkdir(parents=True, exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(policy.memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                (mem / "memory.memsw.limit_in_bytes").write_text(str(policy.memory_mb * 1024 * 1024))
            self.dirs.append(mem)

    def add(self, pid: int) -> None:
        """Called in the child before exec, so everything it starts is inside from the first instant."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                (d / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        for d in self.dirs:
            if d.parent.parent.name == "memory":
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / "memory.oom_control").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


# --- the command (pure) -----------------------------------------------------------------------

def build_env(run: RunDir, seed: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """A scrubbed environment: no secrets, no GRADER_* paths, HOME inside the run dir."""
    base = dict(os.environ if base is None else base)
    env = {k: base[k] for k in ENV_KEEP if k in base}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({
        "HOME": str(run.home), "TMPDIR": str(run.home), "PYTHONHASHSEED": str(seed), "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_DETERMINISTIC_OPS": "1",
        "TF_ENABLE_ONEDNN_OPTS": base.get("TF_ENABLE_ONEDNN_OPTS", "1"), "KERAS_HOME": str(run.home / ".keras"),
        "MPLBACKEND": "Agg", "CUDA_CACHE_PATH": str(run.home / ".nv"),
    })
    return env


def _python_roots(python: str) -> list[str]:
    """Folders the interpreter needs: its prefix (venv), base prefix and site-packages."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(python).resolve().parent.parent)}
    return sorted(r for r in roots if r and r != "/")


def build_command(run: RunDir, inputs_dir: Path, namespaces: str, python: str = sys.executable,
                  package_dir: Path = PACKAGE_DIR, hide: list[Path] | None = None) -> list[str]:
    """The job's argv: `python -m grader.job RUN_DIR`, wrapped in bwrap or unshare if chosen."""
    job = [python, "-m", JOB_MODULE, str(run.path)]
    if namespaces == "unshare":
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", *job]
    if namespaces != "bwrap":
        return job
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for sysdir in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.lexists(sysdir):
            cmd += (["--symlink", os.readlink(sysdir), sysdir] if os.path.islink(sysdir)
                    else ["--ro-bind", sysdir, sysdir])
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl",
                "/etc/alternatives", "/etc/nsswitch.conf"):
        if os.path.exists(etc):
            cmd += ["--ro-bind", etc, etc]
    for root in _python_roots(python):
        cmd += ["--ro-bind", root, root]
    cmd += ["--ro-bind", str(package_dir), str(package_dir)]
    for hidden in [package_dir / "data", *(hide or [])]:
        cmd += ["--tmpfs", str(hidden)]
    cmd += ["--ro-bind", str(inputs_dir), str(inputs_dir), "--bind", str(run.path), str(run.path),
            "--chdir", str(run.path),
            "--setenv", "HOME", str(run.home), "--", *job]
    return cmd


# --- the supervisor ---------------------------------------------------------------------------

class SupervisorReport(BaseModel):
    exit_code: int | None
    signal: int | None
    timed_out: bool
    cancelled: bool
    wall_seconds: float
    stdout_truncated: bool
    stderr_truncated: bool
    namespaces: str
    cgroup: bool
    killed_strays: int
    host: str


def _set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
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


def _pump(stream: object, path: Path, cap: int, flags: dict[str, bool], key: str) -> None:
    written = 0
    with path.open("wb") as out:
        while True:
            chunk = stream.read(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            if written < cap:
                part = chunk[: cap - written]
                out.write(part)
                out.flush()
                written += len(part)
            if written >= cap and not flags[key]:
                flags[key] = True
                out.write(b"\n[output truncated by grader]\n")
                out.flush()


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


def supervise(run: RunDir, namespaces: str | None = None, hide: list[Path] | None = None) -> JobResult:
    """Start the job, enforce limits, and make sure a result.json exists whatever happens."""
    job = JobSpec.model_validate_json(run.job_json.read_text())
    policy = Policy.for_job(job)
    iso = detect_isolation(namespaces or os.environ.get("GRADER_ISOLATION", "auto"))
    ns = namespaces or iso.namespaces
    run.create()
    run.result_json.unlink(missing_ok=True)
    subreaper = _set_subreaper()
    cmd = build_command(run, Path(job.inputs_dir), ns, hide=hide)
    jail = CgroupJail(run.path.name, policy)
    cancelled = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        cancelled.set()

    old = signal.signal(signal.SIGTERM, on_term)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=run.path, env=build_env(run, job.seed), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: (jail.add(os.getpid()), _limits(policy)))
    flags = {"stdout": False, "stderr": False}
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, run.stdout_log, OUTPUT_CAP_BYTES, flags, "stdout")),
             threading.Thread(target=_pump, args=(proc.stderr, run.stderr_log, OUTPUT_CAP_BYTES, flags, "stderr"))]
    for p in pumps:
        p.daemon = True
        p.start()
    timed_out = False
    while proc.poll() is None:
        if cancelled.is_set() or time.monotonic() - start > policy.wall_seconds:
            timed_out = not cancelled.is_set()
            _kill_group(proc, GRACE_SECONDS)
            break
        time.sleep(0.2)
    proc.wait()
    wall = time.monotonic() - start
    strays = _kill_strays() if subreaper else 0
    for p in pumps:
        p.join(timeout=5)
    oom = jail.oom_killed()
    jail.remove()
    signal.signal(signal.SIGTERM, old)
    code = proc.returncode
    report = SupervisorReport(
        exit_code=code if code is not None and code >= 0 else None,
        signal=-code if code is not None and code < 0 else None, timed_out=timed_out,
        cancelled=cancelled.is_set(), wall_seconds=round(wall, 3), stdout_truncated=flags["stdout"],
        stderr_truncated=flags["stderr"], namespaces=ns, cgroup=bool(jail.dirs), killed_strays=strays,
        host=platform.node(),
    )
    atomic_write_json(run.supervisor_json, report.model_dump())
    result = _final_result(run, job, report, oom)
    atomic_write_text(run.result_json, result.model_dump_json(indent=2))
    return result


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _final_result(run: RunDir, job: JobSpec, rep: SupervisorReport, oom: bool) -> JobResult:
    """The supervisor's verdict wins over whatever the job wrote when the job was stopped."""
    base = {"seed": job.seed, "profile": job.profile_name, "submission_sha256": job.submission_sha256,
            "spec_hash": job.spec_hash, "backend": job.backend, "host": rep.host,
            "scheduler_job_id": os.environ.get("SLURM_JOB_ID")}
    if rep.cancelled:
        return JobResult.failed(ErrorKind.CANCELLED, "the job was cancelled", **base)
    if rep.timed_out:
        minutes = job.wall_seconds / 60
        return JobResult.failed(ErrorKind.TIMEOUT, f"training did not finish within the {minutes:g}-minute limit: "
                                "use fewer epochs, a smaller model or a larger batch size", **base)
    if oom or rep.signal == signal.SIGKILL:
        return JobResult.failed(ErrorKind.OUT_OF_MEMORY, f"the job was killed, most likely for exceeding its "
                                f"{job.memory_mb} MB memory limit: use a smaller model or batch size", **base)
    if rep.signal == signal.SIGXCPU:
        return JobResult.failed(ErrorKind.TIMEOUT, "the job used up its CPU-time limit", **base)
    try:
        result = load_result(run.result_json)
    except ResultError as exc:
        kind = ErrorKind.NO_RESULT if not run.result_json.exists() else ErrorKind.INVALID_RESULT
        tail = _tail(run.stderr_log)
        return JobResult.failed(kind, f"the job ended (exit {rep.exit_code}, signal {rep.signal}) without a valid "
                                f"result: {exc}" + (f"; last output: {tail}" if tail else ""), **base)
    return result


def _tail(path: Path, chars: int = 600) -> str:
    with contextlib.suppress(OSError):
        return path.read_bytes()[-chars:].decode("utf-8", "replace").strip()
    return ""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.sandbox RUN_DIR", file=sys.stderr)
        return 2
    result = supervise(RunDir(Path(argv[0])))
    print(result.outcome.value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
