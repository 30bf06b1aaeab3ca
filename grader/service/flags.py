"""Integrity flags for instructors: evidence worth a conversation, never an automatic penalty.

What is measurable, and why each flag means something (docs/integrity.md explains them to instructors):
  - beyond_ceiling: accuracy above the best published result on this test split.
  - heldout_above_training: the model is far better on held-out images than on images it trained on;
    honest models never are, a model that knows the test labels is.
  - implausible_for_model: a dense network beating the best convolutional reference, or a model a
    twentieth the size of every reference beating them all.
  - embedded_data: a constant in the source too large to be code (a label table), or a module that
    unpacks data (base64, zlib, pickle, ...).
  - duplicate_code: the same code as another participant's once names, comments, docstrings and
    imports are normalised away (renamed variables do not hide it).
  - duplicate_architecture: the same layers and training settings as another participant's model,
    unless that is also a reference solution's (everyone sees those).
  - slow_build: build_model ran longer than training did (training outside grader's fit).
  - frozen_weights: far more non-trainable weights than any reference has (batch normalisation's
    statistics are a few thousand): a table of fixed values the model carries rather than learns.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections import defaultdict
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import Participant, Result, Submission
from grader.errors import GraderError
from grader.grading import CONV_LAYERS
from grader.rundir import RunDir
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.states import State
from grader.untrusted import read_json

UNPACKERS = {"base64", "zlib", "gzip", "lzma", "bz2", "pickle", "marshal", "codecs", "binascii", "urllib",
             "requests", "socket"}
FROZEN_FLOOR = 20_000  # non-trainable weights below this are never flagged (BatchNorm of a big CNN: ~2k)
_IGNORED_CONFIG = {"name", "trainable", "dtype", "seed", "build_config", "compile_config", "registered_name",
                   "module"}


class FlagKind(StrEnum):
    BEYOND_CEILING = "beyond_ceiling"
    HELDOUT_ABOVE_TRAINING = "heldout_above_training"
    IMPLAUSIBLE_FOR_MODEL = "implausible_for_model"
    EMBEDDED_DATA = "embedded_data"
    DUPLICATE_CODE = "duplicate_code"
    DUPLICATE_ARCHITECTURE = "duplicate_architecture"
    SLOW_BUILD = "slow_build"
    FROZEN_WEIGHTS = "frozen_weights"


class Flag(BaseModel):
    submission_id: int
    participant: str
    kind: FlagKind
    evidence: str


class FlagReport(BaseModel):
    exercise: str
    profile: str
    checked: int
    flags: list[Flag] = Field(default_factory=list)


class _Row(BaseModel):
    id: int
    participant: str
    reference: str | None
    public: float | None
    train: float | None
    params: int | None
    frozen: int | None  # measured weights minus the trainable ones the job reported
    layer_types: list[str]
    training: tuple[Any, ...]
    fingerprint: str | None
    stored_path: str
    run_dir: str | None
    build_seconds: float | None
    fit_seconds: float | None


def _frozen(params: int | None, job_result: dict[str, Any]) -> int | None:
    trainable = job_result.get("trainable_params")
    if params is None or not isinstance(trainable, int):
        return None
    return max(0, params - trainable)


def embedded_data(source: str, max_literal: int) -> str | None:
    """Evidence of data hidden in the source, or None: the largest constant, and unpacking imports."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    largest: tuple[int, int, str] = (0, 0, "")
    for node in ast.walk(tree):
        size, what = 0, ""
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and id(node) not in docstrings:
            size, what = len(node.value), f"a {'string' if isinstance(node.value, str) else 'bytes'} constant"
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            size, what = len(node.elts), f"a {type(node).__name__.lower()} of constants"
        elif isinstance(node, ast.Dict):
            size, what = len(node.keys), "a dict literal"
        if size > largest[0]:
            largest = (size, getattr(node, "lineno", 0), what)
    imports = sorted({alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                      for alias in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(tree)
                                               if isinstance(n, ast.ImportFrom)})
    unpack = [m for m in imports if m in UNPACKERS]
    parts = []
    if largest[0] > max_literal:
        parts.append(f"line {largest[1]}: {largest[2]} with {largest[0]:,} characters/elements (limit {max_literal})")
    if unpack:
        parts.append(f"imports {', '.join(unpack)} (unpacking embedded data?)")
    return "; ".join(parts) or None


def architecture_fingerprint(model_json: Any) -> str | None:
    """A hash of the layer stack (classes and their settings, names ignored)."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in sorted(obj.items()) if k not in _IGNORED_CONFIG}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    if not isinstance(model_json, dict):
        return None
    return hashlib.sha256(json.dumps(strip(model_json), sort_keys=True).encode()).hexdigest()


def _arch(run_dir: str | None) -> str | None:
    if not run_dir:
        return None
    try:
        return architecture_fingerprint(read_json(Path(run_dir), RunDir.MODEL, 4_000_000))
    except GraderError:
        return None


def flags(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None) -> FlagReport:
    require_instructor(actor, "integrity flags")
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    with session_scope(ctx.reader) as session:
        raw = session.execute(
            select(Submission, Participant.name, Result).join(Participant, Participant.id == Submission.participant_id)
            .join(Result, Result.submission_id == Submission.id)
            .where(Submission.exercise == exercise, Submission.profile == profile, Submission.parent_id.is_(None),
                   Submission.state == State.DONE.value, Submission.cached_from.is_(None))
            .order_by(Submission.id)).all()
    rows: list[_Row] = []
    for sub, name, res in raw:
        jr, facts = res.job_result or {}, res.facts or {}
        rows.append(_Row(id=sub.id, participant=name, reference=sub.reference_name, public=res.public_accuracy,
                         train=res.train_accuracy, params=res.params, frozen=_frozen(res.params, jr),
                         layer_types=list(jr.get("layer_types") or []),
                         training=(jr.get("epochs"), jr.get("batch_size"), jr.get("optimizer"), jr.get("learning_rate")),
                         fingerprint=sub.code_fingerprint, stored_path=sub.stored_path, run_dir=sub.run_dir,
                         build_seconds=facts.get("build_seconds"), fit_seconds=facts.get("fit_seconds")))
    refs = [r for r in rows if r.reference]
    people = [r for r in rows if not r.reference]
    report = FlagReport(exercise=exercise, profile=profile, checked=len(people))
    best_conv = max((r.public or 0.0 for r in refs if any(t in CONV_LAYERS for t in r.layer_types)), default=None)
    best_ref = max((r.public or 0.0 for r in refs), default=None)
    smallest_ref = min((r.params for r in refs if r.params), default=None)
    ref_frozen = max((r.frozen or 0 for r in refs), default=0)
    frozen_limit = max(FROZEN_FLOOR, 4 * ref_frozen)
    ref_archs = {a for r in refs if (a := _arch(r.run_dir))}
    ref_code = {r.fingerprint for r in refs if r.fingerprint}

    def add(r: _Row, kind: FlagKind, evidence: str) -> None:
        report.flags.append(Flag(submission_id=r.id, participant=r.participant, kind=kind, evidence=evidence))

    for r in people:
        acc = r.public
        if acc is not None and acc > spec.integrity.ceiling:
            add(r, FlagKind.BEYOND_CEILING, f"public accuracy {acc:.2%} is above the best published result on this "
                f"test split ({spec.integrity.ceiling:.2%})")
        if acc is not None and r.train is not None and acc - r.train > 0.10:
            add(r, FlagKind.HELDOUT_ABOVE_TRAINING, f"held-out {acc:.1%} vs {r.train:.1%} on images it trained on: a "
                "model that generalises is never this much better on unseen images")
        dense = r.layer_types and not any(t in CONV_LAYERS for t in r.layer_types)
        if acc is not None and dense and best_conv is not None and acc > best_conv + 0.02:
            add(r, FlagKind.IMPLAUSIBLE_FOR_MODEL, f"a dense network at {acc:.1%}, above the best convolutional "
                f"reference ({best_conv:.1%})")
        elif acc is not None and best_ref is not None and smallest_ref and r.params is not None and \
                r.params * 20 < smallest_ref and acc >= best_ref:
            add(r, FlagKind.IMPLAUSIBLE_FOR_MODEL, f"{r.params:,} parameters (every reference has at least "
                f"{smallest_ref:,}) yet {acc:.1%}, at or above the best reference ({best_ref:.1%})")
        try:
            source = Path(r.stored_path).read_text(encoding="utf-8")
        except OSError:
            source = ""
        evidence = embedded_data(source, spec.integrity.max_literal)
        if evidence:
            add(r, FlagKind.EMBEDDED_DATA, evidence)
        if r.frozen is not None and r.frozen > frozen_limit:
            add(r, FlagKind.FROZEN_WEIGHTS, f"{r.frozen:,} non-trainable weights (the references have at most "
                f"{ref_frozen:,}; flagged above {frozen_limit:,}): fixed values carried by the model, not learned")
        if r.build_seconds and r.fit_seconds and r.build_seconds > 10 and r.build_seconds > r.fit_seconds:
            add(r, FlagKind.SLOW_BUILD, f"build_model ran {r.build_seconds:.0f} s, training {r.fit_seconds:.0f} s")
    by_code: dict[str, list[_Row]] = defaultdict(list)
    by_arch: dict[tuple[str, tuple[Any, ...]], list[_Row]] = defaultdict(list)
    for r in people:
        if r.fingerprint and r.fingerprint not in ref_code:
            by_code[r.fingerprint].append(r)
        arch = _arch(r.run_dir)
        if arch and arch not in ref_archs:
            by_arch[(arch, r.training)].append(r)
    _duplicates(by_code, FlagKind.DUPLICATE_CODE, "the same code (after normalising names, comments and imports) "
                "as", add)
    code_flagged = {f.submission_id for f in report.flags if f.kind is FlagKind.DUPLICATE_CODE}
    _duplicates({k: [r for r in v if r.id not in code_flagged] for k, v in by_arch.items()},
                FlagKind.DUPLICATE_ARCHITECTURE, "the same layers and training settings as", add)
    report.flags.sort(key=lambda f: (f.submission_id, f.kind.value))
    return report


def _duplicates(groups: dict[Any, list[_Row]], kind: FlagKind, words: str, add: Any) -> None:
    for members in groups.values():
        people = {m.participant for m in members}
        if len(people) < 2:
            continue
        for m in members:
            others = sorted({f"{o.participant} (#{o.id})" for o in members if o.participant != m.participant})
            add(m, kind, f"{words} {', '.join(others[:5])}")
