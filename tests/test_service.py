"""The service layer in-process (issue 9): submit, reconcile through every state, grade, read — in seconds.

A FakeBackend answers whatever scheduler state a test sets; `finish_run` leaves the files a supervised
job would. Everything else is real: the SQLite file, the run directories, ingestion from untrusted
files, the rubric, the cache, quotas, multi-seed groups and access rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fixtures import INSTRUCTOR, FakeBackend, finish_run, job_of, make_context, row, source

from grader.backends.base import JobState
from grader.errors import AccessError, NotFoundError, QuotaError, SubmissionError
from grader.outcomes import ErrorKind, Outcome
from grader.results import JobResult, Verdict
from grader.service import board, export, submissions
from grader.service.access import Actor
from grader.service.context import Context
from grader.service.limits import wall_limit
from grader.service.reconcile import reconcile
from grader.service.submit import submit_checked, submit_job
from grader.submission import check_source

ALICE = Actor(name="alice", instructor=False)
BOB = Actor(name="bob", instructor=False)


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> tuple[Context, FakeBackend]:
    """Every test on SQLite and on PostgreSQL (conftest.db_url)."""
    return make_context(tmp_path, db_url)


def submit(ctx: Context, actor: Actor, units: int = 16, tag: str = "a", **kw: object) -> int:
    src = source(units, tag)
    spec = ctx.catalog.get("mnist")
    receipt = submit_checked(ctx, actor, src, check_source(src, "model.py", spec), "model.py", exercise="mnist",
                             **kw)  # type: ignore[arg-type]
    return receipt.submission_id


def references(ctx: Context, fake: FakeBackend, accuracies: dict[str, float]) -> None:
    """Measure the references (as fake runs): their rows are queued by the first submission."""
    reconcile(ctx)
    for job_id, job in list(fake.started):
        name = next((n for n in accuracies if job.run_id and _reference_of(ctx, job_id) == n), None)
        if name is None:
            continue
        _, _, run_dir = job_of(ctx, _id(ctx, job_id))
        finish_run(ctx, run_dir, job, accuracy=accuracies[name], units=32 if name != "baseline" else 16)
        fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)


def _id(ctx: Context, job_id: str) -> int:
    from sqlalchemy import select

    from grader.db.engine import session_scope
    from grader.db.models import Submission

    with session_scope(ctx.reader) as session:
        return session.scalar(select(Submission.id).where(Submission.job_id == job_id)) or 0


def _reference_of(ctx: Context, job_id: str) -> str | None:
    from sqlalchemy import select

    from grader.db.engine import session_scope
    from grader.db.models import Submission

    with session_scope(ctx.reader) as session:
        return session.scalar(select(Submission.reference_name).where(Submission.job_id == job_id))


def finish(ctx: Context, fake: FakeBackend, sub_id: int, **kw: object) -> dict[str, object]:
    job_id, job, run_dir = job_of(ctx, sub_id)
    finish_run(ctx, run_dir, job, **kw)  # type: ignore[arg-type]
    fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    return row(ctx, sub_id)


# --- the state machine -------------------------------------------------------------------------

def test_queued_running_done(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    sid = submit(ctx, ALICE)
    job_id, job, _ = job_of(ctx, sid)
    assert row(ctx, sid)["state"] == "queued"
    assert job.epochs == 2 and job.batch_size == 64  # decided by the coordinator from TRAINING, statically
    assert job.isolation.landlock is True and job.build_seconds <= job.wall_seconds
    fake.set(job_id, JobState.RUNNING)
    reconcile(ctx)
    assert row(ctx, sid)["state"] == "running"
    got = finish(ctx, fake, sid, accuracy=0.8)
    assert got["state"] == "done" and got["reason"] is None and got["public"] == pytest.approx(0.8, abs=0.06)
    assert got["score"] is not None


def test_each_failure_has_its_reason_and_refund(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    cases = {
        "participant": ("failed", "participant_error", True),
        "timeout-supervisor": ("failed", "timeout", True),
        "oom-scheduler": ("failed", "out_of_memory", True),
        "infrastructure": ("failed", "infrastructure", False),
        "vanished": ("failed", "infrastructure", False),
        "cancelled": ("cancelled", "cancelled", False),
    }
    ids = {name: submit(ctx, ALICE, units=16 + i, tag=name) for i, name in enumerate(cases)}
    for name, sid in ids.items():
        job_id, job, run_dir = job_of(ctx, sid)
        if name == "participant":
            finish_run(ctx, run_dir, job, result=JobResult.failed(ErrorKind.FIT_ERROR, "error while training: boom"))
            fake.set(job_id, JobState.COMPLETED)
        elif name == "timeout-supervisor":
            finish_run(ctx, run_dir, job, verdict=Verdict.TIMEOUT)
            fake.set(job_id, JobState.COMPLETED)
        elif name == "oom-scheduler":
            fake.set(job_id, JobState.OUT_OF_MEMORY)
        elif name == "infrastructure":
            fake.set(job_id, JobState.FAILED, exit_code=1)
        elif name == "vanished":
            fake.set(job_id, JobState.VANISHED)
        else:
            fake.set(job_id, JobState.CANCELLED)
    report = reconcile(ctx)
    assert sorted(report.ingested) == sorted(ids.values())
    for name, (state, reason, counts) in cases.items():
        got = row(ctx, ids[name])
        assert (got["state"], got["reason"], got["counts"]) == (state, reason, counts), name
        assert got["result"] and got["message"], name
    assert "training did not finish within" in (row(ctx, ids["timeout-supervisor"])["message"] or "")
    assert "memory limit" in (row(ctx, ids["oom-scheduler"])["message"] or "")
    assert "does not count against your quota" in (row(ctx, ids["vanished"])["message"] or "")


def test_node_failure_is_requeued_once_from_the_coordinators_copy(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    sid = submit(ctx, ALICE)
    job_id, job, run_dir = job_of(ctx, sid)
    (Path(run_dir) / "job.json").chmod(0o644)
    (Path(run_dir) / "job.json").write_text('{"tampered": true}')  # a first attempt rewrote its job.json
    fake.set(job_id, JobState.NODE_FAIL)
    report = reconcile(ctx)
    assert report.requeued == [sid]
    second, resubmitted = fake.started[-1]
    assert second != job_id and resubmitted.wall_seconds == job.wall_seconds
    assert '"tampered"' not in (Path(run_dir) / "job.json").read_text()  # written again from the database's copy
    assert row(ctx, sid)["attempts"] == 1 and row(ctx, sid)["state"] == "queued"
    fake.set(second, JobState.NODE_FAIL)
    reconcile(ctx)
    assert (row(ctx, sid)["state"], row(ctx, sid)["reason"]) == ("failed", "infrastructure")


def test_one_unreadable_run_does_not_stop_the_others(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    bad, good = submit(ctx, ALICE, tag="bad"), submit(ctx, BOB, tag="good")
    for sid in (bad, good):
        job_id, job, run_dir = job_of(ctx, sid)
        finish_run(ctx, run_dir, job)
        fake.set(job_id, JobState.COMPLETED)
    _, _, bad_dir = job_of(ctx, bad)
    (Path(bad_dir) / "output" / "result.json").write_bytes(b'{"outcome": "ok", "params": ' + b"9" * 4400 + b"}")
    reconcile(ctx)
    assert row(ctx, bad)["state"] == "failed" and "integer with 4400 digits" in (row(ctx, bad)["message"] or "")
    assert row(ctx, good)["state"] == "done"


def test_a_forged_parameter_count_is_invalid(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    sid = submit(ctx, ALICE, units=64)
    got = finish(ctx, fake, sid, units=64, result=None)
    assert got["state"] == "done"  # honest: the claim matches the weights
    sid2 = submit(ctx, ALICE, units=65)
    job_id, job, run_dir = job_of(ctx, sid2)
    finish_run(ctx, run_dir, job, units=3000, claimed_units=65)  # weights of a far bigger model than claimed
    fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    assert row(ctx, sid2)["state"] == "failed"
    assert "saved weights hold" in (row(ctx, sid2)["message"] or "")


def test_ingest_is_exactly_once(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    sid = submit(ctx, ALICE)
    finish(ctx, fake, sid)
    assert reconcile(ctx).ingested == []  # nothing active any more
    from sqlalchemy import func, select

    from grader.db.engine import session_scope
    from grader.db.models import Result

    with session_scope(ctx.reader) as session:
        assert session.scalar(select(func.count()).select_from(Result).where(Result.submission_id == sid)) == 1


# --- cache, quotas, access -----------------------------------------------------------------------

def test_identical_resubmission_is_answered_from_the_cache(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    first = submit(ctx, ALICE)
    finish(ctx, fake, first)
    started = len(fake.started)
    again = submit(ctx, BOB)
    assert len(fake.started) == started  # no new job
    assert row(ctx, again)["state"] == "done" and row(ctx, again)["public"] == row(ctx, first)["public"]


def test_quota_refuses_and_refunds(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    ctx.settings.quota_per_window = 1
    sid = submit(ctx, ALICE, tag="q1")
    with pytest.raises(QuotaError, match="used all 1 submissions"):
        submit(ctx, ALICE, tag="q2")
    fake.set(job_of(ctx, sid)[0], JobState.CANCELLED)
    reconcile(ctx)
    submit(ctx, ALICE, tag="q3")  # a cancelled job is refunded


def test_participants_see_only_their_own(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    mine = submit(ctx, ALICE)
    finish(ctx, fake, mine)
    with pytest.raises(NotFoundError):
        submissions.show(ctx, BOB, mine)
    with pytest.raises(NotFoundError):
        submissions.cancel(ctx, BOB, mine)
    with pytest.raises(AccessError):
        submissions.status(ctx, BOB, student="alice")
    with pytest.raises(AccessError):
        board.leaderboard(ctx, BOB, exercise="mnist", private=True)
    with pytest.raises(AccessError):
        export.export_grades(ctx, BOB, exercise="mnist")
    with pytest.raises(AccessError):
        submit(ctx, BOB, tag="for-alice", student="alice")
    with pytest.raises(AccessError):
        submit(ctx, BOB, tag="seeds", seeds=3)
    detail = submissions.show(ctx, ALICE, mine)
    assert detail.run_dir is None and detail.metrics is not None
    assert detail.metrics.private_accuracy == 0.0 and detail.metrics.n_heldout == detail.metrics.public.n  # type: ignore[union-attr]
    assert submissions.show(ctx, INSTRUCTOR, mine).run_dir is not None


def test_reads_only_read(env: tuple[Context, FakeBackend]) -> None:
    """status/show/history/leaderboard never reconcile: a finished job stays unrecorded until something does."""
    ctx, fake = env
    sid = submit(ctx, ALICE)
    job_id, job, run_dir = job_of(ctx, sid)
    finish_run(ctx, run_dir, job)
    fake.set(job_id, JobState.COMPLETED)
    submissions.status(ctx, ALICE)
    submissions.show(ctx, ALICE, sid)
    submissions.history(ctx, ALICE)
    board.leaderboard(ctx, ALICE, exercise="mnist")
    assert row(ctx, sid)["state"] == "queued"
    reconcile(ctx)
    assert row(ctx, sid)["state"] == "done"


# --- multi-seed groups --------------------------------------------------------------------------

def test_three_seeds_give_mean_and_std_and_reuse_stored_runs(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    single = submit(ctx, ALICE)
    finish(ctx, fake, single, accuracy=0.80)
    started = len(fake.started)
    group = submit(ctx, INSTRUCTOR, student="alice", seeds=3)
    assert len(fake.started) == started + 2, "the exercise's own seed was answered from the stored run"
    for (job_id, job), acc in zip(fake.started[-2:], (0.84, 0.76), strict=True):
        finish_run(ctx, job_of(ctx, _id(ctx, job_id))[2], job, accuracy=acc)
        fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    detail = submissions.show(ctx, INSTRUCTOR, group)
    assert detail.status.state.value == "done" and detail.status.seeds == [42, 43, 44]
    assert detail.status.public_std is not None and detail.status.public_std > 0
    assert len(detail.seed_runs) == 3
    started = len(fake.started)
    again = submit(ctx, INSTRUCTOR, student="alice", seeds=3)
    assert len(fake.started) == started, "a second run of the same is answered from stored results"
    assert submissions.show(ctx, INSTRUCTOR, again).status.public_std == pytest.approx(detail.status.public_std)


def test_seed_group_out_of_range(env: tuple[Context, FakeBackend]) -> None:
    ctx, _ = env
    with pytest.raises(SubmissionError, match="between 1 and 10"):
        submit(ctx, INSTRUCTOR, seeds=11)


def test_submit_job_records_the_coordinators_spec(env: tuple[Context, FakeBackend]) -> None:
    ctx, _ = env
    src = source(8, "spec")
    spec = ctx.catalog.get("mnist")
    receipt = submit_job(ctx, src, check_source(src, "m.py", spec), spec, "smoke", "alice", filename="m.py")
    _, job, run_dir = job_of(ctx, receipt.submission_id)
    assert job.exercise.heldout == spec.heldout  # the database keeps the real split ...
    on_disk = (Path(run_dir) / "job.json").read_text()
    assert str(spec.heldout.split_seed) not in on_disk  # ... the job never learns it
    assert (Path(run_dir) / "job.json").stat().st_mode & 0o222 == 0  # read-only


def test_outcome_of_a_result_without_weights(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    sid = submit(ctx, ALICE)
    job_id, job, run_dir = job_of(ctx, sid)
    finish_run(ctx, run_dir, job)
    (Path(run_dir) / "output" / "weights.npz").unlink()
    fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    got = row(ctx, sid)
    assert got["state"] == "failed" and "weights cannot be checked" in (got["message"] or "")
    assert Outcome.INVALID.value in str(got["grade"]) or got["score"] is not None


def test_equal_accuracies_share_a_rank(env: tuple[Context, FakeBackend]) -> None:
    ctx, fake = env
    carol = Actor(name="carol", instructor=False)
    for who, tag, accuracy in ((ALICE, "t1", 0.8), (BOB, "t2", 0.8), (carol, "t3", 0.5)):
        finish(ctx, fake, submit(ctx, who, tag=tag), accuracy=accuracy)
    rows = [r for r in board.leaderboard(ctx, INSTRUCTOR, exercise="mnist").rows if r.rank is not None]
    assert [r.rank for r in rows] == [1, 1, 3]
    assert rows[1].within_noise and rows[0].accuracy == rows[1].accuracy


def test_grades_made_before_every_reference_ran_are_regraded_when_they_land(
        env: tuple[Context, FakeBackend]) -> None:
    """The baseline graded alone compared itself with itself (full marks for 'approaches the best')."""
    ctx, fake = env
    first = submit(ctx, ALICE, tag="r1")
    references(ctx, fake, {"baseline": 0.7})
    baseline_id = _reference_row(ctx, "baseline")
    alone = row(ctx, baseline_id)
    assert alone["grade"]["references"] == {"baseline": alone["public"]}
    finish(ctx, fake, first, accuracy=0.7)
    assert row(ctx, first)["score"] == alone["score"]
    references(ctx, fake, {"cnn_bn": 0.95})
    cnn_bn = _reference_row(ctx, "cnn_bn")
    regraded = row(ctx, baseline_id)
    assert regraded["grade"]["references"] == {"baseline": alone["public"], "cnn_bn": row(ctx, cnn_bn)["public"]}
    assert regraded["score"] < alone["score"]
    assert row(ctx, first)["score"] == regraded["score"]  # same accuracy, same references, same grade


def _reference_row(ctx: Context, name: str) -> int:
    from sqlalchemy import select

    from grader.db.engine import session_scope
    from grader.db.models import Submission

    with session_scope(ctx.reader) as session:
        return session.scalar(select(Submission.id).where(Submission.reference_name == name)) or 0


def test_time_limit_derives_from_the_slowest_reference(env: tuple[Context, FakeBackend]) -> None:
    """A stuck submission holds the queue for a few reference-lengths, not the profile's 15 minutes."""
    ctx, fake = env
    ctx.settings.wall_floor_seconds = 10
    first = submit(ctx, ALICE, tag="l1")
    assert job_of(ctx, first)[1].wall_seconds == 900  # references not measured yet: the profile's ceiling
    references(ctx, fake, {"baseline": 0.7})  # each reference's job took 5 s
    sid = submit(ctx, BOB, tag="l2")
    job = job_of(ctx, sid)[1]
    assert job.wall_seconds == 25 and job.build_seconds <= 25
    assert job.wall_basis is not None and job.wall_basis.startswith("5× the slowest reference (baseline: 5 s")
    limit = submissions.show(ctx, BOB, sid).time_limit
    assert limit is not None and limit.startswith("25 s (5× the slowest reference")
    ctx.settings.wall_floor_seconds = 90
    assert job_of(ctx, submit(ctx, BOB, tag="l3"))[1].wall_seconds == 90  # the floor
    spec = ctx.catalog.get("mnist")
    fixed = spec.model_copy(update={"profiles": {**spec.profiles, "smoke": spec.profile("smoke").model_copy(
        update={"wall_seconds": 42})}})
    assert wall_limit(ctx, fixed, "smoke", "fake", 2).seconds == 42  # exercise.toml's override wins
