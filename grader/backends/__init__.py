"""Backends by name, imported lazily (pyslurm is imported only when `slurm` is chosen)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grader.errors import BackendError

if TYPE_CHECKING:
    from grader.backends.base import Backend
    from grader.settings import Settings

BACKENDS = {
    "local": "grader.backends.local:LocalBackend",
    "slurm": "grader.backends.slurm:SlurmBackend",
}


def get_backend(name: str, settings: Settings, **options: Any) -> Backend:
    if name not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(name, list(BACKENDS), n=2, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise BackendError(f"Unknown backend {name!r}.{hint} Available: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)(settings, **options)
    return backend
