"""Exercise and rubric files: the catalogue loads the course, and every broken file fails loudly.

A damaged copy of the course (in tmp_path) must give a SpecError naming the file and the field;
`grader exercises validate` reports every problem and exits 2 (SpecError.exit_code).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.errors import NotFoundError, SpecError
from grader.specs.catalog import ExerciseCatalog
from grader.specs.exercise import ExerciseSpec
from grader.specs.loading import load_toml
from grader.specs.rubric import RubricSpec

REPO = Path(__file__).resolve().parents[1]
EXERCISES = ["asl", "fashion_mnist", "mnist"]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A writable copy of the repository's course, to damage."""
    root = tmp_path / "course"
    for folder in ("exercises", "rubrics", "reference_solutions"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}; the fixture course changed, update this test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point (error mapping and exit codes included)."""
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


# --- the real course ------------------------------------------------------------------------

def test_catalog_loads_the_three_exercises() -> None:
    catalog = ExerciseCatalog(REPO)
    assert catalog.names() == EXERCISES
    for name in EXERCISES:
        spec = catalog.get(name)
        assert spec.name == name
        assert {"full", "smoke"} <= set(spec.profiles)
        assert spec.profile("smoke").source == "sample"
        assert spec.profile("full").source == "full"
        rubric = catalog.rubric(name)
        assert rubric.exercise == name
        assert rubric.total_points > 0
        assert catalog.references(name)[0].stem == "baseline"
    assert catalog.validate_all() == []


def test_dataset_and_classes_per_exercise() -> None:
    catalog = ExerciseCatalog(REPO)
    assert {n: catalog.get(n).dataset for n in EXERCISES} == {
        "asl": "sign_mnist", "fashion_mnist": "fashion_mnist", "mnist": "mnist"}
    assert catalog.get("mnist").num_classes == 10
    assert catalog.get("fashion_mnist").num_classes == 10
    assert catalog.get("asl").num_classes == 24


def test_asl_accepts_24_compact_25_and_26_output_units() -> None:
    spec = ExerciseCatalog(REPO).get("asl")
    assert spec.labels.accepted_output_units() == {24: "compact", 25: "raw", 26: "raw"}
    assert spec.labels.unused == [9]
    assert 9 not in spec.labels.used
    assert [spec.class_name(i) for i in spec.labels.used] == list("ABCDEFGHIKLMNOPQRSTUVWXY")
    # the digit exercises accept exactly their 10 units
    assert ExerciseCatalog(REPO).get("mnist").labels.accepted_output_units() == {10: "raw"}


def test_spec_hash_ignores_wording_but_not_settings(course: Path) -> None:
    before = ExerciseCatalog(course).get("mnist").spec_hash()
    path = course / "exercises" / "mnist" / "exercise.toml"
    edit(path, 'title = "MNIST handwritten digits"', 'title = "Digits, reworded"')
    assert ExerciseCatalog(course).get("mnist").spec_hash() == before
    edit(path, "seed = 42", "seed = 43")
    assert ExerciseCatalog(course).get("mnist").spec_hash() != before


def test_unknown_profile_lists_the_available_ones() -> None:
    with pytest.raises(SpecError, match=r"no profile 'smok'; available: .*full.*smoke"):
        ExerciseCatalog(REPO).get("mnist").profile("smok")


# --- unknown names ---------------------------------------------------------------------------

@pytest.mark.parametrize(("typo", "suggestion"), [("fashon_mnist", "fashion_mnist"), ("mnst", "mnist"), ("asll", "asl")])
def test_unknown_exercise_suggests_names(typo: str, suggestion: str) -> None:
    with pytest.raises(NotFoundError) as info:
        ExerciseCatalog(REPO).get(typo)
    msg = str(info.value)
    assert f"Unknown exercise {typo!r}." in msg
    assert re.search(rf"Did you mean: [^?]*\b{suggestion}\b", msg), msg
    assert "Available: asl, fashion_mnist, mnist" in msg


def test_unknown_exercise_on_the_command_line(grader_home: Path) -> None:
    proc = cli("exercises", "show", "fashon_mnist")
    assert proc.returncode == NotFoundError.exit_code
    assert "Did you mean: fashion_mnist" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- broken files: SpecError names file + field ------------------------------------------------

EXERCISE_DAMAGE = [
    # (old text, new text, field path expected in the message)
    ("max_epochs = 40", "max_epochs = 0", "limits.max_epochs"),
    ('dataset = "mnist"', 'dataset = "cifar10"', "dataset"),
    ("batch_size = 128", 'batch_size = "big"', "training.batch_size"),
    ("[labels]\n", "[labels]\ncolour = 'blue'\n", "labels.colour"),
    ('source = "sample"', 'source = "somewhere"', "profiles.smoke.source"),
    ("public_fraction = 0.5", "public_fraction = 1.5", "heldout.public_fraction"),
]


@pytest.mark.parametrize(("old", "new", "field"), EXERCISE_DAMAGE, ids=[d[2] for d in EXERCISE_DAMAGE])
def test_broken_exercise_names_file_and_field(course: Path, old: str, new: str, field: str) -> None:
    path = course / "exercises" / "mnist" / "exercise.toml"
    edit(path, old, new)
    with pytest.raises(SpecError) as info:
        ExerciseCatalog(course).get("mnist")
    assert f"{path}: {field}: " in str(info.value)


def test_inconsistent_exercise_is_refused(course: Path) -> None:
    path = course / "exercises" / "mnist" / "exercise.toml"
    edit(path, "epochs = 10", "epochs = 41")  # training.epochs above limits.max_epochs
    with pytest.raises(SpecError, match=re.escape(f"{path}: ") + r".*training.epochs exceeds limits.max_epochs"):
        ExerciseCatalog(course).get("mnist")


def test_class_names_must_match_outputs(course: Path) -> None:
    path = course / "exercises" / "mnist" / "exercise.toml"
    edit(path, '"8", "9"]', '"8"]')
    with pytest.raises(SpecError, match=re.escape(f"{path}: labels: ") + r".*class_names has 9 names, num_outputs is 10"):
        ExerciseCatalog(course).get("mnist")


def test_invalid_toml_names_the_file(course: Path) -> None:
    path = course / "exercises" / "asl" / "exercise.toml"
    edit(path, 'name = "asl"', 'name = "asl')
    with pytest.raises(SpecError, match=re.escape(f"{path}: invalid TOML")):
        ExerciseCatalog(course).get("asl")


def test_folder_and_name_must_agree(course: Path) -> None:
    path = course / "exercises" / "mnist" / "exercise.toml"
    edit(path, 'name = "mnist"', 'name = "digits"')
    with pytest.raises(SpecError, match=re.escape(f"{path}: name: 'digits' does not match its folder 'mnist'")):
        ExerciseCatalog(course).get("mnist")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape(f"{tmp_path / 'nope.toml'}: file not found")):
        load_toml(tmp_path / "nope.toml", ExerciseSpec)


RUBRIC_DAMAGE = [
    ("points = 4", "points = -4", "criteria[1].beats_baseline.points"),
    ('kind = "beats_baseline"', 'kind = "beats_everyone"', "criteria[1]"),
    ("margin = 0.005", "margin = 5", "criteria[1].beats_baseline.margin"),
    ('board = "public"', 'board = "secret"', "board"),
]


@pytest.mark.parametrize(("old", "new", "field"), RUBRIC_DAMAGE, ids=[d[2] for d in RUBRIC_DAMAGE])
def test_broken_rubric_names_file_and_field(course: Path, old: str, new: str, field: str) -> None:
    path = course / "rubrics" / "mnist.toml"
    edit(path, old, new)
    with pytest.raises(SpecError) as info:
        ExerciseCatalog(course).rubric("mnist")
    assert f"{path}: {field}: " in str(info.value)


def test_rubric_template_with_unknown_field_is_refused_at_load(course: Path) -> None:
    path = course / "rubrics" / "mnist.toml"
    edit(path, "beats the baseline's {baseline:.1%}", "beats the baseline's {basline:.1%}")
    with pytest.raises(SpecError) as info:
        ExerciseCatalog(course).rubric("mnist")
    msg = str(info.value)
    assert f"{path}: criteria[1].beats_baseline.feedback: " in msg
    assert "unknown field {basline}" in msg
    assert "baseline" in msg.split("known:")[1]


def test_rubric_template_with_bad_format_spec_is_refused(course: Path) -> None:
    path = course / "rubrics" / "mnist.toml"
    edit(path, "{params:,} parameters: within budget", "{params:.1%%} parameters: within budget")
    with pytest.raises(SpecError, match=re.escape(f"{path}: criteria[4].parameter_budget.feedback: ")):
        ExerciseCatalog(course).rubric("mnist")


def test_duplicate_criterion_ids_are_refused(course: Path) -> None:
    path = course / "rubrics" / "mnist.toml"
    edit(path, 'id = "budget"', 'id = "runs"')
    with pytest.raises(SpecError, match=r"duplicate criterion ids: \['runs'\]"):
        ExerciseCatalog(course).rubric("mnist")


def test_rubric_must_name_its_exercise(course: Path) -> None:
    path = course / "rubrics" / "asl.toml"
    edit(path, 'exercise = "asl"', 'exercise = "mnist"')
    with pytest.raises(SpecError, match=re.escape(f"{path}: exercise: 'mnist' does not match file name 'asl'")):
        ExerciseCatalog(course).rubric("asl")


def test_rubric_models_forbid_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('exercise = "x"\ncolour = "red"\n[[criteria]]\nid = "runs"\nkind = "runs"\ntitle = "t"\n'
                    'points = 1\n[criteria.feedback]\nfull = "ok"\nfail = "no"\n', encoding="utf-8")
    with pytest.raises(SpecError, match=re.escape(f"{path}: colour: Extra inputs are not permitted")):
        load_toml(path, RubricSpec)


# --- validate: every problem, then exit 2 -------------------------------------------------------

def test_validate_collects_every_problem(course: Path) -> None:
    edit(course / "exercises" / "mnist" / "exercise.toml", "max_epochs = 40", "max_epochs = 0")
    edit(course / "rubrics" / "asl.toml", "{accuracy:.1%}", "{acc:.1%}")
    (course / "reference_solutions" / "fashion_mnist" / "baseline.py").unlink()
    (course / "rubrics" / "cifar.toml").write_text((course / "rubrics" / "mnist.toml").read_text())
    problems = ExerciseCatalog(course).validate_all()
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "exercises/mnist/exercise.toml: limits.max_epochs" in text
    assert "rubrics/asl.toml: criteria[" in text and "unknown field {acc}" in text
    assert "rubrics/fashion_mnist.toml: reference 'baseline' has no file" in text
    assert "rubrics/cifar.toml: no exercise named 'cifar'" in text


def test_validate_cli_exit_codes(grader_home: Path, course: Path) -> None:
    ok = cli("--course-dir", str(course), "exercises", "validate")
    assert ok.returncode == 0, ok.stderr
    assert "3 exercises, their rubrics, references and starters are valid" in ok.stdout

    edit(course / "rubrics" / "mnist.toml", "{baseline:.1%}", "{basline:.1%}")
    bad = cli("--course-dir", str(course), "exercises", "validate")
    assert bad.returncode == SpecError.exit_code == 2
    assert "rubrics/mnist.toml: criteria[1].beats_baseline.feedback" in bad.stdout
    assert "1 problem(s)" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout

    # the environment variable works like the option
    env = cli("exercises", "validate", env={"GRADER_COURSE_DIR": str(course)})
    assert env.returncode == 2


def test_exercises_list_and_show(grader_home: Path) -> None:
    listing = cli("exercises", "list")
    assert listing.returncode == 0, listing.stderr
    for name in EXERCISES:
        assert name in listing.stdout
    show = cli("exercises", "show", "asl")
    assert show.returncode == 0, show.stderr
    assert "accepted output units: 24 (compact), 25 (raw), 26 (raw)" in show.stdout
    assert "J (unused)" not in show.stdout.split("classes (24):")[1].splitlines()[0]
