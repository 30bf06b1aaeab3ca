"""The course as participants and instructors see it: exercises, their limits, rubrics and references."""

from __future__ import annotations

from pydantic import BaseModel, Field

from grader.errors import GraderError
from grader.service.context import Context
from grader.specs.exercise import ExerciseSpec


class ProfileView(BaseModel):
    name: str
    source: str
    train_per_class: int | None
    test_per_class: int | None
    max_epochs: int | None
    seeds: int


class CriterionView(BaseModel):
    id: str
    title: str
    kind: str
    points: float


class ExerciseSummary(BaseModel):
    name: str
    title: str
    dataset: str
    classes: int
    profiles: list[str]
    references: int


class ExerciseDetail(ExerciseSummary):
    description: str
    seed: int
    class_names: list[str]
    accepted_output_units: dict[int, str]
    input_shape: list[int]
    max_epochs: int
    max_params: int
    max_wall_seconds: int
    batch_size_range: tuple[int, int]
    memory_mb: int
    default_epochs: int
    default_batch_size: int
    default_optimizer: str
    default_learning_rate: float
    profile_details: list[ProfileView]
    rubric_points: float
    rubric_board: str
    criteria: list[CriterionView]
    reference_names: list[str] = Field(default_factory=list)


def list_exercises(ctx: Context) -> list[ExerciseSummary]:
    out = []
    for name in ctx.catalog.names():
        spec = ctx.catalog.get(name)
        out.append(ExerciseSummary(name=name, title=spec.title, dataset=spec.dataset, classes=spec.num_classes,
                                   profiles=sorted(spec.profiles), references=len(ctx.catalog.references(name))))
    return out


def exercise_detail(ctx: Context, name: str) -> ExerciseDetail:
    spec = ctx.catalog.get(name)
    rubric = ctx.catalog.rubric(name)
    lim = spec.limits
    return ExerciseDetail(
        name=name, title=spec.title, dataset=spec.dataset, classes=spec.num_classes, profiles=sorted(spec.profiles),
        references=len(ctx.catalog.references(name)), description=spec.description, seed=spec.seed,
        class_names=[spec.class_name(i) for i in spec.labels.used],
        accepted_output_units={u: enc for u, enc in sorted(spec.labels.accepted_output_units().items())},
        input_shape=list(spec.input_shape), max_epochs=lim.max_epochs, max_params=lim.max_params,
        max_wall_seconds=lim.max_wall_seconds, batch_size_range=(lim.min_batch_size, lim.max_batch_size),
        memory_mb=lim.memory_mb, default_epochs=spec.training.epochs, default_batch_size=spec.training.batch_size,
        default_optimizer=spec.compile.optimizer, default_learning_rate=spec.compile.learning_rate,
        profile_details=[ProfileView(name=n, source=p.source, train_per_class=p.train_per_class,
                                     test_per_class=p.test_per_class, max_epochs=p.max_epochs, seeds=p.seeds)
                         for n, p in sorted(spec.profiles.items())],
        rubric_points=rubric.total_points, rubric_board=rubric.board,
        criteria=[CriterionView(id=c.id, title=c.title, kind=c.kind, points=c.points) for c in rubric.criteria],
        reference_names=[p.stem for p in ctx.catalog.references(name)],
    )


class CourseProblems(BaseModel):
    root: str
    exercises: int
    problems: list[str]


def validate_course(ctx: Context) -> CourseProblems:
    """Everything `grader exercises validate` checks: specs, rubrics, and every reference and starter file
    parsed and checked statically exactly as a participant's submission would be."""
    from grader.submission import read_submission  # the static checks: not for `exercises list` or `show`

    catalog = ctx.catalog
    problems = catalog.validate_all()
    for name in catalog.names():
        try:
            spec: ExerciseSpec | None = catalog.get(name)
        except GraderError:
            spec = None
        starter = catalog.exercises_dir / name / "starter.py"
        for file in [*catalog.references(name), *([starter] if starter.exists() else [])]:
            try:
                read_submission(file, spec)
            except GraderError as exc:
                problems.append(exc.message if str(file.name) in exc.message.split(":")[0] and str(file) in
                                exc.message else f"{file}: {exc.message.split(': ', 1)[-1]}")
    return CourseProblems(root=str(catalog.root), exercises=len(catalog.names()), problems=problems)
