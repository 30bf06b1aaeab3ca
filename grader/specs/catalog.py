"""ExerciseCatalog: the course folder (exercises/, rubrics/, reference_solutions/) as one facade."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import NotFoundError, SpecError
from grader.specs.exercise import ExerciseSpec
from grader.specs.loading import load_toml
from grader.specs.rubric import RubricSpec


def did_you_mean(name: str, choices: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    msg = f"Unknown {what} {name!r}."
    if close:
        msg += f" Did you mean: {', '.join(close)}?"
    return msg + f" Available: {', '.join(choices) or '(none)'}"


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return (info.st_mtime_ns, info.st_size)


@dataclass
class ExerciseCatalog:
    """Sorted scan of a course folder; `get` fails loudly with suggestions."""

    root: Path
    _specs: dict[str, tuple[tuple[int, int], ExerciseSpec]] = field(default_factory=dict, repr=False)
    _rubrics: dict[str, tuple[tuple[int, int], RubricSpec]] = field(default_factory=dict, repr=False)

    @property
    def exercises_dir(self) -> Path:
        return self.root / "exercises"

    @property
    def rubrics_dir(self) -> Path:
        return self.root / "rubrics"

    @property
    def references_dir(self) -> Path:
        return self.root / "reference_solutions"

    def names(self) -> list[str]:
        if not self.exercises_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.exercises_dir.glob("*/exercise.toml"))

    def spec_path(self, name: str) -> Path:
        return self.exercises_dir / name / "exercise.toml"

    def get(self, name: str) -> ExerciseSpec:
        """The exercise, parsed once and again only after its file changes (a long-running server sees edits)."""
        path = self.spec_path(name)
        stamp = _stamp(path)
        cached = self._specs.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        names = self.names()
        if name not in names:
            raise NotFoundError(did_you_mean(name, names, "exercise"))
        spec = load_toml(path, ExerciseSpec)
        if spec.name != name:
            raise SpecError(f"{path}: name: {spec.name!r} does not match its folder {name!r}")
        self._specs[name] = (stamp, spec)
        return spec

    def rubric_path(self, name: str) -> Path:
        return self.rubrics_dir / f"{name}.toml"

    def rubric(self, name: str) -> RubricSpec:
        """The rubric, parsed once per file version (not once per result)."""
        self.get(name)
        path = self.rubric_path(name)
        stamp = _stamp(path)
        cached = self._rubrics.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if not path.exists():
            raise SpecError(f"{path}: file not found (every exercise needs a rubric)")
        rubric = load_toml(path, RubricSpec)
        if rubric.exercise != name:
            raise SpecError(f"{path}: exercise: {rubric.exercise!r} does not match file name {name!r}")
        self._rubrics[name] = (stamp, rubric)
        return rubric

    def references(self, name: str) -> list[Path]:
        """Baseline first, then the other reference solutions in name order."""
        folder = self.references_dir / name
        files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
        return sorted(files, key=lambda p: (p.stem != "baseline", p.stem))

    def validate_all(self) -> list[str]:
        """Every problem in the course folder, one line each, instead of stopping at the first.

        Each exercise file, each rubric (even when its exercise is broken), missing starters and
        reference files, and orphan rubrics. (grader.service.exercises.validate_course adds the static
        checks of every reference solution and starter, which live a layer above.)
        """
        problems: list[str] = []
        names = self.names()
        for name in names:
            try:
                self.get(name)
            except (SpecError, NotFoundError) as exc:
                problems.extend(str(exc).splitlines())
            path = self.rubric_path(name)
            rubric: RubricSpec | None = None
            if not path.exists():
                problems.append(f"{path}: file not found (every exercise needs a rubric)")
            else:
                try:
                    rubric = load_toml(path, RubricSpec)
                    if rubric.exercise != name:
                        problems.append(f"{path}: exercise: {rubric.exercise!r} does not match file name {name!r}")
                except SpecError as exc:
                    problems.extend(str(exc).splitlines())
            refs = self.references(name)
            if rubric is not None:
                stems = {p.stem for p in refs}
                for ref in rubric.referenced_solutions():
                    if ref not in stems:
                        problems.append(f"{path}: reference {ref!r} has no file "
                                        f"{self.references_dir / name / (ref + '.py')}")
            starter = self.exercises_dir / name / "starter.py"
            if not starter.exists():
                problems.append(f"{starter}: missing (`grader init -e {name}` hands it to participants)")
        for path in sorted(self.rubrics_dir.glob("*.toml")) if self.rubrics_dir.is_dir() else []:
            if path.stem not in names:
                problems.append(f"{path}: no exercise named {path.stem!r} (expected {self.spec_path(path.stem)})")
        return problems
