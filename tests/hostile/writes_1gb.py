"""Hostile submission: tries to write a 1 GB file into its run directory, then trains normally."""

import json
from pathlib import Path

import keras

TRAINING = {"epochs": 1, "batch_size": 128}
CHUNK = b"\0" * (16 * 1024 * 1024)


def _fill_disk() -> dict:
    written, error = 0, None
    try:
        with open("big.bin", "wb") as fh:
            while written < 1024**3:
                written += fh.write(CHUNK)
                fh.flush()
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"written": written, "error": error}


def build_model(num_classes):
    Path("found.json").write_text(json.dumps(_fill_disk()))
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
