"""Which Slurm and which pyslurm are installed here, and so which driver to use: read without loading libslurm."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from grader.errors import BackendError

SLURM_CONF_CANDIDATES = ("/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf")


def slurm_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The configuration libslurm would read, if there is one (SLURM_CONF wins even when missing)."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_CONF"):
        path = Path(env["SLURM_CONF"])
        return path if path.is_file() else None
    return next((Path(p) for p in SLURM_CONF_CANDIDATES if Path(p).is_file()), None)


def _major_minor(version: str | None) -> tuple[int, int] | None:
    m = re.search(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def installed_pyslurm_version() -> str | None:
    """pyslurm's version from its package metadata: reading it does not load libslurm."""
    try:
        return importlib.metadata.version("pyslurm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown" if importlib.util.find_spec("pyslurm") else None


def _version_output(argv: list[str], env: Mapping[str, str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False, env=dict(env)).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return m.group(0) if (m := re.search(r"\d+\.\d+(\.\d+)?", out)) else None


def header_version(header: Path) -> str | None:
    """X.Y.Z from a slurm_version.h (SLURM_VERSION_NUMBER 0x190b07 is 25.11.7)."""
    try:
        text = header.read_text(encoding="latin-1")
    except OSError:
        return None
    m = re.search(r"^#define\s+SLURM_VERSION_NUMBER\s+0x([0-9a-fA-F]+)", text, re.M)
    if not m:
        return None
    number = int(m.group(1), 16)
    return f"{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def installed_slurm_version(environ: Mapping[str, str] | None = None) -> str | None:
    """The version of the Slurm this host uses, without needing a configuration.

    `sinfo --version` first; from Slurm 24 on it dies without a configuration ("Could not establish a
    configuration source"), so then the installation's slurm_version.h (beside `sinfo`, or beside the
    libraries LD_LIBRARY_PATH names, or the system's), and last the daemons (`slurmd -V` needs none).
    """
    env = os.environ if environ is None else environ
    path = env.get("PATH", os.defpath)
    sinfo = shutil.which("sinfo", path=path)
    if sinfo and (version := _version_output([sinfo, "--version"], env)):
        return version
    tools = [Path(sinfo).resolve().parent.parent] if sinfo else []  # PREFIX of PREFIX/bin/sinfo
    prefixes = list(tools)
    for entry in env.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if entry:
            prefixes += [Path(entry).parent, Path(entry).parent.parent]  # PREFIX/lib, PREFIX/lib/slurm
    prefixes += [Path("/usr"), Path("/usr/local")]
    for prefix in prefixes:
        if version := header_version(prefix / "include" / "slurm" / "slurm_version.h"):
            return version
    daemon_path = os.pathsep.join([*(str(p / "sbin") for p in tools), path, "/usr/sbin", "/usr/local/sbin"])
    for daemon in ("slurmd", "slurmctld"):
        if (found := shutil.which(daemon, path=daemon_path)) and (version := _version_output([found, "-V"], env)):
            return version
    return None


def decide_driver(
    requested: str, *, config: Path | None, pyslurm_version: str | None, slurm_version: str | None
) -> tuple[str, str]:
    """Pick "pyslurm" or "cli" and say why (for `grader doctor`); pure, so every branch is testable.

    Raises:
        BackendError: pyslurm was asked for explicitly but cannot be used safely.
    """
    if requested == "cli":
        return "cli", "slurm_driver = cli"
    problem = None
    if pyslurm_version is None:
        problem = "pyslurm is not installed"
    elif config is None:
        problem = "no Slurm configuration (SLURM_CONF, /etc/slurm/slurm.conf) to load pyslurm safely"
    elif _major_minor(pyslurm_version) != _major_minor(slurm_version) and slurm_version is not None:
        problem = f"pyslurm {pyslurm_version} does not match Slurm {slurm_version} (major.minor must be equal)"
    elif slurm_version is None and requested == "auto":
        problem = "the Slurm version could not be read (sinfo --version, slurm_version.h, slurmd -V), so pyslurm's " \
            "match is unproven"
    if problem is None:
        return "pyslurm", f"pyslurm {pyslurm_version} matches Slurm {slurm_version or '(unchecked)'}"
    if requested == "pyslurm":
        raise BackendError(f"slurm_driver = pyslurm, but {problem}", hint="set slurm_driver = 'cli' or 'auto'")
    return "cli", problem
