"""The job's command line and environment (pure: golden-tested in tests/test_sandbox.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grader.entrypoints import job_argv
from grader.rundir import RunDir
from grader.settings import PACKAGE_DIR

ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_GPUS",
            "SLURM_CPUS_PER_TASK", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "TF_ENABLE_ONEDNN_OPTS", "TF_FORCE_GPU_ALLOW_GROWTH", "GRADER_GPU_MEMORY_MB")
TMP_MB = 64


def build_env(run: RunDir, seed: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """A scrubbed environment: no secrets, no GRADER_* paths, HOME in the job's scratch folder."""
    base = dict(os.environ if base is None else base)
    env = {k: base[k] for k in ENV_KEEP if k in base}
    env.setdefault("PATH", "/usr/bin:/bin")
    scratch = run.scratch
    env.update({
        "HOME": str(scratch), "TMPDIR": str(scratch), "PYTHONHASHSEED": str(seed), "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_DETERMINISTIC_OPS": "1",
        "TF_ENABLE_ONEDNN_OPTS": base.get("TF_ENABLE_ONEDNN_OPTS", "1"), "KERAS_HOME": str(scratch / ".keras"),
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(scratch / ".matplotlib"), "CUDA_CACHE_PATH": str(scratch / ".nv"),
    })
    return env


def python_roots(python: str) -> list[str]:
    """Folders the interpreter needs: its prefix (venv), base prefix and site-packages."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(python).resolve().parent.parent)}
    return sorted(r for r in roots if r and r != "/")


def build_command(run: RunDir, inputs_dir: Path, namespaces: str, python: str = sys.executable,
                  package_dir: Path = PACKAGE_DIR, hide: list[Path] | None = None, scratch_mb: int = 512) -> list[str]:
    """The job's argv: `python -m grader.job RUN_DIR`, wrapped in bwrap or unshare if chosen.

    Under bwrap the run directory is read-only and the scratch folder a tmpfs of `scratch_mb`:
    the job cannot touch the supervisor's files, and what it writes is capped exactly.
    """
    job = job_argv(run.path, python=python)
    if namespaces == "unshare":
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", *job]
    if namespaces != "bwrap":
        return job
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--dev", "/dev", "--proc", "/proc", "--size", str(TMP_MB * 1024 * 1024), "--tmpfs", "/tmp"]
    for sysdir in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.lexists(sysdir):
            cmd += (["--symlink", os.readlink(sysdir), sysdir] if os.path.islink(sysdir)
                    else ["--ro-bind", sysdir, sysdir])
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl",
                "/etc/alternatives", "/etc/nsswitch.conf"):
        if os.path.exists(etc):
            cmd += ["--ro-bind", etc, etc]
    for root in python_roots(python):
        cmd += ["--ro-bind", root, root]
    cmd += ["--ro-bind", str(package_dir), str(package_dir)]
    for hidden in [package_dir / "data", *(hide or [])]:
        cmd += ["--tmpfs", str(hidden)]
    scratch = str(run.scratch)
    cmd += ["--ro-bind", str(inputs_dir), str(inputs_dir), "--ro-bind", str(run.path), str(run.path),
            "--size", str(scratch_mb * 1024 * 1024), "--tmpfs", scratch, "--chdir", scratch,
            "--setenv", "HOME", scratch, "--", *job]
    return cmd
