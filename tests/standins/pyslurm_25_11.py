"""Stand-in for the part of pyslurm 25.11's job API that grader uses, backed by local processes (tests only).

The pyslurm driver is tested against the real pyslurm 25.11.2 on a real Slurm 25.11 cluster
(tests/test_slurm_drivers.py). This stand-in remains for what a one-node development cluster cannot
produce: a preempted job and a job the controller has forgotten (`CONTROLLER.preempt(id)`,
`CONTROLLER.forget(id)`). It keeps pyslurm 25.11's names, signatures, attribute names, units and
state strings, as checked against pyslurm 25.11.2:

- `JobSubmitDescription(**attrs)` accepts only its documented attributes (anything else is an
  AttributeError, like the Cython class) and `.submit()` returns the new job id as an int;
  `time_limit` is minutes (int) or "[days-]HH:MM:SS" (a digit-only string is a TypeError, as in
  pyslurm), memory is MiB, `gres_per_node` is "gpu:N" or {"gpu": N};
- `Jobs.load()` is a multi-cluster collection (`.values()` yields `Job`s of every cluster);
- `Job.load(id)` raises `RPCError` "Invalid job id specified" for ids the controller forgot;
- `Job(id).cancel()` ignores finished jobs;
- `Job` properties: `state` ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED",
  "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"), `state_reason` ("None", "Resources", "Priority",
  "NonZeroExitCode", "OutOfMemory", "TimeLimit", "NodeDown"), `exit_code`, `exit_code_signal`,
  `time_limit` (minutes), `memory` (MiB), `cpus`, `gres_per_node` ({"gres/gpu": 1}: the real pyslurm
  reads a request of "gpu:1" back with the "gres/" prefix), `state_reason` None while running, `priority`,
  `submit_time`, `get_resource_layout_per_node()` ({node: {"gres": {"gpu": {"count", "indexes"}}}}).

Behind the API a tiny controller runs each batch script as a local process with Slurm's job
environment (SLURM_JOB_ID, SLURM_JOB_GPUS, CUDA_VISIBLE_DEVICES, ...), writes its output where
`standard_output` says (with %j/%x/%% expanded), schedules pending jobs by priority within the
node's CPUs, memory and GPUs, and enforces the time limit (one "minute" lasts
`CONTROLLER.seconds_per_minute` seconds) and the memory limit (resident memory of the job's
processes). Tests drive what a real cluster does by itself with `CONTROLLER.fail_node()`,
`CONTROLLER.preempt(id)`, `CONTROLLER.forget(id)` and `CONTROLLER.outage`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__version__ = "25.11.2"

ESLURM_INVALID_PARTITION_NAME = 2000
ESLURM_INVALID_JOB_ID = 2017
SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR = 1007
NODE = "standin-node"
_signals = signal  # Job.send_signal's parameter is named `signal`, as in pyslurm


def version() -> str:
    return __version__


class settings:  # pyslurm.settings is a module; a class gives the same attribute access
    LOCAL_CLUSTER = "standin"


class RPCError(Exception):
    """pyslurm.RPCError: `errno` and `msg` as Slurm's slurm_strerror() words them."""

    def __init__(self, errno: int = -1, msg: str | None = None) -> None:
        self.errno = errno
        self.msg = msg or f"Slurm error {errno}"
        super().__init__(self.msg)


_SUBMIT_ATTRIBUTES = frozenset(  # JobSubmitDescription's documented attributes
    """
    name account user_id group_id priority site_factor wckey array batch_constraints begin_time clusters
    cluster_constraints comment admin_comment requires_contiguous_nodes cores_reserved_for_system
    threads_reserved_for_system working_directory cpu_frequency nodes deadline delay_boot_time
    dependencies excluded_nodes required_nodes constraints kill_on_node_fail licenses mail_user
    mail_types mcs_label memory_per_cpu memory_per_node memory_per_gpu network nice log_files_open_mode
    overcommit partitions profile_types accounting_gather_frequency qos requires_node_reboot
    is_requeueable reservations script script_args environment resource_sharing distribution time_limit
    time_limit_min container container_id cpus_per_task cpus_per_gpu sockets_per_node cores_per_socket
    threads_per_core gpus gpus_per_socket gpus_per_task gres_per_node gpu_binding ntasks ntasks_per_node
    ntasks_per_socket ntasks_per_core ntasks_per_gpu switches signal standard_in standard_output
    standard_error kill_on_invalid_dependency spreads_over_nodes use_min_nodes gres_binding
    gres_tasks_per_sharing temporary_disk_per_node get_user_environment min_cpus_per_node wait_all_nodes
    selinux_context segment_size reserved_ports extra
    """.split()  # noqa: SIM905
)


class JobSubmitDescription:
    """pyslurm.JobSubmitDescription: attributes named like sbatch's options, `submit()` → job id."""

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in _SUBMIT_ATTRIBUTES:
            raise AttributeError(f"'pyslurm.core.job.submission.JobSubmitDescription' object has no attribute '{key}'")
        object.__setattr__(self, key, value)

    def __getattr__(self, key: str) -> Any:
        if key in _SUBMIT_ATTRIBUTES:
            return None
        raise AttributeError(key)

    def submit(self) -> int:
        return CONTROLLER.submit(self)


def _minutes(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        raise TypeError("time_limit: a digit-only string is not a valid time, use an int (minutes) or 'HH:MM:SS'")
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+):(\d+)", str(value))
    if not m:
        raise ValueError(f"Invalid Time Specification: {value}")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _mebibytes(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)([KMGT]?)", str(value).upper())
    if not m:
        raise ValueError(f"Invalid memory specification: {value}")
    return int(m.group(1)) * {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}[m.group(2)] // 1024


def _gres(value: Any) -> dict[str, int]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items()}
    out = {}
    for item in str(value).replace("gres:", "").split(","):
        name, count = item.rsplit(":", 1)
        out[name] = int(count)
    return out


@dataclass
class _Record:
    id: int
    desc: dict[str, Any]
    script: str
    submit_time: int
    priority: int
    state: str = "PENDING"
    reason: str = "None"
    exit_code: int = 0
    exit_signal: int = 0
    start_time: int = 0
    end_time: int = 0
    started: float = 0.0
    gpu_indexes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    ending: str | None = None  # the state to report once the killed process is gone

    @property
    def cpus(self) -> int:
        return int(self.desc.get("cpus_per_task") or 1) * int(self.desc.get("ntasks") or 1)

    @property
    def memory(self) -> int:
        return self.desc["memory_per_node"] or 1024 * self.cpus  # DefMemPerCPU=1024

    @property
    def gpus(self) -> int:
        return sum(n for name, n in self.desc["gres_per_node"].items() if name.split(":")[0] == "gpu")


class _Controller:
    """slurmctld + slurmd in one object: one node, partition `debug`, local processes as jobs."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.spool = Path(tempfile.mkdtemp(prefix="pyslurm-standin-"))
        self.reset()
        self._watcher: threading.Thread | None = None

    def reset(self, *, cpus: int = 8, gpus: int = 2, memory_mb: int = 16000, seconds_per_minute: float = 60.0) -> None:
        """Forget every job (killing what still runs) and set the node's size and the length of a minute."""
        with getattr(self, "lock", threading.RLock()):
            for record in getattr(self, "records", {}).values():
                self._kill(record, signal.SIGKILL)
            self.records: dict[int, _Record] = {}
            self.next_id = 1
            self.cpus, self.gpus, self.memory_mb = cpus, gpus, memory_mb
            self.seconds_per_minute = seconds_per_minute
            self.partitions = {"debug"}
            self.outage = False  # True: every RPC fails as if slurmctld were down

    # -- RPCs ---------------------------------------------------------------------------------
    def _rpc(self) -> None:
        if self.outage:
            raise RPCError(SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR, "Unable to contact slurm controller (connect failure)")

    def submit(self, desc: JobSubmitDescription) -> int:
        self._rpc()
        attrs = {key: getattr(desc, key) for key in _SUBMIT_ATTRIBUTES}
        if not attrs["script"]:
            raise ValueError("You need to provide a batch script.")
        if sum(attrs[k] is not None for k in ("memory_per_node", "memory_per_cpu", "memory_per_gpu")) > 1:
            raise ValueError("Only one of memory_per_cpu, memory_per_node or memory_per_gpu can be set.")
        script = str(attrs["script"])
        if "\n" not in script and Path(script).is_file():
            script = Path(script).read_text()
        partition = attrs["partitions"] or "debug"
        partition = partition if isinstance(partition, str) else ",".join(partition)
        if partition not in self.partitions:
            raise RPCError(ESLURM_INVALID_PARTITION_NAME, "Invalid partition name specified")
        attrs.update(
            partitions=partition,
            time_limit=_minutes(attrs["time_limit"]),
            memory_per_node=_mebibytes(attrs["memory_per_node"]),
            gres_per_node=_gres(attrs["gres_per_node"]),
            working_directory=attrs["working_directory"] or os.getcwd(),
        )
        with self.lock:
            job_id = self.next_id
            self.next_id += 1
            self.records[job_id] = _Record(job_id, attrs, script, submit_time=int(time.time()), priority=4294901760 - job_id)
            self._schedule()
        self._ensure_watcher()
        return job_id

    def snapshot(self, job_id: int | None = None) -> list[Job]:
        self._rpc()
        with self.lock:
            self._tick()
            if job_id is None:
                return [Job._from_record(r) for r in self.records.values()]
            if job_id not in self.records:
                raise RPCError(ESLURM_INVALID_JOB_ID, "Invalid job id specified")
            return [Job._from_record(self.records[job_id])]

    def signal(self, job_id: int, signum: int) -> None:
        self._rpc()
        with self.lock:
            record = self.records.get(job_id)
            if record is None:
                if signum == signal.SIGKILL:
                    return  # pyslurm ignores an already purged job for SIGKILL
                raise RPCError(ESLURM_INVALID_JOB_ID, "Invalid job id specified")
            if record.state == "PENDING":
                self._finish(record, "CANCELLED", "None", 0, 0)
            elif record.state == "RUNNING":
                record.ending = "CANCELLED"
                self._kill(record, signal.SIGTERM)

    # -- what a real cluster does on its own, triggered by tests -------------------------------
    def fail_node(self) -> None:
        """The node stops answering: its running jobs end as NODE_FAIL (no requeue: not requeueable)."""
        with self.lock:
            for record in self.records.values():
                if record.state == "RUNNING":
                    record.ending = "NODE_FAIL"
                    self._kill(record, signal.SIGKILL)

    def preempt(self, job_id: int) -> None:
        with self.lock:
            record = self.records[job_id]
            record.ending = "PREEMPTED"
            self._kill(record, signal.SIGTERM)

    def forget(self, job_id: int) -> None:
        """MinJobAge has passed: the controller no longer knows the job."""
        with self.lock:
            self.records.pop(job_id, None)

    # -- scheduling and process supervision ---------------------------------------------------
    def _ensure_watcher(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch, name="pyslurm-standin", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.05)
            with self.lock:
                self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        for record in self.records.values():
            if record.state != "RUNNING" or record.proc is None:
                continue
            code = record.proc.poll()
            if code is not None:
                self._reap(record, code)
            elif record.ending is None:
                limit = record.desc["time_limit"]
                if limit is not None and now - record.started > limit * self.seconds_per_minute:
                    record.ending = "TIMEOUT"
                    self._kill(record, signal.SIGTERM)
                elif _resident_mb(record.proc.pid) > record.memory:
                    record.ending = "OUT_OF_MEMORY"
                    self._kill(record, signal.SIGKILL)
        self._schedule()

    def _reap(self, record: _Record, code: int) -> None:
        sig = -code if code < 0 else 0
        if record.ending:
            reasons = {"TIMEOUT": "TimeLimit", "OUT_OF_MEMORY": "OutOfMemory", "NODE_FAIL": "NodeDown"}
            self._finish(record, record.ending, reasons.get(record.ending, "None"), 0, sig)
        elif code == 0:
            self._finish(record, "COMPLETED", "None", 0, 0)
        else:
            self._finish(record, "FAILED", "NonZeroExitCode" if code > 0 else "RaisedSignal", max(code, 0), sig)

    def _finish(self, record: _Record, state: str, reason: str, exit_code: int, sig: int) -> None:
        record.state, record.reason, record.exit_code, record.exit_signal = state, reason, exit_code, sig
        record.end_time = int(time.time())
        record.gpu_indexes = []

    def _schedule(self) -> None:
        running = [r for r in self.records.values() if r.state == "RUNNING"]
        free_cpus = self.cpus - sum(r.cpus for r in running)
        free_mem = self.memory_mb - sum(r.memory for r in running)
        used_gpus = {i for r in running for i in r.gpu_indexes}
        blocked = False
        for record in sorted(self.records.values(), key=lambda r: (-r.priority, r.id)):
            if record.state != "PENDING":
                continue
            fits = record.cpus <= free_cpus and record.memory <= free_mem and record.gpus <= self.gpus - len(used_gpus)
            if blocked or not fits:
                record.reason = "Priority" if blocked else "Resources"
                blocked = True
                continue
            record.gpu_indexes = [i for i in range(self.gpus) if i not in used_gpus][: record.gpus]
            used_gpus.update(record.gpu_indexes)
            free_cpus -= record.cpus
            free_mem -= record.memory
            self._launch(record)

    def _launch(self, record: _Record) -> None:
        path = self.spool / f"job{record.id}.sh"
        path.write_text(record.script)
        path.chmod(0o700)
        env = dict(os.environ)
        env.update(
            SLURM_JOB_ID=str(record.id),
            SLURM_JOBID=str(record.id),
            SLURM_JOB_NAME=str(record.desc["name"] or path.name),
            SLURM_JOB_PARTITION=record.desc["partitions"],
            SLURM_CPUS_ON_NODE=str(record.cpus),
            SLURM_MEM_PER_NODE=str(record.memory),
            SLURM_JOB_NODELIST=NODE,
            SLURMD_NODENAME=NODE,
        )
        if record.gpu_indexes:
            env["SLURM_JOB_GPUS"] = env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, record.gpu_indexes))
        out = self._stdio_path(record, "standard_output")
        err = self._stdio_path(record, "standard_error") or out
        try:
            with open(out, "ab") as stdout, open(err, "ab") as stderr:
                record.proc = subprocess.Popen(
                    [str(path)],
                    cwd=record.desc["working_directory"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
        except OSError:
            self._finish(record, "FAILED", "None", 1, 0)  # slurmd: "Could not open stdout file"
            return
        record.state, record.reason = "RUNNING", "None"
        record.started, record.start_time = time.monotonic(), int(time.time())

    def _stdio_path(self, record: _Record, key: str) -> str:
        pattern = record.desc[key]
        if not pattern:
            return "" if key == "standard_error" else str(Path(record.desc["working_directory"]) / f"slurm-{record.id}.out")
        if "\\" in pattern:
            return pattern.replace("\\", "")
        names = {"%": "%", "j": str(record.id), "x": str(record.desc["name"] or ""), "N": NODE}
        return re.sub(r"%([%jxN])", lambda m: names[m.group(1)], pattern)

    @staticmethod
    def _kill(record: _Record, signum: int) -> None:
        if record.proc is not None and record.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.proc.pid, signum)
            if signum != signal.SIGKILL:
                threading.Timer(0.5, _Controller._kill, (record, signal.SIGKILL)).start()  # KillWait


def _resident_mb(session: int) -> float:
    """Resident memory of every process in the job's session (the job's 'cgroup')."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:  # field 6 of stat: the session id
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
    return total / 2**20


CONTROLLER = _Controller()


class Job:
    """pyslurm.Job: a job's information; `Job(id)` alone is enough to cancel or signal it."""

    def __init__(self, job_id: int) -> None:
        self._id = int(job_id)
        self._record: _Record | None = None

    @classmethod
    def _from_record(cls, record: _Record) -> Job:
        job = cls(record.id)
        job._record = _Record(**{**record.__dict__, "proc": None, "gpu_indexes": list(record.gpu_indexes)})
        return job

    def __repr__(self) -> str:
        return f"pyslurm.Job({self._id})"

    @staticmethod
    def load(job_id: int) -> Job:
        return CONTROLLER.snapshot(int(job_id))[0]

    def send_signal(self, signal: int | str, steps: str = "children", hurry: bool = False) -> None:
        signum = getattr(_signals, signal) if isinstance(signal, str) else int(signal)
        CONTROLLER.signal(self._id, signum)

    def cancel(self) -> None:
        self.send_signal(9)

    def _get(self, key: str) -> Any:
        return self._loaded().desc.get(key)

    @property
    def id(self) -> int:
        return self._id

    @property
    def cluster(self) -> str:
        return settings.LOCAL_CLUSTER

    @property
    def name(self) -> str | None:
        return self._get("name")

    def _loaded(self) -> _Record:
        if self._record is None:
            raise RPCError(ESLURM_INVALID_JOB_ID, "Job was not loaded: use pyslurm.Job.load(id)")
        return self._record

    @property
    def state(self) -> str:
        return self._loaded().state

    @property
    def state_reason(self) -> str | None:
        record = self._loaded()
        return None if record.state == "RUNNING" and record.reason == "None" else record.reason

    @property
    def exit_code(self) -> int:
        return self._record.exit_code if self._record else 0

    @property
    def exit_code_signal(self) -> int:
        return self._record.exit_signal if self._record else 0

    @property
    def partition(self) -> str | None:
        return self._get("partitions")

    @property
    def account(self) -> str | None:
        return self._get("account")

    @property
    def qos(self) -> str | None:
        return self._get("qos")

    @property
    def reservation(self) -> str | None:
        return self._get("reservations")

    @property
    def priority(self) -> int | None:
        return self._record.priority if self._record else None

    @property
    def submit_time(self) -> int | None:
        return self._record.submit_time if self._record else None

    @property
    def start_time(self) -> int | None:
        return (self._record.start_time or None) if self._record else None

    @property
    def end_time(self) -> int | None:
        return (self._record.end_time or None) if self._record else None

    @property
    def time_limit(self) -> int | None:
        return self._get("time_limit")

    @property
    def cpus(self) -> int:
        return self._record.cpus if self._record else 1

    @property
    def cpus_per_task(self) -> int:
        return int(self._get("cpus_per_task") or 1)

    @property
    def memory(self) -> int | None:
        return self._record.memory if self._record else None

    @property
    def memory_per_node(self) -> int | None:
        return self._get("memory_per_node")

    @property
    def gres_per_node(self) -> dict[str, int]:
        return {f"gres/{name}": count for name, count in (self._get("gres_per_node") or {}).items()}

    @property
    def working_directory(self) -> str | None:
        return self._get("working_directory")

    @property
    def standard_output(self) -> str | None:
        return self._get("standard_output")

    @property
    def standard_error(self) -> str | None:
        return self._get("standard_error")

    @property
    def comment(self) -> str | None:
        return self._get("comment")

    @property
    def is_requeueable(self) -> bool:
        return bool(self._get("is_requeueable"))

    @property
    def requeue_count(self) -> int:
        return 0

    def get_resource_layout_per_node(self) -> dict[str, dict[str, Any]]:
        if self._record is None or self._record.state != "RUNNING":
            return {}
        gres = {}
        if self._record.gpu_indexes:
            indexes = ",".join(map(str, self._record.gpu_indexes))
            gres["gpu"] = {"count": len(self._record.gpu_indexes), "indexes": indexes}
        return {NODE: {"cpu_ids": f"0-{self._record.cpus - 1}", "gres": gres, "memory": self._record.memory}}

    def to_dict(self) -> dict[str, Any]:
        keys = [k for k, v in vars(Job).items() if isinstance(v, property)]
        return {k: getattr(self, k) for k in keys}


class Jobs:
    """pyslurm.Jobs: a multi-cluster collection; plain ids address the local cluster."""

    def __init__(self, jobs: list[Job] | None = None) -> None:
        self.data: dict[str, dict[int, Job]] = {}
        for job in jobs or []:
            self.data.setdefault(job.cluster, {})[job.id] = job

    @staticmethod
    def load(preload_passwd_info: bool = False, frozen: bool = False) -> Jobs:
        return Jobs(CONTROLLER.snapshot())

    def values(self) -> Iterator[Job]:
        for cluster in self.data.values():
            yield from cluster.values()

    def keys(self) -> Iterator[int]:
        for cluster in self.data.values():
            yield from cluster

    def items(self) -> Iterator[tuple[int, Job]]:
        for cluster in self.data.values():
            yield from cluster.items()

    def get(self, key: int, default: Any = None) -> Any:
        return self.data.get(settings.LOCAL_CLUSTER, {}).get(key, default)

    def __getitem__(self, key: int) -> Job:
        return self.data[settings.LOCAL_CLUSTER][key]

    def __contains__(self, key: object) -> bool:
        return any(key in cluster for cluster in self.data.values())

    def __iter__(self) -> Iterator[int]:
        return self.keys()

    def __len__(self) -> int:
        return sum(len(cluster) for cluster in self.data.values())
