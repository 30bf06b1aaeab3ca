"""RubricSpec: criteria, points and feedback templates (rubrics/<exercise>.toml).

Thresholds are relative to *measured* baseline/reference results, so a rubric never
hard-codes an accuracy that would be wrong for another profile or seed.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # defer_build: built when a rubric is first loaded, not when grader.specs.catalog is imported (read commands)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# Every field a feedback template may cite, with a sample value used to check format specs at load.
TEMPLATE_FIELDS: dict[str, Any] = {
    "accuracy": 0.9, "baseline": 0.88, "best_reference": 0.92, "best_reference_name": "ref", "reference": 0.91,
    "reference_name": "ref", "delta_baseline": 0.02, "delta_reference": -0.02, "gap": 0.03, "max_gap": 0.05,
    "train_accuracy": 0.93, "params": 1000, "baseline_params": 900, "max_params": 2000, "fit_seconds": 10.0,
    "baseline_fit_seconds": 9.0, "ratio": 1.1, "margin": 0.01, "points": 1.0, "max_points": 2.0,
}


class Feedback(_Strict):
    """Templates formatted with the measured numbers, e.g. "{accuracy:.1%} vs {baseline:.1%}"."""

    full: str = Field(description="Shown when the criterion earns all its points.")
    partial: str = Field(default="", description="Shown for partial credit (falls back to `fail`).")
    fail: str = Field(description="Shown when the criterion earns nothing.")

    @model_validator(mode="after")
    def _fields_known(self) -> Feedback:
        for which in ("full", "partial", "fail"):
            try:
                parsed = list(string.Formatter().parse(getattr(self, which)))
            except ValueError as exc:
                raise ValueError(f"{which}: {exc}") from None
            for _, name, spec, _ in parsed:
                if name is None:
                    continue
                if name not in TEMPLATE_FIELDS:
                    raise ValueError(f"{which}: unknown field {{{name}}}; known: {', '.join(TEMPLATE_FIELDS)}")
                try:
                    format(TEMPLATE_FIELDS[name], spec or "")
                except ValueError as exc:
                    raise ValueError(f"{which}: {{{name}:{spec}}}: {exc}") from None
        return self


class _Criterion(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Column name in grade exports.")
    title: str = Field(description="Short human label.")
    points: float = Field(gt=0, description="Points for full credit.")
    feedback: Feedback


class Runs(_Criterion):
    """The submission trained and predicted without error."""

    kind: Literal["runs"]


class BeatsBaseline(_Criterion):
    """Held-out accuracy vs the measured baseline: full at baseline+margin, linear partial below."""

    kind: Literal["beats_baseline"]
    margin: float = Field(default=0.0, ge=0, le=1, description="Accuracy above the baseline needed for full credit.")
    partial_band: float = Field(
        default=0.05, ge=0, le=1, description="Below the full-credit line, credit falls linearly to 0 over this width."
    )


class ApproachesReference(_Criterion):
    """Held-out accuracy vs the best (or a named) reference solution."""

    kind: Literal["approaches_reference"]
    reference: str | None = Field(default=None, description="Reference file stem; none = best measured reference.")
    within: float = Field(default=0.0, ge=0, le=1, description="Full credit within this distance of the reference.")
    partial_band: float = Field(default=0.05, ge=0, le=1, description="Linear partial credit band below that.")


class Generalization(_Criterion):
    """Gap between training and held-out accuracy (overfitting)."""

    kind: Literal["generalization"]
    max_gap: float = Field(ge=0, le=1, description="Full credit at or below this train-minus-held-out gap.")
    partial_band: float = Field(default=0.05, ge=0, le=1, description="Linear partial credit band above max_gap.")


class ParameterBudget(_Criterion):
    """Model size relative to the baseline's (or an absolute cap)."""

    kind: Literal["parameter_budget"]
    max_ratio_to_baseline: float | None = Field(default=None, gt=0, description="Full credit up to this × baseline params.")
    max_params: int | None = Field(default=None, gt=0, description="Absolute cap instead of a ratio.")

    @model_validator(mode="after")
    def _one(self) -> ParameterBudget:
        if (self.max_ratio_to_baseline is None) == (self.max_params is None):
            raise ValueError("set exactly one of max_ratio_to_baseline and max_params")
        return self


class TimeBudget(_Criterion):
    """Training time relative to the baseline's measured time."""

    kind: Literal["time_budget"]
    max_ratio_to_baseline: float = Field(gt=0, description="Full credit up to this × the baseline's fit time.")


Criterion = Annotated[
    Runs | BeatsBaseline | ApproachesReference | Generalization | ParameterBudget | TimeBudget,
    Field(discriminator="kind"),
]


class RubricSpec(_Strict):
    """How an exercise is scored; applied again by `grader regrade` after edits."""

    exercise: str = Field(description="Exercise this rubric scores (must match the file name).")
    board: Literal["public", "private", "overall"] = Field(
        default="public", description="Which held-out accuracy the accuracy criteria use."
    )
    criteria: list[Criterion] = Field(min_length=1, description="Scored criteria, in display order.")

    @model_validator(mode="after")
    def _unique_ids(self) -> RubricSpec:
        ids = [c.id for c in self.criteria]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate criterion ids: {dupes}")
        return self

    @property
    def total_points(self) -> float:
        return sum(c.points for c in self.criteria)

    def referenced_solutions(self) -> list[str]:
        names = ["baseline"]
        names += [c.reference for c in self.criteria if isinstance(c, ApproachesReference) and c.reference]
        return names
