"""Supervisor side of grader.channel: validate the job's frames and write the run directory itself."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from grader.channel import FILE_NAME, MAX_EVENTS, MAX_HEADER, file_cap
from grader.rundir import RunDir, open_fresh, write_at
from grader.untrusted import UntrustedFileError, parse_json

MAX_EVENT_BYTES = 8_192


class Receiver:
    """Reads frames until the job closes the pipe; every decision here is the supervisor's, not the job's."""

    def __init__(self, fd: int, run: RunDir, *, quota_bytes: int, weights_cap: int, started: float) -> None:
        self._stream = os.fdopen(fd, "rb", buffering=65536)
        self.run = run
        self.quota_bytes = quota_bytes
        self.weights_cap = weights_cap
        self.started = started
        self.received = 0
        self.files: dict[str, int] = {}
        self.refused: list[str] = []
        self.phases: dict[str, float] = {}
        self.last_phase: str | None = None
        self.epochs_seen = 0
        self.landlock_abi = 0
        self.result_received = False
        self.ended = False
        self.over_quota = False
        self.events = 0
        self._progress = open_fresh(run.path, RunDir.PROGRESS)
        self._thread = threading.Thread(target=self._loop, name="grader-receiver", daemon=True)

    @property
    def completed(self) -> bool:
        """The job sent its whole result: later trouble (a stuck teardown, a timeout) cannot undo that."""
        return self.result_received and self.ended

    def start(self) -> None:
        self.supervisor_event("start")
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._stream.close()
        with contextlib.suppress(OSError):
            os.close(self._progress)

    def supervisor_event(self, name: str, **fields: Any) -> None:
        self._append({"event": name, "source": "supervisor", **fields})

    def _append(self, record: dict[str, Any]) -> None:
        record["t"] = round(time.monotonic() - self.started, 3)  # the supervisor's clock: a fact
        line = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
        with contextlib.suppress(OSError):
            os.write(self._progress, line)

    def _refuse(self, why: str) -> None:
        if len(self.refused) < 20:
            self.refused.append(why)

    def _loop(self) -> None:
        try:
            self._frames()
        except (OSError, ValueError) as exc:
            self._refuse(f"the channel broke: {str(exc)[:200]}")
        if not self.over_quota:
            self._drain()  # past a bad frame nothing more is believed, but the job must not block on a full pipe

    def _frames(self) -> None:
        while True:
            header = self._stream.readline(MAX_HEADER + 1)
            if not header:
                return
            if len(header) > MAX_HEADER or not header.endswith(b"\n"):
                self._refuse(f"a frame header over {MAX_HEADER} bytes; the rest of the channel was ignored")
                return
            try:
                frame = parse_json(header, "a channel frame")
            except UntrustedFileError as exc:
                self._refuse(str(exc)[:300])
                continue
            if not isinstance(frame, dict):
                self._refuse("a channel frame that is not an object")
                continue
            if frame.get("t") == "file":
                if not self._file(frame):
                    return
            elif frame.get("t") == "event":
                self._event(frame.get("event"))
            else:
                self._refuse("a channel frame of unknown type")

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while self._stream.read(1 << 20):
                pass

    def _event(self, event: Any) -> None:
        self.events += 1
        if self.events > MAX_EVENTS:
            if self.events == MAX_EVENTS + 1:
                self._refuse(f"more than {MAX_EVENTS} progress events; later ones were dropped")
            return
        if not isinstance(event, dict) or not isinstance(event.get("event"), str) or len(event["event"]) > 40:
            self._refuse("a progress event without a short 'event' name")
            return
        line = json.dumps(event, separators=(",", ":"))
        if len(line) > MAX_EVENT_BYTES:
            self._refuse(f"a progress event of {len(line)} bytes (limit {MAX_EVENT_BYTES}) was dropped")
            return
        name = event["event"]
        now = round(time.monotonic() - self.started, 3)
        if name == "phase" and isinstance(event.get("phase"), str):
            phase = event["phase"][:40]
            self.phases.setdefault(phase, now)
            self.last_phase = phase
        elif name == "epoch_end":
            self.epochs_seen += 1
        elif name == "confined" and isinstance(event.get("abi"), int) and not self.phases.get("importing submission"):
            self.landlock_abi = max(0, min(int(event["abi"]), 100))  # only before participant code runs
        elif name == "end":
            self.ended = True
        event.pop("t", None)
        self._append(event)

    def _file(self, frame: dict[str, Any]) -> bool:
        name, size = frame.get("name"), frame.get("size")
        if not isinstance(name, str) or not FILE_NAME.match(name) or not isinstance(size, int) or size < 0:
            self._refuse(f"a file frame for {str(name)[:80]!r}, which is not a file of the run-directory contract")
            return False
        cap = file_cap(name, self.weights_cap)
        if size > cap:
            self._refuse(f"{name} of {size:,} bytes is over its {cap:,}-byte limit")
            self.over_quota = True
            return False
        if self.received + size > self.quota_bytes:
            self._refuse(f"{name} would take the run directory past its {self.quota_bytes:,}-byte quota")
            self.over_quota = True
            return False
        data = self._stream.read(size)
        if len(data) != size:
            self._refuse(f"{name}: the channel closed after {len(data):,} of {size:,} bytes")
            return False
        self.received += size
        write_at(self.run.path, name, data)
        self.files[name] = size
        if name == RunDir.RESULT:
            self.result_received = True
        return True


def remove_tree(root: Path, name: str) -> None:
    """Delete root/name and everything below it without following any link the job may have planted."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _remove_at(fd, name)
    finally:
        os.close(fd)


def _remove_at(parent: int, name: str, depth: int = 0) -> None:
    if depth > 256:  # deeper trees are left for `grader runs prune`; recursion stays bounded
        return
    try:
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=parent)  # a file, a link (removed, not followed) or nothing
        return
    try:
        for entry in os.listdir(child):
            _remove_at(child, entry, depth + 1)
    finally:
        os.close(child)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=parent)
