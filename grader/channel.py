"""The job → supervisor channel: the only way anything the job produces reaches the run directory.

The job never writes into the run directory (it sees it read-only); it sends frames over an
inherited pipe, and the supervisor, outside the sandbox, validates each frame and writes the file
itself. So a job cannot plant a symbolic link, a FIFO or a device where the coordinator reads,
cannot overwrite the supervisor's own files, and cannot exceed the run directory's quota.

Frame = one header line of JSON (at most MAX_HEADER bytes, ending in "\\n"), then, for files,
exactly `size` raw bytes:
    {"t": "event", "event": {"event": "epoch_end", ...}}      a progress event
    {"t": "file", "name": "output/result.json", "size": 123}   a file of the run-directory contract
Stdlib only: the job imports this module.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

ENV_FD = "GRADER_CHANNEL_FD"
ENV_NAMESPACES = "GRADER_NAMESPACES"  # set by the supervisor: "bwrap" means /tmp is private to the job
MAX_HEADER = 16_384
MAX_EVENTS = 50_000
# Files a job may send, relative to the run directory; anything else is refused.
FILE_NAME = re.compile(r"^output/(result\.json|predictions\.npy|train_predictions\.npy|weights\.npz|model\.json"
                       r"|tensorboard(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}){1,4})$")
FILE_CAPS = {  # bytes per file; the run directory's total quota applies on top
    "output/result.json": 2_000_000,
    "output/model.json": 4_000_000,
    "output/predictions.npy": 32_000_000,
    "output/train_predictions.npy": 32_000_000,
}
DEFAULT_FILE_CAP = 64_000_000


def file_cap(name: str, weights_cap: int) -> int:
    if name == "output/weights.npz":
        return weights_cap
    if name.startswith("output/tensorboard/"):
        return 16_000_000
    return FILE_CAPS.get(name, DEFAULT_FILE_CAP)


class Channel:
    """Job side: frames over the inherited pipe (or, with no supervisor, files written directly)."""

    def __init__(self, stream: BinaryIO | None, run_dir: Path) -> None:
        self._stream = stream
        self._run_dir = run_dir
        self._lock = threading.Lock()

    @classmethod
    def open(cls, run_dir: Path) -> Channel:
        fd = os.environ.pop(ENV_FD, None)
        if fd is not None and fd.isdigit():
            return cls(os.fdopen(int(fd), "wb", buffering=0), run_dir)
        return cls(None, run_dir)  # run by hand, without the supervisor: write the files directly

    def event(self, name: str, **fields: Any) -> None:
        record = {"event": name, "time": time.time(), **fields}
        if self._stream is None:
            path = self._run_dir / "progress.jsonl"
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
            return
        self._send({"t": "event", "event": record})

    def file(self, name: str, data: bytes) -> None:
        if not FILE_NAME.match(name):
            raise ValueError(f"{name!r} is not a file of the run-directory contract")
        if self._stream is None:
            target = self._run_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            return
        self._send({"t": "file", "name": name, "size": len(data)}, data)

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        line = json.dumps(header, default=str, separators=(",", ":")).encode() + b"\n"
        if len(line) > MAX_HEADER:
            raise ValueError(f"a channel header of {len(line)} bytes is over {MAX_HEADER}")
        assert self._stream is not None
        with self._lock:
            self._stream.write(line)
            if payload:
                view = memoryview(payload)
                while view:
                    written = self._stream.write(view)
                    view = view[written or 0:]
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
