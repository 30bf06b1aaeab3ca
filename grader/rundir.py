"""RunDir: the file names of the run-directory contract, and atomic writes into it.

A run directory is everything one job reads and writes. The job owns it while running;
the coordinator reads it afterwards and trusts nothing in it (see grader.results).
"""

from __future__ import annotations

import json
import os
import tempfile
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


@dataclass(frozen=True)
class RunDir:
    """One job's folder. Nobody spells a file name of the contract by hand."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).resolve())

    # written by the coordinator before the job starts
    @property
    def job_json(self) -> Path:
        return self.path / "job.json"

    @property
    def submission(self) -> Path:
        return self.path / "submission.py"

    # written by the job
    @property
    def result_json(self) -> Path:
        return self.path / "result.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.npy"

    @property
    def train_predictions(self) -> Path:
        return self.path / "train_predictions.npy"

    @property
    def progress(self) -> Path:
        return self.path / "progress.jsonl"

    @property
    def weights(self) -> Path:
        return self.path / "model.weights.h5"

    # written by the sandbox supervisor around the job
    @property
    def stdout_log(self) -> Path:
        return self.path / "stdout.log"

    @property
    def stderr_log(self) -> Path:
        return self.path / "stderr.log"

    @property
    def supervisor_json(self) -> Path:
        return self.path / "supervisor.json"

    @property
    def home(self) -> Path:
        """HOME of the job: an empty folder, so no ~/.keras cache of the host is visible."""
        return self.path / "home"

    @property
    def scheduler_log(self) -> Path:
        return self.path / "scheduler.log"

    # written by the Slurm backend (coordinator) and its batch script (compute node)
    @property
    def batch_script(self) -> Path:
        """The batch script as submitted, kept for instructors."""
        return self.path / "slurm_job.sh"

    @property
    def allocation(self) -> Path:
        """What Slurm allocated (node, GPU indices, CUDA_VISIBLE_DEVICES, CPUs, memory), as JSON."""
        return self.path / "allocation.json"

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        return self
