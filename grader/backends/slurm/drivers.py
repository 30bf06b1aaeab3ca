"""Slurm drivers behind one interface: the CLI tools (any Slurm) and pyslurm (Slurm's C API), and the choice."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from grader.backends.slurm.builders import sbatch_arguments
from grader.backends.slurm.versions import (
    decide_driver,
    installed_pyslurm_version,
    installed_slurm_version,
    slurm_config_path,
)
from grader.errors import BackendError
from grader.settings import Settings

COMMAND_TIMEOUT_S = 30.0


class SchedulerError(BackendError):
    """Slurm could not be asked (command failed, controller down, pyslurm RPC error)."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as the scheduler reports it; both drivers produce this, so state mapping is shared."""

    job_id: str
    state: str  # Slurm's base state name, e.g. "PENDING", "OUT_OF_MEMORY"
    reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    name: str | None = None
    partition: str | None = None
    priority: int | None = None
    submit_time: int | None = None
    time_limit: int | None = None  # minutes
    cpus: int | None = None
    memory_mb: int | None = None
    gres: str | None = None  # requested per node, e.g. "gpu:1"
    gpus: str | None = None  # allocated GPU indices, e.g. "0" or "0-1"


class SlurmDriver(ABC):
    """The few scheduler operations the backend needs; one implementation per way of talking to Slurm."""

    name: str = "driver"

    @abstractmethod
    def submit(self, description: Mapping[str, Any], script: str) -> str:
        """Submit the script with the resources in `description`; return the job id."""

    @abstractmethod
    def jobs(self) -> dict[str, SlurmJob]:
        """Every job the controller knows (one query), keyed by job id."""

    @abstractmethod
    def job(self, job_id: str) -> SlurmJob | None:
        """One job, including recently finished ones; None when the scheduler no longer knows it."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Cancel a job; a finished or unknown job is not an error."""


def _unwrap(value: Any) -> Any:
    """Newer Slurm JSON wraps numbers as {"set": .., "infinite": .., "number": ..}; 22.05 does not."""
    if isinstance(value, dict) and "number" in value:
        return None if value.get("infinite") or not value.get("set", True) else value["number"]
    return value


def _gpu_indices(gres_detail: Iterable[str]) -> str | None:
    """GPU indices from Slurm's GRES detail: "gpu:1(IDX:0)"; for shards "shard:2(IDX:0)" (22.05) or
    "shard:2(2/4,0/4)" (25.11: shards used/configured on each GPU in turn)."""
    found = []
    for item in gres_detail:
        if m := re.search(r"(?:gpu|shard)[^(]*\(IDX:([^)]*)\)", item):
            found.append(m.group(1))
        elif m := re.search(r"shard[^(]*\(((?:\d+/\d+,?)+)\)", item):
            found += [str(i) for i, used in enumerate(m.group(1).split(",")) if used.split("/")[0] != "0"]
    return ",".join(found) or None


def gres_name(name: str) -> str:
    """Slurm spells a GRES "gpu", "gres:gpu" (22.05) or "gres/gpu" (23.02+, pyslurm 25.11): keep "gpu"."""
    return re.sub(r"^gres[:/]", "", name)


def _memory_mb(text: str | None) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text or "")
    if not m:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return round(float(m.group(1)) * scale)


def _minutes(text: str | None) -> int | None:
    """Slurm durations: [days-]hours:minutes:seconds, or UNLIMITED."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text or "")
    if not m:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _job_from_squeue(raw: Mapping[str, Any]) -> SlurmJob:
    state = raw.get("job_state")
    state = state[0] if isinstance(state, list) and state else state
    exit_raw = raw.get("exit_code")
    exit_code = signal = None
    if isinstance(exit_raw, dict):  # 23.02+
        exit_code = _unwrap(exit_raw.get("return_code"))
        raw_signal = exit_raw.get("signal") or {}
        signal = _unwrap(raw_signal.get("id") or raw_signal.get("signal_id")) or None  # 23.11+ / 23.02
    elif isinstance(exit_raw, int):  # 22.05: the raw wait status
        if os.WIFSIGNALED(exit_raw):
            exit_code, signal = 0, os.WTERMSIG(exit_raw)
        else:
            exit_code = os.WEXITSTATUS(exit_raw)
    gres = str(raw.get("tres_per_node") or "") or None
    return SlurmJob(
        job_id=str(raw["job_id"]),
        state=str(state or "UNKNOWN"),
        reason=raw.get("state_reason"),
        exit_code=exit_code,
        signal=signal,
        name=raw.get("name"),
        partition=raw.get("partition"),
        priority=_unwrap(raw.get("priority")),
        submit_time=_unwrap(raw.get("submit_time")),
        time_limit=_unwrap(raw.get("time_limit")),
        cpus=_unwrap(raw.get("cpus")),
        memory_mb=_unwrap(raw.get("memory_per_node")),
        gres=",".join(gres_name(item) for item in gres.split(",")) if gres else None,
        gpus=_gpu_indices(raw.get("gres_detail") or []),
    )


_SCONTROL_KEYS = re.compile(
    r"(?:^|\s)(JobId|JobName|JobState|Reason|ExitCode|Priority|SubmitTime|TimeLimit|Partition|NumCPUs"
    r"|MinMemoryNode|MinMemoryCPU|TresPerNode|GRES)=(\S*)"
)


def parse_scontrol_job(text: str) -> SlurmJob:
    """One `scontrol show job -o -d` line; values may hold spaces, so only the fields we need are read."""
    fields: dict[str, str] = {}
    for key, value in _SCONTROL_KEYS.findall(text):
        fields.setdefault(key, value)
    code, _, sig = fields.get("ExitCode", "").partition(":")
    cpus = int(fields["NumCPUs"]) if fields.get("NumCPUs", "").isdigit() else None
    memory = _memory_mb(fields.get("MinMemoryNode"))
    if memory is None and (per_cpu := _memory_mb(fields.get("MinMemoryCPU"))) is not None:
        memory = per_cpu * (cpus or 1)
    submit = fields.get("SubmitTime", "")
    tres = fields.get("TresPerNode", "")
    return SlurmJob(
        job_id=fields.get("JobId", ""),
        state=fields.get("JobState", "UNKNOWN"),
        reason=fields.get("Reason"),
        exit_code=int(code) if code.isdigit() else None,
        signal=int(sig) if sig.isdigit() and int(sig) else None,
        name=fields.get("JobName"),
        partition=fields.get("Partition"),
        priority=int(fields["Priority"]) if fields.get("Priority", "").isdigit() else None,
        submit_time=int(datetime.fromisoformat(submit).timestamp()) if re.match(r"\d{4}-", submit) else None,
        time_limit=_minutes(fields.get("TimeLimit")),
        cpus=cpus,
        memory_mb=memory,
        gres=",".join(gres_name(item) for item in tres.split(",")) if tres and tres != "(null)" else None,
        gpus=_gpu_indices([fields.get("GRES", "")]),
    )


class CliDriver(SlurmDriver):
    """sbatch/squeue/scontrol/scancel (and sacct where accounting exists): works with any Slurm version."""

    name = "cli"

    def __init__(self, timeout: float = COMMAND_TIMEOUT_S, env: Mapping[str, str] | None = None) -> None:
        """`env` overrides this process's environment for the tools (e.g. SLURM_CONF and PATH of one cluster)."""
        self.timeout = timeout
        self.env = dict(env or {})
        self._accounting: bool | None = None

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "SLURM_TIME_FORMAT": "standard"}  # the tools are found on env's PATH
        try:
            return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=self.timeout, env=env, check=False)
        except FileNotFoundError:
            raise SchedulerError(f"{args[0]} is not installed (or not on PATH)") from None
        except subprocess.TimeoutExpired:
            raise SchedulerError(f"{args[0]} did not answer within {self.timeout:.0f} s") from None

    def _check(self, args: list[str], stdin: str | None = None) -> str:
        proc = self._run(args, stdin)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-600:]
            raise SchedulerError(f"{args[0]} failed (exit {proc.returncode}): {detail}")
        return proc.stdout

    def submit(self, description: Mapping[str, Any], script: str) -> str:
        out = self._check(["sbatch", "--parsable", *sbatch_arguments(description)], stdin=script).strip()
        job_id = out.splitlines()[-1].split(";")[0] if out else ""
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch printed no job id: {out[-200:]!r}")
        return job_id

    def jobs(self) -> dict[str, SlurmJob]:
        # Slurm 22.05 ignores every filter with --json (--jobs included), so ask for all and filter here.
        out = self._check(["squeue", "--json", "--states=all"])
        try:
            data = json.loads(out)
            raw_jobs, errors = data.get("jobs", []), data.get("errors", [])
        except (json.JSONDecodeError, AttributeError) as exc:
            raise SchedulerError(f"squeue --json printed something that is not JSON: {exc}") from None
        if errors:  # e.g. slurmctld down: squeue exits 0 with an empty job list and an error entry
            detail = "; ".join(f"{e.get('source', '?')}: {e.get('description') or e.get('error')}" for e in errors)
            raise SchedulerError(f"squeue --json reported: {detail}")
        return {str(raw["job_id"]): _job_from_squeue(raw) for raw in raw_jobs if "job_id" in raw}

    def job(self, job_id: str) -> SlurmJob | None:
        proc = self._run(["scontrol", "show", "job", "-o", "-d", job_id])
        if proc.returncode == 0 and "JobId=" in proc.stdout:
            return parse_scontrol_job(proc.stdout.strip().splitlines()[0])
        if "Invalid job id" not in proc.stderr:
            raise SchedulerError(f"scontrol show job {job_id} failed: {proc.stderr.strip()[-600:]}")
        return self._from_accounting(job_id) if self.accounting else None

    @property
    def accounting(self) -> bool:
        """sacct only answers where slurmdbd runs; asking anyway just yields an error."""
        if self._accounting is None:
            try:
                config = self._check(["scontrol", "show", "config"])
            except SchedulerError:
                return False
            m = re.search(r"^AccountingStorageType\s*=\s*(\S+)", config, re.M)
            # no accounting: "accounting_storage/none" (22.05) or "(null)" (25.11)
            self._accounting = bool(m and m.group(1) not in ("accounting_storage/none", "(null)", "none"))
        return self._accounting

    def _from_accounting(self, job_id: str) -> SlurmJob | None:
        fields = "JobID,JobName,State,ExitCode,Reason,Timelimit,Partition,NCPUS,ReqMem"
        out = self._check(["sacct", "-n", "-P", "-X", "-j", job_id, f"--format={fields}"])
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) == 9 and parts[0] == job_id:
                code, _, sig = parts[3].partition(":")
                return SlurmJob(
                    job_id=job_id,
                    name=parts[1],
                    state=parts[2].split()[0] if parts[2] else "UNKNOWN",  # "CANCELLED by 0"
                    exit_code=int(code) if code.isdigit() else None,
                    signal=int(sig) if sig.isdigit() and int(sig) else None,
                    reason=parts[4] or None,
                    time_limit=_minutes(parts[5]),
                    partition=parts[6] or None,
                    cpus=int(parts[7]) if parts[7].isdigit() else None,
                    memory_mb=_memory_mb(parts[8].rstrip("nc")),
                )
        return None

    def cancel(self, job_id: str) -> None:
        proc = self._run(["scancel", job_id])
        if proc.returncode != 0 and not re.search(r"already|Invalid job id", proc.stderr):
            raise SchedulerError(f"scancel {job_id} failed: {proc.stderr.strip()[-600:]}")


class PyslurmDriver(SlurmDriver):
    """pyslurm's Python API (one RPC per poll, no process spawns); needs pyslurm built for this Slurm."""

    name = "pyslurm"

    def __init__(self, module: ModuleType | None = None) -> None:
        if module is None:
            if slurm_config_path() is None:
                # libslurm calls fatal() (exit 1) when it finds no configuration: never import blind.
                raise BackendError(
                    "pyslurm needs a Slurm configuration (SLURM_CONF or /etc/slurm/slurm.conf); "
                    "importing it without one would end this process"
                )
            import pyslurm  # only here, only after the check above

            module = pyslurm
        self.pyslurm = module

    def _rpc(self, what: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except self.pyslurm.RPCError as exc:
            raise SchedulerError(f"pyslurm {what}: {exc}") from None

    def submit(self, description: Mapping[str, Any], script: str) -> str:
        submission = self.pyslurm.JobSubmitDescription(script=script, **description)
        return str(self._rpc("submit", submission.submit))

    def jobs(self) -> dict[str, SlurmJob]:
        loaded = self._rpc("Jobs.load", self.pyslurm.Jobs.load)
        return {str(job.id): self._convert(job) for job in loaded.values()}

    def job(self, job_id: str) -> SlurmJob | None:
        try:
            return self._convert(self.pyslurm.Job.load(int(job_id)))
        except self.pyslurm.RPCError as exc:
            if "Invalid job id" in str(exc):
                return None
            raise SchedulerError(f"pyslurm Job.load({job_id}): {exc}") from None

    def cancel(self, job_id: str) -> None:
        self._rpc("cancel", self.pyslurm.Job(int(job_id)).cancel)  # pyslurm ignores finished jobs

    @staticmethod
    def _convert(job: Any) -> SlurmJob:
        # pyslurm 25.11 reads gres_per_node back as {"gres/gpu": 1}; requests say "gpu:1"
        gres = ",".join(f"{gres_name(name)}:{count}" for name, count in (job.gres_per_node or {}).items()) or None
        gpus = []
        if job.state == "RUNNING":
            # Only a detail for `grader status`: a layout pyslurm cannot build must not fail the poll.
            with contextlib.suppress(Exception):
                for node in (job.get_resource_layout_per_node() or {}).values():
                    for name, detail in (node.get("gres") or {}).items():
                        if name.split(":")[0] == "gpu" and isinstance(detail, dict) and detail.get("indexes"):
                            gpus.append(str(detail["indexes"]))
        return SlurmJob(
            job_id=str(job.id),
            state=job.state,
            reason=job.state_reason,
            exit_code=job.exit_code,
            signal=job.exit_code_signal or None,
            name=job.name,
            partition=job.partition,
            priority=job.priority,
            submit_time=job.submit_time,
            time_limit=job.time_limit,
            cpus=job.cpus,
            memory_mb=job.memory,
            gres=gres,
            gpus=",".join(gpus) or None,
        )


def make_driver(settings: Settings) -> tuple[SlurmDriver, str]:
    """The driver settings.slurm_driver asks for, and why it was chosen."""
    name, why = decide_driver(
        settings.slurm_driver,
        config=slurm_config_path(),
        pyslurm_version=installed_pyslurm_version() if settings.slurm_driver != "cli" else None,
        slurm_version=installed_slurm_version() if settings.slurm_driver != "cli" else None,
    )
    return (PyslurmDriver() if name == "pyslurm" else CliDriver()), why
