"""Housekeeping: prune run directories (weights, logs, TensorBoard) while keeping results and predictions."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import Result, Submission
from grader.rundir import RunDir
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.states import ACTIVE

PRUNABLE = (RunDir.WEIGHTS, RunDir.TENSORBOARD, RunDir.STDOUT, RunDir.STDERR, RunDir.MODEL, "scratch",
            "supervisor.log")


class PruneReport(BaseModel):
    runs: int
    pruned: int
    freed_bytes: int
    dry_run: bool


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prune_runs(ctx: Context, actor: Actor, *, older_than_days: float | None = None, superseded: bool = False,
               dry_run: bool = False) -> PruneReport:
    """Drop the bulky files of finished runs older than N days, or not their participant's best.

    result.json, predictions, progress and supervisor.json stay, so grades, curves and regrades still work.
    """
    from grader.sandbox.receiver import remove_tree

    require_instructor(actor, "pruning runs")
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    keep: set[str] = set()
    with session_scope(ctx.reader) as session:
        rows = session.execute(select(Submission.run_dir, Submission.state, Submission.participant_id,
                                      Submission.exercise, Submission.profile, Result.public_accuracy)
                               .outerjoin(Result, Result.submission_id == Submission.id)).all()
    best: dict[tuple[int, str, str], tuple[float, str]] = {}
    for run_dir, st, pid, ex, prof, acc in rows:
        if not run_dir:
            continue
        if st in ACTIVE:
            keep.add(run_dir)
        key = (pid, ex, prof)
        if acc is not None and (key not in best or acc > best[key][0]):
            best[key] = (acc, run_dir)
    keep |= {run_dir for _, run_dir in best.values()} if superseded else set()
    report = PruneReport(runs=0, pruned=0, freed_bytes=0, dry_run=dry_run)
    known = {r[0] for r in rows if r[0]}
    for run in sorted(ctx.settings.runs_dir.glob("*")) if ctx.settings.runs_dir.is_dir() else []:
        report.runs += 1
        if str(run) in keep or not run.is_dir():
            continue
        old = cutoff is not None and run.stat().st_mtime < cutoff
        if not (old or (superseded and str(run) in known)):
            continue
        freed = 0
        for name in PRUNABLE:
            target = run / name
            if target.exists() or target.is_symlink():
                freed += _size(target)
                if not dry_run:
                    remove_tree(run, name)
        if freed:
            report.pruned += 1
            report.freed_bytes += freed
    return report
