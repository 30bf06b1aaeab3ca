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


@dataclass
class ExerciseCatalog:
    """Sorted scan of a course folder; `get` fails loudly with suggestions."""

    root: Path
    _cache: dict[str, ExerciseSpec] = field(default_factory=dict, repr=False)

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
        if name in self._cache:
            return self._cache[name]
        names = self.names()
        if name not in names:
            raise NotFoundError(did_you_mean(name, names, "exercise"))
        path = self.spec_path(name)
        spec = load_toml(path, ExerciseSpec)
        if spec.name != name:
            raise SpecError(f"{path}: name: {spec.name!r} does not match its folder {name!r}")
        self._cache[name] = spec
        return spec

    def rubric_path(self, name: str) -> Path:
        return self.rubrics_dir / f"{name}.toml"

    def rubric(self, name: str) -> RubricSpec:
        self.get(name)
        path = self.rubric_path(name)
        if not path.exists():
            raise SpecError(f"{path}: file not found (every exercise needs a rubric)")
        rubric = load_toml(path, RubricSpec)
        if rubric.exercise != name:
            raise SpecError(f"{path}: exercise: {rubric.exercise!r} does not match file name {name!r}")
        return rubric

    def references(self, name: str) -> list[Path]:
        """Baseline first, then the other reference solutions in name order."""
        folder = self.references_dir / name
        files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
        return sorted(files, key=lambda p: (p.stem != "baseline", p.stem))

    def validate_all(self) -> list[str]:
        """Load every exercise and rubric; return all problems instead of stopping at the first."""
        problems: list[str] = []
        for name in self.names():
            try:
                self.get(name)
                rubric = self.rubric(name)
                refs = {p.stem for p in self.references(name)}
                for ref in rubric.referenced_solutions():
                    if ref not in refs:
                        problems.append(
                            f"{self.rubric_path(name)}: reference {ref!r} has no file "
                            f"{self.references_dir / name / (ref + '.py')}"
                        )
            except (SpecError, NotFoundError) as exc:
                problems.append(str(exc))
        for path in sorted(self.rubrics_dir.glob("*.toml")) if self.rubrics_dir.is_dir() else []:
            if path.stem not in self.names():
                problems.append(f"{path}: no exercise named {path.stem!r}")
        return problems
