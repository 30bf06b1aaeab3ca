"""ExerciseSpec: one exercise as data (exercises/<name>/exercise.toml)."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """What a submission may ask for; exceeding one is a clear error, never a silent clamp."""

    max_epochs: int = Field(ge=1, description="Largest `epochs` a submission may request.")
    max_params: int = Field(ge=1, description="Largest trainable+non-trainable parameter count.")
    max_wall_seconds: int = Field(ge=10, description="Wall-clock budget for the whole job (full profile).")
    min_batch_size: int = Field(default=8, ge=1, description="Smallest allowed batch size.")
    max_batch_size: int = Field(default=1024, ge=1, description="Largest allowed batch size.")
    memory_mb: int = Field(default=6144, ge=512, description="Memory budget of the job process.")


class CompileDefaults(_Strict):
    """Compile settings applied to models the submission returns uncompiled."""

    optimizer: Literal["adam", "sgd", "rmsprop", "adamw", "nadam"] = Field(
        default="adam", description="Optimizer for uncompiled models."
    )
    learning_rate: float = Field(default=1e-3, gt=0, description="Learning rate for that optimizer.")
    momentum: float = Field(default=0.0, ge=0, lt=1, description="Momentum (SGD only).")


class TrainingDefaults(_Strict):
    """Training settings used where the submission's TRAINING dict is silent."""

    epochs: int = Field(ge=1, description="Epochs when the submission does not say.")
    batch_size: int = Field(ge=1, description="Batch size when the submission does not say.")


class HeldOut(_Strict):
    """The canonical test split, cut into fixed public and private halves (Kaggle-style)."""

    public_fraction: float = Field(default=0.5, gt=0, lt=1, description="Share of held-out images on the public board.")
    split_seed: int = Field(default=20240601, description="Seed of the public/private permutation.")


class Integrity(_Strict):
    """What an integrity check may assume about this exercise (flags for instructors, never penalties)."""

    ceiling: float = Field(default=1.0, gt=0, le=1, description="Best accuracy published for this dataset's test "
                           "split; a score above it is flagged as implausible.")
    max_literal: int = Field(default=300, ge=10, description="Characters (or elements) of one constant in a "
                             "submission above which it is flagged as embedded data.")
    perturb_heldout: bool = Field(default=False, description="Add light noise (4 grey levels) to each held-out "
                                  "image, seeded by a secret of the coordinator: no held-out image then equals its "
                                  "public original, so looking test images up by content fails (labels unchanged).")
    perturb_shift: bool = Field(default=False, description="With perturb_heldout, also shift each held-out image by "
                                "one pixel in a secret direction: near-duplicate lookups fail too, but models "
                                "without shift invariance lose several points (docs/validation.md).")


_ADDED_PROFILE_FIELDS = ("wall_seconds", "max_batch_size")


class Profile(_Strict):
    """A sizing of the exercise: `full` (canonical data) or `smoke` (bundled sample, 1-2 epochs)."""

    source: Literal["full", "sample"] = Field(description="Full dataset from the data dir, or the bundled sample.")
    train_per_class: int | None = Field(default=None, ge=1, description="Cap on training images per class.")
    test_per_class: int | None = Field(default=None, ge=1, description="Cap on held-out images per class.")
    max_epochs: int | None = Field(default=None, ge=1, description="Epochs are clamped to this (smoke runs).")
    max_wall_seconds: int | None = Field(default=None, ge=10, description="Ceiling of the time limit in this "
                                         "profile (overrides limits.max_wall_seconds); references run under it.")
    wall_seconds: int | None = Field(default=None, ge=10, description="A fixed time limit for participants' jobs "
                                     "in this profile, instead of the one derived from the measured references.")
    train_eval_size: int = Field(default=2000, ge=1, description="Training images predicted to measure the generalization gap.")
    seeds: int = Field(default=1, ge=1, le=10, description="Seeds each submission is trained under; the grade uses "
                       "their mean, and boards show mean ± std (one job per seed).")
    epochs: int | None = Field(default=None, ge=1, description="Epochs for submissions that do not choose "
                               "(overrides the exercise's training.epochs in this profile).")
    max_batch_size: int | None = Field(default=None, ge=1, description="Batch sizes are clamped to this (smoke "
                                       "runs: on a small sample a large batch leaves too few optimizer steps).")


class Labels(_Strict):
    """Label space: raw labels 0..num_outputs-1; some may be unused (ASL has no J=9)."""

    num_outputs: int = Field(ge=2, description="Output units of the canonical model (raw label space).")
    class_names: list[str] = Field(description="Name of each raw label; unused labels keep a placeholder name.")
    unused: list[int] = Field(default_factory=list, description="Raw labels that never occur (ASL: 9 = J).")
    accept_compact: bool = Field(
        default=False,
        description="Accept models with num_outputs - len(unused) units; labels are remapped to skip unused.",
    )
    accept_extra_outputs: int = Field(
        default=0, ge=0, description="Accept up to this many surplus output units (e.g. 26 for A-Z)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Labels:
        if len(self.class_names) != self.num_outputs:
            raise ValueError(f"class_names has {len(self.class_names)} names, num_outputs is {self.num_outputs}")
        bad = [u for u in self.unused if not 0 <= u < self.num_outputs]
        if bad:
            raise ValueError(f"unused labels {bad} are outside 0..{self.num_outputs - 1}")
        return self

    @property
    def used(self) -> list[int]:
        return [i for i in range(self.num_outputs) if i not in self.unused]

    def accepted_output_units(self) -> dict[int, Literal["raw", "compact"]]:
        units: dict[int, Literal["raw", "compact"]] = {
            self.num_outputs + extra: "raw" for extra in range(self.accept_extra_outputs + 1)
        }
        if self.accept_compact and self.unused:
            units[len(self.used)] = "compact"
        return units


class ExerciseSpec(_Strict):
    """Everything the job and the scorer need to know about one exercise."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier used on the command line.")
    title: str = Field(description="Human title.")
    description: str = Field(default="", description="One paragraph shown by `grader exercises show`.")
    dataset: Literal["mnist", "fashion_mnist", "sign_mnist"] = Field(description="Dataset name in the data dir.")
    labels: Labels
    input_shape: tuple[int, int, int] = Field(default=(28, 28, 1), description="Image shape fed to conv models.")
    pixel_scale: float = Field(default=255.0, gt=0, description="Images are divided by this (uint8 → [0, 1]).")
    seed: int = Field(default=42, description="Seed for Python, NumPy and TensorFlow in every job.")
    limits: Limits
    compile: CompileDefaults = Field(default_factory=CompileDefaults)
    training: TrainingDefaults
    heldout: HeldOut = Field(default_factory=HeldOut)
    integrity: Integrity = Field(default_factory=Integrity)
    profiles: dict[str, Profile] = Field(description="Named sizings; must contain 'full' and 'smoke'.")

    @model_validator(mode="after")
    def _consistent(self) -> ExerciseSpec:
        missing = {"full", "smoke"} - set(self.profiles)
        if missing:
            raise ValueError(f"profiles must define {sorted(missing)}")
        if self.limits.min_batch_size > self.limits.max_batch_size:
            raise ValueError("limits.min_batch_size is larger than limits.max_batch_size")
        if not self.limits.min_batch_size <= self.training.batch_size <= self.limits.max_batch_size:
            raise ValueError("training.batch_size is outside the limits' batch size range")
        if self.training.epochs > self.limits.max_epochs:
            raise ValueError("training.epochs exceeds limits.max_epochs")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.labels.used)

    def class_name(self, label: int) -> str:
        return self.labels.class_names[label]

    def profile(self, name: str) -> Profile:
        from grader.errors import SpecError

        if name not in self.profiles:
            raise SpecError(
                f"exercise {self.name!r} has no profile {name!r}; available: {', '.join(sorted(self.profiles))}"
            )
        return self.profiles[name]

    def spec_hash(self) -> str:
        """Digest of everything that affects a result (not title/description): part of the cache key."""
        data = self.model_dump(mode="json", exclude={"title", "description"})
        for profile in data["profiles"].values():
            for name in _ADDED_PROFILE_FIELDS:  # left out while unset: adding a field keeps existing hashes
                if profile.get(name) is None:
                    profile.pop(name, None)
        if not data["integrity"].get("perturb_shift"):
            data["integrity"].pop("perturb_shift", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
