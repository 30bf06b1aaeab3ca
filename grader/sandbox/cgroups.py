"""Per-job cgroup v1 jails (pids and memory), best effort; also the peak memory they measured."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_probe() -> tuple[bool, str]:
    for ctrl in ("pids", "memory"):
        base = CGROUP_ROOT / ctrl
        if not (base / "cgroup.procs").exists():
            return False, f"cgroup v1 {ctrl} controller not mounted at {base}"
        if not os.access(base, os.W_OK):
            return False, f"{base} is not writable by this user (needs root or delegation)"
    return True, "cgroup v1 pids + memory limits per job"


class CgroupJail:
    """Per-job cgroups; removed at the end. Joined by the child before exec (see `add`)."""

    def __init__(self, name: str, *, max_pids: int, memory_mb: int) -> None:
        self.dirs: list[Path] = []
        ok, _ = cgroup_probe()
        if not ok:
            return
        with contextlib.suppress(OSError):
            pids = CGROUP_ROOT / "pids" / "grader" / name
            pids.mkdir(parents=True, exist_ok=True)
            (pids / "pids.max").write_text(str(max_pids))
            self.dirs.append(pids)
            mem = CGROUP_ROOT / "memory" / "grader" / name
            mem.mkdir(parents=True, exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
            self.dirs.append(mem)

    @property
    def memory(self) -> Path | None:
        return next((d for d in self.dirs if d.parent.parent.name == "memory"), None)

    def add(self, pid: int) -> None:
        """Called in the child before exec, so everything it starts is inside from the first instant."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                (d / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        mem = self.memory
        if mem is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            for line in (mem / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def peak_memory_mb(self) -> float | None:
        mem = self.memory
        if mem is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((mem / "memory.max_usage_in_bytes").read_text()) / (1024 * 1024)
        return None

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
