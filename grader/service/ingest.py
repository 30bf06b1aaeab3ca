"""Ingest a finished run directory: the supervisor's facts, the job's claims, and the score from predictions.

Nothing here trusts the run directory. Files are read through grader.untrusted (no links, no FIFOs,
capped, bounded parsing); the job's claims (parameters, epochs, timings) are range-checked and
compared with facts (the supervisor's measurements, the weights' tensor sizes, the coordinator's
own job spec); a claim that contradicts a fact makes the run invalid, with the reason. Any problem
reading becomes a stored outcome for this one run, never an exception that stops the caller.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from grader import advice
from grader.datasets import HeldOutLabels
from grader.errors import ResultError
from grader.outcomes import ErrorKind, Outcome
from grader.results import Facts, JobResult, JobSpec, SupervisorReport, Verdict, validate_result
from grader.rundir import RunDir
from grader.scoring import Metrics, check_labels, score
from grader.untrusted import UntrustedFileError, npz_sizes, parse_npy, read_bytes, read_json, read_tail

MAX_SUPERVISOR_BYTES = 1_000_000
SLOW_BUILD_SECONDS = 10.0

_VERDICT_KINDS = {
    Verdict.TIMEOUT: ErrorKind.TIMEOUT,
    Verdict.BUILD_TIMEOUT: ErrorKind.BUILD_TIMEOUT,
    Verdict.OUT_OF_MEMORY: ErrorKind.OUT_OF_MEMORY,
    Verdict.CPU_LIMIT: ErrorKind.TIMEOUT,
    Verdict.DISK_QUOTA: ErrorKind.DISK_QUOTA,
    Verdict.CANCELLED: ErrorKind.CANCELLED,
}


class Ingested(BaseModel):
    result: JobResult
    metrics: Metrics | None = None
    facts: Facts = Field(default_factory=Facts)
    notes: list[str] = Field(default_factory=list, description="Grader's own remarks (not the job's).")

    @property
    def ok(self) -> bool:
        return self.result.outcome is Outcome.OK and self.metrics is not None


def read_report(run: RunDir) -> SupervisorReport:
    raw = read_json(run.path, RunDir.SUPERVISOR, MAX_SUPERVISOR_BYTES)
    try:
        return SupervisorReport.model_validate(raw)
    except ValueError as exc:
        raise ResultError(f"supervisor.json is not a supervisor report: {str(exc)[:200]}") from None


def no_view_note(facts: Facts) -> str | None:
    if facts.filesystem_view:
        return None
    return ("this run had no filesystem view (neither bubblewrap nor Landlock): the submission could read any file "
            "this account can, the held-out labels included. Install bubblewrap (apt-get install bubblewrap) or use "
            "a kernel with Landlock, then check with `grader doctor`")


def ingest(run: RunDir, job: JobSpec, key: HeldOutLabels) -> Ingested:
    """The run's outcome and metrics, from facts first and claims second; never raises for a bad run."""
    try:
        report = read_report(run)
    except ResultError as exc:
        return Ingested(result=JobResult.failed(ErrorKind.INFRASTRUCTURE, advice.message(
            ErrorKind.INFRASTRUCTURE, detail=f"the sandbox supervisor left no report: {exc}")))
    facts = _facts(report)
    notes = [n for n in (no_view_note(facts),) if n]
    notes += [f"grader refused part of the job's output: {why}" for why in report.refused[:3]]
    if report.verdict is not Verdict.COMPLETED and not (report.verdict is Verdict.EXITED
                                                         and report.files.get(RunDir.RESULT)):
        return Ingested(result=_verdict_result(run, job, report), facts=facts, notes=notes)
    try:
        claims = validate_result(read_json(run.path, RunDir.RESULT, 2_000_000))
    except ResultError as exc:
        return _invalid(f"invalid result: {exc}", facts, notes)
    if claims.outcome is not Outcome.OK:
        return Ingested(result=claims, facts=facts, notes=notes)
    try:
        facts.params = sum(npz_sizes(read_bytes(run.path, RunDir.WEIGHTS, job.exercise.limits.max_params * 8
                                                + 8_000_000), "weights.npz").values())
    except UntrustedFileError as exc:
        return _invalid(f"invalid result: the model's weights cannot be checked ({exc})", facts, notes, claims)
    contradiction = _contradiction(claims, facts, job, report)
    if contradiction:
        return _invalid(f"invalid result: {contradiction}", facts, notes, claims)
    if facts.params is not None and facts.params > job.exercise.limits.max_params:
        return Ingested(result=claims.model_copy(update={
            "outcome": Outcome.INVALID, "error_kind": ErrorKind.TOO_MANY_PARAMS,
            "message": f"the model has {facts.params:,} parameters (counted from its saved weights); this exercise "
                       f"allows {job.exercise.limits.max_params:,}"}), facts=facts, notes=notes)
    try:
        n = len(key.labels)
        pred = parse_npy(read_bytes(run.path, RunDir.PREDICTIONS, 256 + n * 8), "predictions.npy", shape=(n,),
                         kinds="iu")
        m = len(key.train_eval_labels)
        train = parse_npy(read_bytes(run.path, RunDir.TRAIN_PREDICTIONS, 256 + m * 8), "train_predictions.npy",
                          shape=(m,), kinds="iu")
        used = job.exercise.labels.used
        pred, train = check_labels(pred, used, "predictions.npy"), check_labels(train, used, "train_predictions.npy")
    except ResultError as exc:
        return _invalid(f"the job's predictions cannot be scored: {exc}", facts, notes, claims)
    metrics = score(pred, key.labels, key.public, job.exercise, train, key.train_eval_labels)
    if facts.build_seconds and facts.build_seconds > SLOW_BUILD_SECONDS and facts.fit_seconds and \
            facts.build_seconds > facts.fit_seconds:
        notes.append(f"build_model() took {facts.build_seconds:.0f} s, longer than training ({facts.fit_seconds:.0f} s):"
                     " training inside build_model is not allowed")
    return Ingested(result=claims, metrics=metrics, facts=facts, notes=notes)


def _facts(report: SupervisorReport) -> Facts:
    phases = report.phases
    fit = build = None
    if "training" in phases:
        end = phases.get("predicting", report.wall_seconds)
        fit = round(max(0.0, end - phases["training"]), 3)
    if "building model" in phases and "training" in phases:
        build = round(max(0.0, phases["training"] - phases["building model"]), 3)
    return Facts(wall_seconds=report.wall_seconds, fit_seconds=fit, build_seconds=build,
                 peak_memory_mb=report.peak_memory_mb, filesystem_view=report.filesystem_view,
                 namespaces=report.namespaces, landlock_abi=report.landlock_abi)


def _verdict_result(run: RunDir, job: JobSpec, report: SupervisorReport) -> JobResult:
    kind = _VERDICT_KINDS.get(report.verdict, ErrorKind.NO_RESULT)
    limits = report.limits
    text = advice.message(kind, phase=report.last_phase, minutes=limits.get("wall_seconds", job.wall_seconds) / 60,
                          seconds=limits.get("build_seconds", job.build_seconds), memory_mb=job.memory_mb,
                          quota_mb=int(limits.get("output_mb", job.isolation.output_mb)),
                          exit=report.exit_code if report.signal is None else f"signal {report.signal}")
    detail = None
    if kind is ErrorKind.NO_RESULT:
        tail = read_tail(run.path, RunDir.STDERR, 1500).strip()
        detail = tail or None
    return JobResult.failed(kind, text, detail=detail)


def _invalid(message: str, facts: Facts, notes: list[str], claims: JobResult | None = None) -> Ingested:
    base = claims or JobResult(outcome=Outcome.INVALID)
    return Ingested(result=base.model_copy(update={"outcome": Outcome.INVALID, "error_kind": ErrorKind.INVALID_RESULT,
                                                   "message": message[:2000]}), facts=facts, notes=notes)


def _contradiction(claims: JobResult, facts: Facts, job: JobSpec, report: SupervisorReport) -> str | None:
    """The first claim that facts refute, in words a participant and an instructor can check."""
    if facts.params is not None and claims.params != facts.params:
        return (f"the job reported {claims.params if claims.params is not None else 'no'} parameters, but its saved "
                f"weights hold {facts.params:,}")
    if job.epochs is not None and claims.epochs != job.epochs:
        return f"the job reported {claims.epochs} epochs; grader trained {job.epochs}"
    if job.batch_size is not None and claims.batch_size != job.batch_size:
        return f"the job reported batch size {claims.batch_size}; grader used {job.batch_size}"
    if len(claims.history) > (claims.epochs or 0):
        return f"the job reported {len(claims.history)} epochs of history for {claims.epochs} epochs of training"
    if claims.optimizer_steps is not None and claims.expected_steps is not None and \
            claims.optimizer_steps > claims.expected_steps:
        return (f"the optimizer took {claims.optimizer_steps:,} steps, more than the {claims.expected_steps:,} of "
                "grader's training: the model was trained elsewhere too")
    fit_claim = claims.timings.get("fit")
    if fit_claim is not None and fit_claim > report.wall_seconds + 1.0:
        return f"the job reported {fit_claim:.1f} s of training in a run that lasted {report.wall_seconds:.1f} s"
    if claims.n_predictions is not None and claims.n_predictions < 0:
        return "a negative prediction count"
    return None
