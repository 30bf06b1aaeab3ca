"""Rubric engine (pure): a run's result + metrics + measured references → Score with feedback.

Feedback speaks the course's language (overfitting, convolutions, learning rate, augmentation)
and cites measured numbers; nothing here trains, reads files or touches the database.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import BaseModel, Field

from grader import advice
from grader.outcomes import FailureReason, Outcome
from grader.results import JobResult
from grader.scoring import Metrics
from grader.specs.exercise import ExerciseSpec
from grader.specs.rubric import (
    ApproachesReference,
    BeatsBaseline,
    Generalization,
    ParameterBudget,
    RubricSpec,
    Runs,
    TimeBudget,
)

CONV_LAYERS = ("Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv3D")


class ReferencePoint(BaseModel):
    """A measured baseline/reference run, under the same exercise spec, profile and seed."""

    name: str
    accuracy: float = Field(description="On the rubric's board.")
    params: int | None = None
    fit_seconds: float | None = None


class References(BaseModel):
    baseline: ReferencePoint | None = None
    others: list[ReferencePoint] = Field(default_factory=list)

    def get(self, name: str) -> ReferencePoint | None:
        if self.baseline and self.baseline.name == name:
            return self.baseline
        return next((r for r in self.others if r.name == name), None)

    @property
    def best(self) -> ReferencePoint | None:
        pool = ([self.baseline] if self.baseline else []) + self.others
        return max(pool, key=lambda r: r.accuracy, default=None)

    @property
    def measured(self) -> dict[str, float]:
        """Each reference's accuracy by name: what a grade compared against."""
        return {r.name: r.accuracy for r in ([self.baseline] if self.baseline else []) + self.others}


class CriterionScore(BaseModel):
    id: str
    title: str
    points: float
    max_points: float
    feedback: str


class Score(BaseModel):
    """The grade. `graded` is False when the grader (not the participant) could not grade."""

    total: float
    max_total: float
    graded: bool
    criteria: list[CriterionScore]
    diagnostics: list[str] = Field(default_factory=list)
    missing_references: list[str] = Field(default_factory=list)
    references: dict[str, float] | None = Field(
        default=None, description="The reference results this grade compared against (accuracy by name); a grade "
        "is stale once they differ from the stored ones, e.g. when the rest of them have run (None: graded before "
        "this was recorded).")

    @property
    def fraction(self) -> float:
        return self.total / self.max_total if self.max_total else 0.0


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, str) and value.startswith("{"):
            return value  # unknown field: left visible instead of crashing the grade
        return str(super().format_field(value, format_spec))


def render(template: str, fields: dict[str, Any]) -> str:
    return _Formatter().vformat(template, (), _Fields(fields))


def _linear(value: float, full_at: float, band: float) -> float:
    """1 at or above full_at, falling linearly to 0 at full_at - band."""
    if value >= full_at:
        return 1.0
    if band <= 0:
        return 0.0
    return max(0.0, 1.0 - (full_at - value) / band)


def grade(result: JobResult, metrics: Metrics | None, rubric: RubricSpec, refs: References,
          spec: ExerciseSpec) -> Score:
    """Apply the rubric; a failed run earns 0 everywhere with the failure as feedback."""
    if result.outcome is not Outcome.OK or metrics is None:
        graded = result.reason not in (FailureReason.INFRASTRUCTURE, FailureReason.CANCELLED)
        message = result.message or "the job failed"
        crits = [CriterionScore(id=c.id, title=c.title, points=0.0, max_points=c.points,
                                feedback=message if i == 0 else "not assessed: the run did not finish")
                 for i, c in enumerate(rubric.criteria)]
        return Score(total=0.0, max_total=rubric.total_points, graded=graded, criteria=crits,
                     diagnostics=_failure_advice(result))
    acc = metrics.board_accuracy(rubric.board)
    base, best = refs.baseline, refs.best
    fields: dict[str, Any] = {
        "accuracy": acc, "train_accuracy": metrics.train_accuracy, "gap": metrics.generalization_gap,
        "params": result.params, "fit_seconds": result.timings.get("fit"),
    }
    if base:
        fields.update(baseline=base.accuracy, delta_baseline=acc - base.accuracy, baseline_params=base.params,
                      baseline_fit_seconds=base.fit_seconds)
    if best:
        fields.update(best_reference=best.accuracy, best_reference_name=best.name)
    missing: list[str] = []
    out: list[CriterionScore] = []
    for crit in rubric.criteria:
        frac, extra = _criterion(crit, acc, metrics, result, refs, missing)
        # frac is None when a reference is missing: that branch renders no template (was a TypeError)
        f = {**fields, **extra, "max_points": crit.points, "points": round((frac or 0.0) * crit.points, 2)}
        if frac is None:
            text = "not assessed yet: reference results are missing (instructor: run `grader references compute`)"
            frac = 0.0
        elif frac >= 1.0:
            text = render(crit.feedback.full, f)
        elif frac > 0.0:
            text = render(crit.feedback.partial or crit.feedback.fail, f)
        else:
            text = render(crit.feedback.fail, f)
        out.append(CriterionScore(id=crit.id, title=crit.title, points=round(frac * crit.points, 2),
                                  max_points=crit.points, feedback=text))
    return Score(total=round(sum(c.points for c in out), 2), max_total=rubric.total_points, graded=True,
                 criteria=out, diagnostics=diagnose(result, metrics, spec, refs), missing_references=sorted(set(missing)),
                 references=refs.measured)


def _criterion(crit: Any, acc: float, metrics: Metrics, result: JobResult, refs: References,
               missing: list[str]) -> tuple[float | None, dict[str, Any]]:
    if isinstance(crit, Runs):
        return 1.0, {}
    if isinstance(crit, BeatsBaseline):
        if refs.baseline is None:
            missing.append("baseline")
            return None, {}
        return _linear(acc, refs.baseline.accuracy + crit.margin, crit.partial_band), {"margin": crit.margin}
    if isinstance(crit, ApproachesReference):
        ref = refs.get(crit.reference) if crit.reference else refs.best
        if ref is None:
            missing.append(crit.reference or "references")
            return None, {}
        return _linear(acc, ref.accuracy - crit.within, crit.partial_band), {
            "reference": ref.accuracy, "reference_name": ref.name, "delta_reference": acc - ref.accuracy}
    if isinstance(crit, Generalization):
        gap = metrics.generalization_gap
        if gap is None:
            return 0.0, {"max_gap": crit.max_gap}
        return _linear(-gap, -crit.max_gap, crit.partial_band), {"max_gap": crit.max_gap}
    if isinstance(crit, ParameterBudget):
        if crit.max_params is not None:
            cap = crit.max_params
        elif refs.baseline is None or refs.baseline.params is None:
            missing.append("baseline")
            return None, {}
        else:
            cap = int(refs.baseline.params * (crit.max_ratio_to_baseline or 1.0))
        params = result.params or 0
        return (1.0 if params <= cap else 0.0), {"max_params": cap, "ratio": params / max(cap, 1)}
    if isinstance(crit, TimeBudget):
        if refs.baseline is None or not refs.baseline.fit_seconds:
            missing.append("baseline")
            return None, {}
        ratio = (result.timings.get("fit") or 0.0) / refs.baseline.fit_seconds
        return (1.0 if ratio <= crit.max_ratio_to_baseline else 0.0), {"ratio": ratio}
    raise TypeError(f"unknown criterion {crit!r}")


def _failure_advice(result: JobResult) -> list[str]:
    tip = advice.tip(result.error_kind)
    return [tip] if tip else []


def diagnose(result: JobResult, metrics: Metrics, spec: ExerciseSpec, refs: References) -> list[str]:
    """Advice pointing at the course's concepts, each citing the measured numbers."""
    tips: list[str] = []
    train, gap = metrics.train_accuracy, metrics.generalization_gap
    if train is not None and train < 0.8:
        tips.append(f"Underfitting: training accuracy is only {train:.1%}. Add capacity (more filters or units), "
                    "train more epochs, or revisit the learning rate.")
    elif train is not None and gap is not None and gap > 0.05:
        aug = " or data augmentation (small rotations, zoom and shifts; no flips)" if spec.name == "asl" else \
            " or data augmentation"
        tips.append(f"Overfitting: training accuracy {train:.1%} vs held-out {metrics.public_accuracy:.1%} "
                    f"(gap {gap:.1%}). Try dropout{aug}, or fewer parameters.")
    losses = [h.loss for h in result.history if h.loss is not None]
    if len(losses) >= 2 and losses[-1] >= losses[0]:
        tips.append(f"The training loss did not decrease ({losses[0]:.3f} → {losses[-1]:.3f}): the learning rate is "
                    "probably too high (or far too low).")
    if result.layer_types and not any(t in CONV_LAYERS for t in result.layer_types):
        tips.append("Your model has no convolution layers. Conv2D layers exploit the 2-D structure of images and "
                    "usually beat dense networks by a wide margin (compare cnn1 with fc512 on MNIST).")
    if "BatchNormalization" in result.layer_types and refs.baseline and \
            metrics.board_accuracy("public") < refs.baseline.accuracy:
        tips.append("Batch normalization is not automatically better: compare with and without it, and mind "
                    "the learning rate.")
    weak = [c for c in metrics.weakest(3) if c.support]
    if weak:
        tips.append("Weakest classes: " + ", ".join(f"{c.name} {c.accuracy:.0%}" for c in weak) + ".")
    if metrics.most_confused:
        p = metrics.most_confused[0]
        tips.append(f"Most confused: {p.true_name} predicted as {p.predicted_name} ({p.count} images, "
                    f"{p.rate:.0%} of {p.true_name}).")
    return tips
