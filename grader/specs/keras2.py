"""Keras 2 argument names that course material still uses, and what Keras 3 calls them (one table).

The static check (grader.submission) refuses them before a job is queued; the job (grader.job)
explains the same names when they reach Keras another way (a dict of kwargs, a notebook).
"""

from __future__ import annotations

KERAS2_RENAMES: dict[str, str] = {
    "lr": "learning_rate",
    "nb_epoch": "epochs",
    "init": "kernel_initializer",
    "W_regularizer": "kernel_regularizer",
    "decay": "a learning-rate schedule (keras.optimizers.schedules)",
}


def rename_hint(old: str) -> str:
    new = KERAS2_RENAMES[old]
    return f"`{new}=`" if new.isidentifier() else new
