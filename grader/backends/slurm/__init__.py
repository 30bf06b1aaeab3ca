"""Slurm backend: each run directory becomes one batch job, submitted through pyslurm or the Slurm CLIs."""

from __future__ import annotations

from grader.backends.slurm.backend import SlurmBackend

__all__ = ["SlurmBackend"]
