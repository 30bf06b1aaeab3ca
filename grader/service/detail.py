"""`show`'s models: one submission's full feedback (grader.service.submissions builds it).

Apart from grader.service.submissions because of what they import: the rubric's Score, the Metrics, the
job's claims and the supervisor's facts. `grader status` needs none of them; `grader show` does.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from grader.grading import Score
from grader.results import Facts, JobResult
from grader.scoring import Metrics
from grader.service.states import State
from grader.service.submissions import StatusRow


class SeedRun(BaseModel):
    id: int
    seed: int
    state: State
    public_accuracy: float | None


class SubmissionDetail(BaseModel):
    status: StatusRow
    grade: Score | None = None
    metrics: Metrics | None = Field(default=None, description="Public-half figures unless the viewer may see more.")
    result: JobResult | None = Field(default=None, description="What the job reported (claims).")
    facts: Facts | None = Field(default=None, description="What grader measured itself.")
    notes: list[str] = Field(default_factory=list)
    spec_changed: bool = Field(default=False, description="The exercise file changed since this was graded.")
    seed_runs: list[SeedRun] = Field(default_factory=list)
    run_dir: str | None = Field(default=None, description="Instructors only.")
    time_limit: str | None = Field(default=None, description="The job's time limit and what it is based on.")
