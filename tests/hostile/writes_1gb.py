"""Hostile submission: tries to write five 500 MB files (2.5 GB) into its working folder, then trains normally."""

import json

import keras

TRAINING = {"epochs": 1, "batch_size": 128}
CHUNK = b"\0" * (16 * 1024 * 1024)


def _fill_disk() -> dict:
    written, error = 0, None
    try:
        for i in range(5):
            with open(f"big{i}.bin", "wb") as fh:
                part = 0
                while part < 500 * 1024**2:
                    part += fh.write(CHUNK)
                    fh.flush()
                written += part
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"written": written, "error": error}


def build_model(num_classes):
    print("GRADER-FOUND " + json.dumps(_fill_disk()), flush=True)
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
