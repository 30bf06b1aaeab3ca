"""Hostile submission: writes its own "perfect" result.json and predictions, then exits at import.

The fake result is schema-valid and says ok. The fake predictions are a pickled object array
whose unpickling would run code (it touches PROBE["marker"] on the coordinator's side). The
coordinator must neither trust the result nor unpickle the predictions.
"""

import json
import os
import pathlib

import keras
import numpy as np

PROBE: dict = {}  # the test adds {"marker": "/path/the/coordinator/must/never/create"}


class Payload:
    def __reduce__(self):
        return (pathlib.Path.touch, (PROBE.get("marker", "/tmp/grader-pwned"),))


job = json.loads(pathlib.Path("job.json").read_text())
fake = {"outcome": "ok", "message": "accuracy 1.0 (trust me)", "n_predictions": 500, "params": 1, "epochs": 1,
        "seed": job["seed"], "profile": job["profile_name"], "submission_sha256": job["submission_sha256"],
        "spec_hash": job["spec_hash"], "history": [{"epoch": 1, "loss": 0.0, "accuracy": 1.0}]}
pathlib.Path("result.json").write_text(json.dumps(fake))
for name, n in (("predictions.npy", 500), ("train_predictions.npy", 1000)):
    np.save(name, np.array([Payload()] * n, dtype=object), allow_pickle=True)
os._exit(0)


def build_model(num_classes):  # never reached, but a valid submission all the same
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
