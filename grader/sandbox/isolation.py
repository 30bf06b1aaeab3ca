"""Which isolation layers this machine offers, and the per-job resource policy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from grader import landlock
from grader.results import JobSpec
from grader.sandbox.cgroups import cgroup_probe


class Policy(BaseModel):
    """Resource limits for one job, derived from the job spec."""

    wall_seconds: int = Field(description="SIGTERM at this many seconds, SIGKILL after the grace.")
    build_seconds: int = Field(description="From start to the first epoch: import, build_model, compile.")
    memory_mb: int = Field(description="cgroup memory limit; address-space rlimit is 4x this (TF reserves much).")
    cpu_seconds: int = Field(description="RLIMIT_CPU: a spinning job cannot burn cores forever.")
    file_size_mb: int = Field(default=512, description="RLIMIT_FSIZE for any file the job writes (scratch).")
    scratch_mb: int = Field(default=512, description="Total size of the job's scratch folder.")
    output_mb: int = Field(default=256, description="Total size of what the job may send back.")
    open_files: int = Field(default=1024, description="RLIMIT_NOFILE.")
    max_pids: int = Field(default=512, description="cgroup pids.max (threads count too).")

    @classmethod
    def for_job(cls, job: JobSpec) -> Policy:
        cores = os.cpu_count() or 1
        iso = job.isolation
        return cls(wall_seconds=job.wall_seconds, build_seconds=min(job.build_seconds, job.wall_seconds),
                   memory_mb=job.memory_mb, cpu_seconds=job.wall_seconds * cores + 60,
                   file_size_mb=iso.scratch_mb, scratch_mb=iso.scratch_mb, output_mb=iso.output_mb)


class Isolation(BaseModel):
    """Which layers are available here, and why not where not (for `grader doctor` and the warnings)."""

    namespaces: str = Field(description="'bwrap', 'unshare' or 'none'")
    namespaces_detail: str
    landlock_abi: int = Field(description="Landlock ABI the job will confine itself with; 0 = none.")
    landlock_detail: str
    cgroup: bool
    cgroup_detail: str
    subreaper: bool

    @property
    def filesystem_view(self) -> bool:
        """A job cannot reach files outside its view (labels, database, other runs)."""
        return self.namespaces == "bwrap" or self.landlock_abi > 0

    @property
    def network_blocked(self) -> str:
        if self.namespaces in ("bwrap", "unshare"):
            return "all network (empty network namespace)"
        if self.landlock_abi >= 4:
            return "TCP only (Landlock); UDP and local sockets remain"
        return ""


def _try(cmd: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()[:200]


def detect_namespaces(preference: str = "auto") -> tuple[str, str]:
    ns, detail = "none", "namespace isolation disabled by configuration (isolation = 'none')"
    if preference in ("auto", "bwrap"):
        bwrap = shutil.which("bwrap")
        if bwrap:
            ok, err = _try([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                            "--proc", "/proc", "true"])
            ns, detail = ("bwrap", "bwrap: no network, private PID space, minimal filesystem view") if ok else (
                "none", f"bwrap is installed but cannot create namespaces here: {err}")
        else:
            detail = "bwrap not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if ns == "none" and preference in ("auto", "unshare"):
        unshare = shutil.which("unshare")
        if unshare:
            ok, err = _try([unshare, "--user", "--map-root-user", "--net", "--pid", "--fork", "true"])
            if ok:
                ns, detail = "unshare", detail + "; unshare: no network, private PID space (no filesystem view)"
            else:
                detail += f"; unshare cannot create namespaces: {err}"
    return ns, detail


def detect_isolation(preference: str = "auto", use_landlock: bool = True) -> Isolation:
    ns, detail = detect_namespaces(preference)
    abi = landlock.abi_version() if use_landlock else 0
    if not use_landlock:
        ll_detail = "Landlock disabled by configuration (landlock = false)"
    elif abi:
        ll_detail = f"Landlock ABI {abi}: the job confines itself to its view before your code runs"
        ll_detail += "; TCP blocked" if abi >= 4 else ""
        ll_detail += "; no signals or abstract sockets outward" if abi >= 6 else ""
    else:
        ll_detail = "this kernel has no Landlock (Linux 5.13+ with landlock in the LSM list)"
    cg_ok, cg_detail = cgroup_probe()
    return Isolation(namespaces=ns, namespaces_detail=detail, landlock_abi=abi, landlock_detail=ll_detail,
                     cgroup=cg_ok, cgroup_detail=cg_detail, subreaper=sys.platform == "linux")


_PROBE = """
import sys
from pathlib import Path
from grader import landlock
hidden = Path(sys.argv[1])
view = landlock.View(read=[Path(p) for p in landlock.SYSTEM_READ] + [Path(p) for p in sys.argv[2:]],
                     holes=[hidden.parent])
landlock.confine(view)
try:
    hidden.read_bytes()
except PermissionError:
    print("hidden")
else:
    print("readable")
"""


def probe_landlock(secret: Path) -> tuple[bool, str]:
    """Really confine a child process and try to read `secret`: True if it was refused (for doctor)."""
    if landlock.abi_version() < 1:
        return False, "no Landlock in this kernel"
    from grader.sandbox.command import python_roots
    from grader.settings import PACKAGE_DIR

    roots = [*python_roots(sys.executable), str(PACKAGE_DIR.parent)]
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(secret), *roots], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"probe failed: {exc}"
    out = proc.stdout.strip()
    if out == "hidden":
        return True, "a confined probe could not read the bundled held-out labels"
    return False, f"a confined probe {'could read' if out == 'readable' else 'failed'}: {(proc.stderr or out)[-200:]}"
