"""RunDir: the file names of the run-directory contract, and atomic, link-proof writes into it.

A run directory is everything one job reads and writes. The job sees it read-only and sends its
output through the supervisor (grader.channel); the coordinator reads it afterwards through
grader.untrusted and trusts nothing in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Inputs prepared once per (exercise, profile) and shared read-only by all its jobs.
INPUT_X_TRAIN = "x_train.npy"
INPUT_Y_TRAIN = "y_train.npy"
INPUT_X_HELDOUT = "x_heldout.npy"
INPUT_MANIFEST = "manifest.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _dir_fd(root: Path, parts: list[str]) -> int:
    """A descriptor of root/parts..., creating folders, never following a link."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_at(root: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    """Atomically write root/name where something untrusted may have planted links: no link is followed.

    The temp file is created with O_EXCL|O_NOFOLLOW and renamed over the target, so whatever sat at
    `name` (a link to a host file, a FIFO) is replaced, never written through.
    """
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not a plain relative name")
    fd = _dir_fd(root, parts[:-1])
    tmp = f".{parts[-1]}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        raise
    finally:
        os.close(fd)


def open_fresh(root: Path, name: str) -> int:
    """A new, empty file root/name for appending (logs): whatever was there is unlinked, not followed."""
    fd = _dir_fd(root, name.split("/")[:-1])
    leaf = name.split("/")[-1]
    try:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(leaf, dir_fd=fd)
        return os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND,
                       0o644, dir_fd=fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RunDir:
    """One job's folder. Nobody spells a file name of the contract by hand.

    Who writes what (the job itself writes nothing here; it sees the folder read-only):
      coordinator   job.json, submission.py, handle.json (+ slurm_job.sh; allocation.json from the batch script)
      supervisor    supervisor.json (facts), stdout.log, stderr.log, progress.jsonl
      supervisor, from the job's channel frames (claims):  output/result.json, output/predictions.npy, ...
      the job       scratch/ (its HOME, TMPDIR and working folder; a size-capped tmpfs under bwrap)
    Names are relative to the run directory so readers can open them safely (grader.untrusted).
    """

    path: Path

    JOB = "job.json"
    SUBMISSION = "submission.py"
    HANDLE = "handle.json"
    SUPERVISOR = "supervisor.json"
    STDOUT = "stdout.log"
    STDERR = "stderr.log"
    PROGRESS = "progress.jsonl"
    RESULT = "output/result.json"
    PREDICTIONS = "output/predictions.npy"
    TRAIN_PREDICTIONS = "output/train_predictions.npy"
    WEIGHTS = "output/weights.npz"
    MODEL = "output/model.json"
    TENSORBOARD = "output/tensorboard"
    BATCH_SCRIPT = "slurm_job.sh"
    ALLOCATION = "allocation.json"
    SCHEDULER_LOG = "scheduler.log"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).resolve())

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # written by the coordinator before the job starts
    @property
    def job_json(self) -> Path:
        return self.path / self.JOB

    @property
    def submission(self) -> Path:
        return self.path / self.SUBMISSION

    # written by the supervisor, from the job's frames
    @property
    def output(self) -> Path:
        return self.path / "output"

    @property
    def result_json(self) -> Path:
        return self.path / self.RESULT

    @property
    def predictions(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def train_predictions(self) -> Path:
        return self.path / self.TRAIN_PREDICTIONS

    @property
    def weights(self) -> Path:
        return self.path / self.WEIGHTS

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    # written by the sandbox supervisor around the job
    @property
    def progress(self) -> Path:
        return self.path / self.PROGRESS

    @property
    def stdout_log(self) -> Path:
        return self.path / self.STDOUT

    @property
    def stderr_log(self) -> Path:
        return self.path / self.STDERR

    @property
    def supervisor_json(self) -> Path:
        return self.path / self.SUPERVISOR

    @property
    def scratch(self) -> Path:
        """The job's HOME, TMPDIR and working folder: empty at start, so no host cache is visible."""
        return self.path / "scratch"

    @property
    def scheduler_log(self) -> Path:
        return self.path / self.SCHEDULER_LOG

    # written by the Slurm backend (coordinator) and its batch script (compute node)
    @property
    def batch_script(self) -> Path:
        """The batch script as submitted, kept for instructors."""
        return self.path / self.BATCH_SCRIPT

    @property
    def allocation(self) -> Path:
        """What Slurm allocated (node, GPU indices, CUDA_VISIBLE_DEVICES, CPUs, memory), as JSON."""
        return self.path / self.ALLOCATION

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self
