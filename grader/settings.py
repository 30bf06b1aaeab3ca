"""Settings: every default lives here once; env vars (GRADER_*) and a TOML file override them.

`Settings(**values)` reads its sources itself, highest first: the keyword arguments (the command line's
global options), the GRADER_* variables (matched without regard to case, as strings: the fields validate
them, lists as JSON or comma-separated names), the TOML file at `config_file()`, then the defaults.
A plain pydantic model with this small loader instead of pydantic-settings, whose import (asyncio, ssl,
argparse, dotenv, cloud secret providers) cost more than a read command's whole budget (bench/README.md).
`Settings.model_validate(...)` reads no source (the worker is handed resolved settings that way).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "GRADER_"
Names = list[str]


def _names(value: Any) -> Any:
    """A list from TOML or JSON, or a plain comma-separated string (GRADER_INSTRUCTORS=ann,bob)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list ({exc.msg}); write a JSON list or comma-separated names") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = PACKAGE_DIR / "data" / "samples"


def _user_data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "grader"


def config_file() -> Path:
    explicit = os.environ.get("GRADER_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "grader" / "config.toml"


def find_course_dir(start: Path | None = None) -> Path:
    """Locate the folder holding exercises/, rubrics/ and reference_solutions/.

    Search order: the working directory and its parents (an instructor's course checkout),
    then the source tree this package was installed from (editable installs), then the copy
    bundled inside the wheel.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "exercises").is_dir() and (candidate / "rubrics").is_dir():
            return candidate
    for candidate in (PACKAGE_DIR.parent, PACKAGE_DIR / "_course"):
        if (candidate / "exercises").is_dir():
            return candidate
    return here


def _environment(fields: Iterable[str]) -> dict[str, str]:
    """GRADER_<FIELD> variables, whatever their case (GRADER_HOME, grader_home), as the strings they are."""
    found = {key.lower(): value for key, value in os.environ.items()}
    prefix = ENV_PREFIX.lower()
    return {name: found[prefix + name] for name in fields if prefix + name in found}


def _config_values() -> dict[str, Any]:
    """The TOML file's keys, or nothing when there is no such file (a TOMLDecodeError names the line)."""
    path = config_file().expanduser()
    if not path.is_file():
        return {}
    import tomllib

    with path.open("rb") as fh:
        return tomllib.load(fh)


class Settings(BaseModel):
    """Where grader keeps its state and how it runs jobs."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        super().__init__(**{**_config_values(), **_environment(fields), **values})

    home: Path = Field(
        default_factory=_user_data_home,
        description="State folder: database, stored submissions, run directories, prepared inputs.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder with full datasets (mnist.npz, fashion_mnist.npz, sign_mnist.npz); "
        "default HOME/datasets.",
    )
    course_dir: Path | None = Field(
        default=None,
        description="Folder with exercises/, rubrics/ and reference_solutions/; default: found "
        "from the working directory, else the installed package's course.",
    )
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the database; default sqlite:///HOME/grader.db."
    )
    profile: str = Field(
        default="smoke",
        description="Profile used when a command does not say: 'smoke' (bundled sample, runs anywhere) or 'full'.",
    )
    backend: Literal["local", "slurm"] = Field(
        default="local", description="Where jobs run: 'local' processes or 'slurm' batch jobs."
    )
    local_max_jobs: int = Field(
        default=1, ge=1, le=64, description="Jobs the local worker runs at once (1 suits 2 cores)."
    )
    local_gpus: str = Field(
        default="", pattern=r"^[0-9]*(,[0-9]+)*$",
        description="GPU indices the local worker hands out, e.g. \"0,1\" (empty: jobs see what the worker "
                    "sees). Each job gets CUDA_VISIBLE_DEVICES of the least busy one.",
    )
    local_jobs_per_gpu: int = Field(
        default=1, ge=1, le=32,
        description="Jobs packed onto one GPU of local_gpus at once (with memory growth or "
                    "GRADER_GPU_MEMORY_MB in the job); the local worker then runs up to "
                    "len(local_gpus) × this many jobs, instead of local_max_jobs.",
    )
    isolation: Literal["auto", "bwrap", "unshare", "none"] = Field(
        default="auto",
        description="Namespace isolation for jobs: auto picks bwrap, then unshare, else none.",
    )
    landlock: bool = Field(
        default=True,
        description="Jobs confine themselves with Landlock (Linux 5.13+) to their filesystem view, whatever the "
        "namespace isolation; with neither bwrap nor Landlock a job could read the held-out labels.",
    )
    allow_unisolated_jobs: bool = Field(
        default=False,
        description="Let `grader serve` run jobs without any filesystem view (no bwrap, no Landlock). Only for a "
        "trusted class: a submission could then read every file of the server's account.",
    )
    job_scratch_mb: int = Field(default=512, ge=16, description="Disk a job may use for its own files (scratch).")
    job_output_mb: int = Field(default=256, ge=16, description="Total size of what a job may send back.")
    wall_factor: float = Field(
        default=5.0, ge=0,
        description="A participant's job may take this many times the slowest measured reference's job time "
        "(same exercise, profile and backend; 0 = always the exercise's limit). An explicit max_wall_seconds "
        "on the profile in exercise.toml overrides it.",
    )
    wall_floor_seconds: int = Field(default=90, ge=10, description="The shortest time limit wall_factor may give.")
    build_seconds: int = Field(
        default=120, ge=10,
        description="Longest a job may take from start to its first epoch (TensorFlow import, your file's import, "
        "build_model, compile): an endless loop there ends early instead of holding the queue.",
    )
    instructors: Names = Field(
        default_factory=list,
        description="Embedded mode only: local user names treated as instructors (a JSON list or comma-separated). "
        "Empty: the single local user is the instructor. A server keeps roles in its accounts instead.",
    )
    revealed_exercises: Names = Field(
        default_factory=list,
        description="Exercises whose private half is revealed: participants then see private accuracies and the "
        "private board (until then they see public-half figures only).",
    )
    server: str | None = Field(
        default=None,
        description="URL of a `grader serve` coordinator; set (or `grader login`) to use the CLI as its client.",
    )
    token: str | None = Field(default=None, description="Access token for the server (prefer `grader login`).")
    quota_per_window: int | None = Field(
        default=None, ge=1, description="Submissions per participant and exercise per window; none = unlimited."
    )
    quota_window_hours: float = Field(
        default=24.0, gt=0, description="Length of the rolling quota window in hours."
    )
    slurm_driver: Literal["auto", "pyslurm", "cli"] = Field(
        default="auto", description="How to talk to Slurm: pyslurm if importable and matching, else CLI tools."
    )
    slurm_partition: str | None = Field(default=None, description="Slurm partition for grading jobs.")
    slurm_account: str | None = Field(default=None, description="Slurm account to charge.")
    slurm_qos: str | None = Field(default=None, description="Slurm QOS.")
    slurm_reservation: str | None = Field(default=None, description="Slurm reservation (workshop day).")
    slurm_gpus: int = Field(default=1, ge=0, description="GPUs per grading job (gres gpu:N); 0 for CPU-only.")
    slurm_gpu_shards: int = Field(
        default=0,
        ge=0,
        description="Shards of a GPU per grading job (gres shard:N) instead of whole GPUs, so that several jobs "
        "share one GPU (the cluster must define gres/shard); 0 = whole GPUs, as slurm_gpus says.",
    )
    slurm_cpus: int = Field(default=2, ge=1, description="CPUs per grading job.")
    slurm_modules: Names = Field(
        default_factory=list, description="`module load` lines run before the job (site software stacks)."
    )
    slurm_container: str | None = Field(
        default=None, description="Apptainer/Singularity image to wrap the job in (NGC TensorFlow)."
    )
    slurm_python: str | None = Field(
        default=None, description="Python interpreter on compute nodes; default: the coordinator's."
    )
    slurm_time_margin_s: int = Field(
        default=120,
        ge=-3600,
        description="Seconds added to the exercise's wall-clock limit for Slurm's time limit (start-up, module "
        "load, container start), rounded up to whole minutes, so the supervisor's own limit normally hits first. "
        "May be negative: tests use that to make Slurm's limit hit first.",
    )
    slurm_memory_margin_mb: int = Field(
        default=1024,
        ge=0,
        description="MB added to the exercise's memory limit for Slurm's --mem (the supervisor and page cache).",
    )

    @field_validator("instructors", "slurm_modules", "revealed_exercises", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _names(value)

    @cached_property
    def resolved_course_dir(self) -> Path:
        return (self.course_dir or find_course_dir()).resolve()

    @property
    def resolved_data_dir(self) -> Path:
        return (self.data_dir or self.home / "datasets").expanduser().resolve()

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home.expanduser().resolve() / 'grader.db'}"

    @property
    def runs_dir(self) -> Path:
        return self.home.expanduser().resolve() / "runs"

    @property
    def inputs_dir(self) -> Path:
        return self.home.expanduser().resolve() / "inputs"

    @property
    def store_dir(self) -> Path:
        return self.home.expanduser().resolve() / "submissions"
