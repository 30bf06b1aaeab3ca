"""Sandbox: run one job under a supervisor that isolates it, limits it, and alone writes its run directory.

Layers (DESIGN.md threat model), each reported by `grader doctor`:
  1. a separate process in its own session; the supervisor is a child subreaper and kills every
     descendant at the end, so detached children cannot outlive the job;
  2. rlimits (CPU time, address space, file size, open files), a wall-clock limit and a start-up
     limit (import + build_model) enforced with SIGKILL after a short grace, a scrubbed environment,
     and capped stdout/stderr;
  3. a filesystem view: bwrap namespaces (no network, private PID space, only the Python environment,
     the package without its bundled data, the inputs read-only, the run directory read-only and a
     size-capped scratch tmpfs) and/or Landlock, which the job applies to itself before any
     participant code runs (works without namespaces, also blocks TCP and signals outward);
  4. cgroup v1 pids/memory limits where /sys/fs/cgroup is writable (fork bombs, memory);
  5. the job writes nothing into its run directory: it sends frames over a pipe (grader.channel), and
     the supervisor writes each file itself, within the run directory's quota.
The supervisor runs as `python -m grader.sandbox RUN_DIR` on whatever machine runs the job.
"""

from grader.sandbox.command import ENV_KEEP, build_command, build_env, python_roots
from grader.sandbox.isolation import Isolation, Policy, detect_isolation

__all__ = ["ENV_KEEP", "Isolation", "Policy", "build_command", "build_env", "detect_isolation", "python_roots"]
